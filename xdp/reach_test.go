package xdp

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/sluice-project/sluice/packet"
	"github.com/sluice-project/sluice/rules"
)

// The rate-limit and userspace-only matches the reachability tests use.
const (
	recentM = "-s 10.0.0.0/8 -m recent --name r --rcheck --seconds 10"
	recent6 = "-s 2001:db8::/32 -m recent --name r --rcheck --seconds 10"
	limitM  = "-m limit --limit 5/sec --limit-burst 5"
	hlT     = "-m hashlimit --hashlimit-upto 5/sec --hashlimit-mode srcip --hashlimit-name T"
	hlU     = "-m hashlimit --hashlimit-upto 9/sec --hashlimit-mode srcip --hashlimit-name U"
)

// reachRules expands the match names above, and TAG(x) into a comment,
// in a ruleset text.
func reachRules(fam packet.Family, text string) string {
	rc := recentM
	if fam == packet.FamilyIPv6 {
		rc = recent6
	}
	text = regexp.MustCompile(`TAG\((\w+)\)`).ReplaceAllString(text, `-m comment --comment "$1"`)
	return strings.NewReplacer("RECENT", rc, "LIMIT", limitM, "HLT", hlT, "HLU", hlU).Replace(text)
}

// TestReachRateLimitsAuto compiles small rulesets with RateLimitsAuto
// and checks, rule by rule (named by a comment tag), which rate limits
// run in XDP ("xdp") and which stay fallback sites because a site
// reaches them ("fallback", the reason naming the site's rule). Most
// rules sit in raw PREROUTING: INPUT is reachable from the IPv4 options
// and fragment sites before it.
func TestReachRateLimitsAuto(t *testing.T) {
	type want struct {
		mode string
		site string // for a fallback: the tag of the site's rule that reaches it ("" any)
	}
	const raw = `*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
`
	const mangle = `*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
`
	for _, tc := range []struct {
		name   string
		v4, v6 string
		want4  map[string]want
		want6  map[string]want
	}{{
		name: "before and after a site in one chain",
		v4: raw + `-A PREROUTING -p icmp LIMIT TAG(a) -j ACCEPT
-A PREROUTING -p tcp RECENT TAG(site) -j DROP
-A PREROUTING -p icmp LIMIT TAG(b) -j ACCEPT
COMMIT
`,
		want4: map[string]want{"a": {"xdp", ""}, "site": {"fallback", ""}, "b": {"fallback", "site"}},
	}, {
		name: "a jump returns to the caller's next rule",
		v4: raw + `:A - [0:0]
-A PREROUTING -p tcp -j A
-A PREROUTING LIMIT TAG(a) -j ACCEPT
-A A RECENT TAG(site) -j DROP
COMMIT
`,
		want4: map[string]want{"a": {"fallback", "site"}},
	}, {
		name: "a chain's trailing DROP ends every path",
		v4: raw + `:A - [0:0]
-A PREROUTING -p tcp -j A
-A PREROUTING LIMIT TAG(a) -j ACCEPT
-A A RECENT TAG(site) -j DROP
-A A TAG(rest) -j DROP
COMMIT
`,
		want4: map[string]want{"a": {"xdp", ""}},
	}, {
		name: "RETURN goes back to the caller",
		v4: raw + `:A - [0:0]
-A PREROUTING -p tcp -j A
-A PREROUTING LIMIT TAG(a) -j ACCEPT
-A A RECENT TAG(site) -j DROP
-A A TAG(ret) -j RETURN
-A A LIMIT TAG(after) -j DROP
COMMIT
`,
		// after the unconditional RETURN: dead code
		want4: map[string]want{"a": {"fallback", "site"}, "after": {"shadowed", ""}},
	}, {
		name: "a goto returns to the caller's caller: the hook's policy, then later hooks",
		v4: raw + `:B - [0:0]
-A PREROUTING -p tcp -g B
-A PREROUTING -p icmp LIMIT TAG(a) -j ACCEPT
-A B RECENT TAG(site) -j DROP
COMMIT
` + mangle + `-A PREROUTING -p icmp LIMIT TAG(m) -j ACCEPT
COMMIT
`,
		want4: map[string]want{"a": {"xdp", ""}, "m": {"fallback", "site"}},
	}, {
		name: "a DROP policy stops at the hook",
		v4: `*raw
:PREROUTING DROP [0:0]
:OUTPUT ACCEPT [0:0]
:B - [0:0]
-A PREROUTING -p tcp -g B
-A PREROUTING -p icmp LIMIT TAG(a) -j ACCEPT
-A B RECENT TAG(site) -j DROP
COMMIT
` + mangle + `-A PREROUTING -p icmp LIMIT TAG(m) -j ACCEPT
COMMIT
`,
		want4: map[string]want{"a": {"xdp", ""}, "m": {"xdp", ""}},
	}, {
		name: "an ACCEPT goes on to the later hooks; a site in a later hook reaches nothing earlier",
		v4: raw + `:A - [0:0]
-A PREROUTING -p icmp LIMIT TAG(a) -j DROP
-A PREROUTING -p tcp -j A
-A PREROUTING -j DROP
-A A RECENT TAG(site) -j DROP
-A A -p tcp -j ACCEPT
-A A -j DROP
COMMIT
` + mangle + `-A PREROUTING -p icmp LIMIT TAG(m) -j DROP
-A PREROUTING -p tcp RECENT TAG(site2) -j DROP
-A PREROUTING -p icmp LIMIT TAG(m2) -j DROP
-A INPUT -p icmp LIMIT TAG(in) -j ACCEPT
COMMIT
*filter
:INPUT ACCEPT [0:0]
-A INPUT -p icmp LIMIT TAG(f) -j ACCEPT
COMMIT
`,
		want4: map[string]want{"a": {"xdp", ""}, "m": {"fallback", "site"}, "m2": {"fallback", "site"},
			// INPUT: the IPv4 options and fragment sites resume there too
			"in": {"fallback", ""}, "f": {"fallback", ""}},
	}, {
		name: "a chain called from two places returns to each",
		v4: raw + `:U - [0:0]
:T - [0:0]
:C - [0:0]
-A PREROUTING -p udp -j U
-A PREROUTING -p tcp -j T
-A PREROUTING -j DROP
-A U -j C
-A U LIMIT TAG(u) -j ACCEPT
-A U -j DROP
-A T LIMIT TAG(t0) -j ACCEPT
-A T -j C
-A T LIMIT TAG(t1) -j ACCEPT
-A T -j DROP
-A C RECENT TAG(site) -j DROP
COMMIT
`,
		want4: map[string]want{"u": {"fallback", "site"}, "t0": {"xdp", ""}, "t1": {"fallback", "site"}},
	}, {
		name: "a hashlimit table used before and after a site stays in userspace whole",
		v4: raw + `-A PREROUTING -p udp HLU TAG(u) -j ACCEPT
-A PREROUTING -p udp HLT TAG(t1) -j ACCEPT
-A PREROUTING -p tcp RECENT TAG(site) -j DROP
-A PREROUTING -p tcp HLT TAG(t2) -j ACCEPT
COMMIT
`,
		want4: map[string]want{"t1": {"fallback", "site"}, "u": {"xdp", ""}, "t2": {"fallback", "site"}},
	}, {
		name: "a site reaches its own rule",
		v4: raw + `-A PREROUTING -p tcp LIMIT RECENT TAG(l) -j DROP
-A PREROUTING -p udp HLT RECENT TAG(h) -j DROP
COMMIT
`,
		want4: map[string]want{"l": {"fallback", "l"}, "h": {"fallback", "l"}},
	}, {
		name: "fixpoint: a table moved to userspace is a site that reaches a later limit",
		v4: raw + `:X - [0:0]
:Y - [0:0]
-A PREROUTING -p tcp -j X
-A PREROUTING -p udp -j Y
-A PREROUTING -j DROP
-A X RECENT TAG(site) -j DROP
-A X HLT TAG(x) -j ACCEPT
-A X -j DROP
-A Y -s 192.168.0.0/16 HLT TAG(y) -j ACCEPT
-A Y LIMIT TAG(l) -j ACCEPT
-A Y -j DROP
COMMIT
`,
		want4: map[string]want{"x": {"fallback", "site"}, "y": {"fallback", "site"}, "l": {"fallback", "y"}},
	}, {
		name: "IPv4 and IPv6: a site of one family reaches nothing of the other",
		v4: raw + `-A PREROUTING -p icmp LIMIT TAG(a) -j ACCEPT
COMMIT
`,
		v6: raw + `-A PREROUTING -p ipv6-icmp LIMIT TAG(a) -j ACCEPT
-A PREROUTING -p tcp RECENT TAG(site) -j DROP
-A PREROUTING -p ipv6-icmp LIMIT TAG(b) -j ACCEPT
COMMIT
`,
		want4: map[string]want{"a": {"xdp", ""}},
		want6: map[string]want{"a": {"xdp", ""}, "site": {"fallback", ""}, "b": {"fallback", "site"}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			var rs4, rs6 *rules.Ruleset
			if tc.v4 != "" {
				rs4 = parseFamily(t, packet.FamilyIPv4, reachRules(packet.FamilyIPv4, tc.v4))
			}
			if tc.v6 != "" {
				rs6 = parseFamily(t, packet.FamilyIPv6, reachRules(packet.FamilyIPv6, tc.v6))
			}
			spec, err := Compile(rs4, rs6, CompileOptions{InIface: "eth0", RateLimits: RateLimitsAuto})
			if err != nil {
				t.Fatal(err)
			}
			if err := spec.CheckResume(); err != nil {
				t.Fatal(err)
			}
			for fam, ws := range map[packet.Family]map[string]want{packet.FamilyIPv4: tc.want4, packet.FamilyIPv6: tc.want6} {
				for tag, w := range ws {
					ri := ruleTagged(t, spec, fam, tag)
					site := ""
					if w.site != "" {
						s := ruleTagged(t, spec, fam, w.site)
						site = fmt.Sprintf("fallback site of %s %s %s line %d", fam, s.Table, s.Chain, s.Rule.Line)
					}
					if ri.Mode != w.mode || (w.mode == "fallback" && !strings.Contains(ri.Reason, site)) {
						t.Errorf("%s %s (line %d): %s (%s), want %s naming %q", fam, tag, ri.Rule.Line, ri.Mode, ri.Reason, w.mode, site)
					}
					if ri.Mode == "xdp" && !strings.Contains(ri.Reason, "runs in XDP") {
						t.Errorf("%s %s: reason %q does not say its rate limit runs in XDP", fam, tag, ri.Reason)
					}
				}
			}
			// The decisions hold against the final sites, and the
			// program holds exactly the rate limits marked xdp.
			held := spec.xdpRateRules()
			reach := reachable(rs4, rs6, spec.Fallback)
			for _, ri := range spec.Rules {
				_, h := held[ri.Rule]
				if _, r := reach[ri.Rule]; h && r {
					t.Errorf("line %d: the program holds its state but a site reaches it", ri.Rule.Line)
				}
				if live := ri.Mode == "xdp" || ri.Mode == "fallback"; live && hasRateLimit(ri.Rule) && h != (ri.Mode == "xdp") {
					t.Errorf("line %d: mode %s, program holds its state: %v", ri.Rule.Line, ri.Mode, h)
				}
			}
		})
	}
}

