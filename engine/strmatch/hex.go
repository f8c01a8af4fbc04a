package strmatch

import (
	"fmt"
	"strings"
)

// HexStringError is a --hex-string argument iptables refuses; Msg is the
// message of parse_hex_string (extensions/libxt_string.c) and Offset the byte
// offset in the argument where it stopped.
type HexStringError struct {
	Offset int
	Msg    string
}

func (e *HexStringError) Error() string {
	return fmt.Sprintf("string: --hex-string: at byte %d: %s", e.Offset, e.Msg)
}

// ParseHexString decodes a --hex-string argument with the exact rules of
// parse_hex_string in iptables' extensions/libxt_string.c:
//
//   - text outside |...| is copied byte for byte; "\x" outside a hex block
//     copies x literally (a '\' inside a block is an error);
//   - inside |...| two hex digits make a byte; one space after a byte and any
//     spaces right after the opening '|' are skipped;
//   - the byte right after a closing '|' is always copied literally, even a
//     '|' or '\' (parse_hex_string advances past the '|' and falls through to
//     the copy);
//   - a string ending inside an unterminated block after a "xx " byte is
//     accepted;
//   - the pattern is at most XT_STRING_MAX_PATTERN_SIZE (128) bytes, checked
//     before each byte is produced, so 128 hex bytes followed by the closing
//     '|' are already refused.
//
// As in C, the argument ends at its first NUL byte.
func ParseHexString(s string) ([]byte, error) {
	if i := strings.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	slen := len(s)
	if slen == 0 {
		return nil, &HexStringError{Offset: 0, Msg: "STRING must contain at least one char"}
	}
	var out []byte
	hex, literal := false, false
	i := 0
	for i < slen {
		if len(out) >= MaxPatternSize {
			return nil, &HexStringError{Offset: i, Msg: fmt.Sprintf("STRING too long (more than %d bytes)", MaxPatternSize)}
		}
		switch {
		case s[i] == '\\' && !hex:
			literal = true
		case s[i] == '\\':
			return nil, &HexStringError{Offset: i, Msg: "Cannot include literals in hex data"}
		case s[i] == '|':
			if hex {
				hex = false
			} else {
				hex = true
				for i+1 < slen && s[i+1] == ' ' {
					i++
				}
			}
			if i+1 >= slen {
				return out, nil
			}
			i++
		}
		switch {
		case literal:
			if i+1 >= slen {
				return nil, &HexStringError{Offset: i, Msg: "Bad literal placement at end of string"}
			}
			out = append(out, s[i+1])
			i += 2
			literal = false
		case hex:
			if i+1 >= slen {
				return nil, &HexStringError{Offset: i, Msg: "Odd number of hex digits"}
			}
			if i+2 >= slen {
				return nil, &HexStringError{Offset: i, Msg: "Invalid hex block"}
			}
			hi, ok1 := hexValue(s[i])
			if !ok1 {
				return nil, &HexStringError{Offset: i, Msg: fmt.Sprintf("Invalid hex char '%c'", s[i])}
			}
			lo, ok2 := hexValue(s[i+1])
			if !ok2 {
				return nil, &HexStringError{Offset: i + 1, Msg: fmt.Sprintf("Invalid hex char '%c'", s[i+1])}
			}
			out = append(out, hi<<4|lo)
			if s[i+2] == ' ' {
				i += 3
			} else {
				i += 2
			}
		default:
			out = append(out, s[i])
			i++
		}
	}
	return out, nil
}

func hexValue(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
