// Package inetaddr is the C library's inet_aton arithmetic, which
// iptables (through its resolver fallback) and ipset restore (through
// getaddrinfo) apply to IPv4 addresses written in short forms. Each
// caller reads the parts in the number notation its tool accepts; this
// package only combines them.
package inetaddr

// Aton combines the parts of a dotted IPv4 address of one to four parts as
// inet_aton does: every part but the last is one byte, and the last fills
// the bytes left ("1.2.3" is 1.2.0.3, "65536" is 0.1.0.0). ok is false for
// no part, more than four, or a part that does not fit.
func Aton(parts []uint64) (v uint32, ok bool) {
	if len(parts) == 0 || len(parts) > 4 {
		return 0, false
	}
	for i, n := range parts {
		if i < len(parts)-1 {
			if n > 255 {
				return 0, false
			}
			v |= uint32(n) << (8 * (3 - i))
			continue
		}
		if n >= 1<<(8*(4-i)) {
			return 0, false
		}
		v |= uint32(n)
	}
	return v, true
}
