package engine

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/sluice-project/sluice/packet"
	"github.com/sluice-project/sluice/rules"
)

// fragmentScenariosForTest returns fragment sequences covering what
// ip_frag_queue decides: in order, reversed, a duplicate, an overlap, a
// missing piece, three pieces last-first, a non-multiple-of-8 piece, and a
// datagram to a port INPUT drops.
func fragmentScenariosForTest() [][]byte {
	dst := netip.MustParseAddr("198.51.100.1")
	payload := make([]byte, 64)
	for i := range payload {
		payload[i] = byte(i)
	}
	udp := append(packet.BuildUDP(1234, 53, nil), payload...)
	udp99 := append(packet.BuildUDP(1234, 99, nil), payload...)
	var out [][]byte
	id := uint32(1)
	frag := func(src string, l4 []byte, off int, end int, more bool) {
		out = append(out, packet.BuildIPv4(netip.MustParseAddr(src), dst, packet.ProtoUDP, l4[off:end],
			packet.WithID(id), packet.WithFragment(uint16(off), more)))
	}
	frag("203.0.113.1", udp, 0, 32, true)
	frag("203.0.113.1", udp, 32, 72, false)
	id++
	frag("203.0.113.2", udp, 32, 72, false)
	frag("203.0.113.2", udp, 0, 32, true)
	id++
	frag("203.0.113.3", udp, 0, 24, true)
	frag("203.0.113.3", udp, 24, 48, true)
	frag("203.0.113.3", udp, 24, 48, true)
	frag("203.0.113.3", udp, 48, 72, false)
	id++
	frag("203.0.113.4", udp, 0, 32, true)
	frag("203.0.113.4", udp, 24, 72, false)
	id++
	frag("203.0.113.5", udp, 0, 32, true)
	id++
	frag("203.0.113.6", udp, 48, 72, false)
	frag("203.0.113.6", udp, 0, 24, true)
	frag("203.0.113.6", udp, 24, 48, true)
	id++
	frag("203.0.113.7", udp, 0, 20, true)
	frag("203.0.113.7", udp, 16, 72, false)
	id++
	frag("203.0.113.8", udp99, 0, 32, true)
	frag("203.0.113.8", udp99, 32, 72, false)
	return out
}

// TestReassemblyBeforeInput checks the INPUT counters against the
// kernel's, recorded with `sluice verify` (kernel 6.18) on these frames:
// five datagrams to port 53 and one to port 99 reach INPUT, 92 bytes each;
// the overlapping and the incomplete datagrams never do.
func TestReassemblyBeforeInput(t *testing.T) {
	const text = `*raw
:PREROUTING ACCEPT [0:0]
-A PREROUTING -f
-A PREROUTING -p udp
COMMIT
*filter
:INPUT ACCEPT [0:0]
-A INPUT -p udp -m udp --dport 53
-A INPUT -p udp -m udp --dport 99 -j DROP
-A INPUT -m length --length 92
-A INPUT -f
COMMIT
`
	rs, err := rules.Parse(strings.NewReader(text), rules.Options{Family: packet.FamilyIPv4, File: "frag.rules"})
	if err != nil {
		t.Fatal(err)
	}
	pr, err := Compile(Config{Rules4: rs}, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	w := pr.NewWorker()
	var d packet.Decoder
	var p packet.Packet
	for i, f := range fragmentScenariosForTest() {
		d.Decode(f, &p)
		w.Process(&p, int64(i)*1e6)
	}
	rep := pr.Report(w)
	in := rep.Find("ipv4", "filter").Chain("INPUT")
	raw := rep.Find("ipv4", "raw").Chain("PREROUTING")
	want := []struct{ p, b uint64 }{{5, 460}, {1, 92}, {5, 460}, {0, 0}}
	for i, w := range want {
		if got := in.Rules[i]; got.Packets != w.p || got.Bytes != w.b {
			t.Errorf("INPUT rule %d: %d packets %d bytes, kernel counted %d/%d", i+1, got.Packets, got.Bytes, w.p, w.b)
		}
	}
	if in.PolicyPackets != 5 || in.PolicyBytes != 460 {
		t.Errorf("INPUT policy: %d/%d, kernel counted 5/460", in.PolicyPackets, in.PolicyBytes)
	}
	if raw.Rules[0].Packets != 10 || raw.Rules[1].Packets != 18 {
		t.Errorf("raw PREROUTING: -f %d, -p udp %d; kernel counted 10 and 18", raw.Rules[0].Packets, raw.Rules[1].Packets)
	}
}
