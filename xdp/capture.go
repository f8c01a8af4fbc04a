package xdp

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// Capture in the XDP tier (CompileOptions.Capture).
//
// A program compiled with Capture can copy the frames it judges to
// userspace, for `sluice capture`, while a capture is active. Two maps,
// meant to be shared by every program the daemon loads (reloads included,
// see Spec.LoadShared), carry it:
//
//   - cap_ctl, an array of one CaptureCtl: which verdicts to copy (0: no
//     capture, the normal state), at most four deciding rules (Spec.Rules
//     indexes + 1; none: any), the per-CPU rate bound and the snap length;
//   - cap_events, a BPF_MAP_TYPE_PERF_EVENT_ARRAY the program writes each
//     copied frame to with bpf_perf_event_output: a CaptureRecord followed
//     by the frame's first CapLen bytes (the kernel copies them from the
//     xdp_buff: BPF_F_CTXLEN_MASK).
//
// Every verdict exit (accepted, dropped, hotdrop, not filtered, each
// malformed reason) runs the capture block before it returns: it reads
// and clears the deciding rule (the last ACCEPT or DROP rule that matched,
// as engine.Worker.LastRule has it, kept in a trailing slot of the per-CPU
// counter value), looks cap_ctl up, and when the verdict and the rule are
// selected, takes a token from a per-CPU bucket (RatePerCPU tokens a
// second, in two more trailing slots; bpf_ktime_get_ns) and outputs the
// record. A frame selected with no token left counts in the CapMissed
// slot. Frames handed to userspace at a fallback site are not copied
// here: the userspace worker that resumes them offers them to the capture
// session itself.
//
// When no capture is active the block costs one array lookup and a
// compare per frame.

// CaptureRecord is what precedes a copied frame in a cap_events sample,
// in host byte order.
type CaptureRecord struct {
	// TimeNs is bpf_ktime_get_ns (CLOCK_MONOTONIC) when the frame was
	// judged.
	TimeNs uint64
	// Rule is the deciding rule's index in Spec.Rules plus one, 0 when no
	// rule decided (a policy, not filtered, malformed).
	Rule uint32
	// Verdict is one of the Capture* verdicts.
	Verdict uint16
	// Gen is CompileOptions.Generation of the program that wrote it.
	Gen uint8
	_   uint8
	// OrigLen is the frame's length; CapLen the bytes that follow.
	OrigLen uint32
	CapLen  uint32
}

// CaptureRecordSize is the encoded size of a CaptureRecord.
const CaptureRecordSize = 24

// Verdicts in a CaptureRecord. Malformed frames carry
// CaptureMalformed + the packet.Malformed reason.
const (
	CaptureAccepted    = 1
	CaptureDropped     = 2
	CaptureHotdropped  = 3
	CaptureNotFiltered = 4
	CaptureMalformed   = 16
)

// CaptureDrops reports whether a record's verdict is a drop (rule or
// policy, hotdrop, malformed), the frames `sluice capture --dropped` wants.
func CaptureDrops(verdict uint16) bool {
	return verdict != CaptureAccepted && verdict != CaptureNotFiltered
}

// CaptureCtl is the cap_ctl value.
type CaptureCtl struct {
	// Mask selects verdicts: CtlDropped, CtlAccepted; 0 stops capturing.
	Mask uint32
	// RatePerCPU bounds the frames copied per second on each CPU.
	RatePerCPU uint32
	// Snaplen bounds the bytes copied per frame (at most CaptureMaxSnap).
	Snaplen uint32
	// Rules, when Rules[0] != 0, select the deciding rule: Spec.Rules
	// index + 1 of each wanted rule, unused entries 0.
	Rules [4]uint32
	_     uint32
}

// CaptureCtl.Mask bits.
const (
	CtlDropped  = 1
	CtlAccepted = 2
)

// CaptureMaxSnap is the largest snap length the program copies.
const CaptureMaxSnap = 0xffff

