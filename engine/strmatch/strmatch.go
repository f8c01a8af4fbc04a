// Package strmatch evaluates the iptables "string" match (-m string --algo
// bm|kmp --string/--hex-string ... [--from N] [--to N] [--icase]).
//
// Payload signatures are a staple of DDoS mitigation rule sets, and the
// kernel's answer for them is not simply "does the pattern occur between
// --from and --to": net/netfilter/xt_string.c calls skb_find_text
// (net/core/skbuff.c), which hands the textsearch algorithm (lib/ts_bm.c or
// lib/ts_kmp.c, via lib/textsearch.c) the whole linear block from --from to
// the end of the packet, takes the first hit the algorithm reports, and
// accepts it only if it ends at or before --to. With --icase, ts_bm's
// bad-character table is built from the upper-cased pattern and its
// tolower() only, while text bytes are compared through the kernel's Latin-1
// toupper() (lib/ctype.c), so a few bytes (0xDF and 0xFF) can make the
// kernel's Boyer-Moore skip a real occurrence. This package reproduces those
// answers while searching with the fastest method that provably gives the
// same result: bytes.Index when case matters, a Boyer-Moore with the
// kernel's tables otherwise. The skb is modelled as linear (the IP datagram
// in one block).
package strmatch

import (
	"bytes"
	"fmt"
	"strconv"
)

// Algo is a textsearch algorithm name accepted by --algo.
type Algo uint8

const (
	// AlgoBM is lib/ts_bm.c, "--algo bm".
	AlgoBM Algo = iota + 1
	// AlgoKMP is lib/ts_kmp.c, "--algo kmp".
	AlgoKMP
)

func (a Algo) String() string {
	switch a {
	case AlgoBM:
		return "bm"
	case AlgoKMP:
		return "kmp"
	}
	return "Algo(" + strconv.Itoa(int(a)) + ")"
}

// Limits from include/uapi/linux/netfilter/xt_string.h.
const (
	// MaxPatternSize is XT_STRING_MAX_PATTERN_SIZE.
	MaxPatternSize = 128
	// MaxAlgoNameSize is XT_STRING_MAX_ALGO_NAME_SIZE, including the NUL.
	MaxAlgoNameSize = 16
	// DefaultTo is the --to iptables stores when none is given (string_init
	// sets UINT16_MAX); iptables-save omits --to when it has this value.
	DefaultTo = 65535
)

// AlgoError is an --algo name that cannot be used.
type AlgoError struct {
	Name string
	Msg  string
}

func (e *AlgoError) Error() string { return fmt.Sprintf("string: --algo %q: %s", e.Name, e.Msg) }

// ParseAlgo maps an --algo argument to an Algo. Only "bm" and "kmp" are
// supported: they are the algorithms xt_string users pick, and the kernel's
// other textsearch module ("fsm") interprets the pattern as a token program,
// which sluice does not implement.
func ParseAlgo(s string) (Algo, error) {
	switch s {
	case "bm":
		return AlgoBM, nil
	case "kmp":
		return AlgoKMP, nil
	case "fsm":
		return 0, &AlgoError{Name: s, Msg: "the fsm textsearch algorithm is not supported"}
	}
	if len(s) >= MaxAlgoNameSize {
		return 0, &AlgoError{Name: s, Msg: fmt.Sprintf("longer than %d characters", MaxAlgoNameSize-1)}
	}
	return 0, &AlgoError{Name: s, Msg: "unknown textsearch algorithm (want bm or kmp)"}
}

// ConfigError is a configuration string_mt_check (or iptables) refuses.
type ConfigError struct {
	Field string
	Msg   string
}

func (e *ConfigError) Error() string { return "string: " + e.Field + ": " + e.Msg }

// Matcher is one configured string match (without "!" inversion). It is
// immutable and safe for concurrent use.
type Matcher struct {
	pattern []byte // as configured
	pat     []byte // as searched: upper-cased with the kernel's toupper when icase
	algo    Algo
	from    uint32
	to      uint32
	icase   bool
	// quirky: ts_bm with --icase whose bad-character table can skip an
	// occurrence; Match then runs the kernel's algorithm on the whole block.
	quirky    bool
	good      []int32
	bad       [256]int32 // safe table, exact under case folding
	kernelBad [256]int32 // ts_bm's table, used only when quirky
}

