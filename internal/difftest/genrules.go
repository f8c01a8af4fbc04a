package difftest

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
)

// Case is one generated (or hand-written) input for both sides: the rules
// of each family (either may be empty) and the ipset save text.
type Case struct {
	Rules4, Rules6, Sets []byte
}

// SetsText is the ipset save text every generated case loads: sets of
// each supported type for each family, whose members come from the same
// address and port pools the frame generator draws from.
const SetsText = `create d4ip hash:ip family inet hashsize 1024 maxelem 65536
add d4ip 198.51.100.1
add d4ip 198.51.100.3
add d4ip 10.1.2.3
create d4net hash:net family inet hashsize 1024 maxelem 65536
add d4net 198.51.100.0/24
add d4net 198.51.100.4/30 nomatch
add d4net 10.0.0.0/8
add d4net 203.0.113.0/25
create d4n1 hash:net family inet hashsize 1024 maxelem 65536
add d4n1 198.51.100.0/25
add d4n1 198.51.100.2 nomatch
create d4n2 hash:net family inet hashsize 1024 maxelem 65536
add d4n2 198.51.100.0/30
add d4n2 10.1.0.0/16
create d4n3 hash:net family inet hashsize 1024 maxelem 65536
add d4n3 0.0.0.0/1
add d4n3 10.0.0.0/8 nomatch
add d4n3 10.1.2.3
create d4n4 hash:net family inet hashsize 1024 maxelem 65536
add d4n4 192.0.2.0/24
add d4n4 203.0.113.0/24
create d4n5 hash:net family inet hashsize 1024 maxelem 65536
add d4n5 198.51.100.7
add d4n5 198.51.100.0/28 nomatch
add d4n5 198.0.0.0/8
create d4n6 hash:net family inet hashsize 1024 maxelem 65536
add d4n6 128.0.0.0/1
add d4n6 224.0.0.0/4 nomatch
create d4n7 hash:net family inet hashsize 1024 maxelem 65536
add d4n7 198.51.100.4/31
create d4n8 hash:net family inet hashsize 1024 maxelem 65536
add d4n8 10.0.0.0/9
add d4n8 203.0.113.64/26
create d4n9 hash:net family inet hashsize 1024 maxelem 65536
add d4n9 198.51.100.0/24 nomatch
add d4n9 198.51.0.0/16
create d4ipport hash:ip,port family inet hashsize 1024 maxelem 65536
add d4ipport 198.51.100.2,tcp:80
add d4ipport 198.51.100.2,udp:53
add d4ipport 192.0.2.1,tcp:22
add d4ipport 198.51.100.5,icmp:8/0
create d4netport hash:net,port family inet hashsize 1024 maxelem 65536
add d4netport 198.51.100.0/24,tcp:443
add d4netport 10.0.0.0/8,udp:1000
add d4netport 198.51.100.0/26,tcp:22 nomatch
create d4ipportip hash:ip,port,ip family inet hashsize 1024 maxelem 65536
add d4ipportip 198.51.100.1,tcp:80,192.0.2.1
add d4ipportip 198.51.100.6,udp:53,192.0.2.1
create d4bm bitmap:ip range 198.51.100.0-198.51.100.255
add d4bm 198.51.100.2
add d4bm 198.51.100.6
create dport bitmap:port range 0-1024
add dport 22
add dport 53
add dport 80
add dport 443
create d4list list:set size 8
add d4list d4ip
add d4list d4net
create d6ip hash:ip family inet6 hashsize 1024 maxelem 65536
add d6ip 2001:db8:1::7
add d6ip 2001:db8:2::1
create d6net hash:net family inet6 hashsize 1024 maxelem 65536
add d6net 2001:db8:1::/48
add d6net 2001:db8:1::8/128 nomatch
add d6net 2001:db8:ffff::/48
create d6ipport hash:ip,port family inet6 hashsize 1024 maxelem 65536
add d6ipport 2001:db8:1::7,tcp:80
add d6ipport 2001:db8:1::8,udp:53
add d6ipport 2001:db8:2::1,ipv6-icmp:128/0
create d6netport hash:net,port family inet6 hashsize 1024 maxelem 65536
add d6netport 2001:db8::/32,tcp:443
add d6netport 2001:db8:1::/64,udp:1000
create d6ipportip hash:ip,port,ip family inet6 hashsize 1024 maxelem 65536
add d6ipportip 2001:db8:1::7,tcp:22,2001:db8::1
create d6list list:set size 8
add d6list d6ip
add d6list d6net
`

