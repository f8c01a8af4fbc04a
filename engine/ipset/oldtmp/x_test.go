package oldtmp

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/sluice-project/sluice/packet"
)

func BenchmarkOld1M(b *testing.B) {
	s := bigNetForBench(b)
	rng := rand.New(rand.NewPCG(3, 4))
	addrs := make([]netip.Addr, 1<<20)
	for i := range addrs {
		v := rng.Uint32()
		addrs[i] = netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	}
	p := &packet.Packet{Family: packet.FamilyIPv4}
	for _, m := range []int{4095, 1<<20 - 1, 15} {
		b.Run("", func(b *testing.B) {
			i := 0
			for b.Loop() {
				p.Src = addrs[i&m]
				s.Match(p, []Dir{DirSrc}, MatchFlags{}, 0)
				i++
			}
		})
	}
}
