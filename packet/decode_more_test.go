package packet

import (
	"bytes"
	"net/netip"
	"testing"
)

var (
	v6a = netip.MustParseAddr("2001:db8::1")
	v6b = netip.MustParseAddr("2001:db8::2")
	v4a = netip.MustParseAddr("192.0.2.1")
	v4b = netip.MustParseAddr("192.0.2.2")
)

func decodeForTest(d Decoder, frame []byte) Packet {
	var p Packet
	d.Decode(frame, &p)
	return p
}

// TestHopByHop covers ipv6_parse_hopopts()/ip6_parse_tlv(), which run
// before PREROUTING: a failure drops the packet there.
func TestHopByHop(t *testing.T) {
	udp := BuildUDP(1000, 53, []byte("x"))
	cases := []struct {
		name string
		hbh  []byte // raw header; byte 0 (next header) is filled in
		mal  Malformed
	}{
		{"router alert", optionsHeader(TLV(tlvRouterAlert, []byte{0, 0})), MalformedNone},
		{"router alert wrong length", optionsHeader(TLV(tlvRouterAlert, []byte{0, 0, 0})), MalformedIPv6HopByHop},
		{"unknown option, skip bits 00", optionsHeader(TLV(0x1e, []byte{1, 2})), MalformedNone},
		{"unknown option, discard bits 01", optionsHeader(TLV(0x5e, []byte{1, 2})), MalformedIPv6HopByHop},
		{"unknown option, discard+icmp bits 10", optionsHeader(TLV(0x9e, []byte{1, 2})), MalformedIPv6HopByHop},
		{"unknown option, bits 11", optionsHeader(TLV(0xde, []byte{1, 2})), MalformedIPv6HopByHop},
		{"padding only (6 bytes)", optionsHeader(nil), MalformedNone},
		{"8 bytes of padding in a row", []byte{0, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, MalformedIPv6HopByHop},
		{"seven Pad1 then a skipped option", []byte{0, 1, 0, 0, 0, 0, 0, 0, 0, 0x1e, 4, 0, 0, 0, 0, 0}, MalformedNone},
		{"PadN with non-zero payload", []byte{0, 0, 1, 4, 0, 0, 9, 0}, MalformedIPv6HopByHop},
		{"option runs past the header", []byte{0, 0, 0x1e, 9, 0, 0, 0, 0}, MalformedIPv6HopByHop},
		{"last byte is an option type without length", []byte{0, 0, 1, 3, 0, 0, 0, 0x1e}, MalformedIPv6HopByHop},
		{"eight options", optionsHeader(bytes.Repeat(TLV(0x1e, nil), 8)), MalformedNone},
		{"nine options", optionsHeader(bytes.Repeat(TLV(0x1e, nil), 9)), MalformedIPv6HopByHop},
		{"jumbo option in a packet with a payload length", []byte{0, 0, tlvJumbo, 4, 0, 1, 0, 0}, MalformedIPv6HopByHop},
		{"CALIPSO (no DOI configured)", optionsHeader(TLV(tlvCALIPSO, make([]byte, 8))), MalformedIPv6HopByHop},
		{"IOAM aligned: ignored", []byte{0, 0, 1, 0, tlvIOAM, 2, 0, 0}, MalformedNone},
		{"IOAM misaligned", []byte{0, 0, tlvIOAM, 2, 0, 0, 1, 0}, MalformedIPv6HopByHop},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := decodeForTest(Decoder{}, BuildIPv6(v6a, v6b, ProtoUDP, udp, WithIPv6Ext(IPv6NextHopByHop, c.hbh)))
			if p.Malformed != c.mal {
				t.Fatalf("Malformed = %v, want %v", p.Malformed, c.mal)
			}
			if c.mal == MalformedNone && (p.Proto != ProtoUDP || p.L4Off != 40+len(c.hbh) || p.DstPort != 53) {
				t.Fatalf("Proto %d L4Off %d DstPort %d", p.Proto, p.L4Off, p.DstPort)
			}
		})
	}

	t.Run("truncated header", func(t *testing.T) {
		// Payload length 4: the 8-byte minimum cannot be pulled.
		f := BuildIPv6(v6a, v6b, IPv6NextHopByHop, []byte{59, 0, 1, 0})
		if p := decodeForTest(Decoder{}, f); p.Malformed != MalformedIPv6HopByHop {
			t.Fatalf("Malformed = %v", p.Malformed)
		}
	})
}

