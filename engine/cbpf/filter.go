package cbpf

import (
	"encoding/binary"
	"fmt"
	"strconv"
)

// xop is the pre-decoded operation: one small enum value per behaviour, so
// that Run is a single dense switch.
type xop uint8

const (
	xRetK xop = iota
	xRetA
	xLdAbsW // A = packet word at fixed offset k
	xLdAbsH
	xLdAbsB
	xLdIndW // A = packet word at int32(X+k), negative offsets resolved at run time
	xLdIndH
	xLdIndB
	xLdxMsh // X = 4*(packet byte at fixed offset k & 0xf)
	xLdLen
	xLdxLen
	xLdImm
	xLdxImm
	xLdMem
	xLdxMem
	xSt
	xStx
	xTax
	xTxa
	xAddK
	xAddX
	xSubK
	xSubX
	xMulK
	xMulX
	xDivK
	xDivX
	xModK
	xModX
	xAndK
	xAndX
	xOrK
	xOrX
	xXorK
	xXorX
	xLshK
	xLshX
	xRshK
	xRshX
	xNeg
	xJa
	xJeqK
	xJeqX
	xJgtK
	xJgtX
	xJgeK
	xJgeX
	xJsetK
	xJsetX
)

// insn is a decoded instruction: jt and jf are absolute program counters.
type insn struct {
	op     xop
	jt, jf uint8
	k      uint32
}

// Filter is a checked, compiled program. It is immutable and safe for
// concurrent use.
type Filter struct {
	prog []insn
	orig []Instruction
}

// UnsupportedError is a program the kernel accepts but whose result depends
// on something sluice does not have: skb metadata read through ancillary
// loads (SKF_AD_*: mark, ifindex, rxhash, cpu, random, vlan, ...) or
// link-layer bytes read through SKF_LL_OFF. Refusing it is better than
// counting differently from the kernel.
type UnsupportedError struct {
	Index  int
	Op     uint16
	K      uint32
	Reason string
}

func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("bpf: instruction %d (op %#x, k %#x): unsupported: %s", e.Index, e.Op, e.K, e.Reason)
}

var ancillaryNames = map[int32]string{
	skfAdProtocol: "SKF_AD_PROTOCOL (skb->protocol)", skfAdPkttype: "SKF_AD_PKTTYPE",
	skfAdIfindex: "SKF_AD_IFINDEX", skfAdNlattr: "SKF_AD_NLATTR", skfAdNlattrNest: "SKF_AD_NLATTR_NEST",
	skfAdMark: "SKF_AD_MARK", skfAdQueue: "SKF_AD_QUEUE", skfAdHatype: "SKF_AD_HATYPE",
	skfAdRxhash: "SKF_AD_RXHASH", skfAdCPU: "SKF_AD_CPU", skfAdVlanTag: "SKF_AD_VLAN_TAG",
	skfAdVlanTagPresent: "SKF_AD_VLAN_TAG_PRESENT", skfAdPayOffset: "SKF_AD_PAY_OFFSET",
	skfAdRandom: "SKF_AD_RANDOM", skfAdVlanTPID: "SKF_AD_VLAN_TPID",
}

