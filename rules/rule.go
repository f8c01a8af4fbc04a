package rules

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/sluice-project/sluice/internal/inetaddr"
	"github.com/sluice-project/sluice/packet"
)

// ruleBuilder collects one rule line before comma lists expand it.
type ruleBuilder struct {
	r       Rule
	srcs    []AddrMask
	dsts    []AddrMask
	seen    map[string]bool
	matches []MatchParser
	mnames  []token
	// mkinds is each match's extension name; its order of first
	// appearance decides which match an option both know goes to.
	mkinds  []string
	tgt     *targetParser
	listTok token // the -s/-d word that holds a comma list, if any
	addrErr error // the first bad -s/-d address, reported after the options
}

// rule parses the words after "-A CHAIN".
func (p *parser) rule(c *Chain, toks []token) ([]*Rule, error) {
	b := &ruleBuilder{seen: map[string]bool{}}
	b.r.Line = p.line
	b.r.Text = strings.TrimSpace(p.text)
	if strings.HasPrefix(b.r.Text, "[") {
		// Drop the [packets:bytes] word, whatever command follows it
		// (searching for "-A" missed -I and found "-A" inside values).
		if i := strings.IndexAny(b.r.Text, " \t"); i > 0 {
			b.r.Text = strings.TrimSpace(b.r.Text[i:])
		}
	}
	invert := false
	var invTok token
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		if t.s == "!" {
			if invert {
				return nil, p.errAt(t, "double negation is not allowed")
			}
			invert, invTok = true, t
			continue
		}
		if strings.HasPrefix(t.s, "--") {
			full, abbrev, err := p.longOption(b, t)
			if err != nil {
				return nil, err
			}
			if abbrev {
				p.warn(p.line, "%s is read as %s, as getopt reads an abbreviated option", t.s, full)
			}
			t.s, t.as = full, t.s
		} else if len(t.s) > 2 && t.s[0] == '-' {
			toks = slices.Concat(toks[:i], expandShort(t), toks[i+1:])
			t = toks[i]
		}
		a := &Args{p: p, toks: toks, i: i + 1, opt: t}
		var err error
		consumed := true
		switch t.s {
		case "-4", "--ipv4", "-6", "--ipv6":
			// iptables-restore silently skips a rule marked for the
			// other family (-6 in iptables-restore, -4 in
			// ip6tables-restore), whatever follows; the right family's
			// mark does nothing, and takes a "!" before it along.
			if p.otherFamily(t) {
				return nil, nil
			}
		case "--append", "--delete", "--check", "--insert", "--replace", "--list", "--list-rules",
			"--flush", "--zero", "--new-chain", "--delete-chain", "--rename-chain", "--policy",
			"--table", "--numeric", "--wait", "--wait-interval", "--exact", "--version", "--help",
			"--line-numbers", "--modprobe", "-t", "-n", "-x", "-w", "-W":
			err = p.errAt(t, fmt.Sprintf("%s is not allowed in a rule of iptables-restore input", t.s))
		case "-v", "--verbose":
			if invert {
				err = p.errAt(invTok, "cannot have ! before -v")
			}
		case "-s", "--source", "--src", "-d", "--destination", "--dst":
			err = p.addrOpt(b, t, invert, a)
		case "-p", "--protocol":
			err = p.protoOpt(b, t, invert, a)
		case "-i", "--in-interface", "-o", "--out-interface":
			err = p.ifaceOpt(b, c, t, invert, a)
		case "-f", "--fragment":
			if p.opt.Family != packet.FamilyIPv4 {
				err = p.errAt(t, "-f is IPv4 only; ip6tables matches fragments with -m frag")
			} else if b.seen["-f"] {
				err = p.errAt(t, "-f given twice")
			} else {
				b.seen["-f"] = true
				b.r.Frag, b.r.FragInv = true, invert
			}
		case "-m", "--match":
			err = p.matchOpt(b, t, invert, a)
		case "-j", "--jump", "-g", "--goto":
			err = p.targetOpt(b, c, t, invert, a)
		case "-c", "--set-counters":
			// The counters are the kernel's business; sluice starts
			// from zero, but refuses what iptables refuses.
			if invert {
				err = p.errAt(invTok, "cannot negate -c")
				break
			}
			for _, what := range []string{"packet", "byte"} {
				var v string
				if v, err = a.Next(); err != nil {
					break
				}
				if !scanfUint(v) {
					err = a.Errorf("-c %s counter not numeric", what)
					break
				}
			}
		default:
			consumed = false
		}
		if !consumed {
			if !strings.HasPrefix(t.s, "-") {
				return nil, p.errAt(t, "unexpected word: expected an option")
			}
			err = p.extOpt(b, t, invert, a)
		}
		if err != nil {
			return nil, err
		}
		// Old syntax `--opt ! value`: parsers accept it through Args,
		// so just advance past everything consumed.
		i = a.i - 1
		invert = false
	}
	if b.addrErr != nil {
		return nil, b.addrErr
	}
	if invert {
		return nil, p.errAt(invTok, "! must come before an option")
	}
	for i, mp := range b.matches {
		m, err := mp.Finish()
		if err != nil {
			if e, ok := err.(*Error); ok {
				return nil, e
			}
			return nil, &Error{File: p.opt.File, Line: p.line, Col: b.mnames[i].col, Word: b.mnames[i].s, Msg: err.Error(), Err: err}
		}
		if m != nil {
			b.r.Matches = append(b.r.Matches, m)
		}
	}
	if b.tgt != nil {
		if err := b.tgt.finish(p); err != nil {
			return nil, err
		}
		b.r.Target = b.tgt.t
		b.r.targetCol = b.tgt.tok.col
	}
	// iptables refuses any address inversion when either side is a list.
	if (len(b.srcs) > 1 || len(b.dsts) > 1) && ((len(b.srcs) > 0 && b.srcs[0].Invert) || (len(b.dsts) > 0 && b.dsts[0].Invert)) {
		return nil, p.errAt(b.listTok, "! not allowed with multiple source or destination IP addresses")
	}
	if err := p.checkMatchesForChain(b, c); err != nil {
		return nil, err
	}
	// Expand comma lists: one rule per (source, destination), sources
	// outermost, as iptables' do_command does.
	srcs, dsts := b.srcs, b.dsts
	if len(srcs) == 0 {
		srcs = []AddrMask{{}}
	}
	if len(dsts) == 0 {
		dsts = []AddrMask{{}}
	}
	var out []*Rule
	for _, s := range srcs {
		for _, d := range dsts {
			r := b.r
			r.Src, r.Dst = s, d
			out = append(out, &r)
		}
	}
	return out, nil
}

