package rules

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/sluice-project/sluice/packet"
)

// Options configure Parse.
type Options struct {
	// Family is FamilyIPv4 for iptables-save text and FamilyIPv6 for
	// ip6tables-save text. The same words mean different things in each
	// (icmp vs icmp6, ttl vs hl, -f).
	Family packet.Family
	// File names the input in errors and warnings.
	File string
	// Sets resolves -m set names. Nil means no sets file: -m set is an
	// error.
	Sets SetResolver
	// HZ is the kernel tick rate limit's checkentry arithmetic uses.
	HZ uint64
	// TotalRAM is the machine memory hashlimit's default table size is
	// derived from, as the kernel derives it. Zero means 4 GiB.
	TotalRAM uint64
}

// MatchParser consumes one match's options. Each -m name has one.
type MatchParser interface {
	// Option handles --name with its invert flag; it takes its values
	// from a. It returns false if the option is not this match's.
	Option(name string, invert bool, a *Args) (bool, error)
	// Finish validates the whole match once its options are read.
	Finish() (Match, error)
	// optionNames lists the match's long options (without "--"), which
	// abbreviations resolve against (options.go).
	optionNames() []string
}

// Args hands option values to a MatchParser and positions its errors.
type Args struct {
	p    *parser
	toks []token
	i    int
	opt  token
}

// Next returns the next word, or an error naming the option that lacks it.
func (a *Args) Next() (string, error) {
	if a.i >= len(a.toks) {
		return "", a.p.errAt(a.opt, fmt.Sprintf("option %s needs a value", a.opt.s))
	}
	t := a.toks[a.i]
	a.i++
	return t.s, nil
}

// Errorf returns a positioned error for the word Next returned last.
func (a *Args) Errorf(format string, args ...any) error {
	t := a.opt
	if a.i > 0 && a.i-1 < len(a.toks) && a.toks[a.i-1].col > a.opt.col {
		t = a.toks[a.i-1]
	}
	return a.p.errAt(t, fmt.Sprintf(format, args...))
}

// Wrap positions err at the word Next returned last.
func (a *Args) Wrap(err error) error {
	e := a.Errorf("%v", err).(*Error)
	e.Err = err
	return e
}

// Family is the family of the ruleset being parsed.
func (a *Args) Family() packet.Family { return a.p.opt.Family }

type parser struct {
	opt     Options
	rs      *Ruleset
	line    int
	text    string
	table   *Table
	tabLine int
}

// Parse reads iptables-save or iptables-restore text. It returns the first
// error, positioned at file:line:col; on error no Ruleset is returned.
func Parse(r io.Reader, opt Options) (*Ruleset, error) {
	if opt.Family == packet.FamilyNone {
		opt.Family = packet.FamilyIPv4
	}
	if opt.File == "" {
		opt.File = "<rules>"
	}
	p := &parser{opt: opt, rs: &Ruleset{Family: opt.Family, File: opt.File}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		p.line++
		p.text = sc.Text()
		if err := p.parseLine(p.text); err != nil {
			return nil, err
		}
	}
	if err := sc.Err(); err != nil {
		return nil, &Error{File: opt.File, Line: p.line + 1, Col: 1, Msg: "reading rules: " + err.Error(), Err: err}
	}
	if p.table != nil {
		return nil, &Error{File: opt.File, Line: p.tabLine, Col: 1, Word: "*" + p.table.Name,
			Msg: "table is never committed: COMMIT expected"}
	}
	return p.rs, nil
}

func (p *parser) errAt(t token, msg string) error {
	w := t.s
	if t.as != "" {
		w = t.as
	}
	return &Error{File: p.opt.File, Line: p.line, Col: t.col, Word: w, Msg: msg}
}

func (p *parser) warn(line int, format string, args ...any) {
	p.rs.Warnings = append(p.rs.Warnings, Warning{File: p.opt.File, Line: line, Msg: fmt.Sprintf(format, args...)})
}

