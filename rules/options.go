package rules

import (
	"fmt"
	"slices"
	"strings"
)

// Long options are read by getopt_long, which takes any unambiguous
// prefix of an option in its table: `--dp 22` is --dport once tcp is
// loaded, `--prot tcp` is --protocol, `--limit-b 5` is --limit-burst, and
// `--se` next to -m recent is ambiguous (--seconds, --set) and refused.
// The table grows as the rule is read: iptables' own options, then each
// match's when it is loaded and the target's when -j names it; an option
// unknown or ambiguous so far loads the protocol's implicit match and is
// read again (command_default in iptables/xshared.c). Two names of one
// option (--src and --source) are not ambiguous.

// globalLongOptions is original_opts of iptables/iptables.c (ip6tables
// has the same), each with the short option it stands for.
var globalLongOptions = []struct {
	name string
	val  byte
}{
	{"append", 'A'}, {"delete", 'D'}, {"check", 'C'}, {"insert", 'I'}, {"replace", 'R'},
	{"list", 'L'}, {"list-rules", 'S'}, {"flush", 'F'}, {"zero", 'Z'}, {"new-chain", 'N'},
	{"delete-chain", 'X'}, {"rename-chain", 'E'}, {"policy", 'P'}, {"source", 's'},
	{"destination", 'd'}, {"src", 's'}, {"dst", 'd'}, {"protocol", 'p'}, {"in-interface", 'i'},
	{"jump", 'j'}, {"table", 't'}, {"match", 'm'}, {"numeric", 'n'}, {"out-interface", 'o'},
	{"verbose", 'v'}, {"wait", 'w'}, {"wait-interval", 'W'}, {"exact", 'x'}, {"fragments", 'f'},
	{"version", 'V'}, {"help", 'h'}, {"line-numbers", '0'}, {"modprobe", 'M'},
	{"set-counters", 'c'}, {"goto", 'g'}, {"ipv4", '4'}, {"ipv6", '6'},
}

// globalSpelling is how the parser spells the global options it handles.
var globalSpelling = map[byte]string{
	'A': "--append", 'I': "--insert", 'N': "--new-chain", 'P': "--policy",
	's': "--source", 'd': "--destination", 'p': "--protocol", 'i': "--in-interface",
	'o': "--out-interface", 'j': "--jump", 'g': "--goto", 'm': "--match", 'c': "--set-counters",
	'f': "--fragment", 'v': "--verbose", '4': "--ipv4", '6': "--ipv6",
}

// globalOption looks name up among iptables' own long options: exact when
// it is one's name; vals are the distinct options it is a prefix of, and
// opt the parser's spelling of the one option when there is one.
func globalOption(name string) (opt string, vals []byte, exact bool) {
	for _, o := range globalLongOptions {
		if o.name == name {
			return spellGlobal(o.val, o.name), []byte{o.val}, true
		}
		if strings.HasPrefix(o.name, name) && !slices.Contains(vals, o.val) {
			vals = append(vals, o.val)
			opt = spellGlobal(o.val, o.name)
		}
	}
	if len(vals) != 1 {
		opt = ""
	}
	return opt, vals, false
}

func spellGlobal(val byte, name string) string {
	if s, ok := globalSpelling[val]; ok {
		return s
	}
	return "--" + name
}

// longOption returns the option a "--word" of a rule stands for, spelled
// in full (t.s itself when it is an extension's exact name or unknown: the
// caller's error path reports unknown options), and whether the word was
// an abbreviation.
func (p *parser) longOption(b *ruleBuilder, t token) (string, bool, error) {
	name := t.s[2:]
	if name == "" {
		return t.s, false, nil
	}
	for retry := true; ; retry = false {
		g, gvals, gexact := globalOption(name)
		if gexact {
			return g, false, nil
		}
		ext, exact := b.extOption(name)
		if exact {
			return t.s, false, nil
		}
		switch n := len(gvals) + len(ext); {
		case n == 1 && g != "":
			return g, true, nil
		case n == 1:
			return "--" + ext[0], true, nil
		case retry && p.loadImplicit(b, t) != nil:
			continue // read it again with the protocol's match loaded
		case n == 0:
			return t.s, false, nil
		}
		var all []string
		for _, o := range globalLongOptions {
			if strings.HasPrefix(o.name, name) {
				all = append(all, "--"+o.name)
			}
		}
		for _, c := range ext {
			all = append(all, "--"+c)
		}
		return "", false, p.errAt(t, fmt.Sprintf("option %s is ambiguous (%s): iptables refuses it; spell the option in full", t.s, strings.Join(all, ", ")))
	}
}

