package xdp

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf/asm"

	"github.com/sluice-project/sluice/engine/cbpf"
)

// This file translates the classic BPF programs of "-m bpf --bytecode" into
// eBPF that runs inline in an XDP program, with the semantics of
// engine/cbpf's (*Filter).Run, which are those of the kernel's converted
// program (net/core/filter.c bpf_convert_filter) under xt_bpf.
//
// Register use inside the translated code (R0-R5 are clobbered, R6-R9 and
// the stack outside the scratch cells are preserved):
//
//	R0  A (always a zero-extended 32-bit value); the result at opts.Done
//	R1  X (likewise)
//	R2  the datagram length, read from opts.L3Len
//	R3  ctx->data + L3 offset: a packet pointer to the network header
//	R4  temporary: the offset of a load, then data_end
//	R5  temporary: end of a load
//
// The program is translated twice. The first copy reads the packet
// directly: a load is free to use whichever of A and X it overwrites as
// the register that receives the packet pointer, so no live value is ever
// spilled. Every load is checked twice, in this order:
//
//  1. against the datagram length (R2): offset+size > len is the classic
//     out-of-bounds load, the program returns 0 (so Ethernet padding after
//     the IPv4 total length is never read, exactly as the classic program
//     sees only skb->len bytes);
//  2. against what direct packet access can reach: the verifier needs
//     packet offsets it can bound, so a network header beyond
//     CBPFMaxL3Off, a datagram offset beyond CBPFMaxOffset, or a byte past
//     data_end (a truncated frame, a multi-buffer frame) cannot be read
//     there.
//
// What the first copy cannot read, the second one does: the same program,
// every load through the bpf_xdp_load_bytes helper (Linux 5.18), which
// copies bytes at any offset of the frame to the stack. A load of the
// first copy that fails check 2 jumps to the same load in the second copy
// (A, X, M[] and the length are the same there), a network header beyond
// CBPFMaxL3Off runs the second copy from the start, and evaluation goes on
// there to the end. The helper call clobbers R0-R5: the one of A and X
// the load does not overwrite is spilled across it, the length read again.
// Only when the helper fails too — the byte is not in the frame at all —
// is the result unknown: the code jumps to opts.Abort for the caller to
// hand the packet to userspace. A caller that has checked that the
// datagram lies in the frame sets opts.InBuffer: that cannot happen, and
// no Abort is emitted.
//
// Classic BPF has forward jumps only, so the translation does too. Classic
// instructions no path reaches are not translated (the verifier refuses
// unreachable code), and neither is anything after a load that can only
// return 0 (or, in the first copy, that always needs the second).

// CBPFMaxOffset is the largest datagram offset a translated load reads by
// direct packet access; a load further in (but inside the datagram) goes
// through bpf_xdp_load_bytes. With CBPFMaxL3Off it keeps every packet
// pointer within the verifier's MAX_PACKET_OFF (0xffff).
const CBPFMaxOffset = 0xf000

// CBPFMaxL3Off is the largest network header offset at which the
// translated code reads the packet directly; beyond it (deep VLAN stacks),
// every load goes through bpf_xdp_load_bytes.
const CBPFMaxL3Off = 0x800

// CBPFLoc says where the translated code reads one of its inputs: the
// register Reg, or with Mem the 64-bit value at Reg+Off (a stack slot with
// Reg = R10, or a field of a map value). Reg must be one of R6-R10 (R10
// only with Mem): the translated code overwrites R0-R5 before it is done
// reading its inputs.
type CBPFLoc struct {
	Reg asm.Register
	Off int16
	Mem bool
}

// CBPFReg is the input held in register r.
func CBPFReg(r asm.Register) CBPFLoc { return CBPFLoc{Reg: r} }

// CBPFMem is the input stored as a DWord at base+off.
func CBPFMem(base asm.Register, off int16) CBPFLoc { return CBPFLoc{Reg: base, Off: off, Mem: true} }

func (l CBPFLoc) String() string {
	if l.Mem {
		return fmt.Sprintf("*(u64 *)(%s%+d)", l.Reg, l.Off)
	}
	return l.Reg.String()
}

