package ipset

import (
	"fmt"
	"net/netip"
	"sort"
	"sync/atomic"

	"github.com/gaissmai/bart"

	"github.com/sluice-project/sluice/packet"
)

// Dir is one --match-set direction flag: which address or port of the
// packet a set dimension is tested against.
type Dir uint8

const (
	DirSrc Dir = iota
	DirDst
)

// CounterOp is a --packets-*/--bytes-* comparison (enum
// ip_set_counter_op in include/uapi/linux/netfilter/ipset/ip_set.h).
type CounterOp uint8

const (
	CounterNone CounterOp = iota
	CounterEQ
	CounterNE
	CounterLT
	CounterGT
)

// MatchFlags is what an xt_set revision 3/4 match carries besides the
// set and its directions.
type MatchFlags struct {
	// Invert is `! --match-set`.
	Invert bool
	// ReturnNomatch is --return-nomatch: for types with nomatch elements
	// (hash:net, hash:net,port) a plain hit becomes a miss and a nomatch
	// hit becomes a hit.
	ReturnNomatch bool
	// SkipCounterUpdate is `! --update-counters`.
	SkipCounterUpdate bool
	// SkipSubcounterUpdate is `! --update-subcounters` (list:set members).
	SkipSubcounterUpdate bool
	// PacketsOp/Packets and BytesOp/Bytes are --packets-eq/-lt/-gt and
	// --bytes-eq/-lt/-gt (with ! for NE). Either op set makes the match
	// compare the element's counters (after updating them, as the kernel
	// has done since 5.6).
	PacketsOp CounterOp
	Packets   uint64
	BytesOp   CounterOp
	Bytes     uint64
}

type setType uint8

const (
	typeHashIP setType = iota
	typeHashNet
	typeHashIPPort
	typeHashNetPort
	typeHashIPPortIP
	typeBitmapIP
	typeBitmapPort
	typeListSet
)

var typeNames = [...]string{
	typeHashIP:       "hash:ip",
	typeHashNet:      "hash:net",
	typeHashIPPort:   "hash:ip,port",
	typeHashNetPort:  "hash:net,port",
	typeHashIPPortIP: "hash:ip,port,ip",
	typeBitmapIP:     "bitmap:ip",
	typeBitmapPort:   "bitmap:port",
	typeListSet:      "list:set",
}

// typeDims is each type's set->type->dimension; list:set is IPSET_DIM_ZERO.
var typeDims = [...]int{1, 1, 2, 2, 3, 1, 1, 0}

// wideKey keys the hash types whose element does not fit in a uint64:
// ip1[0:16] ip2[16:32] proto[32] port[33:35] cidr[35].
type wideKey [36]byte

// elem is one stored element with its extensions. Counters are updated
// atomically from the packet path.
type elem struct {
	ip1, ip2 netip.Addr
	cidr     uint8 // prefix length of ip1 (host length for non-net types)
	proto    uint8
	port     uint16
	member   *Set // list:set
	nomatch  bool
	expires  int64 // absolute ns; 0 = permanent
	timeout  uint32
	hasTO    bool
	packets  atomic.Uint64
	bytes    atomic.Uint64
	comment  string
	skb      []string // skbmark/skbprio/skbqueue option words, re-emitted verbatim
}

