package xdp

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cilium/ebpf/asm"

	"github.com/sluice-project/sluice/engine/cbpf"
)

var cbTestOpts = CBPFOptions{
	Ctx: asm.R6, L3Off: CBPFMem(asm.R9, 64), L3Len: CBPFMem(asm.R10, -24), Scratch: -256,
	Done: "done", Abort: "abort", Prefix: "t_",
}

func cbCompile(t *testing.T, prog ...cbpf.Instruction) *cbpf.Filter {
	t.Helper()
	f, err := cbpf.Compile(prog)
	if err != nil {
		t.Fatalf("Compile(%v): %v", prog, err)
	}
	return f
}

// cbShape is an instruction without its metadata, for comparison.
type cbShape struct {
	op       asm.OpCode
	dst, src asm.Register
	off      int16
	k        int64
	ref      string
}

func (s cbShape) String() string {
	return fmt.Sprintf("{%v dst %v src %v off %d k %d ref %q}", s.op, s.dst, s.src, s.off, s.k, s.ref)
}

func cbShapes(insns asm.Instructions) []cbShape {
	out := make([]cbShape, len(insns))
	for i, in := range insns {
		out[i] = cbShape{in.OpCode, in.Dst, in.Src, in.Offset, in.Constant, in.Reference()}
	}
	return out
}

// cbBody returns the code of classic instruction pc in the direct copy:
// from the symbol of its label to the next symbol.
func cbBody(t *testing.T, insns asm.Instructions, pc int) asm.Instructions {
	t.Helper()
	return cbBodyAt(t, insns, fmt.Sprintf("t_i%d", pc))
}

// cbBodyAt returns the code from symbol sym to the next symbol.
func cbBodyAt(t *testing.T, insns asm.Instructions, sym string) asm.Instructions {
	t.Helper()
	start := -1
	for i, in := range insns {
		if in.Symbol() == sym {
			start = i
			continue
		}
		if start >= 0 && in.Symbol() != "" && !strings.HasPrefix(in.Symbol(), "t_ind") {
			return insns[start:i]
		}
	}
	if start < 0 {
		t.Fatalf("no code at %s in\n%v", sym, insns)
	}
	return insns[start:]
}

// cbPrologue is what every translation starts with: a network header
// beyond CBPFMaxL3Off goes to deep, the helper copy's start (or, in a
// program without loads, the direct copy's, past the pointer).
func cbPrologue(deep string) asm.Instructions {
	return asm.Instructions{
		asm.LoadMem(asm.R2, asm.R10, -24, asm.DWord), asm.Or.Imm(asm.R2, 0),
		asm.LoadMem(asm.R3, asm.R9, 64, asm.DWord),
		asm.Mov.Imm32(asm.R0, 0),
		asm.Mov.Imm32(asm.R1, 0),
		asm.JGT.Imm(asm.R3, CBPFMaxL3Off, deep),
		asm.LoadMem(asm.R4, asm.R6, 0, asm.Word),
		asm.Add.Reg(asm.R4, asm.R3),
		asm.Mov.Reg(asm.R3, asm.R4),
	}
}

// cbHelperLoad is the helper copy's code for a load of size at the offset
// off computes into R4, into dst (keep is the other of A and X), with
// lost where a failing helper goes.
func cbHelperLoad(off asm.Instructions, dst, keep asm.Register, size asm.Size, lost string) asm.Instructions {
	s := int32(size.Sizeof())
	code := append(asm.Instructions(nil), off...)
	code = append(code,
		asm.Mov.Reg(asm.R5, asm.R4), asm.Add.Imm(asm.R5, s), asm.JGT.Reg(asm.R5, asm.R2, "t_ret0"),
		asm.LoadMem(asm.R5, asm.R9, 64, asm.DWord),
		asm.Add.Reg(asm.R4, asm.R5),
		asm.JGT.Imm(asm.R4, 0x7fffffff, lost),
		asm.StoreMem(asm.R10, -256+cbLaunder, keep, asm.Word),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Reg(asm.R2, asm.R4),
		asm.Mov.Reg(asm.R3, asm.R10),
		asm.Add.Imm(asm.R3, -256+cbBuf),
		asm.Mov.Imm(asm.R4, s),
		asm.FnXdpLoadBytes.Call(),
		asm.JNE.Imm(asm.R0, 0, lost),
		asm.LoadMem(dst, asm.R10, -256+cbBuf, size),
		asm.LoadMem(keep, asm.R10, -256+cbLaunder, asm.Word),
		asm.LoadMem(asm.R2, asm.R10, -24, asm.DWord), asm.Or.Imm(asm.R2, 0),
	)
	if size != asm.Byte {
		code = append(code, asm.HostTo(asm.BE, dst, size))
	}
	return code
}