// GotoFromBuiltin lets the generator write -g from a built-in chain (a
// user chain entered that way that falls off its end applies the hook's
// policy: ipt_do_table's "stackidx == 0" branch; quirk case goto-underflow).
var GotoFromBuiltin = true

type setDef struct {
	name string
	dims int
	fam  int // 4, 6 or 0 (either)
}

var setDefs = []setDef{
	{"d4ip", 1, 4}, {"d4net", 1, 4}, {"d4ipport", 2, 4}, {"d4netport", 2, 4}, {"d4ipportip", 3, 4},
	{"d4bm", 1, 4}, {"dport", 1, 0}, {"d4list", 1, 4},
	{"d6ip", 1, 6}, {"d6net", 1, 6}, {"d6ipport", 2, 6}, {"d6netport", 2, 6}, {"d6ipportip", 3, 6},
	{"d6list", 1, 6},
}

// Needles are the strings and byte patterns string, u32 and bpf rules look
// for; the frame generator puts them into payloads.
var needles = []string{"GET /xmlrpc.php", "attack", "Attack", "\x00\x00\xff\x00\x01", "\xde\xad\xbe\xef", "\x12\x34", "USER root", "ping"}

// bpfPrograms are real tcpdump -ddd output (engine/cbpf/testdata).
var (
	bpfOnce     sync.Once
	bpfPrograms []string
)

func loadBPF() []string {
	bpfOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		dir := filepath.Join(filepath.Dir(file), "..", "..", "engine", "cbpf", "testdata")
		names, _ := filepath.Glob(filepath.Join(dir, "*.golden"))
		sort.Strings(names)
		for _, n := range names {
			b, err := os.ReadFile(n)
			if err != nil {
				continue
			}
			for _, l := range strings.Split(string(b), "\n") {
				l = strings.TrimSpace(l)
				if l != "" && l[0] != '#' {
					bpfPrograms = append(bpfPrograms, l)
				}
			}
		}
		if len(bpfPrograms) == 0 {
			// tcpdump -ddd 'icmp', should the tree not be at hand.
			bpfPrograms = []string{"7,48 0 0 0,84 0 0 240,21 0 3 64,48 0 0 9,21 0 1 1,6 0 0 65535,6 0 0 0"}
		}
	})
	return bpfPrograms
}

// ruleGen writes one family's ruleset.
type ruleGen struct {
	r   *rand.Rand
	v6  bool
	seq int // unique names for hashlimit
	b   strings.Builder
}

func (g *ruleGen) n(k int) int                  { return g.r.IntN(k) }
func (g *ruleGen) p(pct int) bool               { return g.r.IntN(100) < pct }
func pick[T any](g *ruleGen, xs []T) T          { return xs[g.r.IntN(len(xs))] }
func (g *ruleGen) printf(f string, args ...any) { fmt.Fprintf(&g.b, f, args...) }

// GenerateCase returns the seeded case: seed%3 == 0 is IPv4 only, 1 is
// IPv6 only, 2 both.
func GenerateCase(seed int64) Case {
	c := Case{Sets: []byte(SetsText)}
	r := rand.New(rand.NewPCG(uint64(seed), 0x5117ce))
	switch seed % 3 {
	case 0:
		c.Rules4 = GenerateRules(r, false)
	case 1:
		c.Rules6 = GenerateRules(r, true)
	default:
		c.Rules4 = GenerateRules(r, false)
		c.Rules6 = GenerateRules(r, true)
	}
	return c
}