// Names of the capture maps in the program.
const (
	capCtlRef    = "cap_ctl"
	capEventsRef = "cap_events"
)

// Stack area of the capture block: below anything the rest of the program
// uses (its parsed-packet slots sit at the top of the 512-byte stack).
const (
	capStackRec = -512 + 8 // CaptureRecord, 24 bytes
	capStackKey = -512     // map key 0
	capStackTmp = capStackRec + CaptureRecordSize
)

// Trailing slots of the counter value (indexes past the counters).
type capSlots struct {
	rule, last, tokens, missed int
}

// CaptureSpec is what a program compiled with Capture adds to its Spec.
type CaptureSpec struct {
	// Ctl and Events are the specs of cap_ctl and cap_events.
	Ctl, Events *ebpf.MapSpec
	// Missed is the counter index of the frames selected but not copied
	// (no token left, or the perf buffer full).
	Missed int
	// Generation is CompileOptions.Generation.
	Generation uint8

	slots capSlots
}

// CaptureMapSpecs returns fresh specs of the two capture maps, for
// creating the maps programs share (NewCaptureMaps on Linux).
func CaptureMapSpecs() (ctl, events *ebpf.MapSpec) {
	ctl = &ebpf.MapSpec{Name: "sluice_capctl", Type: ebpf.Array, KeySize: 4, ValueSize: 32, MaxEntries: 1}
	events = &ebpf.MapSpec{Name: "sluice_capev", Type: ebpf.PerfEventArray, KeySize: 4, ValueSize: 4}
	return ctl, events
}

// numCaptureSlots are the counter slots capture uses (capSlots), right
// after the statistics (gen.capBase).
const numCaptureSlots = 4

// captureReset allocates the capture slots (capBase) and clears
// the deciding rule: called at the end of the prologue (R9 = counters).
func (g *gen) captureReset() {
	if !g.opts.Capture {
		return
	}
	b := g.capBase
	cs := capSlots{rule: b, last: b + 1, tokens: b + 2, missed: b + 3}
	ctl, ev := CaptureMapSpecs()
	g.spec.Capture = &CaptureSpec{Ctl: ctl, Events: ev, Missed: cs.missed, Generation: g.opts.Generation, slots: cs}
	g.note("capture: no rule decided yet")
	g.emit(asm.StoreImm(asm.R9, int16(cs.rule*8), 0, asm.Word))
}

// captureRule records rule index ri as the deciding rule (an ACCEPT or
// DROP rule matched).
func (g *gen) captureRule(ri int32) {
	if g.spec.Capture == nil {
		return
	}
	g.emit(asm.StoreImm(asm.R9, int16(g.spec.Capture.slots.rule*8), int64(ri)+1, asm.Word))
}

