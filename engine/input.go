package engine

import (
	"net/netip"

	"github.com/sluice-project/sluice/packet"
)

// reachesInput models the routing decision between PREROUTING and INPUT
// on a host where every destination is local (the AnyIP setup sluice's
// kernel oracle uses, and the default for replay). Each case below is a
// fact the oracle's tests check against the kernel (oracle/doc.go):
// ip_route_input_slow drops martian sources and destinations, multicast is
// delivered only for joined groups. (IPv4 fragments are then reassembled in
// ip_local_deliver before LOCAL_IN: see reasm.go.)
func (pr *Program) reachesInput(p *packet.Packet) bool {
	for _, a := range pr.localAddrs {
		if p.Src == a && p.Family == packet.FamilyIPv4 {
			return false // a source claiming to be us is a martian
		}
	}
	if p.Family == packet.FamilyIPv4 {
		s, d := p.Src.As4(), p.Dst.As4()
		switch {
		case s[0] >= 224 && s[0] <= 239: // multicast source
			return false
		case s == [4]byte{255, 255, 255, 255}:
			return false
		case d == [4]byte{255, 255, 255, 255}:
			return true // limited broadcast, even from 0.0.0.0
		case s == [4]byte{}, d == [4]byte{}:
			return false // 0.0.0.0 only: the rest of 0/8 is valid unicast now
		case s[0] == 127, d[0] == 127: // loopback without route_localnet
			return false
		case d[0] >= 224 && d[0] <= 239:
			return d == [4]byte{224, 0, 0, 1} // only all-hosts is joined
		}
		return true
	}
	if d := p.Dst; d.IsMulticast() {
		if d == allNodes {
			return true
		}
		// Solicited-node groups of our addresses are joined too.
		if b := d.As16(); b[0] == 0xff && b[1] == 0x02 && b[11] == 1 && b[12] == 0xff {
			for _, a := range pr.localAddrs {
				if la := a.As16(); a.Is6() && la[13] == b[13] && la[14] == b[14] && la[15] == b[15] {
					return true
				}
			}
		}
		return false
	}
	return true
}

var allNodes = netip.MustParseAddr("ff02::1")