// Set is one ipset set. Matching is safe for concurrent use; the set is
// never modified after Parse except for element counters.
type Set struct {
	name   string
	typ    setType
	family packet.Family // FamilyNone = NFPROTO_UNSPEC (bitmap:port, list:set)
	opts   []string      // create options after the type, for Save
	// Extensions the set was created with.
	withTimeout, withCounters, withComment, withSkbinfo bool
	defTimeout                                          uint32
	netmask                                             uint8 // hash:ip, bitmap:ip; host length if unset
	maxelem                                             uint32
	listSize                                            uint32

	elems []elem // insertion order, as Save prints them

	// Lookup structures; only the one for the type is used.
	m64   map[uint64]int32 // while parsing; then tab
	tab   *table64
	mwide map[wideKey]int32
	// hash:net: nets maps each prefix to its netRef while parsing and,
	// for IPv6, at match time; an IPv4 set is answered by net4 instead
	// and drops nets once Parse is done. netParent[i] is the element of
	// the longest present prefix strictly containing element i's, or -1:
	// the next entry mtype_test_cidrs tries when i fails its extensions.
	nets      *bart.Table[uint32]
	net4      *lpm4
	netParent []int32
	// netFastUntil is the latest now at which no element can fail a
	// timeout check: the earliest element expiry, or MaxInt64.
	netFastUntil int64
	// netLens lists the prefix lengths present in a hash:net,port set,
	// most specific first, as h->nets[] in ip_set_hash_gen.h.
	netLens  []uint8
	lenCount [129]int32
	// bitmap: index into elems per id, -1 if absent.
	bitmap             []int32
	firstIP, lastIP    uint32
	firstPort, lastPrt uint16
	hosts              uint32
}

// Type is the set's type name as ipset prints it ("hash:ip", ...).
func (s *Set) Type() string { return typeNames[s.typ] }

// Name is the set's name.
func (s *Set) Name() string { return s.name }

// Family is the set's family; FamilyNone for the family-less types
// (bitmap:port, list:set) which match packets of either family.
func (s *Set) Family() packet.Family { return s.family }

// Dims is the set type's dimension: the number of --match-set directions
// a rule must give for the set to be tested at all.
func (s *Set) Dims() int { return typeDims[s.typ] }

// Len is the number of stored elements, expired ones included (the kernel
// keeps them until garbage collection, and they can never match).
func (s *Set) Len() int { return len(s.elems) }

// Match is xt_set's set_match_v4 for this set: ip_set_test, then inversion.
func (s *Set) Match(p *packet.Packet, dirs []Dir, flags MatchFlags, now int64) bool {
	if s.net4 != nil && len(dirs) > 0 && p.Family == packet.FamilyIPv4 && now <= s.netFastUntil &&
		(!s.withCounters || flags.SkipCounterUpdate) && !countersMatch(flags) {
		// testNet's fast path for an IPv4 hash:net set with nothing to
		// check or count on the element: one lookup decides.
		r := s.net4.lookup(v4(addrOf(p, dirs[0])))
		hit := r != 0 && ((r-1)&1 == 0) != flags.ReturnNomatch
		return hit != flags.Invert
	}
	return s.test(p, dirs, flags, countersMatch(flags), now) != flags.Invert
}

func countersMatch(f MatchFlags) bool {
	return f.PacketsOp != CounterNone || f.BytesOp != CounterNone
}

// test is ip_set_test (ip_set_core.c): family and dimension checks, kadt,
// then --return-nomatch; negative results are "no match".
func (s *Set) test(p *packet.Packet, dirs []Dir, f MatchFlags, matchCounters bool, now int64) bool {
	if len(dirs) < typeDims[s.typ] || (s.family != packet.FamilyNone && s.family != p.Family) {
		return false
	}
	ret := s.kadt(p, dirs, f, matchCounters, now)
	if f.ReturnNomatch && (s.typ == typeHashNet || s.typ == typeHashNetPort) && ret != 0 {
		ret = -ret
	}
	return ret > 0
}

func addrOf(p *packet.Packet, d Dir) netip.Addr {
	if d == DirSrc {
		return p.Src
	}
	return p.Dst
}

