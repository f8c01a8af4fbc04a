//go:build linux

package xdp

import (
	"fmt"
	"math/rand"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/sluice-project/sluice/engine"
	"github.com/sluice-project/sluice/engine/ipset"
	"github.com/sluice-project/sluice/internal/testnet"
	"github.com/sluice-project/sluice/packet"
	"github.com/sluice-project/sluice/rules"
)

// wholeSites are the whole-packet sites the differential tests accept:
// none. VLAN stacks of any depth (vlan.go), hop-by-hop options and
// extension-header chains of any length run in the program.
var wholeSites []string

// anySite, among diffBoth's allowed reasons, allows every fallback site.
const anySite = "*"

func siteAllowed(allowed []string, reason string) bool {
	return slices.Contains(allowed, anySite) || slices.Contains(allowed, reason)
}

// diffBoth runs every frame through a reference engine and through the
// program compiled from both rulesets; a frame handed over at a fallback
// site goes on in a second engine with ProcessFrom. For every frame the
// action and statistic must be the reference's, and every rule and
// policy counter of both families must move by the reference's amount
// in the program plus the second engine; fallbacks are allowed only at
// sites in allowed. It returns the spec and the fallbacks by reason.
func diffBoth(t *testing.T, rs4, rs6 *rules.Ruleset, opts CompileOptions, frames [][]byte, allowed ...string) (*Spec, map[string]int) {
	t.Helper()
	spec, err := Compile(rs4, rs6, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, ri := range spec.Rules {
		if ri.Mode == "fallback" && !siteAllowed(allowed, ri.Reason) {
			t.Fatalf("%s line %d falls back: %s", ri.Family, ri.Rule.Line, ri.Reason)
		}
	}
	f, err := spec.Load()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg := engine.Config{Rules4: rs4, Rules6: rs6, InIface: opts.InIface, LocalAddrs: opts.LocalAddrs}
	ref, err := engine.Compile(cfg, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	user, err := engine.Compile(cfg, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	sites, err := spec.ResumeSites(user)
	if err != nil {
		t.Fatal(err)
	}
	wr, wu := ref.NewWorker(), user.NewWorker()
	dec := packet.Decoder{}
	if opts.LocalMAC != nil {
		dec.HasLocalMAC = true
		copy(dec.LocalMAC[:], opts.LocalMAC)
	}
	var p packet.Packet
	out := make([]byte, 4096)
	prev := make([]uint64, spec.NumCounters())
	prevRef, chains := flat(ref.Report(wr))
	prevUser, _ := flat(user.Report(wu))
	prevProg, _ := flat(spec.Report(prev, rs4, rs6))
	if len(prevRef) != len(prevProg) {
		t.Fatalf("engine reports %d counters, program %d", len(prevRef), len(prevProg))
	}
	bad := 0
	bySite := map[string]int{}
	byVerdict := map[engine.Verdict]int{}
	for i, fr := range frames {
		if len(fr) < packet.EthernetMinSize {
			continue
		}
		now := int64(i) * 1e6
		dec.Decode(fr, &p)
		v := wr.Process(&p, now)
		byVerdict[v]++
		ro := &ebpf.RunOptions{Data: fr, DataOut: out}
		ret, err := f.Program.Run(ro)
		if err != nil {
			t.Fatal(err)
		}
		cur, err := f.ReadCounters()
		if err != nil {
			t.Fatal(err)
		}
		fail := func(format string, a ...any) {
			if bad++; bad <= 10 {
				t.Errorf("frame %d (engine %v, malformed %v): %s\n% x", i, v, p.Malformed, fmt.Sprintf(format, a...), fr)
			}
		}
		if cur[StatPackets] != prev[StatPackets]+1 {
			fail("packets statistic did not move by one")
		}
		if cur[StatFallback] != prev[StatFallback] {
			site, ok := SiteFromMeta(ro.DataOut)
			switch {
			case ret != xdpPass || !ok || len(ro.DataOut) != len(fr)+4 || site >= len(sites):
				fail("fallback returned %d with %d bytes out (frame %d)", ret, len(ro.DataOut), len(fr))
			case !siteAllowed(allowed, spec.Fallback[site].Reason):
				fail("unexpected fallback at site %d: %s", site, spec.Fallback[site].Reason)
			default:
				bySite[spec.Fallback[site].Reason]++
				var q packet.Packet
				dec.Decode(ro.DataOut[4:], &q)
				if got := wu.ProcessFrom(&q, now, sites[site]); got != v {
					fail("resumed at site %d (%s): %v", site, spec.Fallback[site].Reason, got)
				}
			}
		} else {
			want := uint32(xdpPass)
			if v == engine.Drop || v == engine.Hotdrop || v == engine.Malformed {
				want = xdpDrop
			}
			st := verdictStat[v]
			if ret != want || cur[st] != prev[st]+1 {
				got := -1
				for s := StatAccepted; s < StatMalformedBy; s++ {
					if cur[s] != prev[s] {
						got = s
					}
				}
				fail("program returned %d with statistic %d (want %d, statistic %d)", ret, got, want, st)
			}
			if v == engine.Malformed && cur[StatMalformedBy+int(p.Malformed)] != prev[StatMalformedBy+int(p.Malformed)]+1 {
				fail("malformed reason %v not counted", p.Malformed)
			}
		}
		eng, _ := flat(ref.Report(wr))
		usr, _ := flat(user.Report(wu))
		prog, _ := flat(spec.Report(cur, rs4, rs6))
		for k := range eng {
			de, dp := eng[k]-prevRef[k], prog[k]-prevProg[k]+usr[k]-prevUser[k]
			if de != dp {
				fail("counter %d (%s): engine +%d, program+resume +%d", k, chains[k], de, dp)
				break
			}
		}
		prev, prevRef, prevUser, prevProg = cur, eng, usr, prog
	}
	sum := user.Report(wu)
	AddReport(sum, spec.Report(prev, rs4, rs6))
	compareReports(t, ref.Report(wr), sum)
	t.Logf("%d frames, verdicts %v, fell back %v", len(frames), byVerdict, bySite)
	// Every IPv6 rule that can match on this attachment should have
	// matched some frame, or the frames miss a branch.
	for _, rt := range ref.Report(wr).Tables {
		if rt.Family != packet.FamilyIPv6.String() {
			continue
		}
		for _, c := range rt.Chains {
			for _, r := range c.Rules {
				if r.Packets == 0 {
					t.Logf("never matched: %s %s line %d: %s", rt.Table, c.Name, r.Line, r.Text)
				}
			}
		}
	}
	return spec, bySite
}

// parse6 parses an ip6tables-save text.
func parse6(t testing.TB, text string) *rules.Ruleset {
	t.Helper()
	rs, err := rules.Parse(strings.NewReader(text), rules.Options{Family: packet.FamilyIPv6, File: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// synthRules6 exercises, for IPv6, every match the program compiles:
// 128-bit -s/-d with masks and inversion, -p (named, all, negated:
// each walks the header chain and hotdrops a broken one), tcp, udp,
// icmp6 (no "any" type), multiport, length, hl, iprange, dscp, tos,
// pkttype, mac, u32 and comment, with jumps, gotos, returns, policies,
// and mangle and filter INPUT behind the routing decision.
const synthRules6 = `*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:A - [0:0]
:B - [0:0]
:C - [0:0]
:D - [0:0]
-A PREROUTING -s 2001:db8::/ffff:ffff:0:ffff:: -j A
-A PREROUTING ! -s 2001:db8:1::/48 -p tcp -m tcp ! --dport 1000:2000 -j B
-A PREROUTING -p udp -g C
-A PREROUTING -p all -j LOG
-A PREROUTING ! -p esp -j NFLOG
-A PREROUTING -m hl --hl-gt 200 -j DROP
-A PREROUTING -m tos --tos 0x10/0x3f
-A PREROUTING -m dscp ! --dscp 0
-A PREROUTING -i eth0 -m length ! --length 100:200
-A PREROUTING -i eth1 -j DROP
-A PREROUTING ! -i eth+ -j DROP
-A PREROUTING ! -i eth1 -p ipv6-icmp -m icmp6 ! --icmpv6-type echo-request
-A PREROUTING -p ipv6-icmp -m icmp6 --icmpv6-type 1/3 -j D
-A PREROUTING -d ff02::/16 -p ipv6-icmp -m icmp6 --icmpv6-type 135 -j ACCEPT
-A PREROUTING -p 59 -m hl --hl-lt 64 -j DROP
-A A -p tcp -m tcp --tcp-flags SYN,ACK SYN -j RETURN
-A A -m iprange --dst-range 2001:db8::2-2001:db8::1:0 -j DROP
-A A -m iprange ! --src-range 2001:db8::-2001:db8::ff ! --dst-range 2001:db8::1:0-2001:db8:0:1::
-A A -p ipv6-icmp -j C
-A A -m mac --mac-source 02:00:00:00:00:01 -j RETURN
-A A -m mac ! --mac-source 02:00:00:00:00:02
-A A ! -p udp -m hl --hl-eq 64
-A A -m hl --hl-lt 3 -j DROP
-A A -m hl ! --hl-eq 9
-A A -d ::/0 -p tcp -m tcp --sport 7 -j ACCEPT
-A B -p tcp -m multiport --sports 1:100,443 -j ACCEPT
-A B -p tcp -m multiport ! --ports 80,8080:8090 -j D
-A B -m u32 --u32 "4>>8&0xFF=6 && 40&0xFFFF=0:1023"
-A B -m u32 ! --u32 "4&0xFFFF=0x100:0xFFFF"
-A B -p tcp -m tcp --syn -j RETURN
-A B -p tcp -m tcp ! --tcp-flags FIN,RST NONE -j D
-A B -j RETURN
-A B -j DROP
-A C -p udp -m udp --sport 53 -j DROP
-A C -p udp -m udp --dport 53 ! --sport 1024:65535 -j ACCEPT
-A C -p ipv6-icmp -m icmp6 --icmpv6-type 1/1 -j DROP
-A C -p ipv6-icmp -m icmp6 ! --icmpv6-type 128 -j D
-A C -m pkttype --pkt-type multicast -j DROP
-A C -m pkttype ! --pkt-type host -j ACCEPT
-A C -p udp -m multiport --dports 5000:5010 -g D
-A C -j RETURN
-A D -m length --length 0:100 -j RETURN
-A D -m comment --comment "a comment" -j NOTRACK
-A D -d 2001:db8::7 -j DROP
-A D ! -d 2001:db8::/64 ! -s fe80::/10 -j DROP
COMMIT
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -p tcp -m tcp --tcp-flags ALL ALL -j DROP
-A INPUT -m pkttype --pkt-type broadcast -j DROP
-A INPUT -p udp -j ACCEPT
-A INPUT -p ipv6-icmp -j ACCEPT
-A INPUT -p tcp -m tcp --dport 22
-A INPUT -p tcp -j ACCEPT
-A INPUT -p 59 -j ACCEPT
COMMIT
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp -m tcp --dport 0:1023 -j ACCEPT
-A INPUT -m pkttype --pkt-type multicast -j ACCEPT
-A INPUT -p udp -j ACCEPT
COMMIT
`

// synthFrames6 builds IPv6 frames that walk every branch of synthRules6
// and of the receive checks: every extension header the walk knows
// (hop-by-hop, routing, fragment first and not, destination options,
// AH), chains of them longer than 8 (the old unrolled depth), headers cut short,
// NEXTHDR_NONE and ESP, ICMPv6 types, truncated transport headers, VLAN
// tags, multicast groups, and malformed headers (version, payload
// length, loopback and multicast addresses).
func synthFrames6(n int, seed int64) [][]byte {
	rng := rand.New(rand.NewSource(seed))
	pick := func(s ...string) netip.Addr { return netip.MustParseAddr(s[rng.Intn(len(s))]) }
	srcs := []string{"2001:db8::1", "2001:db8::7", "2001:db8:1::5", "2001:db8:0:1::9", "2001:db8:5678:9::1",
		"2001:db8::80", "fe80::1", "2002::1", "::", "2001:db8:0:1::", "2001:db8::1", "2001:db8::3"}
	if rng.Intn(2) == 0 {
		srcs = append(srcs, "::1", "ff02::1")
	}
	dsts := []string{"2001:db8::1", "2001:db8::2", "2001:db8::7", "2001:db8::1:0", "2001:db8::ff00", "2001:db8:0:1::",
		"2001:db8:9::1", "ff02::1", "ff02::2", "ff02::1:ff00:1", "ff02::1:ff12:3456", "ff02:0:0:5::1:ff00:1",
		"ff05::1", "ff0e::1:ff00:1", "fe80::2", "2001:db8::2", "2001:db8::7", "2001:db8::1"}
	if rng.Intn(2) == 0 {
		dsts = append(dsts, "ff01::1", "ff00::1", "::1")
	}
	ports := []uint16{0, 7, 22, 53, 80, 123, 443, 999, 1000, 1500, 2000, 2001, 5005, 8080, 8085, 40000, 65535}
	macs := [][6]byte{{2, 0, 0, 0, 0, 1}, {2, 0, 0, 0, 0, 2}, {2, 0, 0, 0, 0, 3}}
	dmacs := [][6]byte{{2, 0, 0, 0, 0, 9}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, {0x33, 0x33, 0, 0, 0, 1}, {2, 0, 0, 0, 0, 8}}
	ext := func() packet.BuildOpt {
		switch rng.Intn(12) {
		case 0:
			return packet.WithHopByHop(nil)
		case 1:
			return packet.WithHopByHop(packet.TLV(5, []byte{0, 0})) // router alert
		case 2:
			return packet.WithHopByHop(packet.TLV(0x80, []byte{1, 2})) // unknown, must drop
		case 3:
			return packet.WithDestOpts(packet.TLV(0x1e, []byte{1, 2, 3}))
		case 4:
			return packet.WithRouting(0, uint8(rng.Intn(2)), make([]byte, rng.Intn(3)*8))
		case 5:
			return packet.WithAH(1, 2, make([]byte, 4*rng.Intn(4)))
		case 6:
			return packet.WithFragment(0, true)
		case 7:
			return packet.WithFragment(uint16(rng.Intn(3))*8, rng.Intn(2) == 0)
		case 8:
			return packet.WithIPv6Ext(packet.IPv6NextDestOptions, []byte{0, byte(rng.Intn(4)), 1, 0, 0, 0, 0, 0})
		case 9:
			return packet.WithIPv6Ext(packet.IPv6NextAuth, []byte{0, byte(rng.Intn(6)), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
		case 10:
			return packet.WithIPv6Ext(packet.IPv6NextRouting, []byte{0, 0})
		default:
			return packet.WithDestOpts(nil)
		}
	}
	var frames [][]byte
	for len(frames) < n {
		var opts []packet.BuildOpt
		opts = append(opts, packet.WithSrcMAC(macs[rng.Intn(len(macs))]), packet.WithDstMAC(dmacs[rng.Intn(len(dmacs))]))
		opts = append(opts, packet.WithTTL([]uint8{0, 1, 2, 3, 9, 64, 128, 201, 255}[rng.Intn(9)]))
		opts = append(opts, packet.WithTOS([]uint8{0, 0x10, 0x12, 0xb8, 0x50, 0x04}[rng.Intn(6)]))
		tagged := false
		switch rng.Intn(10) {
		case 0:
			tagged = true
			opts = append(opts, packet.WithVLAN(uint16(rng.Intn(2)*5)))
		case 1:
			tagged = true
			opts = append(opts, packet.WithQinQ(uint16(rng.Intn(2)*7)))
		case 2:
			opts = append(opts, packet.WithTrailer([]byte{0, 0, 0, 0, 0, 0}))
		}
		// Extension headers: mostly none or a few; sometimes a chain
		// of 7 to 12.
		switch k := rng.Intn(10); {
		case k < 4:
		case k < 9:
			for j := rng.Intn(4); j >= 0; j-- {
				opts = append(opts, ext())
			}
		default:
			for j := 6 + rng.Intn(6); j >= 0; j-- {
				opts = append(opts, packet.WithDestOpts(nil))
			}
		}
		switch rng.Intn(30) {
		case 0:
			opts = append(opts, packet.WithVersion(4))
		case 1:
			opts = append(opts, packet.WithLengthField(3000))
		case 2:
			opts = append(opts, packet.WithLengthField(rng.Intn(24)))
		}
		var proto uint8
		var l4 []byte
		payload := make([]byte, rng.Intn(3)*80)
		switch rng.Intn(6) {
		case 0, 1:
			proto = packet.ProtoTCP
			flags := []uint8{packet.TCPSyn, packet.TCPSyn | packet.TCPAck, packet.TCPAck, 0, 0xff, packet.TCPFin | packet.TCPAck, packet.TCPRst}[rng.Intn(7)]
			l4 = packet.BuildTCP(ports[rng.Intn(len(ports))], ports[rng.Intn(len(ports))], flags, payload)
		case 2:
			proto = packet.ProtoUDP
			l4 = packet.BuildUDP(ports[rng.Intn(len(ports))], ports[rng.Intn(len(ports))], payload)
		case 3, 4:
			proto = packet.ProtoICMPv6
			l4 = packet.BuildICMP([]uint8{1, 1, 128, 129, 135, 136, 255, 0}[rng.Intn(8)], uint8(rng.Intn(5)), 0, payload)
		default:
			proto = []uint8{packet.IPv6NextNone, packet.IPv6NextESP, 132, 47, 1}[rng.Intn(5)]
			l4 = append([]byte{0, 80, 1, 187, 8, 0, 0, 0}, payload...)
		}
		if rng.Intn(8) == 0 {
			l4 = l4[:rng.Intn(min(len(l4), 21))]
		}
		fr := packet.BuildIPv6(pick(srcs...), pick(dsts...), proto, l4, opts...)
		if !tagged && len(fr) >= 14+40 && rng.Intn(5) == 0 {
			// A shorter payload length: the datagram ends inside an
			// extension header or the transport header (the rest of
			// the frame is link-layer padding).
			pl := int(fr[18])<<8 | int(fr[19])
			pl = rng.Intn(min(pl, len(fr)-54) + 1)
			fr[18], fr[19] = byte(pl>>8), byte(pl)
		}
		if rng.Intn(40) == 0 {
			fr = fr[:14+rng.Intn(min(len(fr)-14, 70))]
		}
		frames = append(frames, fr)
	}
	return frames
}

// TestCompileDiffIPv6 runs the IPv6 frames, and the IPv4 ones, through
// a program compiled from both synthetic rulesets, on three attachments.
func TestCompileDiffIPv6(t *testing.T) {
	testnet.RequireForTest(t)
	rs4, rs6 := parse4(t, synthRules), parse6(t, synthRules6)
	frames := synthFrames6(30000, 1)
	frames = append(frames, synthFrames(3000, 2)...)
	rand.New(rand.NewSource(4)).Shuffle(len(frames), func(i, j int) { frames[i], frames[j] = frames[j], frames[i] })
	for _, tc := range []struct {
		name string
		opts CompileOptions
	}{
		{"eth0", CompileOptions{InIface: "eth0"}},
		{"eth1 local", CompileOptions{InIface: "eth1", LocalMAC: []byte{2, 0, 0, 0, 0, 9},
			LocalAddrs: []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("fe80::12:3456")}}},
		{"ppp0", CompileOptions{InIface: "ppp0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec, _ := diffBoth(t, rs4, rs6, tc.opts, frames, append(wholeSites, inputSites...)...)
			t.Logf("%d instructions", spec.Instructions())
			for _, fs := range spec.Fallback {
				if fs.Family == packet.FamilyIPv6 && fs.Hook == -1 {
					t.Errorf("IPv6 whole-packet site: %s", fs.Reason)
				}
			}
		})
	}
}

// TestCompileDiffIPv6Only compiles the IPv6 ruleset alone: IPv4 frames
// are validated and not filtered.
func TestCompileDiffIPv6Only(t *testing.T) {
	testnet.RequireForTest(t)
	rs6 := parse6(t, synthRules6)
	frames := append(synthFrames6(5000, 7), synthFrames(1000, 8)...)
	spec, _ := diffBoth(t, nil, rs6, CompileOptions{InIface: "eth0"}, frames, wholeSites...)
	t.Logf("IPv6 only: %d instructions", spec.Instructions())
}

// TestCompileDiffIPv6Sets: an IPv4 set in an IPv6 ruleset is a constant
// (ip_set_test refuses the family), run in XDP; an IPv6 set is a
// fallback site, here in a chain entered by -j, which userspace resumes
// with the return point pending.
func TestCompileDiffIPv6Sets(t *testing.T) {
	reg, err := ipset.Parse("sets", strings.NewReader(synthSets), 0)
	if err != nil {
		t.Fatal(err)
	}
	const text = `*raw
:PREROUTING ACCEPT [0:0]
:S - [0:0]
-A PREROUTING -m set --match-set nets src -j DROP
-A PREROUTING -m set ! --match-set hosts dst
-A PREROUTING -p tcp -j S
-A PREROUTING -s 2001:db8:1::/48 -m set ! --match-set six src -j DROP
-A PREROUTING -p udp -m udp --dport 53 -m set --match-set ports dst
-A PREROUTING -p udp -j DROP
-A S -m hl --hl-lt 64 -j RETURN
-A S -d 2001:db8::2 -m set --match-set six dst -j DROP
-A S -p tcp -m tcp --dport 22 -j ACCEPT
COMMIT
`
	rs6, err := rules.Parse(strings.NewReader(text), rules.Options{Family: packet.FamilyIPv6, File: t.Name(), Sets: reg})
	if err != nil {
		t.Fatal(err)
	}
	spec, err := Compile(nil, rs6, CompileOptions{InIface: "eth0"})
	if err != nil {
		t.Fatal(err)
	}
	var reasons []string
	for _, ri := range spec.Rules {
		want := "xdp"
		if strings.Contains(ri.Rule.Text, "six") || strings.Contains(ri.Rule.Text, "ports") {
			want = "fallback"
			reasons = append(reasons, ri.Reason)
		}
		if ri.Mode != want {
			t.Errorf("line %d: mode %s (%s), want %s", ri.Rule.Line, ri.Mode, ri.Reason, want)
		}
	}
	for _, fs := range spec.Fallback {
		if fs.Family != packet.FamilyIPv6 {
			t.Errorf("site %+v is not IPv6's", fs)
		}
	}
	testnet.RequireForTest(t)
	_, bySite := diffBoth(t, nil, rs6, CompileOptions{InIface: "eth0"}, synthFrames6(5000, 11), append(reasons, wholeSites...)...)
	if bySite[reasons[0]] == 0 {
		t.Errorf("nothing fell back at the IPv6 set")
	}
}
