//go:build linux

package xdp

import (
	"fmt"
	"math/rand"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/sluice-project/sluice/engine/cbpf"
	"github.com/sluice-project/sluice/internal/testnet"
	"github.com/sluice-project/sluice/packet"
	"github.com/sluice-project/sluice/rules"
)

// cbRule is a classic program for a -m bpf rule of the compiled-program
// tests.
type cbRule struct {
	name string
	prog []cbpf.Instruction
	// never: the program returns 0 on every frame of the test (its
	// loads lie beyond every datagram).
	never bool
}

// cbCompiledRules are programs whose loads land far into the frame: past
// a network header beyond CBPFMaxL3Off, at large constant offsets, at
// variable offsets computed from the length or from packet bytes, network-
// header relative (SKF_NET_OFF), and beyond CBPFMaxOffset.
func cbCompiledRules(t testing.TB) []cbRule {
	t.Helper()
	ld := func(op uint16, k uint32) cbpf.Instruction { return cbpf.Instruction{Op: op, K: k} }
	alu := func(op uint16, k uint32) cbpf.Instruction { return cbpf.Instruction{Op: cbClassALU | op, K: k} }
	jset := func(k uint32) cbpf.Instruction { return cbpf.Instruction{Op: cbClassJMP | 0x40, Jt: 0, Jf: 1, K: k} }
	ret1, ret0 := cbpf.Instruction{Op: cbRetK, K: 1}, cbpf.Instruction{Op: cbRetK}
	netOff := func(k int32) uint32 { return uint32(cbSkfNetOff + k) }
	dns, err := cbpf.ParseBytecode("17,48 0 0 0,84 0 0 240,21 13 0 96,48 0 0 0,84 0 0 240,21 0 10 64,48 0 0 9,21 0 8 17,40 0 0 6,69 6 0 8191,177 0 0 0,72 0 0 2,21 0 3 53,80 0 0 10,69 0 1 128,6 0 0 65535,6 0 0 0")
	if err != nil {
		t.Fatal(err)
	}
	return []cbRule{
		{name: "example DNS answers (ldxb 4*([0]&0xf), ldh [x + 2], ldb [x + 10])", prog: dns},
		{name: "last byte odd (ldb [x + 0], x = len - 1)", prog: []cbpf.Instruction{
			{Op: cbLdLen}, alu(0x10, 1), {Op: cbTax}, ld(cbLdIndB, 0), alu(0x50, 1), {Op: cbRetA}}},
		{name: "last word (ld [x + 0], x = len - 4)", prog: []cbpf.Instruction{
			{Op: cbLdLen}, alu(0x10, 4), {Op: cbTax}, ld(cbLdIndW, 0), jset(0x80000000), ret1, ret0}},
		{name: "half-word before the last (ldh [x - 2], x = len - 1)", prog: []cbpf.Instruction{
			{Op: cbLdLen}, alu(0x10, 1), {Op: cbTax}, ld(cbLdIndH, 0xfffffffe), jset(0x0101), ret1, ret0}},
		{name: "ldb [x + 900] past the IP header", prog: []cbpf.Instruction{
			ld(cbLdxMsh, 0), ld(cbLdIndB, 900), jset(1), ret1, ret0}},
		{name: "ldb [1300]", prog: []cbpf.Instruction{ld(cbLdB, 1300), jset(0x80), ret1, ret0}},
		{name: "ld [x + 600], x from a payload byte", prog: []cbpf.Instruction{
			ld(cbLdB, 30), {Op: cbClassALU | 0x20, K: 4}, {Op: cbTax}, ld(cbLdIndW, 600), jset(0x10), ret1, ret0}},
		{name: "SKF_NET_OFF: protocol and the last byte", prog: []cbpf.Instruction{
			ld(cbLdB, netOff(9)), {Op: cbClassJMP | 0x10, Jt: 0, Jf: 6, K: 17},
			{Op: cbLdLen}, alu(0x10, 1), alu(0x00, netOff(0)), {Op: cbTax},
			ld(cbLdIndB, 0), {Op: cbRetA}, ret0}},
		{name: "ldb [61441], beyond CBPFMaxOffset", prog: []cbpf.Instruction{ld(cbLdB, CBPFMaxOffset+1), ret1}, never: true},
		{name: "ldb [x + 0], x = 0xf001", prog: []cbpf.Instruction{{Op: cbLdxImm, K: CBPFMaxOffset + 1}, ld(cbLdIndB, 0), ret1}, never: true},
	}
}

