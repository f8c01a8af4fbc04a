package xdp

import (
	"github.com/sluice-project/sluice/packet"
	"github.com/sluice-project/sluice/report"
	"github.com/sluice-project/sluice/rules"
)

// Report turns counter values (summed over CPUs, as Filter.ReadCounters
// returns them) into the report engine.Program.Report would print for the
// same packets, given the rulesets Compile was given. Packets handed to
// userspace at a fallback site are not in it: userspace counts what they
// do from there.
func (s *Spec) Report(vals []uint64, rs4, rs6 *rules.Ruleset) *report.Report {
	get := func(i int) uint64 {
		if i < len(vals) {
			return vals[i]
		}
		return 0
	}
	rep := &report.Report{
		Packets:     get(StatPackets) - get(StatFallback),
		Accepted:    get(StatAccepted) + get(StatNotFiltered),
		Dropped:     get(StatDropped) + get(StatHotdropped),
		Hotdropped:  get(StatHotdropped),
		Malformed:   get(StatMalformed),
		NotFiltered: get(StatNotFiltered),
		MalformedBy: map[string]uint64{},
		Tables:      []report.Table{},
	}
	for m := packet.Malformed(1); int(m) < packet.NumMalformed; m++ {
		if n := get(StatMalformedBy + int(m)); n > 0 {
			rep.MalformedBy[m.String()] = n
		}
	}
	if len(rep.MalformedBy) == 0 {
		rep.MalformedBy = nil
	}
	for _, rs := range []*rules.Ruleset{rs4, rs6} {
		if rs == nil {
			continue
		}
		fl := s.Families[rs.Family]
		slot := fl.Base
		for _, t := range rs.Tables {
			rt := report.Table{Family: rs.Family.String(), Table: t.Name}
			for _, c := range t.Chains {
				rc := report.Chain{Name: c.Name, Policy: c.Policy.String(), Rules: []report.Rule{}}
				for _, r := range c.Rules {
					rc.Rules = append(rc.Rules, report.Rule{Line: r.Line, Text: r.Text, Packets: get(slot), Bytes: get(slot + 1)})
					slot += 2
				}
				if c.Builtin {
					rc.PolicyPackets, rc.PolicyBytes = get(slot), get(slot+1)
				}
				slot += 2
				rt.Chains = append(rt.Chains, rc)
			}
			rep.Tables = append(rep.Tables, rt)
		}
	}
	return rep
}
