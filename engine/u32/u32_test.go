package u32

import (
	"errors"
	"strings"
	"testing"
)

// ipv4UDPForTest builds an IPv4 header with ihl 32-bit words (options zeroed)
// followed by a UDP header and payload.
func ipv4UDPForTest(ihl int, sport, dport uint16, payload []byte) []byte {
	hl := ihl * 4
	total := hl + 8 + len(payload)
	p := make([]byte, total)
	p[0] = 0x40 | byte(ihl)
	p[2], p[3] = byte(total>>8), byte(total)
	p[8] = 64
	p[9] = 17
	copy(p[12:], []byte{10, 0, 0, 1})
	copy(p[16:], []byte{192, 168, 1, 2})
	p[hl], p[hl+1] = byte(sport>>8), byte(sport)
	p[hl+2], p[hl+3] = byte(dport>>8), byte(dport)
	l := 8 + len(payload)
	p[hl+4], p[hl+5] = byte(l>>8), byte(l)
	copy(p[hl+8:], payload)
	return p
}

func TestParseString(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"0=1", "0x0=0x1"},
		{"6&0xFF=17", "0x6&0xff=0x11"},
		{" 6 & 0xff = 6 , 17 ", "0x6&0xff=0x6,0x11"},
		{"0>>22&0x3C@0>>16=53", "0x0>>0x16&0x3c@0x0>>0x10=0x35"},
		{"0<<4=0:0xffffffff", "0x0<<0x4=0x0:0xffffffff"},
		{"010=010", "0x8=0x8"},           // octal, as strtoumax base 0
		{"0X1f=+7", "0x1f=0x7"},          // upper-case prefix, plus sign
		{"4=5:3", "0x4=0x5:0x3"},         // min > max is kept
		{"4=5 : 5", "0x4=0x5"},           // equal bounds print once
		{"1=1&&2=2", "0x1=0x1&&0x2=0x2"}, // two tests
		{"1=1\x00&&garbage", "0x1=0x1"},  // C string ends at NUL
		{"0&1&2&3&4&5&6&7&8&9=1,2,3,4,5,6,7,8,9,10", "0x0&0x1&0x2&0x3&0x4&0x5&0x6&0x7&0x8&0x9=0x1,0x2,0x3,0x4,0x5,0x6,0x7,0x8,0x9,0xa"},
		{strings.Repeat("0=0&&", 9) + "0=0", strings.Repeat("0x0=0x0&&", 9) + "0x0=0x0"},
	}
	for _, tt := range tests {
		m, err := Parse(tt.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if got := m.String(); got != tt.want {
			t.Errorf("Parse(%q).String() = %q, want %q", tt.in, got, tt.want)
		}
		again, err := Parse(m.String())
		if err != nil || again.String() != tt.want || *again != *m {
			t.Errorf("round trip of %q failed: %v", tt.in, err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in     string
		offset int
		msg    string
	}{
		{"", 0, "abrupt end of input after location specifier"},
		{"   ", 3, "abrupt end of input after location specifier"},
		{"1", 1, "abrupt end of input after location specifier"},
		{"1=", 2, "test ended with no value specified"},
		{"=1", 0, "location spec missing"},
		{"x=1", 0, "not a number or out of range"},
		{"-1=1", 0, "not a number or out of range"},
		{"4294967296=1", 0, "not a number or out of range"},
		{"99999999999999999999999=1", 0, "not a number or out of range"},
		{"0x=1", 1, "operator expected"}, // strtoumax reads "0", stops at 'x'
		{"08=1", 1, "operator expected"}, // octal "0", then '8'
		{"1<2=1", 2, "a second '<' was expected"},
		{"1>2=1", 2, "a second '>' was expected"},
		{"1<", 2, "a second '<' was expected"},
		{"1&=1", 2, "not a number or out of range"},
		{"1=2 3", 4, `expected "," or "&&"`},
		{"1=2&3", 4, "a second '&' was expected"},
		{"1=&&2=2", 3, "value spec missing"},
		{"1=2&&", 5, "abrupt end of input after location specifier"},
		{"1=2,", 4, "not a number or out of range"},
		{"1=2:", 4, "not a number or out of range"},
		{"1=2:-3", 4, "not a number or out of range"},
		{"0&1&2&3&4&5&6&7&8&9&10=1", 22, "too many operators"},
		{"0=1,2,3,4,5,6,7,8,9,10,11", 25, `too many ","s`},
		// The 11th test is parsed and refused at the end of the text ...
		{strings.Repeat("0=0&&", 10) + "0=0", 53, `too many "&&"s`},
		// ... the 12th is refused at the "&&" that starts it.
		{strings.Repeat("0=0&&", 11) + "0=0", 54, `too many "&&"s`},
	}
	for _, tt := range tests {
		_, err := Parse(tt.in)
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("Parse(%q) = %v, want *SyntaxError", tt.in, err)
			continue
		}
		if se.Offset != tt.offset || se.Msg != tt.msg {
			t.Errorf("Parse(%q) = offset %d %q, want offset %d %q", tt.in, se.Offset, se.Msg, tt.offset, tt.msg)
		}
		if !strings.HasPrefix(se.Error(), "u32: at char ") {
			t.Errorf("Error() = %q", se.Error())
		}
	}
}

func TestMatch(t *testing.T) {
	dns := ipv4UDPForTest(5, 1234, 53, []byte{0xab, 0xcd, 0x01, 0x00})
	dnsOpts := ipv4UDPForTest(6, 1234, 53, []byte{0xab, 0xcd, 0x01, 0x00})
	tests := []struct {
		name, expr string
		pkt        []byte
		want       bool
	}{
		{"protocol udp", "6&0xFF=17", dns, true},
		{"protocol tcp", "6&0xFF=6", dns, false},
		{"range list", "6&0xFF=1,6,17:17", dns, true},
		{"dst port via @", "0>>22&0x3C@0&0xFFFF=53", dns, true},
		{"dst port via @ with options", "0>>22&0x3C@0&0xFFFF=53", dnsOpts, true},
		{"src port", "0>>22&0x3C@0>>16=1234", dns, true},
		{"payload via two @", "0>>22&0x3C@8>>16=0xabcd", dns, true},
		{"all tests must hold", "6&0xFF=17&&0>>22&0x3C@0&0xFFFF=54", dns, false},
		{"word at len-4", "28=0xabcd0100", dns, true},
		{"word at len-3", "29=0:0xffffffff", dns, false},
		{"short packet", "0=0:0xffffffff", []byte{1, 2, 3}, false},
		{"empty packet", "0=0:0xffffffff", nil, false},
		{"@ reads at at+pos == len-4", "0&0@28=0xabcd0100", dns, true},
		{"@ past end", "0&0@29=0:0xffffffff", dns, false},
		{"@ at = 0xffffffff: at+4 overflows", "0@0=0:0xffffffff", []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}, false},
		{"min > max never matches", "6&0xFF=18:16", dns, false},
		// "<<32" is the x86 shift by 32&31 == 0: the word is unchanged.
		{"shift 32 is shift 0 on x86", "0<<32=0x45000020", dns, true},
		{"shift 33 is shift 1", "0>>33=0x22800010", dns, true},
	}
	for _, tt := range tests {
		expr := tt.expr
		m, err := Parse(expr)
		if err != nil {
			t.Fatalf("%s: Parse(%q): %v", tt.name, expr, err)
		}
		if got := m.Match(tt.pkt); got != tt.want {
			t.Errorf("%s: %q on %x = %v, want %v", tt.name, expr, tt.pkt, got, tt.want)
		}
	}
}

