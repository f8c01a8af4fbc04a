package rules_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-project/sluice/engine/ipset"
	"github.com/sluice-project/sluice/examples"
	"github.com/sluice-project/sluice/packet"
	"github.com/sluice-project/sluice/rules"
)

func parseFile(t *testing.T, name string, fam packet.Family) *rules.Ruleset {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rules.Parse(bytes.NewReader(b), rules.Options{Family: fam, File: name})
	if err != nil {
		t.Fatalf("Parse %s: %v", name, err)
	}
	return rs
}

// shape is a table-independent description of a ruleset: per table and
// chain, each rule's fixed part and match/target names, for comparing a
// file with what the kernel printed back for it.
func shape(rs *rules.Ruleset) map[string][]string {
	out := map[string][]string{}
	for _, t := range rs.Tables {
		for _, c := range t.Chains {
			key := t.Name + "/" + c.Name + "/" + c.Policy.String()
			out[key] = []string{}
			for _, r := range c.Rules {
				var b strings.Builder
				b.WriteString(prefix(r.Src) + " " + prefix(r.Dst) + " " + rules.ProtoName(r.Proto))
				if r.Src.Invert {
					b.WriteString(" !s")
				}
				if r.ProtoInv {
					b.WriteString(" !p")
				}
				if r.Frag {
					b.WriteString(" f")
				}
				if r.FragInv {
					b.WriteString(" !f")
				}
				b.WriteString(" i=" + r.InIface.Name)
				for _, m := range r.Matches {
					b.WriteString(" m=" + m.Name())
				}
				b.WriteString(" t=" + r.Target.Chain)
				b.WriteByte(byte('0' + r.Target.Kind))
				out[key] = append(out[key], b.String())
			}
		}
	}
	return out
}

func TestGoldenSave(t *testing.T) {
	saved := parseFile(t, "iptables-save.golden", packet.FamilyIPv4)
	// iptables-save prints tables in the kernel's order and user chains
	// sorted by name.
	var tables []string
	for _, tb := range saved.Tables {
		tables = append(tables, tb.Name)
	}
	if strings.Join(tables, ",") != "filter,mangle,raw" {
		t.Errorf("tables %v", tables)
	}
	raw := saved.Table("raw")
	var chains []string
	for _, c := range raw.Chains {
		chains = append(chains, c.Name)
	}
	if strings.Join(chains, ",") != "PREROUTING,OUTPUT,BLOCK,ICMP_IN,TCP_IN,UDP_IN" {
		t.Errorf("raw chains %v", chains)
	}
	pre := raw.Chain("PREROUTING").Rules
	// The four rules the kernel expanded from one comma-list line, in
	// iptables' order, each on its own line of the saved file.
	want := [][2]string{{"10.0.0.0/8", "198.51.100.1/32"}, {"10.0.0.0/8", "198.51.100.2/32"},
		{"192.168.1.0/24", "198.51.100.1/32"}, {"192.168.1.0/24", "198.51.100.2/32"}}
	for i, w := range want {
		r := pre[2+i]
		if prefix(r.Src) != w[0] || prefix(r.Dst) != w[1] || r.Line != 35+i {
			t.Errorf("expanded rule %d: %s %s line %d", i, prefix(r.Src), prefix(r.Dst), r.Line)
		}
	}
	if r := pre[6]; r.Src.Bits != -1 || r.Src.Mask.String() != "255.0.255.0" {
		t.Errorf("non-contiguous mask: %+v", r.Src)
	}
	if c := pre[23].Matches[0].(*rules.Comment); c.Text != `a comment with "quotes" and spaces` {
		t.Errorf("comment %q", c.Text)
	}
	// --syn is saved as its flags.
	syn := raw.Chain("TCP_IN").Rules[2].Matches[0].(*rules.TCP)
	if syn.FlagMask != 0x17 || syn.FlagComp != 0x02 {
		t.Errorf("--syn saved as %#x %#x", syn.FlagMask, syn.FlagComp)
	}
	if d := saved.Table("mangle").Chain("PREROUTING").Rules[0].Matches[0].(*rules.DSCP); d.Value != 46 {
		t.Errorf("dscp %d", d.Value)
	}
	if p := saved.Table("filter").Chain("FORWARD").Policy; p != rules.PolicyDrop {
		t.Errorf("FORWARD policy %v", p)
	}

	// The input file and the kernel's rendering of it are the same rules.
	in := parseFile(t, "golden.rules", packet.FamilyIPv4)
	compareShapes(t, shape(in), shape(saved))
}

