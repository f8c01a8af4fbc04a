package xdp

import (
	"encoding/binary"
	"net/netip"

	"github.com/cilium/ebpf/asm"

	"github.com/sluice-project/sluice/packet"
)

// maxIPv6ExtHdrs is how many extension headers the program walks before
// the upper-layer header; a packet with more is a whole-packet fallback
// site (the engine walks without a limit, as ipv6_find_hdr did before
// IP6_MAX_EXT_HDRS_CNT).
const maxIPv6ExtHdrs = 8

// maxFrameOff bounds variable offsets into the frame for the verifier (a
// packet pointer's variable part must stay below 64 KiB, VLAN tags
// included); XDP frames are far shorter, so the bound never decides.
const maxFrameOff = 0x3fff

// Reasons of the IPv6 whole-packet fallback sites.
const (
	HopByHopReason  = "IPv6 hop-by-hop options: ip6_parse_tlv's option walk is not compiled"
	ExtHdrReason    = "more than 8 IPv6 extension headers before the upper layer"
	protoICMPv6     = 58
	ipv6LoopbackLow = 1
)

// allNodesHigh is the high half of ff02::1.
var allNodesHigh uint64 = 0xff02 << 48

// parseIPv6 is ip6_rcv_core as packet/decode.go's decodeIPv6 has it, then
// ipv6_find_hdr's walk (findUpperLayer) and decodeTransport. R7 points at
// the IPv6 header, R8 is data_end.
func (g *gen) parseIPv6() {
	g.note("IPv6 (ip6_rcv_core): pkt_type OTHERHOST is dropped first")
	if g.opts.LocalMAC != nil {
		g.ld(asm.R1, sPktType)
		g.malformedIf(asm.JEq.Imm(asm.R1, int32(packet.PktOtherHost), ""), packet.MalformedOtherHost)
	}
	g.note("40 bytes, version 6")
	g.emit(
		asm.Mov.Reg(asm.R1, asm.R7),
		asm.Add.Imm(asm.R1, packet.IPv6HeaderSize),
	)
	g.malformedIf(asm.JGT.Reg(asm.R1, asm.R8, ""), packet.MalformedIPHeaderLen)
	g.emit(
		asm.LoadMem(asm.R1, asm.R7, 0, asm.Byte),
		asm.RSh.Imm(asm.R1, 4),
	)
	g.malformedIf(asm.JNE.Imm(asm.R1, 6, ""), packet.MalformedIPVersion)
	g.note("addresses as two big-endian 64-bit halves each")
	for i, slot := range []int16{sSrc, sSrc6Lo, sDst, sDst6Lo} {
		g.emit(
			asm.LoadMem(asm.R1, asm.R7, int16(8+8*i), asm.DWord),
			asm.HostTo(asm.BE, asm.R1, asm.DWord),
		)
		g.st(slot, asm.R1)
	}
	g.note("address checks (badIPv6Addrs): loopback, multicast scope 0 and 1 destination, multicast source")
	g.ld(asm.R1, sSrc)
	g.ld(asm.R2, sSrc6Lo)
	g.ld(asm.R3, sDst)
	g.ld(asm.R4, sDst6Lo)
	srcNotLo, dstNotLo, notMC := g.label(), g.label(), g.label()
	g.emit(asm.JNE.Imm(asm.R1, 0, srcNotLo))
	g.malformedIf(asm.JEq.Imm(asm.R2, ipv6LoopbackLow, ""), packet.MalformedIPv6Addr)
	g.place(srcNotLo)
	g.emit(asm.JNE.Imm(asm.R3, 0, dstNotLo))
	g.malformedIf(asm.JEq.Imm(asm.R4, ipv6LoopbackLow, ""), packet.MalformedIPv6Addr)
	g.place(dstNotLo)
	g.emit(
		asm.Mov.Reg(asm.R5, asm.R3),
		asm.RSh.Imm(asm.R5, 56),
		asm.JNE.Imm(asm.R5, 0xff, notMC),
		asm.Mov.Reg(asm.R5, asm.R3),
		asm.RSh.Imm(asm.R5, 48),
		asm.And.Imm(asm.R5, 0x0f),
	)
	g.malformedIf(asm.JLE.Imm(asm.R5, 1, ""), packet.MalformedIPv6Addr)
	g.place(notMC)
	g.emit(
		asm.Mov.Reg(asm.R5, asm.R1),
		asm.RSh.Imm(asm.R5, 56),
	)
	g.malformedIf(asm.JEq.Imm(asm.R5, 0xff, ""), packet.MalformedIPv6Addr)

	g.note("a hop-by-hop header: its options are validated in userspace")
	g.emit(asm.LoadMem(asm.R2, asm.R7, 6, asm.Byte))
	noHBH := g.label()
	g.emit(asm.JNE.Imm(asm.R2, packet.IPv6NextHopByHop, noHBH))
	g.fallbackHere(FallbackSite{Family: packet.FamilyIPv6, Hook: -1, Reason: HopByHopReason})
	g.place(noHBH)
	g.note("payload length within the frame; skb->len = payload length + 40")
	g.emit(
		asm.LoadMem(asm.R1, asm.R7, 4, asm.Half),
		asm.HostTo(asm.BE, asm.R1, asm.Half),
		asm.Add.Imm(asm.R1, packet.IPv6HeaderSize),
		asm.Mov.Reg(asm.R3, asm.R8),
		asm.Sub.Reg(asm.R3, asm.R7),
	)
	g.malformedIf(asm.JGT.Reg(asm.R1, asm.R3, ""), packet.MalformedIPv6PayloadLen)
	g.note("fields for the rules: hop limit, traffic class")
	g.st(sLen, asm.R1)
	g.emit(asm.LoadMem(asm.R1, asm.R7, 7, asm.Byte))
	g.st(sTTL, asm.R1)
	g.emit(
		asm.LoadMem(asm.R1, asm.R7, 0, asm.Half),
		asm.HostTo(asm.BE, asm.R1, asm.Half),
		asm.RSh.Imm(asm.R1, 4),
		asm.And.Imm(asm.R1, 0xff),
	)
	g.st(sTOS, asm.R1)

	g.findUpperLayer(asm.R2)

	g.note("L4Len: from the transport header to the end of the datagram, when found")
	g.emit(asm.Mov.Imm(asm.R3, 0))
	noL4 := g.label()
	g.ld(asm.R4, sProtoFound)
	g.ld(asm.R1, sL4Off)
	g.ld(asm.R2, sLen)
	g.emit(
		asm.JEq.Imm(asm.R4, 0, noL4),
		asm.JGE.Reg(asm.R1, asm.R2, noL4),
		asm.Mov.Reg(asm.R3, asm.R2),
		asm.Sub.Reg(asm.R3, asm.R1),
	)
	g.place(noL4)
	g.st(sL4Len, asm.R3)
	// decodeTransport returns early unless found with L4Len > 0 (R3 is 0
	// when not found); the offset is below the datagram's length then,
	// hence below the frame's (< 16 KiB: the verifier wants a bound).
	noTransport := g.label()
	g.emit(asm.JEq.Imm(asm.R3, 0, noTransport))
	g.jfar(asm.JGT.Imm(asm.R1, maxFrameOff, ""), lAbort)
	g.ld(asm.R2, sProto)
	g.ld(asm.R5, sFrag)
	g.transport(protoICMPv6)
	g.place(noTransport)
	g.note("a VLAN-tagged frame (id != 0) is not this interface's: unfiltered")
	g.ld(asm.R1, sVLAN)
	g.jfar(asm.JNE.Imm(asm.R1, 0, ""), lNotFilter)
}