// CBPFOptions says where the translated code finds the packet and where it
// goes when it is done.
type CBPFOptions struct {
	// Ctx is the register holding the struct xdp_md pointer (R6-R9);
	// ctx->data and ctx->data_end are read from it.
	Ctx asm.Register
	// L3Off holds the network header's offset from ctx->data. Any
	// scalar is accepted: the translation bounds it for the verifier
	// itself (beyond CBPFMaxL3Off, every load goes through the helper).
	L3Off CBPFLoc
	// L3Len holds the datagram length, skb->len at PREROUTING: the IPv4
	// total length, or the IPv6 payload length + 40. The classic program
	// sees exactly this many bytes from the network header.
	L3Len CBPFLoc
	// Scratch is the stack offset (from R10: negative, a multiple of 8,
	// at most -CBPFScratchSize) of the CBPFScratchSize bytes the code
	// may use: the scratch cell M[i] in the upper half of the 8-byte
	// slot at Scratch+8*i (only the cells the program uses are touched;
	// the kernel's checker guarantees each is written before it is
	// read), then a slot at Scratch+128 whose upper half values pass
	// through to hide them from the verifier (see cbLaunder) and whose
	// lower half receives the bytes bpf_xdp_load_bytes copies.
	Scratch int16
	// Done is the label the code jumps to when the program returns, with
	// its 32-bit result in R0 (zero-extended). xt_bpf matches when it is
	// not 0.
	Done string
	// Abort is the label the code jumps to when the result depends on
	// bytes of the datagram the frame does not hold (a truncated frame:
	// the datagram length says more than there is). The caller must not
	// guess a result there: hand the packet to userspace (a fallback
	// site). Required unless InBuffer.
	Abort string
	// InBuffer says that the caller has checked that the whole datagram,
	// L3Len bytes from L3Off, lies in the frame (ctx->data to data_end,
	// with no fragments beyond): then every load inside the datagram can
	// be served, directly or by bpf_xdp_load_bytes, the code never
	// aborts, and Abort is not used.
	InBuffer bool
	// Prefix starts every label the translation defines; it must be
	// unique among the translations placed in one program (default
	// "cbpf_").
	Prefix string
	// Long makes the jumps to Done and Abort 32-bit (gotol), for labels
	// more than 32767 instructions away. Jumps inside the translated code
	// are always short (TranslateCBPF fails when they cannot be).
	Long bool

	// helperOnly (tests) runs the helper copy for every network header
	// beyond offset 0, so that the differential tests exercise it on the
	// frames the direct copy would serve.
	helperOnly bool
}

// ErrCBPFOptions is wrapped by TranslateCBPF's errors about its options.
var ErrCBPFOptions = errors.New("invalid CBPFOptions")

// Classic BPF encodings (include/uapi/linux/filter.h), as engine/cbpf
// keeps them unexported.
const (
	cbLdW    = 0x00 | 0x00 | 0x20 // BPF_LD|BPF_W|BPF_ABS
	cbLdH    = 0x00 | 0x08 | 0x20
	cbLdB    = 0x00 | 0x10 | 0x20
	cbLdIndW = 0x00 | 0x00 | 0x40
	cbLdIndH = 0x00 | 0x08 | 0x40
	cbLdIndB = 0x00 | 0x10 | 0x40
	cbLdLen  = 0x00 | 0x00 | 0x80
	cbLdImm  = 0x00
	cbLdMem  = 0x60
	cbLdxLen = 0x01 | 0x80
	cbLdxMsh = 0x01 | 0x10 | 0xa0
	cbLdxImm = 0x01
	cbLdxMem = 0x01 | 0x60
	cbSt     = 0x02
	cbStx    = 0x03
	cbTax    = 0x07
	cbTxa    = 0x07 | 0x80
	cbRetK   = 0x06
	cbRetA   = 0x06 | 0x10
	cbJa     = 0x05

	cbClassALU = 0x04
	cbClassJMP = 0x05
	cbSrcX     = 0x08

	cbSkfAdOff  = -0x1000
	cbSkfNetOff = -0x100000
	cbSkfLLOff  = -0x200000
	cbAdXorX    = 40 // SKF_AD_ALU_XOR_X
)

// CBPFScratchSize is the stack CBPFOptions.Scratch reserves: 16 slots for
// M[0..15], one for laundering and the helper's buffer.
const CBPFScratchSize = 17 * 8

// cbLaunder is where values are stored and read back to hide them from the
// verifier: the upper half of an 8-byte slot. A 4-byte store that is not
// 8-aligned is no register spill: the verifier marks the bytes STACK_MISC
// and reads back an unknown 32-bit scalar, the end of any precision chain.
// M[i] lives in the upper half of its own slot for the same reason.
//
// Without it, a classic program could make the verifier's work grow
// exponentially: when a value is used as a packet offset or decides a
// branch by being a known constant, the verifier marks it precise back
// through every instruction that made it, and can then no longer merge
// paths on which it holds different constants. A 62-instruction program
// that builds X from 12 tested bits and then loads [x + 0] cost 2^12 paths,
// about 240,000 verified instructions (and the caller's code after Done
// would be verified once per path as well). So the translated code passes
// every indirect load offset through the slot, and A and X at every join
// point of the classic program (an instruction more than one path
// reaches): paths then merge there whatever constants they carried. The
// semantics are untouched: the values come back unchanged.
const cbLaunder = 16*8 + 4

// cbBuf is the stack offset (from Scratch) of the 4 bytes a load in the
// helper copy has bpf_xdp_load_bytes copy the packet's bytes to: the lower
// half of the laundering slot, whose upper half holds the spilled one of
// A and X meanwhile.
const cbBuf = 16 * 8

