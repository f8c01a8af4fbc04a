package packet

// This file is the receive path up to NF_INET_PRE_ROUTING, written to
// match the kernel check for check:
//
//   - link layer: eth_type_trans() (net/ethernet/eth.c) for pkt_type, and
//     the VLAN untagging of __netif_receive_skb_core() (net/core/dev.c);
//   - IPv4: ip_rcv_core() (net/ipv4/ip_input.c);
//   - IPv6: ip6_rcv_core() (net/ipv6/ip6_input.c) with
//     ipv6_parse_hopopts() and ip6_parse_tlv() (net/ipv6/exthdrs.c);
//   - the upper-layer protocol as ip6_packet_match()
//     (net/ipv6/netfilter/ip6_tables.c) finds it with
//     ipv6_find_hdr(skb, &thoff, -1, &fragoff, NULL)
//     (net/ipv6/exthdrs_core.c).
//
// What the engine must do with ProtoFound (IPv6): ipv6_find_hdr fails
// (ProtoFound == false) on a truncated extension header, and on a
// non-first fragment whose fragment header is followed by another
// extension header. In every failure it leaves fragoff at 0, so
// ip6_packet_match sets hotdrop for every rule that has -p (any protocol,
// including a negated one): the packet is dropped there and then, no rule
// or policy counter counts it. Rules without -p never call the walk and
// match normally. When ProtoFound is false, FragOff is 0 (the kernel's
// value) even if a fragment header was seen; IsFragment and MoreFrags
// still describe that header.
//
// What this decoder cannot know, and assumes:
//   - the receiving device is not a loopback or L3-master device, except
//     for cooked captures whose ARPHRD type is loopback (772), where the
//     IPv6 loopback and interface-local multicast checks are skipped as
//     the kernel skips them on lo;
//   - sysctls at their defaults: net.ipv6.conf.*.drop_unicast_in_l2_multicast
//     = 0, max_hbh_opts_cnt = 8, max_hbh_opts_len unlimited,
//     ioam6_enabled = 0 (IOAM options are only alignment-checked);
//   - CONFIG_NETLABEL with no CALIPSO DOI configured, as on common
//     distribution kernels: every CALIPSO hop-by-hop option fails
//     calipso_validate(), so such packets are dropped;
//   - VLAN tags: the kernel's verdict on a tagged frame depends on whether
//     a VLAN device exists for the id (without one, a non-zero id makes
//     the frame PACKET_OTHERHOST in __netif_receive_skb_core). The decoder
//     reports VLAN and NumVLANs and leaves that policy to the caller;
//   - IPv4 options are not validated: ip_rcv_options() runs after
//     PREROUTING, in ip_rcv_finish(), so it cannot change what the hook
//     sees.

// PktType values that appear only in cooked (SLL/SLL2) captures, whose
// header records the kernel's skb->pkt_type directly.
const (
	// PktOutgoing is PACKET_OUTGOING: a frame the host sent. It never
	// reaches PREROUTING; IP frames with it decode as MalformedOutgoing.
	PktOutgoing PktType = 4
	// PktLoopback is PACKET_LOOPBACK: multicast looped back to the host.
	// xt_pkttype reports it as multicast (or broadcast for IPv4
	// non-multicast destinations).
	PktLoopback PktType = 5
)

// ARPHRD types of cooked-capture headers that change decoding.
const (
	arphrdEther    = 1   // ARPHRD_ETHER: the address is a source MAC
	arphrdLoopback = 772 // ARPHRD_LOOPBACK: the lo device
)

// Cooked-capture header sizes.
const (
	SLLHeaderSize  = 16 // LINKTYPE_LINUX_SLL
	SLL2HeaderSize = 20 // LINKTYPE_LINUX_SLL2
)

// Hop-by-hop option types the kernel handles itself (IPV6_TLV_* in
// include/uapi/linux/in6.h).
const (
	tlvPad1        = 0
	tlvPadN        = 1
	tlvRouterAlert = 5
	tlvCALIPSO     = 7
	tlvIOAM        = 49
	tlvJumbo       = 194

	maxHopOptsCount = 8     // IP6_DEFAULT_MAX_HBH_OPTS_CNT
	ipv6MaxPayload  = 65535 // IPV6_MAXPLEN
)

