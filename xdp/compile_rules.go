package xdp

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

	"github.com/cilium/ebpf/asm"

	"github.com/sluice-project/sluice/packet"
	"github.com/sluice-project/sluice/rules"
)

// hooks emits raw PREROUTING, mangle PREROUTING, the routing decision
// (engine/input.go), mangle INPUT and filter INPUT.
func (g *gen) hooks(rs *rules.Ruleset) {
	for h, hk := range rules.IngressHooks {
		if h == 2 {
			if !hasInput(rs) {
				break // no INPUT chain: delivered or not, it is accepted
			}
			if g.fam == packet.FamilyIPv6 {
				// No reassembly before INPUT in the engine's IPv6 model.
				g.reachesInput6()
			} else {
				g.reachesInput()
				// ip_local_deliver reassembles before LOCAL_IN: INPUT
				// sees datagrams, and only userspace can hold pieces.
				g.cur = -1
				whole := g.label()
				g.ld(asm.R1, sIsFrag)
				g.emit(asm.JEq.Imm(asm.R1, 0, whole))
				g.fallbackHere(FallbackSite{Family: rs.Family, Hook: 2, Table: hk.Table, Chain: hk.Chain,
					Reason: "IPv4 fragment: INPUT sees the reassembled datagram"})
				g.place(whole)
			}
		}
		t := rs.Table(hk.Table)
		if t == nil {
			continue
		}
		c := t.Chain(hk.Chain)
		if c == nil {
			continue
		}
		next := g.label()
		policy := g.label()
		g.cur = -1
		g.note("=== hook %d: %s %s (policy %s)", h, hk.Table, hk.Chain, c.Policy)
		g.chain(rs, h, t, c, policy, next, nil)
		g.cur = -1
		g.place(policy)
		g.note("%s %s: policy %s", hk.Table, hk.Chain, c.Policy)
		g.count(g.base + g.chainSlot(rs, t, c))
		if c.Policy == rules.PolicyDrop {
			g.ja(lDrop)
		} else {
			g.ja(next)
		}
		g.place(next)
	}
	g.ja(lAccept)
}

// hasInput reports whether rs has a rule or a DROP policy in mangle or
// filter INPUT, where a fragment's fate depends on reassembly. With
// neither, those chains accept everything and count only their policy:
// still counted per datagram, so any INPUT chain needs reassembly.
func hasInput(rs *rules.Ruleset) bool {
	for _, hk := range rules.IngressHooks[2:] {
		if t := rs.Table(hk.Table); t != nil && t.Chain(hk.Chain) != nil {
			return true
		}
	}
	return false
}

// chainSlot returns the policy counter slot of chain c.
func (g *gen) chainSlot(rs *rules.Ruleset, t *rules.Table, c *rules.Chain) int {
	slot := 0
	for _, tt := range rs.Tables {
		for _, cc := range tt.Chains {
			slot += 2 * len(cc.Rules)
			if tt == t && cc == c {
				return slot
			}
			slot += 2
		}
	}
	panic("chain not in ruleset")
}

