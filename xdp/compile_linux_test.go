//go:build linux

package xdp

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/sluice-project/sluice/engine"
	"github.com/sluice-project/sluice/engine/ipset"
	"github.com/sluice-project/sluice/examples"
	"github.com/sluice-project/sluice/internal/benchmix"
	"github.com/sluice-project/sluice/internal/testnet"
	"github.com/sluice-project/sluice/packet"
	"github.com/sluice-project/sluice/report"
	"github.com/sluice-project/sluice/rules"
)

// exampleFrames returns a copy of the built-in capture's frames
// (benchmix.ExampleCapture), which the caller may change.
func exampleFrames(t testing.TB) [][]byte {
	t.Helper()
	shared := benchmix.ExampleCapture(t).Frames
	frames := make([][]byte, len(shared))
	for i, f := range shared {
		frames[i] = append([]byte(nil), f...)
	}
	return frames
}

// inputSites are the fallback sites before INPUT, whose frames the
// differential tests check up to the routing decision.
var inputSites = []string{"IPv4 fragment: INPUT sees the reassembled datagram",
	"IPv4 options: ip_rcv_options decides whether INPUT sees it"}

// verdictStat maps an engine verdict to the statistic the program counts.
var verdictStat = map[engine.Verdict]int{
	engine.Accept:      StatAccepted,
	engine.Drop:        StatDropped,
	engine.Hotdrop:     StatHotdropped,
	engine.Malformed:   StatMalformed,
	engine.NotFiltered: StatNotFiltered,
}

// flat lists a report's rule and policy counters (packets, bytes) in
// file order, with the key of the chain each belongs to.
func flat(rep *report.Report) (vals []uint64, chains []string) {
	for _, t := range rep.Tables {
		for _, c := range t.Chains {
			key := t.Table + " " + c.Name
			for _, r := range c.Rules {
				vals = append(vals, r.Packets, r.Bytes)
				chains = append(chains, key, key)
			}
			vals = append(vals, c.PolicyPackets, c.PolicyBytes)
			chains = append(chains, key, key)
		}
	}
	return vals, chains
}

// diff is diffBoth for an IPv4 ruleset: every verdict, statistic and
// counter of every frame is the engine's (a frame handed over at one of
// the allowed sites is resumed in a second engine, whose counters are
// added to the program's). No rule of rs4 may fall back.
func diff(t *testing.T, rs4 *rules.Ruleset, opts CompileOptions, frames [][]byte, allowed ...string) *Spec {
	t.Helper()
	spec, _ := diffBoth(t, rs4, nil, opts, frames, allowed...)
	return spec
}

func compareReports(t *testing.T, want, got *report.Report) {
	t.Helper()
	if want.Packets != got.Packets || want.Accepted != got.Accepted || want.Dropped != got.Dropped ||
		want.Hotdropped != got.Hotdropped || want.Malformed != got.Malformed || want.NotFiltered != got.NotFiltered ||
		!reflect.DeepEqual(want.MalformedBy, got.MalformedBy) {
		t.Errorf("totals differ:\nengine  %+v\nprogram %+v", *want, *got)
	}
	if len(want.Tables) != len(got.Tables) {
		t.Fatalf("tables: engine %d, program %d", len(want.Tables), len(got.Tables))
	}
	for ti := range want.Tables {
		wt, gt := want.Tables[ti], got.Tables[ti]
		for ci := range wt.Chains {
			wc, gc := wt.Chains[ci], gt.Chains[ci]
			if wc.PolicyPackets != gc.PolicyPackets || wc.PolicyBytes != gc.PolicyBytes {
				t.Errorf("%s %s policy: engine %d/%d, program %d/%d", wt.Table, wc.Name, wc.PolicyPackets, wc.PolicyBytes, gc.PolicyPackets, gc.PolicyBytes)
			}
			for ri := range wc.Rules {
				wr, gr := wc.Rules[ri], gc.Rules[ri]
				if wr.Packets != gr.Packets || wr.Bytes != gr.Bytes {
					t.Errorf("%s %s line %d: engine %d/%d, program %d/%d: %s", wt.Table, wc.Name, wr.Line, wr.Packets, wr.Bytes, gr.Packets, gr.Bytes, wr.Text)
				}
			}
		}
	}
}

