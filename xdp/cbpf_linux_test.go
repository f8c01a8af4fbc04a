//go:build linux

package xdp

import (
	"encoding/binary"
	"fmt"
	"math/rand"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/sluice-project/sluice/engine/cbpf"
	"github.com/sluice-project/sluice/internal/testnet"
	"github.com/sluice-project/sluice/packet"
)

// cbHarnesses is the number of cbHarness variants.
const cbHarnesses = 4

// The harness program's return values.
const (
	cbHarnessNotIP = 0 // no length field to read: nothing ran
	cbHarnessAbort = 1 // the translated code jumped to Abort
	cbHarnessDone  = 2 // the result is in the first 4 bytes of the frame
)

// cbHarness wraps translated code in a minimal XDP program: parse Ethernet
// and one optional 802.1Q tag, read the IPv4 total length or the IPv6
// payload length + 40, run the translation, write its result over the
// first four bytes of the frame (native endian) and return
// cbHarnessDone; cbHarnessAbort on Abort.
//
// Variant 0 keeps the L3 offset in a map value (a scalar the verifier
// knows nothing about, as the compiled filter launders it) and the length
// in R7; variant 1 keeps the offset in R8 (a constant per path) and the
// length in a stack slot; variant 2 is variant 0 with long jumps; variant
// 3 is variant 0 running the helper copy (every load through
// bpf_xdp_load_bytes), as a network header beyond CBPFMaxL3Off does.
func cbHarness(f *cbpf.Filter, variant int, m *ebpf.Map) (asm.Instructions, error) {
	opts := CBPFOptions{Ctx: asm.R6, Done: "done", Abort: "abort", Prefix: "bpf_"}
	switch variant {
	case 0, 2, 3:
		opts.L3Off, opts.L3Len, opts.Scratch = CBPFMem(asm.R9, 0), CBPFReg(asm.R7), -256
		opts.Long = variant == 2
		opts.helperOnly = variant == 3
	case 1:
		opts.L3Off, opts.L3Len, opts.Scratch = CBPFReg(asm.R8), CBPFMem(asm.R10, -16), -16-CBPFScratchSize
	}
	code, err := TranslateCBPF(f, opts)
	if err != nil {
		return nil, err
	}
	insns := asm.Instructions{
		// The first instruction needs a Source when any has one
		// (cilium/ebpf then emits line info, which must start at 0).
		asm.Mov.Reg(asm.R6, asm.R1).WithSource(asm.Comment("cbpf test harness")),
		asm.Mov.Imm(asm.R1, 0),
		asm.StoreMem(asm.R10, -8, asm.R1, asm.DWord),
		asm.LoadMapPtr(asm.R1, m.FD()),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, -8),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "notip"),
		asm.Mov.Reg(asm.R9, asm.R0),
		asm.LoadMem(asm.R7, asm.R6, 0, asm.Word),
		asm.LoadMem(asm.R8, asm.R6, 4, asm.Word),
		asm.Mov.Reg(asm.R1, asm.R7),
		asm.Add.Imm(asm.R1, 18),
		asm.JGT.Reg(asm.R1, asm.R8, "untagged"),
		asm.LoadMem(asm.R2, asm.R7, 12, asm.Half),
		asm.JNE.Imm(asm.R2, int32(swap16(packet.EtherTypeVLAN)), "untagged"),
		asm.LoadMem(asm.R2, asm.R7, 16, asm.Half),
		asm.Mov.Imm(asm.R5, 18),
		asm.Ja.Label("l3"),
		asm.Mov.Reg(asm.R1, asm.R7).WithSymbol("untagged"),
		asm.Add.Imm(asm.R1, 14),
		asm.JGT.Reg(asm.R1, asm.R8, "notip"),
		asm.LoadMem(asm.R2, asm.R7, 12, asm.Half),
		asm.Mov.Imm(asm.R5, 14),
		// R5 = L3 offset, R2 = EtherType (as loaded).
		asm.StoreMem(asm.R9, 0, asm.R5, asm.DWord).WithSymbol("l3"),
		asm.Add.Reg(asm.R7, asm.R5), // R7 = network header
		asm.JEq.Imm(asm.R2, int32(swap16(packet.EtherTypeIPv4)), "v4"),
		asm.JEq.Imm(asm.R2, int32(swap16(packet.EtherTypeIPv6)), "v6"),
		asm.Ja.Label("notip"),
		asm.Mov.Reg(asm.R1, asm.R7).WithSymbol("v4"),
		asm.Add.Imm(asm.R1, 4),
		asm.JGT.Reg(asm.R1, asm.R8, "notip"),
		asm.LoadMem(asm.R3, asm.R7, 2, asm.Half),
		asm.HostTo(asm.BE, asm.R3, asm.Half),
		asm.Ja.Label("len"),
		asm.Mov.Reg(asm.R1, asm.R7).WithSymbol("v6"),
		asm.Add.Imm(asm.R1, 6),
		asm.JGT.Reg(asm.R1, asm.R8, "notip"),
		asm.LoadMem(asm.R3, asm.R7, 4, asm.Half),
		asm.HostTo(asm.BE, asm.R3, asm.Half),
		asm.Add.Imm(asm.R3, 40),
		// R3 = datagram length. Fill the registers the variant names.
		asm.Mov.Reg(asm.R7, asm.R3).WithSymbol("len"),
		asm.StoreMem(asm.R10, -16, asm.R3, asm.DWord),
		asm.Mov.Reg(asm.R8, asm.R5),
	}
	// Clobber R0-R5 so that the translation cannot rely on them.
	for r := asm.R0; r <= asm.R5; r++ {
		insns = append(insns, asm.Mov.Imm(r, -1))
	}
	insns = append(insns, code...)
	insns = append(insns,
		asm.LoadMem(asm.R1, asm.R6, 0, asm.Word).WithSymbol("done"),
		asm.LoadMem(asm.R3, asm.R6, 4, asm.Word),
		asm.Mov.Reg(asm.R2, asm.R1),
		asm.Add.Imm(asm.R2, 4),
		asm.JGT.Reg(asm.R2, asm.R3, "notip"),
		asm.StoreMem(asm.R1, 0, asm.R0, asm.Word),
		asm.Mov.Imm(asm.R0, cbHarnessDone),
		asm.Return(),
		asm.Mov.Imm(asm.R0, cbHarnessNotIP).WithSymbol("notip"),
		asm.Return(),
	)
	// Only loads can abort (a program without any does not): the
	// verifier refuses unreachable code.
	for _, in := range code {
		if in.Reference() == "abort" {
			insns = append(insns,
				asm.Mov.Imm(asm.R0, cbHarnessAbort).WithSymbol("abort"),
				asm.Return())
			break
		}
	}
	return insns, nil
}

