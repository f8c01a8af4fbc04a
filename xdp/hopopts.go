package xdp

import (
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"

	"github.com/sluice-project/sluice/packet"
)

// The IPv6 hop-by-hop options in XDP.
//
// packet/decode.go's parseHopOpts (ipv6_parse_hopopts with
// ip6_parse_tlv(hopbyhop=true), sysctls at their defaults) decides
// whether the datagram is dropped before PREROUTING, and, with a jumbo
// payload option, its length. The header can hold 2048 bytes of
// options, so the program walks them with bpf_loop, one option per call
// of hbhCallback: the verifier walks one option's code, whatever the
// header. The walk's state lives in map memory (the scratch slots of the
// extension-header walk, which runs after it), so that every call starts
// in the same verifier state.
//
// The walk cannot go on for long: a run of padding holds at most 7 bytes
// (so at most 7 Pad1 options), and at most maxHopOpts other options are
// allowed, so after 9 runs of padding and 8 options the next call ends
// it, one way or another (hbhMaxCalls).

// Stack of the loop callbacks' context (hop-by-hop options and the
// extension-header walk): the counter value and the xdp_md pointer, in
// the slots the string match uses for its own context (strVal, strCtx),
// free while the packet is parsed: no rule has run yet.
const (
	loopVal    = strVal
	loopXDP    = strCtx
	loopCtxVal = 0
	loopCtxXDP = loopXDP - loopVal
)

// Map-memory state of the hop-by-hop walk (byte offsets in the counter
// value): scratch slots the extension-header walk initialises afterwards
// (and parseL2's pkt_type slot, already copied to the stack).
const (
	hbhOff    = scratchOff * 8     // offset of the next option from the IPv6 header
	hbhEnd    = scratchNH * 8      // end of the header: 40 + (hdrlen+1)*8
	hbhPad    = scratchProto * 8   // bytes of padding in a row
	hbhCount  = scratchFound * 8   // options other than padding
	hbhStatus = scratchFrag * 8    // hbhRunning, hbhOK, hbhBad or hbhAbort
	hbhLen    = scratchL4Off * 8   // the datagram length (a jumbo option changes it)
	hbhPlen   = scratchPktType * 8 // the payload length field
)

// hbhStatus values.
const (
	hbhRunning = iota
	hbhOK      // the options are valid: the datagram length is in hbhLen
	hbhBad     // ip6_parse_tlv fails: MalformedIPv6HopByHop
	hbhAbort   // a byte outside the XDP buffer: cannot happen
)

// Hop-by-hop option types (IPV6_TLV_*) and limits, as packet/decode.go
// has them.
const (
	tlvPad1        = 0
	tlvPadN        = 1
	tlvRouterAlert = 5
	tlvCALIPSO     = 7
	tlvIOAM        = 49
	tlvJumbo       = 194
	maxHopPad      = 7 // RFC 4942 2.1.9.5: padding bytes in a row
	maxHopOpts     = 8 // IP6_DEFAULT_MAX_HBH_OPTS_CNT
	hbhMaxCalls    = (maxHopOpts+1)*maxHopPad + maxHopOpts + 1
	hbhCallback    = "hbh_cb"
)

// ipv6MaxPayload is IPV6_MAXPLEN: a jumbo payload length must exceed
// it. It is a variable so that a test can reach the valid-jumbo path with
// frames an XDP buffer holds (a real jumbogram is over 64 KiB).
var ipv6MaxPayload int32 = 65535

// loopContext writes the loop callbacks' context: R9 (the counter value)
// and R6 (the xdp_md pointer).
func (g *gen) loopContext() {
	g.emit(
		asm.StoreMem(asm.R10, loopVal, asm.R9, asm.DWord),
		asm.StoreMem(asm.R10, loopXDP, asm.R6, asm.DWord),
	)
}

