package cbpf

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// ipv4ForTest builds an IPv4 datagram: 20-byte header with the given
// protocol, TTL, source address and fragment field, followed by l4.
func ipv4ForTest(proto, ttl byte, src [4]byte, frag uint16, l4 []byte) []byte {
	p := make([]byte, 20+len(l4))
	p[0] = 0x45
	total := len(p)
	p[2], p[3] = byte(total>>8), byte(total)
	p[6], p[7] = byte(frag>>8), byte(frag)
	p[8] = ttl
	p[9] = proto
	copy(p[12:16], src[:])
	copy(p[16:20], []byte{192, 0, 2, 1})
	copy(p[20:], l4)
	return p
}

func udpForTest(sport, dport uint16, payload []byte) []byte {
	u := make([]byte, 8+len(payload))
	u[0], u[1] = byte(sport>>8), byte(sport)
	u[2], u[3] = byte(dport>>8), byte(dport)
	u[4], u[5] = byte(len(u)>>8), byte(len(u))
	copy(u[8:], payload)
	return u
}

func tcpForTest(sport, dport uint16, flags byte) []byte {
	t := make([]byte, 20)
	t[0], t[1] = byte(sport>>8), byte(sport)
	t[2], t[3] = byte(dport>>8), byte(dport)
	t[12] = 5 << 4
	t[13] = flags
	return t
}

// ipv6UDPForTest builds an IPv6 datagram carrying UDP.
func ipv6UDPForTest(dport uint16) []byte {
	u := udpForTest(1000, dport, []byte{1, 2, 3, 4})
	p := make([]byte, 40+len(u))
	p[0] = 0x60
	p[4], p[5] = byte(len(u)>>8), byte(len(u))
	p[6] = 17
	p[7] = 64
	copy(p[40:], u)
	return p
}

var src10 = [4]byte{10, 1, 2, 3}
var src11 = [4]byte{11, 1, 2, 3}

func loadGoldenForTest(t testing.TB, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name+".golden"))
	if err != nil {
		t.Fatal(err)
	}
	var line string
	for _, l := range strings.Split(string(data), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			line = l
		}
	}
	return line
}

func TestGoldens(t *testing.T) {
	dns := ipv4ForTest(17, 64, src10, 0, udpForTest(5353, 53, []byte{0x12, 0x34}))
	type pkt struct {
		name string
		data []byte
		want bool
	}
	tests := []struct {
		golden string
		pkts   []pkt
	}{
		{"udp_dst_port_53", []pkt{
			{"ipv4 udp 53", dns, true},
			{"ipv4 udp 54", ipv4ForTest(17, 64, src10, 0, udpForTest(53, 54, nil)), false},
			{"ipv4 tcp 53", ipv4ForTest(6, 64, src10, 0, tcpForTest(1, 53, 0x02)), false},
			{"ipv4 udp 53 non-first fragment", ipv4ForTest(17, 64, src10, 0x0010, udpForTest(1, 53, nil)), false},
			{"ipv6 udp 53", ipv6UDPForTest(53), true},
			{"ipv6 udp 80", ipv6UDPForTest(80), false},
			{"truncated ipv4 udp", dns[:22], false},
		}},
		{"tcp_syn", []pkt{
			{"syn", ipv4ForTest(6, 64, src10, 0, tcpForTest(1, 80, 0x02)), true},
			{"syn-ack", ipv4ForTest(6, 64, src10, 0, tcpForTest(1, 80, 0x12)), true},
			{"ack", ipv4ForTest(6, 64, src10, 0, tcpForTest(1, 80, 0x10)), false},
			{"udp", dns, false},
			{"tcp flags beyond end", ipv4ForTest(6, 64, src10, 0, []byte{0, 1, 0, 80}), false},
		}},
		{"ip_ttl_lt_64", []pkt{
			{"ttl 63", ipv4ForTest(17, 63, src10, 0, nil), true},
			{"ttl 64", ipv4ForTest(17, 64, src10, 0, nil), false},
			{"ttl 1", ipv4ForTest(17, 1, src10, 0, nil), true},
			{"ipv6", ipv6UDPForTest(53), false},
		}},
		{"udp_payload_1234", []pkt{
			{"payload 1234", dns, true},
			{"payload 4321", ipv4ForTest(17, 64, src10, 0, udpForTest(1, 2, []byte{0x43, 0x21})), false},
			{"no payload", ipv4ForTest(17, 64, src10, 0, udpForTest(1, 2, nil)), false},
		}},
		{"src_net_10", []pkt{
			{"10.1.2.3", dns, true},
			{"11.1.2.3", ipv4ForTest(17, 64, src11, 0, nil), false},
			{"too short", dns[:13], false},
		}},
		{"icmp", []pkt{
			{"icmp", ipv4ForTest(1, 64, src10, 0, []byte{8, 0, 0, 0}), true},
			{"udp", dns, false},
			{"empty", nil, false},
		}},
	}
	for _, tt := range tests {
		text := loadGoldenForTest(t, tt.golden)
		prog, err := ParseBytecode(text)
		if err != nil {
			t.Fatalf("%s: ParseBytecode: %v", tt.golden, err)
		}
		f, err := Compile(prog)
		if err != nil {
			t.Fatalf("%s: Compile: %v", tt.golden, err)
		}
		if f.String() != text {
			t.Errorf("%s: String() = %q, want %q", tt.golden, f.String(), text)
		}
		for _, p := range tt.pkts {
			if got := f.Match(p.data); got != p.want {
				t.Errorf("%s on %s: Match = %v, want %v", tt.golden, p.name, got, p.want)
			}
		}
	}
}

