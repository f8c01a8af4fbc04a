package xdp

import (
	"fmt"
	"strings"
	"testing"

	"github.com/sluice-project/sluice/engine/u32"
	"github.com/sluice-project/sluice/examples"
	"github.com/sluice-project/sluice/packet"
	"github.com/sluice-project/sluice/rules"
)

func parseRules(t *testing.T, text string) *rules.Ruleset {
	t.Helper()
	rs, err := rules.Parse(strings.NewReader(text), rules.Options{Family: packet.FamilyIPv4, File: "t"})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// TestCompileDumpCarriesRules checks that every rule that has code shows
// its text in the dump, and that each rule gets a mode.
func TestCompileDumpCarriesRules(t *testing.T) {
	// Without its sets (the first rule, the allowlist, would send
	// every packet to userspace).
	var lines []string
	for _, l := range strings.Split(string(examples.Rules4), "\n") {
		if !strings.Contains(l, "-m set") {
			lines = append(lines, l)
		}
	}
	text := strings.Join(lines, "\n")
	rs := parseRules(t, text)
	spec, err := Compile(rs, nil, CompileOptions{InIface: "eth0"})
	if err != nil {
		t.Fatal(err)
	}
	dump := fmt.Sprintf("%v", spec.Program.Instructions)
	modes := map[string]int{}
	for _, ri := range spec.Rules {
		modes[ri.Mode]++
		if ri.Mode == "xdp" || ri.Mode == "fallback" {
			if !strings.Contains(dump, ri.Rule.Text) {
				t.Errorf("dump lacks line %d: %s", ri.Rule.Line, ri.Rule.Text)
			}
		}
		if ri.Mode == "fallback" && ri.Reason == "" {
			t.Errorf("line %d falls back without a reason", ri.Rule.Line)
		}
	}
	if modes["xdp"] == 0 || modes["fallback"] == 0 {
		t.Errorf("modes %v", modes)
	}
	for _, want := range []string{"FALLBACK site", "header checksum", "policy ACCEPT"} {
		if !strings.Contains(dump, want) {
			t.Errorf("dump lacks %q", want)
		}
	}
	t.Logf("%d instructions, modes %v, %d fallback sites", spec.Instructions(), modes, len(spec.Fallback))
}

// TestCompileNeverAndShadowed: -i decided at compile time, and rules
// after an unconditional fallback.
func TestCompileNeverAndShadowed(t *testing.T) {
	rs := parseRules(t, `*raw
:PREROUTING ACCEPT [0:0]
-A PREROUTING -i eth1 -j DROP
-A PREROUTING -i eth+ -p tcp -j ACCEPT
-A PREROUTING -m limit --limit 1/sec
-A PREROUTING -j DROP
COMMIT
`)
	spec, err := Compile(rs, nil, CompileOptions{InIface: "eth0"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"never", "xdp", "fallback", "shadowed"}
	for i, ri := range spec.Rules {
		if ri.Mode != want[i] {
			t.Errorf("line %d: mode %s (%s), want %s", ri.Rule.Line, ri.Mode, ri.Reason, want[i])
		}
	}
}

// TestCompileU32Text checks the reading of u32.Match's canonical text.
func TestCompileU32Text(t *testing.T) {
	m, err := u32.Parse("0>>22&0x3C@ 12 >> 26 & 0x3C @ 0 = 0x47455420 && 6&0xFF=6,17:20")
	if err != nil {
		t.Fatal(err)
	}
	tests, err := parseU32(m.String())
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(tests)
	want := "[{[{0 0} {62 22} {38 60} {64 12} {62 26} {38 60} {64 0}] [[1195725856 1195725856]]} {[{0 6} {38 255}] [[6 6] [17 20]]}]"
	if got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
}

// TestCompileTooLarge: MaxInstructions bounds inlining.
func TestCompileTooLarge(t *testing.T) {
	rs := parseRules(t, "*raw\n:PREROUTING ACCEPT [0:0]\n:A - [0:0]\n-A PREROUTING -j A\n-A PREROUTING -j A\n-A A -p tcp -m tcp --dport 1\nCOMMIT\n")
	if _, err := Compile(rs, nil, CompileOptions{MaxInstructions: 50}); err == nil || !strings.Contains(err.Error(), "too large") {
		t.Fatalf("got %v", err)
	}
}