// cbRunner loads harnesses and runs frames through them.
type cbRunner struct {
	t testing.TB
	m *ebpf.Map
}

func newCBPFRunner(t testing.TB) *cbRunner {
	m, err := ebpf.NewMap(&ebpf.MapSpec{Name: "cbpf_l3off", Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return &cbRunner{t: t, m: m}
}

func (r *cbRunner) load(f *cbpf.Filter, variant int) (*ebpf.Program, error) {
	insns, err := cbHarness(f, variant, r.m)
	if err != nil {
		return nil, err
	}
	return ebpf.NewProgramWithOptions(&ebpf.ProgramSpec{
		Name: "cbpf_test", Type: ebpf.XDP, License: "GPL", Instructions: insns,
	}, ebpf.ProgramOptions{LogDisabled: false})
}

// cbOutcome is what the harness did with one frame.
type cbOutcome struct {
	ret    uint32
	result uint32
}

func (r *cbRunner) run(p *ebpf.Program, frame []byte) (cbOutcome, error) {
	out := make([]byte, len(frame)+64)
	ret, err := p.Run(&ebpf.RunOptions{Data: frame, DataOut: out})
	if err != nil {
		return cbOutcome{}, err
	}
	o := cbOutcome{ret: ret}
	if ret == cbHarnessDone {
		o.result = binary.NativeEndian.Uint32(out)
	}
	return o, nil
}

// cbDatagram returns what the harness reads from frame: the L3 offset, the
// datagram length, and whether it has one.
func cbDatagram(frame []byte) (l3off, n int, ok bool) {
	if len(frame) < 14 {
		return 0, 0, false
	}
	l3off, et := 14, binary.BigEndian.Uint16(frame[12:])
	if len(frame) >= 18 && et == packet.EtherTypeVLAN {
		l3off, et = 18, binary.BigEndian.Uint16(frame[16:])
	}
	l3 := frame[l3off:]
	switch {
	case et == packet.EtherTypeIPv4 && len(l3) >= 4:
		return l3off, int(binary.BigEndian.Uint16(l3[2:])), true
	case et == packet.EtherTypeIPv6 && len(l3) >= 6:
		return l3off, int(binary.BigEndian.Uint16(l3[4:])) + 40, true
	}
	return 0, 0, false
}

// check runs frame through p and compares with f.Run. It returns a
// description of the mismatch, or "", and whether the frame aborted.
func (r *cbRunner) check(f *cbpf.Filter, p *ebpf.Program, frame []byte) (string, bool) {
	got, err := r.run(p, frame)
	if err != nil {
		return fmt.Sprintf("run: %v", err), false
	}
	l3off, n, ok := cbDatagram(frame)
	if !ok {
		if got.ret != cbHarnessNotIP {
			return fmt.Sprintf("no datagram, but the harness returned %d", got.ret), false
		}
		return "", false
	}
	avail := frame[l3off:]
	if n <= len(avail) {
		want := f.Run(avail[:n])
		if got.ret != cbHarnessDone || got.result != want {
			return fmt.Sprintf("datagram of %d bytes: XDP returned %d result %#x, Run %#x", n, got.ret, got.result, want), false
		}
		return "", false
	}
	// Truncated: the classic program may need bytes the frame lacks.
	pad := func(b byte) []byte {
		d := make([]byte, n)
		copy(d, avail)
		for i := len(avail); i < n; i++ {
			d[i] = b
		}
		return d
	}
	w0, w1 := f.Run(pad(0)), f.Run(pad(0xff))
	switch got.ret {
	case cbHarnessAbort:
		return "", true
	case cbHarnessDone:
		if got.result != w0 || got.result != w1 {
			return fmt.Sprintf("truncated datagram (%d of %d bytes): XDP result %#x without reading past the frame, Run %#x / %#x", len(avail), n, got.result, w0, w1), false
		}
		return "", false
	}
	return fmt.Sprintf("truncated datagram: harness returned %d", got.ret), false
}

// cbFrames are generated frames over IPv4/IPv6, TCP/UDP/ICMP, fragments,
// options, VLAN tags, padding, bad length fields and truncation.
func cbFrames(rnd *rand.Rand) [][]byte {
	s10, s11 := netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("11.1.2.3")
	d4 := netip.MustParseAddr("192.0.2.1")
	s6, d6 := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	var frames [][]byte
	add := func(f []byte) { frames = append(frames, f) }
	l4s := []struct {
		proto uint8
		b     []byte
	}{
		{packet.ProtoTCP, packet.BuildTCP(1234, 80, packet.TCPSyn, nil)},
		{packet.ProtoTCP, packet.BuildTCP(1234, 80, packet.TCPSyn|packet.TCPAck, []byte("GET / HTTP/1.0\r\n"))},
		{packet.ProtoTCP, packet.BuildTCP(53, 53, packet.TCPAck, nil)},
		{packet.ProtoTCP, packet.BuildTCPWithOptions(1, 443, packet.TCPSyn, []byte{2, 4, 5, 0xb4, 1, 3, 3, 7}, nil)},
		{packet.ProtoUDP, packet.BuildUDP(5353, 53, []byte{0x12, 0x34, 0, 1})},
		{packet.ProtoUDP, packet.BuildUDP(53, 54, nil)},
		{packet.ProtoUDP, packet.BuildUDP(1, 2, []byte{0x43, 0x21})},
		{packet.ProtoICMP, packet.BuildICMP(8, 0, 0x10001, []byte("ping"))},
		{packet.ProtoICMP, packet.BuildICMP(3, 3, 0, nil)},
		{packet.ProtoTCP, []byte{0, 1, 0, 80}}, // short TCP header
	}
	for _, src := range []netip.Addr{s10, s11} {
		for _, l4 := range l4s {
			for _, ttl := range []uint8{1, 63, 64, 255} {
				add(packet.BuildIPv4(src, d4, l4.proto, l4.b, packet.WithTTL(ttl)))
			}
			add(packet.BuildIPv4(src, d4, l4.proto, l4.b, packet.WithFragment(0, true)))
			add(packet.BuildIPv4(src, d4, l4.proto, l4.b, packet.WithFragment(8, false)))
			add(packet.BuildIPv4(src, d4, l4.proto, l4.b, packet.WithFragment(1480, true)))
			add(packet.BuildIPv4(src, d4, l4.proto, l4.b, packet.WithIPv4Options([]byte{1, 1, 1, 0})))
			add(packet.BuildIPv4(src, d4, l4.proto, l4.b, packet.WithIPv4Options(make([]byte, 40))))
			add(packet.BuildIPv4(src, d4, l4.proto, l4.b, packet.WithVLAN(7)))
			add(packet.BuildIPv4(src, d4, l4.proto, l4.b, packet.WithTrailer([]byte{0x45, 0, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 7, 8})))
			add(packet.BuildIPv4(src, d4, l4.proto, l4.b, packet.WithLengthField(20+len(l4.b)-3)))
			add(packet.BuildIPv4(src, d4, l4.proto, l4.b, packet.WithLengthField(20+len(l4.b)+9)))
			add(packet.BuildIPv4(src, d4, l4.proto, l4.b, packet.WithLengthField(0)))
			add(packet.BuildIPv4(src, d4, l4.proto, l4.b, packet.WithLengthField(3)))
			add(packet.BuildIPv4(src, d4, l4.proto, l4.b, packet.WithVersion(6)))
		}
	}
	v6l4 := []struct {
		proto uint8
		b     []byte
	}{
		{packet.ProtoTCP, packet.BuildTCP(1234, 80, packet.TCPSyn, nil)},
		{packet.ProtoUDP, packet.BuildUDP(5353, 53, []byte{0x12, 0x34})},
		{packet.ProtoUDP, packet.BuildUDP(1, 80, nil)},
		{packet.ProtoICMPv6, packet.BuildICMP(128, 0, 1, []byte("ping6"))},
	}
	for _, l4 := range v6l4 {
		add(packet.BuildIPv6(s6, d6, l4.proto, l4.b))
		add(packet.BuildIPv6(s6, d6, l4.proto, l4.b, packet.WithVLAN(9)))
		add(packet.BuildIPv6(s6, d6, l4.proto, l4.b, packet.WithHopByHop(packet.TLV(1, []byte{0, 0, 0, 0}))))
		add(packet.BuildIPv6(s6, d6, l4.proto, l4.b, packet.WithFragment(0, true)))
		add(packet.BuildIPv6(s6, d6, l4.proto, l4.b, packet.WithTrailer([]byte{1, 2, 3, 4, 5, 6})))
		add(packet.BuildIPv6(s6, d6, l4.proto, l4.b, packet.WithLengthField(len(l4.b)+20)))
	}
	// Truncations of some of them.
	n := len(frames)
	for i := 0; i < n; i += 3 {
		f := frames[i]
		for _, cut := range []int{14, 15, 18, 20, 24, 33, 34, 35, 40, 47, 54, 60} {
			if cut < len(f) {
				add(append([]byte(nil), f[:cut]...))
			}
		}
		if len(f) > 15 {
			add(append([]byte(nil), f[:14+rnd.Intn(len(f)-14)]...))
		}
	}
	return frames
}

// cbRandomFrame is a random datagram with a consistent (or, sometimes,
// inconsistent) length field, in an Ethernet frame.
func cbRandomFrame(rnd *rand.Rand) []byte {
	v6 := rnd.Intn(3) == 0
	n := rnd.Intn(120)
	if v6 {
		n = 40 + rnd.Intn(100)
	}
	d := make([]byte, n)
	rnd.Read(d)
	if n > 0 {
		if v6 {
			d[0] = 0x60 | d[0]&0xf
		} else if rnd.Intn(4) != 0 {
			d[0] = 0x45 + byte(rnd.Intn(3))
		}
	}
	field := n
	switch rnd.Intn(8) {
	case 0:
		field = rnd.Intn(n + 1)
	case 1:
		field = n + 1 + rnd.Intn(16)
	}
	et := packet.EtherTypeIPv4
	if v6 {
		et = packet.EtherTypeIPv6
		if n >= 6 {
			binary.BigEndian.PutUint16(d[4:], uint16(max(field-40, 0)))
		}
	} else if n >= 4 {
		binary.BigEndian.PutUint16(d[2:], uint16(field))
	}
	var f []byte
	f = append(f, 2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1)
	if rnd.Intn(5) == 0 {
		f = append(f, 0x81, 0, 0, 5)
	}
	f = append(f, byte(et>>8), byte(et))
	f = append(f, d...)
	if rnd.Intn(3) == 0 {
		tr := make([]byte, rnd.Intn(20))
		rnd.Read(tr)
		f = append(f, tr...)
	}
	return f
}

func cbGoldens(t testing.TB) map[string]*cbpf.Filter {
	paths, err := filepath.Glob("../engine/cbpf/testdata/*.golden")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no goldens: %v", err)
	}
	out := map[string]*cbpf.Filter{}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var line string
		for _, l := range strings.Split(string(data), "\n") {
			if l != "" && !strings.HasPrefix(l, "#") {
				line = l
			}
		}
		prog, err := cbpf.ParseBytecode(line)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		f, err := cbpf.Compile(prog)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		out[strings.TrimSuffix(filepath.Base(p), ".golden")] = f
	}
	return out
}