// Compile checks prog like the kernel (Check) and decodes it for Run.
//
// Fixed (ABS and MSH) loads are resolved here, following convert_bpf_ld_abs
// and bpf_internal_load_pointer_neg_helper: a non-negative k reads the
// datagram; k in [SKF_NET_OFF, 0) reads the network header, which under
// xt_bpf is where skb->data points, at k-SKF_NET_OFF; k below SKF_LL_OFF can
// never load, so the instruction becomes "return 0"; k in [SKF_LL_OFF,
// SKF_NET_OFF) would read the MAC header and is refused with
// UnsupportedError. SKF_AD_ALU_XOR_X (A ^= X) is pure and supported; every
// other ancillary load reads skb metadata and is refused with
// UnsupportedError.
func Compile(prog []Instruction) (*Filter, error) {
	if err := Check(prog); err != nil {
		return nil, err
	}
	f := &Filter{prog: make([]insn, len(prog)), orig: append([]Instruction(nil), prog...)}
	for pc, in := range prog {
		d := insn{k: in.K}
		switch in.Op {
		case classRET | retK:
			d.op = xRetK
		case classRET | retA:
			d.op = xRetA
		case classLD | sizeW | modeABS, classLD | sizeH | modeABS, classLD | sizeB | modeABS, classLDX | sizeB | modeMSH:
			isMsh := in.Op == classLDX|sizeB|modeMSH
			if !isMsh && ancillaryKnown(in.K) {
				n := int32(in.K) - skfAdOff
				if n != skfAdAluXorX {
					return nil, &UnsupportedError{Index: pc, Op: in.Op, K: in.K, Reason: "ancillary load " + ancillaryNames[n] + " reads skb metadata"}
				}
				d.op = xXorX
				break
			}
			off := int32(in.K)
			switch {
			case off >= 0:
			case off >= skfNetOff:
				d.k = uint32(off - skfNetOff)
			case off >= skfLLOff:
				return nil, &UnsupportedError{Index: pc, Op: in.Op, K: in.K, Reason: "SKF_LL_OFF load reads the link-layer header"}
			default:
				// bpf_internal_load_pointer_neg_helper returns NULL: the
				// converted program returns 0 right here.
				d.op, d.k = xRetK, 0
				f.prog[pc] = d
				continue
			}
			switch in.Op {
			case classLD | sizeW | modeABS:
				d.op = xLdAbsW
			case classLD | sizeH | modeABS:
				d.op = xLdAbsH
			case classLD | sizeB | modeABS:
				d.op = xLdAbsB
			default:
				d.op = xLdxMsh
			}
		case classLD | sizeW | modeIND:
			d.op = xLdIndW
		case classLD | sizeH | modeIND:
			d.op = xLdIndH
		case classLD | sizeB | modeIND:
			d.op = xLdIndB
		case classLD | sizeW | modeLEN:
			d.op = xLdLen
		case classLDX | sizeW | modeLEN:
			d.op = xLdxLen
		case classLD | modeIMM:
			d.op = xLdImm
		case classLDX | modeIMM:
			d.op = xLdxImm
		case classLD | modeMEM:
			d.op = xLdMem
		case classLDX | modeMEM:
			d.op = xLdxMem
		case classST:
			d.op = xSt
		case classSTX:
			d.op = xStx
		case classMISC | miscTAX:
			d.op = xTax
		case classMISC | miscTXA:
			d.op = xTxa
		case classALU | aluADD | srcK:
			d.op = xAddK
		case classALU | aluADD | srcX:
			d.op = xAddX
		case classALU | aluSUB | srcK:
			d.op = xSubK
		case classALU | aluSUB | srcX:
			d.op = xSubX
		case classALU | aluMUL | srcK:
			d.op = xMulK
		case classALU | aluMUL | srcX:
			d.op = xMulX
		case classALU | aluDIV | srcK:
			d.op = xDivK
		case classALU | aluDIV | srcX:
			d.op = xDivX
		case classALU | aluMOD | srcK:
			d.op = xModK
		case classALU | aluMOD | srcX:
			d.op = xModX
		case classALU | aluAND | srcK:
			d.op = xAndK
		case classALU | aluAND | srcX:
			d.op = xAndX
		case classALU | aluOR | srcK:
			d.op = xOrK
		case classALU | aluOR | srcX:
			d.op = xOrX
		case classALU | aluXOR | srcK:
			d.op = xXorK
		case classALU | aluXOR | srcX:
			d.op = xXorX
		case classALU | aluLSH | srcK:
			d.op = xLshK
		case classALU | aluLSH | srcX:
			d.op = xLshX
		case classALU | aluRSH | srcK:
			d.op = xRshK
		case classALU | aluRSH | srcX:
			d.op = xRshX
		case classALU | aluNEG:
			d.op = xNeg
		case classJMP | jmpJA:
			d.op = xJa
			d.jt = uint8(pc + 1 + int(in.K))
		default:
			switch in.Op {
			case classJMP | jmpJEQ | srcK:
				d.op = xJeqK
			case classJMP | jmpJEQ | srcX:
				d.op = xJeqX
			case classJMP | jmpJGT | srcK:
				d.op = xJgtK
			case classJMP | jmpJGT | srcX:
				d.op = xJgtX
			case classJMP | jmpJGE | srcK:
				d.op = xJgeK
			case classJMP | jmpJGE | srcX:
				d.op = xJgeX
			case classJMP | jmpJSET | srcK:
				d.op = xJsetK
			case classJMP | jmpJSET | srcX:
				d.op = xJsetX
			default:
				// Unreachable: Check accepted only chk_code_allowed opcodes.
				return nil, &CheckError{Index: pc, Op: in.Op, Reason: "opcode not allowed in classic BPF"}
			}
			d.jt = uint8(pc + 1 + int(in.Jt))
			d.jf = uint8(pc + 1 + int(in.Jf))
		}
		f.prog[pc] = d
	}
	return f, nil
}