// kadt dispatches to the type's kernel test. It returns 1 for a hit, -1
// for a nomatch hit (-ENOTEMPTY) and 0 otherwise.
func (s *Set) kadt(p *packet.Packet, dirs []Dir, f MatchFlags, mc bool, now int64) int {
	switch s.typ {
	case typeHashIP:
		a := addrOf(p, dirs[0])
		if s.family == packet.FamilyIPv4 {
			ip := v4(a) & mask4(s.netmask)
			if ip == 0 {
				return 0
			}
			i, ok := s.tab.get(uint64(ip))
			if !ok {
				return 0
			}
			return s.matchExt(i, p, f, mc, now)
		}
		var k wideKey
		b := maskAddr16(a, s.netmask)
		copy(k[0:16], b[:])
		i, ok := s.mwide[k]
		if !ok {
			return 0
		}
		return s.matchExt(i, p, f, mc, now)
	case typeHashNet:
		return s.testNet(addrOf(p, dirs[0]), p, f, mc, now)
	case typeHashIPPort:
		port, proto, ok := getPort(p, dirs[1] == DirSrc)
		if !ok {
			return 0
		}
		a := addrOf(p, dirs[0])
		var i int32
		if s.family == packet.FamilyIPv4 {
			i, ok = s.tab.get(key4(v4(a), proto, port, 0))
		} else {
			i, ok = s.mwide[keyWide(a, netip.Addr{}, proto, port, 0)]
		}
		if !ok {
			return 0
		}
		return s.matchExt(i, p, f, mc, now)
	case typeHashIPPortIP:
		port, proto, ok := getPort(p, dirs[1] == DirSrc)
		if !ok {
			return 0
		}
		i, ok := s.mwide[keyWide(addrOf(p, dirs[0]), addrOf(p, dirs[2]), proto, port, 0)]
		if !ok {
			return 0
		}
		return s.matchExt(i, p, f, mc, now)
	case typeHashNetPort:
		port, proto, ok := getPort(p, dirs[1] == DirSrc)
		if !ok {
			return 0
		}
		return s.testNetPort(addrOf(p, dirs[0]), proto, port, p, f, mc, now)
	case typeBitmapIP:
		ip := v4(addrOf(p, dirs[0]))
		if ip < s.firstIP || ip > s.lastIP {
			return 0
		}
		i := s.bitmap[(ip-s.firstIP)/s.hosts]
		if i < 0 {
			return 0
		}
		return s.matchExt(i, p, f, mc, now)
	case typeBitmapPort:
		// bitmap_port_kadt uses ip_set_get_ip_port: TCP and UDP only.
		port, proto, ok := getPort(p, dirs[0] == DirSrc)
		if !ok || (proto != packet.ProtoTCP && proto != packet.ProtoUDP) {
			return 0
		}
		if port < s.firstPort || port > s.lastPrt {
			return 0
		}
		i := s.bitmap[port-s.firstPort]
		if i < 0 {
			return 0
		}
		return s.matchExt(i, p, f, mc, now)
	case typeListSet:
		return s.testList(p, dirs, f, mc, now)
	}
	return 0
}

// testList is list_set_ktest (ip_set_list_set.c): members are tested in
// order with their own ip_set_test (their own family/dimension checks and
// --return-nomatch), never comparing the members' counters; the first
// member that hits and whose list entry passes its own extensions wins.
func (s *Set) testList(p *packet.Packet, dirs []Dir, f MatchFlags, mc bool, now int64) int {
	sub := f
	if f.SkipSubcounterUpdate {
		sub.SkipCounterUpdate = true
	}
	for i := range s.elems {
		if !s.elems[i].member.test(p, dirs, sub, false, now) {
			continue
		}
		if s.extOK(int32(i), p, f, mc, now) {
			return 1
		}
	}
	return 0
}

// netRef packs an element index and its nomatch flag into a non-zero
// value for the LPM structures, so the fast path decides without
// touching elems: (i<<1 | nomatch) + 1.
func netRef(i int32, nomatch bool) uint32 {
	r := uint32(i) << 1
	if nomatch {
		r |= 1
	}
	return r + 1
}