// isExtHdr jumps to target when reg holds one of the next-header values
// ipv6_find_hdr walks past (packet's isIPv6ExtHdr without NONE).
func (g *gen) isExtHdr(reg asm.Register, target string) {
	for _, nh := range []int32{packet.IPv6NextHopByHop, packet.IPv6NextRouting, packet.IPv6NextFragment,
		packet.IPv6NextAuth, packet.IPv6NextDestOptions} {
		g.emit(asm.JEq.Imm(reg, nh, target))
	}
}

// findUpperLayer is ipv6_find_hdr(skb, &thoff, -1, &fragoff, NULL) as
// packet/decode.go's findUpperLayer has it, unrolled to maxIPv6ExtHdrs
// headers. nh holds the fixed header's next header. The walk's state and
// results go through map memory, so that every iteration and every exit
// is one state for the verifier; the results land in sProto,
// sProtoFound, sFrag (bytes) and sL4Off.
func (g *gen) findUpperLayer(nh asm.Register) {
	g.note("extension-header walk (ipv6_find_hdr), unrolled to %d headers", maxIPv6ExtHdrs)
	stm := func(slot int, reg asm.Register) {
		g.emit(asm.StoreMem(asm.R9, int16(slot*8), reg, asm.DWord))
	}
	ldm := func(reg asm.Register, slot int) {
		g.emit(asm.LoadMem(reg, asm.R9, int16(slot*8), asm.DWord))
	}
	stm(scratchNH, nh)
	g.emit(asm.Mov.Imm(asm.R1, packet.IPv6HeaderSize))
	stm(scratchOff, asm.R1)
	g.emit(asm.Mov.Imm(asm.R1, 0))
	for _, s := range []int{scratchProto, scratchFound, scratchFrag, scratchL4Off} {
		stm(s, asm.R1)
	}
	found, done := g.label(), g.label()
	for k := 0; k <= maxIPv6ExtHdrs; k++ {
		ext := g.label()
		g.note("header %d: R3 = next header, R4 = its offset, R2 = datagram length", k+1)
		ldm(asm.R3, scratchNH)
		ldm(asm.R4, scratchOff)
		g.ld(asm.R2, sLen)
		g.isExtHdr(asm.R3, ext)
		g.ja(found) // not an extension header, or NONE
		g.place(ext)
		if k == maxIPv6ExtHdrs {
			g.fallbackHere(FallbackSite{Family: packet.FamilyIPv6, Hook: -1, Reason: ExtHdrReason})
			break
		}
		g.emit(
			asm.Mov.Reg(asm.R5, asm.R4),
			asm.Add.Imm(asm.R5, 2),
			asm.JGT.Reg(asm.R5, asm.R2, done), // cannot read it: not found
		)
		// Within the datagram, hence the frame; the verifier wants
		// its own proof.
		g.jfar(asm.JGT.Imm(asm.R4, maxFrameOff, ""), lAbort)
		g.emit(
			asm.Mov.Reg(asm.R1, asm.R7),
			asm.Add.Reg(asm.R1, asm.R4), // R1 = the header
			asm.Mov.Reg(asm.R5, asm.R1),
			asm.Add.Imm(asm.R5, 4),
		)
		// R0 = 1 when 4 bytes are in the frame (the fragment and
		// routing headers need them, within the datagram too).
		four, have4 := g.label(), g.label()
		g.emit(
			asm.Mov.Imm(asm.R0, 0),
			asm.JGT.Reg(asm.R5, asm.R8, four),
			asm.Mov.Imm(asm.R0, 1),
		)
		g.place(four)
		g.emit(
			asm.Mov.Reg(asm.R5, asm.R4),
			asm.Add.Imm(asm.R5, 4),
			asm.JLE.Reg(asm.R5, asm.R2, have4),
			asm.Mov.Imm(asm.R0, 0),
		)
		g.place(have4)
		g.emit(asm.Mov.Reg(asm.R5, asm.R1), asm.Add.Imm(asm.R5, 2))
		g.jfar(asm.JGT.Reg(asm.R5, asm.R8, ""), lAbort)
		notFrag, notAH, generic, advance := g.label(), g.label(), g.label(), g.label()
		g.emit(asm.JNE.Imm(asm.R3, packet.IPv6NextFragment, notFrag))
		{
			g.note("fragment header: a non-first fragment ends the walk")
			g.emit(asm.JEq.Imm(asm.R0, 0, done))
			g.emit(asm.Mov.Reg(asm.R5, asm.R1), asm.Add.Imm(asm.R5, 4))
			g.jfar(asm.JGT.Reg(asm.R5, asm.R8, ""), lAbort)
			g.emit(
				asm.LoadMem(asm.R5, asm.R1, 2, asm.Half),
				asm.HostTo(asm.BE, asm.R5, asm.Half),
				asm.And.Imm(asm.R5, 0xfff8),
				asm.Mov.Imm(asm.R0, packet.IPv6FragHeaderSize),
				asm.JEq.Imm(asm.R5, 0, advance),
				asm.LoadMem(asm.R3, asm.R1, 0, asm.Byte),
			)
			g.isExtHdr(asm.R3, done) // another extension header: not found
			stm(scratchFrag, asm.R5)
			g.emit(asm.Add.Imm(asm.R4, packet.IPv6FragHeaderSize))
			g.ja(found)
		}
		g.place(notFrag)
		g.emit(asm.JNE.Imm(asm.R3, packet.IPv6NextAuth, notAH))
		g.emit(
			asm.LoadMem(asm.R0, asm.R1, 1, asm.Byte),
			asm.Add.Imm(asm.R0, 2),
			asm.LSh.Imm(asm.R0, 2),
		)
		g.ja(advance)
		g.place(notAH)
		g.emit(
			asm.JNE.Imm(asm.R3, packet.IPv6NextRouting, generic),
			// the kernel reads the routing header's first 4 bytes
			asm.JEq.Imm(asm.R0, 0, done),
		)
		g.place(generic)
		g.emit(
			asm.LoadMem(asm.R0, asm.R1, 1, asm.Byte),
			asm.Add.Imm(asm.R0, 1),
			asm.LSh.Imm(asm.R0, 3),
		)
		g.place(advance)
		g.emit(
			asm.LoadMem(asm.R3, asm.R1, 0, asm.Byte),
			asm.Add.Reg(asm.R4, asm.R0),
		)
		stm(scratchNH, asm.R3)
		stm(scratchOff, asm.R4)
	}
	g.place(found)
	g.note("found: R3 = protocol, R4 = transport offset")
	g.emit(asm.Mov.Imm(asm.R1, 1))
	stm(scratchFound, asm.R1)
	stm(scratchProto, asm.R3)
	stm(scratchL4Off, asm.R4)
	g.place(done)
	g.note("walk results to the stack")
	for _, m := range [][2]int{{scratchProto, sProto}, {scratchFound, sProtoFound}, {scratchFrag, sFrag}, {scratchL4Off, sL4Off}} {
		ldm(asm.R1, m[0])
		g.st(int16(m[1]), asm.R1)
	}
}

