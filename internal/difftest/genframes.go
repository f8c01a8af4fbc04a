package difftest

import (
	"math/rand/v2"
	"net/netip"

	"github.com/sluice-project/sluice/internal/testnet"
	"github.com/sluice-project/sluice/oracle"
	"github.com/sluice-project/sluice/packet"
)

// Address pools. Sources repeat so that sets, hashlimit and recent see the
// same hosts again; some are inside the generated sets, some outside, and
// a few are martians (our own address, loopback, multicast, 0.0.0.0).
// IPv6 sources never include the oracle host's own address 2001:db8::1:
// the kernel's ICMPv6 errors to it loop back through lo and are counted
// in PREROUTING and INPUT a second time, which no filter on the wire
// could see.
var (
	src4Pool = mustAddrs("198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.5", "198.51.100.6", "198.51.100.9",
		"10.1.2.3", "10.200.0.9", "203.0.113.5", "203.0.113.77", "198.18.0.1", "0.1.2.3",
		"192.0.2.1", "127.0.0.1", "0.0.0.0", "224.0.0.5", "192.0.2.50", "255.255.255.255")
	dst4Pool = mustAddrs("192.0.2.1", "192.0.2.1", "192.0.2.1", "192.0.2.1", "203.0.113.9", "10.9.9.9",
		"192.0.2.255", "255.255.255.255", "224.0.0.1", "239.1.2.3", "127.0.0.1", "0.0.0.0", "240.0.0.1")
	src6Pool = mustAddrs("2001:db8:1::7", "2001:db8:1::8", "2001:db8:1::9", "2001:db8:2::1", "2001:db8:ffff::5",
		"2001:db8:77::1", "fe80::1", "::", "::ffff:198.51.100.7", "::1", "ff02::1")
	dst6Pool = mustAddrs("2001:db8::1", "2001:db8::1", "2001:db8::1", "2001:db8::1", "2001:db8:5::5", "2001:db8::99",
		"ff02::1", "ff05::1:3", "ff02::1:ff00:1", "ff02::2", "::", "::1", "ff01::1")
	srcMACPool = [][6]byte{{2, 0, 0, 0, 0, 1}, {2, 0, 0, 0, 0, 2}, {2, 0xaa, 0xbb, 0, 0, 3}}
	portPool   = []uint16{22, 53, 80, 443, 1000, 1500, 8080, 0, 123, 40000, 1023, 1024, 65535}
)

func mustAddrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

// frameGen builds frames from one seed.
type frameGen struct {
	r     *rand.Rand
	id    uint32 // fragment identifications are unique, so nothing reassembles
	alpha bool   // payloads from alphaPayload (GenerateMatchFrames)
	// addrs4 and addrs6, when set, are where both addresses of a frame
	// come from (GenerateSetsCase), instead of the fixed pools.
	addrs4, addrs6 []netip.Addr
}

func (g *frameGen) n(k int) int    { return g.r.IntN(k) }
func (g *frameGen) p(pct int) bool { return g.r.IntN(100) < pct }
func pickF[T any](g *frameGen, xs []T) T {
	return xs[g.r.IntN(len(xs))]
}

// FrameStart is the timestamp of the first generated frame; frames follow
// every FrameGap nanoseconds.
const (
	FrameStart = int64(1_700_000_000) * 1e9
	FrameGap   = int64(10_000)
)

// GenerateFrames returns n frames for the families the case has rules
// for (IPv4, IPv6 or both), deterministic in seed. Unicast frames are
// addressed to the oracle host's MAC, as `sluice verify` readdresses them.
func GenerateFrames(seed int64, n int, v4, v6 bool) []oracle.Frame {
	return generateFrames(&frameGen{r: rand.New(rand.NewPCG(uint64(seed), 0xf7a3e5)), id: 0x1000}, n, v4, v6)
}