// Decoder holds per-source settings. The zero value decodes Ethernet and
// treats every unicast destination MAC as ours (PktHost).
type Decoder struct {
	Link LinkType
	// LocalMAC is the receiving interface's MAC; when HasLocalMAC,
	// unicast frames to another MAC are PktOtherHost, as eth_type_trans()
	// decides against dev->dev_addr, and IP frames among them decode as
	// MalformedOtherHost.
	LocalMAC    [6]byte
	HasLocalMAC bool
	// IPv6ExtHdrLimit, when positive, makes the IPv6 chain walk fail
	// after that many extension headers, as kernels carrying the
	// IP6_MAX_EXT_HDRS_CNT (12) limit in ipv6_find_hdr() do. Zero means
	// no limit, the behaviour of kernels before that change.
	IPv6ExtHdrLimit int
}

// Decode fills every field of *p from frame. It never allocates and never
// panics, whatever the bytes; slices in *p alias frame.
func (d *Decoder) Decode(frame []byte, p *Packet) {
	*p = Packet{}
	switch d.Link {
	case LinkEthernet:
		d.decodeEthernet(frame, p)
	case LinkRawIP:
		d.decodeRaw(frame, p)
	case LinkLinuxSLL:
		d.decodeSLL(frame, p)
	case LinkLinuxSLL2:
		d.decodeSLL2(frame, p)
	}
}

func (d *Decoder) decodeEthernet(f []byte, p *Packet) {
	if len(f) < EthernetMinSize {
		p.Malformed = MalformedTruncatedL2
		return
	}
	e := Ethernet(f)
	p.HasMAC = true
	p.DstMAC = e.Dst()
	p.SrcMAC = e.Src()
	p.PktType = d.pktType(&p.DstMAC)
	d.decodeEtherType(e.Type(), f, EthernetMinSize, false, p)
}

// pktType classifies a destination MAC as eth_type_trans() does: a
// multicast-bit address is broadcast when all ones, else multicast; any
// other address that is not the device's own is for another host.
func (d *Decoder) pktType(dst *[6]byte) PktType {
	if d.HasLocalMAC && *dst == d.LocalMAC {
		return PktHost
	}
	if dst[0]&macMulticastBit != 0 {
		if *dst == [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff} {
			return PktBroadcast
		}
		return PktMulticast
	}
	if d.HasLocalMAC {
		return PktOtherHost
	}
	return PktHost
}

// decodeEtherType strips VLAN tags starting with EtherType t, whose
// payload begins at f[off:], then decodes the network layer. The kernel
// drops a frame whose tag is cut short (skb_vlan_untag fails to pull it).
func (d *Decoder) decodeEtherType(t uint16, f []byte, off int, lo bool, p *Packet) {
	for isVLANTPID(t) {
		if len(f)-off < VLANTagSize {
			p.Malformed = MalformedTruncatedL2
			return
		}
		// The first non-zero id decides: a priority tag (id 0) is
		// stripped and the next tag is looked at, as the kernel does.
		if p.VLAN == 0 {
			p.VLAN = be16(f[off:]) & vlanIDMask
		}
		if p.NumVLANs < 255 {
			p.NumVLANs++
		}
		t = be16(f[off+2:])
		off += VLANTagSize
	}
	switch t {
	case EtherTypeIPv4:
		decodeIPv4(f[off:], p)
	case EtherTypeIPv6:
		d.decodeIPv6(f[off:], lo, p)
	}
}

// decodeRaw picks the family from the version nibble, as a tun device
// without packet information does (tun_get_user in drivers/net/tun.c),
// which drops any other version before the stack sees it.
func (d *Decoder) decodeRaw(f []byte, p *Packet) {
	if len(f) == 0 {
		p.Malformed = MalformedTruncatedL2
		return
	}
	switch f[0] >> 4 {
	case 4:
		decodeIPv4(f, p)
	case 6:
		d.decodeIPv6(f, false, p)
	default:
		p.Malformed = MalformedIPVersion
	}
}

// decodeSLL reads a Linux cooked v1 header:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|         Packet type           |        ARPHRD type            |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|    Link-layer address length  |                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
//	|           Link-layer address (8 octets, zero padded)          |
//	+                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                               |        Protocol type          |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
func (d *Decoder) decodeSLL(f []byte, p *Packet) {
	if len(f) < SLLHeaderSize {
		p.Malformed = MalformedTruncatedL2
		return
	}
	hatype := be16(f[2:])
	cookedLink(be16(f[0:]), hatype, be16(f[4:]), f[6:14], p)
	d.decodeEtherType(be16(f[14:]), f, SLLHeaderSize, hatype == arphrdLoopback, p)
}