func (p *parser) once(b *ruleBuilder, t token, key string) error {
	if b.seen[key] {
		return p.errAt(t, fmt.Sprintf("option %s given twice", t.s))
	}
	b.seen[key] = true
	return nil
}

// oldInvert refuses the old `--opt ! value` form (intrapositioned
// negation): iptables deprecated it in 1.4.3, and 1.8 takes the "!" as
// the value ("unknown protocol "!"", "Bad argument"), so the file does
// not load. A "!" followed by another option negates that option, not
// this one's value (`--syn ! --tcp-option 4`), and is left alone.
func oldInvert(a *Args, invert bool) (bool, error) {
	if a.i < len(a.toks) && a.toks[a.i].s == "!" && (a.i+1 >= len(a.toks) || !strings.HasPrefix(a.toks[a.i+1].s, "-")) {
		return false, a.p.errAt(a.toks[a.i], fmt.Sprintf("%s ! VALUE is the old intrapositioned negation, which iptables-restore refuses: write ! %s VALUE", a.opt.s, a.opt.s))
	}
	return invert, nil
}

func (p *parser) addrOpt(b *ruleBuilder, t token, invert bool, a *Args) error {
	src := t.s == "-s" || t.s == "--source" || t.s == "--src"
	key := "-d"
	if src {
		key = "-s"
	}
	if err := p.once(b, t, key); err != nil {
		return err
	}
	invert, err := oldInvert(a, invert)
	if err != nil {
		return err
	}
	v, err := a.Next()
	if err != nil {
		return err
	}
	var list []AddrMask
	for _, w := range strings.Split(v, ",") {
		am, err := ParseAddrMask(w, p.opt.Family)
		if err != nil {
			// iptables reads the addresses after the options
			// (xtables_ipparse_multiple), so a -6 later in an IPv4
			// rule skips it before a bad address is noticed.
			if b.addrErr == nil {
				b.addrErr = a.Errorf("%v", err)
			}
			return nil
		}
		am.Invert = invert
		list = append(list, am)
	}
	if len(list) > 1 {
		b.listTok = a.toks[a.i-1]
	}
	if src {
		b.srcs = list
		b.r.OrigSrc = v
	} else {
		b.dsts = list
		b.r.OrigDst = v
	}
	return nil
}