func TestParseBytecode(t *testing.T) {
	tests := []struct {
		in   string
		want []Instruction
	}{
		{"1,6 0 0 65535", []Instruction{{6, 0, 0, 65535}}},
		{"1,6 0 0 65535,", []Instruction{{6, 0, 0, 65535}}},                    // trailing ',' tolerated
		{" 1,  6\t0 0 1 garbage", []Instruction{{6, 0, 0, 1}}},                 // white space; junk after the 4th number
		{"1,6 0 0 -1", []Instruction{{6, 0, 0, 0xffffffff}}},                   // scanf: "-1" wraps
		{"1,6 -1 256 4294967296", []Instruction{{6, 255, 0, 0}}},               // truncation to the field width
		{"1,6 0 0 99999999999999999999", []Instruction{{6, 0, 0, 0xffffffff}}}, // strtoul saturates
		{"1,+6 0 0 +7", []Instruction{{6, 0, 0, 7}}},
		{"2,6 0 0 1,6 0 0 2\x00,6 0 0 3", []Instruction{{6, 0, 0, 1}, {6, 0, 0, 2}}}, // C string ends at NUL
	}
	for _, tt := range tests {
		got, err := ParseBytecode(tt.in)
		if err != nil {
			t.Errorf("ParseBytecode(%q): %v", tt.in, err)
			continue
		}
		if len(got) != len(tt.want) {
			t.Errorf("ParseBytecode(%q) = %v, want %v", tt.in, got, tt.want)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("ParseBytecode(%q)[%d] = %v, want %v", tt.in, i, got[i], tt.want[i])
			}
		}
	}
}

func TestParseBytecodeErrors(t *testing.T) {
	tests := []struct {
		in    string
		instr int
		msg   string
	}{
		{"", -1, "error parsing program length"},
		{"x,6 0 0 0", -1, "error parsing program length"},
		{"1", -1, "error parsing program length"},
		{"1 ,6 0 0 0", -1, "error parsing program length"},
		{"0,6 0 0 0", -1, "illegal zero length program"},
		{"65536,6 0 0 0", -1, "illegal zero length program"}, // %hu truncates to 0
		{"65,6 0 0 0", -1, "number of instructions exceeds maximum"},
		{"1,6 0 0 0,6 0 0 0", 1, "real program length exceeds the encoded length parameter"},
		{"1,6 0 0 0,,", 1, "real program length exceeds the encoded length parameter"},
		{"1,6 0 0", 0, "error at instr 0"},
		{"1,6 0 0,", 0, "error at instr 0"},
		{"1,0x6 0 0 0", 0, "error at instr 0"},
		{"2,6 0 0 0", -1, "parsed program length is less than the encoded length parameter"},
		{"2,6 0 0 0,", -1, "parsed program length is less than the encoded length parameter"},
	}
	for _, tt := range tests {
		_, err := ParseBytecode(tt.in)
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Errorf("ParseBytecode(%q) = %v, want *ParseError", tt.in, err)
			continue
		}
		if pe.Instr != tt.instr || !strings.Contains(pe.Msg, tt.msg) {
			t.Errorf("ParseBytecode(%q) = instr %d %q, want instr %d %q", tt.in, pe.Instr, pe.Msg, tt.instr, tt.msg)
		}
	}
}

