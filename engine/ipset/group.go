package ipset

import (
	"slices"

	"github.com/sluice-project/sluice/packet"
)

// group4 answers the longest-prefix matches of several IPv4 hash:net sets
// for one address with one lookup. A ruleset typically tests the source
// against an allow list, a blocklist and a bogon list in a row; each
// test is a walk of its own table, and for a flood of fresh sources each
// walk is a cache miss or two.
//
// The group's table is over the union of the sets' prefixes, and its
// value for an address says, in two bits per set, what that set's own
// longest match is: none, a plain element or a nomatch element — all the
// one-lookup path (Matcher.fast) needs. That is exact: for an address a,
// let P be the longest union prefix containing a. Any set's longest
// prefix Q containing a is a union prefix too, so Q contains P, and every
// prefix of that set containing P contains a: the set's longest prefix
// containing P is its longest containing a. So the value is computed per
// union prefix and painted like any LPM value. Few distinct values also
// mean long runs of equal entries, so the table is smaller than a set's
// own, whose values are element indexes.
type group4 struct {
	t *lpm4
	// slot is the group's entry in a packet's Memo4, or -1 when the
	// memo has no room left and every test looks up on its own.
	slot int
}

// Memo4 is a packet's scratch for grouped lookups (Match4): one entry per
// group, zeroed before the packet's first match. memoPerDir groups per
// address remember their value; a ruleset testing one address against
// more sets than that (over 32) looks the rest up test by test.
type Memo4 [2 * memoPerDir]uint32

const memoPerDir = 4

// Per-set codes in a group value; set k's code is at bits 2k.
const (
	codePlain   = 1
	codeNomatch = 2
)

// groupLooked marks a memo entry as holding a lookup's value.
const groupLooked = 1 << 30

// maxGroup bounds the sets one group holds; more sets on the same
// address form another group.
const maxGroup = 8

// GroupMatchers lets matchers of different IPv4 hash:net sets that test
// the same address of a packet share one lookup per packet (see group4
// and Match4's memo). It is called once per compiled ruleset with all of
// its matchers; matchers that cannot use the one-lookup path, and
// addresses tested against a single set, are left alone.
func GroupMatchers(ms []*Matcher) {
	for d, dst := range []bool{false, true} {
		var sets []*Set
		for _, m := range ms {
			if m.fast && m.fastDst == dst && !slices.Contains(sets, m.s) {
				sets = append(sets, m.s)
			}
		}
		for n := 0; len(sets) > 1; n++ {
			k := min(len(sets), maxGroup)
			g := newGroup4(sets[:k])
			g.slot = -1
			if n < memoPerDir {
				g.slot = d*memoPerDir + n
			}
			for _, m := range ms {
				if i := slices.Index(sets[:k], m.s); i >= 0 && m.fast && m.fastDst == dst {
					m.group, m.shift = g, uint32(2*i)
				}
			}
			sets = sets[k:]
		}
	}
}

// newGroup4 builds the group table of up to maxGroup IPv4 hash:net sets.
func newGroup4(sets []*Set) *group4 {
	type pfx struct {
		addr uint32
		len  uint8
		set  int
		ref  uint32
	}
	var all []pfx
	for k, s := range sets {
		for i := range s.elems {
			e := &s.elems[i]
			all = append(all, pfx{v4(e.ip1) & mask4(e.cidr), e.cidr, k, netRef(int32(i), e.nomatch)})
		}
	}
	slices.SortFunc(all, func(a, b pfx) int {
		switch {
		case a.addr != b.addr:
			return cmpU32(a.addr, b.addr)
		case a.len != b.len:
			return int(a.len) - int(b.len)
		}
		return a.set - b.set
	})
	stacks := make([][]pfx, len(sets))
	var ps []lpmPrefix
	for i := 0; i < len(all); {
		p := all[i]
		// Every set's stack keeps its prefixes containing p, longest
		// on top (the order makes them a stack, as in finishNet).
		for k := range stacks {
			st := stacks[k]
			for len(st) > 0 {
				t := st[len(st)-1]
				if t.len <= p.len && p.addr&mask4(t.len) == t.addr {
					break
				}
				st = st[:len(st)-1]
			}
			stacks[k] = st
		}
		for ; i < len(all) && all[i].addr == p.addr && all[i].len == p.len; i++ {
			stacks[all[i].set] = append(stacks[all[i].set], all[i])
		}
		var v uint32
		for k, st := range stacks {
			if len(st) > 0 {
				code := uint32(codePlain)
				if (st[len(st)-1].ref-1)&1 != 0 {
					code = codeNomatch
				}
				v |= code << (2 * k)
			}
		}
		ps = append(ps, lpmPrefix{addr: p.addr, len: p.len, val: v})
	}
	return &group4{t: newLPM4(ps, lpm4First(len(ps))), slot: -1}
}

