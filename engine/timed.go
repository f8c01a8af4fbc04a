package engine

import "github.com/sluice-project/sluice/rules"

// HasTimedMatches reports whether a ruleset's outcome depends on packet
// timing (limit, hashlimit, recent), so a verification must pace frames.
func HasTimedMatches(rs *rules.Ruleset) bool {
	if rs == nil {
		return false
	}
	for _, t := range rs.Tables {
		for _, c := range t.Chains {
			for _, r := range c.Rules {
				for _, m := range r.Matches {
					switch m.Name() {
					case "limit", "hashlimit", "recent":
						return true
					}
				}
			}
		}
	}
	return false
}