// parse4 parses an iptables-save text.
func parse4(t testing.TB, text string) *rules.Ruleset {
	t.Helper()
	rs, err := rules.Parse(strings.NewReader(text), rules.Options{Family: packet.FamilyIPv4, File: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// exampleSubset is the built-in example without the rules that fall
// back (string, bpf, hashlimit, limit, recent); its sets (the 120k-prefix
// blocklist among them) run in XDP.
func exampleSubset(t testing.TB) *rules.Ruleset {
	t.Helper()
	lines := strings.Split(string(examples.Rules4), "\n")
	var keep []string
	for _, l := range lines {
		if strings.Contains(l, "-m string") || strings.Contains(l, "-m bpf") ||
			strings.Contains(l, "limit") || strings.Contains(l, "-m recent") {
			continue
		}
		keep = append(keep, l)
	}
	rs, err := rules.Parse(strings.NewReader(strings.Join(keep, "\n")), rules.Options{Family: packet.FamilyIPv4, File: t.Name(), Sets: exampleSets(t)})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// exampleSets parses the built-in example's sets.
func exampleSets(t testing.TB) *ipset.Registry {
	t.Helper()
	reg, err := ipset.Parse(examples.SetsName, bytes.NewReader(examples.Sets), 0)
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

func TestCompileDiffExample(t *testing.T) {
	testnet.RequireForTest(t)
	rs := exampleSubset(t)
	spec := diff(t, rs, CompileOptions{InIface: "eth0"}, exampleFrames(t), inputSites...)
	t.Logf("example subset: %d instructions", spec.Instructions())
	// The blocklist is a map; allowlist, bogons and services are small
	// enough to be comparisons in the program.
	if len(spec.Sets) != 1 || spec.Sets[0].Name != "blocklist" {
		t.Fatalf("set maps %+v, want the blocklist only", spec.Sets)
	}
	for _, sm := range spec.Sets {
		t.Logf("set %s (%s): %d first-level chunks, %d leaves", sm.Name, sm.Type, len(sm.Map.Contents), len(sm.Leaf.Contents))
	}
}

// synthRules exercises jumps, gotos, returns, inversions, every match
// the program compiles, -i decided at compile time, and policies.
//
// Chain D is entered by -g from C, itself entered by -g from PREROUTING:
// running off D's end applies PREROUTING's policy (ipt_do_table's
// underflow), as RETURN at the top level does.
const synthRules = `*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:A - [0:0]
:B - [0:0]
:C - [0:0]
:D - [0:0]
-A PREROUTING -s 10.0.0.0/255.0.255.0 -j A
-A PREROUTING ! -s 10.1.0.0/16 -p tcp -m tcp ! --dport 1000:2000 -j B
-A PREROUTING -p udp -g C
-A PREROUTING -f -j LOG
-A PREROUTING ! -f -p gre -j NFLOG
-A PREROUTING -m ttl --ttl-gt 200 -j DROP
-A PREROUTING -m tos --tos 0x10/0x3f
-A PREROUTING -m dscp ! --dscp 0
-A PREROUTING -i eth0 -m length ! --length 100:200
-A PREROUTING -i eth1 -j DROP
-A PREROUTING ! -i eth+ -j DROP
-A PREROUTING ! -i eth1 -p icmp -m icmp ! --icmp-type echo-request
-A PREROUTING -p icmp -m icmp --icmp-type any -j D
-A A -p tcp -m tcp --tcp-flags SYN,ACK SYN -j RETURN
-A A -m iprange --dst-range 192.168.1.0-192.168.1.100 -j DROP
-A A -m iprange ! --src-range 10.0.0.0-10.0.0.200 ! --dst-range 192.168.1.50-192.168.1.150
-A A -p icmp -j C
-A A -m mac --mac-source 02:00:00:00:00:01 -j RETURN
-A A -m mac ! --mac-source 02:00:00:00:00:02
-A A ! -p udp -m ttl --ttl-eq 64
-A A -m ttl --ttl-lt 3 -j DROP
-A A -m ttl ! --ttl-eq 9
-A A -p tcp -m tcp --sport 7 -j ACCEPT
-A B -p tcp -m multiport --sports 1:100,443 -j ACCEPT
-A B -p tcp -m multiport ! --ports 80,8080:8090 -j D
-A B -m u32 --u32 "6&0xFF=6 && 0>>22&0x3C@12>>26&0x3C@0=0x47455420" -j DROP
-A B -m u32 ! --u32 "0&0xFFFF=0x100:0xFFFF"
-A B -m u32 --u32 "0>>22&0x3C@0>>16=0:1023,8080"
-A B -p tcp -m tcp --syn -j RETURN
-A B -p tcp -m tcp ! --tcp-flags FIN,RST NONE -j D
-A B -j RETURN
-A B -j DROP
-A C -p udp -m udp --sport 53 -j DROP
-A C -p udp -m udp --dport 53 ! --sport 1024:65535 -j ACCEPT
-A C -p icmp -m icmp --icmp-type 3/1 -j DROP
-A C -p icmp -m icmp ! --icmp-type 8 -j D
-A C -m pkttype --pkt-type broadcast -j DROP
-A C -m pkttype ! --pkt-type host -j ACCEPT
-A C -p udp -m multiport --dports 5000:5010 -g D
-A C -j RETURN
-A D -m length --length 0:60 -j RETURN
-A D -m comment --comment "a comment" -j NOTRACK
-A D -d 192.168.1.7 -j DROP
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
-A INPUT -p icmp -j ACCEPT
-A INPUT -p tcp -m tcp --dport 22
-A INPUT -p tcp -j ACCEPT
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

// synthFrames builds frames that walk every branch of synthRules and of
// the receive checks: fragments (including the offset-1 TCP one),
// truncated transport headers, VLAN tags, broadcast and multicast MACs,
// martian and multicast addresses, and malformed IPv4 headers.
func synthFrames(n int, seed int64) [][]byte {
	rng := rand.New(rand.NewSource(seed))
	pick := func(s ...string) netip.Addr { return netip.MustParseAddr(s[rng.Intn(len(s))]) }
	srcs := []string{"10.0.0.1", "10.9.0.7", "10.1.2.3", "10.0.0.250", "8.8.8.8", "198.18.0.1", "127.0.0.1",
		"224.0.0.5", "0.0.0.0", "255.255.255.255", "192.0.2.1", "203.0.113.9"}
	dsts := []string{"192.168.1.7", "192.168.1.50", "192.168.1.120", "192.168.1.200", "255.255.255.255",
		"224.0.0.1", "224.0.0.2", "239.1.1.1", "127.0.0.1", "0.0.0.0", "10.0.0.1"}
	ports := []uint16{0, 7, 22, 53, 80, 123, 443, 999, 1000, 1500, 2000, 2001, 5005, 8080, 8085, 40000, 65535}
	macs := [][6]byte{{2, 0, 0, 0, 0, 1}, {2, 0, 0, 0, 0, 2}, {2, 0, 0, 0, 0, 3}}
	dmacs := [][6]byte{{2, 0, 0, 0, 0, 9}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, {1, 0, 0x5e, 0, 0, 1}, {0x33, 0x33, 0, 0, 0, 1}}
	var frames [][]byte
	for len(frames) < n {
		var opts []packet.BuildOpt
		opts = append(opts, packet.WithSrcMAC(macs[rng.Intn(len(macs))]), packet.WithDstMAC(dmacs[rng.Intn(len(dmacs))]))
		opts = append(opts, packet.WithTTL([]uint8{0, 1, 2, 3, 9, 64, 128, 201, 255}[rng.Intn(9)]))
		opts = append(opts, packet.WithTOS([]uint8{0, 0x10, 0x12, 0xb8, 0x50, 0x04}[rng.Intn(6)]))
		switch rng.Intn(12) {
		case 0:
			opts = append(opts, packet.WithFragment(uint16(rng.Intn(3))*8, rng.Intn(2) == 0))
		case 1:
			opts = append(opts, packet.WithFragment(0, true))
		case 2:
			opts = append(opts, packet.WithVLAN(uint16(rng.Intn(2)*5)))
		case 3:
			opts = append(opts, packet.WithQinQ(uint16(rng.Intn(2)*7)))
		case 4:
			opts = append(opts, packet.WithTrailer([]byte{0, 0, 0, 0, 0, 0}))
		case 5:
			opts = append(opts, packet.WithIPv4Options([]byte{1, 1, 1, 0}))
		}
		switch rng.Intn(30) {
		case 0:
			opts = append(opts, packet.WithBadChecksum())
		case 1:
			opts = append(opts, packet.WithVersion(5))
		case 2:
			opts = append(opts, packet.WithLengthField(10))
		case 3:
			opts = append(opts, packet.WithLengthField(3000))
		}
		var proto uint8
		var l4 []byte
		payload := make([]byte, rng.Intn(3)*80)
		switch rng.Intn(5) {
		case 0, 1:
			proto = packet.ProtoTCP
			flags := []uint8{packet.TCPSyn, packet.TCPSyn | packet.TCPAck, packet.TCPAck, 0, 0xff, packet.TCPFin | packet.TCPAck, packet.TCPRst}[rng.Intn(7)]
			l4 = packet.BuildTCP(ports[rng.Intn(len(ports))], ports[rng.Intn(len(ports))], flags, payload)
			if rng.Intn(4) == 0 {
				copy(l4[20:], "GET /")
			}
		case 2:
			proto = packet.ProtoUDP
			l4 = packet.BuildUDP(ports[rng.Intn(len(ports))], ports[rng.Intn(len(ports))], payload)
		case 3:
			proto = packet.ProtoICMP
			l4 = packet.BuildICMP([]uint8{0, 3, 8, 11}[rng.Intn(4)], uint8(rng.Intn(5)), 0, payload)
		default:
			proto = []uint8{2, 47, 50, 132}[rng.Intn(4)]
			l4 = append([]byte{0, 80, 1, 187}, payload...)
		}
		if rng.Intn(8) == 0 {
			l4 = l4[:rng.Intn(min(len(l4), 21))]
		}
		fr := packet.BuildIPv4(pick(srcs...), pick(dsts...), proto, l4, opts...)
		if rng.Intn(40) == 0 {
			fr = fr[:14+rng.Intn(min(len(fr)-14, 30))]
		}
		frames = append(frames, fr)
	}
	return frames
}

func TestCompileDiffSynthetic(t *testing.T) {
	testnet.RequireForTest(t)
	rs := parse4(t, synthRules)
	frames := synthFrames(20000, 1)
	for _, tc := range []struct {
		name string
		opts CompileOptions
	}{
		{"eth0", CompileOptions{InIface: "eth0"}},
		{"eth1 local", CompileOptions{InIface: "eth1", LocalMAC: []byte{2, 0, 0, 0, 0, 9},
			LocalAddrs: []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("2001:db8::1")}}},
		{"ppp0", CompileOptions{InIface: "ppp0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := diff(t, rs, tc.opts, frames, inputSites...)
			t.Logf("%d instructions", spec.Instructions())
		})
	}
}

// TestCompileFallbackSites runs the whole example: rules with sets,
// string, bpf, limit, hashlimit and recent stop the program, which must
// say where in the metadata and count nothing past that point.
func TestCompileFallbackSites(t *testing.T) {
	testnet.RequireForTest(t)
	reg, err := ipset.Parse(examples.SetsName, bytes.NewReader(examples.Sets), 0)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(examples.Rules4), "-m set --match-set allowlist src ", "-s 192.0.2.0/24 -m recent --name x --rcheck ")
	rs, err := rules.Parse(strings.NewReader(text), rules.Options{Family: packet.FamilyIPv4, File: "example", Sets: reg})
	if err != nil {
		t.Fatal(err)
	}
	spec, err := Compile(rs, nil, CompileOptions{InIface: "eth0"})
	if err != nil {
		t.Fatal(err)
	}
	f, err := spec.Load()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	modes := map[string]int{}
	for _, ri := range spec.Rules {
		modes[ri.Mode]++
	}
	if modes["fallback"] == 0 || modes["xdp"] == 0 {
		t.Fatalf("modes %v", modes)
	}
	// A frame from 192.0.2.1 reaches the recent rule: site of line 18.
	fr := packet.BuildIPv4(netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.168.1.1"), packet.ProtoUDP, packet.BuildUDP(1, 53, nil))
	out := make([]byte, 4096)
	ro := &ebpf.RunOptions{Data: fr, DataOut: out}
	ret, err := f.Program.Run(ro)
	if err != nil {
		t.Fatal(err)
	}
	if ret != xdpPass || len(ro.DataOut) != len(fr)+4 || !bytes.Equal(ro.DataOut[4:], fr) {
		t.Fatalf("ret %d, %d bytes out", ret, len(ro.DataOut))
	}
	site := spec.Fallback[int(ro.DataOut[0])]
	if site.Rule == nil || !strings.Contains(site.Rule.Text, "-m recent") || site.Hook != 0 || site.Chain != "PREROUTING" {
		t.Fatalf("site %+v", site)
	}
	cur, err := f.ReadCounters()
	if err != nil {
		t.Fatal(err)
	}
	if cur[StatFallback] != 1 || cur[StatPackets] != 1 {
		t.Fatalf("statistics %v", cur[:StatMalformedBy])
	}
	for i := NumStats + numScratch; i < len(cur); i++ {
		if cur[i] != 0 {
			t.Fatalf("counter %d moved before the fallback site", i)
		}
	}
	// A DNS query from elsewhere passes the sets of BLOCK and the bpf
	// match (whose loads past the empty payload return 0, in XDP too) and
	// goes on to the hashlimit in UDP_IN, a site with UDP_IN's return
	// point pending. (203.0.113.0/24, a bogon, would be dropped in BLOCK.)
	fr = packet.BuildIPv4(netip.MustParseAddr("8.8.8.8"), netip.MustParseAddr("192.168.1.1"), packet.ProtoUDP, packet.BuildUDP(1, 53, nil))
	ro = &ebpf.RunOptions{Data: fr, DataOut: out}
	if ret, err = f.Program.Run(ro); err != nil {
		t.Fatal(err)
	}
	if cur, err = f.ReadCounters(); err != nil {
		t.Fatal(err)
	}
	if ret != xdpPass || cur[StatFallback] != 2 || len(ro.DataOut) != len(fr)+4 {
		t.Fatalf("ret %d, %d bytes out, %d fallbacks", ret, len(ro.DataOut), cur[StatFallback])
	}
	site = spec.Fallback[int(ro.DataOut[0])]
	if site.Chain != "UDP_IN" || len(site.Stack) != 1 || !strings.Contains(site.Stack[0].Text, "-j UDP_IN") || !strings.Contains(site.Rule.Text, "-m hashlimit") {
		t.Fatalf("site %+v", site)
	}
}

// TestCompileVerifierError has the kernel refuse a program and checks
// that the error names the rule the verifier stopped in and carries the
// verifier's log. The program is the synthetic ruleset's with one load in
// a rule's code turned into a read through data_end, which the verifier
// must reject (no ruleset should make Compile emit such code).
func TestCompileVerifierError(t *testing.T) {
	testnet.RequireForTest(t)
	spec, err := Compile(parse4(t, synthRules), nil, CompileOptions{InIface: "eth0"})
	if err != nil {
		t.Fatal(err)
	}
	var victim *RuleInfo
	for i, ins := range spec.Program.Instructions {
		if o := spec.owner[i]; o >= 0 && ins.OpCode.Class().IsLoad() && ins.Src == asm.R10 && strings.Contains(spec.Rules[o].Rule.Text, "--ttl-lt 3") {
			spec.Program.Instructions[i].Src, spec.Program.Instructions[i].Offset = asm.R8, 0
			victim = &spec.Rules[o]
			break
		}
	}
	if victim == nil {
		t.Fatal("no load to break")
	}
	f, err := spec.Load()
	if err == nil {
		f.Close()
		t.Fatal("the verifier accepted a read through data_end")
	}
	var ve *ebpf.VerifierError
	if !errors.As(err, &ve) {
		t.Fatalf("error does not wrap a VerifierError: %v", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, fmt.Sprintf("line %d: %s", victim.Rule.Line, victim.Rule.Text)) || !strings.Contains(msg, "log ends:") || !strings.Contains(msg, "R8") {
		t.Fatalf("error does not name the rule or quote the log:\n%s", msg)
	}
	t.Logf("%s", msg)
}

// TestCompileLargeInlining checks that chains inlined at many call sites
// still load: 12 levels of two call sites each make a 650k-instruction
// program, which the verifier's state pruning handles because every rule
// leaves the registers as it found them.
func TestCompileLargeInlining(t *testing.T) {
	testnet.RequireForTest(t)
	if testing.Short() {
		t.Skip("verifies a 650k-instruction program")
	}
	var b strings.Builder
	b.WriteString("*raw\n:PREROUTING ACCEPT [0:0]\n")
	const depth = 12
	for i := 0; i < depth; i++ {
		fmt.Fprintf(&b, ":C%d - [0:0]\n", i)
	}
	b.WriteString("-A PREROUTING -j C0\n-A PREROUTING -j C0\n")
	for i := 0; i < depth; i++ {
		for j := 0; j < 3; j++ {
			fmt.Fprintf(&b, "-A C%d -p tcp -m tcp --dport %d -m ttl --ttl-gt %d\n", i, 100+j, j)
		}
		if i+1 < depth {
			fmt.Fprintf(&b, "-A C%d -p tcp -m tcp --sport 1:%d -j C%d\n", i, 1000+i, i+1)
			fmt.Fprintf(&b, "-A C%d -p udp -j C%d\n", i, i+1)
		}
	}
	b.WriteString("COMMIT\n")
	rs := parse4(t, b.String())
	spec, err := Compile(rs, nil, CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d instructions", spec.Instructions())
	f, err := spec.Load()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := Compile(rs, nil, CompileOptions{MaxInstructions: 100000}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("MaxInstructions: got %v", err)
	}
}

// TestCompileThousandsOfRules loads a flat ruleset of 2,300 rules, whose
// 4,600+ counters span two elements of the counter map, and checks its
// verdicts and every counter against the engine: the rules at the end,
// which every frame reaches, count in the second element.
func TestCompileThousandsOfRules(t *testing.T) {
	testnet.RequireForTest(t)
	if testing.Short() {
		t.Skip("verifies a 50k-instruction program of 2,300 rules")
	}
	var b strings.Builder
	b.WriteString("*raw\n:PREROUTING ACCEPT [0:0]\n:U - [0:0]\n-A PREROUTING -p udp -j U\n")
	for i := 0; i < 2300; i++ {
		switch i % 4 {
		case 0:
			fmt.Fprintf(&b, "-A PREROUTING -s 172.%d.%d.0/24 -j DROP\n", 16+i/256%16, i%256)
		case 1:
			fmt.Fprintf(&b, "-A PREROUTING -p tcp -m tcp --dport %d --tcp-flags SYN,ACK SYN -j DROP\n", 20000+i)
		case 2:
			fmt.Fprintf(&b, "-A U -p udp -m udp --sport %d -m length --length 100:200 -j DROP\n", 20000+i)
		case 3:
			fmt.Fprintf(&b, "-A PREROUTING -m ttl --ttl-eq %d -m iprange --src-range 198.18.%d.0-198.18.%d.255 -j DROP\n", i%256, i%256, i%256)
		}
	}
	b.WriteString("-A PREROUTING -p tcp\n-A PREROUTING -p udp\n-A PREROUTING -m ttl --ttl-gt 32\n-A U -p udp -m udp --dport 53 -j DROP\nCOMMIT\n")
	rs := parse4(t, b.String())
	spec := diff(t, rs, CompileOptions{InIface: "eth0", Capture: true}, synthFrames(3000, 3), inputSites...)
	t.Logf("%d rules: %d instructions, %d counters in %d elements", len(spec.Rules), spec.Instructions(), spec.NumCounters(), spec.Counters.MaxEntries)
	if spec.Counters.MaxEntries != 2 {
		t.Errorf("counter elements: %d, want 2", spec.Counters.MaxEntries)
	}
}

// BenchmarkCompileRun runs the example subset's program over a mix of
// the example's frames with BPF_PROG_TEST_RUN's repeat and reports the
// kernel's time per packet.
func BenchmarkCompileRun(b *testing.B) {
	testnet.RequireForTest(b)
	f := loadForTest(b, exampleSubset(b), nil, CompileOptions{InIface: "eth0"})
	frames := exampleFrames(b)
	sample := frames[:0:0]
	for i := 0; i < len(frames); i += len(frames) / 64 {
		sample = append(sample, frames[i])
	}
	benchRunForTest(b, f.Program, sample, 10000)
}

// BenchmarkCompileRunReference runs the engine's reference ruleset
// (engine/testdata, BenchmarkEngineReference's) compiled for the combined
// tier, its two `recent` rules fallback sites, on 400 frames of the
// reference mix (every 20th, all of its twenty kinds), each 2,000 times
// through BPF_PROG_TEST_RUN: the kernel's mean time per run, which
// includes the test run's own overhead (~37 ns, BenchmarkCompileRun).
func BenchmarkCompileRunReference(b *testing.B) {
	testnet.RequireForTest(b)
	rulesText, setsText := benchmix.ReferenceFiles(b, "../engine/testdata")
	rs, _ := benchmix.Ruleset(b, "reference.rules", rulesText, "reference.ipset", setsText, 0)
	f := loadForTest(b, rs, nil, CompileOptions{InIface: "eth0", XSKQueues: 1})
	mix := benchmix.Reference()
	var sample [][]byte
	for i := 0; i < len(mix); i += 20 {
		sample = append(sample, mix[i])
	}
	benchRunForTest(b, f.Program, sample, 2000)
}

// loadForTest compiles rs4 and rs6 with opts and loads the program, which
// the test's cleanup closes.
func loadForTest(tb testing.TB, rs4, rs6 *rules.Ruleset, opts CompileOptions) *Filter {
	tb.Helper()
	spec, err := Compile(rs4, rs6, opts)
	if err != nil {
		tb.Fatal(err)
	}
	f, err := spec.Load()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { f.Close() })
	return f
}

// benchRunForTest runs sample's frames in turn, b.N of them, each repeat
// times through p with BPF_PROG_TEST_RUN, and reports the kernel's mean
// time per run as ns/packet.
func benchRunForTest(b *testing.B, p *ebpf.Program, sample [][]byte, repeat uint32) {
	b.Helper()
	b.ResetTimer()
	var total time.Duration
	for i := 0; i < b.N; i++ {
		d, err := runRepeat(p, sample[i%len(sample)], repeat)
		if err != nil {
			b.Fatal(err)
		}
		total += d
	}
	b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/packet")
}

// runRepeat returns the kernel's mean time per run.
func runRepeat(p *ebpf.Program, fr []byte, repeat uint32) (time.Duration, error) {
	_, d, err := p.Benchmark(fr, int(repeat), nil)
	return d, err
}