// GenerateRules returns an iptables-save (or ip6tables-save) text with raw,
// mangle and filter tables, user chains forming a DAG, and rules in the
// ingress chains (raw and mangle PREROUTING, mangle and filter INPUT).
func GenerateRules(r *rand.Rand, v6 bool) []byte {
	g := &ruleGen{r: r, v6: v6}
	fam := "iptables"
	if v6 {
		fam = "ip6tables"
	}
	g.printf("# generated by internal/difftest (%s)\n", fam)
	tables := []struct {
		name    string
		builtin []string
		ingress []string
	}{
		{"raw", []string{"PREROUTING", "OUTPUT"}, []string{"PREROUTING"}},
		{"mangle", []string{"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"}, []string{"PREROUTING", "INPUT"}},
		{"filter", []string{"INPUT", "FORWARD", "OUTPUT"}, []string{"INPUT"}},
	}
	for _, t := range tables {
		if t.name != "filter" && g.p(15) {
			continue // a table left out
		}
		nuser := g.n(4)
		users := make([]string, nuser)
		for i := range users {
			users[i] = fmt.Sprintf("%s_U%d", strings.ToUpper(t.name[:1]), i)
		}
		g.printf("*%s\n", t.name)
		for _, c := range t.builtin {
			pol := "ACCEPT"
			if slicesContains(t.ingress, c) && g.p(20) {
				pol = "DROP"
			}
			g.printf(":%s %s [0:0]\n", c, pol)
		}
		for _, u := range users {
			g.printf(":%s - [0:0]\n", u)
		}
		for _, c := range t.ingress {
			for k := 2 + g.n(9); k > 0; k-- {
				g.rule(t.name, c, true, users)
			}
		}
		for i, u := range users {
			for k := 1 + g.n(6); k > 0; k-- {
				g.rule(t.name, u, false, users[i+1:])
			}
		}
		g.printf("COMMIT\n")
	}
	return []byte(g.b.String())
}

func slicesContains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

// rule writes one -A line of chain in table; targets lists the user chains
// it may jump to.
func (g *ruleGen) rule(table, chain string, builtin bool, targets []string) {
	var parts []string
	add := func(s ...string) { parts = append(parts, s...) }
	inv := func(pct int) string {
		if g.p(pct) {
			return "! "
		}
		return ""
	}
	// The fixed part.
	var src, dst string
	if g.p(30) {
		src = g.srcSpec()
	}
	if g.p(20) {
		dst = g.dstSpec()
	}
	list := strings.Contains(src+dst, ",") // then iptables allows no ! on either
	for _, a := range []struct{ opt, spec string }{{"-s", src}, {"-d", dst}} {
		if a.spec == "" {
			continue
		}
		if list {
			add(a.opt + " " + a.spec)
		} else {
			add(inv(20) + a.opt + " " + a.spec)
		}
	}
	if g.p(10) {
		add(inv(30) + "-i " + pick(g, []string{"sl-b", "sl+", "eth0", "lo", "s+"}))
	}
	proto := ""
	protoInv := false
	if g.p(60) {
		if g.v6 {
			proto = pick(g, []string{"tcp", "tcp", "udp", "udp", "ipv6-icmp", "icmpv6", "all", "6", "17", "58", "44", "59", "50", "60", "0", "47"})
		} else {
			proto = pick(g, []string{"tcp", "tcp", "udp", "udp", "icmp", "all", "6", "17", "1", "47", "50", "132", "0"})
		}
		protoInv = g.p(10) && proto != "all" && proto != "0"
		if protoInv {
			add("! -p " + proto)
		} else {
			add("-p " + proto)
		}
	}
	if !g.v6 && g.p(8) {
		add(inv(40) + "-f")
	}
	pnum := map[string]string{"tcp": "tcp", "6": "tcp", "udp": "udp", "17": "udp", "icmp": "icmp", "1": "icmp",
		"ipv6-icmp": "icmp6", "icmpv6": "icmp6", "58": "icmp6"}[proto]
	if protoInv {
		pnum = ""
	}
	var ms []string
	for k := g.n(4); k > 0; k-- {
		ms = append(ms, g.match(pnum, table, chain))
	}
	add(loadable(ms)...)
	add(g.target(table, chain, builtin, targets))
	line := "-A " + chain
	for _, p := range parts {
		if p != "" {
			line += " " + p
		}
	}
	g.printf("%s\n", strings.TrimRight(line, " "))
}

