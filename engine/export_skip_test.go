package engine

// DisableSkip makes every skip table row the identity, so pr evaluates
// every rule as if there were no skip tables: the reference the skip
// tables are checked against.
func DisableSkip(pr *Program) {
	for _, fp := range pr.fam {
		if fp == nil {
			continue
		}
		fp.skipTrusted = false
		n := int(fp.nskip)
		none := fp.skip[int(fp.noneCls)*n : int(fp.noneCls)*n+n]
		for c := 0; c*n < len(fp.skip); c++ {
			copy(fp.skip[c*n:c*n+n], none)
		}
	}
}
