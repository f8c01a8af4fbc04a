package u32

import (
	"fmt"
	"strings"
)

// SyntaxError describes why an --u32 argument was refused. Msg is the text
// iptables' u32_parse (extensions/libxt_u32.c) prints and Offset is the
// character position it reports ("at char N"), which is a byte offset into
// the expression. Word is the text found at Offset, to point at the culprit.
type SyntaxError struct {
	Offset int
	Word   string
	Msg    string
}

func (e *SyntaxError) Error() string {
	if e.Word == "" {
		return fmt.Sprintf("u32: at char %d: %s", e.Offset, e.Msg)
	}
	return fmt.Sprintf("u32: at char %d: %s (at %q)", e.Offset, e.Msg, e.Word)
}

func syntaxError(s string, off int, msg string) *SyntaxError {
	return &SyntaxError{Offset: off, Word: wordAt(s, off), Msg: msg}
}

// wordAt returns up to 16 bytes of s from off, stopping at white space, so the
// error can quote what was found there.
func wordAt(s string, off int) string {
	if off < 0 || off >= len(s) {
		return ""
	}
	end := off
	for end < len(s) && end-off < 16 && !isSpace(s[end]) {
		end++
	}
	if end == off {
		return s[off : off+1]
	}
	return s[off:end]
}

// Parse parses an --u32 argument with the grammar and the quirks of
// u32_parse in iptables' extensions/libxt_u32.c:
//
//	tests    := location "=" value | tests "&&" location "=" value
//	value    := range | value "," range
//	range    := number | number ":" number
//	location := number | location operator number
//	operator := "&" | "<<" | ">>" | "@"
//
// Numbers are read like xtables_strtoui(..., 0, UINT32_MAX), that is
// strtoumax with base 0: optional leading white space, an optional "+", a
// "0x"/"0X" prefix for hexadecimal, a leading "0" for octal, decimal
// otherwise; a "-" sign or a value above 0xffffffff is refused. As in C, the
// text ends at the first NUL byte. A range whose minimum exceeds its maximum
// is accepted (it never matches), as iptables does.
func Parse(expr string) (*Match, error) {
	if i := strings.IndexByte(expr, 0); i >= 0 {
		expr = expr[:i]
	}
	m := &Match{}
	s := expr
	at := 0
	state := 0
	testind, locind, valind := 0, 0, 0
	ct := &m.tests[0]
	for {
		for at < len(s) && isSpace(s[at]) {
			at++
		}
		if at >= len(s) {
			if state == 0 {
				return nil, &SyntaxError{Offset: at, Msg: "abrupt end of input after location specifier"}
			}
			if valind == 0 {
				return nil, &SyntaxError{Offset: at, Msg: "test ended with no value specified"}
			}
			ct.nloc = uint8(locind)
			ct.nval = uint8(valind)
			testind++
			if testind > MaxSize {
				return nil, &SyntaxError{Offset: at, Msg: `too many "&&"s`}
			}
			m.ntests = uint8(testind)
			return m, nil
		}
		if state == 0 {
			if s[at] == '=' {
				if locind == 0 {
					return nil, syntaxError(s, at, "location spec missing")
				}
				at++
				state = 1
				continue
			}
			var o op
			if locind != 0 {
				switch s[at] {
				case '&':
					o = opAnd
				case '<':
					at++
					if at >= len(s) || s[at] != '<' {
						return nil, syntaxError(s, at, "a second '<' was expected")
					}
					o = opLeftShift
				case '>':
					at++
					if at >= len(s) || s[at] != '>' {
						return nil, syntaxError(s, at, "a second '>' was expected")
					}
					o = opRightShift
				case '@':
					o = opAt
				default:
					return nil, syntaxError(s, at, "operator expected")
				}
				at++
			}
			n, end, ok := parseNumber(s, at)
			if !ok {
				return nil, syntaxError(s, at, "not a number or out of range")
			}
			at = end
			if locind >= MaxSize {
				return nil, syntaxError(s, at, "too many operators")
			}
			ct.loc[locind] = location{number: n, op: o}
			locind++
			continue
		}
		// state 1: value ranges, then "&&" or the end.
		if s[at] == '&' {
			at++
			if at >= len(s) || s[at] != '&' {
				return nil, syntaxError(s, at, "a second '&' was expected")
			}
			if valind == 0 {
				return nil, syntaxError(s, at, "value spec missing")
			}
			ct.nloc = uint8(locind)
			ct.nval = uint8(valind)
			testind++
			if testind > MaxSize {
				return nil, syntaxError(s, at, `too many "&&"s`)
			}
			ct = &m.tests[testind]
			at++
			state, locind, valind = 0, 0, 0
			continue
		}
		if valind > 0 {
			if s[at] != ',' {
				return nil, syntaxError(s, at, `expected "," or "&&"`)
			}
			at++
		}
		lo, end, ok := parseNumber(s, at)
		if !ok {
			return nil, syntaxError(s, at, "not a number or out of range")
		}
		at = end
		for at < len(s) && isSpace(s[at]) {
			at++
		}
		hi := lo
		if at < len(s) && s[at] == ':' {
			at++
			hi, end, ok = parseNumber(s, at)
			if !ok {
				return nil, syntaxError(s, at, "not a number or out of range")
			}
			at = end
		}
		if valind >= MaxSize {
			return nil, syntaxError(s, at, `too many ","s`)
		}
		ct.val[valind] = valueRange{min: lo, max: hi}
		valind++
	}
}

// parseNumber reads an unsigned number at s[at:] the way
// xtables_strtoul_base(s, &end, &v, 0, UINT32_MAX, 0) does with glibc's
// strtoumax: it returns the value, the offset just after it, and whether a
// number in range was found.
func parseNumber(s string, at int) (uint32, int, bool) {
	p := at
	for p < len(s) && isSpace(s[p]) {
		p++
	}
	if p < len(s) && s[p] == '-' {
		return 0, at, false
	}
	if p < len(s) && s[p] == '+' {
		p++
	}
	base := uint64(10)
	if p < len(s) && s[p] == '0' {
		base = 8
		if p+2 < len(s) && (s[p+1] == 'x' || s[p+1] == 'X') && digitValue(s[p+2]) < 16 {
			base = 16
			p += 2
		}
	}
	start := p
	var v uint64
	overflow := false
	for p < len(s) {
		d := digitValue(s[p])
		if d >= base {
			break
		}
		if v > (^uint64(0)-d)/base {
			overflow = true
		} else {
			v = v*base + d
		}
		p++
	}
	if p == start {
		return 0, at, false
	}
	if overflow || v > 0xffffffff {
		return 0, at, false
	}
	return uint32(v), p, true
}

func digitValue(c byte) uint64 {
	switch {
	case c >= '0' && c <= '9':
		return uint64(c - '0')
	case c >= 'a' && c <= 'z':
		return uint64(c-'a') + 10
	case c >= 'A' && c <= 'Z':
		return uint64(c-'A') + 10
	}
	return 255
}

// isSpace is isspace() in the C locale, which is what u32_parse and strtoumax
// skip.
func isSpace(c byte) bool {
	return c == ' ' || (c >= '\t' && c <= '\r')
}
