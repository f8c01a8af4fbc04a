package rules

// SetResolver finds ipset sets by name for -m set.
type SetResolver interface {
	HasSet(name string) bool
}

// newExtMatch returns parsers for the matches whose state or programs
// live in engine packages.
func (p *parser) newExtMatch(name string) MatchParser {
	return nil
}
