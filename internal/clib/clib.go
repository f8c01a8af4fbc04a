// Package clib reproduces the C library functions iptables and ipset use
// to read numbers and names from rule text. Their quirks (saturation,
// trailing junk ignored, ASCII-only case folding) decide which rules load
// and what they mean, so sluice reads option text through the same
// arithmetic rather than through Go's stricter parsers.
package clib

// Strtoll is glibc's strtoll(s, NULL, 10), on which atoi and atoll are
// built: leading white space, an optional sign, then digits; it saturates
// on overflow and returns 0 when there are no digits. Trailing characters
// are ignored.
func Strtoll(s string) int64 {
	i := 0
	for i < len(s) && (s[i] == ' ' || (s[i] >= '\t' && s[i] <= '\r')) {
		i++
	}
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	var v uint64
	over := false
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		d := uint64(s[i] - '0')
		if v > (1<<63)/10 || v*10+d > 1<<63 {
			over = true
			continue
		}
		v = v*10 + d
	}
	if neg {
		if over {
			return -1 << 63
		}
		return -int64(v-1) - 1
	}
	if over || v > 1<<63-1 {
		return 1<<63 - 1
	}
	return int64(v)
}

// Atoi is glibc's atoi: Strtoll truncated to a C int.
func Atoi(s string) int32 { return int32(Strtoll(s)) }

// EqualFoldASCII is strcasecmp(a, b) == 0 in the C locale: only ASCII
// letters fold.
func EqualFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
