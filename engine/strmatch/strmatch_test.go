package strmatch

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func mustNewForTest(t testing.TB, pattern string, algo Algo, from, to uint32, icase bool) *Matcher {
	t.Helper()
	m, err := New([]byte(pattern), algo, from, to, icase)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// ipv4UDPPayloadForTest wraps payload in a minimal IPv4+UDP header (28 bytes).
func ipv4UDPPayloadForTest(payload string) []byte {
	p := make([]byte, 28+len(payload))
	p[0] = 0x45
	p[9] = 17
	copy(p[28:], payload)
	return p
}

func TestParseAlgo(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Algo
		ok   bool
	}{{"bm", AlgoBM, true}, {"kmp", AlgoKMP, true}, {"fsm", 0, false}, {"BM", 0, false}, {"", 0, false}, {strings.Repeat("x", 20), 0, false}} {
		got, err := ParseAlgo(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseAlgo(%q) = %v, %v", tt.in, got, err)
		}
		var ae *AlgoError
		if err != nil && !errors.As(err, &ae) {
			t.Errorf("ParseAlgo(%q): untyped error %T", tt.in, err)
		}
	}
}

func TestNewErrors(t *testing.T) {
	for _, tt := range []struct {
		name     string
		pattern  []byte
		algo     Algo
		from, to uint32
		field    string
	}{
		{"empty", nil, AlgoBM, 0, 65535, "pattern"},
		{"too long", bytes.Repeat([]byte("a"), 129), AlgoBM, 0, 65535, "pattern"},
		{"from after to", []byte("a"), AlgoKMP, 10, 9, "from"},
		{"to beyond u16", []byte("a"), AlgoKMP, 0, 65536, "to"},
		{"from beyond u16", []byte("a"), AlgoKMP, 65536, 65536, "from"},
		{"bad algo", []byte("a"), 0, 0, 1, "algo"},
	} {
		_, err := New(tt.pattern, tt.algo, tt.from, tt.to, false)
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Field != tt.field {
			t.Errorf("%s: New = %v, want ConfigError on %s", tt.name, err, tt.field)
		}
	}
	if _, err := New(bytes.Repeat([]byte("a"), 128), AlgoBM, 7, 7, false); err != nil {
		t.Errorf("128-byte pattern with from == to: %v", err)
	}
}

func TestMatchWindow(t *testing.T) {
	pkt := ipv4UDPPayloadForTest("GET /index.html HTTP/1.1") // "GET" at 28..31
	tests := []struct {
		name     string
		pattern  string
		from, to uint32
		icase    bool
		want     bool
	}{
		{"default window", "GET", 0, DefaultTo, false, true},
		{"absent", "POST", 0, DefaultTo, false, false},
		{"ends exactly at to", "GET", 0, 31, false, true},
		{"ends one past to", "GET", 0, 30, false, false},
		{"starts before to but ends after", "GET", 28, 30, false, false},
		{"starts at from", "GET", 28, 31, false, true},
		{"starts before from", "GET", 29, DefaultTo, false, false},
		{"from == to", "GET", 28, 28, false, false},
		{"from beyond packet", "GET", 1000, DefaultTo, false, false},
		{"last bytes of packet", "1.1", 0, DefaultTo, false, true},
		{"icase", "get /INDEX", 0, DefaultTo, true, true},
		{"case matters without icase", "get", 0, DefaultTo, false, false},
	}
	for _, tt := range tests {
		for _, algo := range []Algo{AlgoBM, AlgoKMP} {
			m := mustNewForTest(t, tt.pattern, algo, tt.from, tt.to, tt.icase)
			if got := m.Match(pkt); got != tt.want {
				t.Errorf("%s (%v): Match = %v, want %v", tt.name, algo, got, tt.want)
			}
			if ref := refFindTextForTest(pkt, tt.from, tt.to, algo, []byte(tt.pattern), tt.icase); ref != tt.want {
				t.Errorf("%s (%v): reference = %v, want %v", tt.name, algo, ref, tt.want)
			}
		}
	}
}

// TestBMIcaseLatin1Quirk pins the case where the kernel's ts_bm with --icase
// misses an occurrence: the pattern byte 0xDF is stored as toupper(0xDF) =
// 0xBF, its bad-shift entries are set for 0xBF and tolower(0xBF) = 0xBF only,
// so a text byte 0xDF (which compares equal after toupper) gets the default
// shift and jumps over the hit. ts_kmp has no such table and finds it.
func TestBMIcaseLatin1Quirk(t *testing.T) {
	text := []byte{0xdf, 0xdf, 'a'}
	pattern := []byte{0xdf, 'a'}
	bm, err := New(pattern, AlgoBM, 0, DefaultTo, true)
	if err != nil {
		t.Fatal(err)
	}
	kmp, err := New(pattern, AlgoKMP, 0, DefaultTo, true)
	if err != nil {
		t.Fatal(err)
	}
	if !bm.quirky {
		t.Error("pattern with 0xDF and icase should use the kernel's bad-shift table")
	}
	if bm.Match(text) {
		t.Error("bm --icase found the hit the kernel misses")
	}
	if !kmp.Match(text) {
		t.Error("kmp --icase missed the hit")
	}
	if refFindTextForTest(text, 0, DefaultTo, AlgoBM, pattern, true) {
		t.Error("reference BM disagrees with the analysis")
	}
}

