package engine

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"

	"github.com/sluice-project/sluice/engine/ipset"
	"github.com/sluice-project/sluice/packet"
	"github.com/sluice-project/sluice/rules"
)

// targetKind is a compiled rule's action.
type targetKind uint8

const (
	tContinue targetKind = iota // no target, LOG, NFLOG, NOTRACK: count and go on
	tAccept
	tDrop
	tReturn
	tJump
	tGoto
)

// rule flags for the fixed header part.
const (
	fSrcInv uint16 = 1 << iota
	fDstInv
	fProto // -p given (IPv6: walk the header chain even for -p all)
	fProtoInv
	fFrag
	fFragInv
	fInIface
	fInInv
	fOutIface
	fOutInv
)

// rule is one compiled rule. The fixed part mirrors struct ipt_ip so the
// common case (addresses, protocol) is a few integer compares. What the
// traversal reads for an IPv4 rule is inline, in 64 bytes, so a ruleset's
// rules stay in few cache lines while packets stream through; the IPv6
// addresses, interface names and source are behind ruleInfo.
type rule struct {
	flags uint16
	proto uint8
	kind  targetKind
	// hdr says which header checks can fail for this rule (hdr* bits);
	// a rule without any goes straight to its matches.
	hdr uint8
	log bool // LOG or NFLOG: write a line when a sink is set
	// pbit is the rule's bit in the packet's prefilter word (prefilter.go),
	// noPbit for a rule without one.
	pbit uint8
	// dec says which packet classes settle the rule's first match
	// (dec* bits, buildSkip): for a packet of such a class, canMatch
	// passing means that match passes, and runFrom starts at the second.
	dec  uint8
	jump int32 // chain index for tJump / tGoto
	ctr  int32 // its counter (Worker.ctr)

	src4, smask4, dst4, dmask4 uint32
	ops                        []op // a window on familyProgram.ops

	*ruleInfo
}

// ruleInfo is the part of a rule the IPv4 fast path does not read.
type ruleInfo struct {
	src6, smask6, dst6, dmask6 [2]uint64
	inIface, outIface          ifname

	src *rules.Rule
}

// Class decisions (rule.dec, Worker.dec): what a packet's skip class
// settles for the port and flag tests of a rule's first match.
const (
	// decTCPFlags: an unfragmented TCP packet with a whole header, whose
	// class holds every flag bit a first --tcp-flags test reads.
	decTCPFlags uint8 = 1 << iota
	// decTCP: the same, and its class holds the port ranges of every
	// first tcp and multiport match.
	decTCP
	// decUDP: an unfragmented UDP packet with a whole header, whose class
	// holds the port ranges of every first udp and multiport match.
	decUDP
)

// Header checks a rule may need (rule.hdr).
const (
	// hdrAddr: -s or -d (or their inversion) can reject a packet.
	hdrAddr uint8 = 1 << iota
	// hdrIface: -i or -o is given.
	hdrIface
	// hdrProto: -p or -f (or, for IPv6, a header chain walk) can reject
	// or hotdrop a packet. The skip tables already decide this check for
	// every packet they classify (runFrom), so it runs only for the rest.
	hdrProto
)

// headerChecks computes r.hdr from the rule's header fields.
func (r *rule) headerChecks(fam packet.Family) uint8 {
	var h uint8
	if r.flags&(fSrcInv|fDstInv) != 0 || r.smask4|r.dmask4 != 0 ||
		r.smask6[0]|r.smask6[1]|r.dmask6[0]|r.dmask6[1] != 0 {
		h |= hdrAddr
	}
	if r.flags&(fInIface|fOutIface) != 0 {
		h |= hdrIface
	}
	if fam == packet.FamilyIPv4 {
		if r.proto != 0 || r.flags&fFrag != 0 {
			h |= hdrProto
		}
	} else if r.flags&fProto != 0 {
		h |= hdrProto
	}
	return h
}

// ifname is an interface name compared as the kernel's
// ifname_compare_aligned does: bytes under the mask must be equal, where
// the mask covers the name and its NUL unless the name ends in '+'.
type ifname struct {
	name [16]byte
	mask [16]byte
}