// decodeSLL2 reads a Linux cooked v2 header:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|        Protocol type          |       Reserved (MBZ)          |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                       Interface index                         |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|          ARPHRD type          |  Packet type  | Address length|
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|           Link-layer address (8 octets, zero padded)          |
//	+                                                               +
//	|                                                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
func (d *Decoder) decodeSLL2(f []byte, p *Packet) {
	if len(f) < SLL2HeaderSize {
		p.Malformed = MalformedTruncatedL2
		return
	}
	hatype := be16(f[8:])
	cookedLink(uint16(f[10]), hatype, uint16(f[11]), f[12:20], p)
	d.decodeEtherType(be16(f[0:]), f, SLL2HeaderSize, hatype == arphrdLoopback, p)
}

// cookedLink fills the link fields of a cooked capture. Its header holds
// the kernel's own pkt_type, and only the source address: xt_mac matches
// the source MAC of an ARPHRD_ETHER device, so that is when HasMAC is set.
func cookedLink(pkttype, hatype, halen uint16, addr []byte, p *Packet) {
	if pkttype > 0xff {
		pkttype = 0xff
	}
	p.PktType = PktType(pkttype)
	if hatype == arphrdEther && halen == 6 {
		p.HasMAC = true
		copy(p.SrcMAC[:], addr[:6])
	}
}

// droppedBeforeIP reports, and records, a frame that ip_rcv_core() or
// ip6_rcv_core() discards for its pkt_type alone, before reading a byte
// of the IP header.
func droppedBeforeIP(p *Packet) bool {
	switch p.PktType {
	case PktOtherHost:
		p.Malformed = MalformedOtherHost
		return true
	case PktOutgoing:
		p.Malformed = MalformedOutgoing
		return true
	}
	return false
}

// decodeIPv4 follows ip_rcv_core() (net/ipv4/ip_input.c) check for check,
// then trims the link-layer padding as pskb_trim_rcsum(skb, tot_len) does.
func decodeIPv4(b []byte, p *Packet) {
	p.Family = FamilyIPv4
	if droppedBeforeIP(p) {
		return
	}
	if len(b) < IPv4MinSize {
		p.Malformed = MalformedIPHeaderLen
		return
	}
	h := IPv4(b)
	// The kernel tests "ihl < 5 || version != 4" as one condition; the
	// version is the more telling reason when both are wrong.
	if h.Version() != 4 {
		p.Malformed = MalformedIPVersion
		return
	}
	hl := h.HeaderLen()
	if hl < IPv4MinSize || len(b) < hl {
		p.Malformed = MalformedIPHeaderLen
		return
	}
	if !h.ChecksumValid() {
		p.Malformed = MalformedIPChecksum
		return
	}
	// tot_len beyond the frame is checked before tot_len < ihl*4. A zero
	// tot_len is the BIG TCP convention only for GSO packets built
	// inside the host (iph_totlen()); on the wire it is just too small.
	tl := h.TotalLen()
	if tl > len(b) || tl < hl {
		p.Malformed = MalformedIPTotalLen
		return
	}
	p.L3 = b[:tl]
	p.Len = tl
	p.Src = h.Src()
	p.Dst = h.Dst()
	p.TTL = h.TTL()
	p.TOS = h.TOS()
	p.Proto = h.Protocol()
	p.ProtoFound = true
	p.FragOff = h.FragOff()
	p.MoreFrags = h.MoreFrags()
	p.IsFragment = p.FragOff != 0 || p.MoreFrags
	p.L4Off = hl
	p.L4Len = tl - hl
	decodeTransport(p)
}

