package packet

import "testing"

// FuzzDecode runs every link type over arbitrary bytes: Decode must not
// panic, and what it reports must be self-consistent, since the engine
// slices L3 with L4Off and L4Len without checking again.
func FuzzDecode(f *testing.F) {
	for _, fx := range fixtures {
		f.Add(uint8(fx.link), hexForTest(f, fx.hex), uint8(0))
	}
	f.Add(uint8(LinkEthernet), BuildIPv6(v6a, v6b, ProtoUDP, BuildUDP(1, 2, nil),
		WithHopByHop(TLV(tlvRouterAlert, []byte{0, 0})), WithFragment(0, true), WithDestOpts(nil)), uint8(12))
	f.Fuzz(func(t *testing.T, link uint8, frame []byte, limit uint8) {
		d := Decoder{Link: LinkType(link % 5), IPv6ExtHdrLimit: int(limit % 16),
			HasLocalMAC: link&0x80 != 0, LocalMAC: [6]byte{2, 0, 0, 0, 0, 2}}
		var p Packet
		d.Decode(frame, &p)
		if p.Malformed >= numMalformed {
			t.Fatalf("Malformed %d out of range", p.Malformed)
		}
		if p.Malformed != MalformedNone || p.Family == FamilyNone {
			if p.L3 != nil || p.Len != 0 || p.ProtoFound || p.L4Len != 0 {
				t.Fatalf("malformed or non-IP packet carries L3 data: %+v", p)
			}
			return
		}
		if p.Len != len(p.L3) {
			t.Fatalf("Len %d != len(L3) %d", p.Len, len(p.L3))
		}
		if p.L4Len < 0 || p.L4Len > 0 && p.L4Off+p.L4Len != len(p.L3) {
			t.Fatalf("L4Off %d L4Len %d len(L3) %d", p.L4Off, p.L4Len, len(p.L3))
		}
		if p.FragOff != 0 && (p.SrcPort|p.DstPort) != 0 {
			t.Fatalf("ports on a non-first fragment")
		}
		if !p.ProtoFound && (p.FragOff != 0 || p.L4Len != 0) {
			t.Fatalf("walk failed but FragOff %d L4Len %d", p.FragOff, p.L4Len)
		}
	})
}
