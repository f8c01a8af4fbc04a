package rules

import (
	"github.com/sluice-project/sluice/engine/ipset"
)

// SetResolver finds ipset sets by name for -m set; *ipset.Registry is one.
type SetResolver interface {
	Get(name string) *ipset.Set
}

// newExtMatch returns parsers for the matches whose state or programs
// live in engine packages: each option's text is handed to the package
// that owns its semantics, so there is one parser per format.
func (p *parser) newExtMatch(name string) MatchParser {
	switch name {
	case "u32":
		return u32Match()
	case "bpf":
		return bpfMatch()
	case "string":
		return stringMatch()
	case "limit":
		return p.limitMatch()
	case "hashlimit":
		return p.hashlimitMatch()
	case "recent":
		return p.recentMatch()
	case "set":
		return p.setMatch()
	}
	return nil
}