// TestExhaustiveSmallAlphabet compares Match with the reference for every
// pattern up to 4 bytes and text up to 7 bytes over a 3-letter alphabet
// (repeated characters, overlapping hits, hits at every position), for all
// algorithm/icase combinations and a few windows.
func TestExhaustiveSmallAlphabet(t *testing.T) {
	alpha := []byte("aAb")
	var words func(n int) [][]byte
	words = func(n int) [][]byte {
		if n == 0 {
			return [][]byte{{}}
		}
		var out [][]byte
		for _, w := range words(n - 1) {
			for _, c := range alpha {
				out = append(out, append(append([]byte(nil), w...), c))
			}
		}
		return out
	}
	var texts [][]byte
	for n := 0; n <= 7; n++ {
		texts = append(texts, words(n)...)
	}
	windows := [][2]uint32{{0, DefaultTo}, {1, 6}, {2, 4}}
	for pl := 1; pl <= 4; pl++ {
		for _, p := range words(pl) {
			for _, algo := range []Algo{AlgoBM, AlgoKMP} {
				for _, icase := range []bool{false, true} {
					for _, w := range windows {
						m, err := New(p, algo, w[0], w[1], icase)
						if err != nil {
							t.Fatal(err)
						}
						for _, tx := range texts {
							want := refFindTextForTest(tx, w[0], w[1], algo, p, icase)
							if got := m.Match(tx); got != want {
								t.Fatalf("pattern %q text %q %v icase=%v window %v: Match %v, kernel %v", p, tx, algo, icase, w, got, want)
							}
						}
					}
				}
			}
		}
	}
}

func TestString(t *testing.T) {
	tests := []struct {
		pattern  string
		algo     Algo
		from, to uint32
		icase    bool
		want     string
	}{
		{"GET", AlgoBM, 0, DefaultTo, false, `--string "GET" --algo bm`},
		{`a"b\c`, AlgoKMP, 10, 100, true, `--string "a\"b\\c" --algo kmp --from 10 --to 100 --icase`},
		{"\x00\xffA", AlgoBM, 0, DefaultTo, false, `--hex-string "|00ff41|" --algo bm`},
		{`ab\`, AlgoBM, 0, DefaultTo, false, `--hex-string "|61625c|" --algo bm`},
		{"a b", AlgoBM, 0, 0, false, `--string "a b" --algo bm --to 0`},
	}
	for _, tt := range tests {
		m := mustNewForTest(t, tt.pattern, tt.algo, tt.from, tt.to, tt.icase)
		if got := m.String(); got != tt.want {
			t.Errorf("String() = %s, want %s", got, tt.want)
		}
	}
}

func TestParseHexString(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"|de ad be ef|", "\xde\xad\xbe\xef"},
		{"|deadbeef|", "\xde\xad\xbe\xef"},
		{"GET |20|/", "GET  /"},
		{"|   41|", "A"},
		{"a\\|b", "a|b"},
		{"a\\\\", "a\\"},
		{"|41||42|", "A|42"}, // the byte after a closing '|' is copied as is
		{"|41|\\x", "A\\x"},  // ... even a backslash
		{"|41 ", "A"},        // unterminated block ending after "xx "
		{"plain", "plain"},
		{"|", ""},          // a lone '|' produces nothing
		{"a\x00|zz|", "a"}, // C string ends at NUL
		{"|" + strings.Repeat("41", 127) + "|", strings.Repeat("A", 127)},
	}
	for _, tt := range tests {
		got, err := ParseHexString(tt.in)
		if err != nil {
			t.Errorf("ParseHexString(%q): %v", tt.in, err)
			continue
		}
		if string(got) != tt.want {
			t.Errorf("ParseHexString(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseHexStringErrors(t *testing.T) {
	tests := []struct {
		in     string
		offset int
		msg    string
	}{
		{"", 0, "STRING must contain at least one char"},
		{"a\\", 1, "Bad literal placement at end of string"},
		{"|4", 1, "Odd number of hex digits"},
		{"|41", 1, "Invalid hex block"},
		{"|4g|", 2, "Invalid hex char 'g'"},
		{"|zz|", 1, "Invalid hex char 'z'"},
		{"|41\\42|", 3, "Cannot include literals in hex data"},
		{"||", 1, "Odd number of hex digits"},
		{"|41  42|", 4, "Invalid hex char ' '"},
		{strings.Repeat("a", 129), 128, "STRING too long"},
		{"|" + strings.Repeat("41", 128) + "|", 257, "STRING too long"},
	}
	for _, tt := range tests {
		_, err := ParseHexString(tt.in)
		var he *HexStringError
		if !errors.As(err, &he) {
			t.Errorf("ParseHexString(%q) = %v, want *HexStringError", tt.in, err)
			continue
		}
		if he.Offset != tt.offset || !strings.HasPrefix(he.Msg, tt.msg) {
			t.Errorf("ParseHexString(%q) = offset %d %q, want offset %d %q", tt.in, he.Offset, he.Msg, tt.offset, tt.msg)
		}
	}
}

func TestMatchZeroAllocs(t *testing.T) {
	pkt := ipv4UDPPayloadForTest(strings.Repeat("x", 400) + "GET /index.html")
	for _, icase := range []bool{false, true} {
		for _, algo := range []Algo{AlgoBM, AlgoKMP} {
			m := mustNewForTest(t, "GET /index", algo, 0, DefaultTo, icase)
			if a := testing.AllocsPerRun(1000, func() { m.Match(pkt) }); a != 0 {
				t.Errorf("%v icase=%v: %v allocs per Match", algo, icase, a)
			}
		}
	}
	q := mustNewForTest(t, "\xdfa", AlgoBM, 0, DefaultTo, true)
	if a := testing.AllocsPerRun(1000, func() { q.Match(pkt) }); a != 0 {
		t.Errorf("quirky path: %v allocs per Match", a)
	}
}

func benchmarkMatch(b *testing.B, algo Algo, icase bool) {
	pkt := ipv4UDPPayloadForTest(strings.Repeat("abcdefgh", 180) + "GET /index.html")
	m := mustNewForTest(b, "GET /index", algo, 0, DefaultTo, icase)
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	for b.Loop() {
		if !m.Match(pkt) {
			b.Fatal("no match")
		}
	}
}

func BenchmarkMatchBM(b *testing.B)       { benchmarkMatch(b, AlgoBM, false) }
func BenchmarkMatchKMP(b *testing.B)      { benchmarkMatch(b, AlgoKMP, false) }
func BenchmarkMatchBMIcase(b *testing.B)  { benchmarkMatch(b, AlgoBM, true) }
func BenchmarkMatchKMPIcase(b *testing.B) { benchmarkMatch(b, AlgoKMP, true) }

func BenchmarkReferenceBM(b *testing.B) {
	pkt := ipv4UDPPayloadForTest(strings.Repeat("abcdefgh", 180) + "GET /index.html")
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	for b.Loop() {
		refFindTextForTest(pkt, 0, DefaultTo, AlgoBM, []byte("GET /index"), false)
	}
}

func FuzzParseHexString(f *testing.F) {
	for _, s := range []string{"|de ad|", "a\\|b|41||", "|41 ", "||", "\\"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseHexString(s)
		if err != nil {
			var he *HexStringError
			if !errors.As(err, &he) {
				t.Fatalf("untyped error %T", err)
			}
			return
		}
		if len(p) > MaxPatternSize {
			t.Fatalf("pattern of %d bytes accepted", len(p))
		}
		// What iptables-save prints for a non-empty pattern parses back.
		if len(p) > 0 && len(p) < MaxPatternSize {
			m, err := New(p, AlgoBM, 0, DefaultTo, false)
			if err != nil {
				t.Fatal(err)
			}
			if s := m.String(); strings.HasPrefix(s, `--hex-string "`) {
				arg := strings.TrimPrefix(s, `--hex-string "`)
				arg = arg[:strings.IndexByte(arg, '"')]
				back, err := ParseHexString(arg)
				if err != nil || !bytes.Equal(back, p) {
					t.Fatalf("saved form %q of %q parses to %q, %v", arg, p, back, err)
				}
			}
		}
	})
}

