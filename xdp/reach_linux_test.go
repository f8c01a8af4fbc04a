//go:build linux

package xdp

import (
	"fmt"
	"maps"
	"math/rand"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/sluice-project/sluice/engine"
	"github.com/sluice-project/sluice/engine/jiffies"
	"github.com/sluice-project/sluice/internal/testnet"
	"github.com/sluice-project/sluice/packet"
	"github.com/sluice-project/sluice/rules"
)

// diffCombined is the combined tier in a test: timed frames go through
// the engine alone (the reference) and through the program compiled with
// RateLimitsAuto and TestClock, fed the reference's jiffies for every
// frame; a frame the program hands over is resumed at its site by a
// second engine at the same time. Every frame's verdict, and every rule
// and policy counter of the program plus the second engine after every
// frame, must be the reference's. Both engines and the program's
// buckets start at load.
func diffCombined(t *testing.T, rs4, rs6 *rules.Ruleset, frames [][]byte, times []int64, load int64) (*Spec, map[string]int) {
	t.Helper()
	return diffCombinedWith(t, combinedEnv{rs4: rs4, rs6: rs6, cfg: engine.Config{InIface: "eth0"}}, frames, times, load)
}

// combinedEnv is what diffCombinedWith runs: the rulesets, the engines'
// configuration without them (the program gets its interface and local
// addresses too), and newState, when set, the state for each engine (nil:
// a fresh one each). The engines share the rulesets, and so the sets
// they bind: only sets that count packets would notice.
type combinedEnv struct {
	rs4, rs6 *rules.Ruleset
	cfg      engine.Config
	newState func() *engine.State
}

func diffCombinedWith(t *testing.T, env combinedEnv, frames [][]byte, times []int64, load int64) (*Spec, map[string]int) {
	t.Helper()
	rs4, rs6 := env.rs4, env.rs6
	opts := CompileOptions{InIface: env.cfg.InIface, LocalAddrs: env.cfg.LocalAddrs,
		RateLimits: RateLimitsAuto, TestClock: true, XSKQueues: 1}
	// As the daemon loads the combined tier: a rule the verifier gives
	// up on is left to userspace (LoadDemoting).
	spec, f, userspace, err := LoadDemoting(func(us map[*rules.Rule]string) (*Spec, error) {
		o := opts
		o.Userspace = us
		return Compile(rs4, rs6, o)
	}, func(s *Spec) (*Filter, error) { return s.Load() })
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for r := range userspace {
		t.Logf("line %d left in userspace: the verifier gave up on it", r.Line)
	}
	clock := jiffies.Clock{HZ: jiffies.DefaultHZ}
	timed := spec.RateLimits != nil && len(spec.RateLimits.LimitRules)+len(spec.RateLimits.Tables) > 0
	if timed {
		if err := f.ResetRateLimits(clock.Jiffies(load)); err != nil {
			t.Fatal(err)
		}
	}
	state := func() *engine.State {
		if env.newState == nil {
			return nil
		}
		return env.newState()
	}
	cfg := env.cfg
	cfg.Rules4, cfg.Rules6 = rs4, rs6
	ref, err := engine.Compile(cfg, state(), load)
	if err != nil {
		t.Fatal(err)
	}
	user, err := engine.Compile(cfg, state(), load)
	if err != nil {
		t.Fatal(err)
	}
	sites, err := spec.ResumeSites(user)
	if err != nil {
		t.Fatal(err)
	}
	wr, wu := ref.NewWorker(), user.NewWorker()
	var dec packet.Decoder
	var p, q packet.Packet
	out := make([]byte, 4096)
	prev := make([]uint64, spec.NumCounters())
	bySite := map[string]int{}
	bad := 0
	for i, fr := range frames {
		dec.Decode(fr, &p)
		v := wr.Process(&p, times[i])
		if timed {
			if err := f.SetTestClock(clock.Jiffies(times[i])); err != nil {
				t.Fatal(err)
			}
		}
		ro := &ebpf.RunOptions{Data: fr, DataOut: out}
		ret, err := f.Program.Run(ro)
		if err != nil {
			t.Fatal(err)
		}
		cur, err := f.ReadCounters()
		if err != nil {
			t.Fatal(err)
		}
		fail := func(format string, a ...any) {
			if bad++; bad <= 10 {
				t.Errorf("frame %d at jiffy %d (engine %v): %s\n% x", i, clock.Jiffies(times[i]), v, fmt.Sprintf(format, a...), fr)
			}
		}
		if cur[StatFallback] != prev[StatFallback] {
			// Without a socket in the XSKMAP, bpf_redirect_map passes.
			site, ok := SiteFromMeta(ro.DataOut)
			if ret != xdpPass || !ok || len(ro.DataOut) != len(fr)+4 || site >= len(sites) {
				fail("fallback returned %d with %d bytes out", ret, len(ro.DataOut))
			} else {
				bySite[spec.Fallback[site].Reason]++
				dec.Decode(ro.DataOut[4:], &q)
				if got := wu.ProcessFrom(&q, times[i], sites[site]); got != v {
					fail("resumed at site %d (%s): %v", site, spec.Fallback[site].Reason, got)
				}
			}
		} else {
			want := uint32(xdpPass)
			if v == engine.Drop || v == engine.Hotdrop || v == engine.Malformed {
				want = xdpDrop
			}
			if st := verdictStat[v]; ret != want || cur[st] != prev[st]+1 {
				fail("program returned %d, statistic %d moved %d", ret, st, cur[st]-prev[st])
			}
		}
		eng, chains := flat(ref.Report(wr))
		usr, _ := flat(user.Report(wu))
		prog, _ := flat(spec.Report(cur, rs4, rs6))
		for k := range eng {
			if eng[k] != prog[k]+usr[k] {
				fail("counter %d (%s): engine %d, program %d + resumed %d", k, chains[k], eng[k], prog[k], usr[k])
				break
			}
		}
		prev = cur
	}
	if bad > 0 {
		t.Fatalf("%d of %d frames differ", bad, len(frames))
	}
	return spec, bySite
}