func (p *parser) parseLine(line string) error {
	trimmed := strings.TrimSpace(line)
	if trimmed == "" || trimmed[0] == '#' {
		return nil
	}
	col := strings.Index(line, trimmed) + 1
	switch {
	case trimmed[0] == '*':
		if p.table != nil {
			return p.errAt(token{s: trimmed, col: col}, fmt.Sprintf("table %q starts before table %q is committed", trimmed[1:], p.table.Name))
		}
		name := trimmed[1:]
		if _, ok := builtinChains[name]; !ok {
			return p.errAt(token{s: trimmed, col: col}, unsupportedTable(name))
		}
		if p.rs.Table(name) != nil {
			return p.errAt(token{s: trimmed, col: col}, fmt.Sprintf("table %q appears twice", name))
		}
		p.table = &Table{Name: name, Line: p.line}
		p.tabLine = p.line
		for _, c := range builtinChains[name] {
			p.table.Chains = append(p.table.Chains, &Chain{Name: c, Builtin: true, Policy: PolicyAccept})
		}
		return nil
	case trimmed == "COMMIT":
		if p.table == nil {
			return p.errAt(token{s: trimmed, col: col}, "COMMIT outside a table")
		}
		if err := p.commit(); err != nil {
			return err
		}
		p.rs.Tables = append(p.rs.Tables, p.table)
		p.table = nil
		return nil
	}
	toks, unterminated, lerr := splitLine(line)
	if lerr != nil {
		return &Error{File: p.opt.File, Line: p.line, Col: lerr.col, Msg: lerr.msg}
	}
	if unterminated {
		p.warn(p.line, "a double quote is left open: as in iptables-restore, the last word runs to the end of the line and ends with a newline")
	}
	if p.table == nil {
		return p.errAt(toks[0], "line outside a table: expected *raw, *mangle or *filter first")
	}
	if strings.HasPrefix(toks[0].s, ":") {
		return p.chainDecl(toks)
	}
	// An optional [packets:bytes] prefix; the counters are the kernel's
	// business, sluice starts from zero.
	if strings.HasPrefix(toks[0].s, "[") {
		if _, _, ok := parseCounters(toks[0].s); !ok {
			return p.errAt(toks[0], "bad counters: expected [packets:bytes]")
		}
		toks = toks[1:]
		if len(toks) == 0 {
			return p.errAt(token{s: trimmed, col: col}, "counters without a rule")
		}
	}
	return p.command(toks)
}

func unsupportedTable(name string) string {
	switch name {
	case "nat":
		return "table nat needs connection tracking, which sluice does not do: keep NAT rules in the kernel behind sluice and give sluice the raw, mangle and filter tables"
	case "security":
		return "table security is for SELinux labels and is not supported"
	}
	return fmt.Sprintf("unknown table %q: sluice supports raw, mangle and filter", name)
}

func parseCounters(s string) (uint64, uint64, bool) {
	if len(s) < 5 || s[0] != '[' || s[len(s)-1] != ']' {
		return 0, 0, false
	}
	a, b, ok := strings.Cut(s[1:len(s)-1], ":")
	if !ok {
		return 0, 0, false
	}
	x, err1 := strconv.ParseUint(a, 10, 64)
	y, err2 := strconv.ParseUint(b, 10, 64)
	return x, y, err1 == nil && err2 == nil
}

func (p *parser) chainDecl(toks []token) error {
	name := toks[0].s[1:]
	if err := p.checkChainName(token{s: name, col: toks[0].col + 1}); err != nil {
		return err
	}
	if len(toks) < 2 {
		return p.errAt(toks[0], "chain declaration needs a policy (ACCEPT, DROP or -)")
	}
	if len(toks) > 3 {
		return p.errAt(toks[3], "unexpected word after chain counters")
	}
	if len(toks) == 3 {
		if _, _, ok := parseCounters(toks[2].s); !ok {
			return p.errAt(toks[2], "bad counters: expected [packets:bytes]")
		}
	}
	c := p.table.Chain(name)
	pol := toks[1]
	if c != nil && c.Builtin {
		switch pol.s {
		case "ACCEPT":
			c.Policy = PolicyAccept
		case "DROP":
			c.Policy = PolicyDrop
		default:
			return p.errAt(pol, "a built-in chain's policy must be ACCEPT or DROP")
		}
		c.Line = p.line
		return nil
	}
	if c != nil {
		return p.errAt(toks[0], fmt.Sprintf("chain %q declared twice", name))
	}
	if pol.s != "-" {
		return p.errAt(pol, fmt.Sprintf("user chain %q cannot have a policy: use -", name))
	}
	p.table.Chains = append(p.table.Chains, &Chain{Name: name, Line: p.line})
	return nil
}

