package engine

import (
	"math/bits"
	"slices"

	"github.com/sluice-project/sluice/engine/ipset"
	"github.com/sluice-project/sluice/packet"
)

// The prefilter. The skip tables (program.go) pass over rules by a
// packet's protocol, ports and TCP flags, but most of the rules a packet
// of an anti-DDoS policy still visits fail on something as cheap: a TTL
// or length bound, a packet type, or a test of a prefix set that the
// policy's first rule has already looked the packet's address up in (the
// allow list, blocklist and bogon sets are one group, one lookup:
// ipset.GroupMatchers). Visiting such a rule costs the traversal loop
// about a hundred instructions and a mispredicted branch or two; clearing
// its bit among the candidates costs nothing per rule.
//
// So each IPv4 rule that has such a test gets a bit (up to 63 rules), and
// every packet gets a word, computed once per packet from a few tables
// indexed by its TTL, TOS byte (dscp and tos tests), packet type, length
// class, address classes (by the rules' -s and -d prefixes and iprange
// ranges), the group's answer for its address, for hash:ip,port and
// bitmap:port tests whether an element has its port, and for hash:ip,port
// tests whether an element may have its address (a bit per hashed
// address): bit b is set when the rule of bit b is certain to fail. Those
// rules are cleared from the packet's candidates (program.go's skip
// rows), and the traversal passes over them as if it had evaluated them.
//
// That is exact, not a heuristic: a test takes part only if every match
// before it in its rule is of a kind that neither changes state nor
// hotdrops (ttl, pkttype, length, iprange, dscp, tos, mac, grouped set
// tests, set tests that touch no counters, comments; and transport
// matches, for a packet whose transport header they read whole), and the
// IPv4 header checks before the matches do neither; a failing test then
// means the rule would have counted nothing and done nothing. The group's
// answer is used only while its sets have no timeout that could have
// expired (GroupTest4's Until), as the inline set test in runFrom does.
// TestSkipTablesExact and FuzzShortcutsExact hold the traversal with the
// prefilter and skip tables to one without either.

// noPbit is the bit no rule owns (never set in a packet's word).
const noPbit = 63

type prefilter struct {
	on     bool
	direct bool    // a rule's bit is its index (at most 63 rules)
	pos    []int32 // otherwise, the rule index of each bit
	ttl    [256]uint64
	pkt    [256]uint64
	tos    [256]uint64
	// lens classes uint16(Len) by the bounds of the length tests; lenEx
	// is by class. nil when no rule's bit comes from a length test.
	lens  *portClasses
	lenEx []uint64
	// The lead group: the grouped set test the first rule of the first
	// hook starts with names the group whose answer, in memo entry slot
	// for the source (destination when dst), every packet needs.
	grp   *ipset.Matcher
	slot  uint8
	dst   bool
	until int64 // the earliest Until of the group's tests
	grpEx []groupEx
	// src and dst class the packet's addresses by the bounds of the
	// rules' contiguous -s/-d prefixes and iprange ranges.
	srcDim, dstDim addrDim
	// ports are the port filters of hash:ip,port tests.
	ports []portDim
	// ips are the address filters of hash:ip,port tests.
	ips []ipDim
	// cond holds the bits of rules whose tests come after a transport
	// match (l4Pure): they count only for a packet whose transport header
	// such a match reads without a hotdrop (l4Whole).
	cond uint64
	// gtab is grpEx's combined answer by the low bits of the group's
	// value (gmask), when the sets tested are among its first few.
	gtab  []uint64
	gmask uint32
}

// maxGroupTab bounds gtab: the codes of the group's first five sets.
const maxGroupTab = 1 << 10

// addrDim splits the IPv4 address space at starts (starts[0] is 0); ex
// is by interval.
type addrDim struct {
	starts []uint32
	ex     []uint64
	// top is by an address's first byte: the interval its /8 starts in,
	// with topSplit set when another interval starts inside that /8.
	// Rules test a handful of prefixes, so nearly every /8 is whole and a
	// lookup is one load; a split /8 scans its few starts.
	top [256]uint16
}

const topSplit = 1 << 15

// maxAddrBounds caps an address dimension's intervals: a lookup of an
// address in a /8 where several start scans them. Rules past the cap keep
// their address test.
const maxAddrBounds = 64