// loadable reorders a rule's matches so that iptables-restore takes it:
// a recent --set after -m set, when -m recent came first, would be the set
// match's --set (rules.extOpt explains iptables' choice), so then the set
// matches go first. Other rules are left as generated.
func loadable(ms []string) []string {
	firstRecent, firstSet, recentSet := -1, -1, false
	for i, m := range ms {
		switch {
		case strings.HasPrefix(m, "-m recent"):
			if firstRecent < 0 {
				firstRecent = i
			}
			recentSet = recentSet || firstSet >= 0 && strings.Contains(m, " --set")
		case strings.HasPrefix(m, "-m set"):
			if firstSet < 0 {
				firstSet = i
			}
		}
	}
	if !recentSet || firstRecent > firstSet {
		return ms
	}
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		if strings.HasPrefix(m, "-m set") {
			out = append(out, m)
		}
	}
	for _, m := range ms {
		if !strings.HasPrefix(m, "-m set") {
			out = append(out, m)
		}
	}
	return out
}

func (g *ruleGen) srcSpec() string {
	if g.v6 {
		return pick(g, []string{"2001:db8:1::7", "2001:db8:1::/48", "2001:db8::/32", "fe80::/10", "2001:db8:1::8/127",
			"2001:db8:1::7/ffff:ffff:0:ffff:ffff:ffff:ffff:ffff", "::/0", "2001:db8:2::1,2001:db8:1::8", "::ffff:0:0/96", "::/128"})
	}
	return pick(g, []string{"198.51.100.1", "198.51.100.0/24", "198.51.100.0/255.255.255.248", "198.51.0.7/255.255.0.255",
		"10.0.0.0/8", "192.0.2.0/24", "0.0.0.0/0", "203.0.113.0/25", "198.51.100.4/30", "224.0.0.0/4",
		"198.51.100.2,10.1.2.3", "0.0.0.0/8", "198.51.100.3/0.0.0.1"})
}

func (g *ruleGen) dstSpec() string {
	if g.v6 {
		return pick(g, []string{"2001:db8::1", "2001:db8::/64", "ff00::/8", "ff02::1", "2001:db8:5::/48", "::/0", "2001:db8::1/ffff::ffff"})
	}
	return pick(g, []string{"192.0.2.1", "192.0.2.0/24", "255.255.255.255", "224.0.0.0/4", "192.0.2.1/255.255.0.255",
		"203.0.113.9", "192.0.2.255", "192.0.2.1,203.0.113.9"})
}

func portSpec(g *ruleGen) string {
	ps := []string{"22", "53", "80", "443", "1000", "0", "1024:65535", "0:1023", "80:80", "1000:2000", "ssh", "http", ":1023", "8080:"}
	return pick(g, ps)
}

