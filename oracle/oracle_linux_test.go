package oracle

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sluice-project/sluice/internal/testnet"
	"github.com/sluice-project/sluice/report"
)

func runForTest(t *testing.T, spec Spec, frames [][]byte, opt Options) *report.Report {
	t.Helper()
	testnet.RequireForTest(t)
	fs := make([]Frame, len(frames))
	for i, f := range frames {
		fs[i] = Frame{Data: f}
	}
	rep, err := Run(context.Background(), spec, fs, opt)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return rep
}

// ruleForTest returns the counters of rule i of family/table/chain.
func ruleForTest(t *testing.T, rep *report.Report, family, table, chain string, i int) report.Rule {
	t.Helper()
	tb := rep.Find(family, table)
	if tb == nil {
		t.Fatalf("no %s %s table in report", family, table)
	}
	ch := tb.Chain(chain)
	if ch == nil || len(ch.Rules) <= i {
		t.Fatalf("no rule %d in %s %s %s", i, family, table, chain)
	}
	return ch.Rules[i]
}

// countingRules has one match-everything rule first in raw PREROUTING and
// in filter INPUT, then the extra lines for each table.
func countingRules(rawExtra, filterExtra string) []byte {
	return []byte("*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A PREROUTING\n" + rawExtra +
		"COMMIT\n*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT\n" + filterExtra + "COMMIT\n")
}

// seenForTest runs frames against the counting rules and returns how many
// packets raw PREROUTING and filter INPUT saw.
func seenForTest(t *testing.T, family string, rawExtra, filterExtra string, frames [][]byte) (raw, input uint64) {
	t.Helper()
	spec := Spec{}
	if family == "ipv4" {
		spec.Rules4 = countingRules(rawExtra, filterExtra)
	} else {
		spec.Rules6 = countingRules(rawExtra, filterExtra)
	}
	rep := runForTest(t, spec, frames, Options{})
	return ruleForTest(t, rep, family, "raw", "PREROUTING", 0).Packets,
		ruleForTest(t, rep, family, "filter", "INPUT", 0).Packets
}

var (
	src4 = netip.MustParseAddr("198.51.100.7")
	dst4 = netip.MustParseAddr("203.0.113.9")
	src6 = netip.MustParseAddr("2001:db8:1::7")
	dst6 = netip.MustParseAddr("2001:db8:2::9")
)

// Fact 1: fragments and defragmentation.
func TestFactFragments(t *testing.T) {
	tests := []struct {
		name               string
		family             string
		rawExtra, filterEx string
		wantRaw, wantInput uint64
	}{
		{"ipv4 raw only", "ipv4", "", "", 2, 1},
		{"ipv4 CT notrack", "ipv4", "-A PREROUTING -j CT --notrack\n", "", 2, 1},
		{"ipv4 CT zone", "ipv4", "-A PREROUTING -j CT --zone 1\n", "", 1, 1},
		{"ipv4 conntrack in filter", "ipv4", "", "-A INPUT -m conntrack --ctstate NEW\n", 1, 1},
		{"ipv6 raw only", "ipv6", "", "", 2, 2},
		{"ipv6 CT notrack", "ipv6", "-A PREROUTING -j CT --notrack\n", "", 2, 2},
		{"ipv6 CT zone", "ipv6", "-A PREROUTING -j CT --zone 1\n", "", 1, 1},
		{"ipv6 conntrack in filter", "ipv6", "", "-A INPUT -m conntrack --ctstate NEW\n", 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := frameSpecForTest{src: src4, dst: dst4, sport: 1000, dport: 2000, payload: 100}
			if tt.family == "ipv6" {
				s.src, s.dst = src6, dst6
			}
			frags := fragmentsForTest(s, 64)
			if len(frags) != 2 {
				t.Fatalf("built %d fragments, want 2", len(frags))
			}
			raw, input := seenForTest(t, tt.family, tt.rawExtra, tt.filterEx, frags)
			if raw != tt.wantRaw || input != tt.wantInput {
				t.Errorf("raw PREROUTING saw %d, filter INPUT %d; want %d, %d", raw, input, tt.wantRaw, tt.wantInput)
			}
		})
	}
}

