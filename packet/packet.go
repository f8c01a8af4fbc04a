// Package packet decodes frames into a reused Packet without allocating,
// returning errors or panicking.
//
// A frame the kernel would discard before netfilter (a bad IPv4 header
// checksum, a total length beyond the frame, ...) decodes with Malformed set
// to the reason, so the engine can count it and never show it to a chain, as
// the kernel never does. Anything else decodes as far as the bytes allow;
// what a match needs but cannot read is reported through the availability
// fields (L4Len) so the engine can reproduce the kernel's hotdrop.
//
// The layout follows tailscale's net/packet: one flat struct, filled in
// place, with the raw L3 bytes kept for byte-level matches (u32, bpf,
// string), which in the kernel all start at the network header.
package packet

import "net/netip"

// Family is the network-layer family of a decoded packet.
type Family uint8

const (
	// FamilyNone means the frame carries neither IPv4 nor IPv6 (ARP, LLDP,
	// ...). sluice does not filter such frames; they go on to the kernel.
	FamilyNone Family = iota
	FamilyIPv4
	FamilyIPv6
)

// String names the family as sluice's JSON output does.
func (f Family) String() string {
	switch f {
	case FamilyIPv4:
		return "ipv4"
	case FamilyIPv6:
		return "ipv6"
	}
	return "none"
}

// LinkType says what the first byte of a frame is.
type LinkType uint8

const (
	LinkEthernet  LinkType = iota // Ethernet II, possibly VLAN tagged
	LinkRawIP                     // raw IPv4 or IPv6 (pcap LINKTYPE_RAW / DLT_RAW)
	LinkLinuxSLL                  // Linux cooked capture v1 (LINKTYPE_LINUX_SLL)
	LinkLinuxSLL2                 // Linux cooked capture v2 (LINKTYPE_LINUX_SLL2)
)

// PktType mirrors skb->pkt_type as the receive path sets it from the
// destination MAC; -m pkttype matches on it.
type PktType uint8

const (
	PktHost      PktType = 0 // PACKET_HOST: addressed to us
	PktBroadcast PktType = 1 // PACKET_BROADCAST
	PktMulticast PktType = 2 // PACKET_MULTICAST
	PktOtherHost PktType = 3 // PACKET_OTHERHOST: to another host's MAC
)

// Malformed is the reason the kernel's receive path would discard a packet
// before any netfilter hook. MalformedNone means the packet reaches PREROUTING.
type Malformed uint8

const (
	MalformedNone           Malformed = iota
	MalformedTruncatedL2              // frame too short for its link-layer header
	MalformedIPVersion                // IPv4 ethertype but version != 4 (or v6 != 6)
	MalformedIPHeaderLen              // IHL < 5, or frame shorter than IHL*4 / 40 bytes
	MalformedIPChecksum               // IPv4 header checksum does not verify
	MalformedIPTotalLen               // total length < IHL*4, or beyond the frame
	MalformedIPv6PayloadLen           // IPv6 payload length beyond the frame
	// MalformedOtherHost: an IP frame to another host's MAC. ip_rcv_core()
	// and ip6_rcv_core() drop PACKET_OTHERHOST before PREROUTING (a
	// promiscuous interface sees such frames; the kernel ignores them).
	MalformedOtherHost
	// MalformedOutgoing: a cooked capture's PACKET_OUTGOING frame, sent by
	// the capturing host. It never went through the receive path, so
	// PREROUTING never saw it; not malformed, but never filtered.
	MalformedOutgoing
	// MalformedIPv6Addr: an address ip6_rcv_core() refuses on a
	// non-loopback device: ::1 as source or destination, a multicast
	// source, or a multicast destination of scope 0 or 1.
	MalformedIPv6Addr
	// MalformedIPv6HopByHop: the hop-by-hop options header fails
	// ipv6_parse_hopopts(), which runs before PREROUTING (truncated,
	// bad padding, a bad known option, an unknown option whose type says
	// discard, more than 8 options, ...).
	MalformedIPv6HopByHop
	numMalformed
)

// NumMalformed is the number of Malformed values, for per-reason counters.
const NumMalformed = int(numMalformed)

