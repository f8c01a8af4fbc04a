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
	r := parseForTest(t, groupTestSets(4))
	var ms []*Matcher
	type ref struct {
		s     *Set
		dirs  []Dir
		flags MatchFlags
	}
	var refs []ref
	for _, name := range []string{"g0", "g1", "g2", "g3", "gt", "gc", "gi"} {
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
	for i := range 200000 {
		s := randPrefix(rng, 32, 32).Addr()
		d := randPrefix(rng, 32, 32).Addr()
		p := &packet.Packet{Family: packet.FamilyIPv4, Src: s, Dst: d, Proto: packet.ProtoTCP, Len: 60}
		now := int64(i%3) * 4e9 // 0, 4 s and 8 s: the 5 s element expires
		var memo [2]uint32
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
