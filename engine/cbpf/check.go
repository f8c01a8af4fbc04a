// Package cbpf runs the classic BPF programs of the iptables "bpf" match
// (-m bpf --bytecode "N,op jt jf k,...").
//
// An operator's rule set may carry bytecode produced by tcpdump -ddd or
// nfbpf_compile. To count exactly what the kernel counts, this package accepts
// exactly the programs the kernel accepts (net/netfilter/xt_bpf.c calls
// bpf_prog_create, which runs bpf_check_classic and check_load_and_stores of
// net/core/filter.c) and gives every run the result of the kernel's converted
// program: net/core/filter.c bpf_convert_filter turns classic BPF into eBPF
// and the load helpers bpf_skb_load_helper_{8,16,32} plus
// bpf_internal_load_pointer_neg_helper (kernel/bpf/core.c) decide what a load
// returns. xt_bpf runs the program on the skb with skb->data at the network
// header, so the packet given to Run is the IP datagram.
//
// Programs are pre-decoded into a flat array of small instructions with
// absolute jump targets and interpreted by one switch, so a run costs no
// allocation and no interface call.
package cbpf

import "fmt"

// Instruction is one struct sock_filter (include/uapi/linux/filter.h).
type Instruction struct {
	Op     uint16
	Jt, Jf uint8
	K      uint32
}

// Classic BPF opcode fields, include/uapi/linux/bpf_common.h and filter.h.
const (
	classLD   = 0x00
	classLDX  = 0x01
	classST   = 0x02
	classSTX  = 0x03
	classALU  = 0x04
	classJMP  = 0x05
	classRET  = 0x06
	classMISC = 0x07

	sizeW = 0x00
	sizeH = 0x08
	sizeB = 0x10

	modeIMM = 0x00
	modeABS = 0x20
	modeIND = 0x40
	modeMEM = 0x60
	modeLEN = 0x80
	modeMSH = 0xa0

	aluADD = 0x00
	aluSUB = 0x10
	aluMUL = 0x20
	aluDIV = 0x30
	aluOR  = 0x40
	aluAND = 0x50
	aluLSH = 0x60
	aluRSH = 0x70
	aluNEG = 0x80
	aluMOD = 0x90
	aluXOR = 0xa0

	jmpJA   = 0x00
	jmpJEQ  = 0x10
	jmpJGT  = 0x20
	jmpJGE  = 0x30
	jmpJSET = 0x40

	srcK = 0x00
	srcX = 0x08

	retK = 0x00
	retA = 0x10

	miscTAX = 0x00
	miscTXA = 0x80

	// memWords is BPF_MEMWORDS, the number of scratch cells M[].
	memWords = 16

	// MaxInstructions is XT_BPF_MAX_NUM_INSTR
	// (include/uapi/linux/netfilter/xt_bpf.h): the size of the program array
	// in struct xt_bpf_info, enforced by iptables and by
	// __bpf_mt_check_bytecode.
	MaxInstructions = 64
)

// Negative load offsets, include/uapi/linux/filter.h.
const (
	skfAdOff  = -0x1000
	skfNetOff = -0x100000
	skfLLOff  = -0x200000

	skfAdProtocol       = 0
	skfAdPkttype        = 4
	skfAdIfindex        = 8
	skfAdNlattr         = 12
	skfAdNlattrNest     = 16
	skfAdMark           = 20
	skfAdQueue          = 24
	skfAdHatype         = 28
	skfAdRxhash         = 32
	skfAdCPU            = 36
	skfAdAluXorX        = 40
	skfAdVlanTag        = 44
	skfAdVlanTagPresent = 48
	skfAdPayOffset      = 52
	skfAdRandom         = 56
	skfAdVlanTPID       = 60
)

// CheckError is a program the kernel refuses with EINVAL. Index is the
// offending instruction, or -1 when the program as a whole is wrong (empty or
// too long).
type CheckError struct {
	Index  int
	Op     uint16
	Reason string
}

func (e *CheckError) Error() string {
	if e.Index < 0 {
		return "bpf: " + e.Reason
	}
	return fmt.Sprintf("bpf: instruction %d (op %#x): %s", e.Index, e.Op, e.Reason)
}

// codeAllowed is chk_code_allowed() of net/core/filter.c.
func codeAllowed(op uint16) bool {
	switch op {
	case classALU | aluADD | srcK, classALU | aluADD | srcX,
		classALU | aluSUB | srcK, classALU | aluSUB | srcX,
		classALU | aluMUL | srcK, classALU | aluMUL | srcX,
		classALU | aluDIV | srcK, classALU | aluDIV | srcX,
		classALU | aluMOD | srcK, classALU | aluMOD | srcX,
		classALU | aluAND | srcK, classALU | aluAND | srcX,
		classALU | aluOR | srcK, classALU | aluOR | srcX,
		classALU | aluXOR | srcK, classALU | aluXOR | srcX,
		classALU | aluLSH | srcK, classALU | aluLSH | srcX,
		classALU | aluRSH | srcK, classALU | aluRSH | srcX,
		classALU | aluNEG,
		classLD | sizeW | modeABS, classLD | sizeH | modeABS, classLD | sizeB | modeABS,
		classLD | sizeW | modeLEN,
		classLD | sizeW | modeIND, classLD | sizeH | modeIND, classLD | sizeB | modeIND,
		classLD | modeIMM, classLD | modeMEM,
		classLDX | sizeW | modeLEN, classLDX | sizeB | modeMSH,
		classLDX | modeIMM, classLDX | modeMEM,
		classST, classSTX,
		classMISC | miscTAX, classMISC | miscTXA,
		classRET | retK, classRET | retA,
		classJMP | jmpJA,
		classJMP | jmpJEQ | srcK, classJMP | jmpJEQ | srcX,
		classJMP | jmpJGE | srcK, classJMP | jmpJGE | srcX,
		classJMP | jmpJGT | srcK, classJMP | jmpJGT | srcX,
		classJMP | jmpJSET | srcK, classJMP | jmpJSET | srcX:
		return true
	}
	return false
}