func (g *ruleGen) match(pnum, table, chain string) string {
	inv := func(pct int) string {
		if g.p(pct) {
			return "! "
		}
		return ""
	}
	kinds := []string{"comment", "length", "ttl", "iprange", "dscp", "tos", "pkttype", "mac", "u32", "bpf", "string", "string", "set", "set", "set", "limit", "hashlimit", "recent", "recent"}
	switch pnum {
	case "tcp":
		kinds = append(kinds, "tcp", "tcp", "tcp", "tcp", "multiport", "multiport")
	case "udp":
		kinds = append(kinds, "udp", "udp", "udp", "multiport", "multiport")
	case "icmp", "icmp6":
		kinds = append(kinds, pnum, pnum, pnum)
	}
	switch k := pick(g, kinds); k {
	case "tcp":
		s := "-m tcp"
		if g.p(50) {
			s += " " + inv(20) + "--sport " + portSpec(g)
		}
		if g.p(60) {
			s += " " + inv(20) + "--dport " + portSpec(g)
		}
		if g.p(20) {
			s += " " + inv(30) + "--tcp-option " + pick(g, []string{"2", "3", "4", "8", "1", "30"})
		}
		// Flags go last: sluice's parser refuses "! --syn ! --opt" (a
		// parser bug, see TestParserAcceptsInvertedFlagOptions).
		switch g.n(4) {
		case 0:
			s += " " + inv(20) + "--syn"
		case 1:
			fl := []string{"FIN", "SYN", "RST", "PSH", "ACK", "URG", "ALL", "NONE"}
			mask := g.flagList(fl)
			comp := g.flagList(fl)
			s += " " + inv(20) + "--tcp-flags " + mask + " " + comp
		}
		return s
	case "udp":
		s := "-m udp"
		if g.p(50) {
			s += " " + inv(20) + "--sport " + portSpec(g)
		}
		if g.p(60) {
			s += " " + inv(20) + "--dport " + portSpec(g)
		}
		return s
	case "icmp":
		t := pick(g, []string{"echo-request", "echo-reply", "8", "0", "3", "3/4", "fragmentation-needed", "11", "11/1", "any", "5", "13", "255", "3/255"})
		return "-m icmp " + inv(20) + "--icmp-type " + t
	case "icmp6":
		t := pick(g, []string{"echo-request", "echo-reply", "128", "129", "1", "1/4", "2", "3", "135", "136", "133", "143", "128/1", "4/0", "packet-too-big"})
		return "-m icmp6 " + inv(20) + "--icmpv6-type " + t
	case "multiport":
		opt := pick(g, []string{"--dports", "--sports", "--ports"})
		var ps []string
		for k := 1 + g.n(4); k > 0; k-- {
			ps = append(ps, pick(g, []string{"22", "53", "80", "443", "1000:2000", "0", "8080", "1:1023"}))
		}
		return "-m multiport " + inv(20) + opt + " " + strings.Join(ps, ",")
	case "comment":
		return "-m comment --comment \"" + pick(g, []string{"a comment", "x", "drop: it's bad", "Ünïcode ok"}) + "\""
	case "length":
		return "-m length " + inv(20) + "--length " + pick(g, []string{"0:60", "40", "61:100", "100:65535", "28:28", "48:1500", ":64", "1000:"})
	case "ttl":
		if g.v6 {
			op := pick(g, []string{"--hl-eq", "--hl-lt", "--hl-gt", "! --hl-eq"})
			return "-m hl " + op + " " + pick(g, []string{"0", "1", "2", "64", "128", "255"})
		}
		op := pick(g, []string{"--ttl-eq", "--ttl-lt", "--ttl-gt", "! --ttl-eq"})
		return "-m ttl " + op + " " + pick(g, []string{"0", "1", "2", "64", "128", "255"})
	case "iprange":
		var rs []string
		if g.v6 {
			rs = []string{"2001:db8:1::1-2001:db8:1::7", "2001:db8::1-2001:db8::1", "2001:db8:1::8-2001:db8:2::1", "::-2001:db8::"}
		} else {
			rs = []string{"198.51.100.1-198.51.100.3", "10.0.0.0-10.255.255.255", "192.0.2.1-192.0.2.1", "198.51.100.5-203.0.113.77", "0.0.0.0-0.0.0.0"}
		}
		s := "-m iprange"
		if g.p(60) {
			s += " " + inv(20) + "--src-range " + pick(g, rs)
		}
		if g.p(50) || s == "-m iprange" {
			s += " " + inv(20) + "--dst-range " + pick(g, rs)
		}
		return s
	case "dscp":
		if g.p(50) {
			return "-m dscp " + inv(20) + "--dscp-class " + pick(g, []string{"EF", "AF11", "CS1", "BE", "AF41"})
		}
		return "-m dscp " + inv(20) + "--dscp " + pick(g, []string{"0", "46", "0x2e", "10", "63", "8"})
	case "tos":
		return "-m tos " + inv(20) + "--tos " + pick(g, []string{"0x10", "minimize-delay", "0x08/0x08", "0", "0xb8", "0x02/0x03", "normal-service", "0xff/0xff"})
	case "pkttype":
		return "-m pkttype " + inv(20) + "--pkt-type " + pick(g, []string{"unicast", "broadcast", "multicast", "host"})
	case "mac":
		return "-m mac " + inv(20) + "--mac-source " + pick(g, []string{"02:00:00:00:00:01", "02:00:00:00:00:02", "02:AA:bb:00:00:03", "00:00:00:00:00:00"})
	case "u32":
		var es []string
		if g.v6 {
			es = []string{"0>>28=6", "6&0xFF=6", "6&0xFF=17", "40&0xFFFF=0:1023", "40>>16=1000:2000", "0>>28=4", "4&0xFFFF=0:64", "48&0xFFFF=0x1234", "100=0"}
		} else {
			es = []string{"0>>22&0x3C@8>>24&0x7=7", "0>>28=4", "6&0x1FFF=0", "6&0x1FFF=1:0x1FFF", "9&0xFF=6", "0>>22&0x3C@0>>16=22:80",
				"0>>22&0x3C@0&0xFFFF=53", "0>>22&0x3C@12>>26&0x3F=0x02", "0&0xFFFF=0:100", "0>>22&0x3C@8=0x12340000:0x1234FFFF", "5000=0", "0>>22&0x3C@8&0xFF000000=0x1000000&&0>>28=4"}
		}
		return "-m u32 " + inv(15) + "--u32 \"" + pick(g, es) + "\""
	case "bpf":
		return "-m bpf --bytecode \"" + pick(g, loadBPF()) + "\""
	case "string":
		s := "-m string --algo " + pick(g, []string{"bm", "kmp"})
		from := 0
		if g.p(30) {
			from = pick(g, []int{0, 20, 28, 40, 60})
			s += fmt.Sprintf(" --from %d", from)
		}
		if g.p(40) {
			s += fmt.Sprintf(" --to %d", from+pick(g, []int{0, 8, 40, 100, 200, 65535 - from}))
		}
		nd := pick(g, needles)
		if printable(nd) && g.p(70) {
			s += " " + inv(15) + "--string \"" + nd + "\""
		} else {
			s += " " + inv(15) + "--hex-string \"|" + fmt.Sprintf("%x", nd) + "|\""
		}
		if g.p(25) {
			s += " --icase"
		}
		return s
	case "set":
		var cands []setDef
		for _, d := range setDefs {
			if d.fam == 0 || (d.fam == 6) == g.v6 {
				cands = append(cands, d)
			}
		}
		d := pick(g, cands)
		if d.name == "d4net" && g.p(60) {
			// One of the other IPv4 hash:net sets: several on one
			// address share grouped lookups (engine/ipset group4).
			d.name = fmt.Sprintf("d4n%d", 1+g.n(9))
		}
		dims := d.dims
		if g.p(10) {
			dims = 1 + g.n(3) // fewer or more directions than the set has dimensions
		}
		dirs := make([]string, dims)
		for i := range dirs {
			dirs[i] = pick(g, []string{"src", "dst"})
		}
		s := "-m set " + inv(20) + "--match-set " + d.name + " " + strings.Join(dirs, ",")
		if g.p(15) {
			s += " --return-nomatch"
		}
		return s
	case "limit":
		rate := pick(g, []string{"1/hour", "1/day", "2/hour", "1/minute"})
		burst := pick(g, []string{"1", "2", "5", "10", "30"})
		if rate == "1/day" {
			burst = "1" // user2credits(avg*burst) wraps its u32 beyond: checkentry refuses
		}
		return "-m limit --limit " + rate + " --limit-burst " + burst
	case "hashlimit":
		g.seq++
		name := fmt.Sprintf("hl%d%s", g.seq, map[bool]string{false: "", true: "v6"}[g.v6])
		dir := pick(g, []string{"--hashlimit-upto", "--hashlimit-above"})
		s := fmt.Sprintf("-m hashlimit %s %s --hashlimit-burst %s", dir, pick(g, []string{"1/hour", "2/hour", "3/hour"}), pick(g, []string{"1", "2", "3", "8"}))
		if g.p(25) {
			// Byte mode: each packet costs its length in 16-byte
			// chunks. Rates this low refill nothing measurable while
			// a case crosses the veth (16 b/s is the lowest a burst
			// may go with: below, iptables-restore divides by zero).
			s = fmt.Sprintf("-m hashlimit %s %s", dir, pick(g, []string{"16b/s", "32b/s"}))
			if g.p(70) {
				s += " --hashlimit-burst " + pick(g, []string{"40b", "600b", "1kb", "3kb"})
			}
		}
		modes := []string{"srcip", "dstip", "srcip,dstip", "srcip,dstport", "dstport", "srcip,srcport"}
		if g.p(85) {
			s += " --hashlimit-mode " + pick(g, modes)
		}
		if g.p(30) {
			if g.v6 {
				s += " --hashlimit-srcmask " + pick(g, []string{"64", "48", "128"})
			} else {
				s += " --hashlimit-srcmask " + pick(g, []string{"24", "16", "32"})
			}
		}
		if g.p(20) {
			if g.v6 {
				s += " --hashlimit-dstmask " + pick(g, []string{"64", "120"})
			} else {
				s += " --hashlimit-dstmask " + pick(g, []string{"24", "31"})
			}
		}
		if g.p(30) {
			// A full table hotdrops new flows (GC never runs within a
			// case: it lasts well under the 1 s default interval).
			s += " --hashlimit-htable-max " + pick(g, []string{"1", "2", "3", "8"})
		}
		return s + " --hashlimit-name " + name
	case "recent":
		name := pick(g, []string{"r0", "r1"})
		s := "-m recent --name " + name
		switch g.n(4) {
		case 0:
			s += " --set"
		case 1:
			s += " " + inv(15) + "--rcheck"
			if g.p(60) {
				s += " --seconds 3600"
				if g.p(25) {
					s += " --reap" // xt_recent wants --seconds with it
				}
			}
			if g.p(50) {
				s += " --hitcount " + pick(g, []string{"1", "2", "3", "5"})
			}
			if g.p(20) {
				s += " --rttl"
			}
		case 2:
			s += " " + inv(15) + "--update --seconds 86400"
			if g.p(25) {
				s += " --reap"
			}
			if g.p(50) {
				s += " --hitcount " + pick(g, []string{"2", "4"})
			}
			if g.p(20) {
				s += " --rttl"
			}
		default:
			s += " --remove"
		}
		if g.p(30) {
			s += " --rdest"
		}
		if g.p(20) {
			if g.v6 {
				s += " --mask " + pick(g, []string{"ffff:ffff:ffff:ffff::", "ffff:ffff:ffff::"})
			} else {
				s += " --mask " + pick(g, []string{"255.255.255.0", "255.255.0.0"})
			}
		}
		return s
	}
	return ""
}

