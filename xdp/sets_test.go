package xdp

import (
	"math/rand/v2"
	"testing"

	"github.com/sluice-project/sluice/engine/ipset"
)

// TestNet4Table checks the painted hash:net table against the kernel's
// rule stated directly: the most specific entry covering the address
// decides (mtype_test_cidrs), over random sets with nested prefixes,
// nomatch exceptions and /25-/32 entries, at every prefix's edges and at
// random addresses.
func TestNet4Table(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 20 {
		var ps []ipset.Prefix4
		seen := map[ipset.Prefix4]bool{}
		base := rng.Uint32()
		for range 1 + rng.IntN(200) {
			l := uint8(1 + rng.IntN(32))
			a := base ^ rng.Uint32()>>rng.IntN(32) // cluster around base so prefixes nest
			a &= ^uint32(0) << (32 - l)
			p := ipset.Prefix4{Addr: a, Len: l}
			if seen[p] {
				continue
			}
			seen[p] = true
			p.Nomatch = rng.IntN(3) == 0
			ps = append(ps, p)
		}
		dir, leaves := net4Table(ps)
		lookup := func(a uint32) byte {
			if c := get2(dir[net4DirEntries*net4Chunk:], a>>16); c != netMixed {
				return c
			}
			if c := get2(dir[(net4DirEntries+net4TopEntries)*net4Chunk:], a>>12); c != netMixed {
				return c
			}
			c := get2(dir, a>>8)
			if c == netMixed {
				leaf := leaves[a>>8]
				if leaf == nil {
					t.Fatalf("round %d: block %#x mixed without a leaf", round, a>>8)
				}
				c = get2(leaf[:], a&0xff)
				if c == netMixed {
					t.Fatalf("round %d: %#x: mixed answer in a leaf", round, a)
				}
			}
			return c
		}
		want := func(a uint32) byte {
			best, code := -1, byte(netNone)
			for _, p := range ps {
				if a&(^uint32(0)<<(32-p.Len)) == p.Addr && int(p.Len) > best {
					best, code = int(p.Len), netMatch
					if p.Nomatch {
						code = netNomatch
					}
				}
			}
			return code
		}
		var probes []uint32
		for _, p := range ps {
			last := p.Addr | ^(^uint32(0) << (32 - p.Len))
			probes = append(probes, p.Addr, p.Addr-1, last, last+1, p.Addr+(last-p.Addr)/2)
		}
		for range 2000 {
			probes = append(probes, base^rng.Uint32()>>rng.IntN(32), rng.Uint32())
		}
		for _, a := range probes {
			if got, w := lookup(a), want(a); got != w {
				t.Fatalf("round %d: %d.%d.%d.%d: table says %d, most specific entry says %d", round, a>>24, a>>16&0xff, a>>8&0xff, a&0xff, got, w)
			}
		}
	}
}

// BenchmarkNet4Table measures building the table of the example's
// blocklist-sized set: 120k random prefixes /8-/32.
func BenchmarkNet4Table(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 4))
	ps := make([]ipset.Prefix4, 120000)
	for i := range ps {
		l := uint8(8 + rng.IntN(25))
		ps[i] = ipset.Prefix4{Addr: rng.Uint32() & (^uint32(0) << (32 - l)), Len: l}
	}
	b.ReportAllocs()
	for b.Loop() {
		net4Table(ps)
	}
}
