// Package u32 evaluates the iptables "u32" match (-m u32 --u32 "...").
//
// Operators use u32 tests to reach into headers that no dedicated match
// understands (TCP options behind a variable IP header, tunnel payloads, DNS
// flags). Because sluice must produce the same per-rule counters as the
// kernel, this package is a deliberate re-statement of the kernel's
// u32_match_it() in net/netfilter/xt_u32.c, with the limits of
// include/uapi/linux/netfilter/xt_u32.h, and of the textual grammar accepted
// by iptables' extensions/libxt_u32.c (u32_parse) and printed by its
// u32_save/u32_dump. Anything the kernel would treat as an out-of-bounds read
// makes the whole match false, exactly as there.
//
// The parsed test is stored in fixed-size arrays so that Match never
// allocates and never calls through an interface.
package u32

import (
	"encoding/binary"
	"strconv"
)

// MaxSize is XT_U32_MAXSIZE: iptables accepts at most this many "&&"-joined
// tests, this many numbers in one location and this many value ranges in one
// test (u32_parse errors on the 11th).
const MaxSize = 10

// op is the operator that precedes a location number; the values are those of
// enum xt_u32_ops so that a dump of Match mirrors struct xt_u32.
type op uint8

const (
	opAnd        op = iota // XT_U32_AND, "&"
	opLeftShift            // XT_U32_LEFTSH, "<<"
	opRightShift           // XT_U32_RIGHTSH, ">>"
	opAt                   // XT_U32_AT, "@"
)

type location struct {
	number uint32
	op     op
}

type valueRange struct {
	min, max uint32
}

type test struct {
	loc  [MaxSize]location
	val  [MaxSize]valueRange
	nloc uint8
	nval uint8
}

// Match is one parsed and validated --u32 argument (without the "!"
// inversion, which belongs to the rule). Its zero value matches every packet,
// like a struct xt_u32 with ntests == 0.
type Match struct {
	// One spare slot, as in struct xt_u32: iptables parses an 11th test
	// before it reports 'too many "&&"s' at the end of the text.
	tests  [MaxSize + 1]test
	ntests uint8
}

// Match reports whether the IP datagram l3 (skb->data at PREROUTING, length
// skb->len) satisfies every test, with the arithmetic of u32_match_it():
//
//   - a test starts by reading the big-endian word at location[0]; it needs
//     skb->len >= 4 and pos <= skb->len-4;
//   - "@" adds the current value to the running base "at" (failing on u32
//     overflow), then reads the word at at+number, requiring at+4 not to
//     overflow, at+4 <= skb->len and number <= skb->len-at-4;
//   - "&", "<<" and ">>" work on 32-bit unsigned values.
//
// Shift counts of 32 or more are undefined behaviour in the kernel's C; on
// x86-64 (and arm64) the compiled shift instruction uses the count modulo 32,
// so that is what is reproduced here. Kernels carrying the 2026 xt_u32
// checkentry fix ("netfilter: xt_u32: reject invalid shift counts") refuse
// such a rule at load time instead, and so does the rules parser; see
// Match.WideShift.
func (m *Match) Match(l3 []byte) bool {
	n := uint32(len(l3))
	if uint64(len(l3)) > 0xffffffff {
		return false
	}
	for t := 0; t < int(m.ntests); t++ {
		ct := &m.tests[t]
		pos := ct.loc[0].number
		if n < 4 || pos > n-4 {
			return false
		}
		val := be32(l3, pos)
		var at uint32
		for i := 1; i < int(ct.nloc); i++ {
			number := ct.loc[i].number
			switch ct.loc[i].op {
			case opAnd:
				val &= number
			case opLeftShift:
				val <<= number & 31
			case opRightShift:
				val >>= number & 31
			case opAt:
				if at+val < at {
					return false
				}
				at += val
				pos = number
				if at+4 < at || n < at+4 || pos > n-at-4 {
					return false
				}
				val = be32(l3, at+pos)
			}
		}
		ok := false
		for i := 0; i < int(ct.nval); i++ {
			if ct.val[i].min <= val && val <= ct.val[i].max {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func be32(b []byte, off uint32) uint32 {
	o := uint64(off) // off+4 cannot wrap: one bounds check
	return binary.BigEndian.Uint32(b[o : o+4])
}

// WideShift returns the first "<<" or ">>" count of 32 or more, if any.
// Kernels with the 2026 u32_mt_checkentry shift check refuse such a rule
// with EINVAL (the rules parser does too); older ones load it and shift
// by the count modulo 32, as Match does.
func (m *Match) WideShift() (uint32, bool) {
	for t := 0; t < int(m.ntests); t++ {
		ct := &m.tests[t]
		for i := 1; i < int(ct.nloc); i++ {
			if (ct.loc[i].op == opLeftShift || ct.loc[i].op == opRightShift) && ct.loc[i].number >= 32 {
				return ct.loc[i].number, true
			}
		}
	}
	return 0, false
}

// String returns the expression the way iptables-save prints it (u32_dump):
// every number in "0x%x" form, no spaces. iptables-save wraps it in double
// quotes after "--u32 "; the quotes are not part of the returned text.
func (m *Match) String() string {
	var b []byte
	for t := 0; t < int(m.ntests); t++ {
		ct := &m.tests[t]
		if t > 0 {
			b = append(b, "&&"...)
		}
		b = appendHex(b, ct.loc[0].number)
		for i := 1; i < int(ct.nloc); i++ {
			switch ct.loc[i].op {
			case opAnd:
				b = append(b, '&')
			case opLeftShift:
				b = append(b, "<<"...)
			case opRightShift:
				b = append(b, ">>"...)
			case opAt:
				b = append(b, '@')
			}
			b = appendHex(b, ct.loc[i].number)
		}
		b = append(b, '=')
		for i := 0; i < int(ct.nval); i++ {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendHex(b, ct.val[i].min)
			if ct.val[i].min != ct.val[i].max {
				b = append(b, ':')
				b = appendHex(b, ct.val[i].max)
			}
		}
	}
	return string(b)
}

func appendHex(b []byte, v uint32) []byte {
	b = append(b, "0x"...)
	return strconv.AppendUint(b, uint64(v), 16)
}
