package engine

import (
	"math/rand/v2"
	"testing"
)

// TestAddrDimLookup checks the /8 index against a plain scan of the
// intervals, at every bound, beside it, and at random addresses.
func TestAddrDimLookup(t *testing.T) {
	for _, tc := range []struct {
		name   string
		bounds []uint32
	}{
		{"none", nil},
		{"reference", []uint32{0x7f000000, 0x80000000, 0xc6120000, 0xc6140000}},
		{"one /8 split many times", []uint32{0x0a000001, 0x0a000100, 0x0a010000, 0x0a800000, 0x0affffff, 0x0b000000}},
		{"edges", []uint32{1, 0xff000000, 0xffffffff}},
		{"random", func() []uint32 {
			r := rand.New(rand.NewPCG(1, 2))
			var b []uint32
			for range maxAddrBounds - 1 {
				b = append(b, r.Uint32()>>uint(r.IntN(8)))
			}
			return b
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := map[uint32]bool{}
			for _, b := range tc.bounds {
				m[b] = true
			}
			var d addrDim
			d.build(m)
			for i := range d.ex {
				d.ex[i] = uint64(i) + 1
			}
			want := func(a uint32) uint64 {
				i := 0
				for i+1 < len(d.starts) && d.starts[i+1] <= a {
					i++
				}
				return d.ex[i]
			}
			var probes []uint32
			for _, s := range d.starts {
				probes = append(probes, s, s-1, s+1)
			}
			for b := uint32(0); b < 256; b++ {
				probes = append(probes, b<<24, b<<24|0xffffff)
			}
			r := rand.New(rand.NewPCG(3, 4))
			for range 10000 {
				probes = append(probes, r.Uint32())
			}
			for _, a := range probes {
				if got, w := d.lookup(a), want(a); got != w {
					t.Fatalf("lookup(%#08x) = interval %d, want %d (starts %x)", a, got-1, w-1, d.starts)
				}
			}
		})
	}
}