// Run executes the filter on the IP datagram l3 and returns what the
// kernel's converted program returns:
//
//   - A and X start at 0 (the prologue of bpf_convert_filter); scratch cells
//     are only read after a write (Check guarantees it);
//   - arithmetic is 32-bit unsigned; DIV/MOD by X == 0 returns 0 from the
//     program (the converted code tests X and exits with A = 0);
//   - LSH/RSH by X shift by X&31: the eBPF interpreter (kernel/bpf/core.c,
//     "DST = (u32) DST OP ((u32) SRC & 31)") and the x86-64 JIT (32-bit
//     shl/shr by %cl, which masks the count to 5 bits) agree on this;
//     constant shifts of 32 or more never get here (Check);
//   - a load that does not fit in the packet makes the program return 0
//     (bpf_skb_load_helper_* returns -EFAULT, the converted code zeroes A and
//     exits); an indirect load uses the 32-bit signed offset X+k and resolves
//     a negative one like bpf_internal_load_pointer_neg_helper: network-header
//     relative for [SKF_NET_OFF, 0), nothing below SKF_LL_OFF. An indirect
//     load landing in [SKF_LL_OFF, SKF_NET_OFF) would read the MAC header,
//     which sluice does not have; it returns 0 here.
//
// The skb is taken to be linear with skb->len == len(l3).
func (f *Filter) Run(l3 []byte) uint32 {
	var a, x uint32
	var mem [memWords]uint32
	prog := f.prog
	n := uint64(len(l3))
	pc := 0
	for pc < len(prog) {
		in := &prog[pc]
		pc++
		switch in.op {
		case xRetK:
			return in.k
		case xRetA:
			return a
		case xLdAbsW:
			k := uint64(in.k)
			if k+4 > n {
				return 0
			}
			a = binary.BigEndian.Uint32(l3[k : k+4])
		case xLdAbsH:
			k := uint64(in.k)
			if k+2 > n {
				return 0
			}
			a = uint32(binary.BigEndian.Uint16(l3[k : k+2]))
		case xLdAbsB:
			k := uint64(in.k)
			if k >= n {
				return 0
			}
			a = uint32(l3[k])
		case xLdIndW:
			off, ok := indOffset(x, in.k, 4, n)
			if !ok {
				return 0
			}
			a = binary.BigEndian.Uint32(l3[off : off+4])
		case xLdIndH:
			off, ok := indOffset(x, in.k, 2, n)
			if !ok {
				return 0
			}
			a = uint32(binary.BigEndian.Uint16(l3[off : off+2]))
		case xLdIndB:
			off, ok := indOffset(x, in.k, 1, n)
			if !ok {
				return 0
			}
			a = uint32(l3[off])
		case xLdxMsh:
			k := uint64(in.k)
			if k >= n {
				return 0
			}
			x = uint32(l3[k]&0xf) << 2
		case xLdLen:
			a = uint32(n)
		case xLdxLen:
			x = uint32(n)
		case xLdImm:
			a = in.k
		case xLdxImm:
			x = in.k
		case xLdMem:
			a = mem[in.k&(memWords-1)]
		case xLdxMem:
			x = mem[in.k&(memWords-1)]
		case xSt:
			mem[in.k&(memWords-1)] = a
		case xStx:
			mem[in.k&(memWords-1)] = x
		case xTax:
			x = a
		case xTxa:
			a = x
		case xAddK:
			a += in.k
		case xAddX:
			a += x
		case xSubK:
			a -= in.k
		case xSubX:
			a -= x
		case xMulK:
			a *= in.k
		case xMulX:
			a *= x
		case xDivK:
			a /= in.k
		case xDivX:
			if x == 0 {
				return 0
			}
			a /= x
		case xModK:
			a %= in.k
		case xModX:
			if x == 0 {
				return 0
			}
			a %= x
		case xAndK:
			a &= in.k
		case xAndX:
			a &= x
		case xOrK:
			a |= in.k
		case xOrX:
			a |= x
		case xXorK:
			a ^= in.k
		case xXorX:
			a ^= x
		case xLshK:
			a <<= in.k & 31
		case xLshX:
			a <<= x & 31
		case xRshK:
			a >>= in.k & 31
		case xRshX:
			a >>= x & 31
		case xNeg:
			a = -a
		case xJa:
			pc = int(in.jt)
		case xJeqK:
			pc = branch(a == in.k, in)
		case xJeqX:
			pc = branch(a == x, in)
		case xJgtK:
			pc = branch(a > in.k, in)
		case xJgtX:
			pc = branch(a > x, in)
		case xJgeK:
			pc = branch(a >= in.k, in)
		case xJgeX:
			pc = branch(a >= x, in)
		case xJsetK:
			pc = branch(a&in.k != 0, in)
		case xJsetX:
			pc = branch(a&x != 0, in)
		}
	}
	// Unreachable for a checked program: the last instruction is a RET and
	// every jump stays inside the program.
	return 0
}