// bpfLoop emits bpf_loop(R1, cb, &context, 0); R1 holds the number of
// calls.
func (g *gen) bpfLoop(cb string) {
	fn := asm.LoadImm(asm.R2, -1, asm.DWord) // resolved to the callback by the assembler
	fn.Src = asm.PseudoFunc
	g.emit(
		fn.WithReference(cb),
		asm.Mov.Reg(asm.R3, asm.R10),
		asm.Add.Imm(asm.R3, loopVal),
		asm.Mov.Imm(asm.R4, 0),
		asm.FnLoop.Call(),
	)
}

// hopByHop is ipv6_parse_hopopts as packet/decode.go's parseHopOpts has
// it, for a datagram whose next header (R2) is 0; sLen holds the
// datagram's length (payload length + 40, or the frame's with a zero
// payload length), which it replaces with the length after the options
// (a jumbo option's). R7 is the IPv6 header, R8 data_end. The
// extension-header walk's start (scratchNH, scratchOff) moves past the
// header when it is valid.
func (g *gen) hopByHop() {
	noHBH := g.label()
	g.note("hop-by-hop options (ipv6_parse_hopopts, ip6_parse_tlv) when the next header is 0")
	g.emit(asm.JNE.Imm(asm.R2, packet.IPv6NextHopByHop, noHBH))
	g.note("pskb_may_pull(40 + 8), then the header's length, within the datagram")
	g.ld(asm.R1, sLen)
	g.malformedIf(asm.JLT.Imm(asm.R1, packet.IPv6HeaderSize+8, ""), packet.MalformedIPv6HopByHop)
	g.emit(asm.Mov.Reg(asm.R4, asm.R7), asm.Add.Imm(asm.R4, packet.IPv6HeaderSize+8))
	g.jfar(asm.JGT.Reg(asm.R4, asm.R8, ""), lAbort) // the datagram is in the frame
	g.emit(
		asm.LoadMem(asm.R3, asm.R7, packet.IPv6HeaderSize+1, asm.Byte),
		asm.Add.Imm(asm.R3, 1),
		asm.LSh.Imm(asm.R3, 3),
		asm.Add.Imm(asm.R3, packet.IPv6HeaderSize), // R3 = end
	)
	g.malformedIf(asm.JGT.Reg(asm.R3, asm.R1, ""), packet.MalformedIPv6HopByHop)
	g.note("the option walk's state in map memory: first option at 42, no padding, no option yet")
	g.emit(
		asm.StoreMem(asm.R9, hbhEnd, asm.R3, asm.DWord),
		asm.StoreMem(asm.R9, hbhLen, asm.R1, asm.DWord),
		asm.LoadMem(asm.R1, asm.R7, 4, asm.Half),
		asm.HostTo(asm.BE, asm.R1, asm.Half),
		asm.StoreMem(asm.R9, hbhPlen, asm.R1, asm.DWord),
		asm.Mov.Imm(asm.R1, packet.IPv6HeaderSize+2),
		asm.StoreMem(asm.R9, hbhOff, asm.R1, asm.DWord),
		asm.Mov.Imm(asm.R1, 0),
		asm.StoreMem(asm.R9, hbhPad, asm.R1, asm.DWord),
		asm.StoreMem(asm.R9, hbhCount, asm.R1, asm.DWord),
		asm.StoreMem(asm.R9, hbhStatus, asm.R1, asm.DWord),
	)
	g.loopContext()
	g.note("bpf_loop(%d, %s, &context, 0): one option per call; %d calls end every walk", hbhMaxCalls, hbhCallback, hbhMaxCalls)
	g.emit(asm.Mov.Imm(asm.R1, hbhMaxCalls))
	g.bpfLoop(hbhCallback)
	g.note("the walk's result: bad options are malformed; valid ones give the datagram length")
	g.emit(asm.LoadMem(asm.R1, asm.R9, hbhStatus, asm.DWord))
	g.malformedIf(asm.JEq.Imm(asm.R1, hbhBad, ""), packet.MalformedIPv6HopByHop)
	g.jfar(asm.JNE.Imm(asm.R1, hbhOK, ""), lAbort)
	g.emit(asm.LoadMem(asm.R1, asm.R9, hbhLen, asm.DWord))
	g.st(sLen, asm.R1)
	g.note("the extension-header walk starts past the header: its next header at its end (ipv6_find_hdr would step over it as over any other)")
	g.emit(
		asm.LoadMem(asm.R1, asm.R9, hbhEnd, asm.DWord),
		asm.Mov.Reg(asm.R4, asm.R7),
		asm.Add.Imm(asm.R4, packet.IPv6HeaderSize+1),
	)
	g.jfar(asm.JGT.Reg(asm.R4, asm.R8, ""), lAbort)
	g.emit(
		asm.LoadMem(asm.R3, asm.R7, packet.IPv6HeaderSize, asm.Byte),
		asm.StoreMem(asm.R9, scratchNH*8, asm.R3, asm.DWord),
		asm.StoreMem(asm.R9, scratchOff*8, asm.R1, asm.DWord),
	)
	g.place(noHBH)
}

