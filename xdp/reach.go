package xdp

import (
	"fmt"

	"github.com/sluice-project/sluice/packet"
	"github.com/sluice-project/sluice/rules"
)

// Reachability from fallback sites.
//
// A frame the program hands over at a fallback site is evaluated on in
// userspace (engine.Worker.ProcessFrom): from the site's rule, with the
// site's return points pending, through the rest of the ingress hooks.
// Every rule that evaluation can get to is "reachable" from the site. A
// rate-limit rule that no live site reaches is evaluated by the program
// alone, for every frame, so its bucket can live in a BPF map and the
// result is still exact (RateLimitsAuto, ratelimit.go).
//
// The analysis follows iptables' traversal (ipt_do_table) on the rule
// structure, not on packet contents: a rule may match unless it has no
// condition at all (no address, protocol, fragment or interface test and
// only comment matches), so the only paths it prunes are those after an
// unconditional verdict (a chain's trailing `-j DROP`, `-j RETURN`, a
// `-g`). From a site it walks:
//
//   - the site's rule itself (userspace re-evaluates the whole rule), the
//     rest of its chain, into every chain a rule may jump to (`-j`, which
//     comes back to the next rule when the callee can return) or go to
//     (`-g`, whose return is the caller's);
//   - RETURN and the end of a user chain back to the jump rule of the
//     site's pending stack (the program inlines chains per call site, so
//     a site knows its exact call stack), and with no stack left to the
//     hook chain's policy;
//   - ACCEPT, or an ACCEPT policy, on to the next ingress hooks of the
//     family in order (raw PREROUTING, mangle PREROUTING, mangle INPUT,
//     filter INPUT); a chain reached from its start (a later hook, a
//     called chain) is walked whole, so a chain called from several
//     places counts once for each.
//
// A site before a hook (Rule nil: the IPv4 options and fragment sites)
// starts at that hook's chain. A whole-packet site (Hook -1) reaches
// every rule of every hook of its family, or of both families when it
// has none; the program has none today (VLAN stacks of any depth are
// parsed, see parseL2), but the analysis stays right if one appears.

// reachSet is the set of rules some site reaches, with the first site
// found for each (for the reason shown to the operator).
type reachSet map[*rules.Rule]int

// flowOut is what walking a chain from a rule can end in, besides a
// DROP: falling off its end or a RETURN (ret), or an ACCEPT (accept).
type flowOut struct{ ret, accept bool }

// walker walks one ruleset from one site.
type walker struct {
	rs   *rules.Ruleset
	memo map[chainPos]flowOut
	seen func(r *rules.Rule)
}

type chainPos struct {
	c *rules.Chain
	i int
}

// unconditional reports whether r matches every packet that reaches it.
func unconditional(r *rules.Rule) bool {
	if r.Src.Set || r.Dst.Set || r.Proto != 0 || r.ProtoInv || r.ProtoGiven || r.Frag || r.FragInv ||
		r.InIface.Set || r.OutIface.Set || r.HasOutIface {
		return false
	}
	for _, m := range r.Matches {
		if _, ok := m.(*rules.Comment); !ok {
			return false
		}
	}
	return true
}

// chain walks c of table t from rule i, marking every rule it may
// evaluate, and returns how the walk may end. Chains form a DAG
// (iptables refuses loops), so the recursion ends.
func (w *walker) chain(t *rules.Table, c *rules.Chain, i int) flowOut {
	key := chainPos{c, i}
	if f, ok := w.memo[key]; ok {
		return f
	}
	var out flowOut
	w.memo[key] = out // a loop (refused by the parser) ends here
	fell := true
	for ; i < len(c.Rules); i++ {
		r := c.Rules[i]
		w.seen(r)
		always := unconditional(r)
		stop := false
		switch r.Target.Kind {
		case rules.TargetAccept:
			out.accept = true
			stop = always
		case rules.TargetDrop, rules.TargetReject:
			stop = always
		case rules.TargetReturn:
			out.ret = true
			stop = always
		case rules.TargetJump, rules.TargetGoto:
			callee := t.Chain(r.Target.Chain)
			if callee == nil {
				continue // the parser refuses it; nothing to walk
			}
			sub := w.chain(t, callee, 0)
			out.accept = out.accept || sub.accept
			if r.Target.Kind == rules.TargetGoto {
				out.ret = out.ret || sub.ret
				stop = always
			} else {
				stop = always && !sub.ret
			}
		}
		if stop {
			fell = false
			break
		}
	}
	if fell {
		out.ret = true
	}
	w.memo[key] = out
	return out
}