// reachesInput6 is engine/input.go's routing model for IPv6: multicast is
// delivered for all-nodes and the solicited-node groups of LocalAddrs
// only; anything else goes on to INPUT.
func (g *gen) reachesInput6() {
	g.cur = -1
	g.note("routing decision (engine/input.go): multicast other than all-nodes and our solicited-node groups -> accepted before INPUT")
	no, yes, solicited := g.label(), g.label(), g.label()
	g.ld(asm.R1, sDst)
	g.ld(asm.R2, sDst6Lo)
	g.emit(
		asm.Mov.Reg(asm.R3, asm.R1),
		asm.RSh.Imm(asm.R3, 56),
		asm.JNE.Imm(asm.R3, 0xff, yes),
		asm.Mov.Reg(asm.R3, asm.R1),
		asm.RSh.Imm(asm.R3, 48),
		asm.JNE.Imm(asm.R3, 0xff02, no),
		asm.LoadImm(asm.R3, int64(allNodesHigh), asm.DWord),
		asm.JNE.Reg(asm.R1, asm.R3, solicited),
		asm.JEq.Imm(asm.R2, 1, yes),
	)
	g.place(solicited)
	g.note("solicited-node: byte 11 is 1, byte 12 0xff, bytes 13-15 one of ours")
	g.emit(
		asm.Mov.Reg(asm.R3, asm.R2),
		asm.RSh.Imm(asm.R3, 24),
		asm.And.Imm(asm.R3, 0xffff),
		asm.JNE.Imm(asm.R3, 0x01ff, no),
		asm.Mov.Reg(asm.R3, asm.R2),
		asm.And.Imm(asm.R3, 0xffffff),
	)
	seen := map[uint32]bool{}
	for _, a := range g.opts.LocalAddrs {
		if !a.Is6() {
			continue
		}
		b := a.As16()
		low := uint32(b[13])<<16 | uint32(b[14])<<8 | uint32(b[15])
		if !seen[low] {
			seen[low] = true
			g.emit(asm.JEq.Imm(asm.R3, int32(low), yes))
		}
	}
	g.place(no)
	g.ja(lAccept)
	g.place(yes)
}

