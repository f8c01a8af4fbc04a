package engine

import (
	"fmt"

	"github.com/sluice-project/sluice/packet"
	"github.com/sluice-project/sluice/rules"
)

// ResumeSite is a point in the ingress traversal where another evaluator
// (the XDP program, xdp.Spec.Fallback) stopped and the engine goes on:
// resolved against one Program by Program.ResumeSite.
type ResumeSite struct {
	pr    *Program
	fam   packet.Family
	whole bool  // start from the beginning: ProcessFrom is Process
	hook  int   // ingress hook (rules.IngressHooks)
	route bool  // hook 2 from its start: routing decision and reassembly first
	chain int32 // chain index of the rule to resume at
	rule  int32 // rule index to resume at
	stack []stackEntry
}

// ResumeSiteSpec names a resume point: in ingress hook Hook (an index
// into rules.IngressHooks; -1 for the whole packet), at Rule of Table's
// Chain with the return points of the jump rules in Stack pending
// (outermost first). Rule nil resumes at the start of the hook, for hook
// 2 with the routing decision and reassembly that come before INPUT.
type ResumeSiteSpec struct {
	Family packet.Family
	Hook   int
	Table  string
	Chain  string
	Rule   *rules.Rule
	Stack  []*rules.Rule
}

// ResumeSite resolves s against pr.
func (pr *Program) ResumeSite(s ResumeSiteSpec) (ResumeSite, error) {
	rs := ResumeSite{pr: pr, fam: s.Family, hook: s.Hook}
	if s.Hook < 0 {
		rs.whole = true
		return rs, nil
	}
	fp := pr.fam[s.Family]
	if fp == nil {
		return rs, fmt.Errorf("resume site: no %s ruleset", s.Family)
	}
	if s.Hook >= len(fp.hooks) {
		return rs, fmt.Errorf("resume site: hook %d out of range", s.Hook)
	}
	if s.Rule == nil {
		if s.Hook != 2 && len(s.Stack) > 0 {
			return rs, fmt.Errorf("resume site: a stack without a rule")
		}
		rs.route = s.Hook == 2
		rs.rule = -1
		return rs, nil
	}
	find := func(r *rules.Rule) (chain, idx int32, err error) {
		for ci := range fp.chains {
			c := &fp.chains[ci]
			for i := c.start; i < c.end; i++ {
				if fp.rules[i].src == r {
					return int32(ci), i, nil
				}
			}
		}
		return 0, 0, fmt.Errorf("resume site: rule at line %d is not in the program", r.Line)
	}
	var err error
	if rs.chain, rs.rule, err = find(s.Rule); err != nil {
		return rs, err
	}
	if c := &fp.chains[rs.chain]; c.name != s.Chain || (s.Table != "" && c.table != s.Table) {
		return rs, fmt.Errorf("resume site: rule at line %d is in %s %s, not %s %s", s.Rule.Line, c.table, c.name, s.Table, s.Chain)
	}
	for _, j := range s.Stack {
		ci, i, err := find(j)
		if err != nil {
			return rs, err
		}
		if k := fp.rules[i].kind; k != tJump {
			return rs, fmt.Errorf("resume site: stack rule at line %d is not a -j to a user chain", j.Line)
		}
		rs.stack = append(rs.stack, stackEntry{ret: i + 1, end: fp.chains[ci].end})
	}
	if len(rs.stack)+1 > len(fp.chains)+1 {
		return rs, fmt.Errorf("resume site: stack deeper than the chains")
	}
	return rs, nil
}

// ProcessFrom finishes the traversal of a packet that another evaluator
// took as far as site: the hooks before site.Hook, and the rules before
// the site's rule in the chains on its way, have been evaluated and
// counted there; the engine counts the packet, its verdict and every rule
// and policy from the site on, exactly as Process would have counted
// them for the same traversal. p is the decoded frame.
func (w *Worker) ProcessFrom(p *packet.Packet, now int64, site ResumeSite) Verdict {
	if site.whole || site.pr != w.pr || p.Family != site.fam || p.Malformed != packet.MalformedNone {
		// Nothing ran before (or the site is not this program's, or
		// the frame is not what the evaluator saw): the whole packet.
		return w.Process(p, now)
	}
	w.mu.Lock()
	v := w.walk(p, now, &site)
	w.verdicts[v]++
	w.mu.Unlock()
	return v
}
