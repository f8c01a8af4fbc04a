package difftest

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/sluice-project/sluice/engine/jiffies"
)

var (
	flagMutants       = flag.Int("parse.mutants", 300, "mutated rulesets TestParserAgreesWithIptables tries")
	flagMutantsKernel = flag.Bool("parse.kernel", false, "also run every mutant both accept through the kernel and the engine with its case's frames (slow)")
)

// TestParserAgreesWithIptables: sluice's parsers accept exactly the files
// iptables-restore accepts. Generated rulesets (all valid) get one
// mutation each: a word dropped, doubled or swapped with its neighbour, a
// "!" inserted, a number replaced by an edge value, or a known option
// inserted. Each is loaded by iptables-legacy-restore (and ip6tables-) in
// a private namespace holding the generator's sets, and parsed by sluice;
// the two must agree on accept or reject. A file sluice accepts and
// iptables refuses would run rules no kernel would; the other way round,
// sluice refuses what an operator's kernel runs. Known gaps, where sluice
// refuses on purpose, are listed in parseGap.
func TestParserAgreesWithIptables(t *testing.T) {
	ns := nsForTest(t, "parse")
	ctx := context.Background()
	if _, err := ns.RunInput(ctx, []byte(SetsText), "ipset", "restore"); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(11, 12))
	bad, both := 0, 0
	for trial := 0; trial < *flagMutants; trial++ {
		c := GenerateCase(int64(1 + trial%997))
		v6 := rng.IntN(2) == 0 && len(c.Rules6) > 0 || len(c.Rules4) == 0
		text := c.Rules4
		tool := "iptables-legacy-restore"
		if v6 {
			text, tool = c.Rules6, "ip6tables-legacy-restore"
		}
		mutated, what := mutateRules(rng, string(text), v6)
		kerr := restore(ctx, ns, []byte(mutated), tool)
		mc := Case{Sets: c.Sets}
		if v6 {
			mc.Rules6 = []byte(mutated)
		} else {
			mc.Rules4 = []byte(mutated)
		}
		_, serr := Parse(mc, jiffies.DefaultHZ, FrameStart)
		if kerr == nil && serr == nil {
			both++
		}
		if kerr == nil && serr == nil && *flagMutantsKernel {
			frames := GenerateFrames(int64(1+trial%997), 200, !v6, v6)
			d, err := compareKernel(mc, frames, hz(t))
			if err != nil {
				t.Errorf("trial %d %s: %v", trial, what, err)
			} else if d = ingressOnly(d); !d.Equal {
				t.Errorf("trial %d %s: counters differ from the kernel's:\n%s", trial, what, FormatDiff(d))
			}
			continue
		}
		if (kerr == nil) == (serr == nil) {
			continue
		}
		if reason := parseGap(what, serr); reason != "" {
			t.Logf("known gap (%s): %s", reason, what)
			continue
		}
		if bad++; bad <= 20 {
			t.Errorf("trial %d %s: iptables: %v\nsluice: %v", trial, what, errLine(kerr), serr)
		}
	}
	t.Logf("%d of %d mutated rulesets loaded in both", both, *flagMutants)
	if bad > 0 {
		t.Errorf("%d of %d mutated rulesets: sluice and iptables-restore disagree", bad, *flagMutants)
	}
}

// parseGap says why a disagreement is expected: sluice refuses the
// construct on purpose. Empty means a bug.
func parseGap(what string, serr error) string {
	if serr == nil {
		return "" // sluice took what iptables refused: never expected
	}
	switch {
	case strings.Contains(what, `-> ""`):
		return `an empty number, which iptables reads as 0`
	case (strings.HasPrefix(what, "double ") || strings.HasPrefix(what, "insert ")) && strings.Contains(serr.Error(), "given twice"):
		return "an option given twice, which some iptables extensions let pass"
	case strings.Contains(serr.Error(), "CT without --notrack"):
		return "a CT target that would turn on connection tracking (and defragmentation)"
	}
	return ""
}

