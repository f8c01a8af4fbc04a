package packet

import "net/netip"

// Frame builders for tests across sluice: the engine's rule tests, the
// kernel-oracle suite that replays the same frames through a real kernel,
// and the example capture generator. They build correct frames by
// default (IPv4 header checksum, transport checksums with the pseudo
// header, lengths), and options bend exactly one thing at a time to make
// the broken frames the decoder must classify. They allocate; they are
// not for the packet path.
//
// A typical use:
//
//	syn := packet.BuildTCP(40000, 443, packet.TCPSyn, nil)
//	frame := packet.BuildIPv4(src, dst, packet.ProtoTCP, syn,
//		packet.WithTTL(3), packet.WithVLAN(10))

// BuildOpt changes one aspect of a frame built by BuildIPv4 or BuildIPv6.
type BuildOpt func(*buildConfig)

type ipv6Ext struct {
	nh  uint8
	raw []byte // whole header; byte 0 (next header) is filled in
}

type buildConfig struct {
	link             LinkType
	srcMAC, dstMAC   [6]byte
	tags             []uint32 // TPID<<16 | TCI, outermost first
	ttl              uint8
	tos              uint8
	id               uint32
	fragOff          uint16
	moreFrags        bool
	dontFrag         bool
	ipv4Options      []byte
	totalLen         int // IPv4 total length / IPv6 payload length override; -1 = computed
	badChecksum      bool
	noL4Checksum     bool
	flowLabel        uint32
	exts             []ipv6Ext
	trailer          []byte
	sllPktType       uint16
	sllHatype        uint16
	version          int // override the version nibble; 0 = correct
	v6FragHdrPresent bool
}

// WithTTL sets the IPv4 TTL or IPv6 hop limit (default 64).
func WithTTL(ttl uint8) BuildOpt { return func(c *buildConfig) { c.ttl = ttl } }

// WithTOS sets the IPv4 TOS byte or the IPv6 traffic class.
func WithTOS(tos uint8) BuildOpt { return func(c *buildConfig) { c.tos = tos } }

// WithID sets the IPv4 identification, or the identification of IPv6
// fragment headers added later by WithFragment.
func WithID(id uint32) BuildOpt { return func(c *buildConfig) { c.id = id } }

// WithFragment makes the datagram a fragment at offset bytes (a multiple
// of 8) with the MF flag set to more. For IPv4 it sets the header fields;
// for IPv6 it appends a fragment header at this point of the extension
// header chain. The transport checksum is left alone for fragments, since
// it would cover the whole reassembled datagram.
func WithFragment(offset uint16, more bool) BuildOpt {
	return func(c *buildConfig) {
		c.fragOff, c.moreFrags = offset, more
		var h [IPv6FragHeaderSize]byte
		putBE16(h[2:], offset&^7|b2u16(more))
		putBE32(h[4:], c.id)
		c.exts = append(c.exts, ipv6Ext{nh: IPv6NextFragment, raw: h[:]})
		c.v6FragHdrPresent = true
	}
}

// WithDontFragment sets the IPv4 DF flag.
func WithDontFragment() BuildOpt { return func(c *buildConfig) { c.dontFrag = true } }

// WithIPv4Options appends IPv4 options after the fixed header, padded
// with End-of-List bytes to a multiple of four (at most 40 bytes).
func WithIPv4Options(opts []byte) BuildOpt {
	return func(c *buildConfig) { c.ipv4Options = append([]byte(nil), opts...) }
}

// WithVLAN adds an 802.1Q tag with the given VLAN id. Tags stack in call
// order, the first call being the outermost.
func WithVLAN(id uint16) BuildOpt {
	return func(c *buildConfig) { c.tags = append(c.tags, EtherTypeVLAN<<16|uint32(id&vlanIDMask)) }
}

// WithQinQ adds an 802.1ad service tag; stack WithQinQ then WithVLAN for
// a usual QinQ frame.
func WithQinQ(id uint16) BuildOpt {
	return func(c *buildConfig) { c.tags = append(c.tags, EtherTypeQinQ<<16|uint32(id&vlanIDMask)) }
}

// WithSrcMAC sets the Ethernet source (default 02:00:00:00:00:01).
func WithSrcMAC(m [6]byte) BuildOpt { return func(c *buildConfig) { c.srcMAC = m } }

// WithDstMAC sets the Ethernet destination (default 02:00:00:00:00:02).
func WithDstMAC(m [6]byte) BuildOpt { return func(c *buildConfig) { c.dstMAC = m } }

