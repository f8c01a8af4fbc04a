package engine

import (
	"fmt"

	"github.com/sluice-project/sluice/engine/cbpf"
	"github.com/sluice-project/sluice/engine/hashlimit"
	"github.com/sluice-project/sluice/engine/ipset"
	"github.com/sluice-project/sluice/engine/limit"
	"github.com/sluice-project/sluice/engine/recent"
	"github.com/sluice-project/sluice/engine/strmatch"
	"github.com/sluice-project/sluice/engine/u32"
	"github.com/sluice-project/sluice/packet"
	"github.com/sluice-project/sluice/rules"
)

// opKind selects a match's code in evalOp's switch.
type opKind uint8

const (
	opTCP opKind = iota + 1
	opUDP
	opICMP
	opICMP6
	opMultiport
	opLength
	opTTL
	opIPRange4
	opIPRange6
	opDSCP
	opTOS
	opPktType
	opMAC
	opU32
	opBPF
	opString
	opLimit
	opHashlimit
	opRecent
	opSet
	// opSetGroup is an IPv4 opSet whose matcher is grouped (ipset
	// GroupTest4): b0 = shift, b1 = truth table, b2 = memo entry, has2 =
	// destination, lo4 = the time the test is exact until (opUntil).
	opSetGroup
)

// Match results. A hotdrop ends evaluation with a drop that no rule counts.
const (
	resNo      = 0
	resYes     = 1
	resHotdrop = 2
)

// op is one compiled match. Fields are shared between kinds to keep the
// struct small; each kind's use is documented in compileOp. The operands
// of the common header-like matches and the pointers the hot stateful
// matches need are inline, so an op fits one cache line; the rest sit
// behind x.
type op struct {
	kind opKind
	inv  bool
	// generic small operands
	b0, b1, b2, b3 uint8
	inv2, inv3     bool
	has2, has3     bool
	r0, r1         rules.PortRange
	lo4, hi4       [2]uint32 // iprange v4: [src, dst]
	set            *ipset.Matcher
	hl             *hashlimit.Table
	x              *opExt
}

// opExt holds the operands of the less common or bulkier matches.
type opExt struct {
	ports    []rules.PortRange
	mac      [6]byte
	lo6, hi6 [2][2]uint64
	u32      *u32.Match
	bpf      *cbpf.Filter
	str      *strmatch.Matcher
	lim      *limit.State
	rec      *recent.Match
}

func compileOp(fam packet.Family, m rules.Match, st *State, now int64, id string) (op, bool, error) {
	switch m := m.(type) {
	case *rules.TCP:
		// r0 = sport, r1 = dport, b0/b1 = flag mask/comp, inv2 = flags
		// inverted, has2 = flags given, b2 = option, has3 = option given.
		return op{kind: opTCP, r0: m.Src, r1: m.Dst, inv: m.SrcInv, inv3: m.DstInv,
			b0: m.FlagMask, b1: m.FlagComp, inv2: m.FlagsInv, has2: m.HasFlags,
			b2: m.Option, has3: m.HasOption, b3: boolByte(m.OptionInv)}, true, nil
	case *rules.UDP:
		return op{kind: opUDP, r0: m.Src, r1: m.Dst, inv: m.SrcInv, inv3: m.DstInv}, true, nil
	case *rules.ICMP:
		k := opICMP
		if m.V6 {
			k = opICMP6
		}
		return op{kind: k, b0: m.Type, b1: m.CodeMin, b2: m.CodeMax, inv: m.Invert}, true, nil
	case *rules.Multiport:
		return op{kind: opMultiport, b0: uint8(m.Dir), x: &opExt{ports: m.Ports}, inv: m.Invert}, true, nil
	case *rules.Length:
		return op{kind: opLength, r0: rules.PortRange{Min: m.Min, Max: m.Max}, inv: m.Invert}, true, nil
	case *rules.TTL:
		return op{kind: opTTL, b0: uint8(m.Op), b1: m.Value}, true, nil
	case *rules.IPRange:
		o := op{inv: m.SrcInv, inv2: m.DstInv, has2: m.HasSrc, has3: m.HasDst}
		if fam == packet.FamilyIPv4 {
			o.kind = opIPRange4
			if m.HasSrc {
				o.lo4[0], o.hi4[0] = addr4(m.SrcMin), addr4(m.SrcMax)
			}
			if m.HasDst {
				o.lo4[1], o.hi4[1] = addr4(m.DstMin), addr4(m.DstMax)
			}
		} else {
			o.kind = opIPRange6
			o.x = &opExt{}
			if m.HasSrc {
				o.x.lo6[0], o.x.hi6[0] = addr6(m.SrcMin), addr6(m.SrcMax)
			}
			if m.HasDst {
				o.x.lo6[1], o.x.hi6[1] = addr6(m.DstMin), addr6(m.DstMax)
			}
		}
		return o, true, nil
	case *rules.DSCP:
		return op{kind: opDSCP, b0: m.Value, inv: m.Invert}, true, nil
	case *rules.TOS:
		return op{kind: opTOS, b0: m.Value, b1: m.Mask, inv: m.Invert}, true, nil
	case *rules.PktType:
		return op{kind: opPktType, b0: uint8(m.Type), inv: m.Invert}, true, nil
	case *rules.MAC:
		return op{kind: opMAC, x: &opExt{mac: m.Addr}, inv: m.Invert}, true, nil
	case *rules.Comment:
		return op{}, false, nil
	}
	return compileExt(fam, m, st, now, id)
}