// answer is the matcher's answer when its set's longest match for the
// address is code (none, plain or nomatch).
func (m *Matcher) answer(code uint32) bool {
	return (code != 0 && (code == codePlain) != m.flags.ReturnNomatch) != m.flags.Invert
}

// value is the group's value for address a, from memo when the group has
// an entry there.
func (g *group4) value(a uint32, memo *Memo4) uint32 {
	if g.slot < 0 {
		return g.t.lookup(a)
	}
	v := memo[g.slot]
	if v == 0 {
		v = g.marked(a)
		memo[g.slot] = v
	}
	return v
}

// marked is the group's value for a as a memo entry keeps it: marked
// looked up, so that an all-zero value is not taken for an empty entry.
func (g *group4) marked(a uint32) uint32 { return g.t.lookup(a) | groupLooked }

func cmpU32(a, b uint32) int {
	if a < b {
		return -1
	}
	return 1
}

// Match4 is Match for an IPv4 packet whose source and destination
// addresses the caller already holds as host-order integers. memo is the
// caller's scratch for the packet, zeroed before its first match: grouped
// matchers (GroupMatchers) keep their group's value in the group's entry,
// so the sets of a group cost one lookup per packet between them.
func (m *Matcher) Match4(p *packet.Packet, src, dst uint32, now int64, memo *Memo4) bool {
	if m.fast && now <= m.fastUntil {
		a := src
		if m.fastDst {
			a = dst
		}
		var code uint32
		if g := m.group; g != nil {
			code = g.value(a, memo) >> m.shift & 3
		} else if r := m.net4.lookup(a); r != 0 {
			code = codePlain + (r-1)&1
		}
		return m.answer(code)
	}
	if m.kind4 != 0 && now <= m.fastUntil {
		return m.direct4(p, src, dst) != m.flags.Invert
	}
	return m.s.test(p, m.dirs, m.flags, m.mc, now) != m.flags.Invert
}

// direct4 is kadt for the matcher's kind4: whether the element is there
// (it cannot fail its extensions, and these types have no nomatch).
func (m *Matcher) direct4(p *packet.Packet, src, dst uint32) bool {
	a := src
	if m.fastDst {
		a = dst
	}
	s := m.s
	switch m.kind4 {
	case fastHashIP:
		ip := a & m.mask4
		if ip == 0 {
			return false
		}
		_, ok := s.tab.get(uint64(ip))
		return ok
	case fastHashIPPort:
		port, proto, ok := getPort(p, m.dirs[1] == DirSrc)
		if !ok {
			return false
		}
		_, ok = s.tab.get(key4(a, proto, port, 0))
		return ok
	default: // fastBitmapPort: ip_set_get_ip_port, TCP and UDP only
		port, proto, ok := getPort(p, m.dirs[0] == DirSrc)
		if !ok || (proto != packet.ProtoTCP && proto != packet.ProtoUDP) || port < s.firstPort || port > s.lastPrt {
			return false
		}
		return s.bitmap[port-s.firstPort] >= 0
	}
}

// GroupTest4 is a grouped matcher's whole test, for a caller that inlines
// it: while the packet's time is at most Until, the matcher's answer is
// bit c of Truth, where c = value>>Shift&3 and value is the packet's memo
// entry Slot, filled by GroupLookup4 of the source (the destination when
// Dst) if still zero. Past Until, Match4 decides.
type GroupTest4 struct {
	Slot  uint8
	Shift uint8
	Truth uint8
	Dst   bool
	Until int64
}

// GroupTest4 returns the matcher's inlinable test; ok is false unless the
// matcher is grouped with a memo entry.
func (m *Matcher) GroupTest4() (t GroupTest4, ok bool) {
	g := m.group
	if !m.fast || g == nil || g.slot < 0 {
		return GroupTest4{}, false
	}
	for code := uint32(0); code < 4; code++ {
		if m.answer(code) {
			t.Truth |= 1 << code
		}
	}
	t.Slot, t.Shift, t.Dst, t.Until = uint8(g.slot), uint8(m.shift), m.fastDst, m.fastUntil
	return t, true
}

// GroupLookup4 is the memo entry of the matcher's group for address a.
func (m *Matcher) GroupLookup4(a uint32) uint32 { return m.group.marked(a) }

// GroupLookup4Batch is GroupLookup4 for every address of addrs into out,
// with lookupBatch's overlapped misses.
func (m *Matcher) GroupLookup4Batch(addrs, out []uint32) {
	m.group.t.lookupBatch(addrs, out)
	for k := range addrs {
		out[k] |= groupLooked
	}
}
