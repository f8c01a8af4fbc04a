package ipset

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gaissmai/bart"

	"github.com/sluice-project/sluice/packet"
)

func TestMatchZeroAllocs(t *testing.T) {
	r := parseForTest(t, setsForTest+"create cn hash:net timeout 10 counters\nadd cn 10.0.0.0/8\n")
	p := packetForTest("10.1.2.3", "192.0.2.1", packet.ProtoTCP, 1, 80)
	p6 := packetForTest("2001:db8::1", "2001:db8::2", packet.ProtoUDP, 1, 53)
	for _, tc := range []struct {
		set  string
		p    *packet.Packet
		dirs []Dir
	}{
		{"ip4", p, dst}, {"ip6", p6, src}, {"net4", p, src}, {"net6", p6, src},
		{"ipp", p, dstDP}, {"ipp6", p6, srcDP}, {"np", p, srcDP}, {"ipi", p, []Dir{DirSrc, DirDst, DirDst}},
		{"bip", p, src}, {"bport", p, dst}, {"lst", p, src}, {"cn", p, src},
	} {
		s := r.Get(tc.set)
		n := testing.AllocsPerRun(100, func() { s.Match(tc.p, tc.dirs, MatchFlags{PacketsOp: CounterGT}, 1) })
		if n != 0 {
			t.Errorf("%s: %v allocs per Match", tc.set, n)
		}
	}
}

func BenchmarkMatchHashIP(b *testing.B) {
	r := parseForTest(b, setsForTest)
	s := r.Get("ip4")
	p := packetForTest("192.0.2.1", "1.1.1.1", packet.ProtoTCP, 1, 80)
	b.ReportAllocs()
	for b.Loop() {
		s.Match(p, src, MatchFlags{}, 0)
	}
}

func BenchmarkMatchHashIPPort(b *testing.B) {
	r := parseForTest(b, setsForTest)
	s := r.Get("ipp")
	p := packetForTest("192.0.2.1", "1.1.1.1", packet.ProtoTCP, 1, 80)
	b.ReportAllocs()
	for b.Loop() {
		s.Match(p, srcDP, MatchFlags{}, 0)
	}
}

func BenchmarkMatchHashNetPort(b *testing.B) {
	r := parseForTest(b, setsForTest)
	s := r.Get("np")
	p := packetForTest("10.1.2.3", "1.1.1.1", packet.ProtoTCP, 1, 22)
	b.ReportAllocs()
	for b.Loop() {
		s.Match(p, srcDP, MatchFlags{}, 0)
	}
}

func BenchmarkMatchListSet(b *testing.B) {
	r := parseForTest(b, setsForTest)
	s := r.Get("lst")
	p := packetForTest("10.5.5.5", "1.1.1.1", packet.ProtoTCP, 1, 22)
	b.ReportAllocs()
	for b.Loop() {
		s.Match(p, src, MatchFlags{}, 0)
	}
}