// addrTest is an address interval a rule's packets must fall in (or, if
// inv, outside): a contiguous -s or -d prefix, or an iprange range.
type addrTest struct {
	dst    bool
	lo, hi uint32
	inv    bool
}

func (d *addrDim) lookup(a uint32) uint64 {
	t := d.top[a>>24]
	i := int(t &^ topSplit)
	if t&topSplit != 0 {
		for i+1 < len(d.starts) && d.starts[i+1] <= a {
			i++
		}
	}
	return d.ex[i]
}

// build makes the intervals from bounds (interval starts) and the /8
// index.
func (d *addrDim) build(bounds map[uint32]bool) {
	bounds[0] = true
	for b := range bounds {
		d.starts = append(d.starts, b)
	}
	slices.Sort(d.starts)
	d.ex = make([]uint64, len(d.starts))
	i := 0
	for b := uint32(0); b < 256; b++ {
		lo := b << 24
		for i+1 < len(d.starts) && d.starts[i+1] <= lo {
			i++
		}
		d.top[b] = uint16(i)
		if i+1 < len(d.starts) && d.starts[i+1] <= lo|0xffffff {
			d.top[b] |= topSplit
		}
	}
}

// exclude sets bit in every interval outside [lo, hi] (inside, if inv).
func (d *addrDim) exclude(lo, hi uint32, inv bool, bit uint64) {
	for i, s := range d.starts {
		if (s >= lo && s <= hi) == inv {
			d.ex[i] |= bit
		}
	}
}

// prefixRange returns the addresses a -s/-d value/mask pair covers, when
// the mask is contiguous.
func prefixRange(addr, mask uint32) (lo, hi uint32, ok bool) {
	if mask != 0 && mask != ^uint32(0)<<bits.TrailingZeros32(mask) {
		return 0, 0, false
	}
	return addr, addr | ^mask, true
}

// portDim is a hash:ip,port or bitmap:port set's port filter (one per
// set and port direction), for a TCP or UDP packet with a whole header:
// the rules in absent fail when no element of the set holds its port, and
// those in present (inverted tests of an exact filter) when one does.
type portDim struct {
	set             *ipset.Set
	f               ipset.PortFilter4
	absent, present uint64
}

// ipDim is a hash:ip,port set's address filter (ipset.IPFilter4), one
// per set and address direction: the rules in absent fail when the
// packet's address has a clear bit. Unlike a port filter it needs no
// transport header: without one the set's lookup fails too.
type ipDim struct {
	set    *ipset.Set
	f      *[1024]uint64
	dst    bool
	absent uint64
}

// groupEx is, for one set of the lead group (its 2-bit code at shift in
// the group's answer), the rules that fail for each code.
type groupEx struct {
	shift uint8
	ex    [4]uint64
}

// l4Pure reports whether a transport match may come before a prefilter
// test in a rule, for a packet l4Whole accepts: the tcp, udp, icmp and
// multiport matches neither change state nor, given a whole unfragmented
// header, hotdrop (a tcp option test reads further: it may).
func l4Pure(o *op) bool {
	switch o.kind {
	case opUDP, opICMP, opMultiport:
		return true
	case opTCP:
		return !o.has3
	}
	return false
}

// l4Whole reports whether p's transport header is unfragmented and long
// enough for every l4Pure match (a rule's transport match is for the
// protocol its -p names, which its header check compares first).
func l4Whole(p *packet.Packet) bool {
	if p.FragOff != 0 {
		return false
	}
	if p.Proto == packet.ProtoTCP {
		return p.L4Len >= 20
	}
	return p.L4Len >= 8
}

// prefiltered reports whether match o may come before a prefilter test
// in its rule: it neither changes state nor hotdrops.
func prefiltered(o *op) bool {
	switch o.kind {
	case opTTL, opPktType, opLength, opIPRange4, opDSCP, opTOS, opMAC, opSetGroup:
		return true
	case opSet:
		return o.set.Pure()
	}
	return false
}