// Opcodes used by the hand-written programs below.
const (
	opLdW    = classLD | sizeW | modeABS
	opLdH    = classLD | sizeH | modeABS
	opLdB    = classLD | sizeB | modeABS
	opLdIndB = classLD | sizeB | modeIND
	opLdIndW = classLD | sizeW | modeIND
	opLdImm  = classLD | modeIMM
	opLdxImm = classLDX | modeIMM
	opLdMem  = classLD | modeMEM
	opSt     = classST
	opMsh    = classLDX | sizeB | modeMSH
	opRetK   = classRET | retK
	opRetA   = classRET | retA
	opJeqK   = classJMP | jmpJEQ | srcK
	opJa     = classJMP | jmpJA
)

func TestCheck(t *testing.T) {
	ret := Instruction{Op: opRetK, K: 1}
	long := make([]Instruction, 65)
	for i := range long {
		long[i] = ret
	}
	tests := []struct {
		name  string
		prog  []Instruction
		index int // -2: accepted
	}{
		{"ok", []Instruction{ret}, -2},
		{"empty", nil, -1},
		{"65 instructions", long, -1},
		{"64 instructions", long[:64], -2},
		{"unknown opcode", []Instruction{{Op: 0xff}, ret}, 0},
		{"seccomp LDX|W|ABS", []Instruction{{Op: classLDX | sizeW | modeABS}, ret}, 0},
		{"div by constant 0", []Instruction{{Op: classALU | aluDIV | srcK}, ret}, 0},
		{"mod by constant 0", []Instruction{{Op: classALU | aluMOD | srcK}, ret}, 0},
		{"div by X accepted", []Instruction{{Op: classALU | aluDIV | srcX}, ret}, -2},
		{"lsh 32", []Instruction{{Op: classALU | aluLSH | srcK, K: 32}, ret}, 0},
		{"rsh 31 accepted", []Instruction{{Op: classALU | aluRSH | srcK, K: 31}, ret}, -2},
		{"st M[16]", []Instruction{{Op: opSt, K: 16}, ret}, 0},
		{"ja to last", []Instruction{{Op: opJa, K: 0}, ret}, -2},
		{"ja past end", []Instruction{{Op: opJa, K: 1}, ret}, 0},
		{"jeq jt past end", []Instruction{{Op: opJeqK, Jt: 1}, ret}, 0},
		{"jeq jf past end", []Instruction{{Op: opJeqK, Jf: 1}, ret}, 0},
		{"unknown ancillary", []Instruction{{Op: opLdW, K: 0xfffff000 + 64}, ret}, 0},
		{"ancillary mark accepted by check", []Instruction{{Op: opLdW, K: 0xfffff000 + skfAdMark}, ret}, -2},
		{"net offset accepted", []Instruction{{Op: opLdB, K: 0xfff00000}, ret}, -2},
		{"last not ret", []Instruction{ret, {Op: opLdImm}}, 1},
		{"ld M[0] unwritten", []Instruction{{Op: opLdMem, K: 0}, ret}, 0},
		{"ld M[0] after st", []Instruction{{Op: opSt, K: 0}, {Op: opLdMem, K: 0}, ret}, -2},
		{"ld M[1] after st M[0]", []Instruction{{Op: opSt, K: 0}, {Op: opLdMem, K: 1}, ret}, 1},
		// One branch writes M[3], the other does not: the join may read garbage.
		{"st on one path only", []Instruction{
			{Op: opJeqK, Jt: 0, Jf: 1}, {Op: opSt, K: 3}, {Op: opLdMem, K: 3}, ret}, 2},
		{"st on both paths", []Instruction{
			{Op: opSt, K: 3}, {Op: opJeqK, Jt: 0, Jf: 1}, {Op: opSt, K: 4}, {Op: opLdMem, K: 3}, ret}, -2},
	}
	for _, tt := range tests {
		err := Check(tt.prog)
		if tt.index == -2 {
			if err != nil {
				t.Errorf("%s: Check = %v, want nil", tt.name, err)
			}
			continue
		}
		var ce *CheckError
		if !errors.As(err, &ce) {
			t.Errorf("%s: Check = %v, want *CheckError", tt.name, err)
			continue
		}
		if ce.Index != tt.index {
			t.Errorf("%s: Check index %d (%v), want %d", tt.name, ce.Index, err, tt.index)
		}
	}
}