// reachesInput is engine/input.go's routing model for IPv4 (reachesInput4):
// a packet that would not be delivered locally is accepted before mangle
// INPUT. A datagram with IP options that would otherwise be delivered is
// a fallback site: ip_rcv_options decides, which userspace evaluates.
func (g *gen) reachesInput() {
	g.cur = -1
	g.note("routing decision (engine/input.go): not for this host -> accepted before INPUT")
	no, yes, opts, unicast := g.label(), g.label(), g.label(), g.label()
	isLocal := func(reg asm.Register, target string) {
		for _, a := range g.opts.LocalAddrs {
			if a.Is4() {
				b := a.As4()
				g.emit(asm.JEq.Imm32(reg, int32(binary.BigEndian.Uint32(b[:])), target))
			}
		}
	}
	g.ld(asm.R1, sSrc)
	g.ld(asm.R2, sDst)
	g.emit(
		asm.Mov.Reg(asm.R3, asm.R1),
		asm.RSh.Imm(asm.R3, 24), // R3 = first byte of the source
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.RSh.Imm(asm.R4, 24), // R4 = first byte of the destination
		asm.JLT.Imm(asm.R4, 224, unicast),
		asm.JGT.Imm(asm.R4, 239, unicast),
	)
	// Multicast destination (ip_route_input_mc).
	srcOK := g.label()
	g.emit(
		asm.JLT.Imm(asm.R3, 224, srcOK),
		asm.JLE.Imm(asm.R3, 239, no),
	)
	g.place(srcOK)
	joined := g.label()
	g.emit(
		asm.JEq.Imm32(asm.R1, -1, no),
		asm.JEq.Imm(asm.R3, 127, no),
		asm.JNE.Imm(asm.R1, 0, g.labelFor("mcSrc")),
		// 0.0.0.0: only towards 224.0.0.0/24, or for IGMP.
		asm.Mov.Reg(asm.R5, asm.R2),
		asm.RSh.Imm(asm.R5, 8),
		asm.JEq.Imm(asm.R5, 0xe00000, joined),
	)
	g.ld(asm.R5, sProto)
	g.emit(
		asm.JNE.Imm(asm.R5, 2, no),
		asm.Ja.Label(joined),
	)
	// Any other source is validated like unicast, link-local groups too.
	g.place(g.labelFor("mcSrc"))
	isLocal(asm.R1, no)
	g.place(joined)
	g.emit(
		asm.JNE.Imm32(asm.R2, -0x1fffffff, no), // only 224.0.0.1 is joined
	)
	g.ja(opts)
	g.place(unicast)
	g.emit(
		asm.JLT.Imm(asm.R3, 224, g.labelFor("srcUni")),
		asm.JLE.Imm(asm.R3, 239, no),
	)
	g.place(g.labelFor("srcUni"))
	notBrd := g.labelFor("notBrd")
	g.emit(
		asm.JEq.Imm32(asm.R1, -1, no),
		asm.JNE.Imm32(asm.R2, -1, notBrd),
		// Limited broadcast (brd_input): a zero source is accepted as
		// is; a loopback or local one is a martian.
		asm.JEq.Imm(asm.R1, 0, opts),
		asm.JEq.Imm(asm.R3, 127, no),
	)
	isLocal(asm.R1, no)
	g.ja(opts)
	g.place(notBrd)
	g.emit(
		// 0.0.0.0 -> 0.0.0.0 goes to brd_input and is delivered.
		asm.JNE.Imm(asm.R1, 0, g.labelFor("srcSet")),
		asm.JEq.Imm(asm.R2, 0, opts),
		asm.Ja.Label(no),
	)
	g.place(g.labelFor("srcSet"))
	g.emit(
		asm.JEq.Imm(asm.R2, 0, no),
		asm.JEq.Imm(asm.R3, 127, no),
		asm.JEq.Imm(asm.R4, 127, no),
	)
	isLocal(asm.R1, no)
	g.place(opts)
	g.ld(asm.R1, sL4Off)
	g.emit(asm.JLE.Imm(asm.R1, 20, yes))
	g.fallbackHere(FallbackSite{Family: packet.FamilyIPv4, Hook: 2, Table: "mangle", Chain: "INPUT",
		Reason: "IPv4 options: ip_rcv_options decides whether INPUT sees it"})
	g.place(no)
	g.ja(lAccept)
	g.place(yes)
}

// labelFor returns a label unique to the current reachesInput emission.
func (g *gen) labelFor(name string) string {
	return fmt.Sprintf("%s_%d", name, g.nlabel)
}

