package engine

import (
	"fmt"
	"math/bits"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/sluice-project/sluice/engine/ipset"
	"github.com/sluice-project/sluice/engine/jiffies"
	"github.com/sluice-project/sluice/engine/limit"
	"github.com/sluice-project/sluice/packet"
	"github.com/sluice-project/sluice/rules"
)

// Config is what the engine needs besides the rules.
type Config struct {
	// Rules4 and Rules6 are the IPv4 and IPv6 rulesets; either may be nil,
	// and frames of a family without a ruleset are not filtered.
	Rules4, Rules6 *rules.Ruleset
	// HZ is the kernel tick rate the rate matches count in.
	HZ uint64
	// InIface is the input interface name that -i compares against.
	InIface string
	// LocalAddrs are the host's own addresses: the kernel drops IPv4
	// packets claiming one of them as source before INPUT, and joins the
	// IPv6 solicited-node group of each.
	LocalAddrs []netip.Addr
	// LocalNets are the prefixes of the host's IPv4 addresses, if known:
	// a datagram to a subnet's broadcast address is a broadcast, for
	// which IPv4 record-route and timestamp options get the host's
	// address rather than the destination (ipopts.go).
	LocalNets []netip.Prefix
	// WallOffset added to the now passed to Process gives Unix time in
	// nanoseconds; zero when now is already that (capture timestamps).
	// The IPv4 timestamp option records the time of day.
	WallOffset int64
}

// Program is a compiled, immutable ruleset pair. Workers evaluate it
// concurrently; a reload compiles a new Program and swaps it in.
type Program struct {
	fam     [3]*familyProgram // by packet.Family
	clock   jiffies.Clock
	inIface [16]byte
	state   *State

	localAddrs []netip.Addr
	localNets  []netip.Prefix
	wallOffset int64
}

// Compile builds a Program. st carries the state of stateful matches and
// the sets; now is the load time (the packet clock), which rate matches
// start from, as the kernel's checkentry starts them at jiffies.
func Compile(cfg Config, st *State, now int64) (*Program, error) {
	if cfg.HZ == 0 {
		cfg.HZ = jiffies.DefaultHZ
	}
	if st == nil {
		st = NewState(nil, cfg.HZ)
	}
	st.hz = cfg.HZ
	pr := &Program{clock: jiffies.Clock{HZ: cfg.HZ}, state: st, localAddrs: cfg.LocalAddrs,
		localNets: cfg.LocalNets, wallOffset: cfg.WallOffset}
	if len(cfg.InIface) > 15 {
		return nil, fmt.Errorf("interface name %q is longer than 15 characters", cfg.InIface)
	}
	copy(pr.inIface[:], cfg.InIface)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.ext.nextLimits = map[string]*limit.State{}
	for _, rs := range []*rules.Ruleset{cfg.Rules4, cfg.Rules6} {
		if rs == nil {
			continue
		}
		fp, err := compileFamily(rs, st, now)
		if err != nil {
			return nil, err
		}
		pr.fam[rs.Family] = fp
	}
	st.ext.limits = st.ext.nextLimits
	return pr, nil
}

// Verdict is what happens to a packet.
type Verdict uint8

const (
	// Accept: the packet goes on to the kernel.
	Accept Verdict = iota
	// Drop: a rule or a policy dropped it.
	Drop
	// Hotdrop: a match could not read a header it needed; the kernel
	// drops such a packet without counting it in any rule.
	Hotdrop
	// Malformed: the kernel's receive path would discard it before
	// netfilter; no chain sees it.
	Malformed
	// NotFiltered: not IP, or no ruleset for its family; passed on.
	NotFiltered
	numVerdicts
)

func (v Verdict) String() string {
	return [...]string{"accept", "drop", "hotdrop", "malformed", "not_filtered"}[v]
}

