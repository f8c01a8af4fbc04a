package packet

import (
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"
)

// want lists the Packet fields a fixture checks. Fields left zero must be
// zero in the decoded packet: a malformed packet carries nothing beyond
// its link fields, family and reason.
type want struct {
	fam       Family
	mal       Malformed
	pkt       PktType
	vlan      uint16
	nvlans    uint8
	len       int // Len and len(L3)
	src, dst  string
	ttl       uint8
	proto     uint8
	found     bool
	fragOff   uint16
	mf, frag  bool
	l4off     int
	l4len     int
	sport     uint16
	dport     uint16
	flags     uint8
	doff      uint8
	icmpType  uint8
	icmpCode  uint8
	hasMAC    bool
	srcMACHex string
}

func hexForTest(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatalf("bad fixture hex: %v", err)
	}
	return b
}

func checkForTest(t *testing.T, p *Packet, w want) {
	t.Helper()
	addr := func(s string) netip.Addr {
		if s == "" {
			return netip.Addr{}
		}
		return netip.MustParseAddr(s)
	}
	type row struct {
		name      string
		got, want any
	}
	mac := ""
	if p.HasMAC {
		mac = hex.EncodeToString(p.SrcMAC[:])
	}
	if w.hasMAC && w.srcMACHex == "" {
		w.srcMACHex = "020000000001"
	}
	rows := []row{
		{"Family", p.Family, w.fam},
		{"Malformed", p.Malformed, w.mal},
		{"PktType", p.PktType, w.pkt},
		{"VLAN", p.VLAN, w.vlan},
		{"NumVLANs", p.NumVLANs, w.nvlans},
		{"Len", p.Len, w.len},
		{"len(L3)", len(p.L3), w.len},
		{"Src", p.Src, addr(w.src)},
		{"Dst", p.Dst, addr(w.dst)},
		{"TTL", p.TTL, w.ttl},
		{"Proto", p.Proto, w.proto},
		{"ProtoFound", p.ProtoFound, w.found},
		{"FragOff", p.FragOff, w.fragOff},
		{"MoreFrags", p.MoreFrags, w.mf},
		{"IsFragment", p.IsFragment, w.frag},
		{"L4Off", p.L4Off, w.l4off},
		{"L4Len", p.L4Len, w.l4len},
		{"SrcPort", p.SrcPort, w.sport},
		{"DstPort", p.DstPort, w.dport},
		{"TCPFlags", p.TCPFlags, w.flags},
		{"TCPDataOff", p.TCPDataOff, w.doff},
		{"ICMPType", p.ICMPType, w.icmpType},
		{"ICMPCode", p.ICMPCode, w.icmpCode},
		{"HasMAC", p.HasMAC, w.hasMAC},
		{"SrcMAC", mac, w.srcMACHex},
	}
	for _, r := range rows {
		if r.got != r.want {
			t.Errorf("%s = %v, want %v", r.name, r.got, r.want)
		}
	}
}

const (
	a4, b4 = "10.0.0.1", "10.0.0.2"
	a6, b6 = "2001:db8::1", "2001:db8::2"
)

