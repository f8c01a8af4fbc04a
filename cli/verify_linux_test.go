package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-project/sluice/examples"
	"github.com/sluice-project/sluice/internal/testnet"
)

// untimedExampleForTest is the example ruleset without its time-based
// rules, whose counters do not depend on when frames arrive.
func untimedExampleForTest(t *testing.T) string {
	var keep []string
	for _, l := range strings.Split(string(examples.Rules4), "\n") {
		if strings.Contains(l, "-m limit") || strings.Contains(l, "-m hashlimit") || strings.Contains(l, "-m recent") {
			continue
		}
		keep = append(keep, l)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "untimed.rules")
	if err := os.WriteFile(path, []byte(strings.Join(keep, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	sets := filepath.Join(dir, "sets")
	if err := os.WriteFile(sets, examples.Sets, 0o644); err != nil {
		t.Fatal(err)
	}
	capture := filepath.Join(dir, "capture.pcap.gz")
	if err := os.WriteFile(capture, mustReadAll(t), 0o644); err != nil {
		t.Fatal(err)
	}
	return "--rules=" + path + " --sets=" + sets + " " + capture
}

func mustReadAll(t *testing.T) []byte {
	var b bytes.Buffer
	if _, err := b.ReadFrom(examples.Capture()); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestVerifyExampleAgainstKernel is the project's promise in one test: the
// example capture through the example ruleset (without its time-based
// rules) gives exactly the kernel's counters, rule by rule.
func TestVerifyExampleAgainstKernel(t *testing.T) {
	testnet.RequireForTest(t)
	args := append([]string{"verify", "--json"}, strings.Fields(untimedExampleForTest(t))...)
	var out, errb bytes.Buffer
	code := Main(args, &out, &errb)
	var res struct {
		Equal  bool            `json:"equal"`
		Kernel json.RawMessage `json:"kernel"`
		Sluice json.RawMessage `json:"sluice"`
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("exit %d, bad JSON: %v\nstderr: %s", code, err, errb.String())
	}
	if code != 0 || !res.Equal {
		var text bytes.Buffer
		Main(append([]string{"verify"}, strings.Fields(untimedExampleForTest(t))...), &text, &text)
		t.Fatalf("exit %d, equal %v:\n%s", code, res.Equal, text.String())
	}
}

func TestVerifyRejectsBadRules(t *testing.T) {
	testnet.RequireForTest(t)
	path := filepath.Join(t.TempDir(), "bad.rules")
	os.WriteFile(path, []byte("*raw\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -m conntrack --ctstate NEW -j DROP\nCOMMIT\n"), 0o644)
	var out, errb bytes.Buffer
	if code := Main([]string{"verify", "--rules", path}, &out, &errb); code == 0 || !strings.Contains(errb.String(), "bad.rules:3:") {
		t.Fatalf("exit %d, stderr %q: want a positioned error", code, errb.String())
	}
}
