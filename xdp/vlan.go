package xdp

import (
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"

	"github.com/sluice-project/sluice/packet"
)

// VLAN tag stacks of any depth.
//
// packet.Decoder strips every 802.1Q and 802.1ad tag in front of the
// network header, as __netif_receive_skb_core does round after round: a
// tag cut short is MalformedTruncatedL2, and the first non-zero id
// decides the frame's VLAN (a priority tag, id 0, is stripped and the
// next looked at). The engine leaves a frame tagged for a VLAN (NumVLANs
// > 0 and VLAN != 0) unfiltered, after the network header's own checks:
// that VLAN's device would get it, not this interface's rules. Only
// "is some id non-zero" matters, so the program keeps the OR of the ids
// (sVLAN).
//
// The number of tags is bounded by the frame alone, so the program walks
// them with bpf_loop, one tag per call of vlanCallback, for as many calls
// as the frame has 4-byte words: the verifier walks one tag's code,
// whatever the stack. An untagged frame does not call it. Before this
// walk, frames with more than 2 tags were a whole-packet fallback site,
// which every rule is reachable from (reach.go): it kept every rate limit
// out of the program in the combined tier.
//
// The walk's state lives in map memory, scratch slots that are free
// while the Ethernet header is parsed (as hopopts.go does), so that
// every call starts in the same verifier state.
const (
	vlOff      = scratchL3Off * 8 // offset of the next tag's TCI (after its TPID)
	vlType     = scratchNH * 8    // the EtherType after the last tag read (as loaded)
	vlIDs      = scratchProto * 8 // OR of the ids read
	vlStatus   = scratchFound * 8 // vlRunning, vlDone, vlTruncated or vlAbort
	vlCallback = "vlan_cb"
)

// vlStatus values.
const (
	vlRunning   = iota
	vlDone      // vlType is not a VLAN TPID: the network header is at vlOff
	vlTruncated // a tag cut short: MalformedTruncatedL2
	vlAbort     // an offset beyond what the verifier accepts: cannot happen
)

// vlanTags strips the VLAN tags of a frame whose EtherType (as loaded)
// is in R2, R5 = 14: it leaves R2 = the EtherType after the tags, R5 =
// the network header's offset, sVLAN = the OR of the ids, and goes to
// done. R7 is data, R8 data_end; R1-R4 are clobbered.
func (g *gen) vlanTags(done string) {
	tagged := g.label()
	g.note("VLAN tag (802.1Q or 802.1ad)? An untagged frame goes straight on")
	g.emit(
		asm.JEq.Imm(asm.R2, int32(swap16(packet.EtherTypeVLAN)), tagged),
		asm.JNE.Imm(asm.R2, int32(swap16(packet.EtherTypeQinQ)), done),
	)
	g.place(tagged)
	g.note("tagged: walk the stack in map memory, first TCI at 14, no id yet")
	g.emit(
		asm.Mov.Imm(asm.R1, packet.EthernetMinSize),
		asm.StoreMem(asm.R9, vlOff, asm.R1, asm.DWord),
		asm.Mov.Imm(asm.R1, 0),
		asm.StoreMem(asm.R9, vlIDs, asm.R1, asm.DWord),
		asm.StoreMem(asm.R9, vlStatus, asm.R1, asm.DWord),
	)
	g.loopContext()
	g.note("bpf_loop(frame length / 4 + 1, %s, &context, 0): one tag per call, and each takes 4 bytes", vlCallback)
	g.emit(
		asm.Mov.Reg(asm.R1, asm.R8),
		asm.Sub.Reg(asm.R1, asm.R7),
		asm.RSh.Imm(asm.R1, 2),
		asm.Add.Imm(asm.R1, 1),
	)
	g.bpfLoop(vlCallback)
	g.note("the walk's result: a tag cut short is truncated_l2 (skb_vlan_untag cannot pull it)")
	g.emit(asm.LoadMem(asm.R1, asm.R9, vlStatus, asm.DWord))
	g.malformedIf(asm.JEq.Imm(asm.R1, vlTruncated, ""), packet.MalformedTruncatedL2)
	g.jfar(asm.JNE.Imm(asm.R1, vlDone, ""), lAbort)
	g.emit(
		asm.LoadMem(asm.R1, asm.R9, vlIDs, asm.DWord),
		asm.StoreMem(asm.R10, sVLAN, asm.R1, asm.DWord),
		asm.LoadMem(asm.R2, asm.R9, vlType, asm.DWord),
		asm.LoadMem(asm.R5, asm.R9, vlOff, asm.DWord),
	)
	g.ja(done)
	g.vlanUsed = true
}