// ipv6Exits emits the IPv6 loop callbacks after the program's exits.
func (g *gen) ipv6Exits() {
	g.cur = -1
	if btf.FuncMetadata(&g.insns[0]) == nil {
		// bpf_loop wants BTF func_info for the program's functions.
		g.insns[0] = btf.WithFuncMetadata(g.insns[0], mainFuncBTF(g.opts.Name))
	}
	g.hbhCallback()
	g.extHdrCallback()
}

// callbackEntry starts a bpf_loop callback named name: R6 = context, R7
// = data, R8 = data_end, R9 = the counter value.
func (g *gen) callbackEntry(name string) {
	vp := &btf.Pointer{Target: &btf.Void{}}
	i64 := &btf.Int{Name: "long", Size: 8, Encoding: btf.Signed}
	g.place(name)
	g.emit(
		btf.WithFuncMetadata(asm.Mov.Reg(asm.R6, asm.R2), &btf.Func{Name: name, Linkage: btf.StaticFunc,
			Type: &btf.FuncProto{Return: i64, Params: []btf.FuncParam{{Name: "index", Type: &btf.Int{Name: "u32", Size: 4}},
				{Name: "ctx", Type: vp}}}}),
		asm.LoadMem(asm.R3, asm.R6, loopCtxXDP, asm.DWord),
		asm.LoadMem(asm.R7, asm.R3, 0, asm.Word), // data
		asm.LoadMem(asm.R8, asm.R3, 4, asm.Word), // data_end
		asm.LoadMem(asm.R9, asm.R6, loopCtxVal, asm.DWord),
	)
}