// testNet is mtype_test_cidrs for hash:net: longest prefix first; an entry
// whose extensions fail (expired, counters) is skipped and the next
// shorter present prefix is tried.
//
// When no entry can fail its extensions (no --packets/--bytes compare
// and no element expired yet; counter updates never fail), the first
// entry tried decides, so one longest-prefix-match lookup is the
// kernel's answer, nomatch flag included, and only a counters set has
// to touch the element, to bump its counters.
func (s *Set) testNet(a netip.Addr, p *packet.Packet, f MatchFlags, mc bool, now int64) int {
	var r uint32
	if s.net4 != nil {
		r = s.net4.lookup(v4(a))
	} else {
		r, _ = s.nets.Lookup(a)
	}
	if r == 0 {
		return 0
	}
	i := int32((r - 1) >> 1)
	if !mc && now <= s.netFastUntil {
		if s.withCounters && !f.SkipCounterUpdate {
			s.extOK(i, p, f, false, now)
		}
		if (r-1)&1 == 0 {
			return 1
		}
		return -1
	}
	return s.testNetFrom(i, p, f, mc, now)
}

// testNetFrom is the general mtype_test_cidrs walk from element i, the
// longest present prefix containing the address, through the shorter ones.
func (s *Set) testNetFrom(i int32, p *packet.Packet, f MatchFlags, mc bool, now int64) int {
	for i >= 0 {
		if r := s.matchExt(i, p, f, mc, now); r != 0 {
			return r
		}
		i = s.netParent[i]
	}
	return 0
}

// testNetPort is mtype_test_cidrs for hash:net,port.
func (s *Set) testNetPort(a netip.Addr, proto uint8, port uint16, p *packet.Packet, f MatchFlags, mc bool, now int64) int {
	for _, c := range s.netLens {
		var i int32
		var ok bool
		if s.family == packet.FamilyIPv4 {
			i, ok = s.tab.get(key4(v4(a)&mask4(c), proto, port, c))
		} else {
			b := maskAddr16(a, c)
			i, ok = s.mwide[keyWide(netip.AddrFrom16(b), netip.Addr{}, proto, port, c)]
		}
		if !ok {
			continue
		}
		if r := s.matchExt(i, p, f, mc, now); r != 0 {
			return r
		}
	}
	return 0
}

// matchExt is mtype_data_match: extensions, then the nomatch flag.
func (s *Set) matchExt(i int32, p *packet.Packet, f MatchFlags, mc bool, now int64) int {
	if !s.extOK(i, p, f, mc, now) {
		return 0
	}
	if s.elems[i].nomatch {
		return -1
	}
	return 1
}

// extOK is ip_set_match_extensions: a timed-out element never matches;
// counters are bumped (unless ! --update-counters) and only then compared.
func (s *Set) extOK(i int32, p *packet.Packet, f MatchFlags, mc bool, now int64) bool {
	e := &s.elems[i]
	if s.withTimeout && e.expires != 0 && now > e.expires {
		return false
	}
	if s.withCounters {
		var pk, by uint64
		if !f.SkipCounterUpdate {
			by = e.bytes.Add(uint64(p.Len))
			pk = e.packets.Add(1)
		} else if mc {
			pk, by = e.packets.Load(), e.bytes.Load()
		}
		if mc && !(cmpCounter(pk, f.Packets, f.PacketsOp) && cmpCounter(by, f.Bytes, f.BytesOp)) {
			return false
		}
	}
	return true
}

func cmpCounter(v, want uint64, op CounterOp) bool {
	switch op {
	case CounterNone:
		return true
	case CounterEQ:
		return v == want
	case CounterNE:
		return v != want
	case CounterLT:
		return v < want
	case CounterGT:
		return v > want
	}
	return false
}