func generateFrames(g *frameGen, n int, v4, v6 bool) []oracle.Frame {
	out := make([]oracle.Frame, 0, n)
	for i := 0; i < n; i++ {
		var f []byte
		switch {
		case v4 && v6:
			if g.p(50) {
				f = g.frame4()
			} else {
				f = g.frame6()
			}
		case v6:
			f = g.frame6()
		default:
			f = g.frame4()
		}
		out = append(out, oracle.Frame{Data: f, Time: FrameStart + int64(i)*FrameGap})
	}
	return out
}

func (g *frameGen) payload() []byte {
	if g.alpha {
		return g.alphaPayload()
	}
	var p []byte
	switch g.n(5) {
	case 0:
	case 1:
		p = []byte(pickF(g, needles))
	case 2:
		p = make([]byte, g.n(40))
		for i := range p {
			p[i] = byte(g.r.Uint32())
		}
		p = append(p, pickF(g, needles)...)
	default:
		p = make([]byte, g.n(120))
		for i := range p {
			p[i] = byte(g.r.Uint32())
		}
		if g.p(30) {
			p = append(p, []byte(pickF(g, []string{"GET /XMLRPC.PHP", "ATTACK", "attack", "USER ROOT"}))...)
		}
	}
	if g.p(3) {
		p = append(p, make([]byte, 400+g.n(1200))...)
	}
	return p
}

func (g *frameGen) tcpOptions() []byte {
	var o []byte
	for k := g.n(4); k > 0; k-- {
		switch g.n(6) {
		case 0:
			o = append(o, 2, 4, 0x05, 0xb4) // MSS
		case 1:
			o = append(o, 1, 3, 3, 7) // NOP, window scale
		case 2:
			o = append(o, 4, 2) // SACK permitted
		case 3:
			o = append(o, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0) // timestamps
		case 4:
			o = append(o, 30, 2) // MPTCP-ish, empty
		default:
			o = append(o, 1)
		}
	}
	if g.p(5) {
		o = append(o, 2, 40) // option length beyond the header
	}
	return o
}

// l4 returns a transport payload (header and data) and its protocol.
func (g *frameGen) l4(v6 bool) (uint8, []byte) {
	sport, dport := pickF(g, portPool), pickF(g, portPool)
	if g.p(10) {
		sport = uint16(g.r.Uint32())
	}
	switch k := g.n(20); {
	case k < 8:
		flags := uint8(g.r.Uint32())
		if g.p(40) {
			flags = pickF(g, []uint8{packet.TCPSyn, packet.TCPSyn | packet.TCPAck, packet.TCPAck, packet.TCPFin | packet.TCPAck, packet.TCPRst, 0, 0xff, 0x3f, packet.TCPSyn | packet.TCPFin})
		}
		if g.p(30) {
			return packet.ProtoTCP, packet.BuildTCPWithOptions(sport, dport, flags, g.tcpOptions(), g.payload())
		}
		return packet.ProtoTCP, packet.BuildTCP(sport, dport, flags, g.payload())
	case k < 14:
		return packet.ProtoUDP, packet.BuildUDP(sport, dport, g.payload())
	case k < 18:
		if v6 {
			t := pickF(g, []uint8{1, 2, 3, 4, 128, 129, 133, 134, 135, 136, 143, 200, 255})
			c := pickF(g, []uint8{0, 0, 0, 1, 4, 255})
			return packet.ProtoICMPv6, packet.BuildICMP(t, c, g.r.Uint32(), g.payload())
		}
		t := pickF(g, []uint8{0, 3, 4, 5, 8, 11, 12, 13, 14, 255, 8, 0})
		c := pickF(g, []uint8{0, 0, 0, 1, 4, 255})
		return packet.ProtoICMP, packet.BuildICMP(t, c, g.r.Uint32(), g.payload())
	default:
		proto := pickF(g, []uint8{47, 50, 51, 132, 255, 2, 0, 59, 41, 4})
		return proto, g.payload()
	}
}