func (fp *familyProgram) buildPrefilter() {
	for i := range fp.rules {
		fp.rules[i].pbit = noPbit
	}
	if fp.fam != packet.FamilyIPv4 {
		return
	}
	pf := &fp.pf
	for _, ci := range fp.hooks {
		if ci < 0 {
			continue
		}
		if c := &fp.chains[ci]; c.start < c.end {
			if ops := fp.rules[c.start].ops; len(ops) > 0 && ops[0].kind == opSetGroup {
				pf.grp, pf.slot, pf.dst = ops[0].set, ops[0].b2&memoMask, ops[0].has2
			}
		}
		break
	}
	// With fewer rules than bits, a rule's bit is its position, and the
	// word clears candidates directly; otherwise the first 63 rules with
	// tests get bits, and pos maps them to positions.
	pf.direct = len(fp.rules) <= noPbit
	// The tests each rule contributes: the leading run of prefiltered
	// matches.
	lenStarts := map[uint32]bool{}
	addrBounds := [2]map[uint32]bool{{}, {}}
	tests := make([][]*op, len(fp.rules))
	addrs := make([][]addrTest, len(fp.rules))
	nbits := 0
	for i := range fp.rules {
		r := &fp.rules[i]
		var ts []*op
		var as []addrTest
		cond := false
		// The header's contiguous -s and -d come first.
		if lo, hi, ok := prefixRange(r.src4, r.smask4); ok && r.smask4 != 0 {
			as = append(as, addrTest{lo: lo, hi: hi, inv: r.flags&fSrcInv != 0})
		}
		if lo, hi, ok := prefixRange(r.dst4, r.dmask4); ok && r.dmask4 != 0 {
			as = append(as, addrTest{dst: true, lo: lo, hi: hi, inv: r.flags&fDstInv != 0})
		}
		for k := range r.ops {
			o := &r.ops[k]
			if !prefiltered(o) {
				if l4Pure(o) {
					cond = true
					continue
				}
				break
			}
			switch {
			case o.kind == opTTL, o.kind == opPktType, o.kind == opLength, o.kind == opDSCP, o.kind == opTOS:
				ts = append(ts, o)
			case o.kind == opIPRange4:
				if o.has2 {
					as = append(as, addrTest{lo: o.lo4[0], hi: o.hi4[0], inv: o.inv})
				}
				if o.has3 {
					as = append(as, addrTest{dst: true, lo: o.lo4[1], hi: o.hi4[1], inv: o.inv2})
				}
			case o.kind == opSetGroup && pf.grp != nil && o.b2&memoMask == pf.slot && o.has2 == pf.dst:
				ts = append(ts, o)
			case o.kind == opSet:
				if _, exact, ok := o.set.PortTest4(); ok && (!o.set.Invert() || exact) {
					ts = append(ts, o)
				}
			}
		}
		// Address tests past the bounds' cap are left to the rule.
		k := 0
		for _, a := range as {
			b := addrBounds[boolByte(a.dst)]
			if len(b)+2 > maxAddrBounds && !(b[a.lo] && (a.hi == ^uint32(0) || b[a.hi+1])) {
				continue
			}
			b[a.lo] = true
			if a.hi != ^uint32(0) {
				b[a.hi+1] = true
			}
			as[k] = a
			k++
		}
		as = as[:k]
		if len(ts)+len(as) == 0 || nbits == noPbit {
			continue
		}
		addrs[i] = as
		b := nbits
		if pf.direct {
			b = i // the rule's own position in the candidate word
		} else {
			pf.pos = append(pf.pos, int32(i))
		}
		r.pbit = uint8(b)
		if cond {
			pf.cond |= 1 << b
		}
		nbits++
		tests[i] = ts
		for _, o := range ts {
			if o.kind == opLength {
				lenStarts[uint32(o.r0.Min)] = true
				lenStarts[uint32(o.r0.Max)+1] = true
			}
		}
	}
	if nbits == 0 {
		return
	}
	pf.on = true
	if len(lenStarts) > 0 {
		pf.lens = newPortClasses(lenStarts)
	}
	if pf.lens != nil {
		pf.lenEx = make([]uint64, pf.lens.n)
	}
	pf.srcDim.build(addrBounds[0])
	pf.dstDim.build(addrBounds[1])
	pf.until = 1<<63 - 1
	for i := range fp.rules {
		bit := uint64(1) << fp.rules[i].pbit
		for _, a := range addrs[i] {
			d := &pf.srcDim
			if a.dst {
				d = &pf.dstDim
			}
			d.exclude(a.lo, a.hi, a.inv, bit)
		}
		for _, o := range tests[i] {
			switch o.kind {
			case opTTL:
				for t := range pf.ttl {
					if !ttlMatch(o, uint8(t)) {
						pf.ttl[t] |= bit
					}
				}
			case opPktType:
				for t := range pf.pkt {
					if (uint8(t) == o.b0) == o.inv {
						pf.pkt[t] |= bit
					}
				}
			case opDSCP, opTOS:
				for t := range pf.tos {
					if !tosMatch(o, uint8(t)) {
						pf.tos[t] |= bit
					}
				}
			case opLength:
				if pf.lens == nil {
					// Over 255 classes: such a rule keeps its bit for
					// its other tests, and its length test runs.
					continue
				}
				for c, l := range pf.lens.reps {
					if (l >= o.r0.Min && l <= o.r0.Max) == o.inv {
						pf.lenEx[c] |= bit
					}
				}
			case opSet:
				d := pf.portDim(o.set)
				if o.set.Invert() {
					d.present |= bit
				} else {
					d.absent |= bit
					if ipd := pf.ipDim(o.set); ipd != nil {
						ipd.absent |= bit
					}
				}
			case opSetGroup:
				g := pf.groupEx(o.b0)
				for code := range 4 {
					if o.b1>>code&1 == 0 {
						g.ex[code] |= bit
					}
				}
				pf.until = min(pf.until, o.until())
			}
		}
	}
	pf.ips = slices.DeleteFunc(pf.ips, func(d ipDim) bool { return d.f == nil })
	pf.buildGroupTab()
}