func makeIfname(f rules.Iface) ifname {
	var n ifname
	copy(n.name[:], f.Name)
	l := len(f.Name)
	if !f.Wildcard {
		l++ // the terminating NUL must match too
	}
	for i := 0; i < l && i < 16; i++ {
		n.mask[i] = 0xFF
	}
	return n
}

func (n *ifname) match(dev *[16]byte) bool {
	for i := 0; i < 16; i++ {
		if (dev[i]^n.name[i])&n.mask[i] != 0 {
			return false
		}
	}
	return true
}

// chain is a compiled chain: rules[start:end] in Program.rules.
type chain struct {
	start, end int32
	builtin    bool
	policy     rules.Policy
	ctr        int32 // policy counters (built-in chains)
	table      string
	name       string
	src        *rules.Chain
}

// chainSpan is a chain's rule range [start, end). When the range lies in
// one word of a candidate bitmap (word ≥ 0), mask holds its bits there:
// a packet with none of them set has no rule to evaluate in the chain.
type chainSpan struct {
	start, end, word int32
	mask             uint64
}

func newChainSpan(start, end int32) chainSpan {
	s := chainSpan{start: start, end: end, word: -1}
	switch {
	case start == end:
		s.word = 0 // no rules: an empty mask
	case start>>6 == (end-1)>>6:
		s.word = start >> 6
		for i := start; i < end; i++ {
			s.mask |= 1 << (i & 63)
		}
	}
	return s
}

// familyProgram is one family's compiled ruleset.
type familyProgram struct {
	fam   packet.Family
	rs    *rules.Ruleset
	hooks [4]int32 // chain index per ingress hook (rules.IngressHooks), -1 if absent
	// nhooks is one past the last hook with a chain: the hooks after it
	// (and the routing decision and reassembly before INPUT, when no
	// INPUT chain follows) cannot change a verdict or a counter.
	nhooks int32
	chains []chain
	rules  []rule
	ops    []op // every rule's matches, in rule order
	nctr   int

	// skip tables (buildSkip): bit i of rows[cls] is set when rule i can
	// match a packet of class cls (nwords words per row, in cand).
	// skipTrusted says a packet's class row also settles its protocol
	// and fragment header checks (it is false only when a test replaced
	// the rows with all ones).
	cand        []uint64
	rows        [][]uint64
	nwords      int
	skipTrusted bool
	protoCls    [256]uint8
	// TCP classes (ntcp): flags (nflag of them, the low bits of the
	// flags byte) × source × destination port class; UDP classes (nudp):
	// source × destination port class. Port classes are nil when there
	// would be too many.
	ntcp, nudp         bool
	nflag              uint16
	tcpSport, tcpDport *portClasses
	udpSport, udpDport *portClasses
	tcpBase, udpBase   int32
	noneCls            int32
	// spans are the chains' rule ranges, for jumps.
	spans []chainSpan

	pf prefilter
}