// New validates the configuration like string_mt_check (from > to, pattern
// longer than XT_STRING_MAX_PATTERN_SIZE) and textsearch_prepare (empty
// pattern), plus the 16-bit range of --from/--to in struct xt_string_info.
func New(pattern []byte, algo Algo, from, to uint32, icase bool) (*Matcher, error) {
	if algo != AlgoBM && algo != AlgoKMP {
		return nil, &ConfigError{Field: "algo", Msg: fmt.Sprintf("unknown algorithm %d", algo)}
	}
	if len(pattern) == 0 {
		return nil, &ConfigError{Field: "pattern", Msg: "empty pattern (textsearch_prepare refuses length 0)"}
	}
	if len(pattern) > MaxPatternSize {
		return nil, &ConfigError{Field: "pattern", Msg: fmt.Sprintf("%d bytes, more than %d", len(pattern), MaxPatternSize)}
	}
	if from > 0xffff {
		return nil, &ConfigError{Field: "from", Msg: fmt.Sprintf("%d does not fit in 16 bits", from)}
	}
	if to > 0xffff {
		return nil, &ConfigError{Field: "to", Msg: fmt.Sprintf("%d does not fit in 16 bits", to)}
	}
	if from > to {
		return nil, &ConfigError{Field: "from", Msg: fmt.Sprintf("--from %d is after --to %d", from, to)}
	}
	m := &Matcher{
		pattern: append([]byte(nil), pattern...),
		algo:    algo,
		from:    from,
		to:      to,
		icase:   icase,
	}
	m.pat = append([]byte(nil), pattern...)
	if icase {
		for i, c := range m.pat {
			m.pat[i] = toUpper(c)
		}
	}
	m.good = goodShift(m.pat)
	m.kernelBad = kernelBadShift(m.pat, icase)
	// The safe table: for every text byte c, the distance from the last
	// occurrence of toupper(c) in pat[:len-1] to the end.
	n := int32(len(m.pat))
	for c := range m.bad {
		m.bad[c] = n
	}
	for c := 0; c < 256; c++ {
		u := byte(c)
		if icase {
			u = toUpper(u)
		}
		for i := 0; i < len(m.pat)-1; i++ {
			if m.pat[i] == u {
				m.bad[c] = n - 1 - int32(i)
			}
		}
	}
	if icase && algo == AlgoBM {
		for c := range m.bad {
			if m.kernelBad[c] > m.bad[c] {
				m.quirky = true
			}
		}
	}
	return m, nil
}

// Match reports skb_find_text(skb, from, to, config) != UINT_MAX for the
// linear datagram l3: the textsearch reads l3[from:] as one block (the
// kernel's skb_seq_read returns the whole rest of the linear area and only
// uses --to to stop asking for more), the algorithm reports its first hit r,
// and the hit counts only if r+len(pattern) <= to-from. Nothing is read when
// from >= to or from >= len(l3).
func (m *Matcher) Match(l3 []byte) bool {
	if m.from >= m.to || uint64(m.from) >= uint64(len(l3)) {
		return false
	}
	block := l3[m.from:]
	limit := int(m.to - m.from)
	if m.quirky {
		r := bmFind(block, m.pat, &m.kernelBad, m.good, true)
		return r >= 0 && r+len(m.pat) <= limit
	}
	// Every other configuration finds the leftmost occurrence, so "first hit
	// ends by --to" is "an occurrence lies inside l3[from:to]".
	window := block
	if len(window) > limit {
		window = window[:limit]
	}
	if !m.icase {
		return bytes.Contains(window, m.pat)
	}
	return bmFind(window, m.pat, &m.bad, m.good, true) >= 0
}

// bmFind is the search loop of lib/ts_bm.c bm_find on one block: compare
// right to left, and on a mismatch after i matched bytes move the window end
// by max(bad[text byte] - i, good[i]). It returns the start of the hit or -1.
func bmFind(text, pat []byte, bad *[256]int32, good []int32, icase bool) int {
	n := len(pat)
	shift := n - 1
	for shift < len(text) {
		i := 0
		for ; i < n; i++ {
			c := text[shift-i]
			if icase {
				c = toUpper(c)
			}
			if c != pat[n-1-i] {
				break
			}
		}
		if i == n {
			return shift - (n - 1)
		}
		next := shift - i + int(bad[text[shift-i]])
		if g := shift + int(good[i]); g > next {
			next = g
		}
		shift = next
	}
	return -1
}

