package ipset

import "github.com/sluice-project/sluice/packet"

// Matcher is one xt_set match — a set with a rule's directions and flags —
// prepared once when the rule is compiled, so the packet path does not
// re-derive per packet what the rule already fixes. Its answers are
// Set.Match's.
//
// The case it prepares for is the common one in anti-DDoS rulesets: an
// IPv4 hash:net set whose entries cannot fail their extensions (no
// counters to bump, no --packets/--bytes compare) tested against one
// address, where one longest-prefix-match lookup is the kernel's answer
// until the set's first element expires (see testNet).
type Matcher struct {
	s     *Set
	dirs  []Dir
	flags MatchFlags
	mc    bool // the flags compare counters

	// fast marks the one-lookup case above: fastDst says the address is
	// the destination, fastUntil is the set's netFastUntil (past it an
	// element may have expired and the general walk decides).
	fast      bool
	fastDst   bool
	fastUntil int64
	net4      *lpm4
	// group, when set, answers the lookup for this and other sets on
	// the same address at once; shift is this set's code's bit position
	// in the group's values (group4).
	group *group4
	shift uint32

	// kind4, when not zero, is the direct path of an IPv4 hash:ip,
	// hash:ip,port or bitmap:port test that cannot fail an element's
	// extensions (Pure, and no element expired before fastUntil): the
	// table or bitmap answers, as kadt would, without its dispatch.
	kind4 uint8
	mask4 uint32 // hash:ip netmask
}

const (
	fastHashIP = 1 + iota
	fastHashIPPort
	fastBitmapPort
)

// NewMatcher prepares s for a rule's --match-set dirs and flags.
func NewMatcher(s *Set, dirs []Dir, flags MatchFlags) *Matcher {
	m := &Matcher{s: s, dirs: dirs, flags: flags, mc: countersMatch(flags)}
	if s.net4 != nil && len(dirs) > 0 && (!s.withCounters || flags.SkipCounterUpdate) && !m.mc {
		m.fast = true
		m.fastDst = dirs[0] == DirDst
		m.fastUntil = s.netFastUntil
		m.net4 = s.net4
	}
	if m.Pure() && len(dirs) >= typeDims[s.typ] {
		switch {
		case s.typ == typeHashIP && s.family == packet.FamilyIPv4:
			m.kind4, m.mask4 = fastHashIP, mask4(s.netmask)
		case s.typ == typeHashIPPort && s.family == packet.FamilyIPv4:
			m.kind4 = fastHashIPPort
		case s.typ == typeBitmapPort:
			m.kind4 = fastBitmapPort
		}
		if m.kind4 != 0 {
			m.fastDst = dirs[0] == DirDst
			m.fastUntil = s.validUntil()
		}
	}
	return m
}

// Invert reports whether the test is inverted (! --match-set).
func (m *Matcher) Invert() bool { return m.flags.Invert }

// Set returns the set the matcher tests.
func (m *Matcher) Set() *Set { return m.s }

// Match is Set.Match for the matcher's set, directions and flags.
func (m *Matcher) Match(p *packet.Packet, now int64) bool {
	if p.Family == packet.FamilyIPv4 {
		var memo Memo4
		return m.Match4(p, v4(p.Src), v4(p.Dst), now, &memo)
	}
	return m.s.test(p, m.dirs, m.flags, m.mc, now) != m.flags.Invert
}

// Pure reports whether testing the matcher has no effect on the set and
// depends on nothing the set's counters hold: no element counters to
// bump (a set or a list member with counters, unless the rule skips the
// update) and no --packets/--bytes compare. Such a test can take a
// direct path (kind4), which never touches an element.
func (m *Matcher) Pure() bool {
	return !m.mc && m.s.pure(m.flags)
}