// floodFrames builds n timed frames for the example ruleset: SYN floods
// to 80/443 from two /24s and scattered sources, pings (echo requests
// limited to 20/s, burst 50), DNS queries (the per-source hashlimit,
// after the bpf rule), SSH SYNs (the recent sites) and plain ACKs, at gaps of
// 0.1 to 20 ms so that buckets both run dry and refill.
func floodFrames(n int, seed, start int64) ([][]byte, []int64) {
	rng := rand.New(rand.NewSource(seed))
	dst := netip.MustParseAddr("192.168.1.1")
	gaps := []int64{1e5, 5e5, 1e6, 2e7}
	var frames [][]byte
	var times []int64
	now := start
	for range n {
		now += gaps[rng.Intn(len(gaps))]
		src := netip.AddrFrom4([4]byte{45, 10, byte(rng.Intn(2)), byte(rng.Intn(256))})
		if rng.Intn(4) == 0 {
			src = netip.AddrFrom4([4]byte{8, byte(rng.Intn(8)), byte(rng.Intn(256)), 1})
		}
		var fr []byte
		switch k := rng.Intn(10); {
		case k < 5:
			port := []uint16{80, 443}[rng.Intn(2)]
			fr = packet.BuildIPv4(src, dst, packet.ProtoTCP, packet.BuildTCP(uint16(1024+rng.Intn(60000)), port, 0x02, make([]byte, 20)))
		case k < 7:
			fr = packet.BuildIPv4(src, dst, packet.ProtoICMP, packet.BuildICMP(8, 0, rng.Uint32(), nil))
		case k < 8:
			fr = packet.BuildIPv4(src, dst, packet.ProtoUDP, packet.BuildUDP(uint16(1024+rng.Intn(60000)), 53, make([]byte, 12)))
		case k < 9:
			fr = packet.BuildIPv4(src, dst, packet.ProtoTCP, packet.BuildTCP(uint16(1024+rng.Intn(60000)), 22, 0x02, make([]byte, 20)))
		default:
			fr = packet.BuildIPv4(src, dst, packet.ProtoTCP, packet.BuildTCP(uint16(1024+rng.Intn(60000)), 443, 0x10, nil))
		}
		frames = append(frames, fr)
		times = append(times, now)
	}
	return frames, times
}

// TestCombinedExample runs the example ruleset in the combined tier: the
// per-/24 SYN hashlimit, the DNS hashlimit and the echo-request limit run
// in the program (no fallback site reaches them: the bpf rule before the
// DNS one completes in XDP); with the buckets in BPF maps and every
// fallback frame resumed in userspace, every verdict and counter is the
// engine's alone.
func TestCombinedExample(t *testing.T) {
	testnet.RequireForTest(t)
	rs := exampleFull(t)
	const load = int64(1e9)
	frames, times := floodFrames(4000, 1, load)
	// The capture too, after the floods.
	for _, fr := range exampleFrames(t) {
		frames = append(frames, fr)
		times = append(times, times[len(times)-1]+1e6)
	}
	spec, bySite := diffCombined(t, rs, nil, frames, times, load)
	modes := map[string]string{}
	for _, ri := range spec.Rules {
		for _, m := range ri.Rule.Matches {
			switch h := m.(type) {
			case *rules.Hashlimit:
				modes[h.Cfg.Name] = ri.Mode
			case *rules.Limit:
				modes["limit"] = ri.Mode
			}
		}
	}
	want := map[string]string{"syn_per_24": "xdp", "limit": "xdp", "dns_per_src": "xdp"}
	if !maps.Equal(modes, want) {
		t.Errorf("modes %v, want %v", modes, want)
	}
	if len(spec.RateLimits.LimitRules) != 1 || len(spec.RateLimits.Tables) != 2 {
		t.Errorf("the program holds %d limit buckets and %d tables, want 1 and 2", len(spec.RateLimits.LimitRules), len(spec.RateLimits.Tables))
	}
	v, _ := verdicts(t, rs, frames, times, load)
	t.Logf("verdicts %v, fell back %v", v, bySite)
	if bySite["recent keeps its address lists in userspace"] == 0 {
		t.Error("no SSH SYN fell back at the recent site")
	}
	// The floods must exceed both XDP rate limits: count the rule hits
	// of a reference run.
	if v[engine.Drop] == 0 || v[engine.Accept] == 0 {
		t.Errorf("verdicts %v: want both drops and accepts", v)
	}
}