// WithLink wraps the datagram in another link layer: LinkRawIP returns
// the bare datagram, LinkLinuxSLL and LinkLinuxSLL2 a cooked header with
// the source MAC, ARPHRD_ETHER and pkttype host (see WithCookedPktType).
func WithLink(l LinkType) BuildOpt { return func(c *buildConfig) { c.link = l } }

// WithCookedPktType sets the packet type of a cooked header (0 host,
// 1 broadcast, 2 multicast, 3 other host, 4 outgoing).
func WithCookedPktType(t PktType) BuildOpt {
	return func(c *buildConfig) { c.sllPktType = uint16(t) }
}

// WithCookedHatype sets the ARPHRD type of a cooked header (default 1,
// Ethernet; 772 is the loopback device).
func WithCookedHatype(t uint16) BuildOpt { return func(c *buildConfig) { c.sllHatype = t } }

// WithTrailer appends bytes after the datagram, as Ethernet padding or
// trailing garbage that the kernel trims.
func WithTrailer(b []byte) BuildOpt {
	return func(c *buildConfig) { c.trailer = append([]byte(nil), b...) }
}

// WithLengthField overrides the IPv4 total length or the IPv6 payload
// length field; the IPv4 checksum still verifies.
func WithLengthField(n int) BuildOpt { return func(c *buildConfig) { c.totalLen = n } }

// WithBadChecksum corrupts the IPv4 header checksum.
func WithBadChecksum() BuildOpt { return func(c *buildConfig) { c.badChecksum = true } }

// WithVersion writes v into the version nibble instead of 4 or 6.
func WithVersion(v uint8) BuildOpt { return func(c *buildConfig) { c.version = int(v) } }

// WithoutL4Checksum leaves the transport bytes exactly as given.
func WithoutL4Checksum() BuildOpt { return func(c *buildConfig) { c.noL4Checksum = true } }

// WithFlowLabel sets the IPv6 flow label.
func WithFlowLabel(l uint32) BuildOpt { return func(c *buildConfig) { c.flowLabel = l & 0xfffff } }

// WithHopByHop adds a hop-by-hop options header holding opts (TLVs),
// padded with Pad1/PadN to a multiple of 8 bytes.
func WithHopByHop(opts []byte) BuildOpt {
	return WithIPv6Ext(IPv6NextHopByHop, optionsHeader(opts))
}

// WithDestOpts adds a destination options header holding opts.
func WithDestOpts(opts []byte) BuildOpt {
	return WithIPv6Ext(IPv6NextDestOptions, optionsHeader(opts))
}

// WithRouting adds a routing header of the given type and segments left
// with data after the first four bytes, padded to a multiple of 8.
func WithRouting(typ, segmentsLeft uint8, data []byte) BuildOpt {
	n := pad8(4 + len(data))
	h := make([]byte, n)
	h[1] = byte(n/8 - 1)
	h[2], h[3] = typ, segmentsLeft
	copy(h[4:], data)
	return WithIPv6Ext(IPv6NextRouting, h)
}

// WithAH adds an authentication header with the given SPI, sequence
// number and ICV (its length is the 12 fixed bytes plus the ICV, which
// should be a multiple of 4).
func WithAH(spi, seq uint32, icv []byte) BuildOpt {
	h := make([]byte, 12+len(icv))
	h[1] = byte(len(h)/4 - 2)
	putBE32(h[4:], spi)
	putBE32(h[8:], seq)
	copy(h[12:], icv)
	return WithIPv6Ext(IPv6NextAuth, h)
}

// WithIPv6Ext adds an arbitrary IPv6 extension header of type nh whose
// bytes are raw (byte 0, the next header, is filled in; the length byte
// is taken as given, so malformed headers are possible).
func WithIPv6Ext(nh uint8, raw []byte) BuildOpt {
	raw = append([]byte(nil), raw...)
	return func(c *buildConfig) { c.exts = append(c.exts, ipv6Ext{nh: nh, raw: raw}) }
}

// TLV returns one IPv6 option: type, length, data.
func TLV(typ uint8, data []byte) []byte {
	return append([]byte{typ, byte(len(data))}, data...)
}

// optionsHeader makes a hop-by-hop or destination options header around
// opts, padding it as RFC 8200 4.2 asks.
func optionsHeader(opts []byte) []byte {
	n := pad8(2 + len(opts))
	h := make([]byte, n)
	h[1] = byte(n/8 - 1)
	copy(h[2:], opts)
	switch padding := n - 2 - len(opts); {
	case padding == 1:
		h[n-1] = tlvPad1
	case padding >= 2:
		h[2+len(opts)] = tlvPadN
		h[3+len(opts)] = byte(padding - 2)
	}
	return h
}