// chain emits c's rules. ret is where RETURN (and the end of a user
// chain) goes; accept is where ACCEPT goes (the next hook). stack holds
// the jump rules whose return points are pending, for fallback sites.
func (g *gen) chain(rs *rules.Ruleset, hook int, t *rules.Table, c *rules.Chain, ret, accept string, stack []*rules.Rule) {
	for _, r := range c.Rules {
		if g.err != nil {
			return
		}
		ri := g.ruleIdx[r]
		info := &g.spec.Rules[ri]
		info.Sites++
		g.cur = ri
		if reason := g.never(r); reason != "" {
			info.Mode, info.Reason = "never", reason
			continue
		}
		if info.Mode == "unreachable" {
			info.Mode = "xdp"
		}
		g.note("%s %s line %d: %s", t.Name, c.Name, r.Line, r.Text)
		next := g.label()
		fail := next
		jumps := r.Target.Kind == rules.TargetJump || r.Target.Kind == rules.TargetGoto
		if jumps {
			// The body of the called chain sits between the checks and
			// next: a failing check goes through a far jump.
			fail = g.label()
		}
		site := FallbackSite{Family: rs.Family, Hook: hook, Table: t.Name, Chain: c.Name, Rule: r,
			Stack: append([]*rules.Rule(nil), stack...)}
		if reason := g.checks(r, fail, site); reason != "" {
			info.Mode, info.Reason = "fallback", reason
			if jumps {
				g.place(fail)
				g.ja(next)
			}
			g.place(next)
			continue
		}
		g.count(g.base + info.Slot)
		switch r.Target.Kind {
		case rules.TargetAccept:
			g.captureRule(ri)
			g.ja(accept)
		case rules.TargetDrop, rules.TargetReject:
			g.captureRule(ri)
			g.ja(lDrop)
		case rules.TargetReturn:
			g.ja(ret)
		case rules.TargetJump, rules.TargetGoto:
			body := g.label()
			g.ja(body)
			g.place(fail)
			g.ja(next)
			g.place(body)
			callee := t.Chain(r.Target.Chain)
			if r.Target.Kind == rules.TargetJump {
				g.chain(rs, hook, t, callee, next, accept, append(stack, r))
			} else {
				g.chain(rs, hook, t, callee, ret, accept, stack)
			}
			g.cur = ri
		}
		g.place(next)
	}
	if !c.Builtin {
		// The implicit RETURN at the end of a user chain.
		g.cur = -1
		g.note("end of %s: return", c.Name)
		g.ja(ret)
	}
}

// never reports why r can never match on this attachment (-i/-o decided
// at compile time), or "".
func (g *gen) never(r *rules.Rule) string {
	if r.InIface.Set && ifMatch(r.InIface, g.ifname) == r.InIface.Invert {
		return fmt.Sprintf("-i %s never matches on %q", r.InIface.Name, g.opts.InIface)
	}
	var none [16]byte
	if r.OutIface.Set && ifMatch(r.OutIface, none) == r.OutIface.Invert {
		return "-o never matches at PREROUTING and INPUT"
	}
	return ""
}

// ifMatch is ifname_compare_aligned as engine/program.go has it.
func ifMatch(f rules.Iface, dev [16]byte) bool {
	var name [16]byte
	copy(name[:], f.Name)
	l := len(f.Name)
	if !f.Wildcard {
		l++
	}
	for i := 0; i < l && i < 16; i++ {
		if dev[i] != name[i] {
			return false
		}
	}
	return true
}

// checks emits ip_packet_match and the matches in the engine's order, each
// failing to fail. When a match cannot run in XDP it emits a fallback
// site there (the checks before it still run) and returns the reason.
func (g *gen) checks(r *rules.Rule, fail string, site FallbackSite) string {
	if g.fam == packet.FamilyIPv6 {
		// ip6_packet_match: addresses, then -p (walking the header
		// chain even for -p all); there is no -f.
		if r.Src.Set {
			g.addr6(sSrc, sSrc6Lo, r.Src.Addr, r.Src.Mask, r.Src.Invert, fail)
		}
		if r.Dst.Set {
			g.addr6(sDst, sDst6Lo, r.Dst.Addr, r.Dst.Mask, r.Dst.Invert, fail)
		}
		if r.Proto != 0 || r.ProtoInv || r.ProtoGiven {
			g.proto6(r.Proto, r.ProtoInv, fail)
		}
	} else {
		g.header4(r, fail)
	}
	if why := g.opts.Userspace[r]; why != "" {
		site.Reason = why
		g.fallbackHere(site)
		return why
	}
	for _, m := range r.Matches {
		if reason := g.match(m, fail); reason != "" {
			site.Reason = reason
			g.fallbackHere(site)
			return reason
		}
	}
	return ""
}