// hbhCallback is one step of ip6_parse_tlv's loop: the option at hbhOff
// (R1), before hbhEnd (R2). It returns 0 to go on, or 1 with the status
// set.
func (g *gen) hbhCallback() {
	ok, bad, abort, advance := g.label(), g.label(), g.label(), g.label()
	notPad1, option, ra, ioam, jumbo := g.label(), g.label(), g.label(), g.label(), g.label()
	g.note("hop-by-hop option callback (ip6_parse_tlv): R6 = context, R7 = data, R8 = data_end, R9 = counter value")
	g.callbackEntry(hbhCallback)
	g.note("R1 = option offset from the IPv6 header, R2 = the header's end (a call is made only before it; checked all the same)")
	g.emit(
		asm.LoadMem(asm.R1, asm.R9, hbhOff, asm.DWord),
		asm.LoadMem(asm.R2, asm.R9, hbhEnd, asm.DWord),
		asm.JGE.Reg(asm.R1, asm.R2, ok),
	)
	g.note("R7 = the option (the L3 offset and the option's are below 16 KiB for the verifier)")
	g.emit(
		asm.LoadMem(asm.R0, asm.R9, scratchL3Off*8, asm.DWord),
		asm.JGT.Imm(asm.R0, maxFrameOff, abort),
		asm.JGT.Imm(asm.R1, maxFrameOff, abort),
		asm.Add.Reg(asm.R7, asm.R0),
		asm.Add.Reg(asm.R7, asm.R1),
		asm.Mov.Reg(asm.R0, asm.R7),
		asm.Add.Imm(asm.R0, 1),
		asm.JGT.Reg(asm.R0, asm.R8, abort),
	)
	g.note("R3 = type, R4 = padding bytes in a row; Pad1: one more, at most 7")
	padDone := g.label()
	g.emit(
		asm.LoadMem(asm.R3, asm.R7, 0, asm.Byte),
		asm.LoadMem(asm.R4, asm.R9, hbhPad, asm.DWord),
		asm.JNE.Imm(asm.R3, tlvPad1, notPad1),
		asm.Add.Imm(asm.R4, 1),
		asm.JGT.Imm(asm.R4, maxHopPad, bad),
		asm.Mov.Imm(asm.R0, 1),
	)
	// The Pad1 options that follow, up to the longest run allowed, in
	// the same call (each is exactly the step above: one more padding
	// byte, at most 7); the run stops at another option, the header's
	// end or the buffer's, where the next call picks it up. An
	// attacker's header of Pad1 runs costs a call per run, not per byte.
	g.note("the Pad1 options that follow, in this call")
	for j := int32(1); j < maxHopPad+1; j++ {
		g.emit(
			asm.Mov.Reg(asm.R5, asm.R1),
			asm.Add.Imm(asm.R5, j),
			asm.JGE.Reg(asm.R5, asm.R2, padDone),
			asm.Mov.Reg(asm.R5, asm.R7),
			asm.Add.Imm(asm.R5, j+1),
			asm.JGT.Reg(asm.R5, asm.R8, padDone),
			asm.LoadMem(asm.R5, asm.R7, int16(j), asm.Byte),
			asm.JNE.Imm(asm.R5, tlvPad1, padDone),
			asm.Add.Imm(asm.R4, 1),
			asm.JGT.Imm(asm.R4, maxHopPad, bad),
			asm.Mov.Imm(asm.R0, j+1),
		)
	}
	g.place(padDone)
	g.emit(
		asm.StoreMem(asm.R9, hbhPad, asm.R4, asm.DWord),
		asm.Ja.Label(advance),
	)
	g.place(notPad1)
	g.note("a TLV: its length byte and R0 = 2 + length within the header (R5 = bytes left)")
	g.emit(
		asm.Mov.Reg(asm.R5, asm.R2),
		asm.Sub.Reg(asm.R5, asm.R1),
		asm.JLT.Imm(asm.R5, 2, bad),
		asm.Mov.Reg(asm.R0, asm.R7),
		asm.Add.Imm(asm.R0, 2),
		asm.JGT.Reg(asm.R0, asm.R8, abort),
		asm.LoadMem(asm.R0, asm.R7, 1, asm.Byte),
		asm.Add.Imm(asm.R0, 2),
		asm.JGT.Reg(asm.R0, asm.R5, bad),
		asm.JNE.Imm(asm.R3, tlvPadN, option),
	)
	g.note("PadN: counts as padding (at most 7 bytes in a row, so at most 5 data bytes), and its data bytes are zeros")
	g.emit(
		asm.Add.Reg(asm.R4, asm.R0),
		asm.JGT.Imm(asm.R4, maxHopPad, bad),
		asm.StoreMem(asm.R9, hbhPad, asm.R4, asm.DWord),
	)
	for j := int32(0); j < maxHopPad-2; j++ {
		g.emit(
			asm.JLE.Imm(asm.R0, j+2, advance),
			asm.Mov.Reg(asm.R5, asm.R7),
			asm.Add.Imm(asm.R5, j+3),
			asm.JGT.Reg(asm.R5, asm.R8, abort),
			asm.LoadMem(asm.R5, asm.R7, int16(j+2), asm.Byte),
			asm.JNE.Imm(asm.R5, 0, bad),
		)
	}
	g.emit(asm.Ja.Label(advance))
	g.place(option)
	g.note("any other option: at most 8 (max_hbh_opts_cnt), and it ends a run of padding")
	g.emit(
		asm.LoadMem(asm.R4, asm.R9, hbhCount, asm.DWord),
		asm.Add.Imm(asm.R4, 1),
		asm.JGT.Imm(asm.R4, maxHopOpts, bad),
		asm.StoreMem(asm.R9, hbhCount, asm.R4, asm.DWord),
		asm.Mov.Imm(asm.R4, 0),
		asm.StoreMem(asm.R9, hbhPad, asm.R4, asm.DWord),
		asm.JEq.Imm(asm.R3, tlvRouterAlert, ra),
		asm.JEq.Imm(asm.R3, tlvIOAM, ioam),
		asm.JEq.Imm(asm.R3, tlvJumbo, jumbo),
	)
	g.note("CALIPSO: calipso_validate finds no DOI, dropped; unknown: the top two type bits, only 00 skips (ip6_tlvopt_unknown)")
	g.emit(
		asm.JEq.Imm(asm.R3, tlvCALIPSO, bad),
		asm.And.Imm(asm.R3, 0xc0),
		asm.JNE.Imm(asm.R3, 0, bad),
		asm.Ja.Label(advance),
	)
	g.place(ra)
	g.note("router alert: length 2")
	g.emit(
		asm.LoadMem(asm.R4, asm.R7, 1, asm.Byte),
		asm.JNE.Imm(asm.R4, 2, bad),
		asm.Ja.Label(advance),
	)
	g.place(ioam)
	g.note("IOAM: 4-byte aligned from the IPv6 header, else dropped (ignored while ioam6_enabled is 0)")
	g.emit(
		asm.Mov.Reg(asm.R4, asm.R1),
		asm.And.Imm(asm.R4, 3),
		asm.JNE.Imm(asm.R4, 0, bad),
		asm.Ja.Label(advance),
	)
	g.place(jumbo)
	g.note("jumbo payload (ipv6_hop_jumbo): length 4 at 4n+2, a length over IPV6_MAXPLEN with a zero payload length field, within the datagram; it becomes the datagram's length")
	g.emit(
		asm.LoadMem(asm.R4, asm.R7, 1, asm.Byte),
		asm.JNE.Imm(asm.R4, 4, bad),
		asm.Mov.Reg(asm.R4, asm.R1),
		asm.And.Imm(asm.R4, 3),
		asm.JNE.Imm(asm.R4, 2, bad),
		asm.Mov.Reg(asm.R5, asm.R7),
		asm.Add.Imm(asm.R5, 6),
		asm.JGT.Reg(asm.R5, asm.R8, abort),
		asm.LoadMem(asm.R4, asm.R7, 2, asm.Word),
		asm.HostTo(asm.BE, asm.R4, asm.Word),
		asm.JLE.Imm(asm.R4, ipv6MaxPayload, bad),
		asm.LoadMem(asm.R5, asm.R9, hbhPlen, asm.DWord),
		asm.JNE.Imm(asm.R5, 0, bad),
		asm.LoadMem(asm.R5, asm.R9, hbhLen, asm.DWord),
		asm.Sub.Imm(asm.R5, packet.IPv6HeaderSize),
		asm.JGT.Reg(asm.R4, asm.R5, bad),
		asm.Add.Imm(asm.R4, packet.IPv6HeaderSize),
		asm.StoreMem(asm.R9, hbhLen, asm.R4, asm.DWord),
	)
	g.place(advance)
	g.note("next option: R1 + R0; at the header's end, the options are valid (one call less)")
	g.emit(
		asm.Add.Reg(asm.R1, asm.R0),
		asm.StoreMem(asm.R9, hbhOff, asm.R1, asm.DWord),
		asm.JGE.Reg(asm.R1, asm.R2, ok),
		asm.Mov.Imm(asm.R0, 0),
		asm.Return(),
	)
	for _, end := range []struct {
		label  string
		status int32
		what   string
	}{{ok, hbhOK, "valid options"}, {bad, hbhBad, "ip6_parse_tlv fails"}, {abort, hbhAbort, "a byte outside the XDP buffer: cannot happen"}} {
		g.place(end.label)
		g.note("%s: status %d, stop", end.what, end.status)
		g.emit(
			asm.Mov.Imm(asm.R0, end.status),
			asm.StoreMem(asm.R9, hbhStatus, asm.R0, asm.DWord),
			asm.Mov.Imm(asm.R0, 1),
			asm.Return(),
		)
	}
}