// TestCBPFGoldensXDP runs tcpdump's programs, translated, over generated
// frames and requires engine/cbpf's result for each.
func TestCBPFGoldensXDP(t *testing.T) {
	testnet.RequireForTest(t)
	r := newCBPFRunner(t)
	rnd := rand.New(rand.NewSource(1))
	frames := cbFrames(rnd)
	for range 300 {
		frames = append(frames, cbRandomFrame(rnd))
	}
	runs, matches, aborts := 0, 0, 0
	for name, f := range cbGoldens(t) {
		for variant := range cbHarnesses {
			p, err := r.load(f, variant)
			if err != nil {
				t.Fatalf("%s variant %d: %v", name, variant, err)
			}
			for _, fr := range frames {
				bad, aborted := r.check(f, p, fr)
				if bad != "" {
					t.Errorf("%s variant %d on frame %x: %s", name, variant, fr, bad)
				}
				runs++
				if aborted {
					aborts++
				}
				if o, _ := r.run(p, fr); o.ret == cbHarnessDone && o.result != 0 {
					matches++
				}
			}
			p.Close()
		}
	}
	t.Logf("%d goldens x %d harnesses x %d frames: %d runs, %d matched, %d aborted (truncated)", len(cbGoldens(t)), cbHarnesses, len(frames), runs, matches, aborts)
}