// TestJumbogram: a zero payload length with a hop-by-hop header skips the
// trim in ip6_rcv_core; a valid jumbo option then trims to its length,
// and without one the whole frame stays as skb->len.
func TestJumbogram(t *testing.T) {
	big := make([]byte, 70000)
	jumbo := []byte{0, 0, tlvJumbo, 4, 0, 0, 0, 0}
	putBE32(jumbo[4:], uint32(8+UDPSize+len(big)))
	f := BuildIPv6(v6a, v6b, ProtoUDP, BuildUDP(1, 2, big),
		WithIPv6Ext(IPv6NextHopByHop, jumbo), WithLengthField(0), WithTrailer(make([]byte, 10)), WithoutL4Checksum())
	p := decodeForTest(Decoder{}, f)
	if p.Malformed != MalformedNone || p.Len != 40+8+8+len(big) || p.Proto != ProtoUDP || p.DstPort != 2 {
		t.Fatalf("jumbo: %v Len %d Proto %d", p.Malformed, p.Len, p.Proto)
	}

	putBE32(jumbo[4:], 65535) // not a jumbo length
	f = BuildIPv6(v6a, v6b, ProtoUDP, BuildUDP(1, 2, big), WithIPv6Ext(IPv6NextHopByHop, jumbo), WithLengthField(0))
	if p := decodeForTest(Decoder{}, f); p.Malformed != MalformedIPv6HopByHop {
		t.Fatalf("jumbo <= 65535: %v", p.Malformed)
	}

	putBE32(jumbo[4:], 200000) // beyond the frame
	f = BuildIPv6(v6a, v6b, ProtoUDP, BuildUDP(1, 2, big), WithIPv6Ext(IPv6NextHopByHop, jumbo), WithLengthField(0))
	if p := decodeForTest(Decoder{}, f); p.Malformed != MalformedIPv6HopByHop {
		t.Fatalf("jumbo beyond frame: %v", p.Malformed)
	}

	f = BuildIPv6(v6a, v6b, ProtoUDP, BuildUDP(1, 2, nil), WithHopByHop(nil), WithLengthField(0), WithTrailer(make([]byte, 6)))
	p = decodeForTest(Decoder{}, f)
	if p.Malformed != MalformedNone || p.Len != len(f)-EthernetMinSize {
		t.Fatalf("zero payload length without jumbo: %v Len %d, want %d", p.Malformed, p.Len, len(f)-EthernetMinSize)
	}
}

func TestIPv6AddressChecks(t *testing.T) {
	cases := []struct {
		src, dst string
		lo       bool
		mal      Malformed
	}{
		{"2001:db8::1", "ff02::1", false, MalformedNone},
		{"2001:db8::1", "ff05::2", false, MalformedNone},
		{"ff02::1", "2001:db8::2", false, MalformedIPv6Addr},
		{"::1", "2001:db8::2", false, MalformedIPv6Addr},
		{"2001:db8::1", "::1", false, MalformedIPv6Addr},
		{"2001:db8::1", "ff01::1", false, MalformedIPv6Addr},
		{"2001:db8::1", "ff00::1", false, MalformedIPv6Addr},
		{"::1", "::1", true, MalformedNone},
		{"::1", "ff01::1", true, MalformedNone},
		{"::1", "ff00::1", true, MalformedIPv6Addr},
		{"::", "ff02::16", false, MalformedNone},
	}
	for _, c := range cases {
		opts := []BuildOpt{WithLink(LinkLinuxSLL)}
		if c.lo {
			opts = append(opts, WithCookedHatype(arphrdLoopback))
		}
		f := BuildIPv6(netip.MustParseAddr(c.src), netip.MustParseAddr(c.dst), IPv6NextNone, nil, opts...)
		if p := decodeForTest(Decoder{Link: LinkLinuxSLL}, f); p.Malformed != c.mal {
			t.Errorf("%s -> %s (lo %v): Malformed = %v, want %v", c.src, c.dst, c.lo, p.Malformed, c.mal)
		}
	}
}