// cbMem is the stack offset of M[k].
func (g *cbGen) cbMem(k uint32) int16 { return g.o.Scratch + 8*int16(k&15) + 4 }

// Fixed registers of the translated code.
const (
	cbA   = asm.R0
	cbX   = asm.R1
	cbLen = asm.R2
	cbL3  = asm.R3
	cbT4  = asm.R4
	cbT5  = asm.R5
)

var cbALU = map[uint16]asm.ALUOp{
	0x00: asm.Add, 0x10: asm.Sub, 0x20: asm.Mul, 0x30: asm.Div, 0x40: asm.Or,
	0x50: asm.And, 0x60: asm.LSh, 0x70: asm.RSh, 0x90: asm.Mod, 0xa0: asm.Xor,
}

var cbALUName = map[uint16]string{
	0x00: "add", 0x10: "sub", 0x20: "mul", 0x30: "div", 0x40: "or",
	0x50: "and", 0x60: "lsh", 0x70: "rsh", 0x80: "neg", 0x90: "mod", 0xa0: "xor",
}

// Conditional jumps: the eBPF jump and its negation (JSET has none).
var cbJmp = map[uint16][2]asm.JumpOp{
	0x10: {asm.JEq, asm.JNE}, 0x20: {asm.JGT, asm.JLE}, 0x30: {asm.JGE, asm.JLT}, 0x40: {asm.JSet, asm.InvalidJumpOp},
}

var cbJmpName = map[uint16]string{0x10: "jeq", 0x20: "jgt", 0x30: "jge", 0x40: "jset"}

// cbLoad is a classic packet load resolved like engine/cbpf's Compile
// resolves it.
type cbLoad struct {
	size  int  // 1, 2 or 4
	ind   bool // offset int32(X+k), resolved at run time
	msh   bool // LDX|MSH: X = 4*(byte&0xf)
	off   uint32
	never bool // constant offset below SKF_LL_OFF: the program returns 0
}

// classify returns the load an instruction performs, whether it is one, and
// an error for what engine/cbpf.Compile would have refused.
func cbClassify(pc int, in cbpf.Instruction) (cbLoad, bool, error) {
	var l cbLoad
	switch in.Op {
	case cbLdW, cbLdH, cbLdB, cbLdxMsh:
		l.size = map[uint16]int{cbLdW: 4, cbLdH: 2, cbLdB: 1, cbLdxMsh: 1}[in.Op]
		l.msh = in.Op == cbLdxMsh
		off := int32(in.K)
		switch {
		case off >= 0:
			l.off = uint32(off)
		case off >= cbSkfAdOff && !l.msh:
			// Ancillary: Compile keeps only SKF_AD_ALU_XOR_X.
			return l, false, nil
		case off >= cbSkfNetOff:
			l.off = uint32(off - cbSkfNetOff)
		case off >= cbSkfLLOff:
			return l, false, &cbpf.UnsupportedError{Index: pc, Op: in.Op, K: in.K, Reason: "SKF_LL_OFF load reads the link-layer header"}
		default:
			l.never = true
		}
		return l, true, nil
	case cbLdIndW, cbLdIndH, cbLdIndB:
		l.size = map[uint16]int{cbLdIndW: 4, cbLdIndH: 2, cbLdIndB: 1}[in.Op]
		l.ind, l.off = true, in.K
		return l, true, nil
	}
	return l, false, nil
}

// cbGen assembles the translation: labels become symbols on the next
// instruction emitted, several labels on one instruction become aliases.
type cbGen struct {
	o       CBPFOptions
	out     asm.Instructions
	pending []string
	alias   map[string]string
	comment string
	used    map[string]bool // trampolines jumped to
	helper  bool            // emitting the copy whose loads call bpf_xdp_load_bytes
}

func (g *cbGen) lbl(s string) string { return g.o.Prefix + s }

func (g *cbGen) place(l string) { g.pending = append(g.pending, l) }

func (g *cbGen) emit(ins ...asm.Instruction) {
	for _, in := range ins {
		if len(g.pending) > 0 {
			in = in.WithSymbol(g.pending[0])
			for _, l := range g.pending[1:] {
				g.alias[l] = g.pending[0]
			}
			g.pending = g.pending[:0]
		}
		if g.comment != "" {
			in = in.WithSource(asm.Comment(g.comment))
			g.comment = ""
		}
		g.out = append(g.out, in)
	}
}

// exit jumps to a label outside the translated code.
func (g *cbGen) exit(label string) {
	if g.o.Long {
		g.emit(asm.LongJump(label))
	} else {
		g.emit(asm.Ja.Label(label))
	}
}

// ret0 and abort are the local trampolines conditional jumps go to.
func (g *cbGen) ret0() string  { g.used["ret0"] = true; return g.lbl("ret0") }
func (g *cbGen) abort() string { g.used["abort"] = true; return g.lbl("abort") }

