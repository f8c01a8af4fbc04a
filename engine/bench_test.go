package engine_test

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"testing"

	"github.com/sluice-project/sluice/engine"
	"github.com/sluice-project/sluice/examples"
	"github.com/sluice-project/sluice/internal/benchmix"
	"github.com/sluice-project/sluice/packet"
	"github.com/sluice-project/sluice/report"
)

// referenceProgramForTest compiles the reference ruleset at time 0.
func referenceProgramForTest(tb testing.TB) *engine.Program {
	tb.Helper()
	rulesText, setsText := benchmix.ReferenceFiles(tb, "testdata")
	return compileFiles(tb, "testdata/reference.rules", rulesText, "testdata/reference.ipset", setsText, 0)
}

// rulesHitForTest is the number of rules of rep's first table that
// counted a packet.
func rulesHitForTest(rep *report.Report) int {
	hit := 0
	for _, c := range rep.Tables[0].Chains {
		for _, r := range c.Rules {
			if r.Packets > 0 {
				hit++
			}
		}
	}
	return hit
}

// compileFiles compiles an IPv4 ruleset with its sets at load time now.
func compileFiles(tb testing.TB, rulesName string, rulesText []byte, setsName string, setsText []byte, now int64) *engine.Program {
	tb.Helper()
	rs, sets := benchmix.Ruleset(tb, rulesName, rulesText, setsName, setsText, now)
	pr, err := engine.Compile(engine.Config{Rules4: rs, HZ: 250, InIface: "eth0"}, engine.NewState(sets, 250), now)
	if err != nil {
		tb.Fatal(err)
	}
	return pr
}

type capture struct {
	frames [][]byte
	ts     []int64
	link   packet.LinkType
}

// exampleCapture is the built-in example capture (benchmix.ExampleCapture).
func exampleCapture(tb testing.TB) capture {
	tb.Helper()
	e := benchmix.ExampleCapture(tb)
	return capture{frames: e.Frames, ts: e.TS, link: e.Link}
}

// TestZeroAllocs: Worker.Process allocates nothing on the example
// ruleset in steady state, and a flood of new sources costs no more than
// the hashlimit tables' amortized chunk growth.
func TestZeroAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("loads the example sets")
	}
	c := exampleCapture(t)
	pr := compileFiles(t, examples.Rules4Name, examples.Rules4, examples.SetsName, examples.Sets, c.ts[0])
	w := pr.NewWorker()
	pkts := benchmix.Decode(c.link, c.frames)
	allocs := testing.AllocsPerRun(3, func() {
		for i := range pkts {
			w.Process(&pkts[i], c.ts[i])
		}
	})
	if allocs != 0 {
		t.Errorf("example capture: %.1f allocations per run of %d packets", allocs, len(pkts))
	}
	// Fresh sources on every run. Fragments are left out: the IPv4
	// reassembly before INPUT (reasm.go) allocates its queues.
	const n = 50000
	var base [][]byte
	pk := benchmix.Decode(c.link, c.frames)
	for i := range pk {
		if !pk[i].IsFragment {
			base = append(base, c.frames[i])
		}
	}
	flood := benchmix.Decode(c.link, benchmix.RandomSources(c.link, base, 4*n))
	run := 0
	now := c.ts[len(c.ts)-1]
	allocs = testing.AllocsPerRun(3, func() {
		for i := run * n; i < (run+1)*n; i++ {
			now += 1000
			w.Process(&flood[i], now)
		}
		run++
	})
	// hashlimit grows its entry table one 4096-entry chunk at a time
	// until --hashlimit-htable-max: amortized, bounded, and nothing per
	// packet.
	if allocs/n > 1.0/1000 {
		t.Errorf("new sources: %.1f allocations per run of %d packets (%.4f per packet)", allocs, n, allocs/n)
	}
}

// benchProcess runs b.N packets of pkts through a worker of pr, the clock
// advancing 1µs per packet (a 1 Mpps flood for the rate matches).
func benchProcess(b *testing.B, pr *engine.Program, pkts []packet.Packet, t0 int64) {
	w := pr.NewWorker()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w.Process(&pkts[i%len(pkts)], t0+int64(i)*1000)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/packet")
}