// bigNetText is an `ipset save` text of n random IPv4 prefixes (/8../32).
func bigNetText(n int) string {
	rng := rand.New(rand.NewPCG(1, 2))
	var sb strings.Builder
	fmt.Fprintf(&sb, "create big hash:net maxelem %d\n", n*2)
	seen := map[netip.Prefix]bool{}
	for len(seen) < n {
		bits := 8 + rng.IntN(25)
		var a [4]byte
		v := rng.Uint32()
		a[0], a[1], a[2], a[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
		pfx := netip.PrefixFrom(netip.AddrFrom4(a), bits).Masked()
		if seen[pfx] {
			continue
		}
		seen[pfx] = true
		fmt.Fprintf(&sb, "add big %s\n", pfx)
	}
	return sb.String()
}

var (
	bigNet      *Set
	bigNetBuild time.Duration
	bigNetMiB   float64
)

func bigNetForBench(b *testing.B) *Set {
	if bigNet != nil {
		return bigNet
	}
	text := bigNetText(1_000_000)
	h0 := heapInUse()
	t0 := time.Now()
	r, err := Parse("big", strings.NewReader(text), 0)
	if err != nil {
		b.Fatal(err)
	}
	bigNetBuild = time.Since(t0)
	bigNetMiB = float64(heapInUse()-h0) / (1 << 20)
	bigNet = r.Get("big")
	b.Logf("hash:net 1M prefixes: parse+build %v, retained heap %.1f MiB (lpm4 %d bits first level, %.1f MiB)",
		bigNetBuild, bigNetMiB, bigNet.net4.first, float64(bigNet.net4.bytes())/(1<<20))
	return bigNet
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// randAddrs4 returns n random IPv4 addresses.
func randAddrs4(n int) []netip.Addr {
	rng := rand.New(rand.NewPCG(3, 4))
	out := make([]netip.Addr, n)
	for i := range out {
		v := rng.Uint32()
		out[i] = netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	}
	return out
}

// BenchmarkHashNet1M is Match on a hash:net of 1M random /8../32 IPv4
// prefixes. "random" cycles 4096 random addresses (the lookups' cache
// lines fit in L2), "random1M" 1M of them (every lookup goes to DRAM),
// "hot16" 16 addresses (the cost of the code). build-s and MiB are the
// Parse of the whole set and the heap it retains, elements included.
func BenchmarkHashNet1M(b *testing.B) {
	s := bigNetForBench(b)
	addrs := randAddrs4(1 << 20)
	p := &packet.Packet{Family: packet.FamilyIPv4}
	for _, bc := range []struct {
		name string
		mask int
	}{{"random", 4095}, {"random1M", 1<<20 - 1}, {"hot16", 15}} {
		b.Run(bc.name, func(b *testing.B) {
			hits, i := 0, 0
			b.ReportAllocs()
			for b.Loop() {
				p.Src = addrs[i&bc.mask]
				if s.Match(p, src, MatchFlags{}, 0) {
					hits++
				}
				i++
			}
			b.ReportMetric(float64(hits)/float64(i), "hit-ratio")
			b.ReportMetric(bigNetBuild.Seconds(), "build-s")
			b.ReportMetric(bigNetMiB, "MiB")
		})
	}
	// A counter compare forces the general walk (mtype_test_cidrs with
	// extension checks) on a counters set.
	b.Run("slowpath", func(b *testing.B) {
		r, err := Parse("big", strings.NewReader(strings.Replace(bigNetText(1_000_000), "maxelem", "counters maxelem", 1)), 0)
		if err != nil {
			b.Fatal(err)
		}
		s := r.Get("big")
		i := 0
		b.ResetTimer()
		for b.Loop() {
			p.Src = addrs[i&4095]
			s.Match(p, src, MatchFlags{PacketsOp: CounterGT}, 0)
			i++
		}
	})
}

// randPrefixes4 is n distinct random /8../32 prefixes with lpm4 values.
func randPrefixes4(n int) []lpmPrefix {
	rng := rand.New(rand.NewPCG(1, 2))
	seen := map[uint64]bool{}
	ps := make([]lpmPrefix, 0, n)
	for len(ps) < n {
		l := uint8(8 + rng.IntN(25))
		a := rng.Uint32() & mask4(l)
		if k := uint64(a)<<8 | uint64(l); !seen[k] {
			seen[k] = true
			ps = append(ps, lpmPrefix{a, l, netRef(int32(len(ps)), false)})
		}
	}
	return ps
}

// BenchmarkLPM4 compares the bare LPM structures a hash:net could use on
// 1M random /8../32 prefixes: bart's Table and Fast, and lpm4 with 16 or
// 24 first-level bits. build-s and MiB are the build from a prefix list
// and the heap the structure retains.
func BenchmarkLPM4(b *testing.B) {
	ps := randPrefixes4(1_000_000)
	addrs := randAddrs4(1 << 20)
	u32 := make([]uint32, len(addrs))
	for i, a := range addrs {
		u32[i] = v4(a)
	}
	type lookupFn func(i int) uint32
	measure := func(build func() lookupFn) (lookupFn, float64, float64) {
		h0 := heapInUse()
		t0 := time.Now()
		f := build()
		sec := time.Since(t0).Seconds()
		return f, sec, float64(heapInUse()-h0) / (1 << 20)
	}
	run := func(name string, build func() lookupFn) {
		f, sec, mib := measure(build)
		for _, pool := range []struct {
			name string
			mask int
		}{{"random", 4095}, {"random1M", 1<<20 - 1}} {
			b.Run(name+"/"+pool.name, func(b *testing.B) {
				var sink uint32
				i := 0
				for b.Loop() {
					sink += f(i & pool.mask)
					i++
				}
				b.ReportMetric(sec, "build-s")
				b.ReportMetric(mib, "MiB")
				runtime.KeepAlive(sink)
			})
		}
	}
	run("bartTable", func() lookupFn {
		t := &bart.Table[uint32]{}
		for _, p := range ps {
			t.Insert(netip.PrefixFrom(addr4(p.addr), int(p.len)), p.val)
		}
		return func(i int) uint32 { v, _ := t.Lookup(addrs[i]); return v }
	})
	run("bartFast", func() lookupFn {
		t := &bart.Fast[uint32]{}
		for _, p := range ps {
			t.Insert(netip.PrefixFrom(addr4(p.addr), int(p.len)), p.val)
		}
		return func(i int) uint32 { v, _ := t.Lookup(addrs[i]); return v }
	})
	for _, first := range []uint8{16, 24} {
		run(fmt.Sprintf("lpm4-%d", first), func() lookupFn {
			q := slices.Clone(ps)
			sortPrefixes4(q)
			t := newLPM4(q, first)
			return func(i int) uint32 { return t.lookup(u32[i]) }
		})
	}
}

// BenchmarkHashIP1M is a rule's test (Matcher.Match4) of a hash:ip
// blocklist of 1M random IPv4 addresses: "random1M" cycles 1M other
// random sources (nearly all misses, every lookup a cache miss), "hits"
// the set's own addresses. MiB is the heap the parsed set retains.
func BenchmarkHashIP1M(b *testing.B) {
	addrs := randAddrs4(1 << 20)
	var sb strings.Builder
	sb.WriteString("create big hash:ip maxelem 2000000\n")
	seen := map[netip.Addr]bool{}
	for _, a := range addrs {
		if !seen[a] && a.As4()[0] != 0 {
			seen[a] = true
			fmt.Fprintf(&sb, "add big %s\n", a)
		}
	}
	text := sb.String()
	h0 := heapInUse()
	r, err := Parse("big", strings.NewReader(text), 0)
	if err != nil {
		b.Fatal(err)
	}
	mib := float64(heapInUse()-h0) / (1 << 20)
	runtime.KeepAlive(text)
	m := NewMatcher(r.Get("big"), src, MatchFlags{})
	others := make([]netip.Addr, 1<<20)
	for i := range others {
		others[i] = netip.AddrFrom4([4]byte{byte(i), 0, byte(i >> 8), byte(i >> 16)}) // another 1M sources
	}
	p := &packet.Packet{Family: packet.FamilyIPv4}
	for _, bc := range []struct {
		name  string
		addrs []netip.Addr
	}{{"random1M", others}, {"hits", addrs}} {
		b.Run(bc.name, func(b *testing.B) {
			hits, i := 0, 0
			b.ReportAllocs()
			for b.Loop() {
				a := bc.addrs[i&(1<<20-1)]
				p.Src = a
				var memo Memo4
				if m.Match4(p, v4(a), 0, 0, &memo) {
					hits++
				}
				i++
			}
			b.ReportMetric(float64(hits)/float64(i), "hit-ratio")
			b.ReportMetric(mib, "MiB")
		})
	}
}
