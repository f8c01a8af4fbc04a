//go:build linux

package xdp

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand"
	"net/netip"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/sluice-project/sluice/engine"
	"github.com/sluice-project/sluice/internal/testnet"
	"github.com/sluice-project/sluice/packet"
)

// hbhRules6 counts packets and bytes by protocol, port and length, so
// that a datagram length or a transport header read wrongly after the
// hop-by-hop options shows in the counters.
const hbhRules6 = `*raw
:PREROUTING ACCEPT [0:0]
:U - [0:0]
-A PREROUTING -m length --length 0:99
-A PREROUTING -m length --length 100:299
-A PREROUTING -p udp -j U
-A PREROUTING -p tcp -m tcp --dport 80 -j DROP
-A PREROUTING -p ipv6-icmp -m icmp6 --icmpv6-type 130
-A PREROUTING -p ipv6-icmp -j ACCEPT
-A PREROUTING -p 59
-A PREROUTING -m hl --hl-eq 1 -j DROP
-A U -p udp -m udp --dport 53 -j DROP
-A U -p udp -m udp --sport 53
-A U -m length --length 60:70 -j ACCEPT
COMMIT
`

var (
	hbhSrc = netip.MustParseAddr("2001:db8::1")
	hbhDst = netip.MustParseAddr("2001:db8::2")
)

// hbhHeader returns a hop-by-hop header (its next header byte is filled
// in by the builder) holding opts exactly, whose length byte says how
// long it is; the options must fill a multiple of 8 bytes with the 2
// fixed ones.
func hbhHeader(opts ...[]byte) []byte {
	h := []byte{0, 0}
	for _, o := range opts {
		h = append(h, o...)
	}
	if len(h)%8 != 0 {
		panic(fmt.Sprintf("hop-by-hop header of %d bytes", len(h)))
	}
	h[1] = byte(len(h)/8 - 1)
	return h
}

// pad1s returns n Pad1 options.
func pad1s(n int) []byte { return make([]byte, n) }

// padN returns a PadN option of n bytes in all (n >= 2), data zero.
func padN(n int) []byte { return append([]byte{1, byte(n - 2)}, make([]byte, n-2)...) }

// opt returns a TLV of the given type with n data bytes (all 0xaa).
func opt(typ byte, n int) []byte { return packet.TLV(typ, bytes.Repeat([]byte{0xaa}, n)) }