// halves returns a 16-byte address as two big-endian 64-bit halves.
func halves(a netip.Addr) [2]uint64 {
	b := a.As16()
	return [2]uint64{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

// addr6 is ip6_packet_match's masked address compare: slots hi and lo
// hold the packet's address.
func (g *gen) addr6(hi, lo int16, addr, mask netip.Addr, inv bool, fail string) {
	a, m := halves(addr), halves(mask)
	load := func(reg asm.Register, slot int16, mask uint64) {
		g.ld(reg, slot)
		if mask != ^uint64(0) {
			g.emit(asm.LoadImm(asm.R3, int64(mask), asm.DWord), asm.And.Reg(reg, asm.R3))
		}
	}
	load(asm.R1, hi, m[0])
	load(asm.R2, lo, m[1])
	g.emit(asm.LoadImm(asm.R3, int64(a[0]), asm.DWord), asm.LoadImm(asm.R4, int64(a[1]), asm.DWord))
	if !inv {
		g.emit(asm.JNE.Reg(asm.R1, asm.R3, fail), asm.JNE.Reg(asm.R2, asm.R4, fail))
		return
	}
	ok := g.label()
	g.emit(asm.JNE.Reg(asm.R1, asm.R3, ok), asm.JNE.Reg(asm.R2, asm.R4, ok))
	g.ja(fail)
	g.place(ok)
}

// inRange6 is xt_iprange's 128-bit range test of the address in slots
// hi, lo: outside [min, max] fails unless inv, inside fails if inv.
func (g *gen) inRange6(hi, lo int16, minA, maxA netip.Addr, inv bool, fail string) {
	mn, mx := halves(minA), halves(maxA)
	in, out, chkMax := g.label(), g.label(), g.label()
	g.ld(asm.R1, hi)
	g.ld(asm.R2, lo)
	g.emit(
		asm.LoadImm(asm.R3, int64(mn[0]), asm.DWord),
		asm.JLT.Reg(asm.R1, asm.R3, out),
		asm.JGT.Reg(asm.R1, asm.R3, chkMax),
		asm.LoadImm(asm.R3, int64(mn[1]), asm.DWord),
		asm.JLT.Reg(asm.R2, asm.R3, out),
	)
	g.place(chkMax)
	g.emit(
		asm.LoadImm(asm.R3, int64(mx[0]), asm.DWord),
		asm.JGT.Reg(asm.R1, asm.R3, out),
		asm.JLT.Reg(asm.R1, asm.R3, in),
		asm.LoadImm(asm.R3, int64(mx[1]), asm.DWord),
		asm.JGT.Reg(asm.R2, asm.R3, out),
	)
	g.place(in)
	if inv {
		g.ja(fail)
		g.place(out)
		return
	}
	next := g.label()
	g.ja(next)
	g.place(out)
	g.ja(fail)
	g.place(next)
}

// proto6 is ip6_packet_match's protocol test for a rule with -p: a
// header chain that could not be walked hotdrops (fragoff is 0 then).
func (g *gen) proto6(proto uint8, inv bool, fail string) {
	g.ld(asm.R1, sProtoFound)
	found := g.label()
	g.emit(asm.JNE.Imm(asm.R1, 0, found))
	g.ja(lHotdrop)
	g.place(found)
	g.ld(asm.R1, sProto)
	switch {
	case inv:
		g.emit(asm.JEq.Imm(asm.R1, int32(proto), fail))
	case proto != 0:
		g.emit(asm.JNE.Imm(asm.R1, int32(proto), fail))
	}
}