func (s *Set) pure(f MatchFlags) bool {
	if s.withCounters && !f.SkipCounterUpdate {
		return false
	}
	if s.typ == typeListSet {
		sub := f
		if f.SkipSubcounterUpdate {
			sub.SkipCounterUpdate = true
		}
		for i := range s.elems {
			if m := s.elems[i].member; m != nil && !m.pure(sub) {
				return false
			}
		}
	}
	return true
}

// PortFilter4 is what an IPv4 hash:ip,port or bitmap:port test on its
// direct path (kind4) can be decided by without a lookup: which ports its
// elements hold, for TCP and for UDP. A TCP or UDP packet with a whole
// transport header whose port (the test's port direction) has no element
// cannot be in the set, so the test answers Invert; the bitmaps are a
// superset of the ports the set holds at any time, as expiring elements
// only remove. When Exact, a port in the bitmap is in the set too (a
// bitmap:port without timeouts), and the test answers !Invert.
type PortFilter4 struct {
	TCP, UDP *[1024]uint64
	SrcPort  bool
	Invert   bool
	Exact    bool
}

// IPTest4 says whether the matcher has an address filter (IPFilter4),
// and whether it tests the destination address, without building it.
func (m *Matcher) IPTest4() (dst, ok bool) {
	return m.fastDst, m.kind4 == fastHashIPPort
}

// IPFilter4 returns the address filter of an IPv4 hash:ip,port test on
// its direct path (IPTest4): bit HashIP4(a) of f is set for the address a
// of every element, so a clear bit for the packet's address means no
// element holds it, and the lookup fails whatever the port and protocol.
// A set bit says nothing. The filter is 8 KiB; it is worth its load only
// while the set is small against 65,536 bits, and full says it is not
// (over a quarter set).
func (m *Matcher) IPFilter4() (f *[1024]uint64, full bool) {
	f = new([1024]uint64)
	n := 0
	for i := range m.s.elems {
		h := HashIP4(v4(m.s.elems[i].ip1))
		if f[h>>6]&(1<<(h&63)) == 0 {
			f[h>>6] |= 1 << (h & 63)
			n++
		}
	}
	return f, n > len(f)*64/4
}

// HashIP4 is an address's bit in an IPFilter4 filter: the top 16 bits of
// a multiplicative hash, so addresses that differ in any bits spread.
func HashIP4(a uint32) uint32 { return a * 0x9e3779b1 >> 16 }

// PortTest4 says whether the matcher has a port filter (PortFilter4), and
// its port direction and exactness, without building it.
func (m *Matcher) PortTest4() (srcPort, exact, ok bool) {
	switch m.kind4 {
	case fastHashIPPort:
		return m.dirs[1] == DirSrc, false, true
	case fastBitmapPort:
		return m.dirs[0] == DirSrc, !m.s.withTimeout, true
	}
	return false, false, false
}

// PortFilter4 returns the matcher's port filter; ok is false unless the
// matcher is an IPv4 hash:ip,port or a bitmap:port test on its direct
// path.
func (m *Matcher) PortFilter4() (f PortFilter4, ok bool) {
	srcPort, exact, ok := m.PortTest4()
	if !ok {
		return PortFilter4{}, false
	}
	s := m.s
	f = PortFilter4{TCP: new([1024]uint64), UDP: new([1024]uint64), SrcPort: srcPort, Invert: m.flags.Invert, Exact: exact}
	if m.kind4 == fastHashIPPort {
		for i := range s.elems {
			e := &s.elems[i]
			switch e.proto {
			case packet.ProtoTCP:
				f.TCP[e.port>>6] |= 1 << (e.port & 63)
			case packet.ProtoUDP:
				f.UDP[e.port>>6] |= 1 << (e.port & 63)
			}
		}
		return f, true
	}
	// bitmap:port, as ip_set_get_ip_port reads it: the port of TCP and
	// UDP alike.
	for i, e := range s.bitmap {
		if e >= 0 {
			port := s.firstPort + uint16(i)
			f.TCP[port>>6] |= 1 << (port & 63)
		}
	}
	*f.UDP = *f.TCP
	return f, true
}
