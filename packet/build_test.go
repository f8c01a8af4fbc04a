package packet

import (
	"bytes"
	"encoding/hex"
	"net"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// serializeForTest builds the same frame with gopacket, an independent
// implementation, so the builders' checksums and lengths are checked
// against something other than this package's own code.
func serializeForTest(t *testing.T, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// sameFrameForTest compares a built frame with gopacket's, which pads
// Ethernet frames to the 60-byte minimum; the builders add padding only
// when asked (WithTrailer).
func sameFrameForTest(got, want []byte) bool {
	if len(want) > len(got) && len(want) == 60 && bytes.Count(want[len(got):], []byte{0}) == len(want)-len(got) {
		want = want[:len(got)]
	}
	return bytes.Equal(got, want)
}

func TestBuildersMatchGopacket(t *testing.T) {
	eth := func(et layers.EthernetType) *layers.Ethernet {
		return &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: et}
	}
	ip4 := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: v4a.AsSlice(), DstIP: v4b.AsSlice()}
	tcp := &layers.TCP{SrcPort: 40000, DstPort: 443, Seq: 1, SYN: true, Window: 65535, DataOffset: 5}
	if err := tcp.SetNetworkLayerForChecksum(ip4); err != nil {
		t.Fatal(err)
	}
	payload := []byte("hello")
	want := serializeForTest(t, eth(layers.EthernetTypeIPv4), ip4, tcp, gopacket.Payload(payload))
	got := BuildIPv4(v4a, v4b, ProtoTCP, BuildTCP(40000, 443, TCPSyn, payload))
	if !sameFrameForTest(got, want) {
		t.Errorf("IPv4/TCP\n got %s\nwant %s", hex.EncodeToString(got), hex.EncodeToString(want))
	}

	ip6 := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP, SrcIP: v6a.AsSlice(), DstIP: v6b.AsSlice()}
	udp := &layers.UDP{SrcPort: 5353, DstPort: 53}
	if err := udp.SetNetworkLayerForChecksum(ip6); err != nil {
		t.Fatal(err)
	}
	want = serializeForTest(t, eth(layers.EthernetTypeIPv6), ip6, udp, gopacket.Payload(payload))
	got = BuildIPv6(v6a, v6b, ProtoUDP, BuildUDP(5353, 53, payload))
	if !sameFrameForTest(got, want) {
		t.Errorf("IPv6/UDP\n got %s\nwant %s", hex.EncodeToString(got), hex.EncodeToString(want))
	}

	ip4i := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: v4a.AsSlice(), DstIP: v4b.AsSlice()}
	icmp := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0), Id: 1, Seq: 2}
	want = serializeForTest(t, eth(layers.EthernetTypeIPv4), ip4i, icmp, gopacket.Payload(payload))
	got = BuildIPv4(v4a, v4b, ProtoICMP, BuildICMP(8, 0, 1<<16|2, payload))
	if !sameFrameForTest(got, want) {
		t.Errorf("IPv4/ICMP\n got %s\nwant %s", hex.EncodeToString(got), hex.EncodeToString(want))
	}

	ip6i := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolICMPv6, SrcIP: v6a.AsSlice(), DstIP: v6b.AsSlice()}
	icmp6 := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(128, 0)}
	if err := icmp6.SetNetworkLayerForChecksum(ip6i); err != nil {
		t.Fatal(err)
	}
	echo := &layers.ICMPv6Echo{Identifier: 1, SeqNumber: 2}
	want = serializeForTest(t, eth(layers.EthernetTypeIPv6), ip6i, icmp6, echo, gopacket.Payload(payload))
	got = BuildIPv6(v6a, v6b, ProtoICMPv6, BuildICMP(128, 0, 1<<16|2, payload))
	if !sameFrameForTest(got, want) {
		t.Errorf("IPv6/ICMPv6\n got %s\nwant %s", hex.EncodeToString(got), hex.EncodeToString(want))
	}
}

// TestBuildOptionsRoundTrip checks each option through the decoder.
func TestBuildOptionsRoundTrip(t *testing.T) {
	f := BuildIPv4(v4a, v4b, ProtoUDP, BuildUDP(1, 2, nil),
		WithTTL(3), WithTOS(0x10), WithID(77), WithDontFragment(), WithIPv4Options([]byte{0x94, 4, 0, 0}),
		WithQinQ(10), WithVLAN(20), WithSrcMAC([6]byte{2, 9, 9, 9, 9, 9}))
	p := decodeForTest(Decoder{}, f)
	if p.Malformed != MalformedNone || p.TTL != 3 || p.TOS != 0x10 || p.L4Off != 24 || p.VLAN != 10 ||
		p.NumVLANs != 2 || p.SrcMAC != [6]byte{2, 9, 9, 9, 9, 9} || IPv4(p.L3).ID() != 77 || !IPv4(p.L3).DontFrag() {
		t.Fatalf("ipv4 options: %+v", p)
	}

	f = BuildIPv4(v4a, v4b, ProtoTCP, make([]byte, 16), WithFragment(1480, true))
	p = decodeForTest(Decoder{}, f)
	if p.FragOff != 1480 || !p.MoreFrags || IPv4(p.L3).FragOffUnits() != 185 {
		t.Fatalf("ipv4 fragment: FragOff %d MF %v", p.FragOff, p.MoreFrags)
	}

	f = BuildIPv6(v6a, v6b, ProtoTCP, BuildTCP(1, 2, TCPAck, nil), WithTOS(0xb8), WithFlowLabel(0xabcde),
		WithHopByHop(nil), WithDestOpts(nil), WithRouting(4, 0, make([]byte, 16)), WithAH(1, 1, make([]byte, 12)),
		WithDestOpts(nil), WithLink(LinkLinuxSLL), WithCookedPktType(PktMulticast))
	p = decodeForTest(Decoder{Link: LinkLinuxSLL}, f)
	if p.Malformed != MalformedNone || p.TOS != 0xb8 || IPv6(p.L3).FlowLabel() != 0xabcde || p.Proto != ProtoTCP ||
		p.L4Off != 40+8+8+24+24+8 || p.TCPFlags != TCPAck || p.PktType != PktMulticast {
		t.Fatalf("ipv6 chain: %+v", p)
	}

	f = BuildIPv4(v4a, v4b, ProtoUDP, BuildUDP(1, 2, nil), WithLink(LinkRawIP))
	if f[0] != 0x45 || len(f) != 28 {
		t.Fatalf("raw: % x", f)
	}
}