// extOption looks name up among the options of the rule's matches and
// target so far: exact when one of them is name itself, else the distinct
// options it is a prefix of.
func (b *ruleBuilder) extOption(name string) (cands []string, exact bool) {
	seen := map[string]bool{}
	consider := func(owner string, names []string) {
		for _, o := range names {
			if o == name {
				exact = true
			}
			if strings.HasPrefix(o, name) && !seen[owner+"/"+o] {
				seen[owner+"/"+o] = true
				cands = append(cands, o)
			}
		}
	}
	for i, m := range b.matches {
		consider(b.mkinds[i], m.optionNames())
	}
	if b.tgt != nil {
		consider("target", b.tgt.optionNames())
	}
	return cands, exact
}

// loadImplicit loads the protocol's implicit match (`-p tcp` then an
// option only -m tcp knows), once per rule; nil when there is none to
// load.
func (p *parser) loadImplicit(b *ruleBuilder, t token) MatchParser {
	if b.r.Proto == 0 || b.seen["implicit"] {
		return nil
	}
	pname := implicitMatch(b.r.Proto, p.opt.Family)
	if pname == "" {
		return nil
	}
	b.seen["implicit"] = true
	mp := p.newMatch(pname)
	b.matches = append(b.matches, mp)
	b.mnames = append(b.mnames, t)
	b.mkinds = append(b.mkinds, pname)
	return mp
}

// optionNames lists the target's options (targetParser.option).
func (tp *targetParser) optionNames() []string {
	switch tp.name {
	case "LOG":
		return []string{"log-level", "log-prefix", "log-tcp-sequence", "log-tcp-options", "log-ip-options", "log-uid", "log-macdecode"}
	case "NFLOG":
		return []string{"nflog-group", "nflog-prefix", "nflog-range", "nflog-size", "nflog-threshold"}
	case "CT":
		return []string{"notrack", "zone", "zone-orig", "zone-reply", "helper", "timeout", "ctevents", "expevents"}
	case "REJECT":
		return []string{"reject-with"}
	}
	return nil
}

// expandShort splits a word of short options run together as getopt
// reads it in iptables-restore 1.8.9 (checked there): flags (-f, -4, -6,
// -v) may be followed by more options ("-fmcomment" is -f -m comment);
// -m, -g, -c and the commands (-A, -I, ...) take the rest of the word as
// their value ("-gX", "-AINPUT"); -s, -d,
// -p, -j, -i and -o take the whole word, which iptables reads back as
// argv[optind-1] ("-ieth0" names the interface "-ieth0", "-ptcp" is the
// unknown protocol "-ptcp"), or the next word when they end the word
// ("-4j DROP"). Any other letter is an option sluice does not
// take in a rule; it comes out alone, for the caller to refuse.
func expandShort(t token) []token {
	w := t.s
	var out []token
	for i := 1; i < len(w); i++ {
		opt := token{s: "-" + w[i:i+1], col: t.col + i - 1, as: w}
		switch w[i] {
		case 'f', '4', '6', 'v':
			out = append(out, opt)
			continue
		case 'm', 'g', 'c', 'A', 'I', 'D', 'R', 'C', 'N', 'P', 'E', 'X', 'F', 'Z', 'L', 'S':
			out = append(out, opt)
			if i+1 < len(w) {
				out = append(out, token{s: w[i+1:], col: t.col + i + 1})
			}
		case 's', 'd', 'p', 'j', 'i', 'o':
			out = append(out, opt)
			if i+1 < len(w) {
				out = append(out, token{s: w, col: t.col})
			} // else the next word is the value ("-4j DROP")
		default:
			out = append(out, opt)
		}
		break
	}
	return out
}