// Worker evaluates packets for one goroutine. Its counters are plain
// integers under mu, which the worker holds while it judges (a packet in
// Process, up to MaxBatch of them in ProcessBatch) and Program.Report
// holds while it reads them, from any goroutine. A locked add per counter
// would cost more: a packet of the reference mix bumps seven or eight
// counters, and each locked add is a full barrier (~3 ns here), where
// the mutex is two per batch.
type Worker struct {
	pr       *Program
	mu       sync.Mutex
	ctr      [3][]counter
	verdicts [numVerdicts]uint64
	bad      [packet.NumMalformed]uint64
	stack    []stackEntry
	reasm    reassembler

	logSink    LogSink
	logLim     logLimiter
	logBuf     []byte
	logDropped atomic.Uint64
	dgram      packet.Packet
	// optPkt is a datagram whose IPv4 options the kernel rewrites before
	// INPUT (ipopts.go), over its copy optBuf.
	optPkt packet.Packet
	optBuf []byte

	// lastRule is the index (in the family's rule array) of the rule
	// whose ACCEPT or DROP decided the last packet, or -1 for a policy or
	// no decision. Capture filters read it right after Process.
	lastRule int32
	lastFam  packet.Family

	// per-packet scratch: the clock and addresses as integers, computed
	// once, and the set groups' lookups (ipset.Matcher.Match4), zeroed.
	now        int64
	src4, dst4 uint32
	src6, dst6 [2]uint64
	setMemo    ipset.Memo4

	// The traversal state of the packet (begin).
	// cand is the packet's candidates, a bit per rule: its class's skip
	// row without the rules its prefilter word rules out.
	cand   []uint64
	hmask  uint8
	dec    uint8 // the class decisions of its skip class (rule.dec)
	curCtr []counter
	l3len  uint64

	// lead is the packet's answer of the lead set group when
	// ProcessBatch looked it up ahead (batch.go), else 0.
	lead uint32

	// The jiffy of the clock span [jFrom, jTo), kept so consecutive
	// packets skip the division (tick).
	jCur       uint64
	jFrom, jTo int64
}

// counter is a rule's or a policy's packets and bytes, side by side.
type counter [2]uint64

// stackEntry is a return point: rule ret of the chain that ends at end.
type stackEntry struct{ ret, end int32 }

// NewWorker returns a Worker for pr.
func (pr *Program) NewWorker() *Worker {
	w := &Worker{pr: pr}
	depth := 1
	for f, fp := range pr.fam {
		if fp == nil {
			continue
		}
		w.ctr[f] = make([]counter, fp.nctr)
		if len(fp.chains)+1 > depth {
			depth = len(fp.chains) + 1
		}
	}
	w.stack = make([]stackEntry, depth)
	nw := 0
	for _, fp := range pr.fam {
		if fp != nil {
			nw = max(nw, fp.nwords)
		}
	}
	w.cand = make([]uint64, nw)
	return w
}

// Program returns the program this worker evaluates.
func (w *Worker) Program() *Program { return w.pr }

// Process runs one decoded packet through the ingress hooks. now is the
// packet's time in nanoseconds (capture timestamp or monotonic clock).
func (w *Worker) Process(p *packet.Packet, now int64) Verdict {
	w.mu.Lock()
	v := w.judge(p, now)
	w.mu.Unlock()
	return v
}

// judge is Process with w.mu held.
func (w *Worker) judge(p *packet.Packet, now int64) Verdict {
	// The packet count is the sum of the verdict counts (counters.go).
	var v Verdict
	if p.Malformed != packet.MalformedNone {
		w.lastRule, w.lastFam = -1, p.Family
		w.bad[p.Malformed]++
		v = Malformed
	} else {
		v = w.walk(p, now, &wholePacket)
	}
	w.verdicts[v]++
	return v
}

// wholePacket is the site of a packet nothing has evaluated yet.
var wholePacket = ResumeSite{whole: true, rule: -1}