// cbRandomProgram returns a random classic program; the caller keeps it
// when cbpf.Compile accepts it.
func cbRandomProgram(rnd *rand.Rand) []cbpf.Instruction {
	n := 1 + rnd.Intn(24)
	if rnd.Intn(8) == 0 {
		n = 1 + rnd.Intn(cbpf.MaxInstructions)
	}
	prog := make([]cbpf.Instruction, n)
	offK := func() uint32 {
		switch rnd.Intn(10) {
		case 0:
			return uint32(rnd.Intn(200))
		case 1:
			return uint32(int32(cbSkfNetOff) + int32(rnd.Intn(60)))
		case 2:
			return uint32(int32(cbSkfLLOff) + int32(rnd.Intn(20)))
		case 3:
			return uint32(int32(cbSkfLLOff) - 1 - int32(rnd.Intn(100)))
		case 4:
			return rnd.Uint32()
		case 5:
			return uint32(int32(cbSkfNetOff) - int32(rnd.Intn(8)))
		case 6:
			return uint32(CBPFMaxOffset - 4 + rnd.Intn(10))
		case 7:
			return uint32(0x7ff0 + rnd.Intn(32))
		}
		return uint32(rnd.Intn(64))
	}
	valK := func() uint32 {
		switch rnd.Intn(6) {
		case 0:
			return rnd.Uint32()
		case 1:
			return uint32(rnd.Intn(32))
		case 2:
			return 0xffffffff - uint32(rnd.Intn(4))
		case 3:
			return 0x80000000 + uint32(rnd.Intn(4)) - 2
		case 4:
			return uint32(int32(cbSkfNetOff) + int32(rnd.Intn(60)))
		}
		return uint32(rnd.Intn(256))
	}
	for i := range prog {
		if i == n-1 {
			if rnd.Intn(2) == 0 {
				prog[i] = cbpf.Instruction{Op: cbRetA}
			} else {
				prog[i] = cbpf.Instruction{Op: cbRetK, K: valK()}
			}
			break
		}
		rest := n - i - 1 // instructions after this one
		jmp := func() uint8 { return uint8(rnd.Intn(min(rest, 12))) }
		var in cbpf.Instruction
		switch c := rnd.Intn(100); {
		case c < 14:
			in = cbpf.Instruction{Op: []uint16{cbLdW, cbLdH, cbLdB}[rnd.Intn(3)], K: offK()}
			if rnd.Intn(20) == 0 {
				in.K = 0xfffff000 + cbAdXorX // SKF_AD_OFF + SKF_AD_ALU_XOR_X
			}
		case c < 24:
			in = cbpf.Instruction{Op: []uint16{cbLdIndW, cbLdIndH, cbLdIndB}[rnd.Intn(3)], K: offK()}
		case c < 29:
			in = cbpf.Instruction{Op: cbLdxMsh, K: offK()}
		case c < 31:
			in = cbpf.Instruction{Op: []uint16{cbLdLen, cbLdxLen}[rnd.Intn(2)]}
		case c < 38:
			in = cbpf.Instruction{Op: []uint16{cbLdImm, cbLdxImm}[rnd.Intn(2)], K: valK()}
		case c < 44:
			in = cbpf.Instruction{Op: []uint16{cbSt, cbStx}[rnd.Intn(2)], K: uint32(rnd.Intn(16))}
		case c < 48:
			in = cbpf.Instruction{Op: []uint16{cbLdMem, cbLdxMem}[rnd.Intn(2)], K: uint32(rnd.Intn(16))}
		case c < 52:
			in = cbpf.Instruction{Op: []uint16{cbTax, cbTxa}[rnd.Intn(2)]}
		case c < 72:
			ops := []uint16{0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xa0}
			op := ops[rnd.Intn(len(ops))]
			in = cbpf.Instruction{Op: cbClassALU | op, K: valK()}
			if op != 0x80 && rnd.Intn(2) == 0 {
				in.Op |= cbSrcX
				in.K = 0
			}
			if (op == 0x60 || op == 0x70) && in.Op&cbSrcX == 0 {
				in.K &= 31
			}
		case c < 76:
			in = cbpf.Instruction{Op: cbJa, K: uint32(jmp())}
		case c < 78:
			in = cbpf.Instruction{Op: cbRetK, K: valK()}
		case c < 79:
			in = cbpf.Instruction{Op: cbRetA}
		default:
			op := []uint16{0x10, 0x20, 0x30, 0x40}[rnd.Intn(4)]
			in = cbpf.Instruction{Op: cbClassJMP | op, Jt: jmp(), Jf: jmp(), K: valK()}
			if rnd.Intn(3) == 0 {
				in.Op |= cbSrcX
			}
		}
		prog[i] = in
	}
	return prog
}

