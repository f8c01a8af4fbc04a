package ipset

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/sluice-project/sluice/packet"
)

// groupTestSets returns an `ipset save` text of n hash:net sets of random,
// heavily nested IPv4 prefixes (some nomatch, some shared between sets),
// plus a timeout set, a counters set and a hash:ip set.
func groupTestSets(n int) string {
	rng := rand.New(rand.NewPCG(7, 8))
	var shared []netip.Prefix
	for range 200 {
		shared = append(shared, randPrefix(rng, 8, 28))
	}
	var sb strings.Builder
	for k := range n {
		fmt.Fprintf(&sb, "create g%d hash:net maxelem 1000000\n", k)
		seen := map[netip.Prefix]bool{}
		for range 3000 + 2000*k {
			p := randPrefix(rng, 4+rng.IntN(4), 32)
			if rng.IntN(4) == 0 {
				p = shared[rng.IntN(len(shared))]
			}
			if seen[p] {
				continue
			}
			seen[p] = true
			nm := ""
			if rng.IntN(10) == 0 {
				nm = " nomatch"
			}
			fmt.Fprintf(&sb, "add g%d %s%s\n", k, p, nm)
		}
	}
	sb.WriteString("create gt hash:net timeout 100\nadd gt 10.0.0.0/8 timeout 5\nadd gt 10.1.0.0/16 timeout 50\n")
	sb.WriteString("create gc hash:net counters\nadd gc 10.0.0.0/8\nadd gc 10.2.0.0/16 nomatch\n")
	sb.WriteString("create gi hash:ip\nadd gi 10.3.3.3\n")
	return sb.String()
}

// randPrefix returns a random prefix of lo..hi bits, biased to 10/8 so the
// sets overlap.
func randPrefix(rng *rand.Rand, lo, hi int) netip.Prefix {
	v := rng.Uint32()
	if rng.IntN(2) == 0 {
		v = 10<<24 | v&0xffffff
	}
	a := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	return netip.PrefixFrom(a, lo+rng.IntN(hi-lo+1)).Masked()
}

// TestGroupMatchersExact: matchers sharing group lookups answer exactly
// as Set.Match does, for every flag combination, on source and
// destination, before and after the timeout set's first expiry.
func TestGroupMatchersExact(t *testing.T) {
	testGroupMatchersExact(t, 4, 200000)
}

// TestGroupMatchersManySets: more sets on one address than a group holds
// form several groups, and each answers from its own lookup.
func TestGroupMatchersManySets(t *testing.T) {
	testGroupMatchersExact(t, maxGroup+3, 20000)
}

func testGroupMatchersExact(t *testing.T, nsets, npkts int) {
	r := parseForTest(t, groupTestSets(nsets))
	var ms []*Matcher
	type ref struct {
		s     *Set
		dirs  []Dir
		flags MatchFlags
	}
	var refs []ref
	names := []string{"gt", "gc", "gi"}
	for k := range nsets {
		names = append(names, fmt.Sprintf("g%d", k))
	}
	for _, name := range names {
		for _, dirs := range [][]Dir{src, dst} {
			for _, f := range []MatchFlags{{}, {Invert: true}, {ReturnNomatch: true}, {ReturnNomatch: true, Invert: true}, {SkipCounterUpdate: true}} {
				s := r.Get(name)
				ms = append(ms, NewMatcher(s, dirs, f))
				refs = append(refs, ref{s, dirs, f})
			}
		}
	}
	GroupMatchers(ms)
	grouped := 0
	for _, m := range ms {
		if m.group != nil {
			grouped++
		}
	}
	if grouped == 0 {
		t.Fatal("no matcher was grouped")
	}
	rng := rand.New(rand.NewPCG(9, 10))
	for i := range npkts {
		s := randPrefix(rng, 32, 32).Addr()
		d := randPrefix(rng, 32, 32).Addr()
		p := &packet.Packet{Family: packet.FamilyIPv4, Src: s, Dst: d, Proto: packet.ProtoTCP, Len: 60}
		now := int64(i%3) * 4e9 // 0, 4 s and 8 s: the 5 s element expires
		var memo Memo4
		for k, m := range ms {
			want := refs[k].s.Match(p, refs[k].dirs, refs[k].flags, now)
			if got := m.Match4(p, v4(s), v4(d), now, &memo); got != want {
				t.Fatalf("%s %v %+v src %s dst %s now %d: Match4 %v, Set.Match %v",
					refs[k].s.Name(), refs[k].dirs, refs[k].flags, s, d, now, got, want)
			}
			if got := m.Match(p, now); got != want {
				t.Fatalf("%s: Match %v, Set.Match %v", refs[k].s.Name(), got, want)
			}
		}
	}
}