// getPort is ip_set_get_ip4_port / ip_set_get_ip6_port (ip_set_getport.c).
// The kernel reads a whole transport header with skb_header_pointer, so
// a header shorter than struct tcphdr (20), sctphdr (12), udphdr (8),
// icmphdr/icmp6hdr (8) fails the test.
func getPort(p *packet.Packet, src bool) (port uint16, proto uint8, ok bool) {
	proto = p.Proto
	if p.Family == packet.FamilyIPv4 {
		// "protocol <= 0 || frag_off & IP_OFFSET" fails.
		if proto == 0 || p.FragOff != 0 {
			return 0, 0, false
		}
	} else {
		if !p.ProtoFound {
			return 0, 0, false
		}
		// ipv6_skip_exthdr stops at the fragment header of a non-first
		// fragment and reports NEXTHDR_FRAGMENT, which get_port treats as
		// a port-less protocol.
		if p.FragOff != 0 {
			return 0, 44, true
		}
	}
	switch proto {
	case packet.ProtoTCP:
		if p.L4Len < 20 {
			return 0, 0, false
		}
		return pick(p.SrcPort, p.DstPort, src), proto, true
	case packet.ProtoUDP:
		if p.L4Len < 8 {
			return 0, 0, false
		}
		return pick(p.SrcPort, p.DstPort, src), proto, true
	case protoUDPLite, protoSCTP:
		need := 8
		if proto == protoSCTP {
			need = 12
		}
		if p.L4Len < need || p.L4Off+4 > len(p.L3) {
			return 0, 0, false
		}
		b := p.L3[p.L4Off:]
		sp := uint16(b[0])<<8 | uint16(b[1])
		dp := uint16(b[2])<<8 | uint16(b[3])
		return pick(sp, dp, src), proto, true
	case packet.ProtoICMP, packet.ProtoICMPv6:
		if p.L4Len < 8 {
			return 0, 0, false
		}
		return uint16(p.ICMPType)<<8 | uint16(p.ICMPCode), proto, true
	}
	return 0, proto, true
}

const (
	protoSCTP    = 132
	protoUDPLite = 136
)

func pick(s, d uint16, src bool) uint16 {
	if src {
		return s
	}
	return d
}

func v4(a netip.Addr) uint32 {
	if !a.Is4() {
		return 0
	}
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func mask4(bits uint8) uint32 {
	if bits == 0 {
		return 0
	}
	return ^uint32(0) << (32 - uint32(bits))
}

func maskAddr16(a netip.Addr, bits uint8) [16]byte {
	b := a.As16()
	for i := 0; i < 16; i++ {
		switch {
		case int(bits) >= (i+1)*8:
		case int(bits) <= i*8:
			b[i] = 0
		default:
			b[i] &= byte(0xff << (8 - (int(bits) - i*8)))
		}
	}
	return b
}

func key4(ip uint32, proto uint8, port uint16, cidr uint8) uint64 {
	return uint64(ip)<<32 | uint64(proto)<<24 | uint64(port)<<8 | uint64(cidr)
}

func keyWide(a, b netip.Addr, proto uint8, port uint16, cidr uint8) wideKey {
	var k wideKey
	if a.IsValid() {
		x := a.As16()
		copy(k[0:16], x[:])
	}
	if b.IsValid() {
		x := b.As16()
		copy(k[16:32], x[:])
	}
	k[32] = proto
	k[33] = byte(port >> 8)
	k[34] = byte(port)
	k[35] = cidr
	return k
}

// Registry is every set of one `ipset save` file, by name.
type Registry struct {
	sets   map[string]*Set
	order  []*Set
	loaded int64 // the now given to Parse; Save prints timeouts relative to it
	// Warnings are what ipset restore takes but the operator should
	// know (Parse).
	Warnings []Warning
}

// Warning is a remark on a line of a sets file.
type Warning struct {
	File string
	Line int
	Msg  string
}

func (w Warning) String() string { return fmt.Sprintf("%s:%d: warning: %s", w.File, w.Line, w.Msg) }

// Get returns the named set, or nil.
func (r *Registry) Get(name string) *Set { return r.sets[name] }

// Names lists the set names, sorted.
func (r *Registry) Names() []string {
	n := make([]string, 0, len(r.order))
	for _, s := range r.order {
		n = append(n, s.name)
	}
	sort.Strings(n)
	return n
}

// addLen records a hash:net,port prefix length, keeping netLens sorted
// most specific first as mtype_add_cidr does.
func (s *Set) addLen(c uint8) {
	s.lenCount[c]++
	if s.lenCount[c] > 1 {
		return
	}
	s.netLens = append(s.netLens, c)
	sort.Slice(s.netLens, func(i, j int) bool { return s.netLens[i] > s.netLens[j] })
}
