package engine

import (
	"fmt"

	"github.com/sluice-project/sluice/engine/hashlimit"
	"github.com/sluice-project/sluice/engine/ipset"
	"github.com/sluice-project/sluice/engine/limit"
	"github.com/sluice-project/sluice/engine/recent"
	"github.com/sluice-project/sluice/packet"
	"github.com/sluice-project/sluice/rules"
)

// extState holds what stateful matches share across rules and reloads.
type extState struct {
	sets      *ipset.Registry
	hashlimit *hashlimit.Registry
	recent    *recent.Registry
	// limits keeps each limit rule's bucket by the rule's identity, so a
	// reload that keeps the rule keeps its credit; nextLimits collects the
	// buckets of a compile in progress and replaces limits when it
	// succeeds.
	limits, nextLimits map[string]*limit.State
	// FullPolicy is applied to every hashlimit table.
	full hashlimit.FullPolicy
}

func (e *extState) init(sets *ipset.Registry, hz uint64) {
	e.sets = sets
	e.hashlimit = hashlimit.NewRegistry(hz)
	e.recent = recent.NewRegistry(hz)
	e.limits = map[string]*limit.State{}
}

func compileExt(fam packet.Family, m rules.Match, st *State, now int64, id string) (op, bool, error) {
	j := st.clock().Jiffies(now)
	switch m := m.(type) {
	case *rules.U32:
		return op{kind: opU32, inv: m.Invert, x: &opExt{u32: m.M}}, true, nil
	case *rules.BPF:
		return op{kind: opBPF, x: &opExt{bpf: m.F}}, true, nil
	case *rules.String:
		return op{kind: opString, inv: m.Invert, x: &opExt{str: m.M}}, true, nil
	case *rules.Limit:
		s := st.ext.limits[id]
		if s == nil || s.Config() != m.Cfg {
			var err error
			if s, err = limit.New(m.Cfg, st.hz, j); err != nil {
				return op{}, false, err
			}
		}
		st.ext.nextLimits[id] = s
		return op{kind: opLimit, x: &opExt{lim: s}}, true, nil
	case *rules.Hashlimit:
		t, err := st.ext.hashlimit.Get(m.Cfg, j)
		if err != nil {
			return op{}, false, err
		}
		t.SetFullPolicy(st.ext.full)
		return op{kind: opHashlimit, hl: t}, true, nil
	case *rules.Recent:
		r, err := st.ext.recent.Get(m.Cfg)
		if err != nil {
			return op{}, false, err
		}
		return op{kind: opRecent, x: &opExt{rec: r}}, true, nil
	case *rules.Set:
		return op{kind: opSet, set: ipset.NewMatcher(m.Set, m.Dirs, m.Flags)}, true, nil
	}
	return op{}, false, fmt.Errorf("match %s: %w", m.Name(), errUnsupported)
}

// evalExt runs the byte-level and the less common stateful matches.
func (w *Worker) evalExt(o *op, p *packet.Packet, j uint64) uint8 {
	x := o.x
	switch o.kind {
	case opU32:
		return b2r(x.u32.Match(p.L3) != o.inv)
	case opBPF:
		return b2r(x.bpf.Match(p.L3))
	case opString:
		return b2r(x.str.Match(p.L3) != o.inv)
	case opLimit:
		return b2r(x.lim.Match(j))
	case opRecent:
		m, hot := x.rec.Match(p, j)
		if hot {
			return resHotdrop
		}
		return b2r(m)
	}
	return resNo
}
