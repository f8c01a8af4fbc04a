package rules_test

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/sluice-project/sluice/engine/ipset"
	"github.com/sluice-project/sluice/engine/recent"
	"github.com/sluice-project/sluice/packet"
	"github.com/sluice-project/sluice/rules"
)

const testSets = `create allow hash:net family inet hashsize 1024 maxelem 65536
add allow 192.0.2.0/24
create services bitmap:port range 0-65535
add services 22
`

func testRegistry(t testing.TB) *ipset.Registry {
	t.Helper()
	reg, err := ipset.Parse("test.ipset", strings.NewReader(testSets), 0)
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// wrap puts rule lines into raw with the chains the tests use.
func wrap(lines ...string) string {
	return "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:X - [0:0]\n" +
		strings.Join(lines, "\n") + "\nCOMMIT\n"
}

func parse(t testing.TB, fam packet.Family, text string) (*rules.Ruleset, error) {
	t.Helper()
	return rules.Parse(strings.NewReader(text), rules.Options{Family: fam, File: "t.rules", Sets: testRegistry(t)})
}

func mustParse(t testing.TB, fam packet.Family, text string) *rules.Ruleset {
	t.Helper()
	rs, err := parse(t, fam, text)
	if err != nil {
		t.Fatalf("Parse: %v\n%s", err, text)
	}
	return rs
}

// oneRule parses a single -A PREROUTING line and returns its rule.
func oneRule(t *testing.T, fam packet.Family, line string) *rules.Rule {
	t.Helper()
	rs := mustParse(t, fam, wrap(line))
	c := rs.Table("raw").Chain(strings.Fields(line)[1])
	if len(c.Rules) != 1 {
		t.Fatalf("%q: %d rules, want 1", line, len(c.Rules))
	}
	return c.Rules[0]
}

func TestParseMatches(t *testing.T) {
	v4 := packet.FamilyIPv4
	v6 := packet.FamilyIPv6
	a := netip.MustParseAddr
	tests := []struct {
		fam  packet.Family
		line string
		want func(r *rules.Rule) any // returns the part to compare
		exp  any
	}{
		// The fixed part.
		{v4, "-A PREROUTING -s 10.1.2.3/8 -j DROP", func(r *rules.Rule) any { return r.Src },
			rules.AddrMask{Addr: a("10.0.0.0"), Mask: a("255.0.0.0"), Bits: 8, Set: true}},
		{v4, "-A PREROUTING ! -s 10.0.0.0/8", func(r *rules.Rule) any { return r.Src.Invert }, true},
		{v4, "-A PREROUTING -d 10.0.0.1/255.0.255.0", func(r *rules.Rule) any { return r.Dst },
			rules.AddrMask{Addr: a("10.0.0.0"), Mask: a("255.0.255.0"), Bits: -1, Set: true}},
		{v4, "-A PREROUTING -d 1.2.3.4", func(r *rules.Rule) any { return r.Dst.Bits }, 32},
		{v4, "-A PREROUTING -s 0.0.0.0/0", func(r *rules.Rule) any { return r.Src.Mask }, a("0.0.0.0")},
		// xtables_ipparse_any: with a zero mask the address is ignored.
		{v4, "-A PREROUTING -s any/0", func(r *rules.Rule) any { return r.Src.Addr }, a("0.0.0.0")},
		{v6, "-A PREROUTING -s 0.0.0.0/0", func(r *rules.Rule) any { return r.Src.Addr }, a("::")},
		// Numbers as iptables 1.8.9 reads them (xtables_numeric_to_ipaddr,
		// then the resolver's inet_aton): octal, hex, short forms; each
		// checked against iptables-legacy-save's output.
		{v4, "-A PREROUTING -s 010.0.0.0x1", func(r *rules.Rule) any { return r.Src.Addr }, a("8.0.0.1")},
		{v4, "-A PREROUTING -d 65536", func(r *rules.Rule) any { return r.Dst.Addr }, a("0.1.0.0")},
		{v4, "-A PREROUTING -d 0", func(r *rules.Rule) any { return [2]any{r.Dst.Addr, r.Dst.Bits} }, [2]any{a("0.0.0.0"), 32}},
		{v4, "-A PREROUTING -d 127.1", func(r *rules.Rule) any { return r.Dst.Addr }, a("127.1.0.0")},
		{v4, "-A PREROUTING -d 1.65536", func(r *rules.Rule) any { return r.Dst.Addr }, a("1.1.0.0")},
		{v4, "-A PREROUTING -s 1.2.3.4/010", func(r *rules.Rule) any { return [2]any{r.Src.Addr, r.Src.Bits} }, [2]any{a("1.0.0.0"), 8}},
		{v4, "-A PREROUTING -m iprange --src-range 010.0.0.1-1.2.3", func(r *rules.Rule) any {
			m := r.Matches[0].(*rules.IPRange)
			return [2]netip.Addr{m.SrcMin, m.SrcMax}
		}, [2]netip.Addr{a("8.0.0.1"), a("1.2.3.0")}},
		{v4, "-A PREROUTING -m iprange --dst-range 0", func(r *rules.Rule) any {
			m := r.Matches[0].(*rules.IPRange)
			return [2]netip.Addr{m.DstMin, m.DstMax}
		}, [2]netip.Addr{a("0.0.0.0"), a("0.0.0.0")}},
		{v4, "-A PREROUTING -d 10.0.0.1/255.0.0.0377", func(r *rules.Rule) any { return r.Dst.Mask }, a("255.0.0.255")},
		{v6, "-A PREROUTING -s 2001:db8::1/32", func(r *rules.Rule) any { return r.Src.Addr }, a("2001:db8::")},
		{v4, "-A PREROUTING -p tcp", func(r *rules.Rule) any { return [3]any{r.Proto, r.ProtoInv, r.ProtoGiven} }, [3]any{uint8(6), false, true}},
		{v4, "-A PREROUTING ! -p udp", func(r *rules.Rule) any { return [2]any{r.Proto, r.ProtoInv} }, [2]any{uint8(17), true}},
		{v4, "-A PREROUTING -p TCP", func(r *rules.Rule) any { return r.Proto }, uint8(6)},
		{v4, "-A PREROUTING -p 47", func(r *rules.Rule) any { return r.Proto }, uint8(47)},
		{v6, "-A PREROUTING -p all", func(r *rules.Rule) any { return [2]any{r.Proto, r.ProtoGiven} }, [2]any{uint8(0), true}},
		{v6, "-A PREROUTING -p ipv6-icmp", func(r *rules.Rule) any { return r.Proto }, uint8(58)},
		{v4, "-A PREROUTING", func(r *rules.Rule) any { return r.ProtoGiven }, false},
		{v4, "-A PREROUTING -i eth0", func(r *rules.Rule) any { return r.InIface }, rules.Iface{Name: "eth0", Set: true}},
		{v4, "-A PREROUTING ! -i eth+", func(r *rules.Rule) any { return r.InIface }, rules.Iface{Name: "eth", Wildcard: true, Invert: true, Set: true}},
		{v4, "-A X -o lo", func(r *rules.Rule) any { return nil }, nil}, // -o allowed in user chains
		{v4, "-A PREROUTING -f", func(r *rules.Rule) any { return [2]bool{r.Frag, r.FragInv} }, [2]bool{true, false}},
		{v4, "-A PREROUTING ! -f", func(r *rules.Rule) any { return [2]bool{r.Frag, r.FragInv} }, [2]bool{true, true}},
		{v4, "-A PREROUTING -c 10 20 -j ACCEPT", func(r *rules.Rule) any { return r.Target.Kind }, rules.TargetAccept},

		// tcp
		{v4, "-A PREROUTING -p tcp --dport 80", func(r *rules.Rule) any { return r.Matches[0] },
			&rules.TCP{Src: rules.PortRange{0, 65535}, Dst: rules.PortRange{80, 80}, HasDst: true}},
		{v4, "-A PREROUTING -p tcp -m tcp --sport 1024: ! --dport :1023", func(r *rules.Rule) any { return r.Matches[0] },
			&rules.TCP{Src: rules.PortRange{1024, 65535}, Dst: rules.PortRange{0, 1023}, HasSrc: true, HasDst: true, DstInv: true}},
		{v4, "-A PREROUTING -p tcp --dport https", func(r *rules.Rule) any { return r.Matches[0].(*rules.TCP).Dst }, rules.PortRange{443, 443}},
		// libxt_tcp reads ports as C numbers; libxt_udp (1.8.9) as
		// decimal cut to 16 bits, and takes backwards ranges (each
		// checked against iptables-legacy-save's output).
		{v4, "-A PREROUTING -p tcp --dport 010", func(r *rules.Rule) any { return r.Matches[0].(*rules.TCP).Dst }, rules.PortRange{8, 8}},
		{v4, "-A PREROUTING -p udp --dport 010", func(r *rules.Rule) any { return r.Matches[0].(*rules.UDP).Dst }, rules.PortRange{10, 10}},
		{v4, "-A PREROUTING -p udp --dport 70000", func(r *rules.Rule) any { return r.Matches[0].(*rules.UDP).Dst }, rules.PortRange{4464, 4464}},
		{v4, "-A PREROUTING -p udp --sport 5:3", func(r *rules.Rule) any { return r.Matches[0].(*rules.UDP).Src }, rules.PortRange{5, 3}},
		{v4, "-A PREROUTING -m hashlimit --hashlimit-upto 1/sec --hashlimit-dstmask 0x18 --hashlimit-name h", func(r *rules.Rule) any { return r.Matches[0].(*rules.Hashlimit).Cfg.DstMask }, uint8(24)},
		{v4, "-A PREROUTING -p tcp --syn", func(r *rules.Rule) any {
			m := r.Matches[0].(*rules.TCP)
			return [3]any{m.FlagMask, m.FlagComp, m.FlagsInv}
		}, [3]any{uint8(0x17), uint8(0x02), false}},
		{v4, "-A PREROUTING -p tcp ! --syn", func(r *rules.Rule) any { return r.Matches[0].(*rules.TCP).FlagsInv }, true},
		{v4, "-A PREROUTING -p tcp --tcp-flags ALL NONE", func(r *rules.Rule) any {
			m := r.Matches[0].(*rules.TCP)
			return [2]uint8{m.FlagMask, m.FlagComp}
		}, [2]uint8{0x3F, 0}}, // libxt_tcp: ALL is FIN..URG, not ECE or CWR
		{v4, "-A PREROUTING -p tcp --tcp-flags syn,ack,urg,psh,rst,fin NONE,FIN", func(r *rules.Rule) any {
			m := r.Matches[0].(*rules.TCP)
			return [2]uint8{m.FlagMask, m.FlagComp}
		}, [2]uint8{0x3F, 0x01}},
		{v4, "-A PREROUTING -p tcp ! --tcp-option 2", func(r *rules.Rule) any {
			m := r.Matches[0].(*rules.TCP)
			return [3]any{m.Option, m.OptionInv, m.HasOption}
		}, [3]any{uint8(2), true, true}},
		// udp
		{v4, "-A PREROUTING -p udp ! --sport 53 --destination-port 1:2", func(r *rules.Rule) any { return r.Matches[0] },
			&rules.UDP{Src: rules.PortRange{53, 53}, Dst: rules.PortRange{1, 2}, SrcInv: true, HasSrc: true, HasDst: true}},
		// icmp
		{v4, "-A PREROUTING -p icmp --icmp-type echo-request", func(r *rules.Rule) any { return r.Matches[0] },
			&rules.ICMP{Type: 8, CodeMin: 0, CodeMax: 255}},
		{v4, "-A PREROUTING -p icmp -m icmp ! --icmp-type 3/4", func(r *rules.Rule) any { return r.Matches[0] },
			&rules.ICMP{Type: 3, CodeMin: 4, CodeMax: 4, Invert: true}},
		{v4, "-A PREROUTING -p icmp -m icmp --icmp-type port-unreachable", func(r *rules.Rule) any { return r.Matches[0] },
			&rules.ICMP{Type: 3, CodeMin: 3, CodeMax: 3}},
		{v4, "-A PREROUTING -p icmp -m icmp --icmp-type any", func(r *rules.Rule) any { return r.Matches[0] },
			&rules.ICMP{Type: 255, CodeMin: 0, CodeMax: 255, Any: true}},
		{v4, "-A PREROUTING -p icmp -m icmp", func(r *rules.Rule) any { return r.Matches[0].(*rules.ICMP).Any }, true},
		{v6, "-A PREROUTING -p ipv6-icmp --icmpv6-type neighbour-solicitation", func(r *rules.Rule) any { return r.Matches[0] },
			&rules.ICMP{V6: true, Type: 135, CodeMin: 0, CodeMax: 255}},
		{v6, "-A PREROUTING -p icmpv6 -m icmp6 ! --icmpv6-type 1/4", func(r *rules.Rule) any { return r.Matches[0] },
			&rules.ICMP{V6: true, Type: 1, CodeMin: 4, CodeMax: 4, Invert: true}},
		// multiport
		{v4, "-A PREROUTING -p tcp -m multiport --dports 22,80:90,443", func(r *rules.Rule) any { return r.Matches[0] },
			&rules.Multiport{Dir: rules.MultiportDst, Ports: []rules.PortRange{{22, 22}, {80, 90}, {443, 443}}}},
		{v4, "-A PREROUTING -p udp -m multiport ! --sports 53", func(r *rules.Rule) any { return r.Matches[0] },
			&rules.Multiport{Dir: rules.MultiportSrc, Ports: []rules.PortRange{{53, 53}}, Invert: true}},
		{v4, "-A PREROUTING -p sctp -m multiport --ports 1,2", func(r *rules.Rule) any { return r.Matches[0].(*rules.Multiport).Dir }, rules.MultiportAny},
		// length
		{v4, "-A PREROUTING -m length --length 40", func(r *rules.Rule) any { return r.Matches[0] }, &rules.Length{Min: 40, Max: 40}},
		{v4, "-A PREROUTING -m length ! --length 100:", func(r *rules.Rule) any { return r.Matches[0] }, &rules.Length{Min: 100, Max: 65535, Invert: true}},
		{v4, "-A PREROUTING -m length --length :99", func(r *rules.Rule) any { return r.Matches[0] }, &rules.Length{Min: 0, Max: 99}},
		// ttl / hl
		{v4, "-A PREROUTING -m ttl --ttl-eq 64", func(r *rules.Rule) any { return r.Matches[0] }, &rules.TTL{Op: rules.TTLEq, Value: 64}},
		{v4, "-A PREROUTING -m ttl ! --ttl-eq 64", func(r *rules.Rule) any { return r.Matches[0] }, &rules.TTL{Op: rules.TTLNe, Value: 64}},
		{v4, "-A PREROUTING -m ttl --ttl-lt 2", func(r *rules.Rule) any { return r.Matches[0] }, &rules.TTL{Op: rules.TTLLt, Value: 2}},
		{v4, "-A PREROUTING -m ttl --ttl-gt 200", func(r *rules.Rule) any { return r.Matches[0] }, &rules.TTL{Op: rules.TTLGt, Value: 200}},
		{v6, "-A PREROUTING -m hl --hl-lt 2", func(r *rules.Rule) any { return r.Matches[0] }, &rules.TTL{V6: true, Op: rules.TTLLt, Value: 2}},
		// iprange
		{v4, "-A PREROUTING -m iprange --src-range 10.0.0.1-10.0.0.9 ! --dst-range 10.1.0.0-10.2.0.0", func(r *rules.Rule) any { return r.Matches[0] },
			&rules.IPRange{SrcMin: a("10.0.0.1"), SrcMax: a("10.0.0.9"), DstMin: a("10.1.0.0"), DstMax: a("10.2.0.0"), HasSrc: true, HasDst: true, DstInv: true}},
		{v6, "-A PREROUTING -m iprange ! --src-range 2001:db8::1-2001:db8::ff", func(r *rules.Rule) any { return r.Matches[0] },
			&rules.IPRange{SrcMin: a("2001:db8::1"), SrcMax: a("2001:db8::ff"), HasSrc: true, SrcInv: true}},
		// dscp / tos
		{v4, "-A PREROUTING -m dscp --dscp-class EF", func(r *rules.Rule) any { return r.Matches[0] }, &rules.DSCP{Value: 46}},
		{v4, "-A PREROUTING -m dscp ! --dscp 0x0a", func(r *rules.Rule) any { return r.Matches[0] }, &rules.DSCP{Value: 10, Invert: true}},
		{v4, "-A PREROUTING -m tos --tos Minimize-Delay", func(r *rules.Rule) any { return r.Matches[0] }, &rules.TOS{Value: 0x10, Mask: 0x3f}},
		{v4, "-A PREROUTING -m tos ! --tos 0x08/0x0c", func(r *rules.Rule) any { return r.Matches[0] }, &rules.TOS{Value: 8, Mask: 0x0c, Invert: true}},
		{v4, "-A PREROUTING -m tos --tos 4", func(r *rules.Rule) any { return r.Matches[0] }, &rules.TOS{Value: 4, Mask: 0xff}},
		// pkttype, mac, comment
		{v4, "-A PREROUTING -m pkttype --pkt-type broadcast", func(r *rules.Rule) any { return r.Matches[0] }, &rules.PktType{Type: packet.PktBroadcast}},
		{v4, "-A PREROUTING -m pkttype ! --pkt-type unicast", func(r *rules.Rule) any { return r.Matches[0] }, &rules.PktType{Type: packet.PktHost, Invert: true}},
		{v4, "-A PREROUTING -m mac ! --mac-source 02:00:00:00:00:0A", func(r *rules.Rule) any { return r.Matches[0] },
			&rules.MAC{Addr: [6]byte{2, 0, 0, 0, 0, 10}, Invert: true}},
		{v4, `-A PREROUTING -m comment --comment "two words"`, func(r *rules.Rule) any { return r.Matches[0] }, &rules.Comment{Text: "two words"}},
		// targets
		{v4, "-A PREROUTING -j ACCEPT", func(r *rules.Rule) any { return r.Target.Kind }, rules.TargetAccept},
		{v4, "-A PREROUTING -j DROP", func(r *rules.Rule) any { return r.Target.Kind }, rules.TargetDrop},
		{v4, "-A PREROUTING -j RETURN", func(r *rules.Rule) any { return r.Target.Kind }, rules.TargetReturn},
		{v4, "-A PREROUTING", func(r *rules.Rule) any { return r.Target.Kind }, rules.TargetNone},
		{v4, "-A PREROUTING -j X", func(r *rules.Rule) any { return r.Target }, rules.Target{Kind: rules.TargetJump, Chain: "X"}},
		{v4, "-A PREROUTING -g X", func(r *rules.Rule) any { return r.Target }, rules.Target{Kind: rules.TargetGoto, Chain: "X"}},
		{v4, "-A PREROUTING --jump X", func(r *rules.Rule) any { return r.Target.Kind }, rules.TargetJump},
		{v4, "-A PREROUTING -j NOTRACK", func(r *rules.Rule) any { return r.Target.Kind }, rules.TargetNotrack},
		{v4, "-A PREROUTING -j CT --notrack", func(r *rules.Rule) any { return r.Target.Kind }, rules.TargetNotrack},
		{v4, `-A PREROUTING -j LOG --log-prefix "drop: " --log-level info`, func(r *rules.Rule) any {
			return [3]any{r.Target.Kind, r.Target.LogPrefix, r.Target.LogLevel}
		}, [3]any{rules.TargetLog, "drop: ", 6}},
		{v4, "-A PREROUTING -j LOG", func(r *rules.Rule) any { return r.Target.LogLevel }, 4},
		{v4, "-A PREROUTING -j LOG --log-level 2 --log-tcp-options", func(r *rules.Rule) any { return r.Target.Args },
			[]string{"--log-level", "2", "--log-tcp-options"}},
		{v4, "-A PREROUTING -j NFLOG --nflog-group 5 --nflog-prefix nf", func(r *rules.Rule) any {
			return [2]any{r.Target.Kind, r.Target.LogPrefix}
		}, [2]any{rules.TargetNFLog, "nf"}},
	}
	for _, tt := range tests {
		r := oneRule(t, tt.fam, tt.line)
		if got := tt.want(r); !reflect.DeepEqual(got, tt.exp) {
			t.Errorf("%s\n got %#v\nwant %#v", tt.line, got, tt.exp)
		}
		if r.Line != 5 {
			t.Errorf("%s: Line %d, want 5", tt.line, r.Line)
		}
	}
}

func TestParseExtMatches(t *testing.T) {
	v4 := packet.FamilyIPv4
	tests := []struct {
		line  string
		check func(t *testing.T, m rules.Match)
	}{
		{`-A PREROUTING -m u32 --u32 "0>>22&0x3C@8>>24&0x7=7"`, func(t *testing.T, m rules.Match) {
			if u := m.(*rules.U32); u.M == nil || u.Invert {
				t.Errorf("u32 %+v", u)
			}
		}},
		{`-A PREROUTING -m u32 ! --u32 "6&0xFF=17"`, func(t *testing.T, m rules.Match) {
			if !m.(*rules.U32).Invert {
				t.Error("u32 not inverted")
			}
		}},
		{`-A PREROUTING -m bpf --bytecode "4,48 0 0 9,21 0 1 17,6 0 0 65535,6 0 0 0"`, func(t *testing.T, m rules.Match) {
			if m.(*rules.BPF).F == nil {
				t.Error("no filter")
			}
		}},
		{`-A PREROUTING -m string --string "GET /" --algo kmp --to 200`, func(t *testing.T, m rules.Match) {
			if s := m.(*rules.String); s.M == nil || s.Invert {
				t.Errorf("string %+v", s)
			}
		}},
		{`-A PREROUTING -m string ! --hex-string "|0000ff0001|" --algo bm --from 40`, func(t *testing.T, m rules.Match) {
			if !m.(*rules.String).Invert {
				t.Error("string not inverted")
			}
		}},
		{`-A PREROUTING -m limit --limit 20/sec --limit-burst 50`, func(t *testing.T, m rules.Match) {
			if l := m.(*rules.Limit); l.Cfg.Burst != 50 {
				t.Errorf("limit %+v", l.Cfg)
			}
		}},
		{`-A PREROUTING -m hashlimit --hashlimit-above 50/sec --hashlimit-burst 100 --hashlimit-mode srcip,dstport --hashlimit-srcmask 24 --hashlimit-name dns`, func(t *testing.T, m rules.Match) {
			c := m.(*rules.Hashlimit).Cfg
			if !c.Above || c.SrcMask != 24 {
				t.Errorf("hashlimit %+v", c)
			}
		}},
		{`-A PREROUTING -m hashlimit ! --hashlimit-above 50/sec --hashlimit-name x`, func(t *testing.T, m rules.Match) {
			if m.(*rules.Hashlimit).Cfg.Above {
				t.Error("! --hashlimit-above is upto")
			}
		}},
		{`-A PREROUTING -m recent --rcheck --seconds 60 --hitcount 8 --name ssh`, func(t *testing.T, m rules.Match) {
			c := m.(*rules.Recent).Cfg
			want := recent.Config{Name: "ssh", Family: v4, RSource: true, Check: true, Seconds: 60, Hitcount: 8, Mask: netip.MustParseAddr("255.255.255.255")}
			if !reflect.DeepEqual(c, want) {
				t.Errorf("recent\n got %+v\nwant %+v", c, want)
			}
		}},
		{`-A PREROUTING -m recent ! --set --rdest --mask 255.255.255.0`, func(t *testing.T, m rules.Match) {
			c := m.(*rules.Recent).Cfg
			if !c.Set || !c.Invert || !c.RDest || c.RSource || c.Name != "DEFAULT" || c.Mask != netip.MustParseAddr("255.255.255.0") {
				t.Errorf("recent %+v", c)
			}
		}},
		{`-A PREROUTING -m set ! --match-set allow src,dst --return-nomatch`, func(t *testing.T, m rules.Match) {
			s := m.(*rules.Set)
			if s.SetName != "allow" || s.Set == nil || !s.Flags.Invert || !s.Flags.ReturnNomatch || len(s.Dirs) != 2 || s.Dirs[1] != ipset.DirDst {
				t.Errorf("set %+v", s)
			}
		}},
		{`-A PREROUTING -m set --match-set allow srcx,dst\\`, func(t *testing.T, m rules.Match) {
			// libxt_set reads the first three letters of a direction ("dst\" after a stray backslash).
			s := m.(*rules.Set)
			if len(s.Dirs) != 2 || s.Dirs[0] != ipset.DirSrc || s.Dirs[1] != ipset.DirDst {
				t.Errorf("set %+v", s)
			}
		}},
		{`-A PREROUTING -m set --set allow src ! --packets-eq 3`, func(t *testing.T, m rules.Match) {
			s := m.(*rules.Set)
			if s.Flags.PacketsOp != ipset.CounterNE || s.Flags.Packets != 3 {
				t.Errorf("set flags %+v", s.Flags)
			}
		}},
	}
	for _, tt := range tests {
		r := oneRule(t, v4, tt.line)
		if len(r.Matches) != 1 {
			t.Fatalf("%s: %d matches", tt.line, len(r.Matches))
		}
		tt.check(t, r.Matches[0])
	}
}

// TestOptionOwner: an option two loaded matches know goes where iptables'
// getopt table sends it: to the latest instance of the match whose first
// -m is the most recent.
func TestOptionOwner(t *testing.T) {
	rs := mustParse(t, packet.FamilyIPv4, wrap(
		"-A PREROUTING -m set --match-set allow src -m recent --name b --set",
		"-A PREROUTING -m recent --name a --rcheck -m recent --name b --set -m set --match-set allow src"))
	for i, r := range rs.Table("raw").Chain("PREROUTING").Rules {
		var sets, sets2 int
		for _, m := range r.Matches {
			switch m := m.(type) {
			case *rules.Set:
				sets++
			case *rules.Recent:
				if m.Cfg.Set {
					sets2++
				}
			}
		}
		if sets != 1 || sets2 != 1 {
			t.Errorf("rule %d: %d set matches, %d recent --set; want 1 and 1", i, sets, sets2)
		}
	}
}

// TestCommaExpansion: iptables' do_command loops sources outermost,
// destinations innermost, and every expanded rule keeps the line.
func TestCommaExpansion(t *testing.T) {
	rs := mustParse(t, packet.FamilyIPv4, wrap(
		"-A PREROUTING -j ACCEPT",
		"-A PREROUTING -s 10.0.0.0/8,192.168.1.0/24 -d 198.51.100.1,198.51.100.2 -j DROP",
		"-A PREROUTING -d 1.1.1.1,2.2.2.2 -j DROP"))
	c := rs.Table("raw").Chain("PREROUTING")
	want := []struct{ s, d string }{
		{"", ""},
		{"10.0.0.0/8", "198.51.100.1/32"}, {"10.0.0.0/8", "198.51.100.2/32"},
		{"192.168.1.0/24", "198.51.100.1/32"}, {"192.168.1.0/24", "198.51.100.2/32"},
		{"", "1.1.1.1/32"}, {"", "2.2.2.2/32"},
	}
	if len(c.Rules) != len(want) {
		t.Fatalf("%d rules, want %d", len(c.Rules), len(want))
	}
	for i, w := range want {
		r := c.Rules[i]
		got := struct{ s, d string }{prefix(r.Src), prefix(r.Dst)}
		if got != w {
			t.Errorf("rule %d: %v, want %v", i, got, w)
		}
	}
	for i := 1; i < 5; i++ {
		if c.Rules[i].Line != 6 || c.Rules[i].OrigSrc != "10.0.0.0/8,192.168.1.0/24" {
			t.Errorf("rule %d: line %d orig %q", i, c.Rules[i].Line, c.Rules[i].OrigSrc)
		}
	}
	// Expanded rules are distinct values.
	c.Rules[1].Src.Bits = 99
	if c.Rules[2].Src.Bits == 99 {
		t.Error("expanded rules share their address")
	}
}

func prefix(a rules.AddrMask) string {
	if !a.Set {
		return ""
	}
	return netip.PrefixFrom(a.Addr, a.Bits).String()
}

func TestInsertPositions(t *testing.T) {
	rs := mustParse(t, packet.FamilyIPv4, wrap(
		"-A X -m comment --comment a",
		"-A X -m comment --comment b",
		"-I X -m comment --comment c",   // head: c a b
		"-I X 2 -m comment --comment d", // c d a b
		"-I X 5 -m comment --comment e", // append: c d a b e
		"-I X 1 -s 1.1.1.1,2.2.2.2 -m comment --comment f",
		"--insert X 3 -m comment --comment g",
		"--append X -m comment --comment h",
	))
	var got []string
	for _, r := range rs.Table("raw").Chain("X").Rules {
		got = append(got, r.Matches[0].(*rules.Comment).Text)
	}
	want := []string{"f", "f", "g", "c", "d", "a", "b", "e", "h"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("order %v, want %v", got, want)
	}
	_, err := parse(t, packet.FamilyIPv4, wrap("-A X -j DROP", "-I X 3 -j DROP"))
	checkErr(t, err, 6, 6, "3", "index of insertion too big")
	_, err = parse(t, packet.FamilyIPv4, wrap("-I X 0 -j DROP"))
	checkErr(t, err, 5, 6, "0", "index of insertion")
}

func TestCountersAndText(t *testing.T) {
	rs := mustParse(t, packet.FamilyIPv4, wrap(
		"[12:3400] -A PREROUTING -p tcp -j DROP",
		"  [0:0] -I X -m comment --comment \"-A\"",
		"-A PREROUTING -c 5 6 -j ACCEPT",
	))
	pr := rs.Table("raw").Chain("PREROUTING").Rules
	if pr[0].Text != "-A PREROUTING -p tcp -j DROP" {
		t.Errorf("text %q", pr[0].Text)
	}
	if x := rs.Table("raw").Chain("X").Rules[0]; x.Text != `-I X -m comment --comment "-A"` {
		t.Errorf("-I text %q", x.Text)
	}
	if pr[1].Target.Kind != rules.TargetAccept || pr[1].Line != 7 {
		t.Errorf("-c rule %+v", pr[1])
	}
	for _, bad := range []string{"[1:] -A PREROUTING", "[a:b] -A PREROUTING", "[1:2]"} {
		_, err := parse(t, packet.FamilyIPv4, wrap(bad))
		var e *rules.Error
		if !errors.As(err, &e) || e.Line != 5 || e.Col != 1 {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// TestQuoting follows iptables-restore 1.8.9, each case loaded there and
// read back with iptables-legacy-save.
func TestQuoting(t *testing.T) {
	tests := []struct{ line, want string }{
		{`-A PREROUTING -m comment --comment "a \"quoted\" word"`, `a "quoted" word`},
		{`-A PREROUTING -m comment --comment "tab	inside"`, "tab\tinside"},
		{`-A PREROUTING -m comment --comment pre"mid dle"`, `premid dle`},
		{`-A PREROUTING -m comment --comment ""`, ``},
		{`-A PREROUTING -m comment --comment "back\\slash"`, `back\slash`},
		{`-A PREROUTING -m comment --comment "x\y"`, `xy`},
		{`-A PREROUTING -m comment --comment it's`, `it's`},
		{`-A PREROUTING -m comment --comment back\slash`, `back\slash`},
		{`-A PREROUTING -m comment --comment "open`, "open\n"},
	}
	for _, tt := range tests {
		r := oneRule(t, packet.FamilyIPv4, tt.line)
		if got := r.Matches[0].(*rules.Comment).Text; got != tt.want {
			t.Errorf("%s: %q, want %q", tt.line, got, tt.want)
		}
	}
	rs := mustParse(t, packet.FamilyIPv4, wrap(`-A PREROUTING -m comment --comment "open`))
	if len(rs.Warnings) != 1 || !strings.Contains(rs.Warnings[0].Msg, "left open") {
		t.Errorf("warnings %v, want one about the open quote", rs.Warnings)
	}
	for _, tt := range []struct {
		line string
		col  int
		word string
	}{
		{`-A PREROUTING -m comment --comment 'single quoted'`, 44, `quoted'`},
		{`-A PREROUTING -m comment --comment back\ slash`, 42, `slash`},
		{`-A PREROUTING -m comment --comment "a"b`, 39, `b`},
	} {
		_, err := parse(t, packet.FamilyIPv4, wrap(tt.line))
		checkErr(t, err, 5, tt.col, tt.word, "unexpected word")
	}
	_, err := parse(t, packet.FamilyIPv4, wrap(`-A PREROUTING -m comment --comment "`+strings.Repeat("x", 1100)+`"`))
	checkErr(t, err, 5, 36, "", "longer than 1023 bytes")
}

func TestChainsAndPolicies(t *testing.T) {
	rs := mustParse(t, packet.FamilyIPv4, `# comment
*filter
:INPUT DROP [5:6]
:FORWARD ACCEPT
:OUTPUT ACCEPT [0:0]
:USER - [0:0]
-N NEWC
-P FORWARD DROP
--policy OUTPUT DROP
-A INPUT -j NEWC
COMMIT
`)
	f := rs.Table("filter")
	if f == nil || f.Line != 2 {
		t.Fatalf("filter table %+v", f)
	}
	var names []string
	for _, c := range f.Chains {
		names = append(names, c.Name+"/"+c.Policy.String())
	}
	want := []string{"INPUT/DROP", "FORWARD/DROP", "OUTPUT/DROP", "USER/-", "NEWC/-"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("chains %v, want %v", names, want)
	}
	if c := f.Chain("USER"); c.Line != 6 || c.Builtin {
		t.Errorf("USER %+v", c)
	}
	if c := f.Chain("INPUT"); c.Line != 3 || !c.Builtin {
		t.Errorf("INPUT %+v", c)
	}
	// A table without any declaration still has its built-in chains.
	rs = mustParse(t, packet.FamilyIPv4, "*mangle\nCOMMIT\n*raw\nCOMMIT\n")
	if n := len(rs.Table("mangle").Chains); n != 5 {
		t.Errorf("mangle has %d chains", n)
	}
	if rs.Tables[0].Name != "mangle" || rs.Tables[1].Name != "raw" {
		t.Error("tables out of file order")
	}
}

func checkErr(t *testing.T, err error, line, col int, word, msg string) {
	t.Helper()
	var e *rules.Error
	if !errors.As(err, &e) {
		t.Errorf("error %v (%T), want *rules.Error", err, err)
		return
	}
	if e.Line != line || e.Col != col || e.Word != word || !strings.Contains(e.Msg, msg) || e.File != "t.rules" {
		t.Errorf("error %q\n got line %d col %d word %q msg %q\nwant line %d col %d word %q msg ~%q",
			err, e.Line, e.Col, e.Word, e.Msg, line, col, word, msg)
	}
}

func TestParseErrors(t *testing.T) {
	v4, v6 := packet.FamilyIPv4, packet.FamilyIPv6
	// r wraps one rule at line 5.
	r := func(s string) string { return wrap(s) }
	tests := []struct {
		name string
		fam  packet.Family
		text string
		line int
		col  int
		word string
		msg  string
	}{
		{"unknown match", v4, r("-A PREROUTING -m foo -j DROP"), 5, 18, "foo", `unsupported match "foo"`},
		{"conntrack", v4, r("-A PREROUTING -m conntrack --ctstate NEW -j DROP"), 5, 18, "conntrack", "needs connection tracking: sluice is stateless"},
		{"state", v4, r("-A PREROUTING -m state --state INVALID -j DROP"), 5, 18, "state", "keep this rule in the kernel's ruleset"},
		{"connlimit", v4, r("-A PREROUTING -m connlimit --connlimit-above 3"), 5, 18, "connlimit", "connection tracking"},
		{"unknown option", v4, r("-A PREROUTING -p tcp --bogus 1"), 5, 22, "--bogus", "unknown option"},
		{"listing option in a rule", v4, r("-A PREROUTING -x"), 5, 15, "-x", "not allowed in a rule"},
		{"bare word", v4, r("-A PREROUTING foo"), 5, 15, "foo", "unexpected word"},
		{"option of a match not loaded", v4, r("-A PREROUTING --dport 80"), 5, 15, "--dport", "unknown option"},
		{"udp option on tcp", v4, r("-A PREROUTING -p tcp --icmp-type 8"), 5, 22, "--icmp-type", "unknown option"},
		{"-o in PREROUTING", v4, r("-A PREROUTING -o eth0 -j DROP"), 5, 15, "-o", "can't use -o with PREROUTING"},
		{"-i in OUTPUT", v4, r("-A OUTPUT -i eth0"), 5, 11, "-i", "can't use -i with OUTPUT"},
		{"-o in INPUT", v4, "*filter\n:INPUT ACCEPT\n-A INPUT ! -o lo\nCOMMIT\n", 3, 12, "-o", "can't use -o with INPUT"},
		{"long iface", v4, r("-A PREROUTING -i abcdefghijklmnop"), 5, 18, "abcdefghijklmnop", "1 to 15 characters"},
		{"bad address", v4, r("-A PREROUTING -s 300.1.1.1 -j DROP"), 5, 18, "300.1.1.1", `bad address "300.1.1.1"`},
		{"host name", v4, r("-A PREROUTING -d example.com"), 5, 18, "example.com", "numeric addresses"},
		{"bad address in list", v4, r("-A PREROUTING -s 10.0.0.1,10.0.0.x"), 5, 18, "10.0.0.1,10.0.0.x", `"10.0.0.x"`},
		{"v6 address in v4", v4, r("-A PREROUTING -s ::1"), 5, 18, "::1", "not an IPv4 address"},
		{"v4 address in v6", v6, r("-A PREROUTING -d 1.2.3.4"), 5, 18, "1.2.3.4", "not an IPv6 address"},
		{"bad mask length", v4, r("-A PREROUTING -s 10.0.0.0/33"), 5, 18, "10.0.0.0/33", "invalid mask length"},
		{"bad mask", v4, r("-A PREROUTING -s 10.0.0.0/255.0.0.x"), 5, 18, "10.0.0.0/255.0.0.x", "invalid mask"},
		{"negated list", v4, r("-A PREROUTING ! -s 1.1.1.1,2.2.2.2"), 5, 20, "1.1.1.1,2.2.2.2", "! not allowed with multiple"},
		{"bad port", v4, r("-A PREROUTING -p tcp --dport 99999"), 5, 30, "99999", "invalid port"},
		{"bad port range", v4, r("-A PREROUTING -p udp --sport 80:abc"), 5, 30, "80:abc", `invalid port or port range "80:abc"`},
		{"bad port name", v4, r("-A PREROUTING -p tcp -m tcp --dport nosuchservice"), 5, 37, "nosuchservice", "invalid port"},
		{"bad multiport", v4, r("-A PREROUTING -p tcp -m multiport --dports 1,,2"), 5, 44, "1,,2", `invalid port or range ""`},
		{"too many multiport", v4, r("-A PREROUTING -p tcp -m multiport --dports 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15:16"), 5, 44, "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15:16", "too many ports"},
		{"multiport without -p", v4, r("-A PREROUTING -m multiport --dports 22"), 5, 18, "multiport", "multiport needs -p tcp"},
		{"multiport with ! -p", v4, r("-A PREROUTING ! -p tcp -m multiport --dports 22"), 5, 27, "multiport", "multiport needs"},
		{"tcp without -p", v4, r("-A PREROUTING -m tcp --dport 22"), 5, 18, "tcp", "match tcp needs -p tcp"},
		{"udp with -p tcp", v4, r("-A PREROUTING -p tcp -m udp --dport 22"), 5, 25, "udp", "match udp needs -p udp"},
		{"icmp in v6", v6, r("-A PREROUTING -p icmp -m icmp --icmp-type 8"), 5, 26, "icmp", "unsupported match"},
		{"bad icmp type", v4, r("-A PREROUTING -p icmp --icmp-type bogus"), 5, 35, "bogus", "invalid ICMP type"},
		{"bad protocol", v4, r("-A PREROUTING -p nosuch"), 5, 18, "nosuch", "unknown protocol"},
		{"! -p all", v4, r("-A PREROUTING ! -p all"), 5, 20, "all", "never match"},
		{"-p twice", v4, r("-A PREROUTING -p tcp -p udp"), 5, 22, "-p", "given twice"},
		{"-s twice", v4, r("-A PREROUTING -s 1.1.1.1 --src 2.2.2.2"), 5, 26, "--src", "given twice"},
		{"-f in v6", v6, r("-A PREROUTING -f"), 5, 15, "-f", "-f is IPv4 only"},
		{"-f twice", v4, r("-A PREROUTING -f -f"), 5, 18, "-f", "-f given twice"},
		{"double negation", v4, r("-A PREROUTING ! ! -s 1.1.1.1"), 5, 17, "!", "double negation"},
		{"old double negation", v4, r("-A PREROUTING ! -s ! 1.1.1.1"), 5, 20, "!", "intrapositioned negation"},
		{"dangling !", v4, r("-A PREROUTING -j DROP !"), 5, 23, "!", "! must come before"},
		{"intrapositioned ! on -s", v4, r("-A PREROUTING -s ! 10.0.0.0/8"), 5, 18, "!", "write ! -s VALUE"},
		{"intrapositioned ! on --dport", v4, r("-A PREROUTING -p tcp --dport ! 22"), 5, 30, "!", "old intrapositioned negation"},
		{"intrapositioned ! on -p", v4, r("-A PREROUTING -p ! 47"), 5, 18, "!", "iptables-restore refuses"},
		{"comment without --comment", v4, r("-A PREROUTING -m comment -j DROP"), 5, 18, "comment", "needs --comment"},
		{"nflog group over u16", v4, r("-A PREROUTING -j NFLOG --nflog-group 65536"), 5, 38, "65536", "from 0 to 65535"},
		{"nflog range and size", v4, r("-A PREROUTING -j NFLOG --nflog-range 1 --nflog-size 2"), 5, 40, "--nflog-size", "cannot go together"},
		{"udp port in hex", v4, r("-A PREROUTING -p udp --dport 0x16"), 5, 30, "0x16", "invalid port"},
		{"port range backwards", v4, r("-A PREROUTING -p tcp --dport 2000:1000"), 5, 30, "2000:1000", "invalid port"},
		{"multiport range backwards", v4, r("-A PREROUTING -p udp -m multiport --dports 53,2000:1000"), 5, 44, "53,2000:1000", "port"},
		{"byte burst under 16 b/s", v4, r("-A PREROUTING -m hashlimit --hashlimit-upto 10b/s --hashlimit-burst 17b --hashlimit-name h"), 5, 18, "hashlimit", "divide by zero"},
		{"address part over 255", v4, r("-A PREROUTING -s 256.0.0.1"), 5, 18, "256.0.0.1", "bad address"},
		{"host name", v4, r("-A PREROUTING -s example.com"), 5, 18, "example.com", "no host names"},
		{"IPv6 in IPv4", v4, r("-A PREROUTING -s ::1"), 5, 18, "::1", "not an IPv4 address"},
		{"short mask form", v4, r("-A PREROUTING -s 1.2.3.4/255.0"), 5, 18, "1.2.3.4/255.0", "invalid mask"},
		{"! -m", v4, r("-A PREROUTING ! -m tcp"), 5, 17, "-m", "cannot negate -m"},
		{"! -j", v4, r("-A PREROUTING ! -j DROP"), 5, 17, "-j", "cannot negate a target"},
		{"two targets", v4, r("-A PREROUTING -j DROP -j ACCEPT"), 5, 23, "-j", "one target"},
		{"missing value", v4, r("-A PREROUTING -p tcp --dport"), 5, 22, "--dport", "needs a value"},
		{"missing -m name", v4, r("-A PREROUTING -m"), 5, 15, "-m", "needs a value"},
		{"jump to missing chain", v4, r("-A PREROUTING -j NOPE"), 5, 18, "NOPE", `no chain or target named "NOPE"`},
		{"goto missing chain", v4, r("-A PREROUTING -g NOPE"), 5, 18, "NOPE", "no chain or target"},
		{"goto builtin target", v4, r("-A PREROUTING -g DROP"), 5, 18, "DROP", "-g needs a user chain"},
		{"jump to builtin chain", v4, r("-A X -j PREROUTING"), 5, 9, "PREROUTING", "cannot jump to a built-in chain"},
		{"unsupported target", v4, r("-A PREROUTING -j MARK --set-mark 1"), 5, 18, "MARK", "target MARK is not supported"},
		{"missing target", v4, r("-A PREROUTING -j --dport"), 5, 18, "--dport", "missing target name"},
		{"REJECT in raw", v4, r("-A X -j REJECT"), 5, 9, "REJECT", "REJECT is valid only"},
		{"NOTRACK in filter", v4, "*filter\n:INPUT ACCEPT\n-A INPUT -j NOTRACK\nCOMMIT\n", 3, 13, "NOTRACK", "only in the raw table"},
		{"CT without notrack", v4, r("-A PREROUTING -j CT"), 5, 18, "CT", "CT without --notrack"},
		{"CT zone", v4, r("-A PREROUTING -j CT --zone 1"), 5, 21, "--zone", "CT --zone changes connection tracking"},
		{"log prefix too long", v4, r("-A PREROUTING -j LOG --log-prefix 123456789012345678901234567890"), 5, 35, "123456789012345678901234567890", "29 characters"},
		{"bad log level", v4, r("-A PREROUTING -j LOG --log-level 9"), 5, 34, "9", "log level"},
		{"ttl-lt negated", v4, r("-A PREROUTING -m ttl ! --ttl-lt 5"), 5, 24, "--ttl-lt", "--ttl-lt cannot be negated"},
		{"ttl without op", v4, r("-A PREROUTING -m ttl"), 5, 18, "ttl", "ttl needs --ttl-eq"},
		{"dscp too big", v4, r("-A PREROUTING -m dscp --dscp 64"), 5, 30, "64", "not 0-63"},
		{"unknown dscp class", v4, r("-A PREROUTING -m dscp --dscp-class XX"), 5, 36, "XX", "unknown DSCP class"},
		{"bad pkttype", v4, r("-A PREROUTING -m pkttype --pkt-type anycast"), 5, 37, "anycast", "unknown packet type"},
		{"bad mac", v4, r("-A PREROUTING -m mac --mac-source 02:00"), 5, 35, "02:00", "invalid MAC"},
		{"mac in OUTPUT", v4, r("-A OUTPUT -m mac --mac-source 02:00:00:00:00:01"), 5, 14, "mac", "only in PREROUTING, INPUT and FORWARD"},
		{"comment negated", v4, r("-A PREROUTING -m comment ! --comment x"), 5, 28, "--comment", "--comment cannot be negated"},
		{"option twice", v4, r("-A PREROUTING -p tcp --dport 1 --dport 2"), 5, 32, "--dport", "--dport given twice"},
		{"syn and tcp-flags", v4, r("-A PREROUTING -p tcp --syn --tcp-flags SYN SYN"), 5, 28, "--tcp-flags", "only one of --tcp-flags and --syn"},
		{"bad tcp flag", v4, r("-A PREROUTING -p tcp --tcp-flags SYN,FOO SYN"), 5, 34, "SYN,FOO", "unknown TCP flag"},
		{"tcp flag ECE", v4, r("-A PREROUTING -p tcp --tcp-flags SYN,ECE SYN"), 5, 34, "SYN,ECE", "unknown TCP flag"},
		{"tcp flag CWR", v4, r("-A PREROUTING -p tcp --tcp-flags ALL CWR"), 5, 38, "CWR", "unknown TCP flag"},
		{"iprange empty", v4, r("-A PREROUTING -m iprange"), 5, 18, "iprange", "iprange needs"},
		{"iprange v6 in v4", v4, r("-A PREROUTING -m iprange --src-range ::1-::2"), 5, 38, "::1-::2", "invalid address range"},
		{"u32 syntax", v4, r(`-A PREROUTING -m u32 --u32 "0>>22&"`), 5, 28, "0>>22&", ""},
		{"u32 wide shift", v4, r(`-A PREROUTING -m u32 --u32 "6&0xFF=6&&0>>32=0"`), 5, 28, "6&0xFF=6&&0>>32=0", "u32 shift by 32: the kernel refuses"},
		{"bpf negated", v4, r(`-A PREROUTING -m bpf ! --bytecode "1,6 0 0 0"`), 5, 24, "--bytecode", "--bytecode cannot be negated"},
		{"bpf pinned", v4, r(`-A PREROUTING -m bpf --object-pinned /sys/fs/bpf/x`), 5, 22, "--object-pinned", "eBPF"},
		{"string without algo", v4, r(`-A PREROUTING -m string --string x`), 5, 18, "string", "--algo"},
		{"set without file", v4, r(`-A PREROUTING -m set --match-set nosuch src`), 5, 34, "nosuch", `no ipset named "nosuch"`},
		{"set bad dir", v4, r(`-A PREROUTING -m set --match-set allow up`), 5, 40, "up", `direction "up"`},
		{"--set after -m set", v4, r(`-A PREROUTING -m recent --name a --rcheck -m set --match-set allow src -m recent --name b --set`), 5, 91, "--set", "belongs to -m set"},
		{"limit burst", v4, r(`-A PREROUTING -m limit --limit-burst 20000`), 5, 38, "20000", "not 0-10000"},
		{"hashlimit no name", v4, r(`-A PREROUTING -m hashlimit --hashlimit-upto 5/s`), 5, 18, "hashlimit", "--hashlimit-name"},
		{"recent two ops", v4, r(`-A PREROUTING -m recent --set --rcheck`), 5, 31, "--rcheck", "one of --set"},
		{"recent no op", v4, r(`-A PREROUTING -m recent --name x`), 5, 18, "recent", "recent needs one of"},

		// File structure.
		{"missing COMMIT", v4, "# c\n*raw\n:PREROUTING ACCEPT\n-A PREROUTING -j DROP\n", 2, 1, "*raw", "COMMIT expected"},
		{"table line indented", v4, "  *filter\n", 1, 3, "*filter", "line outside a table"},
		{"table in table", v4, "*raw\n*filter\nCOMMIT\n", 2, 1, "*filter", `starts before table "raw" is committed`},
		{"COMMIT outside", v4, "\n  COMMIT\n", 2, 3, "COMMIT", "COMMIT outside a table"},
		{"nat", v4, "*nat\nCOMMIT\n", 1, 2, "nat", "connection tracking"},
		{"unknown table", v4, "*foo\nCOMMIT\n", 1, 2, "foo", `unknown table "foo"`},
		{"no table name", v4, "* \nCOMMIT\n", 1, 1, "* ", "table name invalid"},
		{"COMMIT with a space", v4, "*raw\nCOMMIT \n", 2, 1, "COMMIT", "COMMIT must be the whole line"},
		{"CRLF", v4, "*raw\r\nCOMMIT\r\n", 1, 5, `\r`, "carriage return"},
		{"COMMIT without its newline", v4, "*raw\nCOMMIT", 2, 1, "COMMIT", "needs its newline"},
		{"white space line", v4, "*raw\n  \nCOMMIT\n", 2, 1, "  ", "white space only"},
		{"indented comment", v4, "*raw\n  # x\nCOMMIT\n", 2, 3, "#", "unsupported command"},
		{"rule outside table", v4, "-A INPUT -j DROP\n", 1, 1, "-A INPUT -j DROP", "line outside a table"},
		{"no such chain", v4, r("-A NOPE -j DROP"), 5, 4, "NOPE", `no chain "NOPE" in table raw`},
		{"chain declared twice", v4, r(":X - [0:0]"), 5, 2, "X", "declared twice"},
		{"user chain policy", v4, r(":Y ACCEPT [0:0]"), 5, 4, "ACCEPT", "cannot have a policy"},
		{"builtin policy", v4, r(":PREROUTING - [0:0]"), 5, 13, "-", "must be ACCEPT or DROP"},
		{"chain no policy", v4, r(":Y"), 5, 2, "Y", "needs a policy"},
		{"chain no name", v4, r(":"), 5, 1, ":", "chain name invalid"},
		{"chain name target", v4, r(":DROP - [0:0]"), 5, 2, "DROP", "target name"},
		{"chain name long", v4, r(":ABCDEFGHIJKLMNOPQRSTUVWXYZ012 -"), 5, 2, "ABCDEFGHIJKLMNOPQRSTUVWXYZ012", "longer than 28"},
		{"chain name dash", v4, r("-N -X"), 5, 4, "-X", "cannot start with"},
		{"-N exists", v4, r("-N X"), 5, 4, "X", "already exists"},
		{"-P user chain", v4, r("-P X DROP"), 5, 4, "X", "built-in chain"},
		{"-P bad policy", v4, r("-P PREROUTING RETURN"), 5, 15, "RETURN", "ACCEPT or DROP"},
		{"unsupported command", v4, r("-D PREROUTING 1"), 5, 1, "-D", "unsupported command"},
		{"-A without chain", v4, r("-A"), 5, 1, "-A", "missing chain name"},
		{"chain loop", v4, "*raw\n:PREROUTING ACCEPT\n:A - [0:0]\n:B - [0:0]\n-A A -j B\n-A B -p tcp -j A\nCOMMIT\n", 6, 16, "A", "chain loop"},
		{"chain loop goto", v4, "*raw\n:A - [0:0]\n-A A -g A\nCOMMIT\n", 3, 9, "A", "chain loop"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := parse(t, tt.fam, tt.text)
			if err == nil {
				t.Fatalf("no error; parsed %d tables", len(rs.Tables))
			}
			if rs != nil {
				t.Error("a ruleset came back with the error")
			}
			checkErr(t, err, tt.line, tt.col, tt.word, tt.msg)
		})
	}
}

// TestReversedLength: libxt_length takes --length 100:50, and the kernel
// then never matches it; sluice takes it too, and says so.
func TestReversedLength(t *testing.T) {
	rs := mustParse(t, packet.FamilyIPv4, wrap("-A PREROUTING -m length --length 100:50", "-A PREROUTING -m length ! --length 9:1"))
	if len(rs.Warnings) != 2 || !strings.Contains(rs.Warnings[0].Msg, "never matches") || !strings.Contains(rs.Warnings[1].Msg, "every packet") {
		t.Errorf("warnings %v", rs.Warnings)
	}
	if m := rs.Table("raw").Chain("PREROUTING").Rules[0].Matches[0].(*rules.Length); m.Min != 100 || m.Max != 50 {
		t.Errorf("length %+v", m)
	}
}

func TestWarnings(t *testing.T) {
	rs := mustParse(t, packet.FamilyIPv4, "*filter\n:INPUT ACCEPT\n-A INPUT -p tcp -j REJECT --reject-with tcp-reset\nCOMMIT\n")
	if len(rs.Warnings) != 1 || rs.Warnings[0].Line != 3 || !strings.Contains(rs.Warnings[0].Msg, "REJECT") {
		t.Errorf("warnings %v", rs.Warnings)
	}
	if r := rs.Table("filter").Chain("INPUT").Rules[0]; r.Target.Kind != rules.TargetReject || !r.Target.Terminal() {
		t.Errorf("REJECT target %+v", r.Target)
	}
}
