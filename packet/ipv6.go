package packet

import "net/netip"

// IPv6 is a view of the fixed IPv6 header (RFC 8200, section 3).
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version| Traffic Class |           Flow Label                  |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|         Payload Length        |  Next Header  |   Hop Limit   |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                                                               |
//	+                         Source Address                        +
//	|                          (16 octets)                          |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                                                               |
//	+                      Destination Address                      +
//	|                          (16 octets)                          |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Extension headers follow it. All but two share one layout, with the
// length in 8-octet units not counting the first eight (ipv6_optlen() in
// include/net/ipv6.h):
//
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Next Header  |  Hdr Ext Len  |  options / routing data ...   |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// The fragment header is always 8 octets:
//
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Next Header  |   Reserved    |      Fragment Offset    |Res|M|
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                         Identification                        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// and the AH length is in 4-octet units minus 2 (RFC 4302).
type IPv6 []byte

// IPv6 sizes and the next-header values the chain walk knows
// (NEXTHDR_* in include/net/ipv6.h).
const (
	IPv6HeaderSize      = 40
	IPv6FragHeaderSize  = 8
	IPv6NextHopByHop    = 0
	IPv6NextRouting     = 43
	IPv6NextFragment    = 44
	IPv6NextESP         = 50
	IPv6NextAuth        = 51
	IPv6NextNone        = 59
	IPv6NextDestOptions = 60
)

// Version returns the version nibble.
func (h IPv6) Version() uint8 { return h[0] >> 4 }

// TrafficClass returns the traffic class byte (DSCP and ECN).
func (h IPv6) TrafficClass() uint8 { return h[0]<<4 | h[1]>>4 }

// FlowLabel returns the 20-bit flow label.
func (h IPv6) FlowLabel() uint32 { return be32(h[0:]) & 0xfffff }

// PayloadLen returns the payload length field.
func (h IPv6) PayloadLen() int { return int(be16(h[4:])) }

// NextHeader returns the first next-header value.
func (h IPv6) NextHeader() uint8 { return h[6] }

// HopLimit returns the hop limit.
func (h IPv6) HopLimit() uint8 { return h[7] }

// Src returns the source address.
func (h IPv6) Src() netip.Addr { return netip.AddrFrom16([16]byte(h[8:24])) }

// Dst returns the destination address.
func (h IPv6) Dst() netip.Addr { return netip.AddrFrom16([16]byte(h[24:40])) }

// isIPv6ExtHdr reports whether the kernel walks past nh as an extension
// header: ipv6_ext_hdr() in net/ipv6/exthdrs_core.c. ESP is deliberately
// not one (its payload is opaque), and NONE ends the chain.
func isIPv6ExtHdr(nh uint8) bool {
	switch nh {
	case IPv6NextHopByHop, IPv6NextRouting, IPv6NextFragment,
		IPv6NextAuth, IPv6NextNone, IPv6NextDestOptions:
		return true
	}
	return false
}