func branch(cond bool, in *insn) int {
	if cond {
		return int(in.jt)
	}
	return int(in.jf)
}

// indOffset resolves the offset of an indirect load of size bytes like
// convert_bpf_ld_abs (ARG4 = X + k, passed as a 32-bit int) followed by
// bpf_skb_load_helper_* and bpf_internal_load_pointer_neg_helper.
func indOffset(x, k, size uint32, n uint64) (uint64, bool) {
	off := int32(x + k)
	var o uint64
	switch {
	case off >= 0:
		o = uint64(off)
	case off >= skfNetOff:
		o = uint64(off - skfNetOff)
	default:
		// Below SKF_NET_OFF: the MAC header (unknown to sluice) or nothing.
		return 0, false
	}
	if o+uint64(size) > n {
		return 0, false
	}
	return o, true
}

// Match reports whether the program accepts the packet: xt_bpf's bpf_mt
// returns the program's result converted to bool.
func (f *Filter) Match(l3 []byte) bool {
	return f.Run(l3) != 0
}

// Instructions returns a copy of the program as given to Compile.
func (f *Filter) Instructions() []Instruction {
	return append([]Instruction(nil), f.orig...)
}

// String returns the program in the form iptables-save prints inside the
// quotes of --bytecode (bpf_save_code in extensions/libxt_bpf.c):
// "N,op jt jf k,op jt jf k,...".
func (f *Filter) String() string {
	return Format(f.orig)
}

// Format renders prog like bpf_save_code.
func Format(prog []Instruction) string {
	b := strconv.AppendUint(nil, uint64(len(prog)), 10)
	for _, in := range prog {
		b = append(b, ',')
		b = strconv.AppendUint(b, uint64(in.Op), 10)
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(in.Jt), 10)
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(in.Jf), 10)
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(in.K), 10)
	}
	return string(b)
}