// cbDeepFrames builds frames behind VLAN priority-tag stacks (id 0, which
// the program and the engine strip, as the kernel's VLAN code delivers the
// frame to the device itself) of depths putting the network header before
// and beyond CBPFMaxL3Off, with datagrams of up to ~1.4 KiB, in frames an
// XDP test run holds (~3.5 KiB). It returns each frame's network header
// offset too.
func cbDeepFrames(rnd *rand.Rand) (frames [][]byte, l3offs []int) {
	s4, d4 := netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("192.0.2.1")
	s6, d6 := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	const maxFrame = 3500
	for _, depth := range []int{0, 1, 3, 300, 508, 509, 510, 520, 600, 700} {
		var tags []packet.BuildOpt
		for range depth {
			if rnd.Intn(2) == 0 {
				tags = append(tags, packet.WithVLAN(0))
			} else {
				tags = append(tags, packet.WithQinQ(0))
			}
		}
		l3 := packet.EthernetMinSize + 4*depth
		for _, n := range []int{0, 12, 90, 300, 620, 905, 1000, 1301, 1400} {
			for rep := range 3 {
				payload := make([]byte, n)
				rnd.Read(payload)
				if n > 2 && rep == 0 {
					payload[2] |= 0x80 // a DNS answer
				}
				var dgs [][]byte
				dport := uint16(53)
				if rep == 2 {
					dport = uint16(1024 + rnd.Intn(60000))
				}
				dgs = append(dgs,
					packet.BuildIPv4(s4, d4, packet.ProtoUDP, packet.BuildUDP(uint16(1024+rnd.Intn(60000)), dport, payload), tags...),
					packet.BuildIPv4(s4, d4, packet.ProtoTCP, packet.BuildTCP(1234, 80, packet.TCPAck, payload), tags...),
					packet.BuildIPv6(s6, d6, packet.ProtoUDP, packet.BuildUDP(5353, dport, payload), tags...))
				if rep == 1 {
					dgs = append(dgs,
						packet.BuildIPv4(s4, d4, packet.ProtoUDP, packet.BuildUDP(1, 53, payload), append(tags, packet.WithIPv4Options([]byte{1, 1, 1, 0}))...),
						packet.BuildIPv4(s4, d4, packet.ProtoUDP, packet.BuildUDP(1, 53, payload), append(tags, packet.WithTrailer([]byte{1, 2, 3, 4, 5, 6, 7, 0xff}))...))
				}
				for _, fr := range dgs {
					if len(fr) <= maxFrame {
						frames = append(frames, fr)
						l3offs = append(l3offs, l3)
					}
				}
			}
		}
	}
	return frames, l3offs
}

