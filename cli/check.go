package cli

import (
	"fmt"
	"io"
	"sort"

	"github.com/sluice-project/sluice/rules"
)

func init() {
	register(command{name: "check", summary: "validate rules and sets files; print the ruleset and warnings", run: runCheck})
}

func runCheck(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("check", "check [--rules F] [--rules6 F] [--sets F] [-q]", stderr)
	var rf ruleFlags
	rf.register(fs)
	quiet := fs.Bool("q", false, "print only warnings and errors")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	l, err := rf.load()
	if err != nil {
		return err
	}
	ps, err := l.parse(0)
	if err != nil {
		return err
	}
	// Compiling catches what only the engine can check (state shared
	// between rules, such as hashlimit tables of one name).
	if _, _, err := l.compile(0); err != nil {
		return err
	}
	var warnings []rules.Warning
	for _, rs := range []*rules.Ruleset{ps.r4, ps.r6} {
		if rs == nil {
			continue
		}
		warnings = append(warnings, rs.Warnings...)
		warnings = append(warnings, ingressWarnings(rs)...)
		if !*quiet {
			printRuleset(stdout, rs)
		}
	}
	if ps.sets != nil {
		for _, w := range ps.sets.Warnings {
			warnings = append(warnings, rules.Warning{File: w.File, Line: w.Line, Msg: w.Msg})
		}
	}
	if ps.sets != nil && !*quiet {
		for _, n := range ps.sets.Names() {
			s := ps.sets.Get(n)
			fmt.Fprintf(stdout, "# set %s %s: %d entries\n", n, s.Type(), s.Len())
		}
	}
	sort.SliceStable(warnings, func(i, j int) bool {
		if warnings[i].File != warnings[j].File {
			return warnings[i].File < warnings[j].File
		}
		return warnings[i].Line < warnings[j].Line
	})
	for _, w := range warnings {
		fmt.Fprintln(stderr, w.String())
	}
	fmt.Fprintf(stderr, "ok: %d warnings\n", len(warnings))
	return nil
}

func printRuleset(w io.Writer, rs *rules.Ruleset) {
	fmt.Fprintf(w, "# %s (%s)\n", rs.File, rs.Family)
	for _, t := range rs.Tables {
		fmt.Fprintf(w, "*%s\n", t.Name)
		for _, c := range t.Chains {
			fmt.Fprintf(w, ":%s %s\n", c.Name, c.Policy)
		}
		for _, c := range t.Chains {
			for _, r := range c.Rules {
				fmt.Fprintf(w, "%s  # line %d\n", ruleText(r), r.Line)
			}
		}
		fmt.Fprintln(w, "COMMIT")
	}
}

// ruleText is the rule as written, with the address of this expansion
// when a comma list in -s or -d was expanded.
func ruleText(r *rules.Rule) string {
	t := r.Text
	if r.Src.Set && r.OrigSrc != "" && r.OrigSrc != r.Src.Addr.String() {
		t += fmt.Sprintf("  [expanded: -s %s]", prefixString(r.Src))
	}
	if r.Dst.Set && r.OrigDst != "" && r.OrigDst != r.Dst.Addr.String() {
		t += fmt.Sprintf("  [expanded: -d %s]", prefixString(r.Dst))
	}
	return t
}

func prefixString(a rules.AddrMask) string {
	if a.Bits >= 0 {
		return fmt.Sprintf("%s/%d", a.Addr, a.Bits)
	}
	return fmt.Sprintf("%s/%s", a.Addr, a.Mask)
}

// ingressWarnings names rules that ingress traffic never reaches: sluice
// filters what arrives for this host, so FORWARD, OUTPUT and POSTROUTING
// (and user chains reachable only from them) stay the kernel's business.
func ingressWarnings(rs *rules.Ruleset) []rules.Warning {
	var out []rules.Warning
	for _, t := range rs.Tables {
		reached := map[string]bool{}
		var walk func(name string)
		walk = func(name string) {
			if reached[name] {
				return
			}
			reached[name] = true
			c := t.Chain(name)
			if c == nil {
				return
			}
			for _, r := range c.Rules {
				if r.Target.Kind == rules.TargetJump || r.Target.Kind == rules.TargetGoto {
					walk(r.Target.Chain)
				}
			}
		}
		for _, h := range rules.IngressHooks {
			if h.Table == t.Name {
				walk(h.Chain)
			}
		}
		for _, c := range t.Chains {
			if reached[c.Name] || len(c.Rules) == 0 {
				continue
			}
			out = append(out, rules.Warning{File: rs.File, Line: c.Rules[0].Line,
				Msg: fmt.Sprintf("chain %s in table %s is never reached by traffic arriving for this host: sluice does not evaluate its %d rules (the kernel still does)", c.Name, t.Name, len(c.Rules))})
		}
	}
	return out
}