func TestAtAccumulates(t *testing.T) {
	// at is the sum of every value consumed by "@": 4@0@0 reads the word at
	// 4, adds it to at, reads at at, adds that, and so on (xt_u32.c).
	pkt := []byte{
		0, 0, 0, 0,
		0, 0, 0, 8, // word at 4: 8 -> at = 8
		0, 0, 0, 4, // word at 8: 4 -> at = 12
		0xde, 0xad, 0xbe, 0xef, // word at 12
	}
	m, err := Parse("4@0@0=0xdeadbeef")
	if err != nil {
		t.Fatal(err)
	}
	if !m.Match(pkt) {
		t.Error("4@0@0 did not reach the word at 12")
	}
	// at+val overflow: at = 8 then val 0xfffffffc wraps.
	pkt2 := append([]byte(nil), pkt...)
	copy(pkt2[8:], []byte{0xff, 0xff, 0xff, 0xfc})
	m2, _ := Parse("4@0@0=0:0xffffffff")
	if m2.Match(pkt2) {
		t.Error("at+val overflow must fail the match")
	}
}

func TestWideShift(t *testing.T) {
	for _, tt := range []struct {
		expr string
		want bool
	}{{"0<<31=0", false}, {"0<<32=0", true}, {"0&32=0", false}, {"1=1&&0>>40=1", true}} {
		m, err := Parse(tt.expr)
		if err != nil {
			t.Fatal(err)
		}
		if _, got := m.WideShift(); got != tt.want {
			t.Errorf("%q WideShift = %v", tt.expr, got)
		}
	}
}

func TestMatchZeroAllocs(t *testing.T) {
	m, err := Parse("6&0xFF=17&&0>>22&0x3C@0&0xFFFF=53&&0>>22&0x3C@8>>16=0xabcd")
	if err != nil {
		t.Fatal(err)
	}
	pkt := ipv4UDPForTest(5, 1234, 53, []byte{0xab, 0xcd, 0x01, 0x00})
	if a := testing.AllocsPerRun(1000, func() { m.Match(pkt) }); a != 0 {
		t.Errorf("Match allocates %v times per packet", a)
	}
}

func BenchmarkMatch(b *testing.B) {
	m, err := Parse("6&0xFF=17&&0>>22&0x3C@0&0xFFFF=53&&0>>22&0x3C@8>>16=0xabcd")
	if err != nil {
		b.Fatal(err)
	}
	pkt := ipv4UDPForTest(5, 1234, 53, []byte{0xab, 0xcd, 0x01, 0x00})
	b.ReportAllocs()
	for b.Loop() {
		if !m.Match(pkt) {
			b.Fatal("no match")
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"0=1", "0>>22&0x3C@12>>26&0x3C@0=0x474554", "1=2:3,4&&5<<6=7", "0x=1", "=", "&&", "1=1&&"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := Parse(s)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("untyped error %T", err)
			}
			return
		}
		again, err := Parse(m.String())
		if err != nil {
			t.Fatalf("String() %q of %q does not parse: %v", m.String(), s, err)
		}
		if *again != *m {
			t.Fatalf("round trip of %q changed the match", s)
		}
	})
}

func FuzzMatch(f *testing.F) {
	f.Add("0>>22&0x3C@0&0xFFFF=53", ipv4UDPForTest(5, 1, 53, nil))
	f.Add("4@0@0@0=0:0xffffffff", []byte{0, 0, 0, 0, 0xff, 0xff, 0xff, 0xf0, 1, 2, 3, 4})
	f.Fuzz(func(t *testing.T, expr string, pkt []byte) {
		m, err := Parse(expr)
		if err != nil {
			return
		}
		m.Match(pkt)
	})
}
