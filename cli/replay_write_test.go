package cli

import (
	"bytes"
	"encoding/json"
	"io"
	"path/filepath"
	"testing"

	"github.com/sluice-project/sluice/pcapio"
)

func countFramesForTest(t *testing.T, path string) int {
	t.Helper()
	r, err := pcapio.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	n := 0
	for {
		if _, _, _, err := r.Next(); err == io.EOF {
			return n
		} else if err != nil {
			t.Fatal(err)
		}
		n++
	}
}

// --write-accepted and --write-dropped split the capture exactly as the
// verdicts do.
func TestReplayWritesVerdicts(t *testing.T) {
	dir := t.TempDir()
	acc, drop := filepath.Join(dir, "accepted.pcap"), filepath.Join(dir, "dropped.pcap")
	var out, errb bytes.Buffer
	if code := Main([]string{"replay", "--json", "--write-accepted", acc, "--write-dropped", drop}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var rep struct{ Packets, Accepted, Dropped, Malformed int }
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if a, d := countFramesForTest(t, acc), countFramesForTest(t, drop); a != rep.Accepted || d != rep.Dropped+rep.Malformed {
		t.Errorf("accepted.pcap %d frames (report %d), dropped.pcap %d (report %d dropped + %d malformed)",
			a, rep.Accepted, d, rep.Dropped, rep.Malformed)
	}
}