// fixtures are frames as a capture would hold them. Each was built to
// isolate one rule of the receive path; the comment says which.
var fixtures = []struct {
	name string
	link LinkType
	hex  string
	want want
}{
	{"v4 tcp syn", LinkEthernet,
		"020000000002020000000001 0800 4500002800000000400666ce0a0000010a000002 9c4001bb00000001000000005002fffffde30000",
		want{fam: FamilyIPv4, len: 40, src: a4, dst: b4, ttl: 64, proto: 6, found: true, l4off: 20, l4len: 20,
			sport: 40000, dport: 443, flags: TCPSyn, doff: 20, hasMAC: true}},
	{"v4 options (IHL 6)", LinkEthernet,
		"020000000002020000000001 0800 4600002200000000401163c80a0000010a000002 01010100 14e90035000a6e506869",
		want{fam: FamilyIPv4, len: 34, src: a4, dst: b4, ttl: 64, proto: 17, found: true, l4off: 24, l4len: 10,
			sport: 5353, dport: 53, hasMAC: true}},
	{"v4 first fragment carries ports", LinkEthernet,
		"020000000002020000000001 0800 4500001e00072000401146c60a0000010a000002 14e90035000a00006869",
		want{fam: FamilyIPv4, len: 30, src: a4, dst: b4, ttl: 64, proto: 17, found: true, mf: true, frag: true,
			l4off: 20, l4len: 10, sport: 5353, dport: 53, hasMAC: true}},
	{"v4 non-first fragment (offset 1 unit = 8 bytes)", LinkEthernet,
		"020000000002020000000001 0800 4500001c00070001400666d20a0000010a000002 0102030405060708",
		want{fam: FamilyIPv4, len: 28, src: a4, dst: b4, ttl: 64, proto: 6, found: true, fragOff: 8, frag: true,
			l4off: 20, l4len: 8, hasMAC: true}},
	{"v4 bad header checksum", LinkEthernet,
		"020000000002020000000001 0800 45000028000000004006 99ce 0a0000010a000002 9c4001bb00000001000000005002fffffde30000",
		want{fam: FamilyIPv4, mal: MalformedIPChecksum, hasMAC: true}},
	{"v4 total length beyond frame", LinkEthernet,
		"020000000002020000000001 0800 4500006400000000400666920a0000010a000002 9c4001bb00000001000000005002fffffde30000",
		want{fam: FamilyIPv4, mal: MalformedIPTotalLen, hasMAC: true}},
	{"v4 total length below header length", LinkEthernet,
		"020000000002020000000001 0800 4500001000000000400666e60a0000010a000002 9c4001bb00000001000000005002fffffde30000",
		want{fam: FamilyIPv4, mal: MalformedIPTotalLen, hasMAC: true}},
	{"v4 ethernet padding trimmed", LinkEthernet,
		"020000000002020000000001 0800 4500001c00000000400166df0a0000010a000002 0800f7fd00010001 000000000000000000000000000000000000",
		want{fam: FamilyIPv4, len: 28, src: a4, dst: b4, ttl: 64, proto: 1, found: true, l4off: 20, l4len: 8,
			icmpType: 8, hasMAC: true}},
	{"v4 version 5", LinkEthernet,
		"020000000002020000000001 0800 5500002800000000400656ce0a0000010a000002 9c4001bb00000001000000005002fffffde30000",
		want{fam: FamilyIPv4, mal: MalformedIPVersion, hasMAC: true}},
	{"v4 IHL 4", LinkEthernet,
		"020000000002020000000001 0800 4400002800000000400666ce0a0000010a000002 9c4001bb00000001000000005002fffffde30000",
		want{fam: FamilyIPv4, mal: MalformedIPHeaderLen, hasMAC: true}},
	{"v4 IHL 15 beyond frame", LinkEthernet,
		"020000000002020000000001 0800 4f00002800000000400666ce0a0000010a000002",
		want{fam: FamilyIPv4, mal: MalformedIPHeaderLen, hasMAC: true}},
	{"v4 shorter than 20 bytes", LinkEthernet,
		"020000000002020000000001 0800 450000280000",
		want{fam: FamilyIPv4, mal: MalformedIPHeaderLen, hasMAC: true}},
	{"frame shorter than ethernet header", LinkEthernet,
		"0200000000020200000000",
		want{mal: MalformedTruncatedL2}},
	{"802.1Q", LinkEthernet,
		"020000000002020000000001 8100 0064 0800 4500002800000000400666ce0a0000010a000002 9c4001bb00000001000000005002fffffde30000",
		want{fam: FamilyIPv4, vlan: 100, nvlans: 1, len: 40, src: a4, dst: b4, ttl: 64, proto: 6, found: true,
			l4off: 20, l4len: 20, sport: 40000, dport: 443, flags: TCPSyn, doff: 20, hasMAC: true}},
	{"802.1ad + 802.1Q (QinQ, PCP bits ignored)", LinkEthernet,
		"020000000002020000000001 88a8 a0c8 8100 0064 0800 4500002800000000400666ce0a0000010a000002 9c4001bb00000001000000005002fffffde30000",
		want{fam: FamilyIPv4, vlan: 200, nvlans: 2, len: 40, src: a4, dst: b4, ttl: 64, proto: 6, found: true,
			l4off: 20, l4len: 20, sport: 40000, dport: 443, flags: TCPSyn, doff: 20, hasMAC: true}},
	{"VLAN tag cut short", LinkEthernet,
		"020000000002020000000001 8100 0064 08",
		want{mal: MalformedTruncatedL2, nvlans: 0, hasMAC: true}},
	{"ARP is not filtered", LinkEthernet,
		"ffffffffffff020000000001 0806 0001080006040001 020000000001 0a000001 000000000000 0a000002",
		want{pkt: PktBroadcast, hasMAC: true}},
	{"v4 tcp header cut to 10 bytes: ports only, not malformed", LinkEthernet,
		"020000000002020000000001 0800 4500001e00000000400666d80a0000010a000002 9c4001bb000000010000",
		want{fam: FamilyIPv4, len: 30, src: a4, dst: b4, ttl: 64, proto: 6, found: true, l4off: 20, l4len: 10,
			sport: 40000, dport: 443, hasMAC: true}},
	{"v4 udp header cut to 3 bytes", LinkEthernet,
		"020000000002020000000001 0800 4500001700000000401166d40a0000010a000002 14e900",
		want{fam: FamilyIPv4, len: 23, src: a4, dst: b4, ttl: 64, proto: 17, found: true, l4off: 20, l4len: 3,
			hasMAC: true}},
	{"v6 tcp", LinkEthernet,
		"020000000002020000000001 86dd 600000000014064020010db800000000000000000000000120010db8000000000000000000000002 9c4001bb00000001000000005002ffffb6710000",
		want{fam: FamilyIPv6, len: 60, src: a6, dst: b6, ttl: 64, proto: 6, found: true, l4off: 40, l4len: 20,
			sport: 40000, dport: 443, flags: TCPSyn, doff: 20, hasMAC: true}},
	{"v6 hop-by-hop (router alert) + udp", LinkEthernet,
		"020000000002020000000001 86dd 600000000012004020010db800000000000000000000000120010db8000000000000000000000002 1100050200000100 14e90035000a26de6869",
		want{fam: FamilyIPv6, len: 58, src: a6, dst: b6, ttl: 64, proto: 17, found: true, l4off: 48, l4len: 10,
			sport: 5353, dport: 53, hasMAC: true}},
	{"v6 routing header + tcp", LinkEthernet,
		"020000000002020000000001 86dd 60000000002c2b4020010db800000000000000000000000120010db8000000000000000000000002 060204000000000000000000000000000000000000000000 9c4001bb00000001000000005002ffffb6710000",
		want{fam: FamilyIPv6, len: 84, src: a6, dst: b6, ttl: 64, proto: 6, found: true, l4off: 64, l4len: 20,
			sport: 40000, dport: 443, flags: TCPSyn, doff: 20, hasMAC: true}},
	{"v6 destination options + icmpv6 echo", LinkEthernet,
		"020000000002020000000001 86dd 6000000000103c4020010db800000000000000000000000120010db8000000000000000000000002 3a00010400000000 8000244600010001",
		want{fam: FamilyIPv6, len: 56, src: a6, dst: b6, ttl: 64, proto: 58, found: true, l4off: 48, l4len: 8,
			icmpType: 128, hasMAC: true}},
	{"v6 AH (length in 4-byte units + 2) + tcp", LinkEthernet,
		"020000000002020000000001 86dd 60000000002c334020010db800000000000000000000000120010db8000000000000000000000002 060400000000010000000001000000000000000000000000 9c4001bb00000001000000005002ffffb6710000",
		want{fam: FamilyIPv6, len: 84, src: a6, dst: b6, ttl: 64, proto: 6, found: true, l4off: 64, l4len: 20,
			sport: 40000, dport: 443, flags: TCPSyn, doff: 20, hasMAC: true}},
	{"v6 first fragment: walk continues", LinkEthernet,
		"020000000002020000000001 86dd 6000000000122c4020010db800000000000000000000000120010db8000000000000000000000002 1100000100000009 14e90035000a00006869",
		want{fam: FamilyIPv6, len: 58, src: a6, dst: b6, ttl: 64, proto: 17, found: true, mf: true, frag: true,
			l4off: 48, l4len: 10, sport: 5353, dport: 53, hasMAC: true}},
	{"v6 non-first fragment: stops at fragment header", LinkEthernet,
		"020000000002020000000001 86dd 6000000000122c4020010db800000000000000000000000120010db8000000000000000000000002 110005c800000009 14e90035000a00006869",
		want{fam: FamilyIPv6, len: 58, src: a6, dst: b6, ttl: 64, proto: 17, found: true, fragOff: 1480, frag: true,
			l4off: 48, l4len: 10, hasMAC: true}},
	{"v6 non-first fragment followed by an extension header: walk fails, fragoff 0", LinkEthernet,
		"020000000002020000000001 86dd 60000000001a2c4020010db800000000000000000000000120010db8000000000000000000000002 3c0005c900000009 1100010400000000 14e90035000a00006869",
		want{fam: FamilyIPv6, len: 66, src: a6, dst: b6, ttl: 64, mf: true, frag: true, hasMAC: true}},
	{"v6 no next header", LinkEthernet,
		"020000000002020000000001 86dd 6000000000003b4020010db800000000000000000000000120010db8000000000000000000000002",
		want{fam: FamilyIPv6, len: 40, src: a6, dst: b6, ttl: 64, proto: 59, found: true, l4off: 40, hasMAC: true}},
	{"v6 ESP is an upper layer", LinkEthernet,
		"020000000002020000000001 86dd 600000000008324020010db800000000000000000000000120010db8000000000000000000000002 0000010000000001",
		want{fam: FamilyIPv6, len: 48, src: a6, dst: b6, ttl: 64, proto: 50, found: true, l4off: 40, l4len: 8, hasMAC: true}},
	{"v6 payload length beyond frame", LinkEthernet,
		"020000000002020000000001 86dd 60000000003c064020010db800000000000000000000000120010db8000000000000000000000002 9c4001bb00000001000000005002ffffb6710000",
		want{fam: FamilyIPv6, mal: MalformedIPv6PayloadLen, hasMAC: true}},
	{"v6 trailing bytes trimmed", LinkEthernet,
		"020000000002020000000001 86dd 600000000008114020010db800000000000000000000000120010db8000000000000000000000002 000100020008a466 dead",
		want{fam: FamilyIPv6, len: 48, src: a6, dst: b6, ttl: 64, proto: 17, found: true, l4off: 40, l4len: 8,
			sport: 1, dport: 2, hasMAC: true}},
	{"v6 tcp cut to 6 bytes", LinkEthernet,
		"020000000002020000000001 86dd 600000000006064020010db800000000000000000000000120010db8000000000000000000000002 9c4001bb0000",
		want{fam: FamilyIPv6, len: 46, src: a6, dst: b6, ttl: 64, proto: 6, found: true, l4off: 40, l4len: 6,
			sport: 40000, dport: 443, hasMAC: true}},
	{"v6 destination options claiming more than the packet, then tcp", LinkEthernet,
		"020000000002020000000001 86dd 6000000000083c4020010db800000000000000000000000120010db8000000000000000000000002 0601000000000000",
		want{fam: FamilyIPv6, len: 48, src: a6, dst: b6, ttl: 64, proto: 6, found: true, l4off: 56, hasMAC: true}},
	{"v6 destination options claiming more, then another extension: unreadable", LinkEthernet,
		"020000000002020000000001 86dd 6000000000083c4020010db800000000000000000000000120010db8000000000000000000000002 3c01000000000000",
		want{fam: FamilyIPv6, len: 48, src: a6, dst: b6, ttl: 64, hasMAC: true}},
	{"v6 version 4 under the IPv6 ethertype", LinkEthernet,
		"020000000002020000000001 86dd 400000000000064020010db800000000000000000000000120010db8000000000000000000000002",
		want{fam: FamilyIPv6, mal: MalformedIPVersion, hasMAC: true}},
	{"v6 shorter than 40 bytes", LinkEthernet,
		"020000000002020000000001 86dd 6000000000000640",
		want{fam: FamilyIPv6, mal: MalformedIPHeaderLen, hasMAC: true}},
	{"v6 icmpv6 echo", LinkEthernet,
		"020000000002020000000001 86dd 6000000000083a4020010db800000000000000000000000120010db8000000000000000000000002 8000244600010001",
		want{fam: FamilyIPv6, len: 48, src: a6, dst: b6, ttl: 64, proto: 58, found: true, l4off: 40, l4len: 8,
			icmpType: 128, hasMAC: true}},
	{"SLL v1 udp: source MAC from the cooked header", LinkLinuxSLL,
		"0000 0001 0006 0200000000010000 0800 4500001e00000000401166cd0a0000010a000002 14e90035000a6e506869",
		want{fam: FamilyIPv4, len: 30, src: a4, dst: b4, ttl: 64, proto: 17, found: true, l4off: 20, l4len: 10,
			sport: 5353, dport: 53, hasMAC: true}},
	{"SLL v1 outgoing never reaches PREROUTING", LinkLinuxSLL,
		"0004 0001 0006 0200000000010000 0800 4500001e00000000401166cd0a0000010a000002 14e90035000a6e506869",
		want{fam: FamilyIPv4, mal: MalformedOutgoing, pkt: PktOutgoing, hasMAC: true}},
	{"SLL v1 cut short", LinkLinuxSLL,
		"0000 0001 0006 02000000000100",
		want{mal: MalformedTruncatedL2}},
	{"SLL v2 tcp over v6", LinkLinuxSLL2,
		"86dd 0000 00000001 0001 00 06 0200000000010000 600000000014064020010db800000000000000000000000120010db8000000000000000000000002 9c4001bb00000001000000005002ffffb6710000",
		want{fam: FamilyIPv6, len: 60, src: a6, dst: b6, ttl: 64, proto: 6, found: true, l4off: 40, l4len: 20,
			sport: 40000, dport: 443, flags: TCPSyn, doff: 20, hasMAC: true}},
	{"SLL v2 on lo (ARPHRD 772): ::1 allowed, no MAC", LinkLinuxSLL2,
		"86dd 0000 00000001 0304 00 00 0000000000000000 600000000000 3b40 00000000000000000000000000000001 00000000000000000000000000000001",
		want{fam: FamilyIPv6, len: 40, src: "::1", dst: "::1", ttl: 64, proto: 59, found: true, l4off: 40}},
	{"raw IPv4", LinkRawIP,
		"4500001c00000000400166df0a0000010a000002 0800f7fd00010001",
		want{fam: FamilyIPv4, len: 28, src: a4, dst: b4, ttl: 64, proto: 1, found: true, l4off: 20, l4len: 8, icmpType: 8}},
	{"raw IPv6", LinkRawIP,
		"60000000000a114020010db800000000000000000000000120010db8000000000000000000000002 14e90035000a26de6869",
		want{fam: FamilyIPv6, len: 50, src: a6, dst: b6, ttl: 64, proto: 17, found: true, l4off: 40, l4len: 10,
			sport: 5353, dport: 53}},
	{"raw with version 7", LinkRawIP, "7000000000000000",
		want{mal: MalformedIPVersion}},
	{"raw empty", LinkRawIP, "",
		want{mal: MalformedTruncatedL2}},
}

func TestDecodeFixtures(t *testing.T) {
	for _, f := range fixtures {
		t.Run(f.name, func(t *testing.T) {
			d := Decoder{Link: f.link}
			var p Packet
			d.Decode(hexForTest(t, f.hex), &p)
			checkForTest(t, &p, f.want)
		})
	}
}

// TestDecodeOverwrites checks that a reused Packet keeps nothing from the
// frame decoded before it.
func TestDecodeOverwrites(t *testing.T) {
	var d Decoder
	var p Packet
	d.Decode(hexForTest(t, fixtures[0].hex), &p)
	d.Decode(hexForTest(t, "0200000000020200000000"), &p)
	checkForTest(t, &p, want{mal: MalformedTruncatedL2})
}