// buildGroupTab fills gtab when the group's tested sets fit it.
func (pf *prefilter) buildGroupTab() {
	var top uint32
	for _, g := range pf.grpEx {
		top = max(top, uint32(g.shift)+2)
	}
	if len(pf.grpEx) == 0 || 1<<top > maxGroupTab {
		return
	}
	pf.gmask = 1<<top - 1
	pf.gtab = make([]uint64, 1<<top)
	for v := range pf.gtab {
		for _, g := range pf.grpEx {
			pf.gtab[v] |= g.ex[uint32(v)>>g.shift&3]
		}
	}
}

// portDim returns the port filter of matcher m's set and port direction,
// adding it if new.
func (pf *prefilter) portDim(m *ipset.Matcher) *portDim {
	srcPort, _, _ := m.PortTest4()
	for i := range pf.ports {
		if d := &pf.ports[i]; d.set == m.Set() && d.f.SrcPort == srcPort {
			return d
		}
	}
	f, _ := m.PortFilter4()
	pf.ports = append(pf.ports, portDim{set: m.Set(), f: f})
	return &pf.ports[len(pf.ports)-1]
}

// ipDim returns the address filter of matcher m's set and address
// direction, adding it if new; nil when the set has none worth a load (a
// full filter is remembered without its bits, so that each set's filter
// is built once, and dropped when the prefilter is built).
func (pf *prefilter) ipDim(m *ipset.Matcher) *ipDim {
	dst, ok := m.IPTest4()
	if !ok {
		return nil
	}
	i := slices.IndexFunc(pf.ips, func(d ipDim) bool { return d.set == m.Set() && d.dst == dst })
	if i < 0 {
		f, full := m.IPFilter4()
		if full {
			f = nil
		}
		pf.ips = append(pf.ips, ipDim{set: m.Set(), f: f, dst: dst})
		i = len(pf.ips) - 1
	}
	if pf.ips[i].f == nil {
		return nil
	}
	return &pf.ips[i]
}

// groupEx returns the entry for the set at shift, adding it if new.
func (pf *prefilter) groupEx(shift uint8) *groupEx {
	for i := range pf.grpEx {
		if pf.grpEx[i].shift == shift {
			return &pf.grpEx[i]
		}
	}
	pf.grpEx = append(pf.grpEx, groupEx{shift: shift})
	return &pf.grpEx[len(pf.grpEx)-1]
}

// portEx is the port filters' part of the word, for a TCP or UDP packet
// with a whole header.
func (pf *prefilter) portEx(p *packet.Packet) uint64 {
	var x uint64
	for i := range pf.ports {
		d := &pf.ports[i]
		port := p.DstPort
		if d.f.SrcPort {
			port = p.SrcPort
		}
		bm := d.f.TCP
		if p.Proto == packet.ProtoUDP {
			bm = d.f.UDP
		}
		if bm[port>>6]>>(port&63)&1 == 0 {
			x |= d.absent
		} else {
			x |= d.present
		}
	}
	return x
}