// TestVLANStacks runs frames with 0 to 6 VLAN tags (802.1Q and 802.1ad,
// priority tags and non-zero ids in every position, and stacks cut
// short) through the program and the engine: the program parses any
// depth, as packet.Decoder does (the first non-zero id makes the frame
// not filtered; priority tags only are filtered like an untagged frame),
// so no frame falls back.
func TestVLANStacks(t *testing.T) {
	testnet.RequireForTest(t)
	rs := parse4(t, `*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -p udp -m udp --dport 53 -j DROP
-A PREROUTING -p tcp -m tcp --dport 80 -j ACCEPT
-A PREROUTING -s 10.0.0.0/8 -j DROP
COMMIT
`)
	rs6 := parse6(t, `*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -p udp -m udp --dport 53 -j DROP
COMMIT
`)
	src, dst := netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("192.168.1.1")
	src6, dst6 := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	bodies := []func(opts ...packet.BuildOpt) []byte{
		func(o ...packet.BuildOpt) []byte {
			return packet.BuildIPv4(src, dst, packet.ProtoUDP, packet.BuildUDP(1, 53, nil), o...)
		},
		func(o ...packet.BuildOpt) []byte {
			return packet.BuildIPv4(src, dst, packet.ProtoTCP, packet.BuildTCP(1, 80, 0x02, nil), o...)
		},
		func(o ...packet.BuildOpt) []byte {
			return packet.BuildIPv6(src6, dst6, packet.ProtoUDP, packet.BuildUDP(1, 53, nil), o...)
		},
	}
	var frames [][]byte
	rng := rand.New(rand.NewSource(3))
	nonZero := map[bool]int{}
	for depth := 0; depth <= 6; depth++ {
		// Every pattern of zero / non-zero ids for this depth (up to
		// 2^6), each tag 802.1Q or 802.1ad at random.
		for pat := 0; pat < 1<<depth; pat++ {
			var opts []packet.BuildOpt
			for k := 0; k < depth; k++ {
				id := uint16(0)
				if pat>>k&1 == 1 {
					id = uint16(1 + rng.Intn(4094))
				}
				if rng.Intn(2) == 0 {
					opts = append(opts, packet.WithVLAN(id))
				} else {
					opts = append(opts, packet.WithQinQ(id))
				}
			}
			nonZero[pat != 0]++
			for _, b := range bodies {
				fr := b(opts...)
				frames = append(frames, fr)
				if depth > 0 {
					// Cut inside the last tag, and right after it.
					frames = append(frames, fr[:packet.EthernetMinSize+4*depth-2], fr[:packet.EthernetMinSize+4*depth])
				}
			}
		}
	}
	spec, bySite := diffBoth(t, rs, rs6, CompileOptions{InIface: "eth0"}, frames)
	if len(spec.Fallback) != 0 || len(bySite) != 0 {
		t.Errorf("fallback sites %+v, fell back %v", spec.Fallback, bySite)
	}
	// The engine's verdicts cover each case: not filtered (a non-zero
	// id), dropped, accepted and malformed (cut short).
	st := engine.NewState(nil, jiffies.DefaultHZ)
	pr, err := engine.Compile(engine.Config{Rules4: rs, Rules6: rs6, InIface: "eth0"}, st, 0)
	if err != nil {
		t.Fatal(err)
	}
	w := pr.NewWorker()
	var dec packet.Decoder
	var p packet.Packet
	n := map[engine.Verdict]int{}
	for _, fr := range frames {
		dec.Decode(fr, &p)
		n[w.Process(&p, 0)]++
	}
	for _, v := range []engine.Verdict{engine.NotFiltered, engine.Drop, engine.Accept, engine.Malformed} {
		if n[v] == 0 {
			t.Errorf("no frame judged %v (verdicts %v)", v, n)
		}
	}
	t.Logf("%d frames (%v with/without a non-zero id), verdicts %v", len(frames), nonZero, n)
}
