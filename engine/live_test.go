package engine

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/sluice-project/sluice/packet"
	"github.com/sluice-project/sluice/rules"
)

func compileTextForTest(t *testing.T, st *State, text string, now int64) (*Program, error) {
	t.Helper()
	rs, err := rules.Parse(strings.NewReader(text), rules.Options{Family: packet.FamilyIPv4, File: "live.rules"})
	if err != nil {
		return nil, err
	}
	return Compile(Config{Rules4: rs}, st, now)
}

// A reload keeps the bucket of an unchanged limit rule, and a rule whose
// options changed starts a fresh bucket, as a newly loaded rule does.
func TestReloadKeepsLimitState(t *testing.T) {
	const base = "*raw\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -m limit --limit 1/hour --limit-burst 3 -j ACCEPT\n-A PREROUTING -j DROP\nCOMMIT\n"
	st := NewState(nil, 250)
	pr, err := compileTextForTest(t, st, base, 0)
	if err != nil {
		t.Fatal(err)
	}
	live := NewLive(pr)
	frame := packet.BuildIPv4(netip.MustParseAddr("192.0.2.9"), netip.MustParseAddr("198.51.100.1"), packet.ProtoUDP, packet.BuildUDP(1, 2, nil))
	var p packet.Packet
	var d packet.Decoder
	d.Decode(frame, &p)
	w := live.Refresh(nil)
	for i := 0; i < 3; i++ {
		if v := w.Process(&p, int64(i)); v != Accept {
			t.Fatalf("packet %d: %v, want accept within the burst", i, v)
		}
	}
	// Reload the same text: the bucket is empty and stays empty.
	pr2, err := compileTextForTest(t, st, base+"# a comment\n", 10)
	if err != nil {
		t.Fatal(err)
	}
	live.Swap(pr2)
	w = live.Refresh(w)
	if w.Program() != pr2 {
		t.Fatal("worker did not move to the new program")
	}
	if v := w.Process(&p, 20); v != Drop {
		t.Fatalf("after reload: %v, want drop (the burst was spent before the reload)", v)
	}
	// A changed limit is a new rule with a full bucket.
	changed := strings.Replace(base, "--limit-burst 3", "--limit-burst 4", 1)
	pr3, err := compileTextForTest(t, st, changed, 30)
	if err != nil {
		t.Fatal(err)
	}
	live.Swap(pr3)
	w = live.Refresh(w)
	if v := w.Process(&p, 40); v != Accept {
		t.Fatalf("changed rule: %v, want accept from a fresh bucket", v)
	}
}

// A reload that fails leaves the running program in place.
func TestFailedReloadKeepsProgram(t *testing.T) {
	st := NewState(nil, 250)
	pr, err := compileTextForTest(t, st, "*raw\n:PREROUTING DROP [0:0]\nCOMMIT\n", 0)
	if err != nil {
		t.Fatal(err)
	}
	live := NewLive(pr)
	if _, err := compileTextForTest(t, st, "*raw\n:PREROUTING DROP [0:0]\n-A PREROUTING -m bogus -j ACCEPT\nCOMMIT\n", 1); err == nil {
		t.Fatal("bad rules compiled")
	}
	if live.Load() != pr {
		t.Fatal("program changed after a failed reload")
	}
}