// TestDirectMatchersExact: the direct paths of hash:ip (with a netmask),
// hash:ip,port and bitmap:port answer exactly as Set.Match does, for
// every flag combination and direction, on TCP, UDP, ICMP, SCTP and GRE
// packets, truncated transport headers and fragments, before and after
// an element's timeout; sets with counters keep the general path. The
// hash:ip,port tests' address filters never rule out a packet the set
// holds.
func TestDirectMatchersExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	addr := func() netip.Addr { return netip.AddrFrom4([4]byte{10, 9, byte(rng.IntN(4)), byte(rng.IntN(16))}) }
	port := func() uint16 { return uint16(1000 + rng.IntN(24)) }
	var sb strings.Builder
	sb.WriteString("create hi hash:ip\ncreate hm hash:ip netmask 24\ncreate ht hash:ip timeout 100\ncreate hc hash:ip counters\n")
	sb.WriteString("create hp hash:ip,port\ncreate hpt hash:ip,port timeout 100\n")
	sb.WriteString("create bp bitmap:port range 1000-1015\ncreate bpt bitmap:port range 1000-1015 timeout 100\n")
	for range 40 {
		a := addr()
		fmt.Fprintf(&sb, "add hi %s\nadd ht %s timeout %d\nadd hc %s\n", a, a, 1+rng.IntN(10), a)
		proto := []string{"tcp", "udp", "sctp", "udplite"}[rng.IntN(4)]
		fmt.Fprintf(&sb, "add hp %s,%s:%d\nadd hpt %s,%s:%d timeout %d\n", a, proto, port(), a, proto, port(), 1+rng.IntN(10))
		fmt.Fprintf(&sb, "add bp %d\nadd bpt %d timeout %d\n", 1000+rng.IntN(16), 1000+rng.IntN(16), 1+rng.IntN(10))
	}
	sb.WriteString("add hp 10.9.0.1,icmp:echo-request\nadd hm 10.9.0.7\nadd hm 10.9.2.200\n")
	r := parseForTest(t, dedupeLinesForTest(sb.String()))
	type ref struct {
		s     *Set
		dirs  []Dir
		flags MatchFlags
	}
	var refs []ref
	var ms []*Matcher
	direct := 0
	for _, name := range []string{"hi", "hm", "ht", "hc", "hp", "hpt", "bp", "bpt"} {
		s := r.Get(name)
		dirSets := [][]Dir{src, dst}
		if s.typ == typeHashIPPort {
			dirSets = [][]Dir{{DirSrc, DirSrc}, {DirSrc, DirDst}, {DirDst, DirSrc}, {DirDst, DirDst}}
		}
		for _, dirs := range dirSets {
			for _, f := range []MatchFlags{{}, {Invert: true}, {SkipCounterUpdate: true}} {
				m := NewMatcher(s, dirs, f)
				if m.kind4 != 0 {
					direct++
				}
				ms = append(ms, m)
				refs = append(refs, ref{s, dirs, f})
			}
		}
	}
	if direct == 0 {
		t.Fatal("no matcher took a direct path")
	}
	// The address filters (IPFilter4) of the hash:ip,port tests: a clear
	// bit must mean the test fails.
	type ipFilter struct {
		f   *[1024]uint64
		dst bool
	}
	filters := make([]*ipFilter, len(ms))
	for k, m := range ms {
		if dst, ok := m.IPTest4(); ok {
			f, full := m.IPFilter4()
			if full {
				t.Fatalf("%s: a 40-address set's filter is full", refs[k].s.Name())
			}
			filters[k] = &ipFilter{f, dst}
		}
	}
	filtered := 0
	hits := 0
	for i := range 100000 {
		p := &packet.Packet{Family: packet.FamilyIPv4, Src: addr(), Dst: addr(), Len: 60, L4Len: 20,
			Proto:   []uint8{packet.ProtoTCP, packet.ProtoUDP, packet.ProtoICMP, 132, 136, 47}[rng.IntN(6)],
			SrcPort: port(), DstPort: port(), ICMPType: uint8(rng.IntN(9)), ICMPCode: 0}
		switch rng.IntN(8) {
		case 0:
			p.L4Len = rng.IntN(8)
		case 1:
			p.FragOff = 8
		}
		now := int64(i%4) * 3e9 // 0, 3, 6 and 9 s: elements expire
		var memo Memo4
		for k, m := range ms {
			want := refs[k].s.Match(p, refs[k].dirs, refs[k].flags, now)
			if want != refs[k].flags.Invert {
				hits++
			}
			if got := m.Match4(p, v4(p.Src), v4(p.Dst), now, &memo); got != want {
				t.Fatalf("%s %v %+v packet %+v now %d: Match4 %v, Set.Match %v",
					refs[k].s.Name(), refs[k].dirs, refs[k].flags, p, now, got, want)
			}
			if f := filters[k]; f != nil {
				a := v4(p.Src)
				if f.dst {
					a = v4(p.Dst)
				}
				if h := HashIP4(a); f.f[h>>6]>>(h&63)&1 == 0 {
					filtered++
					if want != refs[k].flags.Invert {
						t.Fatalf("%s %v: the address filter rules out packet %+v, which the set holds", refs[k].s.Name(), refs[k].dirs, p)
					}
				}
			}
		}
	}
	if hits == 0 {
		t.Fatal("no packet was in any set")
	}
	if filtered == 0 {
		t.Fatal("no address filter ruled a packet out")
	}
	t.Logf("%d matchers, %d on a direct path; %d tests found the element", len(ms), direct, hits)
}

