package engine_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/sluice-project/sluice/engine"
	"github.com/sluice-project/sluice/engine/ipset"
	"github.com/sluice-project/sluice/packet"
	"github.com/sluice-project/sluice/report"
	"github.com/sluice-project/sluice/rules"
)

var (
	src4 = netip.MustParseAddr("203.0.113.5")
	dst4 = netip.MustParseAddr("198.51.100.10")
	src6 = netip.MustParseAddr("2001:db8:1::5")
	dst6 = netip.MustParseAddr("2001:db8::a")
)

const engineSets = `create allow hash:net family inet hashsize 1024 maxelem 65536
add allow 203.0.113.0/24
create ports bitmap:port range 0-65535
add ports 53
`

type env struct {
	pr  *engine.Program
	w   *engine.Worker
	dec packet.Decoder
	p   packet.Packet
}

// newEnv compiles v4 and/or v6 rules (empty string: none).
func newEnv(t testing.TB, text4, text6 string, local ...netip.Addr) *env {
	t.Helper()
	sets, err := ipset.Parse("t.ipset", strings.NewReader(engineSets), 0)
	if err != nil {
		t.Fatal(err)
	}
	var r4, r6 *rules.Ruleset
	if text4 != "" {
		if r4, err = rules.Parse(strings.NewReader(text4), rules.Options{Family: packet.FamilyIPv4, File: "t4", Sets: sets}); err != nil {
			t.Fatal(err)
		}
	}
	if text6 != "" {
		if r6, err = rules.Parse(strings.NewReader(text6), rules.Options{Family: packet.FamilyIPv6, File: "t6", Sets: sets}); err != nil {
			t.Fatal(err)
		}
	}
	pr, err := engine.Compile(engine.Config{Rules4: r4, Rules6: r6, HZ: 250, InIface: "eth0", LocalAddrs: local},
		engine.NewState(sets, 250), 0)
	if err != nil {
		t.Fatal(err)
	}
	return &env{pr: pr, w: pr.NewWorker()}
}

func (e *env) run(frame []byte) engine.Verdict {
	e.dec.Decode(frame, &e.p)
	return e.w.Process(&e.p, 0)
}

func (e *env) runLink(frame []byte, l packet.LinkType) engine.Verdict {
	e.dec.Link = l
	defer func() { e.dec.Link = packet.LinkEthernet }()
	return e.run(frame)
}

func rawRule(rule string) string {
	return "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A PREROUTING " + rule + " -j DROP\nCOMMIT\n"
}

func tcp4(sport, dport uint16, flags uint8, opts ...packet.BuildOpt) []byte {
	return packet.BuildIPv4(src4, dst4, packet.ProtoTCP, packet.BuildTCP(sport, dport, flags, nil), opts...)
}

func udp4(sport, dport uint16, payload []byte, opts ...packet.BuildOpt) []byte {
	return packet.BuildIPv4(src4, dst4, packet.ProtoUDP, packet.BuildUDP(sport, dport, payload), opts...)
}

func icmp4(typ, code uint8, opts ...packet.BuildOpt) []byte {
	return packet.BuildIPv4(src4, dst4, packet.ProtoICMP, packet.BuildICMP(typ, code, 0, nil), opts...)
}

func tcp6(sport, dport uint16, flags uint8, opts ...packet.BuildOpt) []byte {
	return packet.BuildIPv6(src6, dst6, packet.ProtoTCP, packet.BuildTCP(sport, dport, flags, nil), opts...)
}

const (
	A = engine.Accept
	D = engine.Drop
	H = engine.Hotdrop
)

