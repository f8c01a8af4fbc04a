package rules

import (
	"reflect"
	"strings"
	"testing"

	"github.com/sluice-project/sluice/packet"
)

// getopt forms iptables-restore 1.8.9 (legacy) reads, each checked there
// with iptables-legacy-save: abbreviated long options, the -4 and -6
// family marks, and -v.
func TestGetoptForms(t *testing.T) {
	parse := func(fam packet.Family, rule string) (*Ruleset, error) {
		chain := "PREROUTING"
		if strings.HasPrefix(rule, "--") && !strings.HasPrefix(rule, "--app") {
			rule = "-A PREROUTING " + rule
		}
		text := "*raw\n:" + chain + " ACCEPT [0:0]\n" + rule + "\nCOMMIT\n"
		return Parse(strings.NewReader(text), Options{Family: fam, File: "t.rules"})
	}
	v4, v6 := packet.FamilyIPv4, packet.FamilyIPv6
	same := []struct {
		fam        packet.Family
		got, want  string
		skipped    bool
		hasWarning string
	}{
		{v4, "-A PREROUTING -p tcp --dp 22 -j DROP", "-A PREROUTING -p tcp --dport 22 -j DROP", false, "--dp is read as --dport"},
		{v4, "-A PREROUTING -p tcp --dpo 22 --tcp-f SYN SYN", "-A PREROUTING -p tcp --dport 22 --tcp-flags SYN SYN", false, ""},
		{v4, "-A PREROUTING --prot tcp --so 10.0.0.1 --desti 10.0.0.2 --ju DROP", "-A PREROUTING -p tcp -s 10.0.0.1 -d 10.0.0.2 -j DROP", false, ""},
		{v4, "-A PREROUTING --sr 10.0.0.1 --ds 10.0.0.2", "-A PREROUTING -s 10.0.0.1 -d 10.0.0.2", false, "--sr is read as --source"},
		{v4, "-A PREROUTING --src 10.0.0.1 --fragments", "-A PREROUTING -s 10.0.0.1 -f", false, ""},
		{v4, "-A PREROUTING --fragments -j DROP", "-A PREROUTING -f -j DROP", false, ""},
		{v4, "-A PREROUTING --frag -j DROP", "-A PREROUTING -f -j DROP", false, ""},
		{v4, "-A PREROUTING -p tcp -m multiport --dp 22", "-A PREROUTING -p tcp -m multiport --dports 22", false, ""},
		{v4, "-A PREROUTING -m limit --limit 1/s --limit-b 3", "-A PREROUTING -m limit --limit 1/s --limit-burst 3", false, ""},
		{v4, "-A PREROUTING -m comment --comm x", "-A PREROUTING -m comment --comment x", false, ""},
		{v4, "-A PREROUTING -j LOG --log-p x", "-A PREROUTING -j LOG --log-prefix x", false, ""},
		{v4, "-A PREROUTING -m string --alg bm --str abc", "-A PREROUTING -m string --algo bm --string abc", false, ""},
		{v4, "--app PREROUTING -j DROP", "-A PREROUTING -j DROP", false, ""},
		{v4, "-A PREROUTING -4 -j DROP", "-A PREROUTING -j DROP", false, ""},
		{v4, "-A PREROUTING ! -4 -s 10.0.0.1 -j DROP", "-A PREROUTING -s 10.0.0.1 -j DROP", false, ""},
		{v4, "-A PREROUTING -v -j DROP", "-A PREROUTING -j DROP", false, ""},
		{v6, "-A PREROUTING --ipv6 -j DROP", "-A PREROUTING -j DROP", false, ""},
		{v4, "-A PREROUTING -mcomment --comment x", "-A PREROUTING -m comment --comment x", false, ""},
		{v4, "-A PREROUTING -fmcomment --comment y", "-A PREROUTING -f -m comment --comment y", false, ""},
		{v4, "-A PREROUTING -c1 2 -j DROP", "-A PREROUTING -c 1 2 -j DROP", false, ""},
		{v4, "-A PREROUTING -ieth0", "-A PREROUTING -i -ieth0", false, ""},
		{v4, "-A PREROUTING -4j DROP", "-A PREROUTING -j DROP", false, ""},
		{v4, "-A PREROUTING -m mac --mac-source 0:0:0:0:0:0", "-A PREROUTING -m mac --mac-source 00:00:00:00:00:00", false, ""},
		{v4, "-A PREROUTING -m mac --mac-source :::::", "-A PREROUTING -m mac --mac-source 00:00:00:00:00:00", false, ""},
		{v4, "-A PREROUTING -m mac --mac-source -1:+f:0:0:0:0", "-A PREROUTING -m mac --mac-source ff:0f:00:00:00:00", false, ""},
		{v4, `-A PREROUTING -m mac --mac-source " 1:0:0:0:0:0"`, "-A PREROUTING -m mac --mac-source 01:00:00:00:00:00", false, ""},
		{v4, "-A PREROUTING -s 10.0.0.1 -6 -j DROP", "", true, "-6 marks this rule for the other IP family"},
		{v4, "-A PREROUTING ! -6 --bogus", "", true, "other IP family"},
		{v4, "-A PREROUTING -m string --algo kmp -65536-from 38", "", true, "other IP family"},
		{v6, "-A PREROUTING --ipv4 -j DROP", "", true, "other IP family"},
		{v4, "-APREROUTING -j DROP", "-A PREROUTING -j DROP", false, ""},
		{v4, "-v -4 -A PREROUTING -j DROP", "-A PREROUTING -j DROP", false, ""},
		{v4, "-6A PREROUTING -j DROP", "", true, "other IP family"},
		{v4, "-65O536A PREROUTING -j DROP", "", true, "other IP family"},
		{v4, "-A PREROUTING -s 20s3.0.0.1/25 -65536i eth0", "", true, "other IP family"},
	}
	norm := func(rs *Ruleset) []Rule {
		var out []Rule
		for _, r := range rs.Table("raw").Chain("PREROUTING").Rules {
			c := *r
			c.Line, c.Text, c.targetCol = 0, "", 0
			out = append(out, c)
		}
		return out
	}
	for _, tt := range same {
		rs, err := parse(tt.fam, tt.got)
		if err != nil {
			t.Errorf("%s: %v", tt.got, err)
			continue
		}
		got := norm(rs)
		if tt.skipped {
			if len(got) != 0 {
				t.Errorf("%s: %d rules, want the rule skipped", tt.got, len(got))
			}
		} else {
			want, err := parse(tt.fam, tt.want)
			if err != nil {
				t.Fatalf("%s: %v", tt.want, err)
			}
			if w := norm(want); !reflect.DeepEqual(got, w) {
				t.Errorf("%s:\n got %+v\nwant %+v", tt.got, got, w)
			}
		}
		if tt.hasWarning != "" && (len(rs.Warnings) == 0 || !strings.Contains(rs.Warnings[0].Msg, tt.hasWarning)) {
			t.Errorf("%s: warnings %v, want one saying %q", tt.got, rs.Warnings, tt.hasWarning)
		}
		if tt.hasWarning == "" && strings.HasPrefix(tt.got, "-A PREROUTING --src") && len(rs.Warnings) != 0 {
			t.Errorf("%s: warnings %v for exact option names", tt.got, rs.Warnings)
		}
	}
	for _, tt := range []struct{ rule, word, msg string }{
		{"-A PREROUTING -m limit --lim 1/s", "--lim", "ambiguous (--limit, --limit-burst)"},
		{"-A PREROUTING -m recent --se", "--se", "ambiguous (--set-counters, --seconds, --set)"},
		{"-A PREROUTING -m set --ma foo src", "--ma", "ambiguous (--match, --match-set)"},
		{"-A PREROUTING --s 10.0.0.1", "--s", "ambiguous"},
		{"-A PREROUTING -m tcp -p tcp --t SYN SYN", "--t", "ambiguous (--table, --tcp-flags, --tcp-option)"},
		{"-A PREROUTING -p tcp --t SYN SYN", "--t", "--table is not allowed in a rule"},
		{"-A PREROUTING --numeric", "--numeric", "--numeric is not allowed in a rule"},
		{"-A PREROUTING ! -v -j DROP", "!", "cannot have ! before -v"},
		{"-A PREROUTING -ptcp", "-ptcp", "protocol"},
		{"-A PREROUTING -s1.2.3.4", "-s1.2.3.4", ""},
		{"-A PREROUTING -jDROP", "-jDROP", "missing target name"},
		{"-A PREROUTING -s 20s3.0.0.1 -j DROP", "20s3.0.0.1", "bad address"},
		{"-4 -v", "-4 -v", "no command"},
		{"-A PREROUTING -m mac --mac-source 00-00-00-00-00-00", "00-00-00-00-00-00", "invalid MAC"},
		{"-A PREROUTING -m mac --mac-source 0x1:0:0:0:0:0", "0x1:0:0:0:0:0", "invalid MAC"},
		{"-A PREROUTING -m mac --mac-source 0:0:0:0:0:0:", "0:0:0:0:0:0:", "invalid MAC"},
		{"-A PREROUTING -m mac --mac-source 1:2:3:4:5:fff", "1:2:3:4:5:fff", "invalid MAC"},
		{"-A PREROUTING -m mac --mac-source 0000.0000.0000", "0000.0000.0000", "invalid MAC"},
		{"-A PREROUTING -m mac --mac-source -:0:0:0:0:0", "-:0:0:0:0:0", "invalid MAC"},
		{"-A PREROUTING -c-to 52", "-to", "packet counter not numeric"},
		{"-A PREROUTING -c 1 x", "x", "byte counter not numeric"},
		{"-A PREROUTING -hex-string x", "-hex-string", "unknown option"},
		{"-A PREROUTING -p tcp --dport 1 --sport 2 --so 10.0.0.1", "--so", "ambiguous (--source, --source-port)"},
	} {
		_, err := parse(v4, tt.rule)
		e, ok := err.(*Error)
		if !ok || e.Word != tt.word || !strings.Contains(e.Msg, tt.msg) {
			t.Errorf("%s: error %v, want %q at %q", tt.rule, err, tt.msg, tt.word)
		}
	}
}