// walk runs p through the ingress hooks from site on: the whole packet
// for Process, or what is left after the XDP program's part for
// ProcessFrom (resume.go).
func (w *Worker) walk(p *packet.Packet, now int64, site *ResumeSite) Verdict {
	w.lastRule, w.lastFam = -1, p.Family
	if p.Family == packet.FamilyNone {
		return NotFiltered
	}
	fp := w.pr.fam[p.Family]
	if fp == nil {
		return NotFiltered
	}
	if p.NumVLANs > 0 && p.VLAN != 0 {
		// Tagged for a VLAN: the kernel hands it to that VLAN's device,
		// or, with none, drops it as PACKET_OTHERHOST before any hook.
		// Either way this interface's rules never see it.
		return NotFiltered
	}
	if p.Family == packet.FamilyIPv4 {
		w.src4, w.dst4 = addr4(p.Src), addr4(p.Dst)
		w.setMemo = ipset.Memo4{}
		w.setMemo[fp.pf.slot&memoMask] = w.lead
	} else {
		w.src6, w.dst6 = addr6(p.Src), addr6(p.Dst)
	}
	// The jiffy: the last packet's while now stays in its tick.
	if now < w.jFrom || now >= w.jTo {
		w.tick(now)
	}
	j := w.jCur
	w.now = now
	w.begin(fp, p)
	for h := site.hook; h < int(fp.nhooks); h++ {
		if h == 2 && (h > site.hook || site.route) {
			if !w.pr.reachesInput(p) {
				// The routing decision between PREROUTING and INPUT
				// discards or forwards it; the kernel decides, not us.
				return Accept
			}
			if p.Family == packet.FamilyIPv4 && p.IsFragment {
				// INPUT sees the reassembled datagram, once, when its
				// last piece arrives; until then the kernel holds the
				// pieces.
				if !w.reasm.add(p, now, &w.dgram) {
					return Accept
				}
				p = &w.dgram
				w.begin(fp, p)
			}
			if p.Family == packet.FamilyIPv4 && p.L4Off > 20 {
				p = w.inputOptions(p, now)
			}
		}
		ci := fp.hooks[h]
		if ci < 0 {
			continue
		}
		var res targetKind
		if h == site.hook && site.rule >= 0 {
			res = w.runFrom(fp, ci, site.chain, site.rule, copy(w.stack, site.stack), p, j)
		} else {
			res = w.runChain(fp, ci, p, j)
		}
		switch res {
		case tDrop:
			return Drop
		case resHotdropVerdict:
			return Hotdrop
		}
	}
	return Accept
}

// begin sets the per-packet state every hook's traversal of p shares:
// its candidate rules (its class's skip row without the rules its
// prefilter word rules out), which header checks that row leaves to do,
// what the class settles of the rules' first matches, its counters and
// its byte count. It is one function, not three, because it runs for
// every packet: calls between its parts cost as much as a part.
func (w *Worker) begin(fp *familyProgram, p *packet.Packet) {
	// The skip class (program.go's buildSkip). Its row settles the
	// rules' protocol and fragment checks (canMatch), except in the
	// catch-all class of IPv6 packets whose header chain could not be
	// walked.
	cls := fp.noneCls
	var dec uint8
	switch {
	case p.Family == packet.FamilyIPv6 && !p.ProtoFound:
	case p.Proto == packet.ProtoTCP && fp.ntcp && p.FragOff == 0 && p.L4Len >= 20:
		cls = int32(p.TCPFlags & uint8(fp.nflag-1))
		dec = decTCPFlags
		if fp.tcpSport != nil {
			cls = (cls*int32(fp.tcpSport.n)+fp.tcpSport.class(p.SrcPort))*int32(fp.tcpDport.n) + fp.tcpDport.class(p.DstPort)
			dec = decTCPFlags | decTCP
		}
		cls += fp.tcpBase
	case p.Proto == packet.ProtoUDP && fp.nudp && p.FragOff == 0 && p.L4Len >= 8:
		cls = fp.udpBase + fp.udpSport.class(p.SrcPort)*int32(fp.udpDport.n) + fp.udpDport.class(p.DstPort)
		dec = decUDP
	default:
		cls = 2 * int32(fp.protoCls[p.Proto])
		if p.FragOff != 0 {
			cls++
		}
	}
	trusted := cls != fp.noneCls && fp.skipTrusted
	row := fp.rows[cls]
	w.dec = dec
	cand := w.cand[:len(row)]
	for k := range row {
		cand[k] = row[k]
	}
	if pf := &fp.pf; pf.on {
		// The prefilter word (prefilter.go): the rules certain to fail.
		// The lead group's answer goes into the packet's memo, where the
		// lead test and the group's other tests find it.
		x := pf.ttl[p.TTL] | pf.pkt[p.PktType] | pf.tos[p.TOS]
		if len(pf.srcDim.starts) > 1 {
			x |= pf.srcDim.lookup(w.src4)
		}
		if len(pf.dstDim.starts) > 1 {
			x |= pf.dstDim.lookup(w.dst4)
		}
		if pf.lens != nil {
			x |= pf.lenEx[pf.lens.class(uint16(p.Len))]
		}
		if len(pf.grpEx) > 0 && w.now <= pf.until {
			v := w.groupValue(pf.grp, pf.slot, pf.dst)
			if pf.gtab != nil {
				x |= pf.gtab[v&pf.gmask]
			} else {
				for i := range pf.grpEx {
					g := &pf.grpEx[i]
					x |= g.ex[v>>g.shift&3]
				}
			}
		}
		for i := range pf.ips {
			d := &pf.ips[i]
			a := w.src4
			if d.dst {
				a = w.dst4
			}
			if h := ipset.HashIP4(a); d.f[h>>6]>>(h&63)&1 == 0 {
				x |= d.absent
			}
		}
		if x&pf.cond != 0 || len(pf.ports) > 0 {
			if !l4Whole(p) {
				// Last, over every test's bits: a rule whose tests
				// follow a transport match may hotdrop on this header.
				x &^= pf.cond
			} else if len(pf.ports) > 0 && (p.Proto == packet.ProtoTCP || p.Proto == packet.ProtoUDP) {
				x |= pf.portEx(p)
			}
		}
		if pf.direct {
			cand[0] &^= x
		} else {
			for ; x != 0; x &= x - 1 {
				i := pf.pos[bits.TrailingZeros64(x)]
				cand[i>>6] &^= 1 << (i & 63)
			}
		}
	}
	w.hmask = hdrAddr | hdrIface | hdrProto
	if trusted {
		w.hmask = hdrAddr | hdrIface
	}
	w.l3len = uint64(p.Len)
	w.curCtr = w.ctr[p.Family]
}

