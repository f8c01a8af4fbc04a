package engine

import (
	"net/netip"

	"github.com/sluice-project/sluice/packet"
)

// reachesInput models the routing decision between PREROUTING and INPUT
// for a host where every destination is local (the AnyIP setup sluice's
// kernel oracle uses, and the default for replay): the kernel's
// ip_route_input_slow drops martian sources and destinations before INPUT,
// and multicast is delivered only for groups the host has joined.
func reachesInput(p *packet.Packet) bool {
	if p.Family == packet.FamilyIPv4 {
		s, d := p.Src.As4(), p.Dst.As4()
		if s[0] >= 224 && s[0] <= 239 { // multicast source
			return false
		}
		if s == [4]byte{255, 255, 255, 255} {
			return false
		}
		if d == [4]byte{255, 255, 255, 255} {
			return true // limited broadcast is delivered locally
		}
		if s[0] == 0 && d == [4]byte{} {
			return true
		}
		if s[0] == 0 || d[0] == 0 { // zeronet source or destination
			return false
		}
		if d[0] == 127 || s[0] == 127 { // loopback without route_localnet
			return false
		}
		if d[0] >= 224 && d[0] <= 239 {
			return d == [4]byte{224, 0, 0, 1} // only all-hosts is joined
		}
		return true
	}
	d := p.Dst
	if d.IsMulticast() {
		return d == allNodes || d == allNodesIface
	}
	return true
}

var (
	allNodes      = netip.MustParseAddr("ff02::1")
	allNodesIface = netip.MustParseAddr("ff01::1")
)