// lost is where a load goes when bpf_xdp_load_bytes fails: the bytes are
// not in the frame. With InBuffer that cannot happen (the caller checked
// that the datagram lies in the frame, the load that its bytes lie in the
// datagram): the code returns 0 there, a path the verifier needs but no
// packet takes.
func (g *cbGen) lost() string {
	if g.o.InBuffer {
		return g.ret0()
	}
	return g.abort()
}

// read loads an input into dst, unlinked from where it came from (the OR
// with 0 gives the verifier a fresh identity, as gen.ld does): the bounds
// checks the program makes on the length would otherwise refine the
// caller's copy too, paths leaving the program with different facts about
// it could not be merged, and a ruleset of classic programs testing
// different offsets would cost the verifier a multiple of itself per rule.
func (g *cbGen) read(dst asm.Register, l CBPFLoc) {
	if l.Mem {
		g.emit(asm.LoadMem(dst, l.Reg, l.Off, asm.DWord))
	} else {
		g.emit(asm.Mov.Reg(dst, l.Reg))
	}
	if !l.Mem || l.Reg == asm.R10 {
		// (A map value's field has no identity to share.)
		g.emit(asm.Or.Imm(dst, 0))
	}
}

func cbCheckLoc(name string, l CBPFLoc) error {
	if l.Reg >= asm.R6 && l.Reg <= asm.R9 || l.Mem && l.Reg == asm.R10 {
		return nil
	}
	return fmt.Errorf("%w: %s is %s: must be R6-R9, or memory based on R6-R10", ErrCBPFOptions, name, l)
}

// TranslateCBPF translates f into eBPF for an XDP program: code that
// computes what f.Run returns on the datagram at opts.L3Off of opts.L3Len
// bytes, then jumps to opts.Done with the result in R0, or to opts.Abort
// when it would need bytes the frame does not hold (never with
// opts.InBuffer). The code clobbers R0-R5 and the scratch cells it uses,
// calls no helper but bpf_xdp_load_bytes, and jumps only forward. Its
// labels start with opts.Prefix: the caller resolves them (cilium/ebpf
// does when the code is part of a ProgramSpec; a generator with its own
// label table adds each instruction's Symbol to it).
//
// The first eBPF instruction of each classic instruction carries, as its
// Source, the classic instruction in tcpdump -d form.
func TranslateCBPF(f *cbpf.Filter, opts CBPFOptions) (asm.Instructions, error) {
	if f == nil {
		return nil, fmt.Errorf("%w: nil filter", ErrCBPFOptions)
	}
	if opts.Prefix == "" {
		opts.Prefix = "cbpf_"
	}
	switch {
	case opts.Ctx < asm.R6 || opts.Ctx > asm.R9:
		return nil, fmt.Errorf("%w: Ctx is %s: must be R6-R9", ErrCBPFOptions, opts.Ctx)
	case opts.Done == "" || opts.Abort == "" && !opts.InBuffer:
		return nil, fmt.Errorf("%w: Done and Abort labels are required (Abort unless InBuffer)", ErrCBPFOptions)
	case opts.Scratch%8 != 0 || opts.Scratch < -512 || opts.Scratch > -CBPFScratchSize:
		return nil, fmt.Errorf("%w: Scratch %d: need a multiple of 8 in [-512, -%d]", ErrCBPFOptions, opts.Scratch, CBPFScratchSize)
	}
	if err := cbCheckLoc("L3Off", opts.L3Off); err != nil {
		return nil, err
	}
	if err := cbCheckLoc("L3Len", opts.L3Len); err != nil {
		return nil, err
	}
	prog := f.Instructions()
	if len(prog) == 0 || len(prog) > cbpf.MaxInstructions {
		return nil, fmt.Errorf("%w: filter of %d instructions", ErrCBPFOptions, len(prog))
	}
	// The helper copy's flow is the classic program's; the direct copy
	// stops at loads it always hands to the helper copy.
	reachH, predsH, loads, err := cbReach(prog, false)
	if err != nil {
		return nil, err
	}
	reachD, predsD, _, _ := cbReach(prog, true)

	g := &cbGen{o: opts, alias: map[string]string{}, used: map[string]bool{}}
	g.comment = fmt.Sprintf("-m bpf: %d classic instructions; A = R0, X = R1, len = R2, R3 = network header, M[i] at R10%+d+8*i", len(prog), opts.Scratch+4)
	g.read(cbLen, opts.L3Len)
	g.read(cbL3, opts.L3Off)
	g.emit(
		asm.Mov.Imm32(cbA, 0),
		asm.Mov.Imm32(cbX, 0),
	)
	// A network header direct access cannot reach: the helper copy from
	// the start (a program without loads needs no R3 and no such copy).
	maxL3 := int32(CBPFMaxL3Off)
	if opts.helperOnly {
		maxL3 = 0
	}
	deep := g.lbl("h0")
	if !loads {
		deep = g.lbl("i0")
	}
	g.emit(
		asm.JGT.Imm(cbL3, maxL3, deep),
		asm.LoadMem(cbT4, opts.Ctx, 0, asm.Word), // ctx->data
		asm.Add.Reg(cbT4, cbL3),
		asm.Mov.Reg(cbL3, cbT4),
	)
	if err := g.copy(prog, reachD, predsD); err != nil {
		return nil, err
	}
	if loads {
		g.helper = true
		g.comment = "-m bpf: the program again, every load through bpf_xdp_load_bytes, for what direct packet access cannot reach (a network header beyond CBPFMaxL3Off, an offset beyond CBPFMaxOffset, a byte past data_end)"
		if err := g.copy(prog, reachH, predsH); err != nil {
			return nil, err
		}
	}
	if g.used["ret0"] {
		g.place(g.lbl("ret0"))
		g.comment = "-m bpf: out-of-bounds load or division by zero: return 0"
		if opts.InBuffer && g.helper {
			g.comment += " (bpf_xdp_load_bytes failing comes here too: it cannot, the datagram lies in the frame)"
		}
		g.emit(asm.Mov.Imm32(cbA, 0))
		g.exit(opts.Done)
	}
	if g.used["abort"] {
		g.place(g.lbl("abort"))
		g.comment = "-m bpf: the datagram's bytes are not all in the frame: abort"
		g.exit(opts.Abort)
	}
	if len(g.pending) > 0 {
		return nil, fmt.Errorf("internal error: labels %v at the end of the translation", g.pending)
	}
	at := map[string]int{}
	for i, in := range g.out {
		if sym := in.Symbol(); sym != "" {
			at[sym] = i
		}
	}
	for i := range g.out {
		if a, ok := g.alias[g.out[i].Reference()]; ok {
			g.out[i] = g.out[i].WithReference(a)
		}
		// Local jumps are 16-bit: the helper copy and the trampolines
		// must be in reach of every jump to them.
		if t, ok := at[g.out[i].Reference()]; ok && t-i-1 > 0x7fff {
			return nil, fmt.Errorf("the translation is too long for XDP: %d eBPF instructions, a jump over %d", len(g.out), t-i-1)
		}
	}
	return g.out, nil
}