// String names the reason for counters and metrics labels.
func (m Malformed) String() string {
	switch m {
	case MalformedNone:
		return "none"
	case MalformedTruncatedL2:
		return "truncated_l2"
	case MalformedIPVersion:
		return "ip_version"
	case MalformedIPHeaderLen:
		return "ip_header_len"
	case MalformedIPChecksum:
		return "ip_checksum"
	case MalformedIPTotalLen:
		return "ip_total_len"
	case MalformedIPv6PayloadLen:
		return "ipv6_payload_len"
	case MalformedOtherHost:
		return "other_host"
	case MalformedOutgoing:
		return "outgoing"
	case MalformedIPv6Addr:
		return "ipv6_addr"
	case MalformedIPv6HopByHop:
		return "ipv6_hop_by_hop"
	}
	return "unknown"
}

// Packet is one decoded frame. Decode overwrites every field, so one Packet
// is reused for a whole batch. Slices alias the frame passed to Decode.
type Packet struct {
	// Link layer. HasMAC is false for raw-IP captures; then SrcMAC is zero
	// and -m mac never matches, as for a kernel device without a MAC header.
	HasMAC  bool
	SrcMAC  [6]byte
	DstMAC  [6]byte
	PktType PktType
	// VLAN is the first non-zero VLAN id among the 802.1Q/802.1ad tags
	// (priority tags, id 0, are stripped by the kernel and the next tag
	// decides); NumVLANs counts the tags removed before the network header.
	VLAN     uint16
	NumVLANs uint8

	Family    Family
	Malformed Malformed

	// L3 is the IP datagram from the first byte of the IP header to the
	// last byte of the datagram, trailing link-layer padding trimmed, as
	// skb->data..skb->len at PREROUTING. u32, bpf and string read it.
	L3 []byte
	// Len is the datagram length the kernel counts in byte counters:
	// the IPv4 total length, or the IPv6 payload length + 40.
	Len int

	Src, Dst netip.Addr
	// TTL is the IPv4 TTL or the IPv6 hop limit; TOS is the IPv4 TOS
	// byte or the IPv6 traffic class.
	TTL uint8
	TOS uint8

	// Proto is the transport protocol as iptables' -p sees it: the IPv4
	// protocol field, or for IPv6 the upper-layer header found by walking
	// the extension-header chain as ipv6_find_hdr does.
	Proto uint8
	// ProtoFound is false for IPv6 when the chain walk failed (a truncated
	// or unknown extension header); ip6tables' -p then matches nothing and
	// hotdrops a first fragment.
	ProtoFound bool

	// FragOff is the fragment offset in bytes: non-zero means a non-first
	// fragment, whose transport header is absent. Beware the kernel's
	// par->fragoff differs by family: for IPv4 it is the raw 13-bit field
	// (FragOff/8, so xt_tcp's "evil offset=1 fragment" hotdrop is
	// FragOff == 8), for IPv6 it is bytes as ipv6_find_hdr reports them.
	// MoreFrags is the MF bit. IsFragment is true for any fragment, first
	// or not (IPv6: the chain walk met a fragment header).
	FragOff    uint16
	MoreFrags  bool
	IsFragment bool

	// L4Off is the offset of the transport header within L3 (the
	// kernel's par->thoff), and L4Len the bytes available from there to
	// the end of the datagram. Transport fields below are valid only when
	// L4Len covers them; matches check L4Len to decide on hotdrop.
	L4Off int
	L4Len int

	// Transport fields are filled only when FragOff == 0, ProtoFound, and
	// the bytes are present; a match must still check L4Len against what
	// the kernel reads: tcp 20 bytes, udp 8, icmp/icmp6 8, multiport 4.
	SrcPort, DstPort uint16 // TCP, UDP, UDP-Lite, SCTP, DCCP: filled when L4Len >= 4
	TCPFlags         uint8  // FIN=0x01 SYN=0x02 RST=0x04 PSH=0x08 ACK=0x10 URG=0x20 ECE=0x40 CWR=0x80; L4Len >= 14
	TCPDataOff       uint8  // TCP header length in bytes (doff*4); L4Len >= 13
	ICMPType         uint8  // ICMP (IPv4) or ICMPv6 (IPv6): filled when L4Len >= 2
	ICMPCode         uint8
}

// TCP flag bits as they appear in the 14th byte of the TCP header.
const (
	TCPFin = 0x01
	TCPSyn = 0x02
	TCPRst = 0x04
	TCPPsh = 0x08
	TCPAck = 0x10
	TCPUrg = 0x20
	TCPEce = 0x40
	TCPCwr = 0x80
)

// IP protocol numbers sluice's matches care about.
const (
	ProtoICMP   = 1
	ProtoTCP    = 6
	ProtoUDP    = 17
	ProtoICMPv6 = 58
)