// TestCBPFRandomXDP is the differential test over random programs: every
// program cbpf.Compile accepts is translated, loaded (so the verifier
// accepts it) and run over random and generated frames, and must give
// Run's result on every one.
func TestCBPFRandomXDP(t *testing.T) {
	testnet.RequireForTest(t)
	r := newCBPFRunner(t)
	rnd := rand.New(rand.NewSource(2))
	nprog := 5000
	if testing.Short() {
		nprog = 300
	}
	structured := cbFrames(rnd)
	tried, programs, runs, aborts, nonzero := 0, 0, 0, 0, 0
	failures := 0
	for programs < nprog {
		tried++
		prog := cbRandomProgram(rnd)
		f, err := cbpf.Compile(prog)
		if err != nil {
			continue
		}
		programs++
		variant := programs % cbHarnesses
		p, err := r.load(f, variant)
		if err != nil {
			t.Errorf("program %q (harness %d): %v", f.String(), variant, err)
			if failures++; failures > 10 {
				t.FailNow()
			}
			continue
		}
		for i := range 24 {
			var fr []byte
			if i%3 == 0 {
				fr = structured[rnd.Intn(len(structured))]
			} else {
				fr = cbRandomFrame(rnd)
			}
			bad, aborted := r.check(f, p, fr)
			runs++
			if aborted {
				aborts++
			}
			if bad != "" {
				t.Errorf("program %q (harness %d) on frame %x: %s", f.String(), variant, fr, bad)
				if failures++; failures > 10 {
					t.FailNow()
				}
			}
			if l3off, n, ok := cbDatagram(fr); ok && n <= len(fr)-l3off && f.Run(fr[l3off:l3off+n]) != 0 {
				nonzero++
			}
		}
		p.Close()
	}
	t.Logf("%d random programs generated, %d accepted by cbpf.Compile and checked over %d runs (%d non-zero results, %d aborted on truncated frames)",
		tried, programs, runs, nonzero, aborts)
}