// cbReach is the reachability over the classic program (all jumps are
// forward) and the number of edges into each instruction, with whether a
// packet load is reachable. In the direct copy (direct), a load beyond
// CBPFMaxOffset ends a path: it goes on in the helper copy.
func cbReach(prog []cbpf.Instruction, direct bool) (reach []bool, preds []int, loads bool, err error) {
	reach = make([]bool, len(prog)+1)
	preds = make([]int, len(prog)+1)
	reach[0] = true
	for pc, in := range prog {
		if !reach[pc] {
			continue
		}
		next := []int{pc + 1}
		switch {
		case in.Op == cbRetK || in.Op == cbRetA:
			next = nil
		case in.Op == cbJa:
			next = []int{pc + 1 + int(in.K)}
		case in.Op&0x07 == cbClassJMP:
			next = []int{pc + 1 + int(in.Jt), pc + 1 + int(in.Jf)}
		default:
			ld, isLoad, err := cbClassify(pc, in)
			if err != nil {
				return nil, nil, false, err
			}
			loads = loads || isLoad && !ld.never
			if isLoad && (ld.never || direct && !ld.ind && ld.off > CBPFMaxOffset) {
				next = nil // returns 0, or goes on in the helper copy
			}
		}
		for _, n := range next {
			if n >= len(prog) {
				return nil, nil, false, &cbpf.CheckError{Index: pc, Op: in.Op, Reason: "jump past the end of the program"}
			}
			reach[n] = true
			preds[n]++
		}
	}
	return reach, preds, loads, nil
}

// copy translates the reachable instructions of prog, the direct copy or
// the helper copy as g.helper says.
func (g *cbGen) copy(prog []cbpf.Instruction, reach []bool, preds []int) error {
	for pc, in := range prog {
		if !reach[pc] {
			continue
		}
		g.place(g.target(pc))
		if g.comment != "" {
			g.comment += " | "
		}
		g.comment += fmt.Sprintf("-m bpf (%03d) %s", pc, CBPFDisasm(pc, in))
		if g.helper {
			g.comment += " (helper copy)"
		}
		if preds[pc] > 1 && in.Op != cbRetK {
			// A join point: forget what the verifier knows of A and X.
			l := g.o.Scratch + cbLaunder
			g.emit(
				asm.StoreMem(asm.R10, l, cbA, asm.Word),
				asm.LoadMem(cbA, asm.R10, l, asm.Word),
				asm.StoreMem(asm.R10, l, cbX, asm.Word),
				asm.LoadMem(cbX, asm.R10, l, asm.Word),
			)
		}
		if err := g.insn(pc, in); err != nil {
			return err
		}
	}
	return nil
}

// target is the label of classic instruction pc in the copy being
// emitted; slow is that of its load in the helper copy, past the join
// point's laundering (the direct copy jumps there with A or X holding a
// packet pointer, which must not be stored as a 32-bit value).
func (g *cbGen) target(pc int) string {
	if g.helper {
		return g.lbl(fmt.Sprintf("h%d", pc))
	}
	return g.lbl(fmt.Sprintf("i%d", pc))
}

