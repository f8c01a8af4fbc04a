package engine

import "github.com/sluice-project/sluice/packet"

// DisableSkip makes every skip table row all ones and turns the
// prefilter off, so pr evaluates every rule as if there were neither: the
// reference the skip tables and the prefilter are checked against.
func DisableSkip(pr *Program) {
	for _, fp := range pr.fam {
		if fp == nil {
			continue
		}
		fp.skipTrusted = false
		fp.pf.on = false
		for i := range fp.rules {
			fp.rules[i].pbit = noPbit
			fp.rules[i].dec = 0 // all-ones rows settle no match
		}
		for _, row := range fp.rows {
			for i := range fp.rules {
				row[i>>6] |= 1 << (i & 63)
			}
		}
	}
}

// PrefilterRules is the number of IPv4 rules with a prefilter bit, and
// how many of those count only for whole transport headers.
func PrefilterRules(pr *Program) (n, cond int) {
	fp := pr.fam[packet.FamilyIPv4]
	if fp == nil || !fp.pf.on {
		return 0, 0
	}
	for i := range fp.rules {
		if b := fp.rules[i].pbit; b != noPbit {
			n++
			if fp.pf.cond>>b&1 != 0 {
				cond++
			}
		}
	}
	return n, cond
}

// DisablePrefilter turns the prefilter off and keeps the skip tables:
// the other half of BenchmarkPaired's prefilter comparison.
func DisablePrefilter(pr *Program) {
	for _, fp := range pr.fam {
		if fp == nil {
			continue
		}
		fp.pf.on = false
	}
}