// captureExit emits the capture block of one verdict exit; it falls
// through to the exit's return. R6 = ctx, R9 = counters; R0-R5 are
// clobbered.
func (g *gen) captureExit(verdict int) {
	if !g.opts.Capture || g.spec.Capture == nil {
		return
	}
	mask := int32(CtlAccepted)
	if CaptureDrops(uint16(verdict)) {
		mask = CtlDropped
	}
	done, ruleOK, miss, have, short := g.label(), g.label(), g.label(), g.label(), g.label()
	cs := g.spec.Capture.slots
	ruleOff := int16(cs.rule * 8)
	g.note("capture (%s): copy the frame to cap_events when a capture selects it", captureVerdictName(verdict))
	g.emit(
		asm.LoadMem(asm.R1, asm.R9, ruleOff, asm.Word),
		asm.StoreImm(asm.R9, ruleOff, 0, asm.Word),
		asm.StoreMem(asm.R10, capStackRec+8, asm.R1, asm.Word),
		asm.StoreImm(asm.R10, capStackKey, 0, asm.Word),
		asm.LoadMapPtr(asm.R1, 0).WithReference(capCtlRef),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, capStackKey),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, done),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.Word),
		asm.And.Imm(asm.R1, mask),
		asm.JEq.Imm(asm.R1, 0, done),
		// Rule selection: Rules[0] == 0 takes any.
		asm.LoadMem(asm.R2, asm.R10, capStackRec+8, asm.Word),
		asm.LoadMem(asm.R1, asm.R0, 12, asm.Word),
		asm.JEq.Imm(asm.R1, 0, ruleOK),
		asm.JEq.Reg(asm.R1, asm.R2, ruleOK),
	)
	for i := int16(1); i < 4; i++ {
		g.emit(
			asm.LoadMem(asm.R1, asm.R0, 12+4*i, asm.Word),
			asm.JEq.Imm(asm.R1, 0, done),
			asm.JEq.Reg(asm.R1, asm.R2, ruleOK),
		)
	}
	g.ja(done)
	g.place(ruleOK)
	g.emit(
		// rate and snaplen, kept across the calls
		asm.LoadMem(asm.R1, asm.R0, 4, asm.Word),
		asm.StoreMem(asm.R10, capStackTmp, asm.R1, asm.Word),
		asm.LoadMem(asm.R1, asm.R0, 8, asm.Word),
		asm.StoreMem(asm.R10, capStackTmp+4, asm.R1, asm.Word),
		// per-CPU token bucket: refilled to the rate once a second
		asm.FnKtimeGetNs.Call(),
		asm.StoreMem(asm.R10, capStackRec, asm.R0, asm.DWord),
		asm.LoadMem(asm.R1, asm.R9, int16(cs.last*8), asm.DWord),
		asm.Mov.Reg(asm.R2, asm.R0),
		asm.Sub.Reg(asm.R2, asm.R1),
		asm.JLT.Imm(asm.R2, 1_000_000_000, have),
	)
	g.emit(
		asm.StoreMem(asm.R9, int16(cs.last*8), asm.R0, asm.DWord),
		asm.LoadMem(asm.R1, asm.R10, capStackTmp, asm.Word),
		asm.StoreMem(asm.R9, int16(cs.tokens*8), asm.R1, asm.DWord),
	)
	g.place(have)
	g.emit(
		asm.LoadMem(asm.R1, asm.R9, int16(cs.tokens*8), asm.DWord),
		asm.JEq.Imm(asm.R1, 0, miss),
		asm.Sub.Imm(asm.R1, 1),
		asm.StoreMem(asm.R9, int16(cs.tokens*8), asm.R1, asm.DWord),
		// the record: verdict, generation, lengths
		asm.StoreImm(asm.R10, capStackRec+12, int64(verdict)|int64(g.opts.Generation)<<16, asm.Word),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.FnXdpGetBuffLen.Call(),
		asm.StoreMem(asm.R10, capStackRec+16, asm.R0, asm.Word),
		// caplen = min(len, snaplen, CaptureMaxSnap)
		asm.LoadMem(asm.R1, asm.R10, capStackTmp+4, asm.Word),
		asm.JLE.Reg(asm.R0, asm.R1, short),
	)
	g.emit(asm.Mov.Reg(asm.R0, asm.R1))
	g.place(short)
	g.emit(
		asm.And.Imm(asm.R0, CaptureMaxSnap),
		asm.StoreMem(asm.R10, capStackRec+20, asm.R0, asm.Word),
		// bpf_perf_event_output(ctx, cap_events, caplen<<32 | BPF_F_CURRENT_CPU, &rec, 24)
		asm.Mov.Reg(asm.R3, asm.R0),
		asm.LSh.Imm(asm.R3, 32),
		asm.LoadImm(asm.R1, 0xffffffff, asm.DWord),
		asm.Or.Reg(asm.R3, asm.R1),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.LoadMapPtr(asm.R2, 0).WithReference(capEventsRef),
		asm.Mov.Reg(asm.R4, asm.R10),
		asm.Add.Imm(asm.R4, capStackRec),
		asm.Mov.Imm(asm.R5, CaptureRecordSize),
		asm.FnPerfEventOutput.Call(),
		asm.JEq.Imm(asm.R0, 0, done),
	)
	g.place(miss)
	g.incr(cs.missed)
	g.place(done)
	// The exit's own instructions follow: a label needs one to land on.
}

