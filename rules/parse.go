package rules

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"slices"
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
	// Lines end at \n only (a \r is part of the line, as for fgets),
	// and the last one may lack it.
	lastNL := true
	sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			lastNL = true
			return i + 1, data[:i], nil
		}
		if atEOF && len(data) > 0 {
			lastNL = false
			return len(data), data, nil
		}
		return 0, nil, nil
	})
	for sc.Scan() {
		p.line++
		p.text = sc.Text()
		if !lastNL && p.text == "COMMIT" && p.table != nil {
			// fgets leaves no \n, and "COMMIT" is not "COMMIT\n".
			return nil, p.errAt(token{s: p.text, col: 1}, "the last line, COMMIT, needs its newline: iptables-restore compares it with \"COMMIT\\n\"")
		}
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

// parseLine reads one line as ip46tables_restore_main does: an empty
// line or one starting with '#' is skipped; "COMMIT" must be the whole
// line; a table line starts with '*' and a chain line with ':', each read
// with strtok (the first words count, the rest is ignored, chain counters
// included); every other line inside a table is a command, whose words
// add_param_to_argv splits (splitLine). A line starting with white space
// is a command line, so " *filter" or " # x" is refused, and a carriage
// return (a CRLF file) never matches "COMMIT" nor a name.
func (p *parser) parseLine(line string) error {
	if line == "" || line[0] == '#' {
		return nil
	}
	if i := strings.IndexByte(line, '\r'); i >= 0 {
		return p.errAt(token{s: `\r`, col: i + 1}, "carriage return: iptables-restore reads lines that end in \\n alone (save the file with Unix line endings)")
	}
	switch {
	case line[0] == '*' && p.table == nil:
		return p.tableLine(line)
	case line == "COMMIT" && p.table != nil:
		if err := p.commit(); err != nil {
			return err
		}
		p.rs.Tables = append(p.rs.Tables, p.table)
		p.table = nil
		return nil
	case line[0] == ':' && p.table != nil:
		return p.chainDecl(strtokFields(line))
	}
	trimmed := strings.TrimSpace(line)
	col := strings.Index(line, trimmed) + 1
	switch {
	case trimmed == "":
		return p.errAt(token{s: line, col: 1}, "a line of white space only: iptables-restore refuses it (no command specified); leave it empty")
	case p.table == nil && trimmed == "COMMIT":
		return p.errAt(token{s: trimmed, col: col}, "COMMIT outside a table")
	case p.table == nil:
		return p.errAt(token{s: trimmed, col: col}, "line outside a table: expected *raw, *mangle or *filter first (at the start of the line)")
	case line[0] == '*':
		return p.errAt(token{s: trimmed, col: col}, fmt.Sprintf("table %q starts before table %q is committed", trimmed[1:], p.table.Name))
	case trimmed == "COMMIT":
		return p.errAt(token{s: trimmed, col: col}, "COMMIT must be the whole line: iptables-restore compares it so, white space included")
	}
	toks, unterminated, lerr := splitLine(line)
	if lerr != nil {
		return &Error{File: p.opt.File, Line: p.line, Col: lerr.col, Msg: lerr.msg}
	}
	if unterminated {
		p.warn(p.line, "a double quote is left open: as in iptables-restore, the last word runs to the end of the line and ends with a newline")
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

// strtokFields splits a table or chain line after its first character as
// strtok(" \t\n") does, with each word's column.
func strtokFields(line string) []token {
	var out []token
	start := -1
	for i := 1; i <= len(line); i++ {
		if i == len(line) || line[i] == ' ' || line[i] == '\t' {
			if start >= 0 {
				out = append(out, token{s: line[start:i], col: start + 1})
				start = -1
			}
			continue
		}
		if start < 0 {
			start = i
		}
	}
	return out
}

// tableLine starts a table: the first word after '*' names it, the rest
// of the line is ignored. A table already restored is restored again:
// iptables-restore flushes it, so the earlier block's rules are dropped.
func (p *parser) tableLine(line string) error {
	f := strtokFields(line)
	if len(f) == 0 {
		return p.errAt(token{s: line, col: 1}, "table name invalid")
	}
	name := f[0].s
	if _, ok := builtinChains[name]; !ok {
		return p.errAt(f[0], unsupportedTable(name))
	}
	if old := p.rs.Table(name); old != nil {
		p.warn(p.line, "table %s is restored again: iptables-restore flushes it here, so the rules of the block at line %d are dropped", name, old.Line)
		p.rs.Tables = slices.DeleteFunc(p.rs.Tables, func(t *Table) bool { return t == old })
	}
	p.table = &Table{Name: name, Line: p.line}
	p.tabLine = p.line
	for _, c := range builtinChains[name] {
		p.table.Chains = append(p.table.Chains, &Chain{Name: c, Builtin: true, Policy: PolicyAccept})
	}
	return nil
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

// chainDecl is a ":CHAIN POLICY" line (strtokFields): iptables-restore
// reads the chain and the policy and, unless run with --counters, nothing
// after them.
func (p *parser) chainDecl(toks []token) error {
	if len(toks) == 0 {
		return p.errAt(token{s: ":", col: 1}, "chain name invalid")
	}
	name := toks[0].s
	if err := p.checkChainName(toks[0]); err != nil {
		return err
	}
	if len(toks) < 2 {
		return p.errAt(toks[0], "chain declaration needs a policy (ACCEPT, DROP or -)")
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
	// getopt reads the command like any option: run together with others
	// ("-AINPUT", "-6A"), and after -4, -6 or -v, which may come first.
	for len(toks) > 0 {
		t := toks[0]
		if len(t.s) > 2 && t.s[0] == '-' && t.s[1] != '-' {
			toks = slices.Concat(expandShort(t), toks[1:])
			t = toks[0]
		}
		switch t.s {
		case "-4", "--ipv4", "-6", "--ipv6":
			if p.otherFamily(t) {
				return nil
			}
			toks = toks[1:]
			continue
		case "-v", "--verbose":
			toks = toks[1:]
			continue
		}
		break
	}
	if len(toks) == 0 {
		return p.errAt(token{s: p.text, col: 1}, "no command: expected -A, -I, -N or -P")
	}
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