// TestCBPFVerifierCost loads classic programs built to make the verifier's
// work exponential (X or M[0] built from many tested packet bits, then used
// as a load offset or compared with a constant) and requires that the
// laundering keeps it small.
func TestCBPFVerifierCost(t *testing.T) {
	testnet.RequireForTest(t)
	r := newCBPFRunner(t)
	jset := func(jf uint8) cbpf.Instruction { return cbpf.Instruction{Op: cbClassJMP | 0x40, Jf: jf, K: 1} }
	addK := func(k uint32) cbpf.Instruction { return cbpf.Instruction{Op: cbClassALU, K: k} }
	jeqK := func(k uint32) cbpf.Instruction { return cbpf.Instruction{Op: cbClassJMP | 0x10, Jt: 0, Jf: 1, K: k} }
	var xBits, xCompare, memBits []cbpf.Instruction
	for i := range 12 {
		xBits = append(xBits, cbpf.Instruction{Op: cbLdB, K: uint32(i)}, jset(3),
			cbpf.Instruction{Op: cbTxa}, addK(1<<i), cbpf.Instruction{Op: cbTax})
	}
	xBits = append(xBits, cbpf.Instruction{Op: cbLdIndB}, cbpf.Instruction{Op: cbRetA})
	for i := range 11 {
		xCompare = append(xCompare, cbpf.Instruction{Op: cbLdB, K: uint32(i)}, jset(3),
			cbpf.Instruction{Op: cbTxa}, addK(1<<i), cbpf.Instruction{Op: cbTax})
	}
	xCompare = append(xCompare, cbpf.Instruction{Op: cbTxa}, jeqK(1234),
		cbpf.Instruction{Op: cbRetK, K: 1}, cbpf.Instruction{Op: cbRetK})
	memBits = []cbpf.Instruction{{Op: cbLdImm}, {Op: cbSt}}
	for i := range 11 {
		memBits = append(memBits, cbpf.Instruction{Op: cbLdB, K: uint32(i)}, jset(3),
			cbpf.Instruction{Op: cbLdMem}, addK(1<<i), cbpf.Instruction{Op: cbSt})
	}
	memBits = append(memBits, cbpf.Instruction{Op: cbLdMem}, jeqK(1234),
		cbpf.Instruction{Op: cbRetK, K: 1}, cbpf.Instruction{Op: cbRetK})
	rnd := rand.New(rand.NewSource(3))
	for name, prog := range map[string][]cbpf.Instruction{"x as offset": xBits, "x compared": xCompare, "M[0] compared": memBits} {
		f, err := cbpf.Compile(prog)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for variant := range cbHarnesses {
			p, err := r.load(f, variant)
			if err != nil {
				t.Fatalf("%s variant %d: %v", name, variant, err)
			}
			info, err := p.Info()
			if err != nil {
				t.Fatal(err)
			}
			n, ok := info.VerifiedInstructions()
			t.Logf("%s (%d classic instructions), harness %d: %d instructions verified", name, len(prog), variant, n)
			if ok && n > 20000 {
				t.Errorf("%s, harness %d: the verifier processed %d instructions", name, variant, n)
			}
			for range 200 {
				fr := cbRandomFrame(rnd)
				if bad, _ := r.check(f, p, fr); bad != "" {
					t.Errorf("%s on frame %x: %s", name, fr, bad)
				}
			}
			p.Close()
		}
	}
}