func (g *cbGen) slow(pc int) string { return g.lbl(fmt.Sprintf("h%d_ld", pc)) }

// insn translates one reachable classic instruction.
func (g *cbGen) insn(pc int, in cbpf.Instruction) error {
	k := int32(in.K)
	mem := g.cbMem(in.K)
	switch in.Op {
	case cbRetK:
		g.emit(asm.Mov.Imm32(cbA, k))
		g.exit(g.o.Done)
	case cbRetA:
		g.exit(g.o.Done)
	case cbLdImm:
		g.emit(asm.Mov.Imm32(cbA, k))
	case cbLdxImm:
		g.emit(asm.Mov.Imm32(cbX, k))
	case cbLdLen:
		g.emit(asm.Mov.Reg32(cbA, cbLen))
	case cbLdxLen:
		g.emit(asm.Mov.Reg32(cbX, cbLen))
	case cbLdMem:
		g.emit(asm.LoadMem(cbA, asm.R10, mem, asm.Word))
	case cbLdxMem:
		g.emit(asm.LoadMem(cbX, asm.R10, mem, asm.Word))
	case cbSt:
		g.emit(asm.StoreMem(asm.R10, mem, cbA, asm.Word))
	case cbStx:
		g.emit(asm.StoreMem(asm.R10, mem, cbX, asm.Word))
	case cbTax:
		g.emit(asm.Mov.Reg32(cbX, cbA))
	case cbTxa:
		g.emit(asm.Mov.Reg32(cbA, cbX))
	case cbClassALU | 0x80: // neg
		g.emit(asm.Neg.Imm32(cbA, 0))
	case cbJa:
		if t := pc + 1 + int(in.K); t != pc+1 {
			g.emit(asm.Ja.Label(g.target(t)))
		}
	default:
		switch in.Op & 0x07 {
		case cbClassALU:
			return g.alu(pc, in)
		case cbClassJMP:
			return g.jump(pc, in)
		}
		ld, isLoad, err := cbClassify(pc, in)
		if err != nil {
			return err
		}
		if !isLoad {
			if in.Op == cbLdW || in.Op == cbLdH || in.Op == cbLdB {
				if k-cbSkfAdOff == cbAdXorX {
					g.emit(asm.Xor.Reg32(cbA, cbX))
					return nil
				}
				return &cbpf.UnsupportedError{Index: pc, Op: in.Op, K: in.K, Reason: "ancillary load reads skb metadata"}
			}
			return &cbpf.CheckError{Index: pc, Op: in.Op, Reason: "opcode not allowed in classic BPF"}
		}
		g.load(pc, ld)
	}
	return nil
}

func (g *cbGen) alu(pc int, in cbpf.Instruction) error {
	op, ok := cbALU[in.Op&0xf0]
	if !ok || in.Op&^0xf8 != cbClassALU {
		return &cbpf.CheckError{Index: pc, Op: in.Op, Reason: "opcode not allowed in classic BPF"}
	}
	if in.Op&cbSrcX == 0 {
		switch op {
		case asm.Div, asm.Mod:
			if in.K == 0 {
				return &cbpf.CheckError{Index: pc, Op: in.Op, Reason: "division by constant zero"}
			}
		case asm.LSh, asm.RSh:
			if in.K >= 32 {
				return &cbpf.CheckError{Index: pc, Op: in.Op, Reason: "shift by 32 or more"}
			}
		}
		g.emit(op.Imm32(cbA, int32(in.K)))
		return nil
	}
	switch op {
	case asm.Div, asm.Mod:
		// The converted program tests X and returns 0.
		g.emit(asm.JEq.Imm32(cbX, 0, g.ret0()), op.Reg32(cbA, cbX))
	case asm.LSh, asm.RSh:
		// Shift by X & 31, as the interpreter and the JITs do.
		g.emit(asm.Mov.Reg32(cbT4, cbX), asm.And.Imm32(cbT4, 31), op.Reg32(cbA, cbT4))
	default:
		g.emit(op.Reg32(cbA, cbX))
	}
	return nil
}

func (g *cbGen) jump(pc int, in cbpf.Instruction) error {
	ops, ok := cbJmp[in.Op&0xf0]
	if !ok || in.Op&^0xf8 != cbClassJMP {
		return &cbpf.CheckError{Index: pc, Op: in.Op, Reason: "opcode not allowed in classic BPF"}
	}
	next := pc + 1
	t, f := next+int(in.Jt), next+int(in.Jf)
	cond := func(op asm.JumpOp, label string) asm.Instruction {
		if in.Op&cbSrcX != 0 {
			return op.Reg32(cbA, cbX, label)
		}
		return op.Imm32(cbA, int32(in.K), label)
	}
	switch {
	case t == f:
		if t != next {
			g.emit(asm.Ja.Label(g.target(t)))
		}
	case t == next && ops[1] != asm.InvalidJumpOp:
		g.emit(cond(ops[1], g.target(f)))
	default:
		g.emit(cond(ops[0], g.target(t)))
		if f != next {
			g.emit(asm.Ja.Label(g.target(f)))
		}
	}
	return nil
}