func boolByte(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// memoMask keeps a memo entry index in range without a bounds check; a
// Memo4's length is a power of two (the array below fails to compile
// otherwise).
const memoMask = uint8(len(ipset.Memo4{}) - 1)

var _ [0]struct{} = [len(ipset.Memo4{}) & (len(ipset.Memo4{}) - 1)]struct{}{}

// until is an opSetGroup's GroupTest4.Until, kept in lo4.
func (o *op) until() int64 { return int64(uint64(o.lo4[0])<<32 | uint64(o.lo4[1])) }

// groupOp turns an IPv4 opSet whose matcher is grouped into opSetGroup,
// which runFrom runs inline.
func (o *op) groupOp() {
	if o.kind != opSet {
		return
	}
	t, ok := o.set.GroupTest4()
	if !ok {
		return
	}
	o.kind, o.b0, o.b1, o.b2, o.has2 = opSetGroup, t.Shift, t.Truth, t.Slot, t.Dst
	o.lo4 = [2]uint32{uint32(uint64(t.Until) >> 32), uint32(t.Until)}
}

func inRange(v uint16, r rules.PortRange) bool { return v >= r.Min && v <= r.Max }

// evalOp runs one match of the kinds runFrom does not run inline (tcp,
// udp, length, pkttype and grouped set tests run there).
func (w *Worker) evalOp(o *op, p *packet.Packet, j uint64) uint8 {
	switch o.kind {
	case opICMP:
		// net/netfilter/xt_tcpudp.c is for ports; ICMP is
		// net/ipv4/netfilter/ip_tables.c icmp_match: a struct icmphdr
		// (8 bytes) must be readable, type 0xFF means any.
		if p.FragOff != 0 {
			return resNo
		}
		if p.L4Len < 8 {
			return resHotdrop
		}
		m := o.b0 == 0xFF || (p.ICMPType == o.b0 && p.ICMPCode >= o.b1 && p.ICMPCode <= o.b2)
		return b2r(m != o.inv)
	case opICMP6:
		// net/ipv6/netfilter/ip6_tables.c icmp6_match: no "any" type.
		if p.FragOff != 0 {
			return resNo
		}
		if p.L4Len < 8 {
			return resHotdrop
		}
		m := p.ICMPType == o.b0 && p.ICMPCode >= o.b1 && p.ICMPCode <= o.b2
		return b2r(m != o.inv)
	case opMultiport:
		// net/netfilter/xt_multiport.c: the first range that matches
		// decides; no match gives the inversion flag.
		if p.FragOff != 0 {
			return resNo
		}
		if p.L4Len < 4 {
			return resHotdrop
		}
		return b2r(multiportMatch(o, p.SrcPort, p.DstPort) != o.inv)
	case opTTL:
		return b2r(ttlMatch(o, p.TTL))
	case opIPRange4:
		if o.has2 {
			s := w.src4
			if (s < o.lo4[0] || s > o.hi4[0]) != o.inv {
				return resNo
			}
		}
		if o.has3 {
			d := w.dst4
			if (d < o.lo4[1] || d > o.hi4[1]) != o.inv2 {
				return resNo
			}
		}
		return resYes
	case opIPRange6:
		x := o.x
		if o.has2 && (less6(w.src6, x.lo6[0]) || less6(x.hi6[0], w.src6)) != o.inv {
			return resNo
		}
		if o.has3 && (less6(w.dst6, x.lo6[1]) || less6(x.hi6[1], w.dst6)) != o.inv2 {
			return resNo
		}
		return resYes
	case opDSCP, opTOS:
		return b2r(tosMatch(o, p.TOS))
	case opMAC:
		// xt_mac: no Ethernet header means no match, inverted or not.
		if !p.HasMAC {
			return resNo
		}
		return b2r((p.SrcMAC == o.x.mac) != o.inv)
	case opSet, opSetGroup:
		if p.Family == packet.FamilyIPv4 {
			return b2r(o.set.Match4(p, w.src4, w.dst4, w.now, &w.setMemo))
		}
		return b2r(o.set.Match(p, w.now))
	case opHashlimit:
		m, hot := o.hl.Match(p, j)
		if hot {
			return resHotdrop
		}
		return b2r(m)
	}
	return w.evalExt(o, p, j)
}

// ttlMatch is xt_ttl's ttl_mt for a TTL op.
func ttlMatch(o *op, ttl uint8) bool {
	switch rules.TTLOp(o.b0) {
	case rules.TTLEq:
		return ttl == o.b1
	case rules.TTLNe:
		return ttl != o.b1
	case rules.TTLLt:
		return ttl < o.b1
	case rules.TTLGt:
		return ttl > o.b1
	}
	return false
}

// multiportMatch reports whether a port the multiport op o tests falls in
// one of its ranges (before inversion).
func multiportMatch(o *op, sport, dport uint16) bool {
	for _, r := range o.x.ports {
		var m bool
		switch rules.MultiportDir(o.b0) {
		case rules.MultiportSrc:
			m = inRange(sport, r)
		case rules.MultiportDst:
			m = inRange(dport, r)
		default:
			m = inRange(sport, r) || inRange(dport, r)
		}
		if m {
			return true
		}
	}
	return false
}

func b2r(b bool) uint8 {
	if b {
		return resYes
	}
	return resNo
}

func less6(a, b [2]uint64) bool { return a[0] < b[0] || (a[0] == b[0] && a[1] < b[1]) }

// tcpOption is xt_tcpudp.c's tcp_find_option: walk the options; a header
// whose data offset is below 20 bytes, or options beyond the datagram,
// hotdrop.
func tcpOption(p *packet.Packet, want uint8, invert bool) uint8 {
	doff := int(p.TCPDataOff)
	if doff < 20 {
		return resHotdrop
	}
	optlen := doff - 20
	if optlen == 0 {
		return b2r(invert)
	}
	if p.L4Len < doff {
		return resHotdrop
	}
	opts := p.L3[p.L4Off+20 : p.L4Off+doff]
	for i := 0; i < optlen; {
		if opts[i] == want {
			return b2r(!invert)
		}
		if opts[i] < 2 {
			i++
			continue
		}
		// The kernel reads the length byte from its 40-byte copy even
		// at the last position; past optlen that byte is whatever the
		// copy holds, so the walk ends there in practice.
		if i+1 >= optlen {
			break
		}
		if opts[i+1] == 0 {
			i++
		} else {
			i += int(opts[i+1])
		}
	}
	return b2r(invert)
}

var errUnsupported = fmt.Errorf("match not supported by the engine")

// tosMatch is xt_dscp's dscp_mt (opDSCP) and tos_mt (opTOS) on the IPv4
// TOS byte or the IPv6 traffic class.
func tosMatch(o *op, tos uint8) bool {
	if o.kind == opDSCP {
		return (tos>>2 == o.b0) != o.inv
	}
	return (tos&o.b1 == o.b0) != o.inv
}