func TestRunSemantics(t *testing.T) {
	pkt := []byte{0x45, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07}
	alu := func(op uint16, k uint32) Instruction { return Instruction{Op: classALU | op, K: k} }
	tests := []struct {
		name string
		prog []Instruction
		want uint32
	}{
		{"ret k", []Instruction{{Op: opRetK, K: 7}}, 7},
		{"ld w", []Instruction{{Op: opLdW, K: 4}, {Op: opRetA}}, 0x04050607},
		{"ld w out of bounds returns 0", []Instruction{{Op: opLdW, K: 5}, {Op: opRetK, K: 9}}, 0},
		{"ld h at end", []Instruction{{Op: opLdH, K: 6}, {Op: opRetA}}, 0x0607},
		{"ld b huge k", []Instruction{{Op: opLdB, K: 0x7fffffff}, {Op: opRetK, K: 9}}, 0},
		{"ld len", []Instruction{{Op: classLD | sizeW | modeLEN}, {Op: opRetA}}, 8},
		{"ldx len, txa", []Instruction{{Op: classLDX | sizeW | modeLEN}, {Op: classMISC | miscTXA}, {Op: opRetA}}, 8},
		{"msh", []Instruction{{Op: opMsh, K: 0}, {Op: classMISC | miscTXA}, {Op: opRetA}}, 20},
		{"msh out of bounds", []Instruction{{Op: opMsh, K: 8}, {Op: opRetK, K: 1}}, 0},
		{"ind", []Instruction{{Op: opLdxImm, K: 2}, {Op: opLdIndB, K: 3}, {Op: opRetA}}, 5},
		{"ind wraps to net offset", []Instruction{{Op: opLdxImm, K: 0x00100002}, {Op: opLdIndB, K: 0xfff00000 + 1}, {Op: opRetA}}, 0x03},
		{"ind net offset", []Instruction{{Op: opLdxImm, K: 1}, {Op: opLdIndB, K: 0xfff00000}, {Op: opRetA}}, 0x01},
		{"ind negative below LL", []Instruction{{Op: opLdxImm, K: 0}, {Op: opLdIndB, K: 0xffd00000}, {Op: opRetK, K: 1}}, 0},
		{"ind into LL returns 0", []Instruction{{Op: opLdxImm, K: 0}, {Op: opLdIndB, K: 0xffe00000}, {Op: opRetK, K: 1}}, 0},
		{"ind ancillary range is not ancillary", []Instruction{{Op: opLdIndW, K: 0xfffff000 + skfAdMark}, {Op: opRetK, K: 1}}, 0},
		{"abs net offset", []Instruction{{Op: opLdW, K: 0xfff00000 + 4}, {Op: opRetA}}, 0x04050607},
		{"abs net offset past end", []Instruction{{Op: opLdW, K: 0xfff00000 + 5}, {Op: opRetK, K: 1}}, 0},
		{"abs below LL returns 0", []Instruction{{Op: opLdB, K: 0x80000000}, {Op: opRetK, K: 1}}, 0},
		{"msh in ancillary range fails", []Instruction{{Op: opMsh, K: 0xfffff000 + skfAdMark}, {Op: opRetK, K: 1}}, 0},
		{"alu xor x ancillary", []Instruction{{Op: opLdImm, K: 0xf0}, {Op: opLdxImm, K: 0xff}, {Op: opLdB, K: 0xfffff000 + skfAdAluXorX}, {Op: opRetA}}, 0x0f},
		{"add sub mul", []Instruction{{Op: opLdImm, K: 3}, alu(aluADD, 4), alu(aluMUL, 0x40000000), alu(aluSUB, 1), {Op: opRetA}}, 0xbfffffff},
		{"div k", []Instruction{{Op: opLdImm, K: 100}, alu(aluDIV, 7), {Op: opRetA}}, 14},
		{"mod k", []Instruction{{Op: opLdImm, K: 100}, alu(aluMOD, 7), {Op: opRetA}}, 2},
		{"div by X=0 returns 0", []Instruction{{Op: opLdImm, K: 100}, {Op: classALU | aluDIV | srcX}, {Op: opRetK, K: 5}}, 0},
		{"mod by X=0 returns 0", []Instruction{{Op: opLdImm, K: 100}, {Op: classALU | aluMOD | srcX}, {Op: opRetK, K: 5}}, 0},
		{"div by X", []Instruction{{Op: opLdImm, K: 100}, {Op: opLdxImm, K: 3}, {Op: classALU | aluDIV | srcX}, {Op: opRetA}}, 33},
		{"neg", []Instruction{{Op: opLdImm, K: 1}, {Op: classALU | aluNEG}, {Op: opRetA}}, 0xffffffff},
		{"lsh by X=33 is lsh 1", []Instruction{{Op: opLdImm, K: 3}, {Op: opLdxImm, K: 33}, {Op: classALU | aluLSH | srcX}, {Op: opRetA}}, 6},
		{"rsh by X=32 is rsh 0", []Instruction{{Op: opLdImm, K: 3}, {Op: opLdxImm, K: 32}, {Op: classALU | aluRSH | srcX}, {Op: opRetA}}, 3},
		{"lsh k 31", []Instruction{{Op: opLdImm, K: 3}, alu(aluLSH, 31), {Op: opRetA}}, 0x80000000},
		{"and or xor", []Instruction{{Op: opLdImm, K: 0xf0f0}, alu(aluAND, 0xff00), alu(aluOR, 0x1), alu(aluXOR, 0x3), {Op: opRetA}}, 0xf002},
		{"scratch", []Instruction{{Op: opLdImm, K: 42}, {Op: opSt, K: 15}, {Op: opLdImm, K: 0}, {Op: opLdMem, K: 15}, {Op: opRetA}}, 42},
		{"stx ldx", []Instruction{{Op: opLdxImm, K: 9}, {Op: classSTX, K: 2}, {Op: classLDX | modeMEM, K: 2}, {Op: classMISC | miscTXA}, {Op: opRetA}}, 9},
		{"ja", []Instruction{{Op: opJa, K: 1}, {Op: opRetK, K: 1}, {Op: opRetK, K: 2}}, 2},
		{"jeq negative k is unsigned", []Instruction{{Op: opLdImm, K: 0xffffffff}, {Op: opJeqK, Jt: 0, Jf: 1, K: 0xffffffff}, {Op: opRetK, K: 1}, {Op: opRetK, K: 2}}, 1},
		{"jgt unsigned", []Instruction{{Op: opLdImm, K: 0x80000000}, {Op: classJMP | jmpJGT | srcK, Jt: 0, Jf: 1, K: 1}, {Op: opRetK, K: 1}, {Op: opRetK, K: 2}}, 1},
		{"jge equal", []Instruction{{Op: opLdImm, K: 5}, {Op: classJMP | jmpJGE | srcK, Jt: 1, Jf: 0, K: 5}, {Op: opRetK, K: 1}, {Op: opRetK, K: 2}}, 2},
		{"jset x", []Instruction{{Op: opLdImm, K: 6}, {Op: opLdxImm, K: 1}, {Op: classJMP | jmpJSET | srcX, Jt: 1, Jf: 0}, {Op: opRetK, K: 1}, {Op: opRetK, K: 2}}, 1},
		{"tax", []Instruction{{Op: opLdImm, K: 6}, {Op: classMISC | miscTAX}, {Op: opLdImm, K: 0}, {Op: classMISC | miscTXA}, {Op: opRetA}}, 6},
		{"registers start at 0", []Instruction{{Op: classMISC | miscTXA}, alu(aluADD, 0), {Op: opRetA}}, 0},
	}
	for _, tt := range tests {
		f, err := Compile(tt.prog)
		if err != nil {
			t.Errorf("%s: Compile: %v", tt.name, err)
			continue
		}
		if got := f.Run(pkt); got != tt.want {
			t.Errorf("%s: Run = %#x, want %#x", tt.name, got, tt.want)
		}
	}
}