// benchProcessBatch is benchProcess with ProcessBatch, MaxBatch packets
// at a time (the daemon's and replay's way).
func benchProcessBatch(b *testing.B, pr *engine.Program, pkts []packet.Packet, t0 int64) {
	w := pr.NewWorker()
	var ptrs [engine.MaxBatch]*packet.Packet
	var nows [engine.MaxBatch]int64
	var out [engine.MaxBatch]engine.Verdict
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += engine.MaxBatch {
		n := min(engine.MaxBatch, b.N-i)
		for k := 0; k < n; k++ {
			ptrs[k], nows[k] = &pkts[(i+k)%len(pkts)], t0+int64(i+k)*1000
		}
		w.ProcessBatch(ptrs[:n], nows[:n], out[:n], nil)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/packet")
}

func BenchmarkEngineReference(b *testing.B) {
	pr := referenceProgramForTest(b)
	pkts := benchmix.Decode(packet.LinkEthernet, benchmix.Reference())
	benchProcess(b, pr, pkts, 0)
}

// BenchmarkEngineFloor is the reference benchmark's harness and traffic
// through a raw PREROUTING chain with no rules: what every packet costs
// before any rule, the loop, the streaming of 8,000 pre-decoded packets
// and the traversal's fixed work (class, counters, policy).
func BenchmarkEngineFloor(b *testing.B) {
	const text = "*raw\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n"
	pr := compileFiles(b, "floor.rules", []byte(text), "floor.ipset", nil, 0)
	benchProcess(b, pr, benchmix.Decode(packet.LinkEthernet, benchmix.Reference()), 0)
}

func BenchmarkEngineReferenceBatch(b *testing.B) {
	pr := referenceProgramForTest(b)
	benchProcessBatch(b, pr, benchmix.Decode(packet.LinkEthernet, benchmix.Reference()), 0)
}

// millionForTest is the example capture's frames with 1M distinct
// random sources, decoded once per test binary.
func millionForTest(tb testing.TB) []packet.Packet { return benchmix.ExampleMillion(tb) }

// exampleProgramForTest compiles the example ruleset at the capture's
// first timestamp.
func exampleProgramForTest(tb testing.TB, c capture) *engine.Program {
	tb.Helper()
	return compileFiles(tb, examples.Rules4Name, examples.Rules4, examples.SetsName, examples.Sets, c.ts[0])
}

func BenchmarkEngineExample1M(b *testing.B) {
	c := exampleCapture(b)
	benchProcess(b, exampleProgramForTest(b, c), millionForTest(b), c.ts[0])
}

// BenchmarkEngineFloor1M is BenchmarkEngineFloor for the example
// benchmark: its million pre-decoded packets through an empty raw
// PREROUTING chain.
func BenchmarkEngineFloor1M(b *testing.B) {
	c := exampleCapture(b)
	const text = "*raw\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n"
	pr := compileFiles(b, "floor.rules", []byte(text), "floor.ipset", nil, c.ts[0])
	benchProcess(b, pr, millionForTest(b), c.ts[0])
}

func BenchmarkEngineExample1MBatch(b *testing.B) {
	c := exampleCapture(b)
	benchProcessBatch(b, exampleProgramForTest(b, c), millionForTest(b), c.ts[0])
}

func BenchmarkDecodeAndProcess(b *testing.B) {
	c := exampleCapture(b)
	pr := compileFiles(b, examples.Rules4Name, examples.Rules4, examples.SetsName, examples.Sets, c.ts[0])
	w := pr.NewWorker()
	d := packet.Decoder{Link: c.link}
	var p packet.Packet
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d.Decode(c.frames[i%len(c.frames)], &p)
		w.Process(&p, c.ts[0]+int64(i)*1000)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/packet")
}

// TestReferenceMix checks the reference policy does what its comments say
// on the benchmark's mix, so the benchmark measures real work.
func TestReferenceMix(t *testing.T) {
	pr := referenceProgramForTest(t)
	w := pr.NewWorker()
	pkts := benchmix.Decode(packet.LinkEthernet, benchmix.Reference())
	var v [5]int
	for i := range pkts {
		v[w.Process(&pkts[i], int64(i)*1000)]++
	}
	if v[engine.Accept] == 0 || v[engine.Drop] == 0 || v[engine.Malformed] != 0 {
		t.Errorf("verdicts %v", v)
	}
	rep := pr.Report(w)
	hit := rulesHitForTest(rep)
	if hit < 40 {
		t.Errorf("only %d rules matched anything", hit)
	}
	t.Logf("verdicts accept %d drop %d hotdrop %d; %d rules hit", v[engine.Accept], v[engine.Drop], v[engine.Hotdrop], hit)
}

// randomTraffic returns n IPv4 frames with random protocols (mostly
// TCP, UDP and ICMP), ports (biased to the ones the rulesets name), TCP
// flags, ICMP types and codes, TTLs, TOS, lengths, sources (some from the
// rulesets' sets and prefixes), broadcast destinations, fragments (first,
// non-first and the offset-8 "evil" one) and truncated transport headers.
func randomTraffic(seed uint64, n int) [][]byte {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	ports := []uint16{0, 19, 22, 53, 80, 123, 389, 443, 1900, 3702, 8080, 11211, 27015}
	port := func() uint16 {
		if rng.IntN(2) == 0 {
			return ports[rng.IntN(len(ports))]
		}
		return uint16(rng.Uint32())
	}
	srcs := []uint32{0x7f000001, 0xc6120001, 0xc6130203, 0xcb007142, 0xcb007132, 0xc0000282, 0x0a000001, 0x01012a2a, 0xc6336402}
	dst := netip.MustParseAddr("198.51.100.10")
	frames := make([][]byte, 0, n)
	for len(frames) < n {
		var sb [4]byte
		if rng.IntN(4) == 0 {
			binary.BigEndian.PutUint32(sb[:], srcs[rng.IntN(len(srcs))])
		} else {
			binary.BigEndian.PutUint32(sb[:], rng.Uint32())
		}
		src := netip.AddrFrom4(sb)
		payload := make([]byte, []int{0, 10, 60, 300, 600, 1100, 1400}[rng.IntN(7)]+rng.IntN(20))
		for i := range payload {
			payload[i] = byte(rng.IntN(4))
		}
		proto := []uint8{6, 6, 6, 17, 17, 1, 47, 0}[rng.IntN(8)]
		if proto == 0 {
			proto = uint8(rng.Uint32())
		}
		var l4 []byte
		switch proto {
		case 6:
			flags := uint8(rng.Uint32())
			if rng.IntN(2) == 0 {
				flags = []uint8{packet.TCPSyn, packet.TCPAck, packet.TCPAck | packet.TCPPsh, packet.TCPSyn | packet.TCPAck, 0, 0xff}[rng.IntN(6)]
			}
			var opts []byte
			if rng.IntN(2) == 0 {
				opts = []byte{2, 4, 5, 0xb4}
			}
			l4 = packet.BuildTCPWithOptions(port(), port(), flags, opts, payload)
		case 17:
			l4 = packet.BuildUDP(port(), port(), payload)
		case 1:
			l4 = packet.BuildICMP(uint8(rng.IntN(20)), uint8(rng.IntN(6)), rng.Uint32(), payload)
		default:
			l4 = payload
		}
		if rng.IntN(20) == 0 {
			l4 = l4[:rng.IntN(min(len(l4), 24)+1)] // truncated transport header
		}
		opts := []packet.BuildOpt{packet.WithTTL(uint8(rng.Uint32())), packet.WithTOS(uint8(rng.Uint32())), packet.WithID(rng.Uint32())}
		if rng.IntN(10) == 0 {
			opts = append(opts, packet.WithFragment([]uint16{0, 8, 16, 1480}[rng.IntN(4)], rng.IntN(2) == 0))
		}
		if rng.IntN(10) == 0 {
			opts = append(opts, packet.WithDstMAC([6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}))
		}
		frames = append(frames, packet.BuildIPv4(src, dst, proto, l4, opts...))
	}
	return frames
}

// checkSameAsSlowForTest runs pkts (step ns apart from t0) through fast
// and through slow (the same ruleset with shortcuts disabled) and fails
// at the first packet whose verdict or deciding rule differs, or when the
// counters differ at the end; it returns fast's report.
func checkSameAsSlowForTest(t *testing.T, fast, slow *engine.Program, pkts []packet.Packet, t0, step int64) *report.Report {
	t.Helper()
	wf, ws := fast.NewWorker(), slow.NewWorker()
	for i := range pkts {
		now := t0 + int64(i)*step
		vf, vs := wf.Process(&pkts[i], now), ws.Process(&pkts[i], now)
		_, rf := wf.LastRuleIndex()
		_, rs := ws.LastRuleIndex()
		if vf != vs || rf != rs {
			t.Fatalf("packet %d: verdict %v rule %d with the shortcuts, %v rule %d without", i, vf, rf, vs, rs)
		}
	}
	a, b := fast.Report(wf), slow.Report(ws)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("reports differ:\n%+v\n%+v", a, b)
	}
	return a
}

