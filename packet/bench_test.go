package packet

import "testing"

func benchmarkDecode(b *testing.B, frame []byte) {
	var d Decoder
	var p Packet
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		d.Decode(frame, &p)
	}
	if p.Malformed != MalformedNone {
		b.Fatalf("benchmark frame is malformed: %v", p.Malformed)
	}
}

func BenchmarkDecode(b *testing.B) {
	b.Run("ipv4-tcp-syn", func(b *testing.B) {
		benchmarkDecode(b, BuildIPv4(v4a, v4b, ProtoTCP, BuildTCP(40000, 443, TCPSyn, nil)))
	})
	b.Run("ipv4-udp", func(b *testing.B) {
		benchmarkDecode(b, BuildIPv4(v4a, v4b, ProtoUDP, BuildUDP(5353, 53, make([]byte, 64))))
	})
	b.Run("ipv6-tcp-syn", func(b *testing.B) {
		benchmarkDecode(b, BuildIPv6(v6a, v6b, ProtoTCP, BuildTCP(40000, 443, TCPSyn, nil)))
	})
	b.Run("ipv6-hbh-frag-udp", func(b *testing.B) {
		benchmarkDecode(b, BuildIPv6(v6a, v6b, ProtoUDP, BuildUDP(5353, 53, make([]byte, 64)),
			WithHopByHop(TLV(tlvRouterAlert, []byte{0, 0})), WithFragment(0, true)))
	})
}
