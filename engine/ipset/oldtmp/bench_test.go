package oldtmp

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

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

var bigNet *Set

func bigNetForBench(b *testing.B) *Set {
	if bigNet != nil {
		return bigNet
	}
	text := bigNetText(1_000_000)
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	t0 := time.Now()
	r, err := Parse("big", strings.NewReader(text), 0)
	if err != nil {
		b.Fatal(err)
	}
	build := time.Since(t0)
	runtime.GC()
	runtime.ReadMemStats(&m1)
	bigNet = r.Get("big")
	b.Logf("hash:net 1M prefixes: parse+build %v, retained heap %.1f MiB", build, float64(m1.HeapAlloc-m0.HeapAlloc)/(1<<20))
	return bigNet
}

func BenchmarkHashNet1M(b *testing.B) {
	s := bigNetForBench(b)
	rng := rand.New(rand.NewPCG(3, 4))
	pk := make([]*packet.Packet, 4096)
	for i := range pk {
		v := rng.Uint32()
		a := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
		pk[i] = &packet.Packet{Family: packet.FamilyIPv4, Src: a, Dst: a}
	}
	// "random" defeats the CPU caches (each lookup walks cold nodes of a
	// 180 MiB trie); "hot16" cycles 16 addresses, the cost of the code.
	for _, bc := range []struct {
		name string
		mask int
	}{{"random", 4095}, {"hot16", 15}} {
		b.Run(bc.name, func(b *testing.B) {
			hits, i := 0, 0
			b.ReportAllocs()
			for b.Loop() {
				if s.Match(pk[i&bc.mask], src, MatchFlags{}, 0) {
					hits++
				}
				i++
			}
			b.ReportMetric(float64(hits)/float64(i), "hit-ratio")
		})
	}
}