// ancillaryKnown reports whether k names an extension that bpf_anc_helper
// (include/linux/filter.h) recognises for an LD|ABS instruction.
func ancillaryKnown(k uint32) bool {
	switch int32(k) - skfAdOff {
	case skfAdProtocol, skfAdPkttype, skfAdIfindex, skfAdNlattr, skfAdNlattrNest,
		skfAdMark, skfAdQueue, skfAdHatype, skfAdRxhash, skfAdCPU, skfAdAluXorX,
		skfAdVlanTag, skfAdVlanTagPresent, skfAdPayOffset, skfAdRandom, skfAdVlanTPID:
		return int32(k) >= skfAdOff
	}
	return false
}

func isCondJump(op uint16) bool {
	switch op {
	case classJMP | jmpJEQ | srcK, classJMP | jmpJEQ | srcX,
		classJMP | jmpJGE | srcK, classJMP | jmpJGE | srcX,
		classJMP | jmpJGT | srcK, classJMP | jmpJGT | srcX,
		classJMP | jmpJSET | srcK, classJMP | jmpJSET | srcX:
		return true
	}
	return false
}

// Check refuses exactly what the kernel refuses when xt_bpf loads a
// bytecode program: more than XT_BPF_MAX_NUM_INSTR instructions
// (__bpf_mt_check_bytecode), an empty program (bpf_check_basics_ok), and
// everything bpf_check_classic rejects, in its order: opcodes outside
// chk_code_allowed, DIV/MOD by constant 0, constant shifts of 32 or more,
// scratch-memory indexes of 16 or more, jumps past the end, LD|ABS in the
// ancillary range naming no known extension, a last instruction that is not
// RET, and (check_load_and_stores) a read of M[k] on a path where it may not
// have been written.
func Check(prog []Instruction) error {
	flen := len(prog)
	if flen == 0 {
		return &CheckError{Index: -1, Reason: "empty program"}
	}
	if flen > MaxInstructions {
		return &CheckError{Index: -1, Reason: fmt.Sprintf("%d instructions, more than the %d xt_bpf allows", flen, MaxInstructions)}
	}
	for pc := range prog {
		in := prog[pc]
		bad := func(reason string) error { return &CheckError{Index: pc, Op: in.Op, Reason: reason} }
		if !codeAllowed(in.Op) {
			return bad("opcode not allowed in classic BPF")
		}
		switch in.Op {
		case classALU | aluDIV | srcK, classALU | aluMOD | srcK:
			if in.K == 0 {
				return bad("division by constant zero")
			}
		case classALU | aluLSH | srcK, classALU | aluRSH | srcK:
			if in.K >= 32 {
				return bad(fmt.Sprintf("shift by %d (32 or more)", in.K))
			}
		case classLD | modeMEM, classLDX | modeMEM, classST, classSTX:
			if in.K >= memWords {
				return bad(fmt.Sprintf("scratch memory index %d out of range 0..15", in.K))
			}
		case classJMP | jmpJA:
			if in.K >= uint32(flen-pc-1) {
				return bad(fmt.Sprintf("jump offset %d past the end of the program", in.K))
			}
		case classLD | sizeW | modeABS, classLD | sizeH | modeABS, classLD | sizeB | modeABS:
			if !ancillaryKnown(in.K) && in.K >= uint32(0xfffff000) {
				return bad(fmt.Sprintf("unknown ancillary load %#x", in.K))
			}
		default:
			if isCondJump(in.Op) && (pc+int(in.Jt)+1 >= flen || pc+int(in.Jf)+1 >= flen) {
				return bad(fmt.Sprintf("conditional jump (jt %d, jf %d) past the end of the program", in.Jt, in.Jf))
			}
		}
	}
	switch prog[flen-1].Op {
	case classRET | retK, classRET | retA:
	default:
		return &CheckError{Index: flen - 1, Op: prog[flen-1].Op, Reason: "last instruction is not RET"}
	}
	return checkLoadAndStores(prog)
}

// checkLoadAndStores is check_load_and_stores(): a single forward pass that
// tracks which M[] cells are certainly written, ANDing the state into every
// jump target, and resetting it to "all valid" after a jump (the following
// instruction is only reached through the masks recorded for it).
func checkLoadAndStores(prog []Instruction) error {
	var masks [MaxInstructions]uint16
	for i := range prog {
		masks[i] = 0xffff
	}
	var memvalid uint16
	for pc, in := range prog {
		memvalid &= masks[pc]
		switch in.Op {
		case classST, classSTX:
			memvalid |= 1 << in.K
		case classLD | modeMEM, classLDX | modeMEM:
			if memvalid&(1<<in.K) == 0 {
				return &CheckError{Index: pc, Op: in.Op, Reason: fmt.Sprintf("reads scratch memory M[%d] that may be uninitialised", in.K)}
			}
		case classJMP | jmpJA:
			masks[pc+1+int(in.K)] &= memvalid
			memvalid = 0xffff
		default:
			if isCondJump(in.Op) {
				masks[pc+1+int(in.Jt)] &= memvalid
				masks[pc+1+int(in.Jf)] &= memvalid
				memvalid = 0xffff
			}
		}
	}
	return nil
}