// Fact 2: which addresses pass raw PREROUTING but never reach INPUT.
func TestFactMartians(t *testing.T) {
	a := netip.MustParseAddr
	tests := []struct {
		name               string
		src, dst           netip.Addr
		wantRaw, wantInput uint64
	}{
		{"ipv4 ordinary", src4, dst4, 1, 1},
		{"ipv4 src 0.0.0.0/8", a("0.1.2.3"), dst4, 1, 1},
		{"ipv4 src 0.0.0.0", a("0.0.0.0"), dst4, 1, 0},
		{"ipv4 src 0.0.0.0 dst broadcast", a("0.0.0.0"), a("255.255.255.255"), 1, 1},
		{"ipv4 src 0.0.0.0 dst 0.0.0.0", a("0.0.0.0"), a("0.0.0.0"), 1, 1},
		{"ipv4 src 0.0.0.0 dst all-hosts", a("0.0.0.0"), a("224.0.0.1"), 1, 1},
		{"ipv4 src B's own address dst all-hosts", BIPv4ForTest(), a("224.0.0.1"), 1, 0},
		{"ipv4 src loopback", a("127.0.0.1"), dst4, 1, 0},
		{"ipv4 src multicast", a("224.0.0.5"), dst4, 1, 0},
		{"ipv4 src limited broadcast", a("255.255.255.255"), dst4, 1, 0},
		{"ipv4 src class E", a("240.0.0.1"), dst4, 1, 1},
		{"ipv4 src B's own address", BIPv4ForTest(), dst4, 1, 0},
		{"ipv4 dst limited broadcast", src4, a("255.255.255.255"), 1, 1},
		{"ipv4 dst subnet broadcast", src4, a("192.0.2.255"), 1, 1},
		{"ipv4 dst all-hosts 224.0.0.1", src4, a("224.0.0.1"), 1, 1},
		{"ipv4 dst unjoined group", src4, a("239.1.2.3"), 1, 0},
		{"ipv4 dst loopback", src4, a("127.0.0.1"), 1, 0},
		{"ipv4 dst 0.0.0.0", src4, a("0.0.0.0"), 1, 0},
		{"ipv4 dst class E", src4, a("240.0.0.1"), 1, 1},
		{"ipv6 ordinary", src6, dst6, 1, 1},
		{"ipv6 src unspecified", a("::"), dst6, 1, 1},
		{"ipv6 src link-local", a("fe80::1"), dst6, 1, 1},
		{"ipv6 src loopback", a("::1"), dst6, 0, 0},
		{"ipv6 dst loopback", src6, a("::1"), 0, 0},
		{"ipv6 src multicast", a("ff02::1"), dst6, 0, 0},
		{"ipv6 src v4-mapped", a("::ffff:198.51.100.7"), dst6, 1, 1},
		{"ipv6 dst all-nodes", src6, a("ff02::1"), 1, 1},
		{"ipv6 dst unjoined group", src6, a("ff05::1:3"), 1, 0},
		{"ipv6 dst interface-local multicast", src6, a("ff01::1"), 0, 0},
		{"ipv6 dst multicast scope 0", src6, a("ff00::1"), 0, 0},
		{"ipv6 dst unspecified", src6, a("::"), 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			family := "ipv4"
			if tt.src.Is6() {
				family = "ipv6"
			}
			f := frameForTest(frameSpecForTest{src: tt.src, dst: tt.dst, sport: 1000, dport: 2000, payload: 10})
			raw, input := seenForTest(t, family, "", "", [][]byte{f})
			if raw != tt.wantRaw || input != tt.wantInput {
				t.Errorf("%v -> %v: raw PREROUTING saw %d, filter INPUT %d; want %d, %d", tt.src, tt.dst, raw, input, tt.wantRaw, tt.wantInput)
			}
		})
	}
}

// BIPv4ForTest is B's own IPv4 address.
func BIPv4ForTest() netip.Addr { return testnet.BIPv4.Addr() }