// load emits a bounds-checked packet load into A (or X for MSH): in the
// direct copy a packet access, handing what it cannot reach to the same
// load in the helper copy; in the helper copy through bpf_xdp_load_bytes.
func (g *cbGen) load(pc int, ld cbLoad) {
	if ld.never {
		// Below SKF_LL_OFF: bpf_internal_load_pointer_neg_helper finds
		// nothing, the program returns 0.
		g.emit(asm.Mov.Imm32(cbA, 0))
		g.exit(g.o.Done)
		return
	}
	if g.helper {
		g.loadBytes(pc, ld)
		return
	}
	dst, free := cbA, cbA // the register loaded, and a free one to build the pointer in
	if ld.msh {
		dst, free = cbX, cbX
	}
	size := map[int]asm.Size{1: asm.Byte, 2: asm.Half, 4: asm.Word}[ld.size]
	s := int32(ld.size)
	switch {
	case !ld.ind && int64(ld.off)+int64(s) <= 0x7fff:
		// Constant offset: a fixed offset from the network header.
		g.emit(
			asm.JLT.Imm(cbLen, int32(ld.off)+s, g.ret0()),
			asm.Mov.Reg(cbT5, cbL3),
			asm.Add.Imm(cbT5, int32(ld.off)+s),
			asm.LoadMem(cbT4, g.o.Ctx, 4, asm.Word), // ctx->data_end
			asm.JGT.Reg(cbT5, cbT4, g.slow(pc)),
			asm.LoadMem(dst, cbL3, int16(ld.off), size),
		)
		g.finish(ld, dst)
		return
	case !ld.ind && ld.off > CBPFMaxOffset:
		// Beyond direct access whatever the frame: the helper copy.
		g.emit(asm.Ja.Label(g.slow(pc)))
		return
	case !ld.ind:
		g.emit(asm.Mov.Imm(cbT4, int32(ld.off))) // off < 2^31
	default:
		g.indOffset(ld)
	}
	// Variable (or large) offset in R4, 0 <= R4 < 2^32.
	g.emit(
		asm.Mov.Reg(cbT5, cbT4),
		asm.Add.Imm(cbT5, s),
		asm.JGT.Reg(cbT5, cbLen, g.ret0()), // off+size > len: out of the datagram
		asm.JGT.Imm(cbT4, CBPFMaxOffset, g.slow(pc)),
		asm.Mov.Reg(free, cbL3),
		asm.Add.Reg(free, cbT4),
		asm.Mov.Reg(cbT5, free),
		asm.Add.Imm(cbT5, s),
		asm.LoadMem(cbT4, g.o.Ctx, 4, asm.Word), // ctx->data_end
		asm.JGT.Reg(cbT5, cbT4, g.slow(pc)),
		asm.LoadMem(dst, free, 0, size),
	)
	g.finish(ld, dst)
}

// indOffset puts the offset of an indirect load in R4: int32(X+k);
// negative offsets as bpf_internal_load_pointer_neg_helper: [SKF_NET_OFF,
// 0) is network-header relative, below is nothing sluice can read
// (engine/cbpf returns 0 there).
func (g *cbGen) indOffset(ld cbLoad) {
	pos := g.lbl(fmt.Sprintf("ind%d", len(g.out)))
	g.emit(asm.Mov.Reg32(cbT4, cbX))
	if ld.off != 0 {
		g.emit(asm.Add.Imm32(cbT4, int32(ld.off)))
	}
	g.emit(
		asm.StoreMem(asm.R10, g.o.Scratch+cbLaunder, cbT4, asm.Word),
		asm.LoadMem(cbT4, asm.R10, g.o.Scratch+cbLaunder, asm.Word),
		asm.JSGE.Imm32(cbT4, 0, pos),
		asm.JSLT.Imm32(cbT4, cbSkfNetOff, g.ret0()),
		asm.Add.Imm32(cbT4, -cbSkfNetOff),
	)
	g.place(pos)
}

// finish converts a loaded value from network byte order, and makes MSH's
// X = 4*(byte&0xf).
func (g *cbGen) finish(ld cbLoad, dst asm.Register) {
	if ld.size > 1 {
		g.emit(asm.HostTo(asm.BE, dst, map[int]asm.Size{2: asm.Half, 4: asm.Word}[ld.size]))
	}
	if ld.msh {
		g.emit(asm.And.Imm32(cbX, 0xf), asm.LSh.Imm32(cbX, 2))
	}
}