// FuzzMatch differentially tests Match against the literal kernel reference.
// Bytes are squeezed into a small alphabet that includes the Latin-1 case
// pairs, so repeated characters and the icase corner cases are common.
func FuzzMatch(f *testing.F) {
	f.Add([]byte("ab"), []byte("xxabyyab"), uint16(0), uint16(65535), true, false)
	f.Add([]byte{0xdf, 'a'}, []byte{0xdf, 0xdf, 'a'}, uint16(0), uint16(65535), true, true)
	f.Add([]byte("aaa"), []byte("aaaaaaaa"), uint16(2), uint16(6), false, true)
	alpha := []byte{'a', 'A', 'b', 'B', 0xdf, 0xff, 0xbf, 0xe9, 0xc9, 0}
	squeeze := func(b []byte) []byte {
		out := make([]byte, len(b))
		for i, c := range b {
			out[i] = alpha[int(c)%len(alpha)]
		}
		return out
	}
	f.Fuzz(func(t *testing.T, pattern, text []byte, from, to uint16, bm, icase bool) {
		if len(pattern) == 0 || len(pattern) > MaxPatternSize || from > to {
			return
		}
		algo := AlgoKMP
		if bm {
			algo = AlgoBM
		}
		for _, sq := range []bool{false, true} {
			p, tx := pattern, text
			if sq {
				p, tx = squeeze(pattern), squeeze(text)
			}
			m, err := New(p, algo, uint32(from), uint32(to), icase)
			if err != nil {
				t.Fatal(err)
			}
			want := refFindTextForTest(tx, uint32(from), uint32(to), algo, p, icase)
			if got := m.Match(tx); got != want {
				t.Fatalf("pattern %q text %q %v icase=%v from %d to %d: Match %v, kernel %v", p, tx, algo, icase, from, to, got, want)
			}
		}
	})
}