// cbpfScratch is the stack the classic BPF translation may use: below the
// parsed-packet fields, above the capture block's slots.
const cbpfScratch = -400

// bpf emits xt_bpf: the classic program translated to eBPF (TranslateCBPF)
// on the datagram; it matches when the program returns non-zero. It
// always completes here: the IPv4 and IPv6 parsing has checked that the
// datagram (sLen bytes from the network header) lies in the frame, and
// the program is loaded without multi-buffer support, so the frame is all
// in the linear buffer. What direct packet access cannot reach (a network
// header behind a deep VLAN stack, offsets past the verifier's bounds) the
// translation reads with bpf_xdp_load_bytes (InBuffer: no Abort, no
// fallback site).
func (g *gen) bpf(m *rules.BPF, fail string) string {
	done := g.label()
	code, err := TranslateCBPF(m.F, CBPFOptions{Ctx: asm.R6,
		L3Off: CBPFMem(asm.R9, scratchL3Off*8), L3Len: CBPFMem(asm.R10, sLen), InBuffer: true,
		Scratch: cbpfScratch, Done: done, Prefix: g.label() + "_", Long: g.long})
	if err != nil {
		return "bpf: " + err.Error()
	}
	g.note("-m bpf --bytecode %s", m.F.String())
	for _, ins := range code {
		if sym := ins.Symbol(); sym != "" {
			g.place(sym)
			ins = ins.WithSymbol("")
		}
		g.emit(ins)
	}
	g.place(done)
	g.jfar(asm.JEq.Imm(asm.R0, 0, ""), fail)
	return ""
}

// header4 is ip_packet_match.
func (g *gen) header4(r *rules.Rule, fail string) {
	if r.Src.Set {
		g.addr(sSrc, r.Src, fail)
	}
	if r.Dst.Set {
		g.addr(sDst, r.Dst, fail)
	}
	if r.Proto != 0 {
		g.ld(asm.R1, sProto)
		if r.ProtoInv {
			g.emit(asm.JEq.Imm(asm.R1, int32(r.Proto), fail))
		} else {
			g.emit(asm.JNE.Imm(asm.R1, int32(r.Proto), fail))
		}
	}
	if r.Frag {
		g.ld(asm.R1, sFrag)
		if r.FragInv {
			g.emit(asm.JNE.Imm(asm.R1, 0, fail))
		} else {
			g.emit(asm.JEq.Imm(asm.R1, 0, fail))
		}
	}
}

func (g *gen) addr(slot int16, a rules.AddrMask, fail string) {
	b, m := a.Addr.As4(), a.Mask.As4()
	addr, mask := binary.BigEndian.Uint32(b[:]), binary.BigEndian.Uint32(m[:])
	g.ld(asm.R1, slot)
	if mask != 0xffffffff {
		g.emit(asm.And.Imm32(asm.R1, int32(mask)))
	}
	if a.Invert {
		g.emit(asm.JEq.Imm32(asm.R1, int32(addr), fail))
	} else {
		g.emit(asm.JNE.Imm32(asm.R1, int32(addr), fail))
	}
}

// inRange emits a test of R1 (unsigned, 32-bit compares) against
// [lo, hi]: with inv false a value outside fails, with inv true a value
// inside fails. full is the largest value R1 can hold.
func (g *gen) inRange(reg asm.Register, lo, hi, full uint32, inv bool, fail string) {
	if !inv {
		if lo > hi {
			g.ja(fail)
			return
		}
		if lo > 0 {
			g.emit(asm.JLT.Imm32(reg, int32(lo), fail))
		}
		if hi < full {
			g.emit(asm.JGT.Imm32(reg, int32(hi), fail))
		}
		return
	}
	if lo > hi {
		return
	}
	ok := g.label()
	if lo > 0 {
		g.emit(asm.JLT.Imm32(reg, int32(lo), ok))
	}
	if hi < full {
		g.emit(asm.JGT.Imm32(reg, int32(hi), ok))
	}
	g.ja(fail)
	g.place(ok)
}

