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
}

// NewMatcher prepares s for a rule's --match-set dirs and flags.
func NewMatcher(s *Set, dirs []Dir, flags MatchFlags) *Matcher {
	m := &Matcher{s: s, dirs: dirs, flags: flags, mc: countersMatch(flags)}
	if s.net4 != nil && len(dirs) > 0 && (!s.withCounters || flags.SkipCounterUpdate) && !m.mc {
		m.fast = true
		m.fastDst = dirs[0] == DirDst
		m.fastUntil = s.netFastUntil
		m.net4 = s.net4
	}
	return m
}

// Set returns the set the matcher tests.
func (m *Matcher) Set() *Set { return m.s }

// Match is Set.Match for the matcher's set, directions and flags.
func (m *Matcher) Match(p *packet.Packet, now int64) bool {
	if p.Family == packet.FamilyIPv4 {
		var memo [2]uint32
		return m.Match4(p, v4(p.Src), v4(p.Dst), now, &memo)
	}
	return m.s.test(p, m.dirs, m.flags, m.mc, now) != m.flags.Invert
}
