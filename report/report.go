// Package report holds the counters schema that every producer of counters
// shares: `sluice replay`, the live daemon's `sluice stats`, and the kernel
// side of `sluice verify`. One schema means the two sides of a verification
// can be compared field by field, and tools that read one read all.
package report

// Report is the `--json` output of `sluice replay`, and each side of
// `sluice verify --json`.
type Report struct {
	Packets   uint64 `json:"packets"`
	Accepted  uint64 `json:"accepted"`
	Dropped   uint64 `json:"dropped"`
	Malformed uint64 `json:"malformed"`
	// MalformedBy breaks Malformed down by packet.Malformed reason name.
	MalformedBy map[string]uint64 `json:"malformed_by,omitempty"`
	// Hotdropped counts packets a match dropped because it could not read
	// the header it needed; no rule or policy counts them, as in the kernel.
	Hotdropped uint64 `json:"hotdropped"`
	// NotFiltered counts frames that are neither IPv4 nor IPv6, or whose
	// family has no ruleset loaded; they go on to the kernel untouched.
	NotFiltered uint64  `json:"not_filtered"`
	Tables      []Table `json:"tables"`
	// PacketsPerSecond is the engine's own rate over the run, when known.
	PacketsPerSecond float64 `json:"packets_per_second,omitempty"`
}

// Table is one (family, table) pair, e.g. ipv4 raw.
type Table struct {
	Family string  `json:"family"` // "ipv4" or "ipv6"
	Table  string  `json:"table"`  // raw, mangle, filter, ...
	Chains []Chain `json:"chains"`
}

// Chain is one chain with its policy counters (built-in chains) and its
// rules in chain order.
type Chain struct {
	Name          string `json:"name"`
	Policy        string `json:"policy"` // ACCEPT, DROP, or "-" for user chains
	PolicyPackets uint64 `json:"policy_packets"`
	PolicyBytes   uint64 `json:"policy_bytes"`
	Rules         []Rule `json:"rules"`
}

// Rule is one rule's counters. Line is the line of the rules file the rule
// came from; a rule written with a comma list in -s or -d expands into one
// rule per address, each with the same Line, as iptables-restore does.
type Rule struct {
	Line    int    `json:"line"`
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
	// Text is the rule as written (without counters), for humans.
	Text string `json:"text,omitempty"`
	// Comment is the rule's -m comment text, if any.
	Comment string `json:"comment,omitempty"`
}

// Find returns the table with the given family and name, or nil.
func (r *Report) Find(family, table string) *Table {
	for i := range r.Tables {
		if r.Tables[i].Family == family && r.Tables[i].Table == table {
			return &r.Tables[i]
		}
	}
	return nil
}

// Chain returns the chain with the given name, or nil.
func (t *Table) Chain(name string) *Chain {
	for i := range t.Chains {
		if t.Chains[i].Name == name {
			return &t.Chains[i]
		}
	}
	return nil
}