// hotdropIf emits "if reg < n goto hotdrop" through a local skip, since
// the hotdrop tail may be far.
func (g *gen) hotdropIfLess(reg asm.Register, n int32) {
	ok := g.label()
	g.emit(asm.JGE.Imm(reg, n, ok))
	g.ja(lHotdrop)
	g.place(ok)
}

// notFirstFragment fails non-first fragments; tcp additionally hotdrops
// the IPv4 fragment at offset 1 (8 bytes).
func (g *gen) notFirstFragment(fail string, tcp bool) {
	g.ld(asm.R1, sFrag)
	if tcp && g.fam == packet.FamilyIPv4 {
		ok := g.label()
		g.emit(asm.JEq.Imm(asm.R1, 0, ok), asm.JNE.Imm(asm.R1, 1, fail))
		g.ja(lHotdrop)
		g.place(ok)
		return
	}
	g.emit(asm.JNE.Imm(asm.R1, 0, fail))
}

// match emits one match; it returns a reason when the match cannot run
// in XDP (nothing emitted then).
func (g *gen) match(m rules.Match, fail string) string {
	switch m := m.(type) {
	case *rules.Comment:
		return ""
	case *rules.TCP:
		if m.HasOption {
			return "tcp --tcp-option is not compiled yet"
		}
		g.notFirstFragment(fail, true)
		g.ld(asm.R1, sL4Len)
		g.hotdropIfLess(asm.R1, 20)
		g.ports(m.Src, m.Dst, m.SrcInv, m.DstInv, fail)
		if m.HasFlags {
			g.ld(asm.R1, sTCPByte13)
			g.emit(asm.And.Imm(asm.R1, int32(m.FlagMask)))
			if m.FlagsInv {
				g.emit(asm.JEq.Imm(asm.R1, int32(m.FlagComp), fail))
			} else {
				g.emit(asm.JNE.Imm(asm.R1, int32(m.FlagComp), fail))
			}
		}
	case *rules.UDP:
		g.notFirstFragment(fail, false)
		g.ld(asm.R1, sL4Len)
		g.hotdropIfLess(asm.R1, 8)
		g.ports(m.Src, m.Dst, m.SrcInv, m.DstInv, fail)
	case *rules.ICMP:
		if m.V6 != (g.fam == packet.FamilyIPv6) {
			return fmt.Sprintf("%s in a %s ruleset", m.Name(), g.fam)
		}
		if m.V6 {
			// icmp6_match: no "any" type; type and code were read
			// for ICMPv6 only.
			g.notFirstFragment(fail, false)
			g.ld(asm.R1, sL4Len)
			g.hotdropIfLess(asm.R1, 8)
			g.icmpTypeCode(m, fail)
			return ""
		}
		g.notFirstFragment(fail, false)
		g.ld(asm.R1, sL4Len)
		g.hotdropIfLess(asm.R1, 8)
		if m.Type == 0xFF {
			if m.Invert {
				g.ja(fail)
			}
			return ""
		}
		g.icmpTypeCode(m, fail)
	case *rules.Multiport:
		g.notFirstFragment(fail, false)
		g.ld(asm.R1, sL4Len)
		g.hotdropIfLess(asm.R1, 4)
		g.ld(asm.R1, sSport)
		g.ld(asm.R2, sDport)
		hit, miss := g.label(), g.label()
		for _, p := range m.Ports {
			regs := []asm.Register{asm.R1}
			switch m.Dir {
			case rules.MultiportDst:
				regs = []asm.Register{asm.R2}
			case rules.MultiportAny:
				regs = []asm.Register{asm.R1, asm.R2}
			}
			for _, reg := range regs {
				next := g.label()
				if p.Min > 0 {
					g.emit(asm.JLT.Imm(reg, int32(p.Min), next))
				}
				g.emit(asm.JLE.Imm(reg, int32(p.Max), hit))
				g.place(next)
			}
		}
		g.ja(miss)
		g.matchEnd(hit, miss, fail, m.Invert)
	case *rules.Length:
		g.ld(asm.R1, sLen)
		if g.fam == packet.FamilyIPv6 {
			// payload length + 40 as a u16, as xt_length has it
			g.emit(asm.And.Imm(asm.R1, 0xffff))
		}
		g.inRange(asm.R1, uint32(m.Min), uint32(m.Max), 0xffff, m.Invert, fail)
	case *rules.TTL:
		// ttl and hl compare the same byte (the engine's opTTL); the
		// IPv6 slot holds the hop limit.
		if m.V6 && g.fam != packet.FamilyIPv6 {
			return "hl is IPv6"
		}
		g.ld(asm.R1, sTTL)
		v := int32(m.Value)
		switch m.Op {
		case rules.TTLEq:
			g.emit(asm.JNE.Imm(asm.R1, v, fail))
		case rules.TTLNe:
			g.emit(asm.JEq.Imm(asm.R1, v, fail))
		case rules.TTLLt:
			g.emit(asm.JGE.Imm(asm.R1, v, fail))
		case rules.TTLGt:
			g.emit(asm.JLE.Imm(asm.R1, v, fail))
		}
	case *rules.IPRange:
		if g.fam == packet.FamilyIPv6 {
			if m.HasSrc {
				g.inRange6(sSrc, sSrc6Lo, m.SrcMin, m.SrcMax, m.SrcInv, fail)
			}
			if m.HasDst {
				g.inRange6(sDst, sDst6Lo, m.DstMin, m.DstMax, m.DstInv, fail)
			}
			return ""
		}
		if !m.SrcMin.Is4() && m.HasSrc || !m.DstMin.Is4() && m.HasDst {
			return "iprange on IPv6 addresses"
		}
		if m.HasSrc {
			g.ld(asm.R1, sSrc)
			g.inRange(asm.R1, be32(m.SrcMin.As4()), be32(m.SrcMax.As4()), 0xffffffff, m.SrcInv, fail)
		}
		if m.HasDst {
			g.ld(asm.R1, sDst)
			g.inRange(asm.R1, be32(m.DstMin.As4()), be32(m.DstMax.As4()), 0xffffffff, m.DstInv, fail)
		}
	case *rules.DSCP:
		g.ld(asm.R1, sTOS)
		g.emit(asm.RSh.Imm(asm.R1, 2))
		g.eq(asm.R1, int32(m.Value), m.Invert, fail)
	case *rules.TOS:
		g.ld(asm.R1, sTOS)
		g.emit(asm.And.Imm(asm.R1, int32(m.Mask)))
		g.eq(asm.R1, int32(m.Value), m.Invert, fail)
	case *rules.PktType:
		g.ld(asm.R1, sPktType)
		g.eq(asm.R1, int32(m.Type), m.Invert, fail)
	case *rules.MAC:
		var b [8]byte
		copy(b[:], m.Addr[:])
		g.ld(asm.R1, sSrcMAC)
		g.emit(asm.LoadImm(asm.R2, int64(binary.LittleEndian.Uint64(b[:])), asm.DWord))
		if m.Invert {
			g.emit(asm.JEq.Reg(asm.R1, asm.R2, fail))
		} else {
			g.emit(asm.JNE.Reg(asm.R1, asm.R2, fail))
		}
	case *rules.U32:
		tests, err := parseU32(m.M.String())
		if err != nil {
			return "u32: " + err.Error()
		}
		g.u32(tests, m.Invert, fail)
	case *rules.BPF:
		return g.bpf(m, fail)
	case *rules.String:
		return g.stringMatch(m, fail)
	case *rules.Limit:
		return g.limitMatch(m, fail)
	case *rules.Hashlimit:
		return g.hashlimitMatch(m, fail)
	case *rules.Recent:
		return "recent keeps its address lists in userspace"
	case *rules.Set:
		if reason := setReason(m, g.fam); reason != "" {
			return reason
		}
		g.setMatch(m, fail)
	default:
		return "match " + m.Name() + " is not compiled"
	}
	return ""
}