// mutateRules applies one mutation to one rule line of text and says
// which, with the line before and after.
func mutateRules(rng *rand.Rand, text string, v6 bool) (string, string) {
	lines := strings.Split(text, "\n")
	var idx []int
	for i, l := range lines {
		if strings.HasPrefix(l, "-A ") {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return text, "no rule to mutate"
	}
	i := idx[rng.IntN(len(idx))]
	toks := shellWords(lines[i])
	if len(toks) < 3 {
		return text, "rule too short"
	}
	k := 2 + rng.IntN(len(toks)-2) // never the -A CHAIN words
	inserts := []string{"--syn", "--set", "--rdest", "--rsource", "-f", "! -f", "--return-nomatch", "--icase",
		"-p tcp", "-p udp", "--dport 80", "--sport 1:2", "-m tcp", "-m udp", "-m comment", "--comment x",
		"-m limit", "--limit 5/sec", "--limit-burst 0", "-m recent", "--name x", "--seconds 0", "--hitcount 21",
		"--hashlimit-name y", "-m hashlimit", "--hashlimit-upto 1/sec", "--tcp-flags ALL NONE", "--tcp-option 0",
		"-j ACCEPT", "-j RETURN", "-g R_U0", "-s 0.0.0.0/0", "-d ::/0", "--match-set d4ip src", "-m set",
		"--ttl-eq 300", "--length 5:3", "--dscp 64", "--tos 0x100", "--pkt-type bogus", "--mac-source 0"}
	if v6 {
		inserts = append(inserts, "-p icmpv6", "--icmpv6-type 300", "--hl-eq 1")
	} else {
		inserts = append(inserts, "-p icmp", "--icmp-type 300", "--icmp-type any")
	}
	edge := []string{"0", "-1", "65535", "65536", "4294967296", "256", "1:0", "abc", ""}
	var what string
	switch rng.IntN(11) {
	case 10:
		// Any line, table, chain and COMMIT lines included: white
		// space, a carriage return, a word cut or doubled.
		j := rng.IntN(len(lines))
		if lines[j] == "" {
			return mutateRules(rng, text, v6)
		}
		before := lines[j]
		lines[j] = mutateText(rng, lines[j], " \t\r:*#[]0123456789-ACEPTDROMIT")
		return strings.Join(lines, "\n"), fmt.Sprintf("line edited\n  before: %q\n  after:  %q", before, lines[j])
	case 8, 9:
		// Characters edited anywhere after "-A CHAIN": quoting,
		// options run together or cut short.
		head := strings.Join(toks[:2], " ") + " "
		rest := mutateText(rng, strings.TrimPrefix(lines[i], head), "-! \"'\\0123456789abcdefxmpsjgfv46:,/.")
		before := lines[i]
		lines[i] = head + rest
		return strings.Join(lines, "\n"), fmt.Sprintf("characters edited\n  before: %s\n  after:  %s", before, lines[i])
	case 6:
		// The same number in another C notation: both must read it
		// alike (and, with -parse.kernel, mean the same by it).
		var nums []int
		for j := 2; j < len(toks); j++ {
			if n, err := strconv.ParseUint(toks[j], 10, 32); err == nil && n > 0 {
				nums = append(nums, j)
			}
		}
		if len(nums) == 0 {
			return mutateRules(rng, text, v6)
		}
		j := nums[rng.IntN(len(nums))]
		n, _ := strconv.ParseUint(toks[j], 10, 32)
		e := fmt.Sprintf("0x%x", n)
		if rng.IntN(2) == 0 {
			e = fmt.Sprintf("0%o", n)
		}
		what = fmt.Sprintf("number %s -> %s", toks[j], e)
		toks[j] = e
	case 7:
		// An IPv4 address in a shorter form: trailing zero parts
		// dropped, or parts written in octal.
		var addrs []int
		for j := 2; j < len(toks); j++ {
			if strings.Count(toks[j], ".") == 3 && strings.IndexAny(toks[j], ",:-\"") < 0 {
				addrs = append(addrs, j)
			}
		}
		if len(addrs) == 0 {
			return mutateRules(rng, text, v6)
		}
		j := addrs[rng.IntN(len(addrs))]
		a, rest, _ := strings.Cut(toks[j], "/")
		parts := strings.Split(a, ".")
		if rng.IntN(2) == 0 {
			for len(parts) > 1 && parts[len(parts)-1] == "0" {
				parts = parts[:len(parts)-1]
			}
		} else {
			for i, p := range parts {
				if n, err := strconv.Atoi(p); err == nil && n > 0 {
					parts[i] = fmt.Sprintf("0%o", n)
				}
			}
		}
		e := strings.Join(parts, ".")
		if rest != "" {
			e += "/" + rest
		}
		what = fmt.Sprintf("address %s -> %s", toks[j], e)
		toks[j] = e
	case 0:
		what = "drop " + toks[k]
		toks = append(toks[:k:k], toks[k+1:]...)
	case 1:
		what = "double " + toks[k]
		toks = append(toks[:k+1:k+1], toks[k:]...)
	case 2:
		if k+1 >= len(toks) {
			return mutateRules(rng, text, v6)
		}
		what = "swap " + toks[k] + " " + toks[k+1]
		toks[k], toks[k+1] = toks[k+1], toks[k]
	case 3:
		what = "! before " + toks[k]
		toks = append(toks[:k:k], append([]string{"!"}, toks[k:]...)...)
	case 4:
		var nums []int
		for j := 2; j < len(toks); j++ {
			if strings.IndexAny(toks[j], "0123456789") == 0 {
				nums = append(nums, j)
			}
		}
		if len(nums) == 0 {
			return mutateRules(rng, text, v6)
		}
		j := nums[rng.IntN(len(nums))]
		e := edge[rng.IntN(len(edge))]
		what = fmt.Sprintf("number %s -> %q", toks[j], e)
		toks[j] = e
		if e == "" {
			toks[j] = `""`
		}
	default:
		ins := inserts[rng.IntN(len(inserts))]
		what = "insert " + ins
		toks = append(toks[:k:k], append(strings.Fields(ins), toks[k:]...)...)
	}
	before := lines[i]
	lines[i] = strings.Join(toks, " ")
	return strings.Join(lines, "\n"), fmt.Sprintf("%s\n  before: %s\n  after:  %s", what, before, lines[i])
}

// shellWords splits a rule line into words, keeping double-quoted words
// (with their quotes) whole.
func shellWords(l string) []string {
	var out []string
	var cur strings.Builder
	in := false
	for _, r := range l {
		switch {
		case r == '"':
			in = !in
			cur.WriteRune(r)
		case r == ' ' && !in:
			if cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteRune(r)
		}
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

// TestSetsParserAgreesWithIpset is TestParserAgreesWithIptables for
// `ipset save` files: the generator's sets with one line mutated, loaded
// by `ipset restore` in a private namespace and parsed by sluice.
func TestSetsParserAgreesWithIpset(t *testing.T) {
	ns := nsForTest(t, "sets")
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(13, 14))
	lines := strings.Split(strings.TrimSpace(SetsText), "\n")
	edge := []string{"0", "65535", "65536", "4294967296", "-1", "0x10", "010", "1.2.3", "::1", "1.2.3.4/33", "tcp:0", "udp:65536", "icmp:300/0", "nomatch", "timeout", ""}
	bad := 0
	for trial := 0; trial < *flagMutants; trial++ {
		ls := append([]string(nil), lines...)
		i := rng.IntN(len(ls))
		words := strings.Fields(ls[i])
		k := 1 + rng.IntN(len(words)-1)
		var what string
		switch rng.IntN(6) {
		case 4, 5:
			// Characters edited after the command word.
			rest := mutateText(rng, strings.Join(words[1:], " "), "-! \"'\\0123456789abcdefx:,/.")
			what = "characters edited"
			words = append(words[:1:1], rest)
		case 0:
			what = "drop " + words[k]
			words = append(words[:k:k], words[k+1:]...)
		case 1:
			what = "double " + words[k]
			words = append(words[:k+1:k+1], words[k:]...)
		case 2:
			e := edge[rng.IntN(len(edge))]
			what = fmt.Sprintf("%s -> %q", words[k], e)
			words[k] = e
		default:
			e := edge[rng.IntN(len(edge))]
			what = "insert " + e
			words = append(words[:k:k], append([]string{e}, words[k:]...)...)
		}
		ls[i] = strings.Join(words, " ")
		text := strings.Join(ls, "\n") + "\n"
		what = fmt.Sprintf("%s\n  before: %s\n  after:  %s", what, lines[i], ls[i])
		// Flush first: a list:set's members are in use until then.
		if _, err := ns.Run(ctx, "ipset", "flush"); err != nil {
			t.Fatal(err)
		}
		if _, err := ns.Run(ctx, "ipset", "destroy"); err != nil {
			t.Fatal(err)
		}
		_, kerr := ns.RunInput(ctx, []byte(text), "ipset", "restore")
		_, serr := Parse(Case{Sets: []byte(text)}, jiffies.DefaultHZ, FrameStart)
		if (kerr == nil) == (serr == nil) {
			continue
		}
		if bad++; bad <= 20 {
			t.Errorf("trial %d %s: ipset: %v\nsluice: %v", trial, what, errLine(kerr), serr)
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d mutated set files: sluice and ipset restore disagree", bad, *flagMutants)
	}
}