func (g *frameGen) linkOpts(v6 bool) []packet.BuildOpt {
	var o []packet.BuildOpt
	o = append(o, packet.WithSrcMAC(pickF(g, srcMACPool)))
	var dst [6]byte
	copy(dst[:], testnet.BMAC)
	switch g.n(20) {
	case 0:
		dst = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	case 1:
		if v6 {
			dst = [6]byte{0x33, 0x33, 0, 0, 0, 1}
		} else {
			dst = [6]byte{0x01, 0, 0x5e, 0, 0, 1}
		}
	}
	o = append(o, packet.WithDstMAC(dst))
	switch g.n(25) {
	case 0, 1:
		o = append(o, packet.WithVLAN(0))
	case 2:
		o = append(o, packet.WithVLAN(100))
	case 3:
		// A priority tag, then VID 100: the kernel strips the first and
		// drops the frame for the second (no such VLAN device).
		o = append(o, packet.WithVLAN(0), packet.WithVLAN(100))
	}
	if g.p(40) {
		o = append(o, packet.WithTTL(pickF(g, []uint8{0, 1, 2, 63, 64, 65, 127, 128, 255})))
	}
	if g.p(40) {
		o = append(o, packet.WithTOS(pickF(g, []uint8{0, 0x10, 0xb8, 0x28, 0x02, 0x03, 0xff, 0x20, 0x08, 0x48})))
	}
	return o
}

// truncate cuts a transport header short, keeping at least 1 byte.
func (g *frameGen) truncate(l4 []byte) []byte {
	if len(l4) < 2 {
		return l4
	}
	return l4[:1+g.n(min(len(l4)-1, 20))]
}

func (g *frameGen) frame4() []byte {
	src, dst := pickF(g, src4Pool), pickF(g, dst4Pool)
	if g.p(50) {
		src = src4Pool[g.n(6)] // the common, in-set sources
	}
	if g.p(60) {
		dst = dst4Pool[0]
	}
	if g.addrs4 != nil {
		src, dst = pickF(g, g.addrs4), pickF(g, g.addrs4)
	}
	proto, l4 := g.l4(false)
	opts := g.linkOpts(false)
	// One or two mutations at most: each bends one thing.
	for m := g.n(3); m > 0; m-- {
		switch g.n(14) {
		case 0:
			opts = append(opts, packet.WithIPv4Options(pickF(g, [][]byte{
				{1, 1, 1, 1},          // NOPs
				{0x94, 4, 0, 0},       // router alert
				{7, 7, 4, 0, 0, 0, 0}, // record route
				// Timestamps: full (INPUT sees the overflow counter
				// go up), and with a prespecified address not ours
				// (left alone). One with room would have the kernel
				// write its own clock's time of day, which no frame
				// time predicts (engine/ipopts_test.go pins that).
				{0x44, 12, 13, 0x01, 0, 0, 0, 0, 0, 0, 0, 0},
				{0x44, 12, 5, 0x03, 198, 51, 100, 1, 0, 0, 0, 0},
				{0x88, 4, 0, 1}, // stream id
				{0x9e, 3, 0},    // unknown option
				{0, 1, 1, 1},    // end of list first
			})))
			if g.p(30) {
				opts = append(opts, packet.WithIPv4Options(pickF(g, [][]byte{
					{7, 2, 0, 0},                  // record route, bad length
					{0x83, 7, 4, 198, 51, 100, 1}, // loose source route (accept_source_route=0)
				})))
			}
		case 1: // first fragment
			g.id++
			opts = append(opts, packet.WithID(g.id), packet.WithFragment(0, true))
		case 2: // non-first fragment
			g.id++
			opts = append(opts, packet.WithID(g.id), packet.WithFragment(pickF(g, []uint16{16, 64, 1480, 65528}), g.p(50)))
		case 3: // tiny fragment at offset 8 bytes
			g.id++
			opts = append(opts, packet.WithID(g.id), packet.WithFragment(8, g.p(50)))
		case 4:
			opts = append(opts, packet.WithBadChecksum())
		case 5: // total length beyond the frame, or short of the headers
			opts = append(opts, packet.WithLengthField(pickF(g, []int{20 + len(l4) + 1 + g.n(30), 10, 19, 20, 21})))
		case 6: // trailing bytes (padding) after the datagram
			opts = append(opts, packet.WithTrailer(make([]byte, 1+g.n(30))))
		case 7, 8: // transport cut short, IP lengths consistent
			l4 = g.truncate(l4)
			opts = append(opts, packet.WithoutL4Checksum())
		case 9:
			opts = append(opts, packet.WithDontFragment())
		case 10:
			if g.p(20) {
				opts = append(opts, packet.WithVersion(pickF(g, []uint8{6, 5, 0})))
			}
		case 11:
			opts = append(opts, packet.WithTrailer([]byte("attack at dawn")))
		}
	}
	return packet.BuildIPv4(src, dst, proto, l4, opts...)
}