// icmpTypeCode fails unless the type and code match (inverted with !).
func (g *gen) icmpTypeCode(m *rules.ICMP, fail string) {
	g.ld(asm.R1, sICMPType)
	g.ld(asm.R2, sICMPCode)
	if !m.Invert {
		g.emit(asm.JNE.Imm(asm.R1, int32(m.Type), fail))
		g.inRange(asm.R2, uint32(m.CodeMin), uint32(m.CodeMax), 0xff, false, fail)
		return
	}
	ok := g.label()
	g.emit(asm.JNE.Imm(asm.R1, int32(m.Type), ok))
	if m.CodeMin > 0 {
		g.emit(asm.JLT.Imm(asm.R2, int32(m.CodeMin), ok))
	}
	g.emit(asm.JGT.Imm(asm.R2, int32(m.CodeMax), ok))
	g.ja(fail)
	g.place(ok)
}

func be32(b [4]byte) uint32 { return binary.BigEndian.Uint32(b[:]) }

// eq fails unless (R == v) != inv.
func (g *gen) eq(reg asm.Register, v int32, inv bool, fail string) {
	if inv {
		g.emit(asm.JEq.Imm(reg, v, fail))
	} else {
		g.emit(asm.JNE.Imm(reg, v, fail))
	}
}

// ports emits xt_tcpudp's port checks.
func (g *gen) ports(src, dst rules.PortRange, srcInv, dstInv bool, fail string) {
	if srcInv || src.Min > 0 || src.Max < 0xffff {
		g.ld(asm.R1, sSport)
		g.inRange(asm.R1, uint32(src.Min), uint32(src.Max), 0xffff, srcInv, fail)
	}
	if dstInv || dst.Min > 0 || dst.Max < 0xffff {
		g.ld(asm.R1, sDport)
		g.inRange(asm.R1, uint32(dst.Min), uint32(dst.Max), 0xffff, dstInv, fail)
	}
}