// dedupeLinesForTest drops repeated add lines (ipset restore refuses
// them).
func dedupeLinesForTest(s string) string {
	seen := map[string]bool{}
	var sb strings.Builder
	for _, l := range strings.Split(s, "\n") {
		key := l
		if i := strings.Index(l, " timeout"); i > 0 && strings.HasPrefix(l, "add") {
			key = l[:i]
		}
		if seen[key] {
			continue
		}
		seen[key] = true
		sb.WriteString(l + "\n")
	}
	return sb.String()
}

// TestIPFilterFull: a hash:ip,port set of 30,000 addresses sets over a
// quarter of its filter's bits, and the prefilter leaves such a filter
// out (a load that would rarely rule anything out).
func TestIPFilterFull(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	var sb strings.Builder
	sb.WriteString("create big hash:ip,port maxelem 65536\n")
	for range 30000 {
		fmt.Fprintf(&sb, "add big %d.%d.%d.%d,tcp:80\n", 1+rng.IntN(200), rng.IntN(256), rng.IntN(256), rng.IntN(256))
	}
	r := parseForTest(t, dedupeLinesForTest(sb.String()))
	m := NewMatcher(r.Get("big"), []Dir{DirSrc, DirDst}, MatchFlags{})
	if _, ok := m.IPTest4(); !ok {
		t.Fatal("IPTest4: no address filter for a hash:ip,port test")
	}
	if _, full := m.IPFilter4(); !full {
		t.Fatal("IPFilter4: not full, want a full filter")
	}
}