// TestPktType follows eth_type_trans(): broadcast, multicast bit, and
// otherhost only when the local MAC is known; ip_rcv drops otherhost.
func TestPktType(t *testing.T) {
	local := [6]byte{0x02, 0, 0, 0, 0, 0x02}
	other := [6]byte{0x02, 0, 0, 0, 0, 0x99}
	bcast := [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	mcast := [6]byte{0x01, 0x00, 0x5e, 0, 0, 1}
	cases := []struct {
		dst      [6]byte
		hasLocal bool
		pt       PktType
		mal      Malformed
	}{
		{local, true, PktHost, MalformedNone},
		{other, true, PktOtherHost, MalformedOtherHost},
		{other, false, PktHost, MalformedNone},
		{bcast, true, PktBroadcast, MalformedNone},
		{mcast, true, PktMulticast, MalformedNone},
		{mcast, false, PktMulticast, MalformedNone},
	}
	for _, c := range cases {
		d := Decoder{LocalMAC: local, HasLocalMAC: c.hasLocal}
		for _, f := range [][]byte{
			BuildIPv4(v4a, v4b, ProtoUDP, BuildUDP(1, 2, nil), WithDstMAC(c.dst)),
			BuildIPv6(v6a, v6b, ProtoUDP, BuildUDP(1, 2, nil), WithDstMAC(c.dst)),
		} {
			p := decodeForTest(d, f)
			if p.PktType != c.pt || p.Malformed != c.mal || p.DstMAC != c.dst {
				t.Errorf("dst %x local %v: PktType %v Malformed %v, want %v %v", c.dst, c.hasLocal, p.PktType, p.Malformed, c.pt, c.mal)
			}
		}
	}
	// A non-IP frame to another host is not the IP layer's business.
	arp := hexForTest(t, "020000000099020000000001 0806 0001080006040001")
	if p := decodeForTest(Decoder{LocalMAC: local, HasLocalMAC: true}, arp); p.Malformed != MalformedNone || p.Family != FamilyNone {
		t.Errorf("ARP to other host: %v %v", p.Family, p.Malformed)
	}
}

func TestIPv6ExtHdrLimit(t *testing.T) {
	var opts []BuildOpt
	for range 13 {
		opts = append(opts, WithDestOpts(nil))
	}
	f := BuildIPv6(v6a, v6b, ProtoTCP, BuildTCP(1, 2, TCPSyn, nil), opts...)
	if p := decodeForTest(Decoder{}, f); !p.ProtoFound || p.Proto != ProtoTCP || p.L4Off != 40+13*8 {
		t.Fatalf("no limit: found %v proto %d off %d", p.ProtoFound, p.Proto, p.L4Off)
	}
	if p := decodeForTest(Decoder{IPv6ExtHdrLimit: 12}, f); p.ProtoFound || p.Malformed != MalformedNone {
		t.Fatalf("limit 12: found %v malformed %v", p.ProtoFound, p.Malformed)
	}
	if p := decodeForTest(Decoder{IPv6ExtHdrLimit: 13}, f); !p.ProtoFound {
		t.Fatalf("limit 13: not found")
	}
}

func TestIPv6RoutingStub(t *testing.T) {
	// Three bytes of a routing header: enough for ipv6_opt_hdr but not
	// for ipv6_rt_hdr, which the kernel reads: the walk fails.
	f := BuildIPv6(v6a, v6b, IPv6NextRouting, []byte{6, 0, 0})
	if p := decodeForTest(Decoder{}, f); p.ProtoFound || p.Malformed != MalformedNone {
		t.Fatalf("found %v malformed %v", p.ProtoFound, p.Malformed)
	}
	// Two bytes of a destination options header are enough to step past.
	f = BuildIPv6(v6a, v6b, IPv6NextDestOptions, []byte{6, 0})
	if p := decodeForTest(Decoder{}, f); !p.ProtoFound || p.Proto != ProtoTCP || p.L4Len != 0 {
		t.Fatalf("found %v proto %d L4Len %d", p.ProtoFound, p.Proto, p.L4Len)
	}
}

func TestVLANCountSaturates(t *testing.T) {
	var opts []BuildOpt
	for i := range 300 {
		opts = append(opts, WithVLAN(uint16(i+1)))
	}
	p := decodeForTest(Decoder{}, BuildIPv4(v4a, v4b, ProtoUDP, BuildUDP(1, 2, nil), opts...))
	if p.NumVLANs != 255 || p.VLAN != 1 || p.Family != FamilyIPv4 || p.DstPort != 2 {
		t.Fatalf("NumVLANs %d VLAN %d family %v", p.NumVLANs, p.VLAN, p.Family)
	}
}

func TestMalformedStrings(t *testing.T) {
	seen := map[string]bool{}
	for m := Malformed(0); int(m) < NumMalformed; m++ {
		s := m.String()
		if s == "unknown" || seen[s] {
			t.Errorf("Malformed(%d).String() = %q", m, s)
		}
		seen[s] = true
	}
	if MalformedOtherHost.String() != "other_host" {
		t.Errorf("MalformedOtherHost = %q", MalformedOtherHost.String())
	}
}

func TestDecodeAllocs(t *testing.T) {
	frames := [][]byte{
		BuildIPv4(v4a, v4b, ProtoTCP, BuildTCP(1, 2, TCPSyn, nil), WithVLAN(3)),
		BuildIPv6(v6a, v6b, ProtoUDP, BuildUDP(1, 2, nil), WithHopByHop(TLV(tlvRouterAlert, []byte{0, 0})), WithFragment(0, true)),
		BuildIPv4(v4a, v4b, ProtoUDP, BuildUDP(1, 2, nil), WithLink(LinkLinuxSLL2)),
	}
	links := []LinkType{LinkEthernet, LinkEthernet, LinkLinuxSLL2}
	var p Packet
	for i, f := range frames {
		d := Decoder{Link: links[i]}
		if n := testing.AllocsPerRun(100, func() { d.Decode(f, &p) }); n != 0 {
			t.Errorf("frame %d: %v allocs per Decode", i, n)
		}
	}
}
