//go:build linux

package xdp

import (
	"math/rand"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/sluice-project/sluice/engine"
	"github.com/sluice-project/sluice/engine/hashlimit"
	"github.com/sluice-project/sluice/engine/jiffies"
	"github.com/sluice-project/sluice/internal/testnet"
	"github.com/sluice-project/sluice/packet"
	"github.com/sluice-project/sluice/rules"
)

// diffRate runs timed frames through the engine (compiled at packet time
// load) and through the program compiled with RateLimitsXDP and
// TestClock, feeding the program the engine's jiffies for every frame,
// and requires the same action, statistic and rule and policy counters
// after every frame.
func diffRate(t *testing.T, rs *rules.Ruleset, frames [][]byte, times []int64, load int64) *Spec {
	t.Helper()
	opts := CompileOptions{InIface: "eth0", RateLimits: RateLimitsXDP, TestClock: true}
	spec, err := Compile(rs, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, ri := range spec.Rules {
		if ri.Mode == "fallback" {
			t.Fatalf("line %d falls back: %s", ri.Rule.Line, ri.Reason)
		}
	}
	f, err := spec.Load()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	clock := jiffies.Clock{HZ: jiffies.DefaultHZ}
	if err := f.ResetRateLimits(clock.Jiffies(load)); err != nil {
		t.Fatal(err)
	}
	st := engine.NewState(nil, jiffies.DefaultHZ)
	pr, err := engine.Compile(engine.Config{Rules4: rs, InIface: "eth0"}, st, load)
	if err != nil {
		t.Fatal(err)
	}
	w := pr.NewWorker()
	var dec packet.Decoder
	var p packet.Packet
	out := make([]byte, 4096)
	prev := make([]uint64, spec.NumCounters())
	bad := 0
	for i, fr := range frames {
		dec.Decode(fr, &p)
		v := w.Process(&p, times[i])
		if err := f.SetTestClock(clock.Jiffies(times[i])); err != nil {
			t.Fatal(err)
		}
		ret, err := f.Program.Run(&ebpf.RunOptions{Data: fr, DataOut: out})
		if err != nil {
			t.Fatal(err)
		}
		cur, err := f.ReadCounters()
		if err != nil {
			t.Fatal(err)
		}
		want := uint32(xdpPass)
		if v == engine.Drop || v == engine.Hotdrop || v == engine.Malformed {
			want = xdpDrop
		}
		st := verdictStat[v]
		eng, _ := flat(pr.Report(w))
		prog, _ := flat(spec.Report(cur, rs, nil))
		if ret != want || cur[st] != prev[st]+1 || cur[StatFallback] != 0 || !slices.Equal(eng, prog) {
			if bad++; bad <= 10 {
				t.Errorf("frame %d at jiffy %d: engine %v, program returned %d (stat %d moved %d)\nengine  %v\nprogram %v\n% x",
					i, clock.Jiffies(times[i]), v, ret, st, cur[st]-prev[st], eng, prog, fr)
			}
		}
		prev = cur
	}
	if bad > 0 {
		t.Fatalf("%d of %d frames differ", bad, len(frames))
	}
	// The metrics' view: every table's live entries and table-full
	// drops, as the engine's tables report them.
	got, err := f.HashlimitStats()
	if err != nil {
		t.Fatal(err)
	}
	want := st.HashlimitStats()
	slices.SortFunc(got, func(a, b hashlimit.TableStats) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(want, func(a, b hashlimit.TableStats) int { return strings.Compare(a.Name, b.Name) })
	if !slices.Equal(got, want) {
		t.Errorf("hashlimit stats:\nprogram %+v\nengine  %+v", got, want)
	}
	return spec
}

// verdicts counts the engine's verdicts over frames, to check a test
// really exercises both sides of its limits.
func verdicts(t *testing.T, rs *rules.Ruleset, frames [][]byte, times []int64, load int64) (map[engine.Verdict]int, int) {
	st := engine.NewState(nil, jiffies.DefaultHZ)
	pr, err := engine.Compile(engine.Config{Rules4: rs, InIface: "eth0"}, st, load)
	if err != nil {
		t.Fatal(err)
	}
	w := pr.NewWorker()
	var dec packet.Decoder
	var p packet.Packet
	n := map[engine.Verdict]int{}
	for i, fr := range frames {
		dec.Decode(fr, &p)
		n[w.Process(&p, times[i])]++
	}
	full := 0
	for _, ts := range st.HashlimitStats() {
		full += int(ts.FullDrops) // table-full hotdrops
	}
	return n, full
}

const rateLimitRules = `*filter
:INPUT ACCEPT [0:0]
:LIM - [0:0]
-A INPUT -p udp -m limit --limit 3/sec --limit-burst 5 -m limit --limit 2/sec --limit-burst 4 -j ACCEPT
-A INPUT -p udp -j DROP
-A INPUT -p tcp -m limit --limit 1/hour --limit-burst 119 -j ACCEPT
-A INPUT -p tcp -j DROP
-A INPUT -p icmp -j LIM
-A INPUT -p icmp -s 10.0.0.0/8 -j LIM
-A INPUT -p icmp -j ACCEPT
-A INPUT -s 10.0.0.0/8,0.0.0.0/0 -m limit --limit 10000/sec --limit-burst 2 -j ACCEPT
-A INPUT -j DROP
-A LIM -m limit --limit 50/sec --limit-burst 3 -j RETURN
-A LIM -j DROP
COMMIT
`

// timedFrames builds n frames from mk with increasing times: gaps drawn
// from gaps (ns), so that buckets both run dry and refill.
func timedFrames(n int, seed int64, start int64, gaps []int64, mk func(rng *rand.Rand) []byte) ([][]byte, []int64) {
	rng := rand.New(rand.NewSource(seed))
	var frames [][]byte
	var times []int64
	now := start
	for len(frames) < n {
		now += gaps[rng.Intn(len(gaps))]
		frames = append(frames, mk(rng))
		times = append(times, now)
	}
	return frames, times
}

func mixedFrame(rng *rand.Rand) []byte {
	srcs := []string{"10.0.0.1", "10.0.0.2", "10.0.1.1", "10.1.0.1", "192.0.2.1", "192.0.2.77", "198.51.100.3", "203.0.113.9"}
	dsts := []string{"192.168.1.7", "192.168.1.8", "192.168.7.1"}
	ports := []uint16{22, 53, 80, 443, 1000, 40000}
	src := netip.MustParseAddr(srcs[rng.Intn(len(srcs))])
	dst := netip.MustParseAddr(dsts[rng.Intn(len(dsts))])
	sp, dp := ports[rng.Intn(len(ports))], ports[rng.Intn(len(ports))]
	payload := make([]byte, rng.Intn(4)*300)
	switch rng.Intn(7) {
	case 0, 1:
		return packet.BuildIPv4(src, dst, packet.ProtoUDP, packet.BuildUDP(sp, dp, payload))
	case 2, 3:
		return packet.BuildIPv4(src, dst, packet.ProtoTCP, packet.BuildTCP(sp, dp, packet.TCPSyn, payload))
	case 4:
		return packet.BuildIPv4(src, dst, packet.ProtoICMP, packet.BuildICMP(8, 0, 0, payload))
	case 5:
		// ESP keyed by its SPI; AH by the SPI at offset 4, and a short
		// AH header whose "ports" are beyond the datagram (hotdrop).
		spi := []byte{0, 0, byte(rng.Intn(3)), 1, 0, 0, 0, 0}
		return packet.BuildIPv4(src, dst, 50, append(spi, payload...))
	default:
		ah := []byte{0, 1, 0, 0, 0, 0, byte(rng.Intn(3)), 1}
		return packet.BuildIPv4(src, dst, 51, ah[:4+rng.Intn(2)*4])
	}
}

// TestRateLimitLimitDiff: -m limit in XDP, including the u32 overflow
// quirk of 1/hour burst 119 (7 packets, not 119), a bucket shared by the
// two inlined copies of a user chain, two limits in one rule and the two
// rules a comma list expands to (a bucket each, as the kernel's), and
// refills across hours.
func TestRateLimitLimitDiff(t *testing.T) {
	testnet.RequireForTest(t)
	rs := parse4(t, rateLimitRules)
	ms := int64(1e6)
	gaps := []int64{0, 0, 1 * ms, 3 * ms, 4 * ms, 20 * ms, 150 * ms, 400 * ms, 2000 * ms}
	frames, times := timedFrames(4000, 1, 0, gaps, mixedFrame)
	// Then TCP frames an hour and more apart, and back to back.
	tcp := packet.BuildIPv4(netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("192.168.1.7"), packet.ProtoTCP,
		packet.BuildTCP(1, 2, packet.TCPSyn, nil))
	now := times[len(times)-1]
	for i := 0; i < 300; i++ {
		switch i % 30 {
		case 0:
			now += 3600e9 + int64(i)*1e9
		case 15:
			now += 900e9
		default:
			now += 1e6
		}
		frames, times = append(frames, tcp), append(times, now)
	}
	spec := diffRate(t, rs, frames, times, 0)
	if spec.RateLimits == nil || len(spec.RateLimits.LimitRules) != 6 {
		t.Fatalf("rate limits %+v, want 6 buckets", spec.RateLimits)
	}
	for _, b := range spec.RateLimits.LimitRules {
		if strings.Contains(b.Rule.Text, "1/hour") && b.CreditCap/b.Cost != 7 {
			t.Fatalf("1/hour burst 119 allows %d, want 7", b.CreditCap/b.Cost)
		}
	}
	n, _ := verdicts(t, rs, frames, times, 0)
	if n[engine.Accept] == 0 || n[engine.Drop] == 0 {
		t.Fatalf("verdicts %v: both sides of the limits not exercised", n)
	}
}

// TestRateLimitLimitWrap starts the buckets just below 2^32 jiffies and
// leaves exactly 2^25 jiffies idle, where (now-prev)*128 wraps to 0 in u32.
func TestRateLimitLimitWrap(t *testing.T) {
	testnet.RequireForTest(t)
	rs := parse4(t, `*filter
:INPUT ACCEPT [0:0]
-A INPUT -m limit --limit 3/sec --limit-burst 5 -j ACCEPT
-A INPUT -j DROP
COMMIT
`)
	tick := int64(4e6) // one jiffy at HZ 250
	load := int64(0xFFFFFFF0) * tick
	udp := packet.BuildIPv4(netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("192.168.1.7"), packet.ProtoUDP, packet.BuildUDP(1, 2, nil))
	var frames [][]byte
	var times []int64
	at := func(j int64, n int) {
		for i := 0; i < n; i++ {
			frames, times = append(frames, udp), append(times, load+j*tick)
		}
	}
	at(0, 7)
	at(0x43, 2) // across 2^32: 83 jiffies short of a token, then
	at(0x44, 2)
	at(200, 8)
	at(200+1<<25, 3)   // refill wraps to 0: still limited
	at(200+1<<25+1, 2) // one jiffy later: 128 credits
	at(400+2<<25-1, 6) // 2^25-1 idle jiffies: full
	diffRate(t, rs, frames, times, load)
}

const hashlimitRules = `*filter
:INPUT ACCEPT [0:0]
:HL - [0:0]
-A INPUT -p udp -m hashlimit --hashlimit-upto 5/sec --hashlimit-burst 3 --hashlimit-mode srcip --hashlimit-name a --hashlimit-htable-size 1 --hashlimit-htable-max 4 --hashlimit-htable-expire 2000 --hashlimit-htable-gcinterval 500 -j ACCEPT
-A INPUT -p udp -m hashlimit --hashlimit-above 2/sec --hashlimit-burst 1 --hashlimit-mode dstip --hashlimit-name a -j DROP
-A INPUT -p udp -j DROP
-A INPUT -p tcp -m hashlimit --hashlimit-above 10/sec --hashlimit-burst 2 --hashlimit-mode srcip,dstport --hashlimit-srcmask 24 --hashlimit-name b --hashlimit-htable-size 1 --hashlimit-htable-max 8 -j DROP
-A INPUT -p tcp -m hashlimit --hashlimit-upto 1kb/s --hashlimit-burst 2kb --hashlimit-mode dstip --hashlimit-name d --hashlimit-htable-size 1 --hashlimit-htable-max 3 --hashlimit-htable-expire 3000 -j ACCEPT
-A INPUT -p tcp -j DROP
-A INPUT -j HL
-A INPUT -s 10.0.0.0/8 -j HL
-A INPUT -j ACCEPT
-A HL -m hashlimit --hashlimit-upto 2/sec --hashlimit-burst 2 --hashlimit-mode srcip,srcport,dstip,dstport --hashlimit-dstmask 16 --hashlimit-srcmask 31 --hashlimit-name c --hashlimit-htable-size 1 --hashlimit-htable-max 6 --hashlimit-htable-expire 1000 --hashlimit-htable-gcinterval 300 -j RETURN
-A HL -j DROP
COMMIT
`

// TestRateLimitHashlimitDiff: -m hashlimit in XDP: upto and above (which
// spends tokens), srcip/dstip/ports with masks, ESP and AH keys, the
// hotdrop of unreadable ports, a table shared by two rules with
// different modes, byte mode, small htable-max hitting table-full
// (hotdrop) and expiry and GC freeing entries again.
func TestRateLimitHashlimitDiff(t *testing.T) {
	testnet.RequireForTest(t)
	rs := parse4(t, hashlimitRules)
	ms := int64(1e6)
	gaps := []int64{0, 0, 0, 0, 1 * ms, 4 * ms, 8 * ms, 30 * ms, 100 * ms, 300 * ms, 700 * ms, 1500 * ms, 2600 * ms}
	for seed := int64(1); seed <= 3; seed++ {
		frames, times := timedFrames(5000, seed, seed*12345e6, gaps, mixedFrame)
		spec := diffRate(t, rs, frames, times, seed*1000e6)
		if len(spec.RateLimits.Tables) != 4 {
			t.Fatalf("%d tables in XDP, want 4", len(spec.RateLimits.Tables))
		}
		n, full := verdicts(t, rs, frames, times, seed*1000e6)
		if n[engine.Hotdrop] == 0 || n[engine.Drop] == 0 || n[engine.Accept] == 0 || full == 0 {
			t.Fatalf("verdicts %v, %d table-full: hotdrop, table full, drop and accept not all exercised", n, full)
		}
		t.Logf("seed %d: %v, %d of the hotdrops table-full; %d instructions", seed, n, full, spec.Instructions())
	}
}

// TestRateLimitUserspaceDefault: without RateLimitsXDP both matches stay
// fallback sites.
func TestRateLimitUserspaceDefault(t *testing.T) {
	spec, err := Compile(parse4(t, hashlimitRules), nil, CompileOptions{InIface: "eth0"})
	if err != nil {
		t.Fatal(err)
	}
	if spec.RateLimits != nil {
		t.Fatal("rate-limit maps without RateLimitsXDP")
	}
	for _, ri := range spec.Rules {
		if strings.Contains(ri.Rule.Text, "hashlimit") && ri.Mode != "fallback" {
			t.Fatalf("line %d: mode %s", ri.Rule.Line, ri.Mode)
		}
	}
}

// TestRateLimitKernelJiffies loads a program with the real clock.
func TestRateLimitKernelJiffies(t *testing.T) {
	testnet.RequireForTest(t)
	j, err := KernelJiffies()
	if err != nil || j == 0 {
		t.Fatalf("KernelJiffies = %d, %v", j, err)
	}
	raw := strings.Replace(strings.Replace(rateLimitRules, "*filter", "*raw", 1), ":INPUT ACCEPT", ":PREROUTING ACCEPT", 1)
	raw = strings.ReplaceAll(raw, "-A INPUT", "-A PREROUTING")
	spec, err := Compile(parse4(t, hashlimitRules+raw), nil,
		CompileOptions{InIface: "eth0", RateLimits: RateLimitsXDP})
	if err != nil {
		t.Fatal(err)
	}
	f, err := spec.Load()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Program.Run(&ebpf.RunOptions{Data: mixedFrame(rand.New(rand.NewSource(1)))}); err != nil {
		t.Fatal(err)
	}
}

// TestRateLimitCarryOver replaces a program with one compiled from a
// changed ruleset (LoadCarrying): the unchanged hashlimit table and limit
// rule continue from the previous program's state instead of granting a
// fresh burst, as a program loaded from scratch does.
func TestRateLimitCarryOver(t *testing.T) {
	testnet.RequireForTest(t)
	const text = `*raw
:PREROUTING ACCEPT [0:0]
-A PREROUTING -p udp -m udp --dport 1 -m hashlimit --hashlimit-above 1/min --hashlimit-burst 3 --hashlimit-mode srcip --hashlimit-name hl -j DROP
-A PREROUTING -p udp -m udp --dport 2 -m limit --limit 1/min --limit-burst 3 -j ACCEPT
-A PREROUTING -p udp -m udp --dport 2 -j DROP
COMMIT
`
	opts := CompileOptions{InIface: "eth0", RateLimits: RateLimitsXDP, TestClock: true, HZ: 250}
	compile := func(text string) *Spec {
		spec, err := Compile(parse4(t, text), nil, opts)
		if err != nil {
			t.Fatal(err)
		}
		return spec
	}
	src, dst := netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("10.0.0.1")
	run := func(f *Filter, dport uint16) uint32 {
		t.Helper()
		ret, err := f.Program.Run(&ebpf.RunOptions{Data: packet.BuildIPv4(src, dst, packet.ProtoUDP, packet.BuildUDP(4000, dport, []byte("x")))})
		if err != nil {
			t.Fatal(err)
		}
		return ret
	}
	f1, err := compile(text).Load()
	if err != nil {
		t.Fatal(err)
	}
	defer f1.Close()
	if err := f1.SetTestClock(1000); err != nil {
		t.Fatal(err)
	}
	for _, dport := range []uint16{1, 2} {
		var got []uint32
		for range 5 {
			got = append(got, run(f1, dport))
		}
		if want := []uint32{xdpPass, xdpPass, xdpPass, xdpDrop, xdpDrop}; !slices.Equal(got, want) {
			t.Fatalf("port %d: verdicts %v, want %v (burst of 3)", dport, got, want)
		}
	}
	changed := compile(strings.Replace(text, "COMMIT", "-A PREROUTING -p udp -m udp --dport 9 -j DROP\nCOMMIT", 1))
	for _, tc := range []struct {
		name string
		prev *Filter
		want uint32
	}{{"fresh", nil, xdpPass}, {"carried", f1, xdpDrop}} {
		f2, err := changed.LoadCarrying(nil, nil, tc.prev)
		if err != nil {
			t.Fatal(err)
		}
		if err := f2.SetTestClock(1000); err != nil {
			t.Fatal(err)
		}
		for _, dport := range []uint16{1, 2} {
			if got := run(f2, dport); got != tc.want {
				t.Errorf("%s: port %d: verdict %d, want %d", tc.name, dport, got, tc.want)
			}
		}
		f2.Close()
	}
	// The shared table outlives the program that created it.
	if got := run(f1, 1); got != xdpDrop {
		t.Errorf("previous program after the new one closed: verdict %d", got)
	}
}
