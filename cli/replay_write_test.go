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

// A damaged capture is processed up to the damage, the counters are
// printed, and the damage is reported with a non-zero exit.
func TestReplayTruncatedCapture(t *testing.T) {
	// Cut a real capture in the middle of a record.
	var out, errb bytes.Buffer
	path := filepath.Join(t.TempDir(), "a.pcap")
	if code := Main([]string{"replay", "--write-accepted", path}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	data := readFileForTest(t, path)
	cut := filepath.Join(t.TempDir(), "cut.pcap")
	writeFileForTest(t, cut, data[:len(data)/2+7])
	out.Reset()
	errb.Reset()
	code := Main([]string{"replay", "--rules", "../examples/antiddos.rules", "--sets", "../examples/antiddos.ipset", "--json", cut}, &out, &errb)
	if code == 0 || !bytes.Contains(errb.Bytes(), []byte("capture damaged after")) {
		t.Fatalf("exit %d, stderr %q: want the damage reported", code, errb.String())
	}
	var rep struct{ Packets int }
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil || rep.Packets == 0 {
		t.Fatalf("no counters for the frames before the damage: %v %q", err, out.String())
	}
}