// vlanExits emits the VLAN callback after the program's exits, when
// parseL2 calls it.
func (g *gen) vlanExits() {
	if !g.vlanUsed {
		return
	}
	g.cur = -1
	if btf.FuncMetadata(&g.insns[0]) == nil {
		// bpf_loop wants BTF func_info for the program's functions.
		g.insns[0] = btf.WithFuncMetadata(g.insns[0], mainFuncBTF(g.opts.Name))
	}
	g.vlanCallback()
}

// vlanCallback is one round of __netif_receive_skb_core's untagging:
// the tag whose TCI is at vlOff. It returns 0 to go on to the next tag,
// or 1 with the status set.
func (g *gen) vlanCallback() {
	trunc, abort, next, end := g.label(), g.label(), g.label(), g.label()
	g.note("VLAN tag callback: R6 = context, R7 = data, R8 = data_end, R9 = counter value")
	g.callbackEntry(vlCallback)
	g.note("R7 = the TCI (its offset below 16 KiB for the verifier); it and the next EtherType within the frame")
	g.emit(
		asm.LoadMem(asm.R1, asm.R9, vlOff, asm.DWord),
		asm.JGT.Imm(asm.R1, maxFrameOff, abort),
		asm.Add.Reg(asm.R7, asm.R1),
		asm.Mov.Reg(asm.R2, asm.R7),
		asm.Add.Imm(asm.R2, packet.VLANTagSize),
		asm.JGT.Reg(asm.R2, asm.R8, trunc),
	)
	g.note("ids |= the tag's id; the next EtherType; the next tag's TCI 4 bytes on")
	g.emit(
		asm.LoadMem(asm.R3, asm.R7, 0, asm.Half),
		asm.HostTo(asm.BE, asm.R3, asm.Half),
		asm.And.Imm(asm.R3, 0x0fff),
		asm.LoadMem(asm.R4, asm.R9, vlIDs, asm.DWord),
		asm.Or.Reg(asm.R4, asm.R3),
		asm.StoreMem(asm.R9, vlIDs, asm.R4, asm.DWord),
		asm.LoadMem(asm.R2, asm.R7, 2, asm.Half),
		asm.StoreMem(asm.R9, vlType, asm.R2, asm.DWord),
		asm.Add.Imm(asm.R1, packet.VLANTagSize),
		asm.StoreMem(asm.R9, vlOff, asm.R1, asm.DWord),
		asm.JEq.Imm(asm.R2, int32(swap16(packet.EtherTypeVLAN)), next),
		asm.JEq.Imm(asm.R2, int32(swap16(packet.EtherTypeQinQ)), next),
		asm.Mov.Imm(asm.R1, vlDone),
	)
	g.ja(end)
	g.place(trunc)
	g.emit(asm.Mov.Imm(asm.R1, vlTruncated))
	g.ja(end)
	g.place(abort)
	g.emit(asm.Mov.Imm(asm.R1, vlAbort))
	g.place(end)
	g.emit(
		asm.StoreMem(asm.R9, vlStatus, asm.R1, asm.DWord),
		asm.Mov.Imm(asm.R0, 1),
		asm.Return(),
	)
	g.place(next)
	g.emit(asm.Mov.Imm(asm.R0, 0), asm.Return())
}
