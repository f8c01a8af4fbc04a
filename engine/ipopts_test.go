package engine

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"

	"github.com/sluice-project/sluice/packet"
	"github.com/sluice-project/sluice/rules"
)

// TestRewriteIPv4Options pins what INPUT sees of received options. The
// expected bytes are the kernel's: Linux 6.18 with the oracle's host
// (192.0.2.1/24, every destination local), each datagram from
// 198.51.100.1 logged in filter INPUT by `-j LOG --log-ip-options`;
// TTTTTTTT stands for the time of day it wrote.
func TestRewriteIPv4Options(t *testing.T) {
	pr := &Program{
		localAddrs: []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")},
		localNets:  []netip.Prefix{netip.MustParsePrefix("192.0.2.1/24")},
	}
	const now = int64(1_764_135_275_000_000_000) + 123e6 // 05:34:35.123 UTC
	dsts := []struct{ dst, spec string }{
		{"203.0.113.9", "cb007109"}, // local unicast: the destination
		{"192.0.2.1", "c0000201"},
		{"10.9.9.9", "0a090909"},
		{"255.255.255.255", "c0000201"}, // broadcast and multicast: the host's address
		{"192.0.2.255", "c0000201"},
		{"224.0.0.1", "c0000201"},
	}
	cases := []struct{ name, in, out string }{
		{"record route", "0707040000000000", "070708SSSSSSSS00"},
		{"timestamp and address", "440c05010000000000000000", "440c0d01SSSSSSSSTTTTTTTT"},
		{"timestamp only", "440c05000000000000000000", "440c0900TTTTTTTT00000000"},
		{"full timestamp: overflow", "440c0d010000000000000000", "440c0d110000000000000000"},
		{"prespecified, ours", "440c0503c000020100000000", "440c0d03c0000201TTTTTTTT"},
		{"prespecified, not ours", "440c0503c633640100000000", "440c0503c633640100000000"},
		{"end of list zeroes the rest", "00010101", "00000000"},
		{"nop then end", "01000707", "01000000"},
	}
	tt := hexU32(msecsSinceMidnight(now))
	if want := hexU32((5*3600+34*60+35)*1000 + 123); tt != want {
		t.Fatalf("time of day %s, want %s", tt, want)
	}
	for _, d := range dsts {
		for _, c := range cases {
			in, err := hex.DecodeString(c.in)
			if err != nil {
				t.Fatal(err)
			}
			want := strings.NewReplacer("SSSSSSSS", d.spec, "TTTTTTTT", tt).Replace(c.out)
			if !ipv4OptionsPass(in) {
				t.Fatalf("%s: options %x do not pass", c.name, in)
			}
			changed := ipv4OptionsChanged(in)
			got := append([]byte(nil), in...)
			pr.rewriteIPv4Options(got, netip.MustParseAddr(d.dst).As4(), now)
			if hex.EncodeToString(got) != want {
				t.Errorf("%s to %s: got %x, want %s", c.name, d.dst, got, want)
			}
			if !changed && !bytes.Equal(got, in) {
				t.Errorf("%s to %s: ipv4OptionsChanged is false but the options changed", c.name, d.dst)
			}
		}
	}
}

func hexU32(v uint32) string {
	return hex.EncodeToString([]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// INPUT rules read the rewritten options, PREROUTING rules the received
// ones, and the frame itself is left as it came (an accepted frame goes
// back to the kernel, which writes to it then).
func TestInputSeesRewrittenOptions(t *testing.T) {
	const text = `*raw
:PREROUTING ACCEPT [0:0]
-A PREROUTING -m u32 --u32 "20=0x070708c0"
-A PREROUTING -m u32 --u32 "20=0x07070400"
COMMIT
*filter
:INPUT ACCEPT [0:0]
-A INPUT -m u32 --u32 "20=0x07070400"
-A INPUT -m u32 --u32 "20=0x070708c0&&24>>8=0x000201" -j DROP
COMMIT
`
	rs, err := rules.Parse(strings.NewReader(text), rules.Options{Family: packet.FamilyIPv4, File: "opts.rules"})
	if err != nil {
		t.Fatal(err)
	}
	pr, err := Compile(Config{Rules4: rs, LocalAddrs: []netip.Addr{netip.MustParseAddr("192.0.2.1")},
		LocalNets: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/24")}}, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	frame := packet.BuildIPv4(netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("192.0.2.255"), packet.ProtoUDP,
		packet.BuildUDP(1000, 2000, []byte("x")), packet.WithIPv4Options([]byte{7, 7, 4, 0, 0, 0, 0, 0}))
	orig := append([]byte(nil), frame...)
	var p packet.Packet
	(&packet.Decoder{Link: packet.LinkEthernet}).Decode(frame, &p)
	w := pr.NewWorker()
	if v := w.Process(&p, 1e9); v != Drop {
		t.Fatalf("verdict %v, want Drop by the INPUT rule that reads the recorded address", v)
	}
	if !bytes.Equal(frame, orig) {
		t.Errorf("the frame changed:\n%x\n%x", orig, frame)
	}
	// raw: the rewritten bytes no, the received ones yes; INPUT the
	// other way round.
	want := map[int]uint64{3: 0, 4: 1, 8: 0, 9: 1}
	got := map[int]uint64{}
	for _, tb := range pr.Report(w).Tables {
		for _, c := range tb.Chains {
			for _, r := range c.Rules {
				got[r.Line] = r.Packets
			}
		}
	}
	for line, n := range want {
		if got[line] != n {
			t.Errorf("rule at line %d: %d packets, want %d (all: %v)", line, got[line], n, got)
		}
	}
}
