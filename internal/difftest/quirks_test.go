package difftest

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/sluice-project/sluice/internal/testnet"
	"github.com/sluice-project/sluice/oracle"
	"github.com/sluice-project/sluice/report"
)

var flagRecord = flag.Bool("quirks.record", false, "TestQuirksKernel: write each case's kernel.json from the live kernel instead of checking it")

// knownQuirk lists quirk cases sluice gets wrong today (diagnosed bugs not
// yet fixed). TestQuirks logs them instead of failing, and fails when one
// passes so that the entry goes (a stale one would hide a regression);
// TestQuirksKernel checks every case against the kernel regardless, since
// it tests the recording, not sluice.
var knownQuirk = map[string]string{}

// quirkRecord is a case's kernel.json.
type quirkRecord struct {
	HZ     uint64         `json:"hz"`
	Kernel *report.Report `json:"kernel"`
}

type quirkCase struct {
	name   string
	dir    string
	c      Case
	frames []oracle.Frame
}

func loadQuirks(t *testing.T) []quirkCase {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join("testdata", "quirks", "*"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(dirs)
	var out []quirkCase
	for _, d := range dirs {
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
			continue
		}
		read := func(n string) []byte {
			b, err := os.ReadFile(filepath.Join(d, n))
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			return b
		}
		q := quirkCase{name: filepath.Base(d), dir: d, c: Case{Rules4: read("rules.v4"), Rules6: read("rules.v6"), Sets: read("sets")}}
		if q.frames, err = ParseFramesHex(string(read("frames.hex"))); err != nil {
			t.Fatalf("%s/frames.hex: %v", d, err)
		}
		out = append(out, q)
	}
	if len(out) == 0 {
		t.Fatal("no quirk cases in testdata/quirks")
	}
	return out
}

// TestQuirks replays each hand-written case through the engine and checks
// the kernel counters recorded in kernel.json. It needs no root.
func TestQuirks(t *testing.T) {
	for _, q := range loadQuirks(t) {
		t.Run(q.name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(q.dir, "kernel.json"))
			if err != nil {
				t.Fatalf("%v (record it: go test ./internal/difftest -run TestQuirksKernel -quirks.record, as root)", err)
			}
			var rec quirkRecord
			if err := json.Unmarshal(b, &rec); err != nil {
				t.Fatal(err)
			}
			sl, err := RunEngine(q.c, q.frames, rec.HZ)
			reason, known := knownQuirk[q.name]
			if err != nil {
				if known {
					t.Logf("known mismatch (%s): %v", reason, err)
					return
				}
				t.Fatal(err)
			}
			d := ingressOnly(report.Compare(rec.Kernel, sl))
			switch {
			case d.Equal && known:
				// A stale entry would hide a regression of this case.
				t.Errorf("%s is listed in knownQuirk (%s) but now passes: remove the entry", q.name, reason)
			case !d.Equal && known:
				t.Logf("known mismatch (%s):\n%s", reason, FormatDiff(d))
			case !d.Equal:
				t.Errorf("counters differ from the recorded kernel's:\n%s", FormatDiff(d))
			}
		})
	}
}

// TestQuirksKernel re-checks the recorded counters against the live
// kernel (root), or records them with -quirks.record.
func TestQuirksKernel(t *testing.T) {
	testnet.RequireForTest(t)
	h := hz(t)
	for _, q := range loadQuirks(t) {
		t.Run(q.name, func(t *testing.T) {
			k, err := oracle.Run(context.Background(), oracle.Spec{Rules4: q.c.Rules4, Rules6: q.c.Rules6, Sets: q.c.Sets},
				q.frames, oracle.Options{Timeout: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(q.dir, "kernel.json")
			if *flagRecord {
				b, err := json.MarshalIndent(quirkRecord{HZ: h, Kernel: k}, "", "  ")
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var rec quirkRecord
			if err := json.Unmarshal(b, &rec); err != nil {
				t.Fatal(err)
			}
			if d := ingressOnly(report.Compare(rec.Kernel, k)); !d.Equal {
				t.Errorf("the live kernel no longer agrees with kernel.json (recorded at HZ %d, now %d):\n%s", rec.HZ, h, FormatDiff(d))
			}
		})
	}
}