// compileFamily flattens a ruleset: every chain's rules become a contiguous
// range, jumps become chain indexes, and each rule's matches become ops.
func compileFamily(rs *rules.Ruleset, st *State, now int64) (*familyProgram, error) {
	fp := &familyProgram{fam: rs.Family, rs: rs}
	for i := range fp.hooks {
		fp.hooks[i] = -1
	}
	type key struct{ table, chain string }
	index := map[key]int32{}
	for _, t := range rs.Tables {
		for _, c := range t.Chains {
			index[key{t.Name, c.Name}] = int32(len(fp.chains))
			fp.chains = append(fp.chains, chain{builtin: c.Builtin, policy: c.Policy, table: t.Name, name: c.Name, src: c})
		}
	}
	ctr := 0
	seen := map[string]int{}
	for ci := range fp.chains {
		c := &fp.chains[ci]
		c.start = int32(len(fp.rules))
		for _, r := range c.src.Rules {
			// A rule's identity across reloads: where it is and what it
			// says, so unchanged rules keep their limit buckets.
			id := fmt.Sprintf("%s/%s/%s/%s", rs.Family, c.table, c.name, r.Text)
			seen[id]++
			id = fmt.Sprintf("%s#%d", id, seen[id])
			cr, err := compileRule(rs, c.table, r, st, now, id)
			if err != nil {
				return nil, err
			}
			if cr.kind == tJump || cr.kind == tGoto {
				cr.jump = index[key{c.table, r.Target.Chain}]
			}
			cr.ctr = int32(ctr)
			ctr++
			fp.rules = append(fp.rules, cr)
		}
		c.end = int32(len(fp.rules))
		c.ctr = int32(ctr)
		ctr++
	}
	fp.nctr = ctr
	// One array for every rule's ops: a traversal walks them in order.
	n := 0
	for i := range fp.rules {
		n += len(fp.rules[i].ops)
	}
	fp.ops = make([]op, 0, n)
	var sets []*ipset.Matcher
	for i := range fp.rules {
		r := &fp.rules[i]
		k := len(fp.ops)
		fp.ops = append(fp.ops, r.ops...)
		r.ops = fp.ops[k:len(fp.ops):len(fp.ops)]
		r.hdr = r.headerChecks(fp.fam)
		for k := range r.ops {
			if r.ops[k].kind == opSet {
				sets = append(sets, r.ops[k].set)
			}
		}
	}
	ipset.GroupMatchers(sets)
	if fp.fam == packet.FamilyIPv4 {
		for i := range fp.ops {
			fp.ops[i].groupOp()
		}
	}
	fp.buildSkip()
	for h, hk := range rules.IngressHooks {
		if ci, ok := index[key{hk.Table, hk.Chain}]; ok {
			fp.hooks[h] = ci
			fp.nhooks = int32(h + 1)
		}
	}
	fp.buildPrefilter()
	fp.spans = make([]chainSpan, len(fp.chains))
	for ci := range fp.chains {
		fp.spans[ci] = newChainSpan(fp.chains[ci].start, fp.chains[ci].end)
	}
	return fp, nil
}

