package engine

import (
	"github.com/sluice-project/sluice/packet"
	"github.com/sluice-project/sluice/report"
	"github.com/sluice-project/sluice/rules"
)

// Report sums the counters of workers that evaluate pr, read at call time.
// Tables and chains appear in file order, rules in chain order.
func (pr *Program) Report(ws ...*Worker) *report.Report {
	rep := &report.Report{MalformedBy: map[string]uint64{}}
	// Each worker's counters are copied under its lock, between the
	// packets (or batches) it judges.
	snaps := make([]workerCounters, len(ws))
	for k, w := range ws {
		snaps[k] = w.counters()
	}
	for _, w := range snaps {
		// Every packet gets exactly one verdict: the packet count is
		// their sum, so the packet path keeps one counter fewer.
		v := w.verdicts
		for i := range v {
			rep.Packets += v[i]
		}
		rep.Accepted += v[Accept]
		rep.Dropped += v[Drop]
		rep.Hotdropped += v[Hotdrop]
		rep.Malformed += v[Malformed]
		rep.NotFiltered += v[NotFiltered]
		for i := range w.bad {
			if n := w.bad[i]; n > 0 {
				rep.MalformedBy[packet.Malformed(i).String()] += n
			}
		}
	}
	// packets = accepted + dropped + malformed: a hotdrop is a drop, and
	// frames sluice does not filter go on to the kernel like accepted ones.
	rep.Dropped += rep.Hotdropped
	rep.Accepted += rep.NotFiltered
	if len(rep.MalformedBy) == 0 {
		rep.MalformedBy = nil
	}
	for f := packet.FamilyIPv4; f <= packet.FamilyIPv6; f++ {
		fp := pr.fam[f]
		if fp == nil {
			continue
		}
		sum := func(i int32) (packets, bytes uint64) {
			for _, w := range snaps {
				if w.pr == pr {
					packets += w.ctr[f][i][0]
					bytes += w.ctr[f][i][1]
				}
			}
			return packets, bytes
		}
		ci := 0
		for _, t := range fp.rs.Tables {
			rt := report.Table{Family: f.String(), Table: t.Name}
			for range t.Chains {
				c := &fp.chains[ci]
				ci++
				rc := report.Chain{Name: c.name, Policy: c.policy.String(), Rules: []report.Rule{}}
				if c.builtin {
					rc.PolicyPackets, rc.PolicyBytes = sum(c.ctr)
				}
				for ri := c.start; ri < c.end; ri++ {
					r := &fp.rules[ri]
					packets, bytes := sum(r.ctr)
					rc.Rules = append(rc.Rules, report.Rule{Line: r.src.Line, Text: r.src.Text,
						Comment: ruleComment(r.src), Packets: packets, Bytes: bytes})
				}
				rt.Chains = append(rt.Chains, rc)
			}
			rep.Tables = append(rep.Tables, rt)
		}
	}
	if rep.Tables == nil {
		rep.Tables = []report.Table{}
	}
	return rep
}

func ruleComment(r *rules.Rule) string {
	for _, m := range r.Matches {
		if c, ok := m.(*rules.Comment); ok {
			return c.Text
		}
	}
	return ""
}

// workerCounters is a copy of a worker's counters.
type workerCounters struct {
	pr       *Program
	ctr      [3][]counter
	verdicts [numVerdicts]uint64
	bad      [packet.NumMalformed]uint64
}

// counters copies w's counters under its lock.
func (w *Worker) counters() workerCounters {
	w.mu.Lock()
	defer w.mu.Unlock()
	c := workerCounters{pr: w.pr, verdicts: w.verdicts, bad: w.bad}
	for f := range w.ctr {
		c.ctr[f] = append([]counter(nil), w.ctr[f]...)
	}
	return c
}