func hasRateLimit(r *rules.Rule) bool {
	for _, m := range r.Matches {
		switch m.(type) {
		case *rules.Limit, *rules.Hashlimit:
			return true
		}
	}
	return false
}

// ruleTagged finds the rule of fam with the comment tag.
func ruleTagged(t *testing.T, spec *Spec, fam packet.Family, tag string) *RuleInfo {
	t.Helper()
	for i := range spec.Rules {
		if ri := &spec.Rules[i]; ri.Family == fam && strings.Contains(ri.Rule.Text, `--comment "`+tag+`"`) {
			return ri
		}
	}
	t.Fatalf("no %s rule tagged %s", fam, tag)
	return nil
}

func parseFamily(t *testing.T, fam packet.Family, text string) *rules.Ruleset {
	t.Helper()
	rs, err := rules.Parse(strings.NewReader(text), rules.Options{Family: fam, File: "t"})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func ruleAt(t *testing.T, spec *Spec, fam packet.Family, line int) *RuleInfo {
	t.Helper()
	for i := range spec.Rules {
		if ri := &spec.Rules[i]; ri.Family == fam && ri.Rule.Line == line {
			return ri
		}
	}
	t.Fatalf("no %s rule at line %d", fam, line)
	return nil
}

// TestReachWholePacketSite: a site that resumes a whole packet (Hook -1)
// reaches every rule of its family (both without one), and a dead site
// reaches nothing.
func TestReachWholePacketSite(t *testing.T) {
	rs4 := parseFamily(t, packet.FamilyIPv4, reachRules(packet.FamilyIPv4, `*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:A - [0:0]
-A PREROUTING -p tcp -j A
-A PREROUTING -j DROP
-A A LIMIT -j ACCEPT
COMMIT
*filter
:INPUT ACCEPT [0:0]
-A INPUT LIMIT -j ACCEPT
COMMIT
`))
	rs6 := parseFamily(t, packet.FamilyIPv6, reachRules(packet.FamilyIPv6, `*filter
:INPUT ACCEPT [0:0]
-A INPUT LIMIT -j ACCEPT
COMMIT
`))
	count := func(sites ...FallbackSite) (n4, n6 int) {
		for r := range reachable(rs4, rs6, sites) {
			if _, c, _ := position(rs4, r); c != nil {
				n4++
			} else {
				n6++
			}
		}
		return
	}
	if n4, n6 := count(FallbackSite{Hook: -1}); n4 != 4 || n6 != 1 {
		t.Errorf("whole-packet site of no family: %d IPv4 and %d IPv6 rules, want 4 and 1", n4, n6)
	}
	if n4, n6 := count(FallbackSite{Family: packet.FamilyIPv6, Hook: -1}); n4 != 0 || n6 != 1 {
		t.Errorf("IPv6 whole-packet site: %d IPv4 and %d IPv6 rules, want 0 and 1", n4, n6)
	}
	if n4, n6 := count(FallbackSite{Hook: -1, Dead: true}); n4+n6 != 0 {
		t.Errorf("a dead site reaches %d rules", n4+n6)
	}
	// Before filter INPUT (the IPv4 fragment site): that chain only.
	if n4, _ := count(FallbackSite{Family: packet.FamilyIPv4, Hook: 2, Table: "mangle", Chain: "INPUT"}); n4 != 1 {
		t.Errorf("site before INPUT reaches %d IPv4 rules, want 1", n4)
	}
	// And a spec whose program holds a rate limit a site reaches fails
	// CheckResume.
	spec, err := Compile(rs4, nil, CompileOptions{InIface: "eth0", RateLimits: RateLimitsXDP})
	if err != nil {
		t.Fatal(err)
	}
	if err := spec.CheckResume(); err == nil {
		t.Fatal("CheckResume passes with the IPv4 fragment site reaching filter INPUT's limit")
	}
}