// decodeIPv6 follows ip6_rcv_core() (net/ipv6/ip6_input.c): version, the
// address checks, the payload length with trimming (skipped when the
// length is 0 and a hop-by-hop header follows: a jumbogram may follow),
// then the hop-by-hop options, all before PREROUTING.
func (d *Decoder) decodeIPv6(b []byte, lo bool, p *Packet) {
	p.Family = FamilyIPv6
	if droppedBeforeIP(p) {
		return
	}
	if len(b) < IPv6HeaderSize {
		p.Malformed = MalformedIPHeaderLen
		return
	}
	h := IPv6(b)
	if h.Version() != 6 {
		p.Malformed = MalformedIPVersion
		return
	}
	if badIPv6Addrs(b[8:24], b[24:40], lo, p.PktType) {
		p.Malformed = MalformedIPv6Addr
		return
	}
	plen, nh := h.PayloadLen(), h.NextHeader()
	if plen != 0 || nh != IPv6NextHopByHop {
		if plen+IPv6HeaderSize > len(b) {
			p.Malformed = MalformedIPv6PayloadLen
			return
		}
		b = b[:plen+IPv6HeaderSize]
	}
	if nh == IPv6NextHopByHop {
		n, ok := parseHopOpts(b)
		if !ok {
			p.Malformed = MalformedIPv6HopByHop
			return
		}
		b = b[:n]
	}
	p.L3 = b
	// skb->len: payload length + 40, or the jumbo payload length + 40,
	// or, for a zero payload length without a jumbo option, the whole
	// untrimmed frame, which is what the kernel then counts.
	p.Len = len(b)
	p.Src = h.Src()
	p.Dst = h.Dst()
	p.TTL = h.HopLimit()
	p.TOS = h.TrafficClass()
	d.findUpperLayer(p)
	if p.ProtoFound && p.L4Off < len(b) {
		p.L4Len = len(b) - p.L4Off
	}
	decodeTransport(p)
}

// badIPv6Addrs applies ip6_rcv_core()'s address checks for a packet
// received from the wire: loopback source or destination (RFC 4291 2.5.3)
// and interface-local multicast destination (errata 3480), both allowed
// on lo or for PACKET_LOOPBACK; multicast destination of reserved scope
// 0; multicast source (RFC 4291 2.7).
func badIPv6Addrs(src, dst []byte, lo bool, pt PktType) bool {
	if !lo && (isIPv6Loopback(src) || isIPv6Loopback(dst)) {
		return true
	}
	if dst[0] == 0xff {
		scope := dst[1] & 0x0f
		if scope == 1 && !lo && pt != PktLoopback {
			return true
		}
		if scope == 0 {
			return true
		}
	}
	return src[0] == 0xff
}

func isIPv6Loopback(a []byte) bool {
	for _, c := range a[:15] {
		if c != 0 {
			return false
		}
	}
	return a[15] == 1
}

// parseHopOpts validates the hop-by-hop header that starts at b[40] as
// ipv6_parse_hopopts() and ip6_parse_tlv(hopbyhop=true) do
// (net/ipv6/exthdrs.c), and returns the datagram length afterwards, which
// a jumbo payload option changes. Offsets are from the network header,
// as the kernel's alignment checks use them.
func parseHopOpts(b []byte) (n int, ok bool) {
	// pskb_may_pull(40 + 8), then pskb_may_pull(40 + extlen).
	if len(b) < IPv6HeaderSize+8 {
		return 0, false
	}
	end := IPv6HeaderSize + (int(b[IPv6HeaderSize+1])+1)*8
	if len(b) < end {
		return 0, false
	}
	n = len(b)
	padlen, count := 0, 0
	for off := IPv6HeaderSize + 2; off < end; {
		t := b[off]
		if t == tlvPad1 {
			padlen++
			if padlen > 7 {
				return 0, false
			}
			off++
			continue
		}
		if end-off < 2 {
			return 0, false
		}
		optlen := int(b[off+1]) + 2
		if optlen > end-off {
			return 0, false
		}
		if t == tlvPadN {
			// RFC 4942 2.1.9.5: at most 7 bytes of padding in a row,
			// and PadN carries only zeros.
			padlen += optlen
			if padlen > 7 {
				return 0, false
			}
			for _, c := range b[off+2 : off+optlen] {
				if c != 0 {
					return 0, false
				}
			}
		} else {
			count++
			if count > maxHopOptsCount {
				return 0, false
			}
			switch t {
			case tlvRouterAlert:
				if b[off+1] != 2 {
					return 0, false
				}
			case tlvIOAM:
				// Misaligned is dropped; otherwise ignored while
				// ioam6_enabled is 0.
				if off&3 != 0 {
					return 0, false
				}
			case tlvJumbo:
				if b[off+1] != 4 || off&3 != 2 {
					return 0, false
				}
				jl := be32(b[off+2:])
				if jl <= ipv6MaxPayload || be16(b[4:]) != 0 ||
					uint64(jl) > uint64(n-IPv6HeaderSize) {
					return 0, false
				}
				n = int(jl) + IPv6HeaderSize
			case tlvCALIPSO:
				// Length checks, then calipso_validate(), which finds
				// no DOI (see the file comment): dropped either way.
				return 0, false
			default:
				// ip6_tlvopt_unknown(): the top two bits of the type
				// say what to do; only 00 means skip.
				if t&0xc0 != 0 {
					return 0, false
				}
			}
			padlen = 0
		}
		off += optlen
	}
	return n, true
}