func (p *parser) checkChainName(t token) error {
	if t.s == "" {
		return p.errAt(t, "empty chain name")
	}
	if len(t.s) > 28 {
		return p.errAt(t, "chain name longer than 28 characters")
	}
	if t.s[0] == '-' || t.s[0] == '!' {
		return p.errAt(t, "chain name cannot start with - or !")
	}
	switch t.s {
	case "ACCEPT", "DROP", "RETURN", "QUEUE":
		return p.errAt(t, "chain name is a target name")
	}
	return nil
}

// command handles -A, -I, -N and -P lines.
func (p *parser) command(toks []token) error {
	cmd := toks[0]
	if strings.HasPrefix(cmd.s, "--") {
		// getopt_long: --app is --append.
		if g, vals, exact := globalOption(cmd.s[2:]); len(vals) == 1 && !exact {
			p.warn(p.line, "%s is read as %s, as getopt reads an abbreviated option", cmd.s, g)
			cmd.s, cmd.as = g, cmd.s
		}
	}
	switch cmd.s {
	case "-A", "--append", "-I", "--insert":
		if len(toks) < 2 {
			return p.errAt(cmd, "missing chain name")
		}
		c := p.table.Chain(toks[1].s)
		if c == nil {
			return p.errAt(toks[1], fmt.Sprintf("no chain %q in table %s (declare it with :%s - first)", toks[1].s, p.table.Name, toks[1].s))
		}
		rest := toks[2:]
		pos := -1
		if cmd.s == "-I" || cmd.s == "--insert" {
			pos = 0
			if len(rest) > 0 {
				if n, err := strconv.Atoi(rest[0].s); err == nil {
					if n < 1 || n > len(c.Rules)+1 {
						return p.errAt(rest[0], fmt.Sprintf("index of insertion too big: chain %s has %d rules", c.Name, len(c.Rules)))
					}
					pos = n - 1
					rest = rest[1:]
				}
			}
		}
		rules, err := p.rule(c, rest)
		if err != nil {
			return err
		}
		if pos < 0 {
			c.Rules = append(c.Rules, rules...)
		} else {
			c.Rules = append(c.Rules[:pos], append(rules, c.Rules[pos:]...)...)
		}
		return nil
	case "-N", "--new-chain":
		if len(toks) != 2 {
			return p.errAt(cmd, "-N takes exactly one chain name")
		}
		if err := p.checkChainName(toks[1]); err != nil {
			return err
		}
		if p.table.Chain(toks[1].s) != nil {
			return p.errAt(toks[1], fmt.Sprintf("chain %q already exists", toks[1].s))
		}
		p.table.Chains = append(p.table.Chains, &Chain{Name: toks[1].s, Line: p.line})
		return nil
	case "-P", "--policy":
		if len(toks) != 3 {
			return p.errAt(cmd, "-P takes a chain and a policy")
		}
		c := p.table.Chain(toks[1].s)
		if c == nil || !c.Builtin {
			return p.errAt(toks[1], "-P needs a built-in chain")
		}
		switch toks[2].s {
		case "ACCEPT":
			c.Policy = PolicyAccept
		case "DROP":
			c.Policy = PolicyDrop
		default:
			return p.errAt(toks[2], "policy must be ACCEPT or DROP")
		}
		return nil
	}
	return p.errAt(cmd, "unsupported command: iptables-restore input for sluice may use -A, -I, -N and -P")
}
