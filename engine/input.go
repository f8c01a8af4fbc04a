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
	if p.Family == packet.FamilyIPv4 {
		return pr.reachesInput4(p)
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

func (pr *Program) reachesInput4(p *packet.Packet) bool {
	s, d := p.Src.As4(), p.Dst.As4()
	if d[0] >= 224 && d[0] <= 239 {
		// ip_route_input_mc / ip_mc_validate_source: no multicast,
		// broadcast or loopback source; a 0.0.0.0 source only towards
		// 224.0.0.0/24 or for IGMP; any other source is validated like
		// unicast (fib_validate_source), towards link-local groups
		// too, so one of ours is a martian. Only all-hosts is joined.
		if s[0] >= 224 && s[0] <= 239 || s == [4]byte{255, 255, 255, 255} || s[0] == 127 {
			return false
		}
		if s == [4]byte{} {
			if !(d[0] == 224 && d[1] == 0 && d[2] == 0) && p.Proto != 2 {
				return false
			}
		} else if pr.isLocal(p.Src) {
			return false
		}
		return d == [4]byte{224, 0, 0, 1} && pr.optionsPass(p)
	}
	switch {
	case s[0] >= 224 && s[0] <= 239, s == [4]byte{255, 255, 255, 255}:
		return false // multicast or broadcast source
	case d == [4]byte{255, 255, 255, 255}:
		// Limited broadcast (brd_input): a zero source is accepted as
		// is; any other is validated, and a loopback or local one is
		// a martian.
		if s != [4]byte{} && (s[0] == 127 || pr.isLocal(p.Src)) {
			return false
		}
		return pr.optionsPass(p)
	case s == [4]byte{} && d == [4]byte{}:
		// ip_route_input_slow sends 0.0.0.0 -> 0.0.0.0 to brd_input
		// with the limited broadcast: delivered as a broadcast.
		return pr.optionsPass(p)
	case s == [4]byte{}, d == [4]byte{}:
		return false // 0.0.0.0 only: the rest of 0/8 is valid unicast now
	case s[0] == 127, d[0] == 127: // loopback without route_localnet
		return false
	case pr.isLocal(p.Src):
		return false // a source claiming to be us is a martian
	}
	return pr.optionsPass(p)
}

func (pr *Program) isLocal(a netip.Addr) bool {
	for _, l := range pr.localAddrs {
		if a == l {
			return true
		}
	}
	return false
}

// optionsPass applies ip_rcv_options to datagrams with options.
func (pr *Program) optionsPass(p *packet.Packet) bool {
	// The decoder put the transport header right after the IPv4 header:
	// a datagram without options is settled without reading it again.
	if p.L4Off <= 20 {
		return true
	}
	ihl := int(p.L3[0]&0x0f) * 4
	return ihl <= 20 || ipv4OptionsPass(p.L3[20:ihl])
}