func TestMatchSemantics4(t *testing.T) {
	syn := uint8(packet.TCPSyn)
	mss := []byte{2, 4, 5, 0xb4}
	// A TCP header whose data offset claims 60 bytes but only 24 are there.
	bigDoff := packet.BuildTCPWithOptions(1, 80, packet.TCPSyn, mss, nil)
	bigDoff[12] = 0xF0
	// Broadcast and multicast destination MACs.
	bcast := packet.WithDstMAC([6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	mcast := packet.WithDstMAC([6]byte{0x01, 0x00, 0x5e, 0, 0, 1})
	tests := []struct {
		name  string
		rule  string
		frame []byte
		want  engine.Verdict
	}{
		// tcp ports and flags
		{"tcp dport", "-p tcp --dport 80", tcp4(1000, 80, syn), D},
		{"tcp dport miss", "-p tcp --dport 80", tcp4(1000, 81, syn), A},
		{"tcp ! dport", "-p tcp ! --dport 80", tcp4(1000, 81, syn), D},
		{"tcp sport range", "-p tcp --sport 1000:2000", tcp4(1500, 81, syn), D},
		{"tcp sport range miss", "-p tcp --sport 1000:2000", tcp4(2001, 81, syn), A},
		{"tcp syn", "-p tcp --syn", tcp4(1, 2, syn), D},
		{"tcp syn on syn-ack", "-p tcp --syn", tcp4(1, 2, syn|packet.TCPAck), A},
		{"tcp ! syn on ack", "-p tcp ! --syn", tcp4(1, 2, packet.TCPAck), D},
		{"tcp flags none", "-p tcp --tcp-flags ALL NONE", tcp4(1, 2, 0), D},
		{"tcp flags xmas", "-p tcp --tcp-flags FIN,PSH,URG FIN,PSH,URG", tcp4(1, 2, packet.TCPFin|packet.TCPPsh|packet.TCPUrg|packet.TCPAck), D},
		{"tcp option present", "-p tcp --tcp-option 2",
			packet.BuildIPv4(src4, dst4, packet.ProtoTCP, packet.BuildTCPWithOptions(1, 2, syn, mss, nil)), D},
		{"tcp option absent", "-p tcp --tcp-option 2", tcp4(1, 2, syn), A},
		{"tcp ! option absent", "-p tcp ! --tcp-option 2", tcp4(1, 2, syn), D},
		{"tcp option other", "-p tcp --tcp-option 8",
			packet.BuildIPv4(src4, dst4, packet.ProtoTCP, packet.BuildTCPWithOptions(1, 2, syn, mss, nil)), A},
		{"tcp option beyond datagram", "-p tcp --tcp-option 8", packet.BuildIPv4(src4, dst4, packet.ProtoTCP, bigDoff), H},
		{"tcp truncated header", "-p tcp --dport 80", packet.BuildIPv4(src4, dst4, packet.ProtoTCP, packet.BuildTCP(1, 80, syn, nil)[:10]), H},
		{"tcp truncated, -p only", "-p tcp", packet.BuildIPv4(src4, dst4, packet.ProtoTCP, packet.BuildTCP(1, 80, syn, nil)[:10]), D},
		{"tcp evil fragment offset 8", "-p tcp --dport 80", tcp4(1, 80, syn, packet.WithFragment(8, false)), H},
		{"tcp fragment offset 16", "-p tcp --dport 80", tcp4(1, 80, syn, packet.WithFragment(16, false)), A},
		{"tcp fragment offset 16 inverted", "-p tcp ! --dport 80", tcp4(1, 80, syn, packet.WithFragment(16, false)), A},
		{"tcp first fragment", "-p tcp --dport 80", tcp4(1, 80, syn, packet.WithFragment(0, true)), D},
		// udp
		{"udp dport", "-p udp --dport 53", udp4(1, 53, nil), D},
		{"udp ! sport", "-p udp ! --sport 53", udp4(53, 53, nil), A},
		{"udp truncated", "-p udp --dport 53", packet.BuildIPv4(src4, dst4, packet.ProtoUDP, packet.BuildUDP(1, 53, nil)[:4]), H},
		{"udp fragment", "-p udp --dport 53", udp4(1, 53, nil, packet.WithFragment(8, false)), A},
		// icmp
		{"icmp type", "-p icmp --icmp-type echo-request", icmp4(8, 0), D},
		{"icmp type miss", "-p icmp --icmp-type echo-request", icmp4(0, 0), A},
		{"icmp ! type", "-p icmp ! --icmp-type echo-request", icmp4(0, 0), D},
		{"icmp code", "-p icmp --icmp-type fragmentation-needed", icmp4(3, 4), D},
		{"icmp code miss", "-p icmp --icmp-type fragmentation-needed", icmp4(3, 3), A},
		{"icmp any", "-p icmp --icmp-type any", icmp4(42, 9), D},
		{"icmp ! any", "-p icmp ! --icmp-type any", icmp4(42, 9), A},
		{"icmp truncated", "-p icmp --icmp-type any", packet.BuildIPv4(src4, dst4, packet.ProtoICMP, []byte{8, 0, 0, 0}), H},
		// multiport
		{"multiport dports", "-p tcp -m multiport --dports 22,80:90,443", tcp4(1, 85, syn), D},
		{"multiport dports miss", "-p tcp -m multiport --dports 22,80:90,443", tcp4(85, 91, syn), A},
		{"multiport sports", "-p udp -m multiport --sports 19,1900", udp4(1900, 1, nil), D},
		{"multiport ports either", "-p udp -m multiport --ports 123", udp4(1, 123, nil), D},
		{"multiport ! dports", "-p tcp -m multiport ! --dports 22,80", tcp4(22, 23, syn), D},
		{"multiport ! dports hit", "-p tcp -m multiport ! --dports 22,80", tcp4(23, 22, syn), A},
		{"multiport reads 4 bytes", "-p udp -m multiport --dports 53", packet.BuildIPv4(src4, dst4, packet.ProtoUDP, packet.BuildUDP(1, 53, nil)[:4]), D},
		{"multiport truncated", "-p udp -m multiport --dports 53", packet.BuildIPv4(src4, dst4, packet.ProtoUDP, []byte{0, 1}), H},
		{"multiport fragment", "-p udp -m multiport ! --dports 53", udp4(1, 54, nil, packet.WithFragment(64, false)), A},
		// length counts the L3 length, not the frame
		{"length exact", "-m length --length 40", tcp4(1, 2, syn), D},
		{"length with padding", "-m length --length 40", tcp4(1, 2, syn, packet.WithTrailer(make([]byte, 20))), D},
		{"length range miss", "-m length --length 41:", tcp4(1, 2, syn), A},
		{"length !", "-m length ! --length 41:", tcp4(1, 2, syn), D},
		// ttl
		{"ttl eq", "-m ttl --ttl-eq 64", tcp4(1, 2, syn), D},
		{"ttl ne", "-m ttl ! --ttl-eq 64", tcp4(1, 2, syn), A},
		{"ttl lt", "-m ttl --ttl-lt 2", tcp4(1, 2, syn, packet.WithTTL(1)), D},
		{"ttl lt miss", "-m ttl --ttl-lt 2", tcp4(1, 2, syn, packet.WithTTL(2)), A},
		{"ttl gt", "-m ttl --ttl-gt 200", tcp4(1, 2, syn, packet.WithTTL(201)), D},
		// iprange
		{"iprange src", "-m iprange --src-range 203.0.113.1-203.0.113.5", tcp4(1, 2, syn), D},
		{"iprange src miss", "-m iprange --src-range 203.0.113.6-203.0.113.9", tcp4(1, 2, syn), A},
		{"iprange ! dst", "-m iprange ! --dst-range 198.51.100.11-198.51.100.20", tcp4(1, 2, syn), D},
		{"iprange both", "-m iprange --src-range 203.0.113.0-203.0.113.255 --dst-range 198.51.100.11-198.51.100.20", tcp4(1, 2, syn), A},
		// dscp / tos
		{"dscp EF", "-m dscp --dscp-class EF", tcp4(1, 2, syn, packet.WithTOS(46<<2|1)), D},
		{"dscp miss", "-m dscp --dscp-class EF", tcp4(1, 2, syn, packet.WithTOS(10<<2)), A},
		{"dscp !", "-m dscp ! --dscp 0", tcp4(1, 2, syn, packet.WithTOS(3)), A},
		{"tos name", "-m tos --tos Minimize-Delay", tcp4(1, 2, syn, packet.WithTOS(0x10|0xc0)), D},
		{"tos value/mask", "-m tos --tos 0x08/0x0c", tcp4(1, 2, syn, packet.WithTOS(0x08)), D},
		{"tos value/mask miss", "-m tos --tos 0x08/0x0c", tcp4(1, 2, syn, packet.WithTOS(0x0c)), A},
		{"tos exact", "-m tos --tos 4", tcp4(1, 2, syn, packet.WithTOS(5)), A},
		// pkttype from the destination MAC
		{"pkttype host", "-m pkttype --pkt-type unicast", tcp4(1, 2, syn), D},
		{"pkttype broadcast", "-m pkttype --pkt-type broadcast", tcp4(1, 2, syn, bcast), D},
		{"pkttype multicast", "-m pkttype --pkt-type multicast", tcp4(1, 2, syn, mcast), D},
		{"pkttype ! unicast", "-m pkttype ! --pkt-type unicast", tcp4(1, 2, syn, bcast), D},
		// mac
		{"mac source", "-m mac --mac-source 02:00:00:00:00:01", tcp4(1, 2, syn), D},
		{"mac source miss", "-m mac --mac-source 02:00:00:00:00:09", tcp4(1, 2, syn), A},
		{"mac ! source", "-m mac ! --mac-source 02:00:00:00:00:09", tcp4(1, 2, syn), D},
		// -f
		{"-f non-first", "-f", tcp4(1, 2, syn, packet.WithFragment(16, false)), D},
		{"-f first fragment", "-f", tcp4(1, 2, syn, packet.WithFragment(0, true)), A},
		{"! -f first fragment", "! -f", tcp4(1, 2, syn, packet.WithFragment(0, true)), D},
		{"! -f non-first", "! -f", tcp4(1, 2, syn, packet.WithFragment(8, true)), A},
		// the fixed part
		{"src prefix", "-s 203.0.113.0/24", tcp4(1, 2, syn), D},
		{"! src prefix", "! -s 203.0.113.0/24", tcp4(1, 2, syn), A},
		{"non-contiguous mask", "-s 203.0.0.5/255.0.0.255", tcp4(1, 2, syn), D},
		{"dst host", "-d 198.51.100.10", tcp4(1, 2, syn), D},
		{"! -p tcp", "! -p tcp", tcp4(1, 2, syn), A},
		{"-p number", "-p 6", tcp4(1, 2, syn), D},
		{"-i eth0", "-i eth0", tcp4(1, 2, syn), D},
		{"-i eth+", "-i eth+", tcp4(1, 2, syn), D},
		{"-i et", "-i et", tcp4(1, 2, syn), A},
		{"! -i eth1", "! -i eth1", tcp4(1, 2, syn), D},
		// byte programs and sets
		{"u32 ntp mode 7", `-p udp -m u32 --u32 "0>>22&0x3C@8>>24&0x7=7"`, udp4(123, 1, []byte{0x17, 0, 0, 0}), D},
		{"u32 miss", `-p udp -m u32 --u32 "0>>22&0x3C@8>>24&0x7=7"`, udp4(123, 1, []byte{0x13, 0, 0, 0}), A},
		{"u32 !", `-m u32 ! --u32 "6&0xFF=17"`, tcp4(1, 2, syn), D},
		{"bpf udp", `-m bpf --bytecode "4,48 0 0 9,21 0 1 17,6 0 0 65535,6 0 0 0"`, udp4(1, 2, nil), D},
		{"bpf tcp", `-m bpf --bytecode "4,48 0 0 9,21 0 1 17,6 0 0 65535,6 0 0 0"`, tcp4(1, 2, syn), A},
		{"string", `-m string --string "GET /x" --algo bm`, packet.BuildIPv4(src4, dst4, packet.ProtoTCP, packet.BuildTCP(1, 80, packet.TCPAck, []byte("GET /xmlrpc.php"))), D},
		{"string ! ", `-m string ! --string "GET /x" --algo kmp`, tcp4(1, 2, syn), D},
		{"string --to", `-m string --string "GET" --algo bm --to 10`, packet.BuildIPv4(src4, dst4, packet.ProtoTCP, packet.BuildTCP(1, 80, packet.TCPAck, []byte("GET /"))), A},
		{"set src", "-m set --match-set allow src", tcp4(1, 2, syn), D},
		{"set ! src", "-m set ! --match-set allow src", tcp4(1, 2, syn), A},
		{"set port", "-p udp -m set --match-set ports dst", udp4(1, 53, nil), D},
		{"comment only", `-m comment --comment x`, tcp4(1, 2, syn), D},
	}
	for _, tt := range tests {
		e := newEnv(t, rawRule(tt.rule), "")
		if got := e.run(tt.frame); got != tt.want {
			t.Errorf("%s: %q: %v, want %v", tt.name, tt.rule, got, tt.want)
		}
	}
}

func TestMACOnRawCaptures(t *testing.T) {
	for _, rule := range []string{"-m mac --mac-source 02:00:00:00:00:01", "-m mac ! --mac-source 02:00:00:00:00:01", "-m mac ! --mac-source 00:00:00:00:00:00"} {
		e := newEnv(t, rawRule(rule), "")
		if v := e.runLink(tcp4(1, 2, packet.TCPSyn, packet.WithLink(packet.LinkRawIP)), packet.LinkRawIP); v != A {
			t.Errorf("raw IP, %q: %v, want accept (no MAC header never matches)", rule, v)
		}
		// A cooked capture carries the source MAC.
		want := D
		if strings.Contains(rule, "!") && !strings.Contains(rule, "00:00:00:00:00:00") {
			want = A
		}
		if v := e.runLink(tcp4(1, 2, packet.TCPSyn, packet.WithLink(packet.LinkLinuxSLL)), packet.LinkLinuxSLL); v != want {
			t.Errorf("cooked, %q: %v, want %v", rule, v, want)
		}
	}
}

func TestMatchSemantics6(t *testing.T) {
	raw6 := func(rule string) string { return rawRule(rule) }
	// A destination options header cut to one byte: the chain walk
	// cannot read its length and fails.
	brokenFrame := func() []byte {
		return packet.BuildIPv6(src6, dst6, packet.IPv6NextDestOptions, []byte{packet.ProtoTCP})
	}
	// A non-first fragment whose next header is another extension header.
	fragThenExt := tcp6(1, 80, packet.TCPSyn, packet.WithFragment(8, false), packet.WithDestOpts(nil))
	tests := []struct {
		name  string
		rule  string
		frame []byte
		want  engine.Verdict
	}{
		{"tcp dport", "-p tcp --dport 80", tcp6(1, 80, packet.TCPSyn), D},
		{"-p tcp through ext headers", "-p tcp --dport 80", tcp6(1, 80, packet.TCPSyn, packet.WithHopByHop(nil), packet.WithDestOpts(nil)), D},
		{"-p tcp broken chain", "-p tcp", brokenFrame(), H},
		{"! -p tcp broken chain", "! -p tcp", brokenFrame(), H},
		{"-p all broken chain", "-p all", brokenFrame(), H},
		{"no -p broken chain", "-s 2001:db8:1::/48", brokenFrame(), D},
		{"-p tcp frag then ext", "-p tcp", fragThenExt, H},
		{"-p tcp non-first fragment", "-p tcp", tcp6(1, 80, packet.TCPSyn, packet.WithFragment(8, false)), D},
		{"tcp port non-first fragment", "-p tcp --dport 80", tcp6(1, 80, packet.TCPSyn, packet.WithFragment(8, false)), A},
		{"! -p udp", "! -p udp", tcp6(1, 80, packet.TCPSyn), D},
		{"icmp6 type", "-p ipv6-icmp --icmpv6-type echo-request",
			packet.BuildIPv6(src6, dst6, packet.ProtoICMPv6, packet.BuildICMP(128, 0, 0, nil)), D},
		{"icmp6 truncated", "-p ipv6-icmp --icmpv6-type echo-request",
			packet.BuildIPv6(src6, dst6, packet.ProtoICMPv6, []byte{128, 0, 0, 0}), H},
		{"hl lt", "-m hl --hl-lt 2", tcp6(1, 80, packet.TCPSyn, packet.WithTTL(1)), D},
		{"length v6", "-m length --length 60", tcp6(1, 80, packet.TCPSyn), D},
		{"iprange v6", "-m iprange --src-range 2001:db8:1::1-2001:db8:1::9", tcp6(1, 80, packet.TCPSyn), D},
		{"iprange v6 miss", "-m iprange --src-range 2001:db8:1::6-2001:db8:1::9", tcp6(1, 80, packet.TCPSyn), A},
		{"dscp v6", "-m dscp --dscp 46", tcp6(1, 80, packet.TCPSyn, packet.WithTOS(46<<2)), D},
		{"src v6", "-s 2001:db8:1::/48", tcp6(1, 80, packet.TCPSyn), D},
		{"! src v6", "! -s 2001:db8:1::/48", tcp6(1, 80, packet.TCPSyn), A},
	}
	for _, tt := range tests {
		e := newEnv(t, "", raw6(tt.rule))
		if got := e.run(tt.frame); got != tt.want {
			t.Errorf("%s: %q: %v, want %v (proto found %v, fragoff %d)", tt.name, tt.rule, got, tt.want, e.p.ProtoFound, e.p.FragOff)
		}
	}
	// A v4 frame with only v6 rules is not filtered.
	e := newEnv(t, "", raw6(""))
	if v := e.run(tcp4(1, 2, packet.TCPSyn)); v != engine.NotFiltered {
		t.Errorf("v4 frame with v6 rules only: %v", v)
	}
}

// counts returns packets and bytes per rule line and per chain policy.
func counts(rep *report.Report) (map[int][2]uint64, map[string][2]uint64) {
	rl := map[int][2]uint64{}
	pol := map[string][2]uint64{}
	for _, t := range rep.Tables {
		for _, c := range t.Chains {
			pol[t.Table+"/"+c.Name] = [2]uint64{c.PolicyPackets, c.PolicyBytes}
			for _, r := range c.Rules {
				x := rl[r.Line]
				rl[r.Line] = [2]uint64{x[0] + r.Packets, x[1] + r.Bytes}
			}
		}
	}
	return rl, pol
}

const traversalRules = `*raw
:PREROUTING DROP [0:0]
:OUTPUT ACCEPT [0:0]
:A - [0:0]
:B - [0:0]
:G - [0:0]
-A PREROUTING -p icmp -j ACCEPT
-A PREROUTING -j A
-A PREROUTING -j LOG --log-prefix x
-A PREROUTING -j NFLOG --nflog-group 1
-A PREROUTING -j CT --notrack
-A PREROUTING -p tcp --dport 2 -j ACCEPT
-A A -p udp -g G
-A A -p tcp -j B
-A A -m comment --comment "after B"
-A B -p tcp --dport 1 -j DROP
-A B -j RETURN
-A B -m comment --comment "after RETURN"
-A G -p udp --dport 7 -j RETURN
-A G -p udp -j ACCEPT
COMMIT
`

func TestTraversal(t *testing.T) {
	e := newEnv(t, traversalRules, "")
	pad := packet.WithTrailer(make([]byte, 30))
	frames := []struct {
		frame []byte
		want  engine.Verdict
		lines []int // rules counted
	}{
		{tcp4(9, 1, packet.TCPSyn), D, []int{8, 14, 16}},
		{tcp4(9, 2, packet.TCPSyn), A, []int{8, 14, 17, 15, 9, 10, 11, 12}},
		// Falls off PREROUTING to its DROP policy; padding is not counted.
		{tcp4(9, 3, packet.TCPSyn, pad), D, []int{8, 14, 17, 15, 9, 10, 11}},
		// RETURN from a goto'd chain returns to the chain that jumped to
		// the chain that did the goto: PREROUTING after "-j A".
		{udp4(9, 7, nil), D, []int{8, 13, 19, 9, 10, 11}},
		{udp4(9, 8, nil), A, []int{8, 13, 20}},
		{icmp4(8, 0), A, []int{7}},
	}
	wantRules := map[int][2]uint64{}
	var policy [2]uint64
	for i, f := range frames {
		v := e.run(f.frame)
		if v != f.want {
			t.Errorf("frame %d: %v, want %v", i, v, f.want)
		}
		l3 := uint64(e.p.Len)
		if len(f.frame)-14 == int(l3) && i == 2 {
			t.Fatal("padding not added")
		}
		for _, l := range f.lines {
			x := wantRules[l]
			wantRules[l] = [2]uint64{x[0] + 1, x[1] + l3}
		}
		if i == 2 || i == 3 {
			policy[0]++
			policy[1] += l3
		}
	}
	got, pol := counts(e.pr.Report(e.w))
	for l := 7; l <= 20; l++ {
		if got[l] != wantRules[l] {
			t.Errorf("line %d: %v, want %v", l, got[l], wantRules[l])
		}
	}
	if pol["raw/PREROUTING"] != policy {
		t.Errorf("policy %v, want %v", pol["raw/PREROUTING"], policy)
	}
	rep := e.pr.Report(e.w)
	if rep.Packets != 6 || rep.Accepted != 3 || rep.Dropped != 3 {
		t.Errorf("report %d %d %d", rep.Packets, rep.Accepted, rep.Dropped)
	}
}

func TestReturnInBuiltin(t *testing.T) {
	e := newEnv(t, "*raw\n:PREROUTING DROP\n-A PREROUTING -p udp -j RETURN\n-A PREROUTING -j ACCEPT\nCOMMIT\n", "")
	if v := e.run(udp4(1, 2, nil)); v != D {
		t.Errorf("RETURN in a built-in chain: %v, want the DROP policy", v)
	}
	if v := e.run(tcp4(1, 2, packet.TCPSyn)); v != A {
		t.Errorf("tcp: %v", v)
	}
	_, pol := counts(e.pr.Report(e.w))
	if pol["raw/PREROUTING"] != [2]uint64{1, 28} {
		t.Errorf("policy %v", pol["raw/PREROUTING"])
	}
}

func TestHotdropCountsNothing(t *testing.T) {
	e := newEnv(t, "*raw\n:PREROUTING ACCEPT\n-A PREROUTING -j LOG\n-A PREROUTING -p tcp --dport 1 -j DROP\nCOMMIT\n", "")
	if v := e.run(packet.BuildIPv4(src4, dst4, packet.ProtoTCP, make([]byte, 8))); v != H {
		t.Fatalf("%v", v)
	}
	rl, pol := counts(e.pr.Report(e.w))
	if rl[3][0] != 1 || rl[4][0] != 0 || pol["raw/PREROUTING"][0] != 0 {
		t.Errorf("rules %v policy %v", rl, pol)
	}
	rep := e.pr.Report(e.w)
	if rep.Hotdropped != 1 || rep.Dropped != 1 {
		t.Errorf("hotdropped %d dropped %d", rep.Hotdropped, rep.Dropped)
	}
}

func TestHooksInOrder(t *testing.T) {
	text := `*raw
:PREROUTING ACCEPT
-A PREROUTING -p tcp --dport 1 -j ACCEPT
COMMIT
*mangle
:PREROUTING ACCEPT
:INPUT ACCEPT
-A PREROUTING -p tcp --dport 2 -j DROP
-A INPUT -p tcp --dport 3 -j DROP
COMMIT
*filter
:INPUT DROP
-A INPUT -p tcp --dport 1 -j ACCEPT
COMMIT
`
	e := newEnv(t, text, "")
	for _, c := range []struct {
		dport uint16
		want  engine.Verdict
	}{{1, A}, {2, D}, {3, D}, {4, D}} {
		if v := e.run(tcp4(1, c.dport, packet.TCPSyn)); v != c.want {
			t.Errorf("dport %d: %v, want %v", c.dport, v, c.want)
		}
	}
	_, pol := counts(e.pr.Report(e.w))
	if pol["raw/PREROUTING"][0] != 3 || pol["mangle/PREROUTING"][0] != 3 || pol["mangle/INPUT"][0] != 2 || pol["filter/INPUT"][0] != 1 {
		t.Errorf("policies %v", pol)
	}
}

func TestReachesInput(t *testing.T) {
	text4 := "*raw\n:PREROUTING ACCEPT\n-A PREROUTING -j LOG\nCOMMIT\n*filter\n:INPUT ACCEPT\n-A INPUT -j DROP\nCOMMIT\n"
	local4 := netip.MustParseAddr("198.51.100.10")
	local6 := netip.MustParseAddr("2001:db8::a")
	e := newEnv(t, text4, text4, local4, local6)
	a := netip.MustParseAddr
	v4 := func(s, d string, opts ...packet.BuildOpt) []byte {
		return packet.BuildIPv4(a(s), a(d), packet.ProtoUDP, packet.BuildUDP(1, 2, nil), opts...)
	}
	v6 := func(s, d string) []byte {
		return packet.BuildIPv6(a(s), a(d), packet.ProtoUDP, packet.BuildUDP(1, 2, nil))
	}
	tests := []struct {
		name  string
		frame []byte
		want  engine.Verdict // D: reached INPUT, A: did not
	}{
		{"unicast", v4("203.0.113.5", "198.51.100.10"), D},
		{"unicast elsewhere (AnyIP)", v4("203.0.113.5", "192.0.2.1"), D},
		{"source is a local address", v4("198.51.100.10", "198.51.100.10"), A},
		{"multicast source", v4("224.1.1.1", "198.51.100.10"), A},
		{"broadcast source", v4("255.255.255.255", "198.51.100.10"), A},
		{"limited broadcast", v4("203.0.113.5", "255.255.255.255"), D},
		{"limited broadcast from 0.0.0.0", v4("0.0.0.0", "255.255.255.255"), D},
		{"zero source", v4("0.0.0.0", "198.51.100.10"), A},
		{"zero source and destination (brd_input)", v4("0.0.0.0", "0.0.0.0"), D},
		{"zero destination", v4("203.0.113.5", "0.0.0.0"), A},
		{"rest of 0/8", v4("0.1.2.3", "198.51.100.10"), D},
		{"loopback source", v4("127.0.0.1", "198.51.100.10"), A},
		{"loopback destination", v4("203.0.113.5", "127.0.0.1"), A},
		{"all-hosts", v4("203.0.113.5", "224.0.0.1"), D},
		{"all-hosts from 0.0.0.0", v4("0.0.0.0", "224.0.0.1"), D},
		{"all-hosts from 0.1.2.3", v4("0.1.2.3", "224.0.0.1"), D},
		{"all-hosts from a local address", v4("198.51.100.10", "224.0.0.1"), A},
		{"other group", v4("203.0.113.5", "224.0.0.5"), A},
		{"v6 unicast", v6("2001:db8:1::5", "2001:db8::a"), D},
		{"v6 local source still reaches", v6("2001:db8::a", "2001:db8::a"), D},
		{"v6 all-nodes", v6("2001:db8:1::5", "ff02::1"), D},
		{"v6 all-routers", v6("2001:db8:1::5", "ff02::2"), A},
		{"v6 solicited-node of ours", v6("2001:db8:1::5", "ff02::1:ff00:a"), D},
		{"v6 solicited-node of another", v6("2001:db8:1::5", "ff02::1:ff00:b"), A},
	}
	for _, tt := range tests {
		if v := e.run(tt.frame); v != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, v, tt.want)
		}
	}
	// Every one of them went through raw PREROUTING.
	rl, _ := counts(e.pr.Report(e.w))
	if rl[3][0] != uint64(len(tests)) {
		t.Errorf("PREROUTING LOG counted %d, want %d", rl[3][0], len(tests))
	}
}

func TestMalformedAndNotFiltered(t *testing.T) {
	e := newEnv(t, rawRule(""), "")
	if v := e.run(tcp4(1, 2, packet.TCPSyn, packet.WithBadChecksum())); v != engine.Malformed {
		t.Errorf("bad checksum: %v", v)
	}
	if v := e.run(tcp4(1, 2, packet.TCPSyn, packet.WithVLAN(10))); v != engine.NotFiltered {
		t.Errorf("VLAN 10: %v", v)
	}
	if v := e.run(tcp4(1, 2, packet.TCPSyn, packet.WithVLAN(0))); v != D {
		t.Errorf("priority tag: %v", v)
	}
	arp := make([]byte, 42)
	arp[12], arp[13] = 0x08, 0x06
	if v := e.run(arp); v != engine.NotFiltered {
		t.Errorf("ARP: %v", v)
	}
	rep := e.pr.Report(e.w)
	if rep.Packets != rep.Accepted+rep.Dropped+rep.Malformed || rep.MalformedBy["ip_checksum"] != 1 {
		t.Errorf("report %+v", rep)
	}
}