func (g *frameGen) frame6() []byte {
	src, dst := pickF(g, src6Pool), pickF(g, dst6Pool)
	if g.p(50) {
		src = src6Pool[g.n(5)]
	}
	if g.p(60) {
		dst = dst6Pool[0]
	}
	if g.addrs6 != nil {
		src, dst = pickF(g, g.addrs6), pickF(g, g.addrs6)
	}
	proto, l4 := g.l4(true)
	opts := g.linkOpts(true)
	if g.p(10) {
		opts = append(opts, packet.WithFlowLabel(g.r.Uint32()))
	}
	// An extension-header chain of up to four headers.
	if g.p(35) {
		if g.p(40) {
			opts = append(opts, packet.WithHopByHop(pickF(g, [][]byte{
				nil,
				packet.TLV(5, []byte{0, 0}),    // router alert
				packet.TLV(0x1e, []byte{1, 2}), // unknown, skip
				packet.TLV(0x9e, []byte{1}),    // unknown, discard
				packet.TLV(0xc2, []byte{0, 0, 0, 0}),
			})))
		}
		for k := g.n(3); k > 0; k-- {
			switch g.n(7) {
			case 0:
				opts = append(opts, packet.WithDestOpts(packet.TLV(0x1e, []byte{7})))
			case 1:
				opts = append(opts, packet.WithRouting(pickF(g, []uint8{0, 2, 4, 3}), pickF(g, []uint8{0, 0, 1}), make([]byte, 20)))
			case 2:
				g.id++
				opts = append(opts, packet.WithID(g.id), packet.WithFragment(0, true))
			case 3:
				g.id++
				opts = append(opts, packet.WithID(g.id), packet.WithFragment(pickF(g, []uint16{8, 64, 1232}), g.p(50)))
			case 4:
				opts = append(opts, packet.WithAH(0x100, 1, make([]byte, 4)))
			case 5:
				opts = append(opts, packet.WithHopByHop(nil)) // hop-by-hop not first
			case 6:
				// A destination options header whose length runs past the packet.
				opts = append(opts, packet.WithIPv6Ext(packet.IPv6NextDestOptions, []byte{0, byte(2 + g.n(30)), 1, 0, 0, 0, 0, 0}))
			}
		}
	}
	switch g.n(12) {
	case 0:
		proto, l4 = packet.IPv6NextNone, nil
		if g.p(50) {
			l4 = []byte("attack")
		}
	case 1, 2:
		l4 = g.truncate(l4)
		opts = append(opts, packet.WithoutL4Checksum())
	case 3:
		opts = append(opts, packet.WithLengthField(pickF(g, []int{len(l4) + 1 + g.n(60), 0, 3})))
	case 4:
		opts = append(opts, packet.WithTrailer(make([]byte, 1+g.n(20))))
	case 5:
		if g.p(20) {
			opts = append(opts, packet.WithVersion(4))
		}
	}
	return packet.BuildIPv6(src, dst, proto, l4, opts...)
}