// findUpperLayer walks the extension headers of p.L3 as
// ipv6_find_hdr(skb, &thoff, -1, &fragoff, NULL) does
// (net/ipv6/exthdrs_core.c) and sets Proto, ProtoFound, L4Off, FragOff,
// IsFragment and MoreFrags.
//
// The walk stops at the first header that is not an extension header
// (including ESP) or at NEXTHDR_NONE, which it reports as the protocol.
// A first fragment's header is skipped like any other; a non-first
// fragment stops the walk at its fragment header, reporting the next
// header and the offset, unless that next header is itself an extension
// header, which fails. A header that cannot be read fails. A header's
// claimed length is not checked against the datagram: the walk only
// fails when it next tries to read, so a last extension header cut short
// still yields the upper-layer protocol, with L4Off beyond the data and
// L4Len 0.
func (d *Decoder) findUpperLayer(p *Packet) {
	b := p.L3
	nh := b[6]
	start := IPv6HeaderSize
	for count := 0; ; count++ {
		if !isIPv6ExtHdr(nh) || nh == IPv6NextNone {
			p.Proto, p.ProtoFound, p.L4Off = nh, true, start
			return
		}
		if d.IPv6ExtHdrLimit > 0 && count >= d.IPv6ExtHdrLimit {
			return
		}
		if len(b)-start < 2 {
			return
		}
		var hdrlen int
		switch nh {
		case IPv6NextFragment:
			if len(b)-start < 4 {
				return
			}
			fo := be16(b[start+2:])
			p.IsFragment = true
			p.MoreFrags = fo&1 != 0
			if off := fo &^ 7; off != 0 {
				next := b[start]
				if isIPv6ExtHdr(next) && next != IPv6NextNone {
					return
				}
				p.Proto, p.ProtoFound = next, true
				p.FragOff = off
				p.L4Off = start + IPv6FragHeaderSize
				return
			}
			hdrlen = IPv6FragHeaderSize
		case IPv6NextAuth:
			hdrlen = (int(b[start+1]) + 2) << 2
		case IPv6NextRouting:
			// The kernel reads the 4-byte routing header to look at
			// segments_left, so a 2- or 3-byte stub fails.
			if len(b)-start < 4 {
				return
			}
			fallthrough
		default:
			hdrlen = (int(b[start+1]) + 1) << 3
		}
		nh = b[start]
		start += hdrlen
	}
}

// decodeTransport fills the transport fields of an unfragmented or first
// fragment when the bytes are there. Truncation is not an error: the
// kernel lets such a packet reach PREROUTING and the match that needs the
// header hotdrops, which the engine decides from L4Len.
func decodeTransport(p *Packet) {
	if p.FragOff != 0 || !p.ProtoFound || p.L4Len <= 0 {
		return
	}
	t := p.L3[p.L4Off : p.L4Off+p.L4Len]
	switch p.Proto {
	case ProtoTCP:
		if len(t) >= 4 {
			p.SrcPort, p.DstPort = be16(t), be16(t[2:])
		}
		if len(t) >= 13 {
			p.TCPDataOff = TCP(t).DataOff()
		}
		if len(t) >= 14 {
			p.TCPFlags = TCP(t).Flags()
		}
	case ProtoUDP, protoUDPLite, protoSCTP, protoDCCP:
		if len(t) >= 4 {
			p.SrcPort, p.DstPort = be16(t), be16(t[2:])
		}
	case ProtoICMP, ProtoICMPv6:
		if (p.Proto == ProtoICMP) != (p.Family == FamilyIPv4) {
			return
		}
		if len(t) >= 2 {
			p.ICMPType, p.ICMPCode = t[0], t[1]
		}
	}
}

// Protocols whose first four bytes are the two ports, as xt_multiport
// reads them.
const (
	protoDCCP    = 33
	protoSCTP    = 132
	protoUDPLite = 136
)