func TestCompileUnsupported(t *testing.T) {
	for _, prog := range [][]Instruction{
		{{Op: opLdW, K: 0xfffff000 + skfAdMark}, {Op: opRetA}},
		{{Op: opLdH, K: 0xfffff000 + skfAdProtocol}, {Op: opRetA}},
		{{Op: opLdB, K: 0xfffff000 + skfAdRandom}, {Op: opRetA}},
		{{Op: opLdB, K: 0xffe00000 + 12}, {Op: opRetA}}, // SKF_LL_OFF + 12
		{{Op: opMsh, K: 0xffe00000}, {Op: opRetA}},
	} {
		_, err := Compile(prog)
		var ue *UnsupportedError
		if !errors.As(err, &ue) || ue.Index != 0 {
			t.Errorf("Compile(%v) = %v, want *UnsupportedError at 0", prog, err)
		}
	}
}

func TestInstructionsCopy(t *testing.T) {
	prog := []Instruction{{Op: opRetK, K: 1}}
	f, err := Compile(prog)
	if err != nil {
		t.Fatal(err)
	}
	prog[0].K = 0
	got := f.Instructions()
	got[0].K = 5
	if f.Run(nil) != 1 || f.Instructions()[0].K != 1 {
		t.Error("Filter shares memory with its caller")
	}
}