func TestCBPFShapes(t *testing.T) {
	ret := cbpf.Instruction{Op: cbRetA}
	dataEnd := asm.LoadMem(asm.R4, asm.R6, 4, asm.Word)
	ldInd := func(size asm.Size, k int32) asm.Instructions {
		code := asm.Instructions{asm.Mov.Reg32(asm.R4, asm.R1)}
		if k != 0 {
			code = append(code, asm.Add.Imm32(asm.R4, k))
		}
		code = append(code,
			asm.StoreMem(asm.R10, -256+cbLaunder, asm.R4, asm.Word),
			asm.LoadMem(asm.R4, asm.R10, -256+cbLaunder, asm.Word),
			asm.JSGE.Imm32(asm.R4, 0, "POS"),
			asm.JSLT.Imm32(asm.R4, cbSkfNetOff, "t_ret0"),
			asm.Add.Imm32(asm.R4, -cbSkfNetOff),
			asm.Mov.Reg(asm.R5, asm.R4),
			asm.Add.Imm(asm.R5, int32(size.Sizeof())),
			asm.JGT.Reg(asm.R5, asm.R2, "t_ret0"),
			asm.JGT.Imm(asm.R4, CBPFMaxOffset, "t_h0"),
			asm.Mov.Reg(asm.R0, asm.R3),
			asm.Add.Reg(asm.R0, asm.R4),
			asm.Mov.Reg(asm.R5, asm.R0),
			asm.Add.Imm(asm.R5, int32(size.Sizeof())),
			dataEnd,
			asm.JGT.Reg(asm.R5, asm.R4, "t_h0"),
			asm.LoadMem(asm.R0, asm.R0, 0, size),
		)
		if size != asm.Byte {
			code = append(code, asm.HostTo(asm.BE, asm.R0, size))
		}
		return code
	}
	ldAbs := func(dst asm.Register, size asm.Size, off int32) asm.Instructions {
		s := int32(size.Sizeof())
		code := asm.Instructions{
			asm.JLT.Imm(asm.R2, off+s, "t_ret0"),
			asm.Mov.Reg(asm.R5, asm.R3),
			asm.Add.Imm(asm.R5, off+s),
			dataEnd,
			asm.JGT.Reg(asm.R5, asm.R4, "t_h0"),
			asm.LoadMem(dst, asm.R3, int16(off), size),
		}
		if size != asm.Byte {
			code = append(code, asm.HostTo(asm.BE, dst, size))
		}
		return code
	}
	tests := []struct {
		name string
		in   cbpf.Instruction
		want asm.Instructions
	}{
		{"ld #k", cbpf.Instruction{Op: cbLdImm, K: 0xdeadbeef}, asm.Instructions{asm.Mov.Imm32(asm.R0, -0x21524111)}},
		{"ldx #k", cbpf.Instruction{Op: cbLdxImm, K: 7}, asm.Instructions{asm.Mov.Imm32(asm.R1, 7)}},
		{"ld #len", cbpf.Instruction{Op: cbLdLen}, asm.Instructions{asm.Mov.Reg32(asm.R0, asm.R2)}},
		{"ldx #len", cbpf.Instruction{Op: cbLdxLen}, asm.Instructions{asm.Mov.Reg32(asm.R1, asm.R2)}},
		{"tax", cbpf.Instruction{Op: cbTax}, asm.Instructions{asm.Mov.Reg32(asm.R1, asm.R0)}},
		{"txa", cbpf.Instruction{Op: cbTxa}, asm.Instructions{asm.Mov.Reg32(asm.R0, asm.R1)}},
		{"st M[3]", cbpf.Instruction{Op: cbSt, K: 3}, asm.Instructions{asm.StoreMem(asm.R10, -256+3*8+4, asm.R0, asm.Word)}},
		{"stx M[15]", cbpf.Instruction{Op: cbStx, K: 15}, asm.Instructions{asm.StoreMem(asm.R10, -256+15*8+4, asm.R1, asm.Word)}},
		{"add #k", cbpf.Instruction{Op: cbClassALU, K: 5}, asm.Instructions{asm.Add.Imm32(asm.R0, 5)}},
		{"sub x", cbpf.Instruction{Op: cbClassALU | 0x10 | cbSrcX}, asm.Instructions{asm.Sub.Reg32(asm.R0, asm.R1)}},
		{"mul #k", cbpf.Instruction{Op: cbClassALU | 0x20, K: 3}, asm.Instructions{asm.Mul.Imm32(asm.R0, 3)}},
		{"div #k", cbpf.Instruction{Op: cbClassALU | 0x30, K: 0x80000000}, asm.Instructions{asm.Div.Imm32(asm.R0, -0x80000000)}},
		{"div x", cbpf.Instruction{Op: cbClassALU | 0x30 | cbSrcX}, asm.Instructions{asm.JEq.Imm32(asm.R1, 0, "t_ret0"), asm.Div.Reg32(asm.R0, asm.R1)}},
		{"mod x", cbpf.Instruction{Op: cbClassALU | 0x90 | cbSrcX}, asm.Instructions{asm.JEq.Imm32(asm.R1, 0, "t_ret0"), asm.Mod.Reg32(asm.R0, asm.R1)}},
		{"mod #k", cbpf.Instruction{Op: cbClassALU | 0x90, K: 10}, asm.Instructions{asm.Mod.Imm32(asm.R0, 10)}},
		{"and #k", cbpf.Instruction{Op: cbClassALU | 0x50, K: 0xf0}, asm.Instructions{asm.And.Imm32(asm.R0, 0xf0)}},
		{"or x", cbpf.Instruction{Op: cbClassALU | 0x40 | cbSrcX}, asm.Instructions{asm.Or.Reg32(asm.R0, asm.R1)}},
		{"xor #k", cbpf.Instruction{Op: cbClassALU | 0xa0, K: 1}, asm.Instructions{asm.Xor.Imm32(asm.R0, 1)}},
		{"lsh #k", cbpf.Instruction{Op: cbClassALU | 0x60, K: 31}, asm.Instructions{asm.LSh.Imm32(asm.R0, 31)}},
		{"rsh x", cbpf.Instruction{Op: cbClassALU | 0x70 | cbSrcX}, asm.Instructions{asm.Mov.Reg32(asm.R4, asm.R1), asm.And.Imm32(asm.R4, 31), asm.RSh.Reg32(asm.R0, asm.R4)}},
		{"neg", cbpf.Instruction{Op: cbClassALU | 0x80}, asm.Instructions{asm.Neg.Imm32(asm.R0, 0)}},
		{"xor x ancillary", cbpf.Instruction{Op: cbLdB, K: 0xfffff000 + cbAdXorX}, asm.Instructions{asm.Xor.Reg32(asm.R0, asm.R1)}},
		{"ld [0]", cbpf.Instruction{Op: cbLdW}, ldAbs(asm.R0, asm.Word, 0)},
		{"ldh [12]", cbpf.Instruction{Op: cbLdH, K: 12}, ldAbs(asm.R0, asm.Half, 12)},
		{"ldb [net+9]", cbpf.Instruction{Op: cbLdB, K: 0xfff00000 + 9}, ldAbs(asm.R0, asm.Byte, 9)},
		{"ldxb 4*([0]&0xf)", cbpf.Instruction{Op: cbLdxMsh}, append(ldAbs(asm.R1, asm.Byte, 0), asm.And.Imm32(asm.R1, 0xf), asm.LSh.Imm32(asm.R1, 2))},
		{"ld [x + 4]", cbpf.Instruction{Op: cbLdIndW, K: 4}, ldInd(asm.Word, 4)},
		{"ldh [x + 0]", cbpf.Instruction{Op: cbLdIndH}, ldInd(asm.Half, 0)},
		{"ldb [x - 1]", cbpf.Instruction{Op: cbLdIndB, K: 0xffffffff}, ldInd(asm.Byte, -1)},
		{"ld [0x8000] (variable path)", cbpf.Instruction{Op: cbLdW, K: 0x8000}, asm.Instructions{
			asm.Mov.Imm(asm.R4, 0x8000),
			asm.Mov.Reg(asm.R5, asm.R4), asm.Add.Imm(asm.R5, 4), asm.JGT.Reg(asm.R5, asm.R2, "t_ret0"),
			asm.JGT.Imm(asm.R4, CBPFMaxOffset, "t_h0"),
			asm.Mov.Reg(asm.R0, asm.R3), asm.Add.Reg(asm.R0, asm.R4), asm.Mov.Reg(asm.R5, asm.R0), asm.Add.Imm(asm.R5, 4),
			dataEnd, asm.JGT.Reg(asm.R5, asm.R4, "t_h0"),
			asm.LoadMem(asm.R0, asm.R0, 0, asm.Word), asm.HostTo(asm.BE, asm.R0, asm.Word),
		}},
	}
	for _, tt := range tests {
		prog := []cbpf.Instruction{tt.in, ret}
		if tt.in.Op == cbSt || tt.in.Op == cbStx {
			prog = append(prog[:1], cbpf.Instruction{Op: cbLdMem, K: tt.in.K}, ret)
		}
		insns, err := TranslateCBPF(cbCompile(t, prog...), cbTestOpts)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		deep := "t_i0"
		for _, in := range insns {
			if in.Symbol() == "t_h0" {
				deep = "t_h0"
			}
		}
		prologue := cbPrologue(deep)
		if got := cbShapes(insns[:len(prologue)]); fmt.Sprint(got) != fmt.Sprint(cbShapes(prologue)) {
			t.Fatalf("%s: prologue\n%v\nwant\n%v", tt.name, got, cbShapes(prologue))
		}
		body := cbBody(t, insns, 0)
		want := cbShapes(tt.want)
		got := cbShapes(body)
		for i := range got {
			if strings.HasPrefix(got[i].ref, "t_ind") {
				got[i].ref = "POS"
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: got\n%v\nwant\n%v", tt.name, body, tt.want)
		}
		if src := body[0].Source(); src == nil || !strings.Contains(src.String(), "(000) "+strings.Fields(tt.name)[0]) {
			t.Errorf("%s: first instruction's source is %v", tt.name, src)
		}
	}
}

// TestCBPFHelperCopy checks the helper copy's loads: bpf_xdp_load_bytes at
// the network header's offset plus the load's, A or X spilled across the
// call and the length read again; a failing helper aborts, or returns 0
// with InBuffer, which leaves Abort unused.
func TestCBPFHelperCopy(t *testing.T) {
	ind := asm.Instructions{
		asm.Mov.Reg32(asm.R4, asm.R1), asm.Add.Imm32(asm.R4, 4),
		asm.StoreMem(asm.R10, -256+cbLaunder, asm.R4, asm.Word),
		asm.LoadMem(asm.R4, asm.R10, -256+cbLaunder, asm.Word),
		asm.JSGE.Imm32(asm.R4, 0, "POS"),
		asm.JSLT.Imm32(asm.R4, cbSkfNetOff, "t_ret0"),
		asm.Add.Imm32(asm.R4, -cbSkfNetOff),
	}
	for _, inBuffer := range []bool{false, true} {
		lost := "t_abort"
		opts := cbTestOpts
		if inBuffer {
			lost, opts.InBuffer, opts.Abort = "t_ret0", true, ""
		}
		tests := []struct {
			name string
			in   cbpf.Instruction
			want asm.Instructions
		}{
			{"ldh [12]", cbpf.Instruction{Op: cbLdH, K: 12}, cbHelperLoad(asm.Instructions{asm.Mov.Imm(asm.R4, 12)}, asm.R0, asm.R1, asm.Half, lost)},
			{"ld [0xf001]", cbpf.Instruction{Op: cbLdW, K: CBPFMaxOffset + 1}, cbHelperLoad(asm.Instructions{asm.Mov.Imm(asm.R4, CBPFMaxOffset+1)}, asm.R0, asm.R1, asm.Word, lost)},
			{"ld [x + 4]", cbpf.Instruction{Op: cbLdIndW, K: 4}, cbHelperLoad(ind, asm.R0, asm.R1, asm.Word, lost)},
			{"ldxb 4*([14]&0xf)", cbpf.Instruction{Op: cbLdxMsh, K: 14},
				append(cbHelperLoad(asm.Instructions{asm.Mov.Imm(asm.R4, 14)}, asm.R1, asm.R0, asm.Byte, lost), asm.And.Imm32(asm.R1, 0xf), asm.LSh.Imm32(asm.R1, 2))},
		}
		for _, tt := range tests {
			insns, err := TranslateCBPF(cbCompile(t, tt.in, cbpf.Instruction{Op: cbRetA}), opts)
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			got := cbShapes(cbBodyAt(t, insns, "t_h0"))
			for i := range got {
				if strings.HasPrefix(got[i].ref, "t_ind") {
					got[i].ref = "POS"
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(cbShapes(tt.want)) {
				t.Errorf("%s (InBuffer %v): got\n%v\nwant\n%v", tt.name, inBuffer, got, cbShapes(tt.want))
			}
			for _, in := range insns {
				if ref := in.Reference(); inBuffer && (ref == "t_abort" || ref == "abort") {
					t.Errorf("%s: InBuffer, but %v", tt.name, in)
				}
			}
		}
	}
}

func TestCBPFJumpsAndReturns(t *testing.T) {
	jeq := uint16(cbClassJMP | 0x10)
	tests := []struct {
		name string
		prog []cbpf.Instruction
		want asm.Instructions // body of instruction 0
	}{
		{"ret #k", []cbpf.Instruction{{Op: cbRetK, K: 65535}}, asm.Instructions{asm.Mov.Imm32(asm.R0, 65535), asm.Ja.Label("done")}},
		{"ret a", []cbpf.Instruction{{Op: cbRetA}}, asm.Instructions{asm.Ja.Label("done")}},
		{"jeq jt 0 jf 1: negated", []cbpf.Instruction{{Op: jeq, Jf: 1, K: 0x800}, {Op: cbRetK, K: 1}, {Op: cbRetK}},
			asm.Instructions{asm.JNE.Imm32(asm.R0, 0x800, "t_i2")}},
		{"jgt jt 1 jf 0", []cbpf.Instruction{{Op: cbClassJMP | 0x20, Jt: 1, K: 0xffffffff}, {Op: cbRetK, K: 1}, {Op: cbRetK}},
			asm.Instructions{asm.JGT.Imm32(asm.R0, -1, "t_i2")}},
		{"jge x jt 0 jf 1", []cbpf.Instruction{{Op: cbClassJMP | 0x30 | cbSrcX, Jf: 1}, {Op: cbRetK, K: 1}, {Op: cbRetK}},
			asm.Instructions{asm.JLT.Reg32(asm.R0, asm.R1, "t_i2")}},
		{"jset jt 0 jf 1: no negation", []cbpf.Instruction{{Op: cbClassJMP | 0x40, Jf: 1, K: 2}, {Op: cbRetK, K: 1}, {Op: cbRetK}},
			asm.Instructions{asm.JSet.Imm32(asm.R0, 2, "t_i1"), asm.Ja.Label("t_i2")}},
		{"jeq jt 1 jf 2", []cbpf.Instruction{{Op: jeq, Jt: 1, Jf: 2}, {Op: cbRetK, K: 1}, {Op: cbRetK, K: 2}, {Op: cbRetK, K: 3}},
			asm.Instructions{asm.JEq.Imm32(asm.R0, 0, "t_i2"), asm.Ja.Label("t_i3")}},
		{"jeq jt 2 jf 2: unconditional", []cbpf.Instruction{{Op: jeq, Jt: 2, Jf: 2}, {Op: cbRetK, K: 1}, {Op: cbRetK, K: 2}, {Op: cbRetK, K: 3}},
			asm.Instructions{asm.Ja.Label("t_i3")}},
		{"ja 1", []cbpf.Instruction{{Op: cbJa, K: 1}, {Op: cbRetK, K: 1}, {Op: cbRetK}},
			asm.Instructions{asm.Ja.Label("t_i2")}},
		{"ld below SKF_LL_OFF returns 0", []cbpf.Instruction{{Op: cbLdW, K: 0xffdfffff}, {Op: cbRetK, K: 1}},
			asm.Instructions{asm.Mov.Imm32(asm.R0, 0), asm.Ja.Label("done")}},
		{"ld past CBPFMaxOffset: the helper copy", []cbpf.Instruction{{Op: cbLdB, K: CBPFMaxOffset + 1}, {Op: cbRetK, K: 1}},
			asm.Instructions{asm.Ja.Label("t_h0")}},
	}
	for _, tt := range tests {
		insns, err := TranslateCBPF(cbCompile(t, tt.prog...), cbTestOpts)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		body := cbBody(t, insns, 0)
		if fmt.Sprint(cbShapes(body)) != fmt.Sprint(cbShapes(tt.want)) {
			t.Errorf("%s: got\n%v\nwant\n%v", tt.name, body, tt.want)
		}
	}
	// Unreachable instructions get no code: after a return, after a load
	// that always returns 0; in the direct copy, after a load only the
	// helper copy serves (the helper copy has it).
	insns, err := TranslateCBPF(cbCompile(t, cbpf.Instruction{Op: cbLdW, K: CBPFMaxOffset + 1}, cbpf.Instruction{Op: cbLdImm, K: 1}, cbpf.Instruction{Op: cbRetA}), cbTestOpts)
	if err != nil {
		t.Fatal(err)
	}
	if syms := fmt.Sprint(insns); strings.Contains(syms, "t_i1:") || !strings.Contains(syms, "t_h1:") {
		t.Errorf("ld past CBPFMaxOffset: instruction 1 not in the helper copy only:\n%v", insns)
	}
	for _, prog := range [][]cbpf.Instruction{
		{{Op: cbRetK}, {Op: cbLdImm, K: 1}, {Op: cbRetA}},
		{{Op: cbLdW, K: 0xffdfffff}, {Op: cbLdImm, K: 1}, {Op: cbRetA}},
		{{Op: cbJa, K: 1}, {Op: cbLdImm, K: 1}, {Op: cbRetA}},
	} {
		insns, err := TranslateCBPF(cbCompile(t, prog...), cbTestOpts)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range insns {
			if in.Symbol() == "t_i1" || in.Constant == 1 && in.OpCode == asm.Mov.Op32(asm.ImmSource) {
				t.Errorf("%v: unreachable instruction 1 translated:\n%v", prog, insns)
			}
		}
	}
}

// TestCBPFLabels checks that every jump goes forward to a label the
// translation defines (or to Done/Abort), that join points launder A and
// X, and that Long makes the exits gotol.
func TestCBPFLabels(t *testing.T) {
	// udp dst port 53, from tcpdump -ddd.
	prog, err := cbpf.ParseBytecode("19,48 0 0 0,84 0 0 240,21 0 4 96,48 0 0 6,21 0 13 17,40 0 0 42,21 10 11 53,48 0 0 0,84 0 0 240,21 0 8 64,48 0 0 9,21 0 6 17,40 0 0 6,69 4 0 8191,177 0 0 0,72 0 0 2,21 0 1 53,6 0 0 65535,6 0 0 0")
	if err != nil {
		t.Fatal(err)
	}
	f := cbCompile(t, prog...)
	for _, long := range []bool{false, true} {
		opts := cbTestOpts
		opts.Long = long
		insns, err := TranslateCBPF(f, opts)
		if err != nil {
			t.Fatal(err)
		}
		all := append(append(asm.Instructions(nil), insns...),
			asm.Mov.Imm(asm.R0, 1).WithSymbol("done"), asm.Return(),
			asm.Mov.Imm(asm.R0, 2).WithSymbol("abort"), asm.Return())
		offs, err := all.SymbolOffsets()
		if err != nil {
			t.Fatal(err)
		}
		for i, in := range all {
			ref := in.Reference()
			if ref == "" {
				continue
			}
			to, ok := offs[ref]
			if !ok {
				t.Errorf("long %v: instruction %d jumps to undefined %q", long, i, ref)
			} else if to <= i {
				t.Errorf("long %v: instruction %d jumps backward to %q", long, i, ref)
			}
			if (ref == "done" || ref == "abort") && (in.OpCode.Class() == asm.Jump32Class) != long {
				t.Errorf("long %v: exit %v", long, in)
			}
			if ref != "done" && ref != "abort" && in.OpCode.Class() == asm.Jump32Class && in.OpCode.JumpOp() == asm.Ja {
				t.Errorf("long %v: internal jump %v is long", long, in)
			}
		}
		for sym := range offs {
			if sym != "done" && sym != "abort" && !strings.HasPrefix(sym, "t_") {
				t.Errorf("symbol %q without the prefix", sym)
			}
		}
		// The only joins are 17 (ret #65535) and 18 (ret #0), which read
		// neither A nor X: no laundering but that of the ldh [x + 2] offset.
		// (The helper copy spills A or X to the same slot across its
		// calls: a store not read back at once.)
		launder := opts.Scratch + cbLaunder
		for i, in := range insns[:len(insns)-1] {
			next := insns[i+1]
			if in.OpCode.Class().IsStore() && in.Offset == launder && in.Src != asm.R4 &&
				next.OpCode.Class().IsLoad() && next.Offset == launder && next.Dst == in.Src {
				t.Errorf("unexpected laundering of %v in a program whose joins are all RET K", in.Src)
			}
		}
		text := fmt.Sprint(insns)
		for pc := range prog {
			if !strings.Contains(text, fmt.Sprintf("(%03d) ", pc)) {
				t.Errorf("no source comment for classic instruction %d in\n%s", pc, text)
			}
		}
	}
	// A join that reads A: laundered.
	join := cbCompile(t,
		cbpf.Instruction{Op: cbClassJMP | 0x10, Jt: 0, Jf: 1, K: 1},
		cbpf.Instruction{Op: cbLdImm, K: 5},
		cbpf.Instruction{Op: cbRetA})
	insns, err := TranslateCBPF(join, cbTestOpts)
	if err != nil {
		t.Fatal(err)
	}
	l := cbTestOpts.Scratch + cbLaunder
	want := cbShapes(asm.Instructions{
		asm.StoreMem(asm.R10, l, asm.R0, asm.Word), asm.LoadMem(asm.R0, asm.R10, l, asm.Word),
		asm.StoreMem(asm.R10, l, asm.R1, asm.Word), asm.LoadMem(asm.R1, asm.R10, l, asm.Word),
		asm.Ja.Label("done"),
	})
	if got := cbShapes(cbBody(t, insns, 2)); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("join: got\n%v\nwant\n%v", got, want)
	}
}

func TestCBPFErrors(t *testing.T) {
	f := cbCompile(t, cbpf.Instruction{Op: cbRetA})
	mod := func(m func(*CBPFOptions)) CBPFOptions {
		o := cbTestOpts
		m(&o)
		return o
	}
	tests := []struct {
		name string
		f    *cbpf.Filter
		opts CBPFOptions
	}{
		{"nil filter", nil, cbTestOpts},
		{"zero filter", &cbpf.Filter{}, cbTestOpts},
		{"ctx in R1", f, mod(func(o *CBPFOptions) { o.Ctx = asm.R1 })},
		{"no Done", f, mod(func(o *CBPFOptions) { o.Done = "" })},
		{"no Abort", f, mod(func(o *CBPFOptions) { o.Abort = "" })},
		{"no Done, InBuffer", f, mod(func(o *CBPFOptions) { o.Done, o.InBuffer = "", true })},
		{"scratch misaligned", f, mod(func(o *CBPFOptions) { o.Scratch = -260 })},
		{"scratch too high", f, mod(func(o *CBPFOptions) { o.Scratch = -128 })},
		{"scratch too low", f, mod(func(o *CBPFOptions) { o.Scratch = -520 })},
		{"L3Off in R3", f, mod(func(o *CBPFOptions) { o.L3Off = CBPFReg(asm.R3) })},
		{"L3Len in R10", f, mod(func(o *CBPFOptions) { o.L3Len = CBPFReg(asm.R10) })},
		{"L3Len based on R2", f, mod(func(o *CBPFOptions) { o.L3Len = CBPFMem(asm.R2, 0) })},
	}
	for _, tt := range tests {
		if _, err := TranslateCBPF(tt.f, tt.opts); !errors.Is(err, ErrCBPFOptions) {
			t.Errorf("%s: err = %v, want ErrCBPFOptions", tt.name, err)
		}
	}
	// What cbpf.Compile refuses never reaches TranslateCBPF.
	for _, prog := range [][]cbpf.Instruction{
		{{Op: cbLdW, K: 0xfffff000 + 20}, {Op: cbRetA}}, // SKF_AD_MARK
		{{Op: cbLdB, K: 0xffe00000 + 12}, {Op: cbRetA}}, // SKF_LL_OFF + 12
		{{Op: cbClassALU | 0x30}, {Op: cbRetA}},         // div #0
	} {
		if _, err := cbpf.Compile(prog); err == nil {
			t.Errorf("Compile(%v) accepted", prog)
		}
	}
	// Two translations with distinct prefixes share no label.
	a, _ := TranslateCBPF(f, cbTestOpts)
	b, _ := TranslateCBPF(f, mod(func(o *CBPFOptions) { o.Prefix = "u_" }))
	syms := map[string]bool{}
	for _, in := range append(a, b...) {
		if s := in.Symbol(); s != "" {
			if syms[s] {
				t.Errorf("symbol %q defined twice", s)
			}
			syms[s] = true
		}
	}
}

func TestCBPFDisasm(t *testing.T) {
	for _, tt := range []struct {
		in   cbpf.Instruction
		want string
	}{
		{cbpf.Instruction{Op: cbLdH, K: 12}, "ldh [12]"},
		{cbpf.Instruction{Op: cbLdB, K: 0xfff00009}, "ldb [-1048567]"},
		{cbpf.Instruction{Op: cbLdIndB, K: 0xffffffff}, "ldb [x + -1]"},
		{cbpf.Instruction{Op: cbLdxMsh, K: 14}, "ldxb 4*([14]&0xf)"},
		{cbpf.Instruction{Op: cbClassJMP | 0x10, Jt: 0, Jf: 4, K: 0x800}, "jeq #0x800 jt 4 jf 8"},
		{cbpf.Instruction{Op: cbClassALU | 0x50 | cbSrcX}, "and x"},
		{cbpf.Instruction{Op: cbClassALU | 0x80}, "neg"},
		{cbpf.Instruction{Op: cbRetK, K: 65535}, "ret #65535"},
		{cbpf.Instruction{Op: cbLdB, K: 0xfffff000 + cbAdXorX}, "xor x (SKF_AD_ALU_XOR_X)"},
		{cbpf.Instruction{Op: cbSt, K: 2}, "st M[2]"},
		{cbpf.Instruction{Op: cbLdLen}, "ld #pktlen"},
	} {
		if got := CBPFDisasm(3, tt.in); got != tt.want {
			t.Errorf("CBPFDisasm(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