// ParseAddrMask parses ADDR, ADDR/LEN or ADDR/MASK for the family, with
// the host bits cleared as iptables clears them. As in iptables'
// xtables_ipparse_any, a zero mask makes any address mean "anywhere"
// ("any/0"), and an IPv4 address may be written as iptables reads it
// (parts in decimal, octal with a leading 0, or hex, "010.0.0.1" being
// 8.0.0.1; short forms: see parseNumericAddr). Host names are refused:
// resolving them would make the rules depend on DNS at load time.
func ParseAddrMask(s string, fam packet.Family) (AddrMask, error) {
	addrS, maskS, hasMask := strings.Cut(s, "/")
	size := 32
	if fam == packet.FamilyIPv6 {
		size = 128
	}
	bits := size
	var mask netip.Addr
	if hasMask {
		if n, ok := cNumber(maskS); ok && !strings.Contains(maskS, ".") {
			// xtables_strtoui with base 0, as parse_ipmask reads it.
			if n > uint64(size) {
				return AddrMask{}, fmt.Errorf("invalid mask length %q", maskS)
			}
			bits = int(n)
		} else {
			m, ok := parseNumericAddr(maskS, fam, false)
			if !ok {
				return AddrMask{}, fmt.Errorf("invalid mask %q", maskS)
			}
			mask = m
			bits = contiguousBits(m)
		}
	}
	if !mask.IsValid() {
		mask = prefixMask(bits, size)
	}
	if mask == prefixMask(0, size) {
		return AddrMask{Addr: mask, Mask: mask, Bits: 0, Set: true}, nil
	}
	addr, ok := parseNumericAddr(addrS, fam, true)
	if !ok {
		other := packet.FamilyIPv6
		if fam == packet.FamilyIPv6 {
			other = packet.FamilyIPv4
		}
		if _, ok := parseNumericAddr(addrS, other, false); ok {
			return AddrMask{}, fmt.Errorf("%q is not an %s address", addrS, map[packet.Family]string{packet.FamilyIPv4: "IPv4", packet.FamilyIPv6: "IPv6"}[fam])
		}
		return AddrMask{}, fmt.Errorf("bad address %q: sluice needs numeric addresses (no host names)", addrS)
	}
	ab, mb := addr.AsSlice(), mask.AsSlice()
	for i := range ab {
		ab[i] &= mb[i]
	}
	addr, _ = netip.AddrFromSlice(ab)
	return AddrMask{Addr: addr, Mask: mask, Bits: bits, Set: true}, nil
}

// parseNumericAddr reads an address of the family as iptables does
// without a name server: IPv6 as inet_pton; IPv4 as
// xtables_numeric_to_ipaddr (up to four parts, each a C number at most
// 255: decimal, 0-prefixed octal or 0x hex; missing parts are zero on the
// right, "10.1" being the network 10.1.0.0) and, when that fails and
// resolve is set, as the resolver's inet_aton reads it ("65536" is
// 0.1.0.0: the last part fills the bytes left). A mask (resolve false)
// needs all four parts, as xtables_numeric_to_ipmask does.
func parseNumericAddr(s string, fam packet.Family, resolve bool) (netip.Addr, bool) {
	return parseAddrForm(s, fam, resolve, resolve)
}