func addr4(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

func addr6(a netip.Addr) [2]uint64 {
	b := a.As16()
	return [2]uint64{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

func compileRule(rs *rules.Ruleset, table string, r *rules.Rule, st *State, now int64, id string) (rule, error) {
	cr := rule{ruleInfo: &ruleInfo{src: r}}
	if r.Src.Set {
		if rs.Family == packet.FamilyIPv4 {
			cr.src4, cr.smask4 = addr4(r.Src.Addr), addr4(r.Src.Mask)
		} else {
			cr.src6, cr.smask6 = addr6(r.Src.Addr), addr6(r.Src.Mask)
		}
		if r.Src.Invert {
			cr.flags |= fSrcInv
		}
	}
	if r.Dst.Set {
		if rs.Family == packet.FamilyIPv4 {
			cr.dst4, cr.dmask4 = addr4(r.Dst.Addr), addr4(r.Dst.Mask)
		} else {
			cr.dst6, cr.dmask6 = addr6(r.Dst.Addr), addr6(r.Dst.Mask)
		}
		if r.Dst.Invert {
			cr.flags |= fDstInv
		}
	}
	if r.Proto != 0 || r.ProtoInv || (rs.Family == packet.FamilyIPv6 && protoGiven(r)) {
		cr.flags |= fProto
	}
	cr.proto = r.Proto
	if r.ProtoInv {
		cr.flags |= fProtoInv
	}
	if r.Frag {
		cr.flags |= fFrag
		if r.FragInv {
			cr.flags |= fFragInv
		}
	}
	if r.InIface.Set {
		cr.flags |= fInIface
		cr.inIface = makeIfname(r.InIface)
		if r.InIface.Invert {
			cr.flags |= fInInv
		}
	}
	if r.OutIface.Set {
		cr.flags |= fOutIface
		cr.outIface = makeIfname(r.OutIface)
		if r.OutIface.Invert {
			cr.flags |= fOutInv
		}
	}
	switch r.Target.Kind {
	case rules.TargetAccept:
		cr.kind = tAccept
	case rules.TargetDrop, rules.TargetReject:
		cr.kind = tDrop
	case rules.TargetReturn:
		cr.kind = tReturn
	case rules.TargetJump:
		cr.kind = tJump
	case rules.TargetGoto:
		cr.kind = tGoto
	default:
		cr.kind = tContinue
		cr.log = isLogTarget(r.Target.Kind)
	}
	for i, m := range r.Matches {
		o, ok, err := compileOp(rs.Family, m, st, now, fmt.Sprintf("%s/%d", id, i))
		if err != nil {
			return cr, fmt.Errorf("%s:%d: %w", rs.File, r.Line, err)
		}
		if ok {
			cr.ops = append(cr.ops, o)
		}
	}
	return cr, nil
}

// protoGiven reports whether an IPv6 rule said -p at all: ip6tables sets
// IP6T_F_PROTO even for `-p all`, which makes the kernel walk the
// extension-header chain (and hotdrop on a broken one) for that rule.
func protoGiven(r *rules.Rule) bool {
	return r.ProtoGiven
}

// Skip tables. A rule whose header cannot pass for a packet's protocol
// and fragment state, or whose first match is a tcp, udp or multiport
// match whose flag or port test fails on a readable transport header,
// returns "no match" without side effects or hotdrops whatever else it
// checks: the header is compared before any match, and a first match
// cannot be preceded by a stateful one. Such rules are skipped outright.
// A packet gets a class once per traversal, and its class's row, a bit
// per rule, says which rules it can match; with the prefilter's bits
// cleared (prefilter.go), the traversal finds the next rule to evaluate
// with a count of trailing zeros, without a branch per rule passed over.
//
// The classes are: protocol × fragment; for an unfragmented TCP packet
// with a full header, TCP flags × source port class × destination port
// class; for an unfragmented UDP packet with a full header, source ×
// destination port class; and a catch-all that excludes nothing. Port
// classes split the port space at the bounds of every range the first
// matches name, so every port of a class passes or fails each of those
// ranges alike.

// maxSkipEntries bounds the tables' size (classes × rules, in bits);
// past it the port classes, then the tcp flag classes, are left out.
const maxSkipEntries = 1 << 22

// skipClass is what a skip table class knows of its packets.
type skipClass struct {
	proto        uint8
	frag         bool
	hasFlags     bool // an unfragmented TCP packet with a full header
	flags        uint8
	hasPorts     bool // an unfragmented TCP or UDP packet with a full header
	sport, dport uint16
	none         bool
}

// portClasses maps a port to its class: blk by the port's high byte
// holds the class, or (with portSub set) the index of a sub-table by the
// low byte, for the few 256-port blocks that a bound splits.
type portClasses struct {
	n    int
	reps []uint16 // the lowest port of each class
	blk  [256]uint16
	sub  [][256]uint8
}

const portSub = 0x8000

func (pc *portClasses) class(port uint16) int32 {
	v := pc.blk[port>>8]
	if v&portSub != 0 {
		return int32(pc.sub[v&^portSub][port&255])
	}
	return int32(v)
}

// newPortClasses splits the port space at the given range bounds (the
// first port of each class, 0 included implicitly). It returns nil when
// there are more than 255 classes.
func newPortClasses(starts map[uint32]bool) *portClasses {
	starts[0] = true
	var bounds []uint32
	for b := range starts {
		if b <= 0xffff {
			bounds = append(bounds, b)
		}
	}
	slices.Sort(bounds)
	if len(bounds) > 255 {
		return nil
	}
	pc := &portClasses{n: len(bounds)}
	for _, b := range bounds {
		pc.reps = append(pc.reps, uint16(b))
	}
	cls := func(port uint32) int {
		i, found := slices.BinarySearch(bounds, port)
		if !found {
			i--
		}
		return i
	}
	for hi := uint32(0); hi < 256; hi++ {
		c0 := cls(hi << 8)
		if cls(hi<<8|255) == c0 {
			pc.blk[hi] = uint16(c0)
			continue
		}
		var t [256]uint8
		for lo := uint32(0); lo < 256; lo++ {
			t[lo] = uint8(cls(hi<<8 | lo))
		}
		pc.blk[hi] = portSub | uint16(len(pc.sub))
		pc.sub = append(pc.sub, t)
	}
	return pc
}

func (fp *familyProgram) buildSkip() {
	nr := len(fp.rules)
	// Every protocol a rule names, and 0, gets a class; every other
	// protocol shares class 0 (represented by one of them).
	var used [256]bool
	used[0] = true
	for i := range fp.rules {
		used[fp.rules[i].proto] = true
	}
	other := -1
	var reps []uint8
	reps = append(reps, 0) // class 0: the unnamed protocols
	for v := 0; v < 256; v++ {
		if used[v] {
			fp.protoCls[v] = uint8(len(reps))
			reps = append(reps, uint8(v))
		} else if other < 0 {
			other = v
		}
	}
	if other >= 0 {
		reps[0] = uint8(other)
	}
	np := len(reps)
	// tcp flag classes, when a rule starts with a --tcp-flags test, and
	// the bounds of the port ranges the first matches test.
	var fmask uint8
	tS, tD, uS, uD := map[uint32]bool{}, map[uint32]bool{}, map[uint32]bool{}, map[uint32]bool{}
	add := func(m map[uint32]bool, r rules.PortRange) {
		m[uint32(r.Min)] = true
		m[uint32(r.Max)+1] = true
	}
	for i := range fp.rules {
		r := &fp.rules[i]
		if len(r.ops) == 0 {
			continue
		}
		switch o := &r.ops[0]; o.kind {
		case opTCP:
			if o.has2 {
				fmask |= o.b0
			}
			add(tS, o.r0)
			add(tD, o.r1)
		case opUDP:
			add(uS, o.r0)
			add(uD, o.r1)
		case opMultiport:
			for _, pr := range o.x.ports {
				switch rules.MultiportDir(o.b0) {
				case rules.MultiportSrc:
					add(tS, pr)
					add(uS, pr)
				case rules.MultiportDst:
					add(tD, pr)
					add(uD, pr)
				default:
					add(tS, pr)
					add(uS, pr)
					add(tD, pr)
					add(uD, pr)
				}
			}
		}
	}
	nflag := 1
	if fmask != 0 {
		nflag = 256
		if fmask&0xc0 == 0 {
			nflag = 64
		}
	}
	fp.tcpSport, fp.tcpDport = newPortClasses(tS), newPortClasses(tD)
	fp.udpSport, fp.udpDport = newPortClasses(uS), newPortClasses(uD)
	ntcp := nflag * fp.tcpSport.count() * fp.tcpDport.count()
	nudp := fp.udpSport.count() * fp.udpDport.count()
	if fp.tcpSport == nil || fp.tcpDport == nil || fp.udpSport == nil || fp.udpDport == nil ||
		(2*np+ntcp+nudp+1)*nr > maxSkipEntries {
		// Too many classes: flags only.
		fp.tcpSport, fp.tcpDport, fp.udpSport, fp.udpDport = nil, nil, nil, nil
		ntcp, nudp = nflag, 0
		if (2*np+nflag+1)*nr > maxSkipEntries {
			nflag, ntcp = 1, 0
		}
	}
	if ntcp == 1 {
		ntcp = 0 // nothing to tell apart: the protocol classes do
	}
	if nudp == 1 {
		nudp = 0
	}
	fp.skipTrusted = true
	fp.nflag = uint16(0)
	if ntcp > 0 {
		fp.nflag = uint16(nflag)
	}
	fp.ntcp, fp.nudp = ntcp > 0, nudp > 0
	for i := range fp.rules {
		fp.rules[i].dec = firstDecision(&fp.rules[i], fp.ntcp, fp.ntcp && fp.tcpSport != nil, fp.nudp)
	}
	fp.tcpBase = int32(2 * np)
	fp.udpBase = int32(2*np + ntcp)
	fp.noneCls = int32(2*np + ntcp + nudp)
	ncls := 2*np + ntcp + nudp + 1
	nw := (nr + 63) / 64
	fp.nwords = nw
	fp.cand = make([]uint64, ncls*nw)
	fp.rows = make([][]uint64, ncls)
	for c := range fp.rows {
		fp.rows[c] = fp.cand[c*nw : (c+1)*nw : (c+1)*nw]
	}
	for cls := 0; cls < ncls; cls++ {
		var k skipClass
		switch {
		case cls < 2*np:
			k.proto, k.frag = reps[cls/2], cls%2 == 1
		case cls < 2*np+ntcp:
			c := cls - 2*np
			k.proto, k.hasFlags = packet.ProtoTCP, true
			if fp.tcpSport != nil {
				nd := fp.tcpDport.count()
				ns := fp.tcpSport.count()
				k.hasPorts = true
				k.dport = fp.tcpDport.reps[c%nd]
				k.sport = fp.tcpSport.reps[c/nd%ns]
				c /= nd * ns
			}
			k.flags = uint8(c)
		case cls < 2*np+ntcp+nudp:
			c := cls - 2*np - ntcp
			nd := fp.udpDport.count()
			k.proto, k.hasPorts = packet.ProtoUDP, true
			k.dport, k.sport = fp.udpDport.reps[c%nd], fp.udpSport.reps[c/nd]
		default:
			k.none = true
		}
		row := fp.rows[cls]
		for i := range fp.rules {
			if k.none || canMatch(&fp.rules[i], fp.fam, &k) {
				row[i>>6] |= 1 << (i & 63)
			}
		}
	}
}

// firstDecision is r.dec: the classes (dec* bits) that settle r's first
// match, given which kinds of class the skip tables have (tcp flag
// classes, tcp port classes, udp port classes). A class settles a match
// when it splits the packets at every bound the match tests (buildSkip
// takes the bounds from every rule's first match) and rules out the
// reasons it could fail otherwise: a fragment, a short header. A
// --tcp-option test needs the packet's options: never settled.
func firstDecision(r *rule, tcpFlags, tcpPorts, udpPorts bool) uint8 {
	if len(r.ops) == 0 {
		return 0
	}
	all := rules.PortRange{Min: 0, Max: 0xffff}
	var d uint8
	switch o := &r.ops[0]; o.kind {
	case opTCP:
		if o.has3 {
			return 0
		}
		if tcpPorts {
			d |= decTCP
		}
		if tcpFlags && o.r0 == all && o.r1 == all && !o.inv && !o.inv3 {
			d |= decTCPFlags
		}
	case opUDP:
		if udpPorts {
			d |= decUDP
		}
	case opMultiport:
		if tcpPorts {
			d |= decTCP
		}
		if udpPorts {
			d |= decUDP
		}
	}
	return d
}

// count is the number of classes; 1 for none.
func (pc *portClasses) count() int {
	if pc == nil {
		return 1
	}
	return pc.n
}

// canMatch reports whether rule r can match a packet of class k: of
// protocol k.proto (found, for IPv6) and a non-first fragment if k.frag;
// if k.hasFlags, an unfragmented packet with a readable TCP header
// carrying k.flags; if k.hasPorts, an unfragmented TCP or UDP packet with
// a readable header and ports k.sport and k.dport. It mirrors match's
// header checks and the port and flag tests of tcp_mt, udp_mt and
// multiport_mt.
func canMatch(r *rule, fam packet.Family, k *skipClass) bool {
	f := r.flags
	if fam == packet.FamilyIPv4 {
		if r.proto != 0 && (k.proto != r.proto) != (f&fProtoInv != 0) {
			return false
		}
		if f&fFrag != 0 && !k.frag != (f&fFragInv != 0) {
			return false
		}
	} else if f&fProto != 0 {
		if k.proto == r.proto {
			if f&fProtoInv != 0 {
				return false
			}
		} else if r.proto != 0 && f&fProtoInv == 0 {
			return false
		}
	}
	if len(r.ops) == 0 {
		return true
	}
	o := &r.ops[0]
	switch {
	case o.kind == opTCP && k.hasFlags:
		if o.has2 && (k.flags&o.b0 == o.b1) == o.inv2 {
			return false
		}
		if k.hasPorts && (inRange(k.sport, o.r0) == o.inv || inRange(k.dport, o.r1) == o.inv3) {
			return false
		}
	case o.kind == opUDP && k.hasPorts && k.proto == packet.ProtoUDP:
		if inRange(k.sport, o.r0) == o.inv || inRange(k.dport, o.r1) == o.inv3 {
			return false
		}
	case o.kind == opMultiport && k.hasPorts:
		if multiportMatch(o, k.sport, k.dport) == o.inv {
			return false
		}
	}
	return true
}