// loadBytes is a load of the helper copy: bpf_xdp_load_bytes(ctx, L3 offset
// + off, buf, size) copies the bytes to the stack, wherever they are in
// the frame. The direct copy jumps to its label with the load's register
// possibly holding a packet pointer: only the other one of A and X is
// live, and it is spilled across the call (which clobbers R0-R5); the
// length is read again after it.
func (g *cbGen) loadBytes(pc int, ld cbLoad) {
	dst, keep := cbA, cbX
	if ld.msh {
		dst, keep = cbX, cbA
	}
	size := map[int]asm.Size{1: asm.Byte, 2: asm.Half, 4: asm.Word}[ld.size]
	s := int32(ld.size)
	g.place(g.slow(pc))
	if ld.ind {
		g.indOffset(ld)
	} else {
		g.emit(asm.Mov.Imm(cbT4, int32(ld.off))) // off < 2^31
	}
	g.emit(
		asm.Mov.Reg(cbT5, cbT4),
		asm.Add.Imm(cbT5, s),
		asm.JGT.Reg(cbT5, cbLen, g.ret0()), // off+size > len: out of the datagram
	)
	g.read(cbT5, g.o.L3Off)
	buf := g.o.Scratch + cbBuf
	g.emit(
		asm.Add.Reg(cbT4, cbT5),
		// The helper takes a 32-bit offset; no frame is 2 GiB long.
		asm.JGT.Imm(cbT4, 0x7fffffff, g.lost()),
		asm.StoreMem(asm.R10, g.o.Scratch+cbLaunder, keep, asm.Word),
		asm.Mov.Reg(asm.R1, g.o.Ctx),
		asm.Mov.Reg(asm.R2, cbT4),
		asm.Mov.Reg(asm.R3, asm.R10),
		asm.Add.Imm(asm.R3, int32(buf)),
		asm.Mov.Imm(asm.R4, s),
		asm.FnXdpLoadBytes.Call(),
		asm.JNE.Imm(asm.R0, 0, g.lost()),
		asm.LoadMem(dst, asm.R10, buf, size),
		asm.LoadMem(keep, asm.R10, g.o.Scratch+cbLaunder, asm.Word),
	)
	g.read(cbLen, g.o.L3Len)
	g.finish(ld, dst)
}

// CBPFDisasm renders one classic instruction at pc like tcpdump -d
// (bpf_image), jump targets absolute.
func CBPFDisasm(pc int, in cbpf.Instruction) string {
	k := in.K
	sz := map[uint16]string{0x00: "", 0x08: "h", 0x10: "b"}[in.Op&0x18]
	switch in.Op {
	case cbRetK:
		return fmt.Sprintf("ret #%d", k)
	case cbRetA:
		return "ret a"
	case cbLdW, cbLdH, cbLdB:
		if int32(k) >= cbSkfAdOff && int32(k) < 0 {
			if int32(k)-cbSkfAdOff == cbAdXorX {
				return "xor x (SKF_AD_ALU_XOR_X)"
			}
			return fmt.Sprintf("ld%s #ancillary%+d", sz, int32(k)-cbSkfAdOff)
		}
		if int32(k) < 0 {
			return fmt.Sprintf("ld%s [%d]", sz, int32(k))
		}
		return fmt.Sprintf("ld%s [%d]", sz, k)
	case cbLdIndW, cbLdIndH, cbLdIndB:
		return fmt.Sprintf("ld%s [x + %d]", sz, int32(k))
	case cbLdLen:
		return "ld #pktlen"
	case cbLdxLen:
		return "ldx #pktlen"
	case cbLdImm:
		return fmt.Sprintf("ld #%#x", k)
	case cbLdxImm:
		return fmt.Sprintf("ldx #%#x", k)
	case cbLdMem:
		return fmt.Sprintf("ld M[%d]", k)
	case cbLdxMem:
		return fmt.Sprintf("ldx M[%d]", k)
	case cbLdxMsh:
		return fmt.Sprintf("ldxb 4*([%d]&0xf)", int32(k))
	case cbSt:
		return fmt.Sprintf("st M[%d]", k)
	case cbStx:
		return fmt.Sprintf("stx M[%d]", k)
	case cbTax:
		return "tax"
	case cbTxa:
		return "txa"
	case cbJa:
		return fmt.Sprintf("ja %d", pc+1+int(k))
	}
	src := fmt.Sprintf("#%#x", k)
	if in.Op&cbSrcX != 0 {
		src = "x"
	}
	switch in.Op & 0x07 {
	case cbClassALU:
		if n, ok := cbALUName[in.Op&0xf0]; ok {
			if in.Op&0xf0 == 0x80 {
				return n
			}
			return n + " " + src
		}
	case cbClassJMP:
		if n, ok := cbJmpName[in.Op&0xf0]; ok {
			return fmt.Sprintf("%s %s jt %d jf %d", n, src, pc+1+int(in.Jt), pc+1+int(in.Jf))
		}
	}
	return fmt.Sprintf("unknown op %#x jt %d jf %d k %#x", in.Op, in.Jt, in.Jf, k)
}