// u32 tests, re-read from the canonical text that u32.Match.String prints
// (every number in hex), so that this package needs nothing unexported.
type u32Test struct {
	loc []u32Loc
	val [][2]uint32
}

type u32Loc struct {
	op  byte // 0 for the first number, else '&', '<', '>', '@'
	num uint32
}

func parseU32(s string) ([]u32Test, error) {
	var tests []u32Test
	for _, ts := range strings.Split(s, "&&") {
		loc, vals, ok := strings.Cut(ts, "=")
		if !ok {
			return nil, fmt.Errorf("no '=' in %q", ts)
		}
		var t u32Test
		op := byte(0)
		for len(loc) > 0 {
			i := 0
			for i < len(loc) && loc[i] != '&' && loc[i] != '<' && loc[i] != '>' && loc[i] != '@' {
				i++
			}
			n, err := strconv.ParseUint(loc[:i], 0, 32)
			if err != nil {
				return nil, err
			}
			t.loc = append(t.loc, u32Loc{op: op, num: uint32(n)})
			loc = loc[i:]
			if len(loc) > 0 {
				op = loc[0]
				switch op {
				case '<', '>':
					loc = loc[2:]
				default:
					loc = loc[1:]
				}
			}
		}
		for _, vs := range strings.Split(vals, ",") {
			lo, hi, rng := strings.Cut(vs, ":")
			a, err := strconv.ParseUint(lo, 0, 32)
			if err != nil {
				return nil, err
			}
			b := a
			if rng {
				if b, err = strconv.ParseUint(hi, 0, 32); err != nil {
					return nil, err
				}
			}
			t.val = append(t.val, [2]uint32{uint32(a), uint32(b)})
		}
		if len(t.loc) == 0 || len(t.val) == 0 {
			return nil, fmt.Errorf("empty test in %q", s)
		}
		tests = append(tests, t)
	}
	return tests, nil
}