const resHotdropVerdict = targetKind(255)

// tick sets the jiffy span [jFrom, jTo) that now is in, and its jiffy
// jCur = w.pr.clock.Jiffies(now): consecutive packets skip the division.
func (w *Worker) tick(now int64) {
	w.jCur, w.jFrom, w.jTo = w.pr.clock.Tick(now)
}

// runChain is ipt_do_table for one hook: it returns tAccept, tDrop or
// resHotdropVerdict.
func (w *Worker) runChain(fp *familyProgram, entry int32, p *packet.Packet, j uint64) targetKind {
	return w.runFrom(fp, entry, entry, fp.chains[entry].start, 0, p, j)
}

// runFrom is the traversal loop, entered at rule i of chain cur with sp
// return points already on w.stack: runChain starts at the hook's first
// rule, ProcessFrom resumes where the XDP program handed the packet over.
// The skip tables are exact from any starting rule.
//
// A rule is its header checks (header) followed by its ops. The header
// is checked only when the rule has a check that can fail (rule.hdr) that
// the skip table row has not settled already; most rules go straight to
// their ops.
func (w *Worker) runFrom(fp *familyProgram, entry, cur, i int32, sp int, p *packet.Packet, j uint64) targetKind {
	ctr, l3len, cand, hmask, dec := w.curCtr, w.l3len, w.cand, w.hmask, w.dec
	end := fp.spans[cur].end
	for {
		if i < end {
			// The next candidate at or after i (beyond end: none in
			// this chain).
			wi := i >> 6
			if m := cand[wi] >> (uint32(i) & 63); m != 0 {
				i += int32(bits.TrailingZeros64(m))
			} else {
				i = nextCandidate(cand, wi+1, end)
			}
		}
		if i >= end {
			// The end of the built-in chain (nothing to return to) or
			// of a user chain: an implicit RETURN. With nothing to
			// return to (the built-in chain, or a chain entered by -g
			// from it), the hook's policy applies, as ipt_do_table's
			// underflow does.
			if sp == 0 {
				return w.policy(ctr, &fp.chains[entry], l3len)
			}
			sp--
			i, end = w.stack[sp].ret, w.stack[sp].end
			continue
		}
		r := &fp.rules[i]
		if r.hdr&hmask != 0 {
			switch w.header(r, p) {
			case resNo:
				i++
				continue
			case resHotdrop:
				return resHotdropVerdict
			}
		}
		// The common cheap matches run here, without a call that would
		// make the loop reload its state; the rest go through evalOp.
		res := uint8(resYes)
		ops := r.ops
		if r.dec&dec != 0 {
			// The packet's class settles the first match, and the row
			// let the rule through: it passes.
			ops = ops[1:]
		}
	ops:
		for k := range ops {
			o := &ops[k]
			switch o.kind {
			case opSetGroup:
				if w.now > o.until() {
					res = w.evalOp(o, p, j)
					break
				}
				v := w.groupValue(o.set, o.b2, o.has2)
				res = o.b1 >> (v >> o.b0 & 3) & 1
			case opTCP:
				// net/netfilter/xt_tcpudp.c tcp_mt.
				switch {
				case p.FragOff != 0:
					// An IPv4 fragment at offset 8 bytes could overwrite
					// TCP flags: the kernel hotdrops it ("evil TCP
					// offset=1 frag").
					res = resNo
					if p.Family == packet.FamilyIPv4 && p.FragOff == 8 {
						res = resHotdrop
					}
				case p.L4Len < 20:
					res = resHotdrop
				case inRange(p.SrcPort, o.r0) == o.inv || inRange(p.DstPort, o.r1) == o.inv3:
					res = resNo
				case o.has2 && ((p.TCPFlags&o.b0) == o.b1) == o.inv2:
					res = resNo
				case o.has3:
					res = tcpOption(p, o.b2, o.b3 != 0)
				}
			case opUDP:
				switch {
				case p.FragOff != 0:
					res = resNo
				case p.L4Len < 8:
					res = resHotdrop
				case inRange(p.SrcPort, o.r0) == o.inv || inRange(p.DstPort, o.r1) == o.inv3:
					res = resNo
				}
			case opLength:
				l := uint16(p.Len)
				res = b2r((l >= o.r0.Min && l <= o.r0.Max) != o.inv)
			case opPktType:
				res = b2r((uint8(p.PktType) == o.b0) != o.inv)
			default:
				res = w.evalOp(o, p, j)
			}
			if res != resYes {
				break ops
			}
		}
		if res != resYes {
			if res == resNo {
				i++
				continue
			}
			return resHotdropVerdict
		}
		c := &ctr[r.ctr]
		c[0]++
		c[1] += l3len
		switch r.kind {
		case tContinue:
			if r.log && w.logSink != nil {
				w.log(r, p, w.now)
			}
			i++
		case tAccept:
			w.lastRule = i
			return tAccept
		case tDrop:
			w.lastRule = i
			return tDrop
		case tReturn:
			if sp == 0 {
				return w.policy(ctr, &fp.chains[entry], l3len)
			}
			sp--
			i, end = w.stack[sp].ret, w.stack[sp].end
		case tJump:
			s := &fp.spans[r.jump]
			if s.word >= 0 && cand[s.word]&s.mask == 0 {
				// Nothing in the chain can match: entering it would
				// only return.
				i++
				continue
			}
			w.stack[sp] = stackEntry{ret: i + 1, end: end}
			sp++
			i, end = s.start, s.end
		case tGoto:
			s := fp.spans[r.jump]
			i, end = s.start, s.end
		}
	}
}