// jumboOpt returns a jumbo payload option with length jl.
func jumboOpt(jl uint32) []byte {
	o := []byte{tlvJumbo, 4, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(o[2:], jl)
	return o
}

// hbhCase is one hop-by-hop frame and what the decoder must say of it.
type hbhCase struct {
	name  string
	frame []byte
	want  packet.Malformed
}

// udpHBH is a UDP datagram (to port 53, or dport) behind the hop-by-hop
// header raw, with extra build options.
func udpHBH(raw []byte, dport uint16, payload int, opts ...packet.BuildOpt) []byte {
	opts = append([]packet.BuildOpt{packet.WithIPv6Ext(packet.IPv6NextHopByHop, raw)}, opts...)
	return packet.BuildIPv6(hbhSrc, hbhDst, packet.ProtoUDP, packet.BuildUDP(1234, dport, make([]byte, payload)), opts...)
}

// hbhCases covers every check of parseHopOpts with a frame that passes
// it and one that fails it.
func hbhCases() []hbhCase {
	var cs []hbhCase
	add := func(name string, malformed bool, fr []byte) {
		want := packet.MalformedNone
		if malformed {
			want = packet.MalformedIPv6HopByHop
		}
		cs = append(cs, hbhCase{name, fr, want})
	}
	udp := func(name string, malformed bool, opts ...[]byte) {
		add(name, malformed, udpHBH(hbhHeader(opts...), 53, 20))
		add(name+" (sport 53, 30 bytes)", malformed, packet.BuildIPv6(hbhSrc, hbhDst, packet.ProtoUDP,
			packet.BuildUDP(53, 9, make([]byte, 30)), packet.WithIPv6Ext(packet.IPv6NextHopByHop, hbhHeader(opts...))))
	}
	// Built by packet.WithHopByHop.
	add("WithHopByHop(nil)", false, packet.BuildIPv6(hbhSrc, hbhDst, packet.ProtoUDP, packet.BuildUDP(1, 53, nil), packet.WithHopByHop(nil)))
	add("WithHopByHop(router alert)", false, packet.BuildIPv6(hbhSrc, hbhDst, packet.ProtoICMPv6,
		packet.BuildICMP(130, 0, 0, make([]byte, 20)), packet.WithHopByHop(packet.TLV(tlvRouterAlert, []byte{0, 0})), packet.WithTTL(1)))
	add("WithHopByHop(unknown 0x80)", true, packet.BuildIPv6(hbhSrc, hbhDst, packet.ProtoUDP, packet.BuildUDP(1, 53, nil),
		packet.WithHopByHop(packet.TLV(0x80, []byte{1, 2}))))
	add("WithHopByHop(long unknown 0x3e)", false, packet.BuildIPv6(hbhSrc, hbhDst, packet.ProtoTCP,
		packet.BuildTCP(1, 80, packet.TCPSyn, nil), packet.WithHopByHop(opt(0x3e, 100))))

	// Router alert.
	udp("router alert", false, opt(tlvRouterAlert, 2), padN(2))
	udp("router alert, length 1", true, opt(tlvRouterAlert, 1), padN(3))
	udp("router alert, length 3", true, opt(tlvRouterAlert, 3), pad1s(1))
	udp("router alert, length 4", true, opt(tlvRouterAlert, 4))

	// Padding: runs of at most 7 bytes, PadN data zero.
	udp("PadN 6", false, padN(6))
	udp("6 Pad1", false, pad1s(6))
	udp("PadN 2 + PadN 4", false, padN(2), padN(4))
	for j := 0; j < 4; j++ {
		p := padN(6)
		p[2+j] = 1 << j
		udp(fmt.Sprintf("PadN 6, data byte %d non-zero", j), true, p)
	}
	for j := 0; j < 5; j++ {
		p := padN(7)
		p[2+j] = 0x80
		udp(fmt.Sprintf("PadN 7, data byte %d non-zero", j), true, p, opt(0x1e, 5))
	}
	udp("PadN 7 then an option", false, padN(7), opt(0x1e, 5))
	udp("7 Pad1 then an option", false, pad1s(7), opt(0x1e, 5))
	udp("8 Pad1", true, pad1s(8), opt(0x1e, 4))
	udp("PadN 8", true, padN(8), opt(0x1e, 4))
	udp("Pad1 + PadN 6 (7 bytes)", false, pad1s(1), padN(6), opt(0x1e, 5))
	udp("Pad1 + PadN 7 (8 bytes)", true, pad1s(1), padN(7), opt(0x1e, 4))
	udp("PadN 4 + PadN 4 (8 bytes)", true, padN(4), padN(4), opt(0x1e, 4))
	udp("PadN 4 + 3 Pad1 (7 bytes)", false, padN(4), pad1s(3), opt(0x1e, 5))
	udp("PadN 4 + 4 Pad1 (8 bytes)", true, padN(4), pad1s(4), opt(0x1e, 4))
	udp("7 Pad1, option, 7 Pad1", false, pad1s(7), opt(0x1e, 0), pad1s(7), opt(0x1e, 4))
	udp("PadN 7, option, PadN 7", false, padN(7), opt(0x1e, 0), padN(7), opt(0x1e, 4))
	udp("PadN 255 (length 253)", true, padN(255), opt(0x1e, 5))
	udp("PadN 2 at the end", false, opt(0x1e, 2), padN(2))
	udp("Pad1 at the end", false, opt(0x1e, 3), pad1s(1))

	// At most 8 options other than padding.
	eight := [][]byte{}
	for i := 0; i < 8; i++ {
		eight = append(eight, opt(0x1e, 0))
	}
	udp("8 options", false, append(eight, padN(6))...)
	udp("9 options", true, append(append([][]byte{}, eight...), opt(0x1e, 0), padN(4))...)
	udp("8 options with router alert and IOAM", false, append([][]byte{pad1s(2), opt(tlvIOAM, 2), opt(tlvRouterAlert, 2)}, eight[:6]...)...)
	udp("9 options with router alert", true, append([][]byte{opt(tlvRouterAlert, 2)}, append(append([][]byte{}, eight...), pad1s(2))...)...)
	udp("8 options, padding between", false, pad1s(1), opt(0x1e, 0), padN(3), opt(0x1e, 1), pad1s(7), opt(0x1e, 0),
		opt(0x1e, 0), padN(7), opt(0x1e, 3), opt(0x1e, 0), opt(0x1e, 0), pad1s(2), opt(0x1e, 0), padN(6))
	// The longest walk: 9 runs of 7 Pad1 around 8 options (72 calls).
	longest := [][]byte{}
	for i := 0; i < 8; i++ {
		longest = append(longest, pad1s(7), opt(0x1e, map[bool]int{true: 7, false: 0}[i == 0]))
	}
	udp("9 runs of 7 Pad1 around 8 options", false, append(longest, pad1s(7))...)
	udp("8 runs of 7 Pad1 around 8 options, then 8 Pad1", true, append(append([][]byte{}, longest...), pad1s(15))...)
	udp("8 runs of 7 Pad1 around 8 options, then a 9th option", true, append(append([][]byte{}, longest...), pad1s(2), opt(0x1e, 11))...)
	// The longest header: 2048 bytes.
	var big [][]byte
	for i := 0; i < 8; i++ {
		big = append(big, opt(0x1e, 253))
	}
	udp("2048-byte header, 8 options", false, append(big, padN(6))...)
	udp("2048-byte header, 8 options, bad padding", true, append(append([][]byte{}, big...), padN(4), []byte{0, 1})...)

	// IOAM: 4-byte aligned from the IPv6 header.
	udp("IOAM at 44 (aligned)", false, pad1s(2), opt(tlvIOAM, 2))
	udp("IOAM at 42 (misaligned)", true, opt(tlvIOAM, 2), padN(2))
	udp("IOAM at 43 (misaligned)", true, pad1s(1), opt(tlvIOAM, 2), pad1s(1))
	udp("IOAM at 45 (misaligned)", true, pad1s(3), opt(tlvIOAM, 1))
	udp("IOAM at 48 (aligned)", false, padN(6), opt(tlvIOAM, 6))

	// Jumbo payload: never valid in a frame an XDP buffer holds (its
	// length must exceed 65535); every other check fails some frame.
	jumbo := func(name string, raw []byte, plen int) {
		add(name, true, udpHBH(raw, 53, 20, packet.WithLengthField(plen)))
	}
	jumbo("jumbo 70000, zero payload length, beyond the frame", hbhHeader(jumboOpt(70000)), 0)
	jumbo("jumbo 65535, zero payload length", hbhHeader(jumboOpt(65535)), 0)
	jumbo("jumbo 65536, zero payload length", hbhHeader(jumboOpt(65536)), 0)
	jumbo("jumbo 20, zero payload length", hbhHeader(jumboOpt(20)), 0)
	jumbo("jumbo 70000, payload length 36", hbhHeader(jumboOpt(70000)), 36)
	jumbo("jumbo 0xffffffff, zero payload length", hbhHeader(jumboOpt(0xffffffff)), 0)
	jumbo("jumbo at 44 (misaligned)", hbhHeader(pad1s(2), jumboOpt(70000), padN(6)), 0)
	jumbo("jumbo of length 3", hbhHeader([]byte{tlvJumbo, 3, 1, 0, 0}, pad1s(1)), 0)
	jumbo("jumbo of length 5", hbhHeader([]byte{tlvJumbo, 5, 0, 1, 0, 0, 0}, padN(7)), 0)

	// CALIPSO, and unknown options by their top two type bits.
	udp("CALIPSO", true, opt(tlvCALIPSO, 4))
	udp("CALIPSO, length 0", true, opt(tlvCALIPSO, 0), padN(4))
	for _, typ := range []byte{0x02, 0x1e, 0x3f, 0x40, 0x5e, 0x7f, 0x80, 0x9e, 0xbf, 0xc0, 0xc3, 0xde, 0xff, 0x06, 0x31 | 0x40, 0xc2 ^ 0x80} {
		udp(fmt.Sprintf("unknown 0x%02x", typ), typ&0xc0 != 0, opt(typ, 4))
	}
	udp("unknown 0x1e after router alert and IOAM", false, pad1s(2), opt(tlvIOAM, 0), opt(tlvRouterAlert, 2), opt(0x1e, 4))

	// Cut short: the header, an option, or a length byte past the end.
	add("payload length 4 (no room for 8 bytes)", true, udpHBH(hbhHeader(padN(6)), 53, 20, packet.WithLengthField(4)))
	add("payload length 7", true, udpHBH(hbhHeader(padN(6)), 53, 20, packet.WithLengthField(7)))
	add("payload length 8, an 8-byte header", false, udpHBH(hbhHeader(padN(6)), 53, 20, packet.WithLengthField(8)))
	add("payload length 8, a 16-byte header", true, udpHBH(hbhHeader(padN(6), opt(0x1e, 6)), 53, 20, packet.WithLengthField(8)))
	add("payload length 15, a 16-byte header", true, udpHBH(hbhHeader(padN(6), opt(0x1e, 6)), 53, 20, packet.WithLengthField(15)))
	add("payload length 16, a 16-byte header", false, udpHBH(hbhHeader(padN(6), opt(0x1e, 6)), 53, 20, packet.WithLengthField(16)))
	add("header length beyond the frame", true, packet.BuildIPv6(hbhSrc, hbhDst, packet.ProtoUDP, nil,
		packet.WithIPv6Ext(packet.IPv6NextHopByHop, []byte{0, 200, 1, 4, 0, 0, 0, 0})))
	udp("option longer than the header", true, opt(0x1e, 10)[:6])
	udp("option length byte is the header's last", true, padN(5), []byte{0x1e})
	udp("Pad1 is the header's last byte", false, padN(5), pad1s(1))
	udp("PadN length byte is the header's last", true, padN(5), []byte{tlvPadN})
	udp("PadN longer than the header", true, padN(4), []byte{tlvPadN, 3})
	udp("router alert cut by the header's end", true, padN(3), []byte{tlvRouterAlert, 2, 0})
	cut := func(name string, fr []byte, n int) {
		cs = append(cs, hbhCase{name, fr[:14+40+n], packet.MalformedIPv6PayloadLen})
		fr = append([]byte(nil), fr...)
		fr[18], fr[19] = 0, 0
		cs = append(cs, hbhCase{name + ", zero payload length", fr[:14+40+n], packet.MalformedIPv6HopByHop})
	}
	cut("frame cut inside the header", udpHBH(hbhHeader(padN(6), opt(0x1e, 6)), 53, 20), 12)
	cut("frame cut after 2 header bytes", udpHBH(hbhHeader(padN(6)), 53, 20), 2)
	cut("frame cut after 7 header bytes", udpHBH(hbhHeader(padN(6)), 53, 20), 7)
	cut("frame cut after the 8-byte header", udpHBH(hbhHeader(padN(6)), 53, 20), 8)
	cs[len(cs)-1].want = packet.MalformedNone

	// A zero payload length without a jumbo option: the datagram is the
	// whole frame, trailer included.
	add("zero payload length, no jumbo", false, udpHBH(hbhHeader(opt(tlvRouterAlert, 2), padN(2)), 53, 20, packet.WithLengthField(0)))
	add("zero payload length, trailer", false, udpHBH(hbhHeader(padN(6)), 99, 10, packet.WithLengthField(0), packet.WithTrailer(make([]byte, 30))))
	add("zero payload length, bad options", true, udpHBH(hbhHeader(opt(0x80, 4)), 53, 20, packet.WithLengthField(0)))
	add("zero payload length, 8-byte frame payload", false, packet.BuildIPv6(hbhSrc, hbhDst, packet.IPv6NextNone, nil,
		packet.WithHopByHop(nil), packet.WithLengthField(0)))
	cs = append(cs, hbhCase{"payload length beyond the frame", udpHBH(hbhHeader(padN(6)), 53, 20, packet.WithLengthField(200)), packet.MalformedIPv6PayloadLen})
	add("shorter payload length, trailer", false, udpHBH(hbhHeader(padN(6)), 53, 200, packet.WithLengthField(30)))

	// The hop-by-hop header with other extension headers.
	add("HBH + fragment (first) + UDP", false, udpHBH(hbhHeader(opt(tlvRouterAlert, 2), padN(2)), 53, 20,
		packet.WithFragment(0, true)))
	add("HBH + fragment (non-first) + UDP", false, udpHBH(hbhHeader(padN(6)), 53, 20, packet.WithFragment(64, false)))
	add("bad HBH + fragment + UDP", true, udpHBH(hbhHeader(opt(0xc0, 4)), 53, 20, packet.WithFragment(0, true)))
	add("HBH + dest opts + routing + AH + UDP", false, udpHBH(hbhHeader(opt(0x1e, 4)), 53, 20,
		packet.WithDestOpts(nil), packet.WithRouting(0, 1, nil), packet.WithAH(1, 2, make([]byte, 4))))
	add("HBH, payload length ending in the UDP header", false, udpHBH(hbhHeader(padN(6)), 53, 20, packet.WithLengthField(10)))
	add("HBH + TCP", false, packet.BuildIPv6(hbhSrc, hbhDst, packet.ProtoTCP, packet.BuildTCP(1, 80, packet.TCPSyn, nil),
		packet.WithIPv6Ext(packet.IPv6NextHopByHop, hbhHeader(padN(6)))))
	add("HBH + NONE", false, packet.BuildIPv6(hbhSrc, hbhDst, packet.IPv6NextNone, make([]byte, 16),
		packet.WithIPv6Ext(packet.IPv6NextHopByHop, hbhHeader(padN(6)))))
	add("HBH + hop-by-hop again", false, udpHBH(hbhHeader(padN(6)), 53, 20, packet.WithHopByHop(opt(0x80, 2))))
	add("HBH on VLAN 5", false, udpHBH(hbhHeader(padN(6)), 53, 20, packet.WithVLAN(5)))
	add("bad HBH on VLAN 5", true, udpHBH(hbhHeader(opt(0x9e, 4)), 53, 20, packet.WithVLAN(5), packet.WithTrailer([]byte{1})))
	add("bad HBH on VLAN 0", true, udpHBH(hbhHeader(opt(tlvCALIPSO, 4)), 53, 20, packet.WithVLAN(0)))
	return cs
}

// extChains are frames with long extension-header chains: the walk has
// no limit, as the engine's decoder (IPv6ExtHdrLimit 0).
func extChains() [][]byte {
	var frames [][]byte
	for _, n := range []int{7, 8, 9, 10, 12, 13, 16, 17, 30, 100, 300} {
		var opts []packet.BuildOpt
		for i := 0; i < n; i++ {
			switch i % 4 {
			case 0, 1:
				opts = append(opts, packet.WithDestOpts(nil))
			case 2:
				opts = append(opts, packet.WithRouting(0, 0, make([]byte, 4)))
			default:
				opts = append(opts, packet.WithAH(1, 2, make([]byte, 4*(i%3))))
			}
		}
		hbh := append([]packet.BuildOpt{packet.WithHopByHop(nil)}, opts...)
		frames = append(frames,
			packet.BuildIPv6(hbhSrc, hbhDst, packet.ProtoUDP, packet.BuildUDP(1, 53, nil), opts...),
			packet.BuildIPv6(hbhSrc, hbhDst, packet.ProtoTCP, packet.BuildTCP(1, 80, packet.TCPSyn, nil), hbh...),
			packet.BuildIPv6(hbhSrc, hbhDst, packet.ProtoUDP, packet.BuildUDP(53, 1, nil), append(opts, packet.WithFragment(0, true))...),
			packet.BuildIPv6(hbhSrc, hbhDst, packet.ProtoUDP, packet.BuildUDP(53, 1, nil), append(hbh, packet.WithFragment(8, true))...),
			packet.BuildIPv6(hbhSrc, hbhDst, packet.ProtoUDP, packet.BuildUDP(53, 1, nil), append(opts, packet.WithFragment(8, true), packet.WithDestOpts(nil))...),
		)
		// Cut short by the payload length: inside the chain.
		fr := packet.BuildIPv6(hbhSrc, hbhDst, packet.ProtoUDP, packet.BuildUDP(1, 53, nil), hbh...)
		pl := 8 * n / 2
		fr[18], fr[19] = byte(pl>>8), byte(pl)
		frames = append(frames, fr)
	}
	return frames
}

// hbhRandomFrames builds hop-by-hop headers from random options: half
// of them mostly well-formed (so that a single wrong byte, count or
// alignment decides), half anything, to catch what the table misses.
func hbhRandomFrames(n int, seed int64) [][]byte {
	rng := rand.New(rand.NewSource(seed))
	types := []byte{tlvPad1, tlvPadN, tlvPadN, tlvRouterAlert, tlvCALIPSO, tlvIOAM, tlvJumbo, 0x1e, 0x1e, 0x3e, 0x5e, 0x9e, 0xde}
	// noisy is any option, of any length.
	noisy := func() []byte {
		typ := types[rng.Intn(len(types))]
		if rng.Intn(10) == 0 {
			typ = byte(rng.Intn(256))
		}
		if typ == tlvPad1 {
			return []byte{0}
		}
		l := rng.Intn(7)
		switch {
		case typ == tlvRouterAlert && rng.Intn(3) > 0:
			l = 2
		case typ == tlvJumbo && rng.Intn(3) > 0:
			l = 4
		case rng.Intn(30) == 0:
			l = rng.Intn(256)
		}
		o := []byte{typ, byte(l)}
		for i := 0; i < l; i++ {
			b := byte(0)
			if typ != tlvPadN || rng.Intn(8) == 0 {
				b = byte(rng.Intn(256))
			}
			o = append(o, b)
		}
		if typ == tlvJumbo && l == 4 {
			binary.BigEndian.PutUint32(o[2:], []uint32{0, 65535, 65536, 70000, uint32(rng.Intn(4000))}[rng.Intn(5)])
		}
		return o
	}
	// tidy is an option that passes unless the padding or the count
	// around it is wrong (or, rarely, the alignment of an IOAM option).
	tidy := func(at int) []byte {
		switch rng.Intn(8) {
		case 0:
			return pad1s(1 + rng.Intn(3))
		case 1:
			return padN(2 + rng.Intn(4))
		case 2:
			return opt(tlvRouterAlert, 2)
		case 3:
			if at%4 == 0 || rng.Intn(10) == 0 {
				return opt(tlvIOAM, rng.Intn(8))
			}
			return pad1s(4 - at%4)
		default:
			return opt([]byte{0x1e, 0x3e, 0x02, 0x1f}[rng.Intn(4)], rng.Intn(12))
		}
	}
	var frames [][]byte
	for len(frames) < n {
		var h []byte
		size := 8 * (1 + rng.Intn(4))
		if rng.Intn(20) == 0 {
			size = 8 * (1 + rng.Intn(256))
		}
		h = append(h, 0, byte(size/8-1))
		clean := rng.Intn(2) == 0
		for len(h) < size {
			if clean {
				if left := size - len(h); left <= 7 && rng.Intn(2) == 0 {
					if left == 1 {
						h = append(h, 0)
					} else {
						h = append(h, padN(left)...)
					}
					break
				}
				h = append(h, tidy(40+len(h))...)
			} else {
				h = append(h, noisy()...)
			}
		}
		if !clean && rng.Intn(4) > 0 || clean && len(h) > size {
			h = h[:size] // the last option may run past the end
		}
		var opts []packet.BuildOpt
		opts = append(opts, packet.WithIPv6Ext(packet.IPv6NextHopByHop, h))
		if rng.Intn(3) == 0 {
			opts = append(opts, packet.WithFragment(uint16(rng.Intn(2)*8), rng.Intn(2) == 0))
		}
		switch rng.Intn(8) {
		case 0:
			opts = append(opts, packet.WithLengthField(0))
		case 1:
			opts = append(opts, packet.WithLengthField(rng.Intn(len(h)+20)))
		case 2:
			opts = append(opts, packet.WithTrailer(make([]byte, rng.Intn(40))))
		}
		fr := packet.BuildIPv6(hbhSrc, hbhDst, packet.ProtoUDP, packet.BuildUDP(uint16(rng.Intn(2)*53), 53, make([]byte, rng.Intn(60))), opts...)
		if len(fr) > 3000 {
			continue
		}
		frames = append(frames, fr)
	}
	return frames
}

// TestHopByHopCases checks that each table frame is what its case says
// (the decoder's verdict on its options), then runs them, the long
// chains and random hop-by-hop headers through the program and the
// engine: verdicts, statistics, malformed reasons and every counter
// must agree, with no fallback.
func TestHopByHopCases(t *testing.T) {
	var frames [][]byte
	var dec packet.Decoder
	var p packet.Packet
	for _, c := range hbhCases() {
		dec.Decode(c.frame, &p)
		if p.Malformed != c.want {
			t.Errorf("%s: decoder says %v, the case wants %v\n% x", c.name, p.Malformed, c.want, c.frame)
		}
		frames = append(frames, c.frame)
	}
	var long int
	for _, fr := range extChains() {
		dec.Decode(fr, &p)
		if p.Malformed != packet.MalformedNone {
			t.Fatalf("long chain: %v", p.Malformed)
		}
		long++
		frames = append(frames, fr)
	}
	testnet.RequireForTest(t)
	random := hbhRandomFrames(20000, 1)
	var bad, good int
	for _, fr := range random {
		dec.Decode(fr, &p)
		if p.Malformed == packet.MalformedIPv6HopByHop {
			bad++
		} else {
			good++
		}
	}
	t.Logf("%d table frames, %d long chains, random: %d with bad options, %d valid", len(frames)-long, long, bad, good)
	if bad < 1000 || good < 1000 {
		t.Errorf("random frames: %d bad, %d good", bad, good)
	}
	for _, tc := range []struct {
		name string
		text string
	}{{"counting rules", hbhRules6}, {"synthetic rules", synthRules6}} {
		t.Run(tc.name, func(t *testing.T) {
			rs6 := parse6(t, tc.text)
			spec, bySite := diffBoth(t, nil, rs6, CompileOptions{InIface: "eth0"}, append(append([][]byte{}, frames...), random...))
			if len(bySite) > 0 {
				t.Errorf("fallbacks: %v", bySite)
			}
			for _, fs := range spec.Fallback {
				if fs.Family == packet.FamilyIPv6 {
					t.Errorf("IPv6 site: %+v", fs)
				}
			}
		})
	}
}

// TestHopByHopJumbo reaches the valid-jumbo path, which needs a frame of
// over 64 KiB, by lowering the program's IPV6_MAXPLEN: the program's
// verdict and counters on a jumbogram must then be the engine's on the
// same datagram sent without one (the payload length field set to the
// jumbo length, the option turned into an unknown skippable option of
// the same length, which counts the same).
func TestHopByHopJumbo(t *testing.T) {
	testnet.RequireForTest(t)
	saved := ipv6MaxPayload
	ipv6MaxPayload = 10
	defer func() { ipv6MaxPayload = saved }()
	rs6 := parse6(t, hbhRules6)
	spec, err := Compile(nil, rs6, CompileOptions{InIface: "eth0"})
	if err != nil {
		t.Fatal(err)
	}
	f, err := spec.Load()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ref, err := engine.Compile(engine.Config{Rules6: rs6, InIface: "eth0"}, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	wr := ref.NewWorker()

	// jumbogram returns the program's frame (plen 0, jumbo options of
	// lengths jls) and the engine's equivalent (plen jls' last, the
	// options 0x1e), or nil when the jumbo options are invalid there
	// too (the engine then sees the program's frame).
	type pair struct {
		name      string
		prog, eng []byte
		malformed bool
	}
	build := func(name string, payload, trailer int, malformed bool, plen int, opts ...[]byte) pair {
		h := hbhHeader(opts...)
		mk := func(h []byte, plen int) []byte {
			return udpHBH(h, 53, payload, packet.WithLengthField(plen), packet.WithTrailer(make([]byte, trailer)))
		}
		pr := pair{name: name, prog: mk(h, plen), malformed: malformed}
		if malformed {
			pr.eng = pr.prog
			return pr
		}
		e := append([]byte(nil), h...)
		last := 0
		for i := 2; i+6 <= len(e); i++ {
			if e[i] == tlvJumbo && e[i+1] == 4 {
				last = int(binary.BigEndian.Uint32(e[i+2:]))
				e[i] = 0x1e
				i += 5
			} else if e[i] != tlvPad1 {
				i += 1 + int(e[i+1])
			}
		}
		pr.eng = mk(e, last)
		return pr
	}
	dgram := func(payload int) uint32 { return uint32(8 + 8 + payload) } // jumbo length of an 8-byte HBH + UDP
	pairs := []pair{
		build("jumbo = the datagram", 200, 0, false, 0, jumboOpt(dgram(200))),
		build("jumbo, trailer trimmed", 200, 30, false, 0, jumboOpt(dgram(200))),
		build("jumbo inside the UDP payload", 200, 0, false, 0, jumboOpt(dgram(150))),
		build("jumbo ending in the UDP header", 200, 0, false, 0, jumboOpt(13)),
		build("jumbo 11 (just over)", 200, 0, false, 0, jumboOpt(11)),
		build("jumbo 10 (not over)", 200, 0, true, 0, jumboOpt(10)),
		build("jumbo 1 byte past the frame", 200, 0, true, 0, jumboOpt(dgram(200)+1)),
		build("jumbo = frame with trailer", 200, 7, false, 0, jumboOpt(dgram(200)+7)),
		build("jumbo with a payload length", 200, 0, true, int(dgram(200)), jumboOpt(dgram(200))),
		build("jumbo misaligned", 200, 0, true, 0, pad1s(2), jumboOpt(dgram(200)+8), padN(6)),
		build("two jumbos, shrinking", 300, 0, false, 0, jumboOpt(dgram(300)+8), pad1s(2), jumboOpt(250)),
		build("two jumbos, growing", 300, 0, true, 0, jumboOpt(200), pad1s(2), jumboOpt(250)),
		build("jumbo then a bad option", 300, 0, true, 0, jumboOpt(200), opt(0x80, 6)),
		build("jumbo, router alert, padding", 300, 0, false, 0, jumboOpt(dgram(300)+8), opt(tlvRouterAlert, 2), padN(4)),
	}
	var dec packet.Decoder
	var p packet.Packet
	prev := make([]uint64, spec.NumCounters())
	prevRef, chains := flat(ref.Report(wr))
	prevProg, _ := flat(spec.Report(prev, nil, rs6))
	for i, pr := range pairs {
		dec.Decode(pr.eng, &p)
		if got := p.Malformed == packet.MalformedIPv6HopByHop; got != pr.malformed {
			t.Fatalf("%s: engine frame decodes as %v", pr.name, p.Malformed)
		}
		v := wr.Process(&p, int64(i))
		ret, err := f.Program.Run(&ebpf.RunOptions{Data: pr.prog})
		if err != nil {
			t.Fatal(err)
		}
		cur, err := f.ReadCounters()
		if err != nil {
			t.Fatal(err)
		}
		want := uint32(xdpPass)
		if v == engine.Drop || v == engine.Hotdrop || v == engine.Malformed {
			want = xdpDrop
		}
		if st := verdictStat[v]; ret != want || cur[st] != prev[st]+1 {
			t.Errorf("%s: program returned %d, engine %v", pr.name, ret, v)
		}
		eng, _ := flat(ref.Report(wr))
		prog, _ := flat(spec.Report(cur, nil, rs6))
		var moved []string
		for k := range eng {
			if de, dp := eng[k]-prevRef[k], prog[k]-prevProg[k]; de != dp {
				t.Errorf("%s: counter %d (%s): engine +%d, program +%d", pr.name, k, chains[k], de, dp)
			} else if de != 0 {
				moved = append(moved, fmt.Sprintf("%d:+%d", k, de))
			}
		}
		t.Logf("%s: %v (Len %d), counters %s", pr.name, v, p.Len, strings.Join(moved, " "))
		prev, prevRef, prevProg = cur, eng, prog
	}
}

// TestHopByHopNoWholePacketSite: an IPv6 ruleset compiles with no IPv6
// whole-packet site, so nothing blocks an XDP-only deployment.
func TestHopByHopNoWholePacketSite(t *testing.T) {
	rs6 := parse6(t, "*raw\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p udp -m udp --dport 53 -j DROP\nCOMMIT\n")
	spec, err := Compile(nil, rs6, CompileOptions{InIface: "eth0"})
	if err != nil {
		t.Fatal(err)
	}
	for _, fs := range spec.Blocking() {
		t.Errorf("blocking site: %+v", fs)
	}
	t.Logf("%d instructions", spec.Instructions())
}

// TestHopByHopVerifier logs the verifier's work for IPv6 programs
// (processed instructions), which the loops keep independent of the
// header's length.
func TestHopByHopVerifier(t *testing.T) {
	testnet.RequireForTest(t)
	for _, tc := range []struct{ name, text string }{{"one rule", "*raw\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p udp -m udp --dport 53 -j DROP\nCOMMIT\n"},
		{"counting rules", hbhRules6}, {"synthetic rules", synthRules6}} {
		spec, err := Compile(nil, parse6(t, tc.text), CompileOptions{InIface: "eth0"})
		if err != nil {
			t.Fatal(err)
		}
		cs := &ebpf.CollectionSpec{
			Maps:     map[string]*ebpf.MapSpec{"counters": spec.Counters.Copy()},
			Programs: map[string]*ebpf.ProgramSpec{"filter": spec.Program.Copy()},
		}
		coll, err := ebpf.NewCollectionWithOptions(cs, ebpf.CollectionOptions{Programs: ebpf.ProgramOptions{LogLevel: ebpf.LogLevelStats}})
		if err != nil {
			t.Fatal(err)
		}
		log := coll.Programs["filter"].VerifierLog
		coll.Close()
		stats := ""
		for _, l := range strings.Split(log, "\n") {
			if strings.HasPrefix(l, "processed") {
				stats = l
			}
		}
		t.Logf("%s: %d instructions; verifier: %s", tc.name, spec.Instructions(), stats)
	}
}

// BenchmarkHopByHop reports the program's time per packet (kernel
// BPF_PROG_TEST_RUN repeat) for IPv6 frames with and without hop-by-hop
// options and extension-header chains.
func BenchmarkHopByHop(b *testing.B) {
	testnet.RequireForTest(b)
	f := loadForTest(b, nil, parse6(b, hbhRules6), CompileOptions{InIface: "eth0"})
	var longest [][]byte
	for i := 0; i < 8; i++ {
		longest = append(longest, pad1s(7), opt(0x1e, map[bool]int{true: 7, false: 0}[i == 0]))
	}
	longest = append(longest, pad1s(7))
	var chain10 []packet.BuildOpt
	for i := 0; i < 10; i++ {
		chain10 = append(chain10, packet.WithDestOpts(nil))
	}
	for _, tc := range []struct {
		name string
		fr   []byte
	}{
		{"udp", packet.BuildIPv6(hbhSrc, hbhDst, packet.ProtoUDP, packet.BuildUDP(1, 53, make([]byte, 20)))},
		{"hbh-router-alert-udp", udpHBH(hbhHeader(opt(tlvRouterAlert, 2), padN(2)), 53, 20)},
		{"hbh-padn-udp", udpHBH(hbhHeader(padN(6)), 53, 20)},
		{"mld-report", packet.BuildIPv6(hbhSrc, hbhDst, packet.ProtoICMPv6, packet.BuildICMP(143, 0, 0, make([]byte, 20)),
			packet.WithHopByHop(packet.TLV(tlvRouterAlert, []byte{0, 0})), packet.WithTTL(1))},
		{"hbh-72-calls-udp", udpHBH(hbhHeader(longest...), 53, 20)},
		{"hbh-bad-unknown", udpHBH(hbhHeader(opt(0x80, 4)), 53, 20)},
		{"hbh-frag-udp", udpHBH(hbhHeader(padN(6)), 53, 20, packet.WithFragment(0, true))},
		{"10-destopts-udp", packet.BuildIPv6(hbhSrc, hbhDst, packet.ProtoUDP, packet.BuildUDP(1, 53, make([]byte, 20)), chain10...)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			benchRunForTest(b, f.Program, [][]byte{tc.fr}, 10000)
		})
	}
}

// TestHopByHopWithOtherCallbacks: the IPv6 loops share the program with
// the string-match callbacks, the hashlimit purge callback and the
// capture block (whose stack use is the whole 512 bytes): the full
// example with an IPv6 ruleset loads in every combination, and the
// string example with capture gives the engine's counters on both
// families.
func TestHopByHopWithOtherCallbacks(t *testing.T) {
	testnet.RequireForTest(t)
	rs6 := parse6(t, hbhRules6)
	for _, opts := range []CompileOptions{
		{InIface: "eth0", Capture: true, XSKQueues: 2, RateLimits: RateLimitsXDP},
		{InIface: "eth0", RateLimits: RateLimitsXDP},
		{InIface: "eth0", Capture: true},
	} {
		spec, err := Compile(exampleFull(t), rs6, opts)
		if err != nil {
			t.Fatal(err)
		}
		f, err := spec.Load()
		if err != nil {
			t.Fatalf("%+v: %v", opts, err)
		}
		f.Close()
		t.Logf("example + IPv6, capture %v, rate limits %v: %d instructions", opts.Capture, opts.RateLimits, spec.Instructions())
	}
	var frames [][]byte
	for _, c := range hbhCases() {
		frames = append(frames, c.frame)
	}
	frames = append(frames, exampleStringFrames()...)
	frames = append(frames, synthFrames6(2000, 5)...)
	diffBoth(t, exampleWithStrings(t), rs6, CompileOptions{InIface: "eth0", Capture: true}, frames, append(wholeSites, inputSites...)...)
}