func compareShapes(t *testing.T, a, b map[string][]string) {
	t.Helper()
	if len(a) != len(b) {
		t.Errorf("%d chains vs %d", len(a), len(b))
	}
	for k, ar := range a {
		br, ok := b[k]
		if !ok {
			t.Errorf("chain %s missing from the saved file", k)
			continue
		}
		if len(ar) != len(br) {
			t.Errorf("%s: %d rules vs %d", k, len(ar), len(br))
			continue
		}
		for i := range ar {
			if ar[i] != br[i] {
				t.Errorf("%s rule %d:\n in:    %s\n saved: %s", k, i, ar[i], br[i])
			}
		}
	}
}

func TestGoldenSave6(t *testing.T) {
	saved := parseFile(t, "ip6tables-save.golden", packet.FamilyIPv6)
	pre := saved.Table("raw").Chain("PREROUTING").Rules
	if prefix(pre[0].Src) != "2001:db8::/32" || prefix(pre[1].Src) != "2001:db8:1::1/128" {
		t.Errorf("v6 expansion: %s %s", prefix(pre[0].Src), prefix(pre[1].Src))
	}
	if pre[3].Proto != 58 {
		t.Errorf("ipv6-icmp proto %d", pre[3].Proto)
	}
	// ip6tables-save drops `-p all`, so the saved rule no longer says -p.
	if pre[4].ProtoGiven {
		t.Error("saved -p all came back as -p")
	}
	in := parseFile(t, "golden6.rules", packet.FamilyIPv6)
	if !in.Table("raw").Chain("PREROUTING").Rules[4].ProtoGiven {
		t.Error("-p all lost ProtoGiven")
	}
	compareShapes(t, shape(in), shape(saved))
}

func TestExampleParses(t *testing.T) {
	rs, err := rules.Parse(bytes.NewReader(examples.Rules4), rules.Options{File: examples.Rules4Name, Sets: exampleSets(t)})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(rs.Table("raw").Chain("TCP_IN").Rules); n != 15 {
		t.Errorf("TCP_IN has %d rules", n)
	}
}

// FuzzParse: Parse never panics, and every error is a positioned
// *rules.Error.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"golden.rules", "golden6.rules", "iptables-save.golden", "ip6tables-save.golden"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b), strings.Contains(name, "6"))
	}
	f.Add(wrap(`-A PREROUTING -m comment --comment "open`), false)
	f.Add(wrap("-I X 1 -s 1.1.1.1,2.2.2.2 ! -p tcp --dport ! 80"), false)
	f.Add("*raw\n:A - [0:0]\n-A A -g A\nCOMMIT\n", false)
	f.Add("[1:2]\n", false)
	f.Add(wrap(`-A PREROUTING -m u32 --u32 "0>>22&0x3C@8>>24&0x7=7" -m string --hex-string "|00|" --algo bm`), false)
	// Every rate-limit and number form, where arithmetic lives.
	f.Add(wrap("-A PREROUTING -m hashlimit --hashlimit-upto 16b/s --hashlimit-burst 600b --hashlimit-name a --hashlimit-htable-expire 0x10 --hashlimit-dstmask 010"), false)
	f.Add(wrap("-A PREROUTING -m hashlimit --hashlimit-above 1kb/s --hashlimit-burst 2m --hashlimit-name b -m limit --limit 1/day --limit-burst 3"), false)
	f.Add(wrap("-A PREROUTING -m recent --name r --rcheck --seconds 0x10 --hitcount 300 --mask 255.0.255.0 -m ttl --ttl-gt 010 -p udp --dport 70000"), false)
	f.Add(wrap("-A PREROUTING -s 010.1/0x18 -d any/0 -m iprange --src-range 1.2-1.3 -m length --length 9:1"), false)
	sets := testRegistry(f)
	f.Fuzz(func(t *testing.T, text string, v6 bool) {
		fam := packet.FamilyIPv4
		if v6 {
			fam = packet.FamilyIPv6
		}
		rs, err := rules.Parse(strings.NewReader(text), rules.Options{Family: fam, File: "f", Sets: sets})
		if err == nil {
			if rs == nil {
				t.Fatal("nil ruleset without error")
			}
			return
		}
		if rs != nil {
			t.Fatal("ruleset with an error")
		}
		var e *rules.Error
		if !errors.As(err, &e) {
			t.Fatalf("error %T %v is not *rules.Error", err, err)
		}
		if e.Line <= 0 || e.Col <= 0 || e.File != "f" {
			t.Fatalf("unpositioned error %+v", e)
		}
	})
}

func exampleSets(t testing.TB) *ipset.Registry {
	t.Helper()
	reg, err := ipset.Parse(examples.SetsName, bytes.NewReader(examples.Sets), 0)
	if err != nil {
		t.Fatal(err)
	}
	return reg
}