func pad8(n int) int { return (n + 7) &^ 7 }

func b2u16(b bool) uint16 {
	if b {
		return 1
	}
	return 0
}

func newConfig(opts []BuildOpt) *buildConfig {
	c := &buildConfig{
		srcMAC:    [6]byte{0x02, 0, 0, 0, 0, 0x01},
		dstMAC:    [6]byte{0x02, 0, 0, 0, 0, 0x02},
		ttl:       64,
		totalLen:  -1,
		sllHatype: arphrdEther,
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// BuildIPv4 returns an Ethernet frame (or the link WithLink picks)
// carrying an IPv4 datagram from src to dst with protocol proto and
// transport bytes l4, whose TCP/UDP/ICMP checksum it fills in for an
// unfragmented datagram. src and dst must be IPv4 addresses.
func BuildIPv4(src, dst netip.Addr, proto uint8, l4 []byte, opts ...BuildOpt) []byte {
	c := newConfig(opts)
	optLen := (len(c.ipv4Options) + 3) &^ 3
	hl := IPv4MinSize + optLen
	ip := make([]byte, hl+len(l4))
	ver := 4
	if c.version != 0 {
		ver = c.version
	}
	ip[0] = byte(ver<<4) | byte(hl/4)
	ip[1] = c.tos
	tl := len(ip)
	if c.totalLen >= 0 {
		tl = c.totalLen
	}
	putBE16(ip[2:], uint16(tl))
	putBE16(ip[4:], uint16(c.id))
	flags := c.fragOff >> 3 & ipv4OffsetMask
	if c.moreFrags {
		flags |= ipv4FlagMF
	}
	if c.dontFrag {
		flags |= ipv4FlagDF
	}
	putBE16(ip[6:], flags)
	ip[8] = c.ttl
	ip[9] = proto
	s4, d4 := src.As4(), dst.As4()
	copy(ip[12:], s4[:])
	copy(ip[16:], d4[:])
	copy(ip[IPv4MinSize:], c.ipv4Options)
	copy(ip[hl:], l4)
	IPv4(ip).SetChecksum()
	if c.badChecksum {
		ip[10] ^= 0xff
	}
	if !c.noL4Checksum && c.fragOff == 0 && !c.moreFrags {
		var pseudo uint32
		if proto != ProtoICMP {
			pseudo = pseudoSum(ip[12:16], ip[16:20], proto, len(l4))
		}
		fillL4Checksum(proto, ip[hl:], pseudo)
	}
	return c.link2(EtherTypeIPv4, ip)
}

// BuildIPv6 returns an Ethernet frame (or the link WithLink picks)
// carrying an IPv6 packet from src to dst with the extension headers the
// options add, in order, then upper-layer protocol proto and bytes l4,
// whose TCP/UDP/ICMPv6 checksum it fills in for an unfragmented packet.
func BuildIPv6(src, dst netip.Addr, proto uint8, l4 []byte, opts ...BuildOpt) []byte {
	c := newConfig(opts)
	extLen := 0
	for _, e := range c.exts {
		extLen += len(e.raw)
	}
	ip := make([]byte, IPv6HeaderSize+extLen+len(l4))
	ver := 6
	if c.version != 0 {
		ver = c.version
	}
	putBE32(ip[0:], uint32(ver)<<28|uint32(c.tos)<<20|c.flowLabel)
	pl := len(ip) - IPv6HeaderSize
	if c.totalLen >= 0 {
		pl = c.totalLen
	}
	putBE16(ip[4:], uint16(pl))
	ip[7] = c.ttl
	s16, d16 := src.As16(), dst.As16()
	copy(ip[8:], s16[:])
	copy(ip[24:], d16[:])
	// Chain the next-header bytes: the fixed header's points at the
	// first extension, each extension's at the next, the last at proto.
	prev := 6
	off := IPv6HeaderSize
	for _, e := range c.exts {
		ip[prev] = e.nh
		copy(ip[off:], e.raw)
		prev = off
		off += len(e.raw)
	}
	ip[prev] = proto
	copy(ip[off:], l4)
	if !c.noL4Checksum && !c.v6FragHdrPresent && proto != ProtoICMP {
		fillL4Checksum(proto, ip[off:], pseudoSum(ip[8:24], ip[24:40], proto, len(l4)))
	}
	return c.link2(EtherTypeIPv6, ip)
}

// pseudoSum is the unfolded one's complement sum of the TCP/UDP pseudo
// header (RFC 793 / RFC 8200 8.1).
func pseudoSum(src, dst []byte, proto uint8, n int) uint32 {
	s := uint32(onesSum(src, 0)) + uint32(onesSum(dst, 0))
	return s + uint32(proto) + uint32(n>>16) + uint32(n&0xffff)
}

func fillL4Checksum(proto uint8, l4 []byte, pseudo uint32) {
	at := -1
	switch proto {
	case ProtoTCP:
		at = 16
	case ProtoUDP:
		at = 6
	case ProtoICMP, ProtoICMPv6:
		at = 2
	}
	if at < 0 || len(l4) < at+2 {
		return
	}
	l4[at], l4[at+1] = 0, 0
	sum := ^onesSum(l4, pseudo)
	if proto == ProtoUDP && sum == 0 {
		sum = 0xffff // RFC 768: zero means no checksum
	}
	putBE16(l4[at:], sum)
}

// link2 wraps the datagram in the configured link layer.
func (c *buildConfig) link2(etype uint16, ip []byte) []byte {
	var hdr []byte
	switch c.link {
	case LinkRawIP:
	case LinkLinuxSLL:
		hdr = make([]byte, SLLHeaderSize)
		putBE16(hdr[0:], c.sllPktType)
		putBE16(hdr[2:], c.sllHatype)
		putBE16(hdr[4:], 6)
		copy(hdr[6:], c.srcMAC[:])
		putBE16(hdr[14:], etype)
	case LinkLinuxSLL2:
		hdr = make([]byte, SLL2HeaderSize)
		putBE16(hdr[0:], etype)
		putBE32(hdr[4:], 1)
		putBE16(hdr[8:], c.sllHatype)
		hdr[10] = byte(c.sllPktType)
		hdr[11] = 6
		copy(hdr[12:], c.srcMAC[:])
	default:
		hdr = make([]byte, EthernetMinSize, EthernetMinSize+4*len(c.tags))
		copy(hdr[0:], c.dstMAC[:])
		copy(hdr[6:], c.srcMAC[:])
		hdr = hdr[:12]
		for _, t := range c.tags {
			hdr = append(hdr, byte(t>>24), byte(t>>16), byte(t>>8), byte(t))
		}
		hdr = append(hdr, byte(etype>>8), byte(etype))
	}
	out := make([]byte, 0, len(hdr)+len(ip)+len(c.trailer))
	out = append(out, hdr...)
	out = append(out, ip...)
	return append(out, c.trailer...)
}

// BuildTCP returns a 20-byte TCP header with the given ports and flags
// (sequence 1, window 65535) followed by payload. BuildIPv4/BuildIPv6
// fill in the checksum.
func BuildTCP(sport, dport uint16, flags uint8, payload []byte) []byte {
	return BuildTCPWithOptions(sport, dport, flags, nil, payload)
}

// BuildTCPWithOptions is BuildTCP with TCP options, padded with
// End-of-Option-List bytes to a multiple of four.
func BuildTCPWithOptions(sport, dport uint16, flags uint8, options, payload []byte) []byte {
	hl := TCPMinSize + (len(options)+3)&^3
	t := make([]byte, hl+len(payload))
	putBE16(t[0:], sport)
	putBE16(t[2:], dport)
	putBE32(t[4:], 1)
	if flags&TCPAck != 0 {
		putBE32(t[8:], 1)
	}
	t[12] = byte(hl/4) << 4
	t[13] = flags
	putBE16(t[14:], 65535)
	copy(t[TCPMinSize:], options)
	copy(t[hl:], payload)
	return t
}

// BuildUDP returns a UDP header with the given ports and the length field
// set, followed by payload. BuildIPv4/BuildIPv6 fill in the checksum.
func BuildUDP(sport, dport uint16, payload []byte) []byte {
	u := make([]byte, UDPSize+len(payload))
	putBE16(u[0:], sport)
	putBE16(u[2:], dport)
	putBE16(u[4:], uint16(len(u)))
	copy(u[UDPSize:], payload)
	return u
}

// BuildICMP returns an ICMP or ICMPv6 message: type, code, the four
// "rest of header" bytes (identifier and sequence for echo), and payload.
// Pass it with ProtoICMP to BuildIPv4 or ProtoICMPv6 to BuildIPv6, which
// fill in the checksum.
func BuildICMP(typ, code uint8, rest uint32, payload []byte) []byte {
	m := make([]byte, ICMPMinSize+len(payload))
	m[0], m[1] = typ, code
	putBE32(m[4:], rest)
	copy(m[ICMPMinSize:], payload)
	return m
}
