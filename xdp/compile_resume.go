package xdp

import (
	"fmt"

	"github.com/sluice-project/sluice/engine"
	"github.com/sluice-project/sluice/report"
)

// ResumeSites resolves every fallback site against pr, an engine program
// compiled from the same rulesets: ResumeSites(pr)[site] is what
// engine.Worker.ProcessFrom takes for a frame the program handed over at
// site.
//
// It refuses a program holding rate-limit state that a site reaches
// (CheckResume): resuming there would evaluate the rule a second time,
// against userspace's own bucket.
func (s *Spec) ResumeSites(pr *engine.Program) ([]engine.ResumeSite, error) {
	if err := s.CheckResume(); err != nil {
		return nil, err
	}
	out := make([]engine.ResumeSite, len(s.Fallback))
	for i, fs := range s.Fallback {
		rs, err := pr.ResumeSite(engine.ResumeSiteSpec{Family: fs.Family, Hook: fs.Hook, Table: fs.Table,
			Chain: fs.Chain, Rule: fs.Rule, Stack: fs.Stack})
		if err != nil {
			return nil, fmt.Errorf("fallback site %d (%s): %w", i, fs.Reason, err)
		}
		out[i] = rs
	}
	return out, nil
}

// SiteFromMeta reads the fallback site the program wrote in front of a
// frame: meta is the XDP metadata area (the 4 bytes before the frame).
func SiteFromMeta(meta []byte) (int, bool) {
	if len(meta) < 4 {
		return 0, false
	}
	return int(meta[0]) | int(meta[1])<<8 | int(meta[2])<<16 | int(meta[3])<<24, true
}

// AddReport adds src's counters to dst: the totals, and the rule and
// policy counters of the tables, chains and rules both have (matched by
// family and table, chain name, position). A fallback deployment's report
// is the program's (Spec.Report) added to userspace's (engine.Program.Report).
func AddReport(dst, src *report.Report) {
	dst.Packets += src.Packets
	dst.Accepted += src.Accepted
	dst.Dropped += src.Dropped
	dst.Malformed += src.Malformed
	dst.Hotdropped += src.Hotdropped
	dst.NotFiltered += src.NotFiltered
	for k, v := range src.MalformedBy {
		if dst.MalformedBy == nil {
			dst.MalformedBy = map[string]uint64{}
		}
		dst.MalformedBy[k] += v
	}
	for _, st := range src.Tables {
		dt := dst.Find(st.Family, st.Table)
		if dt == nil {
			continue
		}
		for _, sc := range st.Chains {
			for ci := range dt.Chains {
				dc := &dt.Chains[ci]
				if dc.Name != sc.Name {
					continue
				}
				dc.PolicyPackets += sc.PolicyPackets
				dc.PolicyBytes += sc.PolicyBytes
				for ri := range sc.Rules {
					if ri < len(dc.Rules) {
						dc.Rules[ri].Packets += sc.Rules[ri].Packets
						dc.Rules[ri].Bytes += sc.Rules[ri].Bytes
					}
				}
			}
		}
	}
}

// Blocking lists the live fallback sites an XDP-only deployment cannot
// serve: every site no packet is proven unable to reach.
func (s *Spec) Blocking() []FallbackSite {
	var out []FallbackSite
	for _, fs := range s.Fallback {
		if !fs.Dead {
			out = append(out, fs)
		}
	}
	return out
}