// position finds r in rs: its table, chain and index.
func position(rs *rules.Ruleset, r *rules.Rule) (*rules.Table, *rules.Chain, int) {
	for _, t := range rs.Tables {
		for _, c := range t.Chains {
			for i, rr := range c.Rules {
				if rr == r {
					return t, c, i
				}
			}
		}
	}
	return nil, nil, 0
}

// hooksFrom walks the hook chains of rs from hook h on, as long as the
// packet may pass each (ACCEPT, or the end of the chain with an ACCEPT
// policy). The routing decision before INPUT may only stop a packet, so
// it is not modelled.
func (w *walker) hooksFrom(h int) {
	for ; h < len(rules.IngressHooks); h++ {
		hk := rules.IngressHooks[h]
		t := w.rs.Table(hk.Table)
		if t == nil {
			continue
		}
		c := t.Chain(hk.Chain)
		if c == nil {
			continue
		}
		f := w.chain(t, c, 0)
		if !f.accept && !(f.ret && c.Policy != rules.PolicyDrop) {
			return
		}
	}
}

// fromSite walks rs from site s, calling seen for every rule it may
// evaluate.
func fromSite(rs *rules.Ruleset, s *FallbackSite, seen func(*rules.Rule)) {
	w := &walker{rs: rs, memo: map[chainPos]flowOut{}, seen: seen}
	if s.Hook < 0 {
		w.hooksFrom(0)
		return
	}
	if s.Rule == nil {
		w.hooksFrom(s.Hook)
		return
	}
	t, c, i := position(rs, s.Rule)
	if c == nil {
		// Not in the ruleset: cannot happen; be conservative.
		w.hooksFrom(0)
		return
	}
	f := w.chain(t, c, i)
	accept, cont := f.accept, f.ret
	for k := len(s.Stack) - 1; k >= 0 && cont; k-- {
		jt, jc, ji := position(rs, s.Stack[k])
		if jc == nil {
			w.hooksFrom(0)
			return
		}
		f := w.chain(jt, jc, ji+1)
		accept, cont = accept || f.accept, f.ret
	}
	if cont {
		// Off the end of (or RETURN from) the hook chain: its policy.
		hk := rules.IngressHooks[s.Hook]
		if ht := rs.Table(hk.Table); ht != nil {
			if hc := ht.Chain(hk.Chain); hc != nil && hc.Policy != rules.PolicyDrop {
				accept = true
			}
		}
	}
	if accept {
		w.hooksFrom(s.Hook + 1)
	}
}

// reachable returns the rules of rs4 and rs6 that some live site of
// sites may lead userspace to evaluate, each with the first such site.
func reachable(rs4, rs6 *rules.Ruleset, sites []FallbackSite) reachSet {
	out := reachSet{}
	for id := range sites {
		s := &sites[id]
		if s.Dead {
			continue
		}
		for _, rs := range []*rules.Ruleset{rs4, rs6} {
			if rs == nil || (s.Family != packet.FamilyNone && s.Family != rs.Family) {
				continue
			}
			fromSite(rs, s, func(r *rules.Rule) {
				if _, ok := out[r]; !ok {
					out[r] = id
				}
			})
		}
	}
	return out
}

// describeSite names a fallback site for a reason string: where it is and
// why it exists. Site numbers change from one compilation to the next,
// so it names the place.
func describeSite(s *FallbackSite) string {
	where := "the whole-packet fallback site"
	switch {
	case s.Rule != nil:
		where = fmt.Sprintf("the fallback site of %s %s %s line %d", s.Family, s.Table, s.Chain, s.Rule.Line)
	case s.Hook >= 0:
		where = fmt.Sprintf("the %s fallback site before %s %s", s.Family, s.Table, s.Chain)
	}
	return fmt.Sprintf("%s (%s)", where, s.Reason)
}