// TestSkipTablesExact: the skip tables and the prefilter change nothing.
// The traffic cases (trafficCasesForTest) run through a program with them
// and one without give the same verdict for every packet and the same
// counters for every rule.
func TestSkipTablesExact(t *testing.T) {
	for _, tc := range trafficCasesForTest(t) {
		t.Run(tc.name, func(t *testing.T) {
			fast := tc.compile(t)
			slow := tc.compile(t)
			engine.DisableSkip(slow)
			checkSameAsSlowForTest(t, fast, slow, tc.pkts, tc.t0, tc.step)
		})
	}
}

// trafficCase is a ruleset, its sets and traffic for it, step ns apart
// from t0.
type trafficCase struct {
	name                string
	rulesName, setsName string
	rulesText, setsText []byte
	pkts                []packet.Packet
	t0, step            int64
}

func (tc *trafficCase) compile(t *testing.T) *engine.Program {
	return compileFiles(t, tc.rulesName, tc.rulesText, tc.setsName, tc.setsText, tc.t0)
}

// trafficCasesForTest is the traffic the engine's shortcuts are checked
// on: the reference mix, the example capture with fresh random sources,
// random traffic through both rulesets, and the prefilter's ruleset,
// whose set group times out during its 4 s.
func trafficCasesForTest(t *testing.T) []trafficCase {
	rulesText, setsText := benchmix.ReferenceFiles(t, "testdata")
	c := exampleCapture(t)
	return []trafficCase{
		{"reference", "testdata/reference.rules", "testdata/reference.ipset", rulesText, setsText,
			benchmix.Decode(packet.LinkEthernet, benchmix.Reference()), 0, 1000},
		{"example", examples.Rules4Name, examples.SetsName, examples.Rules4, examples.Sets,
			benchmix.Decode(c.link, append(append([][]byte(nil), c.frames...), benchmix.RandomSources(c.link, c.frames, 20000)...)), c.ts[0], 1000},
		{"reference-random", "testdata/reference.rules", "testdata/reference.ipset", rulesText, setsText,
			benchmix.Decode(packet.LinkEthernet, randomTraffic(1, 20000)), 0, 1000},
		{"example-random", examples.Rules4Name, examples.SetsName, examples.Rules4, examples.Sets,
			benchmix.Decode(packet.LinkEthernet, randomTraffic(2, 20000)), c.ts[0], 1000},
		{"prefilter", "prefilter.rules", "prefilter.ipset", []byte(prefilterRules), []byte(prefilterSets),
			benchmix.Decode(packet.LinkEthernet, randomTraffic(7, 40000)), 0, 100_000},
	}
}