// groupValue is the packet's memo entry slot for m's set group: its
// answer for the source (the destination if dst), looked up on first use.
func (w *Worker) groupValue(m *ipset.Matcher, slot uint8, dst bool) uint32 {
	if v := w.setMemo[slot&memoMask]; v != 0 {
		return v
	}
	return w.groupLookup(m, slot, dst)
}

func (w *Worker) groupLookup(m *ipset.Matcher, slot uint8, dst bool) uint32 {
	a := w.src4
	if dst {
		a = w.dst4
	}
	v := m.GroupLookup4(a)
	w.setMemo[slot&memoMask] = v
	return v
}

// nextCandidate is the first candidate in words wi on, or end if there
// is none before end.
func nextCandidate(cand []uint64, wi, end int32) int32 {
	for ; wi<<6 < end; wi++ {
		if m := cand[wi]; m != 0 {
			return wi<<6 + int32(bits.TrailingZeros64(m))
		}
	}
	return end
}

// policy applies a built-in chain's policy and counts it, as the kernel
// counts the chain's underflow entry.
func (w *Worker) policy(ctr []counter, c *chain, l3len uint64) targetKind {
	n := &ctr[c.ctr]
	n[0]++
	n[1] += l3len
	if c.policy == rules.PolicyDrop {
		return tDrop
	}
	return tAccept
}