// Facts 3 and 4: VLAN tags and link-layer destinations.
func TestFactLinkLayer(t *testing.T) {
	mac := func(s string) net.HardwareAddr {
		m, err := net.ParseMAC(s)
		if err != nil {
			panic(err)
		}
		return m
	}
	tests := []struct {
		name               string
		spec               frameSpecForTest
		wantRaw, wantInput uint64
	}{
		{"untagged to B", frameSpecForTest{}, 1, 1},
		{"VLAN 100 without a VLAN device", frameSpecForTest{vlans: []uint16{100}}, 0, 0},
		{"VLAN 0 priority tag", frameSpecForTest{vlans: []uint16{0}}, 1, 1},
		{"VLAN 0 priority tag with PCP 5", frameSpecForTest{vlans: []uint16{5<<13 | 0}}, 1, 1},
		{"VLAN 0 then VLAN 100", frameSpecForTest{vlans: []uint16{0, 100}}, 0, 0},
		{"other unicast MAC", frameSpecForTest{dstMAC: mac("02:00:5e:00:00:99")}, 0, 0},
		{"broadcast MAC", frameSpecForTest{dstMAC: mac("ff:ff:ff:ff:ff:ff")}, 1, 1},
		{"multicast MAC", frameSpecForTest{dstMAC: mac("01:00:5e:00:00:01")}, 1, 1},
	}
	for _, fam := range []string{"ipv4", "ipv6"} {
		for _, tt := range tests {
			t.Run(fam+" "+tt.name, func(t *testing.T) {
				s := tt.spec
				s.src, s.dst, s.sport, s.dport, s.payload = src4, dst4, 1000, 2000, 10
				if fam == "ipv6" {
					s.src, s.dst = src6, dst6
				}
				raw, input := seenForTest(t, fam, "", "", [][]byte{frameForTest(s)})
				if raw != tt.wantRaw || input != tt.wantInput {
					t.Errorf("raw PREROUTING saw %d, filter INPUT %d; want %d, %d", raw, input, tt.wantRaw, tt.wantInput)
				}
			})
		}
	}
}

// mixedFramesForTest is 100 frames, a quarter each of UDP/53, TCP/22,
// UDP/123 and TCP/80, with their IP datagram lengths.
func mixedFramesForTest(src, dst netip.Addr) (frames [][]byte, lens [4]uint64) {
	kinds := []struct {
		proto uint8
		port  uint16
	}{{protoUDP, 53}, {protoTCP, 22}, {protoUDP, 123}, {protoTCP, 80}}
	for i := 0; i < 100; i++ {
		k := kinds[i%4]
		f := frameForTest(frameSpecForTest{src: src, dst: dst, proto: k.proto, sport: uint16(1024 + i), dport: k.port, payload: i})
		frames = append(frames, f)
		lens[i%4] += uint64(len(f) - 14)
	}
	return frames, lens
}

const mixedRules = `*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -p udp -m udp --dport 53 -j DROP
COMMIT
*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
-A INPUT -p udp
COMMIT
`

func TestRunMixed(t *testing.T) {
	frames4, lens4 := mixedFramesForTest(src4, dst4)
	frames6, lens6 := mixedFramesForTest(src6, dst6)
	for _, backend := range []Backend{Legacy, NFT} {
		t.Run(backend.String(), func(t *testing.T) {
			spec := Spec{Rules4: []byte(mixedRules), Rules6: []byte(mixedRules), Backend: backend}
			rep := runForTest(t, spec, append(frames4, frames6...), Options{Repeat: 2})
			if rep.Packets != 400 {
				t.Errorf("Packets = %d, want 400", rep.Packets)
			}
			for _, fam := range []struct {
				name string
				lens [4]uint64
			}{{"ipv4", lens4}, {"ipv6", lens6}} {
				raw := rep.Find(fam.name, "raw").Chain("PREROUTING")
				filter := rep.Find(fam.name, "filter").Chain("INPUT")
				checks := []struct {
					what           string
					packets, bytes uint64
					wantP, wantB   uint64
				}{
					{"raw udp/53 DROP rule", raw.Rules[0].Packets, raw.Rules[0].Bytes, 50, 2 * fam.lens[0]},
					{"raw policy", raw.PolicyPackets, raw.PolicyBytes, 150, 2 * (fam.lens[1] + fam.lens[2] + fam.lens[3])},
					{"filter tcp/22 rule", filter.Rules[0].Packets, filter.Rules[0].Bytes, 50, 2 * fam.lens[1]},
					{"filter udp rule", filter.Rules[1].Packets, filter.Rules[1].Bytes, 50, 2 * fam.lens[2]},
					{"filter policy DROP", filter.PolicyPackets, filter.PolicyBytes, 100, 2 * (fam.lens[2] + fam.lens[3])},
				}
				for _, c := range checks {
					if c.packets != c.wantP || c.bytes != c.wantB {
						t.Errorf("%s %s: [%d:%d], want [%d:%d]", fam.name, c.what, c.packets, c.bytes, c.wantP, c.wantB)
					}
				}
				if filter.Policy != "DROP" || !strings.Contains(filter.Rules[0].Text, "--dport 22") {
					t.Errorf("%s filter INPUT parsed wrongly: %+v", fam.name, filter)
				}
			}
		})
	}
}