// TestCBPFCompiledDeep runs -m bpf rules through the compiled program on
// frames whose loads the direct packet access cannot serve (a network
// header past 2 KiB behind a stack of priority tags, large variable
// offsets) and that used to be handed to userspace: every one completes
// in XDP now (no fallback site), with the engine's verdicts and counters.
// Random classic programs join the hand-written ones.
func TestCBPFCompiledDeep(t *testing.T) {
	testnet.RequireForTest(t)
	rnd := rand.New(rand.NewSource(7))
	progs := cbCompiledRules(t)
	for len(progs) < 40 {
		prog := cbRandomProgram(rnd)
		if _, err := cbpf.Compile(prog); err == nil {
			progs = append(progs, cbRule{name: fmt.Sprintf("random %d", len(progs)), prog: prog})
		}
	}
	var text strings.Builder
	text.WriteString("*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n")
	filters := make([]*cbpf.Filter, len(progs))
	for i, p := range progs {
		f, err := cbpf.Compile(p.prog)
		if err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
		filters[i] = f
		// No target: every rule sees every frame, and counts it.
		fmt.Fprintf(&text, "-A PREROUTING -m bpf --bytecode %q\n", f.String())
	}
	text.WriteString("-A PREROUTING -p udp -m udp --dport 53 -m bpf --bytecode \"5,48 0 0 0,84 0 0 240,21 0 1 64,6 0 0 1,6 0 0 0\" -j DROP\nCOMMIT\n")
	rs4, rs6 := parse4(t, text.String()), parse6(t, text.String())
	frames, l3offs := cbDeepFrames(rnd)
	spec, bySite := diffBoth(t, rs4, rs6, CompileOptions{InIface: "eth0"}, frames)
	if len(spec.Fallback) != 0 || len(bySite) != 0 {
		t.Errorf("fallback sites %+v, fell back %v", spec.Fallback, bySite)
	}
	// The frames exercise what they are for: network headers beyond
	// CBPFMaxL3Off, on which each hand-written program both matches and
	// does not (but those that never match).
	deep := 0
	hits, misses := make([]int, len(progs)), make([]int, len(progs))
	var dec packet.Decoder
	var p packet.Packet
	for i, fr := range frames {
		if l3offs[i] <= CBPFMaxL3Off {
			continue
		}
		dec.Decode(fr, &p)
		if p.Malformed != 0 || p.NumVLANs == 0 {
			t.Fatalf("frame %d behind %d bytes of tags: malformed %v, %d tags", i, l3offs[i], p.Malformed, p.NumVLANs)
		}
		deep++
		l3 := fr[l3offs[i]:]
		n := int(uint16(l3[2])<<8 | uint16(l3[3]))
		if l3[0]>>4 == 6 {
			n = int(uint16(l3[4])<<8|uint16(l3[5])) + 40
		}
		for k, f := range filters {
			if f.Run(l3[:n]) != 0 {
				hits[k]++
			} else {
				misses[k]++
			}
		}
	}
	if deep < 100 {
		t.Errorf("only %d frames with the network header beyond %#x", deep, CBPFMaxL3Off)
	}
	for k, r := range progs[:len(cbCompiledRules(t))] {
		if hits[k] == 0 && !r.never || misses[k] == 0 {
			t.Errorf("%s: %d deep frames match, %d do not", r.name, hits[k], misses[k])
		}
	}
	t.Logf("%d frames (%d with the network header beyond %#x), %d bpf rules per family: %d instructions", len(frames), deep, CBPFMaxL3Off, len(progs)+1, spec.Instructions())
}

// TestCBPFCompiledExample compiles the built-in example as the combined
// tier does (RateLimitsAuto): its bpf rule completes in XDP, so no site
// reaches the DNS hashlimit after it, which runs in the program too; the
// only fallback sites left are the recent rules and the IPv4 options and
// fragment sites before INPUT.
func TestCBPFCompiledExample(t *testing.T) {
	spec, err := Compile(exampleFull(t), nil, CompileOptions{InIface: "eth0", RateLimits: RateLimitsAuto})
	if err != nil {
		t.Fatal(err)
	}
	for _, ri := range spec.Rules {
		for _, m := range ri.Rule.Matches {
			switch m := m.(type) {
			case *rules.BPF:
				if ri.Mode != "xdp" {
					t.Errorf("line %d (bpf): %s: %s", ri.Rule.Line, ri.Mode, ri.Reason)
				}
			case *rules.Hashlimit:
				if ri.Mode != "xdp" {
					t.Errorf("line %d (hashlimit %s): %s: %s", ri.Rule.Line, m.Cfg.Name, ri.Mode, ri.Reason)
				}
			}
		}
	}
	var tables []string
	for _, tb := range spec.RateLimits.Tables {
		tables = append(tables, tb.Name)
	}
	if !slices.Contains(tables, "dns_per_src") || !slices.Contains(tables, "syn_per_24") {
		t.Errorf("hashlimit tables in the program: %v, want dns_per_src and syn_per_24", tables)
	}
	var sites []string
	for _, s := range spec.Fallback {
		where := "before " + rules.IngressHooks[s.Hook].Table + " " + rules.IngressHooks[s.Hook].Chain
		if s.Rule != nil {
			where = s.Chain
		}
		sites = append(sites, where+": "+s.Reason)
	}
	want := []string{
		"TCP_IN: recent keeps its address lists in userspace",
		"TCP_IN: recent keeps its address lists in userspace",
		"before mangle INPUT: IPv4 options: ip_rcv_options decides whether INPUT sees it",
		"before mangle INPUT: IPv4 fragment: INPUT sees the reassembled datagram",
	}
	if !slices.Equal(sites, want) {
		t.Errorf("fallback sites:\n%s\nwant\n%s", strings.Join(sites, "\n"), strings.Join(want, "\n"))
	}
}
