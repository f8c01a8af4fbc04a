package cli_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/sluice-project/sluice/cli"
)

// TestReplayExampleJSON checks the schema of `sluice replay --json` on
// the built-in example, field by field as tools read it.
func TestReplayExampleJSON(t *testing.T) {
	var out, errb bytes.Buffer
	if code := cli.Main([]string{"replay", "--json"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var rep struct {
		Packets     *uint64 `json:"packets"`
		Accepted    *uint64 `json:"accepted"`
		Dropped     *uint64 `json:"dropped"`
		Malformed   *uint64 `json:"malformed"`
		Hotdropped  *uint64 `json:"hotdropped"`
		NotFiltered *uint64 `json:"not_filtered"`
		Tables      []struct {
			Family *string `json:"family"`
			Table  *string `json:"table"`
			Chains []struct {
				Name          *string `json:"name"`
				Policy        *string `json:"policy"`
				PolicyPackets *uint64 `json:"policy_packets"`
				PolicyBytes   *uint64 `json:"policy_bytes"`
				Rules         []struct {
					Line    *int    `json:"line"`
					Packets *uint64 `json:"packets"`
					Bytes   *uint64 `json:"bytes"`
				} `json:"rules"`
			} `json:"chains"`
		} `json:"tables"`
	}
	dec := json.NewDecoder(bytes.NewReader(out.Bytes()))
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if rep.Packets == nil || rep.Accepted == nil || rep.Dropped == nil || rep.Malformed == nil || rep.Hotdropped == nil || rep.NotFiltered == nil {
		t.Fatalf("missing top-level fields:\n%.500s", out.String())
	}
	if *rep.Packets == 0 || *rep.Packets != *rep.Accepted+*rep.Dropped+*rep.Malformed {
		t.Errorf("packets %d != accepted %d + dropped %d + malformed %d", *rep.Packets, *rep.Accepted, *rep.Dropped, *rep.Malformed)
	}
	if *rep.Dropped < *rep.Hotdropped || *rep.Accepted < *rep.NotFiltered {
		t.Errorf("hotdropped %d not within dropped %d, or not_filtered %d not within accepted %d", *rep.Hotdropped, *rep.Dropped, *rep.NotFiltered, *rep.Accepted)
	}
	want := []string{"ipv4/raw", "ipv4/mangle", "ipv4/filter"}
	if len(rep.Tables) != len(want) {
		t.Fatalf("%d tables", len(rep.Tables))
	}
	var rules, counted uint64
	lastLine := 0
	for i, tb := range rep.Tables {
		if tb.Family == nil || tb.Table == nil || *tb.Family+"/"+*tb.Table != want[i] {
			t.Errorf("table %d: %v/%v, want %s", i, tb.Family, tb.Table, want[i])
			continue
		}
		if len(tb.Chains) == 0 {
			t.Errorf("%s: no chains", want[i])
		}
		for _, c := range tb.Chains {
			if c.Name == nil || c.Policy == nil || c.PolicyPackets == nil || c.PolicyBytes == nil || c.Rules == nil {
				t.Errorf("%s: chain with missing fields", want[i])
				continue
			}
			switch *c.Policy {
			case "ACCEPT", "DROP":
			case "-":
				if *c.PolicyPackets != 0 || *c.PolicyBytes != 0 {
					t.Errorf("user chain %s has policy counters", *c.Name)
				}
			default:
				t.Errorf("chain %s policy %q", *c.Name, *c.Policy)
			}
			if (*c.PolicyPackets == 0) != (*c.PolicyBytes == 0) || *c.PolicyBytes < 20**c.PolicyPackets {
				t.Errorf("chain %s policy %d packets %d bytes", *c.Name, *c.PolicyPackets, *c.PolicyBytes)
			}
			for _, r := range c.Rules {
				if r.Line == nil || r.Packets == nil || r.Bytes == nil {
					t.Errorf("%s: rule with missing fields", *c.Name)
					continue
				}
				if *r.Line <= 0 {
					t.Errorf("%s: rule line %d", *c.Name, *r.Line)
				}
				if *r.Bytes < 20**r.Packets {
					t.Errorf("line %d: %d bytes for %d packets", *r.Line, *r.Bytes, *r.Packets)
				}
				if *r.Line > lastLine {
					lastLine = *r.Line
				}
				rules++
				if *r.Packets > 0 {
					counted++
				}
			}
		}
	}
	// The example's raw PREROUTING: every filtered packet that the
	// allowlist (line 18) and the fragment rule (line 20) do not take
	// reaches the unconditional -j BLOCK (line 21).
	pre := rep.Tables[0].Chains[0]
	if *pre.Name != "PREROUTING" || *pre.Rules[0].Line != 18 || *pre.Rules[1].Line != 20 || *pre.Rules[2].Line != 21 {
		t.Fatalf("raw PREROUTING starts at lines %d %d %d", *pre.Rules[0].Line, *pre.Rules[1].Line, *pre.Rules[2].Line)
	}
	filtered := *rep.Packets - *rep.Malformed - *rep.NotFiltered
	if got, want := *pre.Rules[2].Packets, filtered-*pre.Rules[0].Packets-*pre.Rules[1].Packets; got != want {
		t.Errorf("-j BLOCK counted %d, want %d", got, want)
	}
	if counted < rules/2 {
		t.Errorf("only %d of %d rules counted anything", counted, rules)
	}
	if dec.More() {
		t.Error("more than one JSON value")
	}
}
