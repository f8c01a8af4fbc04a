package engine

import (
	"encoding/binary"
	"fmt"
	"net/netip"

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
// common case (addresses, protocol) is a few integer compares.
type rule struct {
	flags uint16
	proto uint8
	kind  targetKind
	log   bool  // LOG or NFLOG: write a line when a sink is set
	jump  int32 // chain index for tJump / tGoto
	ctr   int32 // counter slot: packets at ctr, bytes at ctr+1

	src4, smask4, dst4, dmask4 uint32
	src6, smask6, dst6, dmask6 [2]uint64

	inIface, outIface ifname
	ops               []op

	src *rules.Rule
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
	nctr   int

	// skip tables (buildSkip)
	skip     []int32
	nskip    int32
	protoCls [256]uint8
	nflag    uint16
	tcpBase  int32
	noneCls  int32
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
			ctr += 2
			fp.rules = append(fp.rules, cr)
		}
		c.end = int32(len(fp.rules))
		c.ctr = int32(ctr)
		ctr += 2
	}
	fp.nctr = ctr
	fp.buildSkip()
	for h, hk := range rules.IngressHooks {
		if ci, ok := index[key{hk.Table, hk.Chain}]; ok {
			fp.hooks[h] = ci
			fp.nhooks = int32(h + 1)
		}
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
	cr := rule{src: r}
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
// and fragment state, or whose first match is a tcp match whose
// --tcp-flags test fails on a readable TCP header, returns "no match"
// without side effects or hotdrops whatever else it checks: the header
// is compared before any match, and a first match cannot be preceded by
// a stateful one. Such rules are skipped outright. A packet gets a class
// once per chain traversal; skip[class*len(rules)+i] is the first rule at
// or after i in i's chain that its class does not exclude, or the chain's
// end.

// maxSkipEntries bounds the tables' size; past it the tcp flag classes
// are left out.
const maxSkipEntries = 1 << 22

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
	// tcp flag classes, when a rule starts with a --tcp-flags test.
	var fmask uint8
	for i := range fp.rules {
		if r := &fp.rules[i]; len(r.ops) > 0 && r.ops[0].kind == opTCP && r.ops[0].has2 {
			fmask |= r.ops[0].b0
		}
	}
	nflag := 0
	if fmask != 0 {
		nflag = 256
		if fmask&0xc0 == 0 {
			nflag = 64
		}
		if (2*np+nflag+1)*nr > maxSkipEntries {
			nflag = 0
		}
	}
	fp.nflag = uint16(nflag)
	fp.tcpBase = int32(2 * np)
	fp.noneCls = int32(2*np + nflag)
	ncls := 2*np + nflag + 1
	fp.nskip = int32(nr)
	fp.skip = make([]int32, ncls*nr)
	for cls := 0; cls < ncls; cls++ {
		proto, frag, flags, hasFlags, none := uint8(0), false, uint8(0), false, false
		switch {
		case cls < 2*np:
			proto, frag = reps[cls/2], cls%2 == 1
		case cls < 2*np+nflag:
			proto, flags, hasFlags = 6, uint8(cls-2*np), true
		default:
			none = true
		}
		sk := fp.skip[cls*nr : (cls+1)*nr]
		for ci := range fp.chains {
			c := &fp.chains[ci]
			next := c.end
			for i := c.end - 1; i >= c.start; i-- {
				if none || canMatch(&fp.rules[i], fp.fam, proto, frag, flags, hasFlags) {
					next = i
				}
				sk[i] = next
			}
		}
	}
}

// canMatch reports whether rule r can match a packet of protocol proto
// (found, for IPv6), a non-first fragment if frag, and, if hasFlags, an
// unfragmented packet with a readable TCP header carrying flags. It
// mirrors match's header checks and tcp_mt's flag test.
func canMatch(r *rule, fam packet.Family, proto uint8, frag bool, flags uint8, hasFlags bool) bool {
	f := r.flags
	if fam == packet.FamilyIPv4 {
		if r.proto != 0 && (proto != r.proto) != (f&fProtoInv != 0) {
			return false
		}
		if f&fFrag != 0 && !frag != (f&fFragInv != 0) {
			return false
		}
	} else if f&fProto != 0 {
		if proto == r.proto {
			if f&fProtoInv != 0 {
				return false
			}
		} else if r.proto != 0 && f&fProtoInv == 0 {
			return false
		}
	}
	if hasFlags && len(r.ops) > 0 && r.ops[0].kind == opTCP && r.ops[0].has2 {
		o := &r.ops[0]
		if (flags&o.b0 == o.b1) == o.inv2 {
			return false
		}
	}
	return true
}

// skipFor returns the skip table row of p's class.
func (fp *familyProgram) skipFor(p *packet.Packet) []int32 {
	cls := fp.noneCls
	switch {
	case p.Family == packet.FamilyIPv6 && !p.ProtoFound:
	case p.Proto == packet.ProtoTCP && fp.nflag != 0 && p.FragOff == 0 && p.L4Len >= 20:
		cls = fp.tcpBase + int32(p.TCPFlags&uint8(fp.nflag-1))
	default:
		cls = 2 * int32(fp.protoCls[p.Proto])
		if p.FragOff != 0 {
			cls++
		}
	}
	n := fp.nskip
	return fp.skip[cls*n : cls*n+n : cls*n+n]
}