func TestRunSets(t *testing.T) {
	sets := "create blk hash:net family inet hashsize 1024 maxelem 65536\nadd blk 198.51.100.0/24\n"
	rules := "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A PREROUTING -m set --match-set blk src -j DROP\nCOMMIT\n"
	frames := [][]byte{
		frameForTest(frameSpecForTest{src: src4, dst: dst4, sport: 1, dport: 2}),
		frameForTest(frameSpecForTest{src: netip.MustParseAddr("198.51.101.1"), dst: dst4, sport: 1, dport: 2}),
		frameForTest(frameSpecForTest{src: netip.MustParseAddr("198.51.100.200"), dst: dst4, sport: 1, dport: 2}),
	}
	rep := runForTest(t, Spec{Rules4: []byte(rules), Sets: []byte(sets)}, frames, Options{})
	if got := ruleForTest(t, rep, "ipv4", "raw", "PREROUTING", 0).Packets; got != 2 {
		t.Errorf("set rule matched %d packets, want 2", got)
	}
}

// TestRunPace checks that pacing reproduces time: a limit of 5/s with a
// burst of 1 lets every frame through when they are 250ms apart, and only
// the first when they are sent back to back.
func TestRunPace(t *testing.T) {
	rules := []byte("*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A PREROUTING -m limit --limit 5/sec --limit-burst 1\nCOMMIT\n")
	testnet.RequireForTest(t)
	var frames []Frame
	for i := 0; i < 4; i++ {
		frames = append(frames, Frame{
			Data: frameForTest(frameSpecForTest{src: src4, dst: dst4, sport: 1, dport: uint16(i)}),
			Time: int64(i) * int64(250*time.Millisecond),
		})
	}
	tests := []struct {
		pace bool
		want uint64
	}{{true, 4}, {false, 1}}
	for _, tt := range tests {
		start := time.Now()
		rep, err := Run(context.Background(), Spec{Rules4: rules}, frames, Options{Pace: tt.pace})
		if err != nil {
			t.Fatal(err)
		}
		if got := ruleForTest(t, rep, "ipv4", "raw", "PREROUTING", 0).Packets; got != tt.want {
			t.Errorf("pace=%v: limit rule matched %d, want %d", tt.pace, got, tt.want)
		}
		if tt.pace && time.Since(start) < 750*time.Millisecond {
			t.Errorf("paced run took %v, less than the 750ms the timestamps span", time.Since(start))
		}
	}
}

func TestRunLoadErrors(t *testing.T) {
	testnet.RequireForTest(t)
	tests := []struct {
		name string
		spec Spec
		want string
	}{
		{"bad rule", Spec{Rules4: []byte("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p nosuchproto\nCOMMIT\n")}, "load ipv4 rules"},
		{"bad ipv6 rule", Spec{Rules6: []byte("*raw\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -m nosuchmatch\nCOMMIT\n")}, "load ipv6 rules"},
		{"bad set", Spec{Sets: []byte("create x hash:nosuchtype\n")}, "load sets"},
		{"unknown set in rule", Spec{Rules4: []byte("*raw\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -m set --match-set missing src\nCOMMIT\n")}, "load ipv4 rules"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Run(context.Background(), tt.spec, nil, Options{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Run error = %v, want one containing %q", err, tt.want)
			}
			// The tool's stderr is part of the message.
			if !strings.Contains(err.Error(), "restore") || len(err.Error()) < 60 {
				t.Errorf("error lacks the tool's output: %v", err)
			}
		})
	}
}

// TestRunBurst sends many frames back to back, to check that none is lost
// between A and B's netfilter at full speed.
func TestRunBurst(t *testing.T) {
	f := frameForTest(frameSpecForTest{src: src4, dst: dst4, sport: 1, dport: 2, payload: 18})
	rep := runForTest(t, Spec{Rules4: countingRules("", "")}, [][]byte{f}, Options{Repeat: 20000})
	if got := ruleForTest(t, rep, "ipv4", "raw", "PREROUTING", 0).Packets; got != 20000 {
		t.Errorf("raw PREROUTING counted %d of 20000 frames", got)
	}
}

func TestAvailable(t *testing.T) {
	testnet.RequireForTest(t)
	if err := Available(); err != nil {
		t.Fatalf("Available: %v", err)
	}
}