func (g *ruleGen) flagList(fl []string) string {
	var out []string
	for k := 1 + g.n(3); k > 0; k-- {
		f := pick(g, fl)
		if !slicesContains(out, f) {
			out = append(out, f)
		}
	}
	return strings.Join(out, ",")
}

func printable(s string) bool {
	for _, c := range []byte(s) {
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

func (g *ruleGen) target(table, chain string, builtin bool, users []string) string {
	type opt struct {
		s string
		w int
	}
	opts := []opt{{"", 12}, {"-j ACCEPT", 8}, {"-j DROP", 10}, {"-j RETURN", 4}, {"-j LOG --log-prefix \"sluice: \"", 3}, {"-j NFLOG --nflog-group 5", 3}}
	if table == "raw" {
		opts = append(opts, opt{"-j CT --notrack", 4}, opt{"-j NOTRACK", 2})
	}
	if table == "filter" {
		opts = append(opts, opt{"-j REJECT", 4})
	}
	if !builtin {
		opts = append(opts, opt{"-j RETURN", 6})
	}
	for _, u := range users {
		opts = append(opts, opt{"-j " + u, 8})
		if !builtin || GotoFromBuiltin {
			opts = append(opts, opt{"-g " + u, 3})
		}
	}
	total := 0
	for _, o := range opts {
		total += o.w
	}
	k := g.n(total)
	for _, o := range opts {
		if k < o.w {
			return o.s
		}
		k -= o.w
	}
	return ""
}
