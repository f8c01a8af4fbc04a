package rules

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/sluice-project/sluice/packet"
)

// optFunc handles one option of a match; inv is its `!`.
type optFunc func(inv bool, a *Args) error

// simpleMatch is a MatchParser built from a table of option handlers, for
// matches whose options are independent words.
type simpleMatch struct {
	opts   map[string]optFunc
	seen   map[string]bool
	finish func() (Match, error)
	// noInvert lists options iptables refuses to negate.
	noInvert map[string]bool
}

func (m *simpleMatch) Option(name string, inv bool, a *Args) (bool, error) {
	f, ok := m.opts[name]
	if !ok {
		return false, nil
	}
	inv, err := oldInvert(a, inv)
	if err != nil {
		return true, err
	}
	if inv && m.noInvert[name] {
		return true, a.Errorf("--%s cannot be negated", name)
	}
	if m.seen[name] {
		return true, a.Errorf("--%s given twice", name)
	}
	m.seen[name] = true
	return true, f(inv, a)
}

func (m *simpleMatch) Finish() (Match, error) { return m.finish() }

func (m *simpleMatch) optionNames() []string {
	names := make([]string, 0, len(m.opts))
	for n := range m.opts {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func newSimple(opts map[string]optFunc, finish func() (Match, error)) *simpleMatch {
	return &simpleMatch{opts: opts, seen: map[string]bool{}, finish: finish, noInvert: map[string]bool{}}
}

// newMatch returns the parser for -m name in this ruleset's family.
func (p *parser) newMatch(name string) MatchParser {
	v6 := p.opt.Family == packet.FamilyIPv6
	switch name {
	case "tcp":
		return tcpMatch()
	case "udp":
		return udpMatch()
	case "icmp":
		if !v6 {
			return icmpMatch(false)
		}
	case "icmp6", "icmpv6":
		if v6 {
			return icmpMatch(true)
		}
	case "multiport":
		return multiportMatch()
	case "length":
		return lengthMatch()
	case "ttl":
		if !v6 {
			return ttlMatch(false)
		}
	case "hl":
		if v6 {
			return ttlMatch(true)
		}
	case "iprange":
		return iprangeMatch(p.opt.Family)
	case "dscp":
		return dscpMatch()
	case "tos":
		return tosMatch()
	case "pkttype":
		return pkttypeMatch()
	case "mac":
		return macMatch()
	case "comment":
		return commentMatch()
	}
	return p.newExtMatch(name)
}

func portOpt(dst *PortRange, has, invDst *bool) optFunc {
	return portOptWith(ParsePortRange, dst, has, invDst)
}

func portOptWith(parse func(string) (PortRange, bool), dst *PortRange, has, invDst *bool) optFunc {
	return func(inv bool, a *Args) error {
		v, err := a.Next()
		if err != nil {
			return err
		}
		r, ok := parse(v)
		if !ok {
			return a.Errorf("invalid port or port range %q", v)
		}
		*dst, *has, *invDst = r, true, inv
		return nil
	}
}

func tcpMatch() MatchParser {
	m := &TCP{Src: PortRange{0, 65535}, Dst: PortRange{0, 65535}}
	flags := func(inv bool, a *Args) error {
		if m.HasFlags {
			return a.Errorf("only one of --tcp-flags and --syn")
		}
		mask, err := a.Next()
		if err != nil {
			return err
		}
		mv, ok := parseTCPFlags(mask)
		if !ok {
			return a.Errorf("unknown TCP flag in %q (iptables knows FIN, SYN, RST, PSH, ACK, URG, ALL, NONE)", mask)
		}
		comp, err := a.Next()
		if err != nil {
			return err
		}
		cv, ok := parseTCPFlags(comp)
		if !ok {
			return a.Errorf("unknown TCP flag in %q (iptables knows FIN, SYN, RST, PSH, ACK, URG, ALL, NONE)", comp)
		}
		m.FlagMask, m.FlagComp, m.FlagsInv, m.HasFlags = mv, cv, inv, true
		return nil
	}
	sm := newSimple(map[string]optFunc{
		"sport":            portOpt(&m.Src, &m.HasSrc, &m.SrcInv),
		"source-port":      portOpt(&m.Src, &m.HasSrc, &m.SrcInv),
		"dport":            portOpt(&m.Dst, &m.HasDst, &m.DstInv),
		"destination-port": portOpt(&m.Dst, &m.HasDst, &m.DstInv),
		"tcp-flags":        flags,
		"syn": func(inv bool, a *Args) error {
			if m.HasFlags {
				return a.Errorf("only one of --tcp-flags and --syn")
			}
			m.FlagMask = packet.TCPSyn | packet.TCPRst | packet.TCPAck | packet.TCPFin
			m.FlagComp = packet.TCPSyn
			m.FlagsInv, m.HasFlags = inv, true
			return nil
		},
		"tcp-option": func(inv bool, a *Args) error {
			v, err := a.Next()
			if err != nil {
				return err
			}
			n, err := parseCUint(v, 8)
			if err != nil || n == 0 {
				return a.Errorf("bad TCP option %q: 1-255", v)
			}
			m.Option, m.OptionInv, m.HasOption = uint8(n), inv, true
			return nil
		},
	}, func() (Match, error) { return m, nil })
	return sm
}

func parseTCPFlags(s string) (uint8, bool) {
	var f uint8
	for _, w := range strings.Split(s, ",") {
		switch strings.ToUpper(w) {
		case "FIN":
			f |= packet.TCPFin
		case "SYN":
			f |= packet.TCPSyn
		case "RST":
			f |= packet.TCPRst
		case "PSH":
			f |= packet.TCPPsh
		case "ACK":
			f |= packet.TCPAck
		case "URG":
			f |= packet.TCPUrg
		case "ALL":
			// libxt_tcp's ALL is the six classic flags; it has no
			// names for ECE and CWR, so no rule can test them.
			f |= 0x3F
		case "NONE":
		default:
			return 0, false
		}
	}
	return f, true
}

func udpMatch() MatchParser {
	m := &UDP{Src: PortRange{0, 65535}, Dst: PortRange{0, 65535}}
	return newSimple(map[string]optFunc{
		"sport":            portOptWith(parseUDPPortRange, &m.Src, &m.HasSrc, &m.SrcInv),
		"source-port":      portOptWith(parseUDPPortRange, &m.Src, &m.HasSrc, &m.SrcInv),
		"dport":            portOptWith(parseUDPPortRange, &m.Dst, &m.HasDst, &m.DstInv),
		"destination-port": portOptWith(parseUDPPortRange, &m.Dst, &m.HasDst, &m.DstInv),
	}, func() (Match, error) { return m, nil })
}

func icmpMatch(v6 bool) MatchParser {
	// Without --icmp-type, libxt_icmp matches any type (0xFF, codes 0-255).
	m := &ICMP{V6: v6, Type: 0xFF, CodeMin: 0, CodeMax: 0xFF, Any: !v6}
	opt := func(inv bool, a *Args) error {
		v, err := a.Next()
		if err != nil {
			return err
		}
		t, cmin, cmax, ok := parseICMPType(v, v6)
		if !ok {
			return a.Errorf("invalid ICMP type %q", v)
		}
		m.Type, m.CodeMin, m.CodeMax, m.Invert = t, cmin, cmax, inv
		m.Any = !v6 && t == 0xFF
		return nil
	}
	name := "icmp-type"
	if v6 {
		name = "icmpv6-type"
	}
	return newSimple(map[string]optFunc{name: opt}, func() (Match, error) {
		if v6 && m.Type == 0xFF && !m.Invert && m.CodeMax == 0xFF {
			// ip6tables requires --icmpv6-type.
			return m, nil
		}
		return m, nil
	})
}

func multiportMatch() MatchParser {
	m := &Multiport{}
	set := func(dir MultiportDir) optFunc {
		return func(inv bool, a *Args) error {
			if m.Dir != 0 {
				return a.Errorf("multiport takes one of --sports, --dports and --ports")
			}
			v, err := a.Next()
			if err != nil {
				return err
			}
			n := 0
			for _, w := range strings.Split(v, ",") {
				r, ok := ParsePortRange(w)
				if !ok || w == "" {
					return a.Errorf("invalid port or range %q", w)
				}
				if strings.Contains(w, ":") {
					n += 2
				} else {
					n++
				}
				m.Ports = append(m.Ports, r)
			}
			if n > 15 {
				return a.Errorf("too many ports specified: multiport allows 15 (a range counts as two)")
			}
			m.Dir, m.Invert = dir, inv
			return nil
		}
	}
	return newSimple(map[string]optFunc{
		"sports": set(MultiportSrc), "source-ports": set(MultiportSrc),
		"dports": set(MultiportDst), "destination-ports": set(MultiportDst),
		"ports": set(MultiportAny),
	}, func() (Match, error) {
		if m.Dir == 0 {
			return nil, fmt.Errorf("multiport needs --sports, --dports or --ports")
		}
		return m, nil
	})
}

func lengthMatch() MatchParser {
	m := &Length{}
	seen := false
	return newSimple(map[string]optFunc{
		"length": func(inv bool, a *Args) error {
			v, err := a.Next()
			if err != nil {
				return err
			}
			lo, hi, isRange := strings.Cut(v, ":")
			pl, err1 := parseCUint(lo, 16)
			ph := pl
			var err2 error
			if isRange {
				if hi == "" {
					ph = 0xFFFF
				} else {
					ph, err2 = parseCUint(hi, 16)
				}
				if lo == "" {
					pl, err1 = 0, nil
				}
			}
			if err1 != nil || err2 != nil {
				return a.Errorf("invalid length %q", v)
			}
			if pl > ph {
				// libxt_length takes it; length_mt then never matches
				// (always, with !).
				what := "never matches"
				if inv {
					what = "matches every packet"
				}
				a.p.warn(a.p.line, "--length %s is reversed: the match %s, as in the kernel", v, what)
			}
			m.Min, m.Max, m.Invert, seen = uint16(pl), uint16(ph), inv, true
			return nil
		},
	}, func() (Match, error) {
		if !seen {
			return nil, fmt.Errorf("length needs --length")
		}
		return m, nil
	})
}

func ttlMatch(v6 bool) MatchParser {
	m := &TTL{V6: v6}
	seen := false
	pfx := "ttl"
	if v6 {
		pfx = "hl"
	}
	op := func(o TTLOp) optFunc {
		return func(inv bool, a *Args) error {
			if seen {
				return a.Errorf("only one --%s-eq, --%s-lt or --%s-gt", pfx, pfx, pfx)
			}
			v, err := a.Next()
			if err != nil {
				return err
			}
			n, err := parseCUint(v, 8)
			if err != nil {
				return a.Errorf("invalid %s value %q", pfx, v)
			}
			m.Op, m.Value, seen = o, uint8(n), true
			if inv {
				m.Op = TTLNe
			}
			return nil
		}
	}
	sm := newSimple(map[string]optFunc{
		pfx + "-eq": op(TTLEq), pfx + "-lt": op(TTLLt), pfx + "-gt": op(TTLGt),
	}, func() (Match, error) {
		if !seen {
			return nil, fmt.Errorf("%s needs --%s-eq, --%s-lt or --%s-gt", pfx, pfx, pfx, pfx)
		}
		return m, nil
	})
	sm.noInvert[pfx+"-lt"] = true
	sm.noInvert[pfx+"-gt"] = true
	return sm
}

func iprangeMatch(fam packet.Family) MatchParser {
	m := &IPRange{}
	rng := func(lo, hi *netip.Addr, has, inv *bool) optFunc {
		return func(i bool, a *Args) error {
			v, err := a.Next()
			if err != nil {
				return err
			}
			ls, hs, ok := strings.Cut(v, "-")
			if !ok {
				hs = ls
			}
			// iprange_parse_spec: xtables_numeric_to_ipaddr (short
			// forms, C numbers) or inet_pton for IPv6, no resolver.
			l, ok1 := parseAddrForm(ls, fam, true, false)
			h, ok2 := parseAddrForm(hs, fam, true, false)
			if !ok1 || !ok2 {
				return a.Errorf("invalid address range %q", v)
			}
			*lo, *hi, *has, *inv = l, h, true, i
			return nil
		}
	}
	return newSimple(map[string]optFunc{
		"src-range": rng(&m.SrcMin, &m.SrcMax, &m.HasSrc, &m.SrcInv),
		"dst-range": rng(&m.DstMin, &m.DstMax, &m.HasDst, &m.DstInv),
	}, func() (Match, error) {
		if !m.HasSrc && !m.HasDst {
			return nil, fmt.Errorf("iprange needs --src-range or --dst-range")
		}
		return m, nil
	})
}

var dscpClasses = map[string]uint8{
	"CS0": 0, "CS1": 8, "CS2": 16, "CS3": 24, "CS4": 32, "CS5": 40, "CS6": 48, "CS7": 56, "BE": 0,
	"AF11": 10, "AF12": 12, "AF13": 14, "AF21": 18, "AF22": 20, "AF23": 22, "AF31": 26, "AF32": 28,
	"AF33": 30, "AF41": 34, "AF42": 36, "AF43": 38, "EF": 46,
}

func dscpMatch() MatchParser {
	m := &DSCP{}
	seen := false
	return newSimple(map[string]optFunc{
		"dscp": func(inv bool, a *Args) error {
			if seen {
				return a.Errorf("only one of --dscp and --dscp-class")
			}
			v, err := a.Next()
			if err != nil {
				return err
			}
			n, err := parseCUint(v, 8)
			if err != nil || n > 63 {
				return a.Errorf("DSCP %q is not 0-63", v)
			}
			m.Value, m.Invert, seen = uint8(n), inv, true
			return nil
		},
		"dscp-class": func(inv bool, a *Args) error {
			if seen {
				return a.Errorf("only one of --dscp and --dscp-class")
			}
			v, err := a.Next()
			if err != nil {
				return err
			}
			n, ok := dscpClasses[strings.ToUpper(v)]
			if !ok {
				return a.Errorf("unknown DSCP class %q", v)
			}
			m.Value, m.Invert, seen = n, inv, true
			return nil
		},
	}, func() (Match, error) {
		if !seen {
			return nil, fmt.Errorf("dscp needs --dscp or --dscp-class")
		}
		return m, nil
	})
}

var tosNames = map[string]uint8{
	"minimize-delay": 0x10, "maximize-throughput": 0x08, "maximize-reliability": 0x04,
	"minimize-cost": 0x02, "normal-service": 0x00,
}

func tosMatch() MatchParser {
	m := &TOS{}
	seen := false
	return newSimple(map[string]optFunc{
		"tos": func(inv bool, a *Args) error {
			v, err := a.Next()
			if err != nil {
				return err
			}
			// libxt_tos: a symbolic name implies mask 0x3f; VALUE[/MASK]
			// numbers default to mask 0xff.
			if n, ok := tosNames[strings.ToLower(v)]; ok {
				m.Value, m.Mask = n, 0x3f
			} else {
				vs, ms, hasMask := strings.Cut(v, "/")
				val, err := parseCUint(vs, 8)
				if err != nil {
					return a.Errorf("invalid TOS %q", v)
				}
				mask := uint64(0xff)
				if hasMask {
					if mask, err = parseCUint(ms, 8); err != nil {
						return a.Errorf("invalid TOS mask %q", v)
					}
				}
				m.Value, m.Mask = uint8(val), uint8(mask)
			}
			m.Invert, seen = inv, true
			return nil
		},
	}, func() (Match, error) {
		if !seen {
			return nil, fmt.Errorf("tos needs --tos")
		}
		return m, nil
	})
}

func pkttypeMatch() MatchParser {
	m := &PktType{}
	seen := false
	return newSimple(map[string]optFunc{
		"pkt-type": func(inv bool, a *Args) error {
			v, err := a.Next()
			if err != nil {
				return err
			}
			switch strings.ToLower(v) {
			case "unicast", "host":
				m.Type = packet.PktHost
			case "broadcast":
				m.Type = packet.PktBroadcast
			case "multicast":
				m.Type = packet.PktMulticast
			case "otherhost":
				m.Type = packet.PktOtherHost
			default:
				return a.Errorf("unknown packet type %q", v)
			}
			m.Invert, seen = inv, true
			return nil
		},
	}, func() (Match, error) {
		if !seen {
			return nil, fmt.Errorf("pkttype needs --pkt-type")
		}
		return m, nil
	})
}

func macMatch() MatchParser {
	m := &MAC{}
	seen := false
	return newSimple(map[string]optFunc{
		"mac-source": func(inv bool, a *Args) error {
			v, err := a.Next()
			if err != nil {
				return err
			}
			hw, ok := parseEtherMAC(v)
			if !ok {
				return a.Errorf("invalid MAC address %q", v)
			}
			m.Addr = hw
			m.Invert, seen = inv, true
			return nil
		},
	}, func() (Match, error) {
		if !seen {
			return nil, fmt.Errorf("mac needs --mac-source")
		}
		return m, nil
	})
}

func commentMatch() MatchParser {
	m := &Comment{}
	given := false
	sm := newSimple(map[string]optFunc{
		"comment": func(inv bool, a *Args) error {
			v, err := a.Next()
			if err != nil {
				return err
			}
			if len(v) > 255 {
				return a.Errorf("comment longer than 255 characters")
			}
			m.Text, given = v, true
			return nil
		},
	}, func() (Match, error) {
		if !given {
			return nil, fmt.Errorf("comment needs --comment") // XTOPT_MAND in libxt_comment
		}
		return m, nil
	})
	sm.noInvert["comment"] = true
	return sm
}

// parseEtherMAC reads a MAC address as xtopt_parse_ethermac (iptables
// libxtables/xtoptions.c) does: six parts separated by ':', each read by
// strtoul in base 16 and cut to a byte, taking at most two characters
// (leading white space and a sign count; an empty part is 0).
func parseEtherMAC(s string) ([6]byte, bool) {
	var hw [6]byte
	for i := range hw {
		v, n := strtoulHex(s)
		if n > 2 {
			return hw, false
		}
		hw[i] = byte(v)
		s = s[n:]
		if i < 5 {
			if s == "" || s[0] != ':' {
				return hw, false
			}
			s = s[1:]
		}
	}
	return hw, s == ""
}

// strtoulHex is strtoul(s, &end, 16): the value and how many bytes it
// read (0 when there are no digits, white space and sign included then).
func strtoulHex(s string) (uint64, int) {
	i := 0
	for i < len(s) && (s[i] == ' ' || s[i] >= '\t' && s[i] <= '\r') {
		i++
	}
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	hex := func(c byte) (uint64, bool) {
		switch {
		case c >= '0' && c <= '9':
			return uint64(c - '0'), true
		case c >= 'a' && c <= 'f':
			return uint64(c-'a') + 10, true
		case c >= 'A' && c <= 'F':
			return uint64(c-'A') + 10, true
		}
		return 0, false
	}
	if i+2 < len(s) && s[i] == '0' && (s[i+1] == 'x' || s[i+1] == 'X') {
		if _, ok := hex(s[i+2]); ok {
			i += 2
		}
	}
	start := i
	var v uint64
	over := false
	for i < len(s) {
		d, ok := hex(s[i])
		if !ok {
			break
		}
		if v > (^uint64(0)-d)/16 {
			over = true
		}
		v = v*16 + d
		i++
	}
	if i == start {
		return 0, 0
	}
	if over {
		v = ^uint64(0)
	}
	if neg {
		v = -v
	}
	return v, i
}