// u32 emits u32_match_it (net/netfilter/xt_u32.c) over the L3 datagram:
// R2 = n (L3 length), R3 = val, R4 = at.
func (g *gen) u32(tests []u32Test, inv bool, fail string) {
	yes, no := g.label(), g.label()
	g.ld(asm.R2, sLen)
	for _, t := range tests {
		pos := t.loc[0].num
		g.emit(asm.JLT.Imm(asm.R2, 4, no))
		if pos > 0xffff {
			g.ja(no)
			continue
		}
		g.emit(
			asm.Mov.Reg(asm.R5, asm.R2),
			asm.Sub.Imm(asm.R5, 4),
			asm.JLT.Imm(asm.R5, int32(pos), no),
			asm.Mov.Imm(asm.R5, int32(pos)),
		)
		g.u32Load(no)
		g.emit(asm.Mov.Imm(asm.R4, 0))
		for _, l := range t.loc[1:] {
			switch l.op {
			case '&':
				g.emit(asm.And.Imm32(asm.R3, int32(l.num)))
			case '<':
				g.emit(asm.LSh.Imm32(asm.R3, int32(l.num&31)))
			case '>':
				g.emit(asm.RSh.Imm32(asm.R3, int32(l.num&31)))
			case '@':
				// at += val (u32 overflow fails); then at+4 and
				// at+4+pos must stay within n.
				g.emit(
					asm.Add.Reg(asm.R4, asm.R3),
					asm.Mov.Reg(asm.R5, asm.R4),
					asm.RSh.Imm(asm.R5, 32),
					asm.JNE.Imm(asm.R5, 0, no),
					asm.Mov.Reg(asm.R5, asm.R4),
					asm.Add.Imm(asm.R5, 4),
					asm.JGT.Reg(asm.R5, asm.R2, no), // n < at+4 (at+4 cannot overflow 64 bits)
				)
				if l.num > 0xffff {
					g.ja(no)
					break
				}
				g.emit(
					asm.Mov.Reg(asm.R5, asm.R2),
					asm.Sub.Reg(asm.R5, asm.R4),
					asm.Sub.Imm(asm.R5, 4),
					asm.JLT.Imm(asm.R5, int32(l.num), no), // pos > n-at-4
					asm.Mov.Reg(asm.R5, asm.R4),
					asm.Add.Imm(asm.R5, int32(l.num)),
				)
				g.u32Load(no)
			}
		}
		ok := g.label()
		for _, v := range t.val {
			next := g.label()
			if v[0] > 0 {
				g.emit(asm.JLT.Imm32(asm.R3, int32(v[0]), next))
			}
			g.emit(asm.JLE.Imm32(asm.R3, int32(v[1]), ok))
			g.place(next)
		}
		g.ja(no)
		g.place(ok)
	}
	g.ja(yes)
	g.matchEnd(yes, no, fail, inv)
}

// u32Load loads the big-endian word at L3 offset R5 into R3; the caller
// proved R5+4 <= L3 length, and the frame holds the whole datagram, but
// the verifier wants its own proof.
func (g *gen) u32Load(no string) {
	g.emit(
		// Frames are < 16 KiB: never true when pos <= n-4; the sum of
		// both bounds stays within the verifier's MAX_PACKET_OFF.
		asm.JGT.Imm(asm.R5, 0xffff-maxFrameOff-4, no),
		asm.LoadMem(asm.R0, asm.R9, scratchL3Off*8, asm.DWord),
		asm.JGT.Imm(asm.R0, maxFrameOff, no),
		asm.LoadMem(asm.R1, asm.R6, 0, asm.Word),
		asm.Add.Reg(asm.R1, asm.R0),
		asm.Add.Reg(asm.R1, asm.R5),
		asm.Mov.Reg(asm.R0, asm.R1),
		asm.Add.Imm(asm.R0, 4),
		asm.LoadMem(asm.R3, asm.R6, 4, asm.Word),
		asm.JGT.Reg(asm.R0, asm.R3, no),
		asm.LoadMem(asm.R3, asm.R1, 0, asm.Word),
		asm.HostTo(asm.BE, asm.R3, asm.Word),
	)
}

// matchEnd ends a match whose code jumps to yes when the test holds and
// to no when it does not: execution continues (the rule's next match)
// on yes, or on no when the match is inverted (`!`), and the other goes
// to fail.
func (g *gen) matchEnd(yes, no, fail string, invert bool) {
	if invert {
		yes, no = no, yes
	}
	g.place(no)
	g.ja(fail)
	g.place(yes)
}
