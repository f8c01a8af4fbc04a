package engine_test

import (
	"net/netip"
	"reflect"
	"sync"
	"testing"

	"github.com/sluice-project/sluice/engine"
	"github.com/sluice-project/sluice/engine/jiffies"
	"github.com/sluice-project/sluice/internal/difftest"
	"github.com/sluice-project/sluice/packet"
)

// fuzzCases are the fuzz targets' rulesets: the kernel differential's
// generated cases for both families, which between them use every match
// and target sluice has, and its set cases (prefix sets with nomatch
// entries, tested first: the prefilter's lead group; port sets). Parsed
// once per process; each input compiles its program afresh, so that no
// state (recent lists, buckets, reassembly queues) carries from one input
// to the next and an input always does the same. (Not the example: its
// 120k prefixes take longer to compile than an input should take.)
var fuzzCases struct {
	once sync.Once
	ps   []*difftest.Parsed
	err  error
}

const (
	numFuzzCases    = 32
	numFuzzSetCases = 8
)

func fuzzProgram(tb testing.TB, which int) *engine.Program {
	fuzzCases.once.Do(func() {
		var cases []difftest.Case
		for seed := int64(1); seed <= numFuzzCases-numFuzzSetCases; seed++ {
			cases = append(cases, difftest.GenerateCase(seed))
		}
		for seed := int64(1); seed <= numFuzzSetCases; seed++ {
			c, _ := difftest.GenerateSetsCase(seed, 0)
			cases = append(cases, c)
		}
		for _, c := range cases {
			ps, err := difftest.Parse(c, jiffies.DefaultHZ, difftest.FrameStart)
			if err != nil {
				fuzzCases.err = err
				return
			}
			fuzzCases.ps = append(fuzzCases.ps, ps)
		}
	})
	if fuzzCases.err != nil {
		tb.Fatal(fuzzCases.err)
	}
	ps := fuzzCases.ps[which%len(fuzzCases.ps)]
	pr, err := engine.Compile(engine.Config{Rules4: ps.R4, Rules6: ps.R6, HZ: jiffies.DefaultHZ, InIface: "sl-b",
		LocalAddrs: []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")}},
		engine.NewState(ps.Sets, jiffies.DefaultHZ), difftest.FrameStart)
	if err != nil {
		tb.Fatal(err)
	}
	return pr
}

// fuzzSeeds adds the fuzz targets' seeds: frames of the example capture
// and of the differential's generators, spread over the rulesets.
func fuzzSeeds(f *testing.F) {
	c := exampleCapture(f)
	for i := 0; i < len(c.frames); i += len(c.frames) / 48 {
		f.Add(uint8(i%numFuzzCases), uint8(c.link), uint16(i), c.frames[i])
	}
	for seed := int64(1); seed < 6; seed++ {
		for i, fr := range difftest.GenerateFrames(seed, 8, true, true) {
			f.Add(uint8(seed), uint8(packet.LinkEthernet), uint16(i*1000), fr.Data)
		}
	}
	for seed := int64(1); seed <= numFuzzSetCases; seed++ {
		_, frames := difftest.GenerateSetsCase(seed, 6)
		for i, fr := range frames {
			f.Add(uint8(numFuzzCases-numFuzzSetCases+int(seed)-1), uint8(packet.LinkEthernet), uint16(i*1000), fr.Data)
		}
	}
}

// FuzzProcess: any bytes, decoded as any link type, go through rulesets
// that use every match sluice has without a panic, and each packet is
// counted exactly once, under one verdict. A malformed packet never
// panics the engine. (The seeds include the example capture's frames.)
func FuzzProcess(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, which, link uint8, dt uint16, frame []byte) {
		pr := fuzzProgram(t, int(which))
		w := pr.NewWorker()
		d := packet.Decoder{Link: packet.LinkType(link % 4), IPv6ExtHdrLimit: int(dt % 3 * 6)}
		var p packet.Packet
		d.Decode(frame, &p)
		// Twice, some time apart: the second meets the state the
		// first left (recent lists, buckets, reassembly queues).
		now := difftest.FrameStart + int64(dt)*1e6
		v1 := w.Process(&p, now)
		d.Decode(frame, &p)
		v2 := w.Process(&p, now+int64(dt)*1e7)
		if v1 > engine.NotFiltered || v2 > engine.NotFiltered {
			t.Fatalf("verdicts %d, %d", v1, v2)
		}
		rep := pr.Report(w)
		if rep.Packets != 2 || rep.Packets != rep.Accepted+rep.Dropped+rep.Malformed {
			t.Fatalf("report %d packets: %d accepted, %d dropped, %d malformed", rep.Packets, rep.Accepted, rep.Dropped, rep.Malformed)
		}
	})
}

// FuzzShortcutsExact: the skip tables and the prefilter are exact on any
// input. Each frame goes twice through a program and through the same
// ruleset with both turned off (DisableSkip), and the verdicts, the
// deciding rules and every counter must agree.
func FuzzShortcutsExact(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, which, link uint8, dt uint16, frame []byte) {
		fast, slow := fuzzProgram(t, int(which)), fuzzProgram(t, int(which))
		engine.DisableSkip(slow)
		wf, ws := fast.NewWorker(), slow.NewWorker()
		d := packet.Decoder{Link: packet.LinkType(link % 4), IPv6ExtHdrLimit: int(dt % 3 * 6)}
		var p packet.Packet
		now := difftest.FrameStart + int64(dt)*1e6
		for i := 0; i < 2; i++ {
			d.Decode(frame, &p)
			vf := wf.Process(&p, now)
			d.Decode(frame, &p)
			vs := ws.Process(&p, now)
			_, rf := wf.LastRuleIndex()
			_, rs := ws.LastRuleIndex()
			if vf != vs || rf != rs {
				t.Fatalf("pass %d: verdict %v rule %d with the shortcuts, %v rule %d without", i, vf, rf, vs, rs)
			}
			now += int64(dt) * 1e7
		}
		if a, b := fast.Report(wf), slow.Report(ws); !reflect.DeepEqual(a, b) {
			t.Fatalf("reports differ:\n%+v\n%+v", a, b)
		}
	})
}