func captureVerdictName(v int) string {
	switch v {
	case CaptureAccepted:
		return "accepted"
	case CaptureDropped:
		return "dropped"
	case CaptureHotdropped:
		return "hotdrop"
	case CaptureNotFiltered:
		return "not filtered"
	}
	return "malformed"
}

// isCaptureRef reports whether a map reference is a capture map's.
func isCaptureRef(ref string) bool { return ref == capCtlRef || ref == capEventsRef }

// DecodeCaptureSample splits a cap_events sample into its record and the
// copied bytes.
func DecodeCaptureSample(raw []byte) (CaptureRecord, []byte, error) {
	var r CaptureRecord
	if len(raw) < CaptureRecordSize {
		return r, nil, errors.New("xdp: short capture sample")
	}
	e := binary.NativeEndian
	r.TimeNs = e.Uint64(raw[0:])
	r.Rule = e.Uint32(raw[8:])
	vg := e.Uint32(raw[12:])
	r.Verdict, r.Gen = uint16(vg), uint8(vg>>16)
	r.OrigLen = e.Uint32(raw[16:])
	r.CapLen = e.Uint32(raw[20:])
	data := raw[CaptureRecordSize:]
	if int(r.CapLen) > len(data) {
		return r, nil, fmt.Errorf("xdp: capture sample holds %d bytes, its record says %d", len(data), r.CapLen)
	}
	return r, data[:r.CapLen], nil
}

// EncodeCaptureCtl is the cap_ctl value's bytes.
func EncodeCaptureCtl(c CaptureCtl) []byte {
	b := make([]byte, 32)
	e := binary.NativeEndian
	e.PutUint32(b[0:], c.Mask)
	e.PutUint32(b[4:], c.RatePerCPU)
	e.PutUint32(b[8:], min(c.Snaplen, CaptureMaxSnap))
	for i, r := range c.Rules {
		e.PutUint32(b[12+4*i:], r)
	}
	return b
}

// RuleRef finds the rules `sluice capture --rule [TABLE:]CHAIN:N` names:
// their indexes in Spec.Rules (one per family and table that has it).
func (s *Spec) RuleRef(table, chain string, n int) []int {
	var out []int
	pos := map[[3]string]int{}
	for i, ri := range s.Rules {
		k := [3]string{ri.Family.String(), ri.Table, ri.Chain}
		pos[k]++
		if ri.Chain == chain && (table == "" || ri.Table == table) && pos[k] == n {
			out = append(out, i)
		}
	}
	return out
}

// RulePosition returns the table, chain and 1-based position of rule
// index i of Spec.Rules.
func (s *Spec) RulePosition(i int) (table, chain string, n int, ok bool) {
	if i < 0 || i >= len(s.Rules) {
		return "", "", 0, false
	}
	ri := s.Rules[i]
	for j := 0; j <= i; j++ {
		if o := s.Rules[j]; o.Family == ri.Family && o.Table == ri.Table && o.Chain == ri.Chain {
			n++
		}
	}
	return ri.Table, ri.Chain, n, true
}

// SiteGenFromMeta reads the fallback metadata of a program compiled with
// CompileOptions.Generation: the site (low 24 bits) and the generation
// (top byte).
func SiteGenFromMeta(meta []byte) (site int, gen uint8, ok bool) {
	v, ok := SiteFromMeta(meta)
	if !ok {
		return 0, 0, false
	}
	return v & 0xffffff, uint8(uint32(v) >> 24), true
}
