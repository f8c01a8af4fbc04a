package cbpf

import (
	"fmt"
	"strings"
)

// ParseError is a --bytecode argument iptables refuses. Msg is the message
// of bpf_parse_string (extensions/libxt_bpf.c); Instr is the instruction
// index it concerns (-1 for the length header or the program as a whole) and
// Offset the byte offset in the argument where the problem was found.
type ParseError struct {
	Instr  int
	Offset int
	Msg    string
}

func (e *ParseError) Error() string {
	if e.Instr < 0 {
		return fmt.Sprintf("bpf: %s (at byte %d)", e.Msg, e.Offset)
	}
	return fmt.Sprintf("bpf: %s (instruction %d at byte %d)", e.Msg, e.Instr, e.Offset)
}

// ParseBytecode parses a --bytecode argument exactly as bpf_parse_string in
// iptables' extensions/libxt_bpf.c does with glibc's sscanf:
//
//   - the header is sscanf("%hu%c") and must be the count followed directly
//     by ','; a count of 0 or above XT_BPF_MAX_NUM_INSTR (64) is refused;
//   - each instruction starts after a ',' that is not the last character
//     (so one trailing ',' is tolerated) and is read with "%hu %hhu %hhu %u":
//     four decimal numbers separated by optional white space, anything after
//     the fourth number up to the next ',' ignored;
//   - numbers follow scanf: leading white space, an optional sign ("-1"
//     wraps), digits, a value converted through unsigned long (saturating
//     at ULONG_MAX on overflow) and then truncated to the field's width;
//   - more instructions than the count, or fewer, are errors.
//
// As in C, the text ends at the first NUL byte. The result is not checked
// for kernel validity; see Check and Compile.
func ParseBytecode(s string) ([]Instruction, error) {
	if i := strings.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	v, p, ok := scanUint(s, 0)
	if !ok || p >= len(s) || s[p] != ',' {
		return nil, &ParseError{Instr: -1, Offset: p, Msg: "error parsing program length"}
	}
	count := int(uint16(v))
	if count == 0 {
		return nil, &ParseError{Instr: -1, Offset: 0, Msg: "illegal zero length program"}
	}
	if count > MaxInstructions {
		return nil, &ParseError{Instr: -1, Offset: 0, Msg: "number of instructions exceeds maximum"}
	}
	prog := make([]Instruction, 0, count)
	tok := 0
	for {
		c := strings.IndexByte(s[tok:], ',')
		if c < 0 {
			break
		}
		tok += c + 1
		if tok >= len(s) {
			break
		}
		i := len(prog)
		if i >= count {
			return nil, &ParseError{Instr: i, Offset: tok, Msg: "real program length exceeds the encoded length parameter"}
		}
		var f [4]uint64
		q := tok
		for j := range f {
			f[j], q, ok = scanUint(s, q)
			if !ok {
				return nil, &ParseError{Instr: i, Offset: q, Msg: fmt.Sprintf("error at instr %d", i)}
			}
		}
		prog = append(prog, Instruction{Op: uint16(f[0]), Jt: uint8(f[1]), Jf: uint8(f[2]), K: uint32(f[3])})
	}
	if len(prog) != count {
		return nil, &ParseError{Instr: -1, Offset: len(s), Msg: "parsed program length is less than the encoded length parameter"}
	}
	return prog, nil
}

// scanUint is one glibc scanf "%u"-family conversion starting at s[p:]: it
// returns the value as the unsigned long strtoul produced (the caller
// truncates), the offset after it, and false on a matching failure (no
// digits), in which case the offset is where the number was expected.
func scanUint(s string, p int) (uint64, int, bool) {
	for p < len(s) && isSpace(s[p]) {
		p++
	}
	start := p
	neg := false
	if p < len(s) && (s[p] == '+' || s[p] == '-') {
		neg = s[p] == '-'
		p++
	}
	digits := p
	var v uint64
	overflow := false
	for p < len(s) && s[p] >= '0' && s[p] <= '9' {
		d := uint64(s[p] - '0')
		if v > (^uint64(0)-d)/10 {
			overflow = true
		} else {
			v = v*10 + d
		}
		p++
	}
	if p == digits {
		return 0, start, false
	}
	if overflow {
		return ^uint64(0), p, true
	}
	if neg {
		v = -v
	}
	return v, p, true
}

func isSpace(c byte) bool {
	return c == ' ' || (c >= '\t' && c <= '\r')
}