// header is ip_packet_match / ip6_packet_match: the rule's fixed header
// fields against the packet.
func (w *Worker) header(r *rule, p *packet.Packet) uint8 {
	f := r.flags
	if p.Family == packet.FamilyIPv4 {
		if (w.src4&r.smask4 != r.src4) != (f&fSrcInv != 0) {
			return resNo
		}
		if (w.dst4&r.dmask4 != r.dst4) != (f&fDstInv != 0) {
			return resNo
		}
	} else {
		if (w.src6[0]&r.smask6[0] != r.src6[0] || w.src6[1]&r.smask6[1] != r.src6[1]) != (f&fSrcInv != 0) {
			return resNo
		}
		if (w.dst6[0]&r.dmask6[0] != r.dst6[0] || w.dst6[1]&r.dmask6[1] != r.dst6[1]) != (f&fDstInv != 0) {
			return resNo
		}
	}
	if f&(fInIface|fOutIface) != 0 {
		if f&fInIface != 0 && r.inIface.match(&w.pr.inIface) == (f&fInInv != 0) {
			return resNo
		}
		// At PREROUTING and INPUT there is no output device: the kernel
		// compares against an all-zero name.
		var none [16]byte
		if f&fOutIface != 0 && r.outIface.match(&none) == (f&fOutInv != 0) {
			return resNo
		}
	}
	if p.Family == packet.FamilyIPv4 {
		if r.proto != 0 && (p.Proto != r.proto) != (f&fProtoInv != 0) {
			return resNo
		}
		if f&fFrag != 0 && (p.FragOff == 0) != (f&fFragInv != 0) {
			return resNo
		}
	} else if f&fProto != 0 {
		// ip6_packet_match: a header chain that cannot be walked
		// hotdrops an unfragmented packet.
		if !p.ProtoFound {
			if p.FragOff == 0 {
				return resHotdrop
			}
			return resNo
		}
		if p.Proto == r.proto {
			if f&fProtoInv != 0 {
				return resNo
			}
		} else if r.proto != 0 && f&fProtoInv == 0 {
			return resNo
		}
	}
	return resYes
}

// LastRule returns the rule whose ACCEPT or DROP decided the packet
// Process last saw, as (table, chain, 1-based position); ok is false when
// a policy or no rule decided it.
func (w *Worker) LastRule() (table, chain string, n int, ok bool) {
	return w.pr.RuleName(w.lastFam, w.lastRule)
}

// RuleName places a rule index (LastRuleIndex's) as LastRule does.
func (pr *Program) RuleName(fam packet.Family, i int32) (table, chain string, n int, ok bool) {
	if i < 0 || fam == packet.FamilyNone {
		return "", "", 0, false
	}
	fp := pr.fam[fam]
	if fp == nil {
		return "", "", 0, false
	}
	for ci := range fp.chains {
		c := &fp.chains[ci]
		if i >= c.start && i < c.end {
			return c.table, c.name, int(i-c.start) + 1, true
		}
	}
	return "", "", 0, false
}

// LastRuleIndex is LastRule's cheap form: the family and the rule's index
// in the program, -1 when no rule decided. RuleIndex maps a rule to it.
func (w *Worker) LastRuleIndex() (packet.Family, int32) { return w.lastFam, w.lastRule }

// RuleIndex returns the program index of rule n (1-based) of chain in
// table for family, or -1.
func (pr *Program) RuleIndex(fam packet.Family, table, chain string, n int) int32 {
	fp := pr.fam[fam]
	if fp == nil {
		return -1
	}
	for i := range fp.chains {
		c := &fp.chains[i]
		if c.name == chain && (table == "" || c.table == table) && n >= 1 && int32(n) <= c.end-c.start {
			return c.start + int32(n) - 1
		}
	}
	return -1
}