// parseAddrForm is parseNumericAddr with the short forms (short) and the
// resolver's fallback (resolve) chosen apart: libxt_iprange takes the
// short forms but no resolver.
func parseAddrForm(s string, fam packet.Family, short, resolve bool) (netip.Addr, bool) {
	if fam == packet.FamilyIPv6 {
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is6() || a.Zone() != "" {
			return netip.Addr{}, false
		}
		return a, true
	}
	parts := strings.Split(s, ".")
	if len(parts) > 4 || !short && len(parts) != 4 {
		return netip.Addr{}, false
	}
	nums := make([]uint64, len(parts))
	for i, part := range parts {
		n, ok := cNumber(part)
		if !ok {
			return netip.Addr{}, false
		}
		nums[i] = n
	}
	var b [4]byte
	numeric := true
	for i, n := range nums {
		if n > 255 {
			numeric = false
			break
		}
		b[i] = byte(n)
	}
	if numeric {
		return netip.AddrFrom4(b), true
	}
	if !resolve {
		return netip.Addr{}, false
	}
	v, ok := inetaddr.Aton(nums)
	if !ok {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

// cNumber reads an unsigned C integer literal as strtoul with base 0:
// "0x" hex, a leading 0 octal, else decimal.
func cNumber(s string) (uint64, bool) {
	base := uint64(10)
	switch {
	case len(s) > 2 && (s[:2] == "0x" || s[:2] == "0X"):
		base, s = 16, s[2:]
	case len(s) > 1 && s[0] == '0':
		base, s = 8, s[1:]
	}
	if s == "" || len(s) > 12 {
		return 0, false
	}
	var n uint64
	for _, c := range s {
		var d uint64
		switch {
		case c >= '0' && c <= '9':
			d = uint64(c - '0')
		case c >= 'a' && c <= 'f':
			d = uint64(c-'a') + 10
		case c >= 'A' && c <= 'F':
			d = uint64(c-'A') + 10
		default:
			return 0, false
		}
		if d >= base {
			return 0, false
		}
		n = n*base + d
	}
	return n, true
}

func prefixMask(bits, size int) netip.Addr {
	b := make([]byte, size/8)
	for i := 0; i < bits; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// contiguousBits returns the prefix length of a contiguous mask, or -1.
func contiguousBits(m netip.Addr) int {
	b := m.AsSlice()
	n := 0
	i := 0
	for ; i < len(b)*8; i++ {
		if b[i/8]&(0x80>>(i%8)) == 0 {
			break
		}
		n++
	}
	for ; i < len(b)*8; i++ {
		if b[i/8]&(0x80>>(i%8)) != 0 {
			return -1
		}
	}
	return n
}

func (p *parser) protoOpt(b *ruleBuilder, t token, invert bool, a *Args) error {
	if err := p.once(b, t, "-p"); err != nil {
		return err
	}
	invert, err := oldInvert(a, invert)
	if err != nil {
		return err
	}
	v, err := a.Next()
	if err != nil {
		return err
	}
	n, ok := ProtoByName(strings.ToLower(v))
	if !ok {
		return a.Errorf("unknown protocol %q", v)
	}
	if n == 0 && invert {
		return a.Errorf("rule would never match protocol")
	}
	b.r.Proto, b.r.ProtoInv, b.r.ProtoGiven = n, invert, true
	return nil
}

func (p *parser) ifaceOpt(b *ruleBuilder, c *Chain, t token, invert bool, a *Args) error {
	in := t.s == "-i" || t.s == "--in-interface"
	key := "-o"
	if in {
		key = "-i"
	}
	if err := p.once(b, t, key); err != nil {
		return err
	}
	invert, err := oldInvert(a, invert)
	if err != nil {
		return err
	}
	v, err := a.Next()
	if err != nil {
		return err
	}
	if len(v) == 0 || len(v) > 15 {
		return a.Errorf("interface name %q must be 1 to 15 characters", v)
	}
	f := Iface{Name: v, Invert: invert, Set: true}
	if strings.HasSuffix(v, "+") {
		f.Name, f.Wildcard = v[:len(v)-1], true
	}
	if c.Builtin {
		if in && (c.Name == "OUTPUT" || c.Name == "POSTROUTING") {
			return p.errAt(t, fmt.Sprintf("can't use -i with %s", c.Name))
		}
		if !in && (c.Name == "PREROUTING" || c.Name == "INPUT") {
			return p.errAt(t, fmt.Sprintf("can't use -o with %s", c.Name))
		}
	}
	if in {
		b.r.InIface = f
	} else {
		b.r.OutIface = f
		b.r.HasOutIface = true
	}
	return nil
}

func (p *parser) matchOpt(b *ruleBuilder, t token, invert bool, a *Args) error {
	if invert {
		return p.errAt(t, "! cannot negate -m: negate the match's options instead")
	}
	name, err := a.Next()
	if err != nil {
		return err
	}
	nt := a.toks[a.i-1]
	mp := p.newMatch(name)
	if mp == nil {
		return p.errAt(nt, unsupportedMatch(name))
	}
	b.matches = append(b.matches, mp)
	b.mnames = append(b.mnames, nt)
	b.mkinds = append(b.mkinds, name)
	return nil
}

func unsupportedMatch(name string) string {
	switch name {
	case "conntrack", "state", "connlimit", "connbytes", "connmark", "conntrack6", "helper", "ctstate":
		return fmt.Sprintf("match %q needs connection tracking: sluice is stateless and sits in front of the kernel, so keep this rule in the kernel's ruleset behind sluice", name)
	}
	return fmt.Sprintf("unsupported match %q", name)
}

// extOpt routes an option to the target or a match that knows it, then
// to the protocol's implicit match (`-p tcp --dport 80` loads -m tcp, as
// iptables does).
//
// Which match, when several know the option, is iptables' getopt order:
// an extension's options join the option table when it is first loaded in
// the rule, in front of those loaded before (xtables_merge_options), and
// a second -m of the same extension adds none and takes its options from
// then on. So the option goes to the latest instance of the extension
// whose first -m is the most recent: in `-m recent --rcheck -m set
// --match-set A src -m recent --set`, --set is the set match's deprecated
// alias of --match-set, and iptables-restore rejects the rule.
func (p *parser) extOpt(b *ruleBuilder, t token, invert bool, a *Args) error {
	name := strings.TrimPrefix(t.s, "--")
	if name == t.s {
		return p.errAt(t, "unknown option")
	}
	if b.tgt != nil {
		ok, err := b.tgt.option(p, name, invert, a)
		if ok || err != nil {
			return err
		}
	}
	for _, i := range b.optionOrder() {
		start := a.i
		ok, err := b.matches[i].Option(name, invert, a)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		a.i = start
	}
	if mp := p.loadImplicit(b, t); mp != nil {
		if ok, err := mp.Option(name, invert, a); ok || err != nil {
			return err
		}
	}
	return p.errAt(t, "unknown option for the matches and target of this rule")
}

// optionOrder lists, for each extension among the rule's matches, the
// index of its latest instance, the extension first loaded most recently
// first (extOpt).
func (b *ruleBuilder) optionOrder() []int {
	var order []int
	for i := len(b.mkinds) - 1; i >= 0; i-- {
		k := b.mkinds[i]
		if slices.Index(b.mkinds, k) != i {
			continue // not k's first load
		}
		latest := i
		for j := i + 1; j < len(b.mkinds); j++ {
			if b.mkinds[j] == k {
				latest = j
			}
		}
		order = append(order, latest)
	}
	return order
}

func implicitMatch(proto uint8, fam packet.Family) string {
	switch proto {
	case packet.ProtoTCP:
		return "tcp"
	case packet.ProtoUDP:
		return "udp"
	case packet.ProtoICMP:
		if fam == packet.FamilyIPv4 {
			return "icmp"
		}
	case packet.ProtoICMPv6:
		if fam == packet.FamilyIPv6 {
			return "icmp6"
		}
	}
	return ""
}

// checkMatchesForChain enforces what the kernel's checkentry enforces
// about protocols and hooks, so a file sluice accepts is one
// iptables-restore accepts.
func (p *parser) checkMatchesForChain(b *ruleBuilder, c *Chain) error {
	for i, m := range b.r.Matches {
		var need uint8
		switch m := m.(type) {
		case *TCP:
			need = packet.ProtoTCP
		case *UDP:
			need = packet.ProtoUDP
		case *ICMP:
			need = packet.ProtoICMP
			if m.V6 {
				need = packet.ProtoICMPv6
			}
		case *Multiport:
			if !multiportProto(b.r.Proto) || b.r.ProtoInv {
				return p.errAt(b.mnames[min(i, len(b.mnames)-1)], "multiport needs -p tcp, udp, udplite, dccp or sctp")
			}
		case *MAC:
			if c.Builtin && c.Name != "PREROUTING" && c.Name != "INPUT" && c.Name != "FORWARD" {
				return p.errAt(b.mnames[min(i, len(b.mnames)-1)], "mac match is valid only in PREROUTING, INPUT and FORWARD")
			}
		}
		if need != 0 && (b.r.Proto != need || b.r.ProtoInv) {
			return p.errAt(b.mnames[min(i, len(b.mnames)-1)], fmt.Sprintf("match %s needs -p %s (the kernel refuses it otherwise)", m.Name(), ProtoName(need)))
		}
	}
	return nil
}

func multiportProto(p uint8) bool {
	switch p {
	case packet.ProtoTCP, packet.ProtoUDP, 136, 33, 132: // udplite, dccp, sctp
		return true
	}
	return false
}

// scanfUint reports whether sscanf("%llu") reads a number from s: white
// space, an optional sign, then at least one digit (anything may follow).
func scanfUint(s string) bool {
	s = strings.TrimLeft(s, " \t\n\v\f\r")
	if s != "" && (s[0] == '+' || s[0] == '-') {
		s = s[1:]
	}
	return s != "" && s[0] >= '0' && s[0] <= '9'
}

// otherFamily reports whether the family mark t (-4, -6, --ipv4, --ipv6)
// is for the other family than this file's, which makes iptables-restore
// skip the rule; it warns so.
func (p *parser) otherFamily(t token) bool {
	if (t.s[len(t.s)-1] == '6') == (p.opt.Family == packet.FamilyIPv6) {
		return false
	}
	p.warn(p.line, "%s marks this rule for the other IP family: iptables-restore skips it, and so does sluice", t.s)
	return true
}