// kernelBadShift is the bad_shift table of ts_bm.c compute_prefix_tbl for the
// (already upper-cased when icase) pattern.
func kernelBadShift(pat []byte, icase bool) [256]int32 {
	var bad [256]int32
	n := int32(len(pat))
	for c := range bad {
		bad[c] = n
	}
	for i := 0; i < len(pat)-1; i++ {
		bad[pat[i]] = n - 1 - int32(i)
		if icase {
			bad[toLower(pat[i])] = n - 1 - int32(i)
		}
	}
	return bad
}

// goodShift is the good_shift table of ts_bm.c compute_prefix_tbl: entry g
// is the window move after g bytes matched, from the rightmost earlier
// occurrence of the matched suffix preceded by a different byte, or of a
// suffix of it at the start of the pattern.
func goodShift(pat []byte) []int32 {
	n := len(pat)
	good := make([]int32, n)
	good[0] = 1
	for i := 1; i < n; i++ {
		good[i] = int32(n)
	}
	for i, g := n-1, 1; i > 0; i, g = i-1, g+1 {
		for j := i - 1; j >= 1-g; j-- {
			if subpattern(pat, i, j, g) {
				good[g] = int32(n - j - g)
				break
			}
		}
	}
	return good
}

// subpattern is ts_bm.c's helper of the same name.
func subpattern(pat []byte, i, j, g int) bool {
	x, y := i+g-1, j+g-1
	for {
		eq := pat[x] == pat[y]
		x--
		y--
		if !eq {
			return false
		}
		if y < 0 {
			return true
		}
		g--
		if g == 0 {
			return pat[i-1] != pat[j-1]
		}
	}
}

// String returns the options as iptables-save prints them (string_save in
// extensions/libxt_string.c), without the leading space and without the "!"
// of an inverted rule: --string "..." (with '"' and '\' escaped) or, when a
// byte is not printable or the last byte is '\', --hex-string "|..|"; then
// --algo, --from unless 0, --to unless 65535, and --icase.
func (m *Matcher) String() string {
	var b []byte
	if isHexString(m.pattern) {
		b = append(b, `--hex-string "|`...)
		const hexdigits = "0123456789abcdef"
		for _, c := range m.pattern {
			b = append(b, hexdigits[c>>4], hexdigits[c&15])
		}
		b = append(b, `|"`...)
	} else {
		b = append(b, `--string "`...)
		for _, c := range m.pattern {
			if c == '"' || c == '\\' {
				b = append(b, '\\')
			}
			b = append(b, c)
		}
		b = append(b, '"')
	}
	b = append(b, " --algo "...)
	b = append(b, m.algo.String()...)
	if m.from != 0 {
		b = append(b, " --from "...)
		b = strconv.AppendUint(b, uint64(m.from), 10)
	}
	if m.to != DefaultTo {
		b = append(b, " --to "...)
		b = strconv.AppendUint(b, uint64(m.to), 10)
	}
	if m.icase {
		b = append(b, " --icase"...)
	}
	return string(b)
}

func isHexString(p []byte) bool {
	for _, c := range p {
		if c < 0x20 || c > 0x7e {
			return true
		}
	}
	return len(p) > 0 && p[len(p)-1] == '\\'
}

// Kernel character classes (lib/ctype.c): Latin-1, so toupper maps
// 0xE0-0xFE (except 0xF7) down by 0x20 and also 0xDF -> 0xBF and 0xFF -> 0xDF.
func isLowerKernel(c byte) bool {
	return (c >= 'a' && c <= 'z') || (c >= 0xdf && c != 0xf7)
}

func isUpperKernel(c byte) bool {
	return (c >= 'A' && c <= 'Z') || (c >= 0xc0 && c <= 0xde && c != 0xd7)
}

func toUpper(c byte) byte {
	if isLowerKernel(c) {
		return c - ('a' - 'A')
	}
	return c
}

func toLower(c byte) byte {
	if isUpperKernel(c) {
		return c + ('a' - 'A')
	}
	return c
}
