package cli_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-project/sluice/cli"
)

func TestBenchEngineJSON(t *testing.T) {
	var out, errb bytes.Buffer
	if code := cli.Main([]string{"bench", "engine", "--packets", "20000", "--json"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var res map[string]any
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, k := range []string{"ns_per_packet", "mpps", "allocs_per_packet"} {
		v, ok := res[k].(float64)
		if !ok {
			t.Errorf("%s missing or not a number: %v", k, res[k])
			continue
		}
		if k != "allocs_per_packet" && v <= 0 {
			t.Errorf("%s = %v", k, v)
		}
		if v < 0 {
			t.Errorf("%s = %v", k, v)
		}
	}
	if res["packets"].(float64) != 20000 || res["distinct_sources"].(float64) != 20000 {
		t.Errorf("packets %v sources %v", res["packets"], res["distinct_sources"])
	}
	if a, d, m := res["accepted"].(float64), res["dropped"].(float64), res["malformed"].(float64); a+d+m != 20000 || a == 0 || d == 0 {
		t.Errorf("verdicts %v %v %v", a, d, m)
	}
	if ns, mpps := res["ns_per_packet"].(float64), res["mpps"].(float64); ns*mpps < 999 || ns*mpps > 1001 {
		t.Errorf("ns_per_packet %v and mpps %v disagree", ns, mpps)
	}
}

func TestBenchEngineText(t *testing.T) {
	var out, errb bytes.Buffer
	if code := cli.Main([]string{"bench", "engine", "--packets", "5000", "--rules", filepath.Join("..", "engine", "testdata", "reference.rules"),
		"--sets", filepath.Join("..", "engine", "testdata", "reference.ipset")}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, w := range []string{"ns/packet", "Mpps", "allocs/packet", "reference.rules", "5000 packets"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("output lacks %q:\n%s", w, out.String())
		}
	}
}

func TestBenchEngineCapture(t *testing.T) {
	// --capture without --sources keeps the capture's own sources.
	dir := t.TempDir()
	capPath := filepath.Join(dir, "c.pcap")
	var out, errb bytes.Buffer
	if code := cli.Main([]string{"replay", "--write-accepted", capPath}, &out, &errb); code != 0 {
		t.Fatalf("replay exit %d: %s", code, errb.String())
	}
	if _, err := os.Stat(capPath); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if code := cli.Main([]string{"bench", "engine", "--capture", capPath, "--packets", "3000", "--json"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var res struct {
		DistinctSources int `json:"distinct_sources"`
		Mix             int `json:"mix"`
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	if res.DistinctSources != 0 || res.Mix == 0 {
		t.Errorf("%+v", res)
	}
}

func TestBenchLiveAndUsage(t *testing.T) {
	var out, errb bytes.Buffer
	// bench live itself runs floods for minutes (see internal/benchlive's
	// tests); here only its flag handling.
	if code := cli.Main([]string{"bench", "live", "--no-such-flag"}, &out, &errb); code != 2 {
		t.Errorf("bench live --no-such-flag: exit %d", code)
	}
	errb.Reset()
	if code := cli.Main([]string{"bench"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "bench engine") {
		t.Errorf("bench: exit %d, %q", code, errb.String())
	}
	if code := cli.Main([]string{"bench", "nope"}, &out, &errb); code != 2 {
		t.Errorf("bench nope: exit %d", code)
	}
	if code := cli.Main([]string{"bench", "engine", "--packets", "0"}, &out, &errb); code != 2 {
		t.Errorf("--packets 0: exit %d", code)
	}
}