func TestRunZeroAllocs(t *testing.T) {
	f := mustCompileGoldenForTest(t, "udp_dst_port_53")
	pkt := ipv4ForTest(17, 64, src10, 0, udpForTest(5353, 53, nil))
	if a := testing.AllocsPerRun(1000, func() { f.Run(pkt) }); a != 0 {
		t.Errorf("Run allocates %v times per packet", a)
	}
}

func mustCompileGoldenForTest(t testing.TB, name string) *Filter {
	prog, err := ParseBytecode(loadGoldenForTest(t, name))
	if err != nil {
		t.Fatal(err)
	}
	f, err := Compile(prog)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func BenchmarkRunDNS(b *testing.B) {
	f := mustCompileGoldenForTest(b, "udp_dst_port_53")
	pkt := ipv4ForTest(17, 64, src10, 0, udpForTest(5353, 53, []byte{0x12, 0x34}))
	b.ReportAllocs()
	for b.Loop() {
		if !f.Match(pkt) {
			b.Fatal("no match")
		}
	}
}

func FuzzParseBytecode(f *testing.F) {
	f.Add("19,48 0 0 0,84 0 0 240,21 0 4 96,48 0 0 6,21 0 13 17,40 0 0 42,21 10 11 53,48 0 0 0,84 0 0 240,21 0 8 64,48 0 0 9,21 0 6 17,40 0 0 6,69 4 0 8191,177 0 0 0,72 0 0 2,21 0 1 53,6 0 0 65535,6 0 0 0")
	f.Add("1,6 0 0 -1,")
	f.Add("2, 6 0 0 1 ,")
	f.Fuzz(func(t *testing.T, s string) {
		prog, err := ParseBytecode(s)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("untyped error %T", err)
			}
			return
		}
		again, err := ParseBytecode(Format(prog))
		if err != nil || len(again) != len(prog) {
			t.Fatalf("Format(%v) does not parse back: %v", prog, err)
		}
		for i := range prog {
			if again[i] != prog[i] {
				t.Fatalf("round trip changed instruction %d", i)
			}
		}
		if fl, err := Compile(prog); err == nil {
			fl.Run([]byte(s))
		}
	})
}

// FuzzRun compiles arbitrary instruction bytes and runs them on arbitrary
// packets: whatever passes Check must run without panicking.
func FuzzRun(f *testing.F) {
	f.Add([]byte{0x30, 0, 0, 0, 0, 0, 0, 0, 0x16, 0, 0, 0, 0, 0, 0, 0}, []byte{0x45, 0, 0, 20})
	f.Add([]byte{0x61, 0, 0, 0, 0, 0, 0, 0, 0x06, 0, 0, 0, 1, 0, 0, 0}, []byte{})
	f.Fuzz(func(t *testing.T, code, pkt []byte) {
		var prog []Instruction
		for len(code) >= 8 && len(prog) < MaxInstructions {
			prog = append(prog, Instruction{
				Op: uint16(code[0]) | uint16(code[1])<<8, Jt: code[2], Jf: code[3],
				K: uint32(code[4]) | uint32(code[5])<<8 | uint32(code[6])<<16 | uint32(code[7])<<24,
			})
			code = code[8:]
		}
		fl, err := Compile(prog)
		if err != nil {
			return
		}
		fl.Run(pkt)
	})
}