// Table and chain lines as ip46tables_restore_main reads them (each
// checked with iptables-legacy-restore 1.8.9): strtok's first words, the
// rest ignored, chain counters unread; a table restored twice is flushed
// the second time.
func TestRestoreLineForms(t *testing.T) {
	for _, tt := range []struct {
		text, warn string
		rules      int
	}{
		{"* filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j DROP\nCOMMIT\n", "", 1},
		{"*filter extra words\n:INPUT ACCEPT [x]\n-A INPUT -j DROP\nCOMMIT\n", "", 1},
		{"*filter\n: INPUT \tDROP [0:0] extra\nCOMMIT\n", "", 0},
		{"*filter\n  \t-A INPUT -j DROP\nCOMMIT\n", "", 1},
		{"*filter\n-A INPUT -j DROP\nCOMMIT\n*filter\nCOMMIT\n", "rules of the block at line 1 are dropped", 0},
		{"*filter\n-A INPUT -j DROP\nCOMMIT", "", 1}, // a rule line may lack its newline, not COMMIT: below
	} {
		rs, err := Parse(strings.NewReader(tt.text), Options{Family: packet.FamilyIPv4, File: "t.rules"})
		if strings.HasSuffix(tt.text, "COMMIT") {
			if err == nil {
				t.Errorf("%q: no error for COMMIT without its newline", tt.text)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tt.text, err)
			continue
		}
		f := rs.Table("filter")
		if f == nil || len(f.Chain("INPUT").Rules) != tt.rules || len(rs.Tables) != 1 {
			t.Errorf("%q: tables %d, filter %+v", tt.text, len(rs.Tables), f)
		}
		if tt.warn != "" && (len(rs.Warnings) != 1 || !strings.Contains(rs.Warnings[0].Msg, tt.warn)) {
			t.Errorf("%q: warnings %v, want %q", tt.text, rs.Warnings, tt.warn)
		}
	}
	rs, _ := Parse(strings.NewReader("*filter\n: INPUT \tDROP [0:0] extra\nCOMMIT\n"), Options{Family: packet.FamilyIPv4})
	if rs.Table("filter").Chain("INPUT").Policy != PolicyDrop {
		t.Error("the policy after extra white space was not read")
	}
}
