package xdp

import (
	"encoding/binary"
	"net/netip"

	"github.com/cilium/ebpf/asm"

	"github.com/sluice-project/sluice/packet"
)

// maxFrameOff bounds variable offsets into the frame for the verifier (a
// packet pointer's variable part must stay below 64 KiB, VLAN tags
// included); XDP frames are far shorter, so the bound never decides.
const maxFrameOff = 0x3fff

const (
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
	g.ipHeaderStart(packet.IPv6HeaderSize)
	g.note("version 6")
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

	g.note("payload length (ip6_rcv_core): within the frame, and skb->len = payload length + 40; but a zero one with a hop-by-hop header next is not checked nor trimmed (a jumbogram may follow): skb->len is the frame's")
	g.emit(
		asm.LoadMem(asm.R2, asm.R7, 6, asm.Byte),
		asm.LoadMem(asm.R1, asm.R7, 4, asm.Half),
		asm.HostTo(asm.BE, asm.R1, asm.Half),
		asm.Mov.Reg(asm.R3, asm.R8),
		asm.Sub.Reg(asm.R3, asm.R7),
	)
	trim, haveLen := g.label(), g.label()
	g.emit(
		asm.JNE.Imm(asm.R1, 0, trim),
		asm.JNE.Imm(asm.R2, packet.IPv6NextHopByHop, trim),
		asm.Mov.Reg(asm.R1, asm.R3),
		asm.Ja.Label(haveLen),
	)
	g.place(trim)
	g.emit(asm.Add.Imm(asm.R1, packet.IPv6HeaderSize))
	g.malformedIf(asm.JGT.Reg(asm.R1, asm.R3, ""), packet.MalformedIPv6PayloadLen)
	g.place(haveLen)
	g.st(sLen, asm.R1)
	g.note("the extension-header walk starts at the fixed header's next header, at 40")
	g.emit(
		asm.StoreMem(asm.R9, scratchNH*8, asm.R2, asm.DWord),
		asm.Mov.Imm(asm.R1, packet.IPv6HeaderSize),
		asm.StoreMem(asm.R9, scratchOff*8, asm.R1, asm.DWord),
	)
	g.hopByHop()
	g.note("the datagram length, laundered through map memory: one verifier state from here whatever the path")
	g.ld(asm.R1, sLen)
	g.emit(
		asm.StoreMem(asm.R9, scratchL4Off*8, asm.R1, asm.DWord),
		asm.LoadMem(asm.R1, asm.R9, scratchL4Off*8, asm.DWord),
	)
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

	g.findUpperLayer()

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

// Map-memory state of the extension-header walk besides the scratch
// slots it shares with the code that reads its results: the datagram
// length, in parseL2's pkt_type slot (copied to the stack already).
const (
	walkLen  = scratchPktType * 8
	walkStop = 0x100 // in scratchNH once the walk is over
	walkFail = 0x101 // in scratchNH: a byte outside the XDP buffer (cannot happen)
	walkCB   = "exthdr_cb"
)

// findUpperLayer is ipv6_find_hdr(skb, &thoff, -1, &fragoff, NULL) as
// packet/decode.go's findUpperLayer has it, with no limit on the number
// of extension headers, as the engine's decoder walks them
// (IPv6ExtHdrLimit 0). It starts at the header of type scratchNH at
// scratchOff: the fixed header's next header at 40, or the one after a
// hop-by-hop header hopByHop validated (the walk would step over it as
// over any header, the same way). A header that is not an extension
// header is the answer at once; a chain is walked by bpf_loop, one
// header per call of extHdrCallback. The walk's state and results go through map memory, so
// that every call and every exit is one state for the verifier; the
// results land in sProto, sProtoFound, sFrag (bytes) and sL4Off.
func (g *gen) findUpperLayer() {
	stm := func(slot int, reg asm.Register) {
		g.emit(asm.StoreMem(asm.R9, int16(slot*8), reg, asm.DWord))
	}
	ldm := func(reg asm.Register, slot int) {
		g.emit(asm.LoadMem(reg, asm.R9, int16(slot*8), asm.DWord))
	}
	g.note("extension-header walk (ipv6_find_hdr): R3 = next header, R4 = its offset; state and results in map memory")
	ldm(asm.R3, scratchNH)
	ldm(asm.R4, scratchOff)
	g.emit(asm.Mov.Imm(asm.R1, 0))
	for _, s := range []int{scratchProto, scratchFound, scratchFrag, scratchL4Off} {
		stm(s, asm.R1)
	}
	ext, done := g.label(), g.label()
	g.isExtHdr(asm.R3, ext)
	g.note("not an extension header, or NONE: found there")
	g.emit(asm.Mov.Imm(asm.R1, 1))
	stm(scratchFound, asm.R1)
	stm(scratchProto, asm.R3)
	stm(scratchL4Off, asm.R4)
	g.ja(done)
	g.place(ext)
	// Every header the walk steps over is at least 8 bytes long and
	// starts 2 bytes or more before the datagram's end, so header k (from
	// 0) starts at 40+8k <= len-2: len/8 + 2 calls always suffice.
	g.note("a chain: bpf_loop(len/8 + 2, %s, &context, 0), one header per call (each is 8 bytes or more: enough calls for any chain)", walkCB)
	g.ld(asm.R1, sLen)
	g.emit(asm.StoreMem(asm.R9, walkLen, asm.R1, asm.DWord))
	g.loopContext()
	g.emit(
		asm.RSh.Imm(asm.R1, 3),
		asm.Add.Imm(asm.R1, 2),
	)
	g.bpfLoop(walkCB)
	ldm(asm.R1, scratchNH)
	g.jfar(asm.JNE.Imm(asm.R1, walkStop, ""), lAbort)
	g.place(done)
	g.note("walk results to the stack")
	for _, m := range [][2]int{{scratchProto, sProto}, {scratchFound, sProtoFound}, {scratchFrag, sFrag}, {scratchL4Off, sL4Off}} {
		ldm(asm.R1, m[0])
		g.st(int16(m[1]), asm.R1)
	}
}

// extHdrCallback is one step of ipv6_find_hdr's loop: the header of type
// scratchNH at scratchOff. It returns 0 to go on with the next header,
// or 1 with walkStop (found or not, the results set) or walkFail in
// scratchNH.
func (g *gen) extHdrCallback() {
	stm := func(slot int, reg asm.Register) {
		g.emit(asm.StoreMem(asm.R9, int16(slot*8), reg, asm.DWord))
	}
	ldm := func(reg asm.Register, slot int) {
		g.emit(asm.LoadMem(reg, asm.R9, int16(slot*8), asm.DWord))
	}
	g.note("extension-header callback (ipv6_find_hdr): R6 = context, R7 = data, R8 = data_end, R9 = counter value")
	g.callbackEntry(walkCB)
	ext, found, done, abort := g.label(), g.label(), g.label(), g.label()
	g.note("R3 = next header, R4 = its offset, R2 = datagram length")
	ldm(asm.R3, scratchNH)
	ldm(asm.R4, scratchOff)
	g.emit(asm.LoadMem(asm.R2, asm.R9, walkLen, asm.DWord))
	g.isExtHdr(asm.R3, ext)
	g.emit(asm.Ja.Label(found)) // not an extension header, or NONE
	g.place(ext)
	g.note("an extension header: its first 2 bytes within the datagram, else not found")
	g.emit(
		asm.Mov.Reg(asm.R5, asm.R4),
		asm.Add.Imm(asm.R5, 2),
		asm.JGT.Reg(asm.R5, asm.R2, done),
	)
	// Within the datagram, hence the frame; the verifier wants its own
	// proof.
	g.note("R1 = the header (the L3 offset and the header's are below 16 KiB for the verifier)")
	g.emit(
		asm.LoadMem(asm.R0, asm.R9, scratchL3Off*8, asm.DWord),
		asm.JGT.Imm(asm.R0, maxFrameOff, abort),
		asm.JGT.Imm(asm.R4, maxFrameOff, abort),
		asm.Add.Reg(asm.R7, asm.R0),
		asm.Mov.Reg(asm.R1, asm.R7),
		asm.Add.Reg(asm.R1, asm.R4),
		asm.Mov.Reg(asm.R5, asm.R1),
		asm.Add.Imm(asm.R5, 4),
	)
	// R0 = 1 when 4 bytes are in the frame (the fragment and routing
	// headers need them, within the datagram too).
	four, have4 := g.label(), g.label()
	g.note("R0 = 1 when 4 bytes are in the frame and the datagram (fragment and routing headers need them)")
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
	g.emit(
		asm.Mov.Reg(asm.R5, asm.R1),
		asm.Add.Imm(asm.R5, 2),
		asm.JGT.Reg(asm.R5, asm.R8, abort),
	)
	notFrag, notAH, generic, advance := g.label(), g.label(), g.label(), g.label()
	g.emit(asm.JNE.Imm(asm.R3, packet.IPv6NextFragment, notFrag))
	g.note("fragment header: a non-first fragment ends the walk (found, unless another extension header follows)")
	g.emit(
		asm.JEq.Imm(asm.R0, 0, done),
		asm.Mov.Reg(asm.R5, asm.R1),
		asm.Add.Imm(asm.R5, 4),
		asm.JGT.Reg(asm.R5, asm.R8, abort),
		asm.LoadMem(asm.R5, asm.R1, 2, asm.Half),
		asm.HostTo(asm.BE, asm.R5, asm.Half),
		asm.And.Imm(asm.R5, 0xfff8),
		asm.Mov.Imm(asm.R0, packet.IPv6FragHeaderSize),
		asm.JEq.Imm(asm.R5, 0, advance),
		asm.LoadMem(asm.R3, asm.R1, 0, asm.Byte),
	)
	g.isExtHdr(asm.R3, done) // another extension header: not found
	stm(scratchFrag, asm.R5)
	g.emit(
		asm.Add.Imm(asm.R4, packet.IPv6FragHeaderSize),
		asm.Ja.Label(found),
	)
	g.place(notFrag)
	g.note("AH: (length + 2) * 4 bytes")
	g.emit(
		asm.JNE.Imm(asm.R3, packet.IPv6NextAuth, notAH),
		asm.LoadMem(asm.R0, asm.R1, 1, asm.Byte),
		asm.Add.Imm(asm.R0, 2),
		asm.LSh.Imm(asm.R0, 2),
		asm.Ja.Label(advance),
	)
	g.place(notAH)
	g.note("routing: the kernel reads its first 4 bytes; the others: (length + 1) * 8 bytes")
	g.emit(
		asm.JNE.Imm(asm.R3, packet.IPv6NextRouting, generic),
		asm.JEq.Imm(asm.R0, 0, done),
	)
	g.place(generic)
	g.emit(
		asm.LoadMem(asm.R0, asm.R1, 1, asm.Byte),
		asm.Add.Imm(asm.R0, 1),
		asm.LSh.Imm(asm.R0, 3),
	)
	g.place(advance)
	g.note("next header: R4 + R0, its type from this header's first byte; not an extension header: found (one call less)")
	g.emit(asm.LoadMem(asm.R3, asm.R1, 0, asm.Byte), asm.Add.Reg(asm.R4, asm.R0))
	stm(scratchNH, asm.R3)
	stm(scratchOff, asm.R4)
	next := g.label()
	g.isExtHdr(asm.R3, next)
	g.emit(asm.Ja.Label(found))
	g.place(next)
	g.emit(asm.Mov.Imm(asm.R0, 0), asm.Return())
	g.place(found)
	g.note("found: R3 = protocol, R4 = transport offset")
	g.emit(asm.Mov.Imm(asm.R1, 1))
	stm(scratchFound, asm.R1)
	stm(scratchProto, asm.R3)
	stm(scratchL4Off, asm.R4)
	g.place(done)
	g.note("the walk is over: stop")
	g.emit(asm.Mov.Imm(asm.R1, walkStop))
	stm(scratchNH, asm.R1)
	g.emit(asm.Mov.Imm(asm.R0, 1), asm.Return())
	g.place(abort)
	g.note("a byte outside the XDP buffer (cannot happen): stop")
	g.emit(asm.Mov.Imm(asm.R1, walkFail))
	stm(scratchNH, asm.R1)
	g.emit(asm.Mov.Imm(asm.R0, 1), asm.Return())
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
