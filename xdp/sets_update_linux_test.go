//go:build linux

package xdp

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/sluice-project/sluice/engine"
	"github.com/sluice-project/sluice/engine/ipset"
	"github.com/sluice-project/sluice/internal/testnet"
	"github.com/sluice-project/sluice/packet"
	"github.com/sluice-project/sluice/rules"
)

const updateRules = `*raw
:PREROUTING ACCEPT [0:0]
-A PREROUTING -m set --match-set nets src -j DROP
-A PREROUTING -m set --match-set hosts src -j DROP
-A PREROUTING -p udp -m set --match-set ports dst -j DROP
-A PREROUTING -m set --match-set small src -j DROP
-A PREROUTING -m set --match-set pairs src,dst -j DROP
COMMIT
`

// randomSetsForTest writes an ipset save file: nets (hash:net with
// nomatch exceptions, many /25-/32 splitting /24 blocks), hosts (hash:ip)
// and ports (bitmap:port), each too large to be inlined, drawn from rng
// around 10.0.0.0/12 so that two draws overlap; small is fixed.
func randomSetsForTest(rng *rand.Rand) (string, []netip.Addr) {
	var b strings.Builder
	var probes []netip.Addr
	addr := func() uint32 { return 10<<24 | rng.Uint32()>>12 }
	a4 := func(a uint32) netip.Addr {
		return netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)})
	}
	b.WriteString("create nets hash:net family inet maxelem 4096\n")
	seen := map[string]bool{}
	for range 300 {
		l := 16 + rng.IntN(17)
		a := addr() & (^uint32(0) << (32 - l))
		e := fmt.Sprintf("%v/%d", a4(a), l)
		if seen[e] {
			continue
		}
		seen[e] = true
		nomatch := ""
		if rng.IntN(4) == 0 {
			nomatch = " nomatch"
		}
		fmt.Fprintf(&b, "add nets %s%s\n", e, nomatch)
		last := a | ^(^uint32(0) << (32 - l))
		probes = append(probes, a4(a), a4(a-1), a4(last), a4(last+1))
	}
	b.WriteString("create hosts hash:ip family inet maxelem 4096\n")
	for range 200 {
		a := addr()
		if e := a4(a).String(); !seen[e] {
			seen[e] = true
			fmt.Fprintf(&b, "add hosts %s\n", e)
			probes = append(probes, a4(a))
		}
	}
	b.WriteString("create ports bitmap:port range 0-65535\n")
	for p := 1000 + rng.IntN(10); p < 1100; p += 1 + rng.IntN(5) {
		fmt.Fprintf(&b, "add ports %d\n", p)
	}
	b.WriteString("create pairs hash:ip,port family inet maxelem 4096\n")
	for range 40 {
		a := addr()
		fmt.Fprintf(&b, "add pairs %v,udp:%d\n", a4(a), 995+rng.IntN(120))
		probes = append(probes, a4(a))
	}
	b.WriteString("create small hash:net family inet\nadd small 192.0.2.0/24\n")
	return b.String(), probes
}

// TestUpdateSetsInPlace loads a program, rewrites its sets' contents in
// place with the sets of a second draw, and checks every probe address
// and port against the engine compiled with the second draw; a change of
// a rule or of a set compiled into comparisons is not the same program.
func TestUpdateSetsInPlace(t *testing.T) {
	testnet.RequireForTest(t)
	rng := rand.New(rand.NewPCG(7, 8))
	compileRules := func(sets, text string) (*rules.Ruleset, *Spec) {
		reg, err := ipset.Parse("sets", strings.NewReader(sets), 0)
		if err != nil {
			t.Fatal(err)
		}
		rs, err := rules.Parse(strings.NewReader(text), rules.Options{Family: packet.FamilyIPv4, File: "rules", Sets: reg})
		if err != nil {
			t.Fatal(err)
		}
		spec, err := Compile(rs, nil, CompileOptions{InIface: "eth0"})
		if err != nil {
			t.Fatal(err)
		}
		return rs, spec
	}
	compile := func(sets string) (*rules.Ruleset, *Spec) { return compileRules(sets, updateRules) }
	setsA, probesA := randomSetsForTest(rng)
	setsB, probesB := randomSetsForTest(rng)
	_, specA := compile(setsA)
	rsB, specB := compile(setsB)
	if len(specA.Sets) != 4 {
		t.Fatalf("%d set maps, want 4 (small is inlined)", len(specA.Sets))
	}
	if !specA.SameProgram(specB) {
		t.Fatal("two draws of the same sets' contents are not the same program")
	}
	f, err := specA.Load()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	probes := append(probesA, probesB...)
	frame := func(i int) []byte {
		return packet.BuildIPv4(probes[i], netip.MustParseAddr("10.200.0.1"), packet.ProtoUDP, packet.BuildUDP(40000, uint16(995+i%120), []byte("x")))
	}
	before := make([]uint32, len(probes))
	for i := range probes {
		if before[i], err = f.Program.Run(&ebpf.RunOptions{Data: frame(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.UpdateSets(specB); err != nil {
		t.Fatal(err)
	}
	if err := f.ZeroCounters(); err != nil {
		t.Fatal(err)
	}
	if c, err := f.ReadCounters(); err != nil || c[StatPackets] != 0 {
		t.Fatalf("counters after ZeroCounters: %v, %v", c[:NumStats], err)
	}

	pr, err := engine.Compile(engine.Config{Rules4: rsB, InIface: "eth0"}, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	w := pr.NewWorker()
	var p packet.Packet
	drops, changed := 0, 0
	for i, src := range probes {
		fr := frame(i)
		(&packet.Decoder{}).Decode(fr, &p)
		v := w.Process(&p, int64(i))
		ret, err := f.Program.Run(&ebpf.RunOptions{Data: fr})
		if err != nil {
			t.Fatal(err)
		}
		want := uint32(xdpPass)
		if v == engine.Drop {
			want, drops = xdpDrop, drops+1
		}
		if ret != want {
			t.Errorf("%v port %d: program %d, engine %v", src, 995+i%120, ret, v)
		}
		if ret != before[i] {
			changed++
		}
	}
	t.Logf("%d probes, %d dropped, %d changed verdict with the update", len(probes), drops, changed)
	if changed == 0 {
		t.Fatal("no probe's verdict changed: the test does not exercise the update")
	}

	// A different rule, or a different small set, is a new program.
	if _, specC := compileRules(setsB, strings.Replace(updateRules, "hosts src", "hosts dst", 1)); specB.SameProgram(specC) {
		t.Error("a changed rule compiles to the same program")
	}
	if _, specD := compile(strings.Replace(setsB, "add small 192.0.2.0/24", "add small 198.51.100.0/24", 1)); specB.SameProgram(specD) {
		t.Error("a changed inlined set compiles to the same program")
	}
}
