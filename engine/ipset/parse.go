package ipset

import (
	"bufio"
	"fmt"
	"io"
	"math/bits"
	"net/netip"
	"strconv"
	"strings"

	"github.com/gaissmai/bart"

	"github.com/sluice-project/sluice/internal/inetaddr"
	"github.com/sluice-project/sluice/packet"
)

// ParseError says where an `ipset save` file is wrong. Parse stops at the
// first one, so the caller applies nothing of a bad file.
type ParseError struct {
	File      string
	Line, Col int
	Word, Msg string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s (near '%s')", e.File, e.Line, e.Col, e.Msg, e.Word)
}

// maxElements bounds how many elements one file may expand to, whatever
// maxelem says, so a hostile file cannot exhaust memory.
const maxElements = 1 << 24

// maxTimeout is IPSET_MAX_TIMEOUT: (UINT_MAX >> 1) / MSEC_PER_SEC.
const maxTimeout = 2147483

type token struct {
	s   string
	col int
}

type parser struct {
	file  string
	line  int
	r     *Registry
	now   int64
	total int
}

func (p *parser) errf(t token, format string, a ...any) *ParseError {
	return &ParseError{File: p.file, Line: p.line, Col: t.col, Word: t.s, Msg: fmt.Sprintf(format, a...)}
}

// tokenize splits a line as ipset restore does (build_argv in ipset's
// src/ipset.c): blanks separate words; a double quote turns quoting on or
// off and is dropped, so `"x"y` is xy and blanks inside quotes are kept.
// A quote left open swallows the rest of the line, newline included, and
// ipset drops that last word without a word said: open is then where it
// began (the line is otherwise taken).
func tokenize(line string) (toks []token, open *token) {
	var b strings.Builder
	start := -1
	quoted := false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '"':
			quoted = !quoted
			if start < 0 {
				start = i
			}
		case !quoted && (c == ' ' || c == '\t' || c == '\r'):
			if b.Len() > 0 {
				toks = append(toks, token{s: b.String(), col: start + 1})
			}
			b.Reset()
			start = -1
		default:
			if start < 0 {
				start = i
			}
			b.WriteByte(c)
		}
	}
	if quoted {
		return toks, &token{s: line[start:], col: start + 1}
	}
	if b.Len() > 0 {
		toks = append(toks, token{s: b.String(), col: start + 1})
	}
	return toks, nil
}

// Parse reads `ipset save` / `ipset restore` text. now (ns) anchors element
// timeouts. Any error is a *ParseError.
func Parse(filename string, r io.Reader, now int64) (*Registry, error) {
	p := &parser{file: filename, r: &Registry{sets: map[string]*Set{}, loaded: now}, now: now}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		p.line++
		line := sc.Text()
		toks, open := tokenize(line)
		if open != nil {
			p.r.Warnings = append(p.r.Warnings, Warning{File: filename, Line: p.line,
				Msg: fmt.Sprintf("a double quote is left open at column %d: ipset restore drops %q, the rest of the line", open.col, open.s)})
		}
		if len(toks) == 0 || strings.HasPrefix(toks[0].s, "#") {
			continue
		}
		var err error
		switch toks[0].s {
		case "create", "-N", "-C", "n", "c":
			err = p.create(toks)
		case "add", "-A", "a":
			err = p.add(toks)
		default:
			err = p.errf(toks[0], "unknown command %q: expected create or add", toks[0].s)
		}
		if err != nil {
			return nil, err
		}
	}
	if err := sc.Err(); err != nil {
		return nil, &ParseError{File: filename, Line: p.line + 1, Col: 1, Word: "", Msg: "read error: " + err.Error()}
	}
	for _, s := range p.r.order {
		if s.typ == typeHashNet {
			s.finishNet()
		}
		if s.m64 != nil {
			// Matching reads the table; the map only found duplicates.
			s.tab, s.m64 = newTable64(s.m64), nil
		}
	}
	return p.r, nil
}

func validName(s string) bool {
	// IPSET_MAXNAMELEN is 32 including the NUL.
	return len(s) > 0 && len(s) <= 31 && !strings.ContainsAny(s, "\"")
}

func parseUint(s string, max uint64) (uint64, bool) {
	base := 10
	t := s
	if strings.HasPrefix(t, "0x") || strings.HasPrefix(t, "0X") {
		base, t = 16, t[2:]
	}
	v, err := strconv.ParseUint(t, base, 64)
	if err != nil || v > max {
		return 0, false
	}
	return v, true
}

func (p *parser) create(toks []token) error {
	if len(toks) < 3 {
		return p.errf(toks[len(toks)-1], "create needs a set name and a type")
	}
	name := toks[1]
	if !validName(name.s) {
		return p.errf(name, "invalid set name (1-31 characters)")
	}
	if _, dup := p.r.sets[name.s]; dup {
		return p.errf(name, "set %q already exists", name.s)
	}
	s := &Set{name: name.s, maxelem: 65536}
	typ := -1
	for i, n := range typeNames {
		if n == toks[2].s {
			typ = i
		}
	}
	if typ < 0 {
		return p.errf(toks[2], "unsupported set type %q", toks[2].s)
	}
	s.typ = setType(typ)
	switch s.typ {
	case typeBitmapPort, typeListSet:
		s.family = packet.FamilyNone
	default:
		s.family = packet.FamilyIPv4
	}
	isHash := s.typ <= typeHashIPPortIP
	var rangeTok *token
	netmaskSet := false
	var netmaskTok token
	for i := 3; i < len(toks); i++ {
		t := toks[i]
		next := func() (token, error) {
			if i+1 >= len(toks) {
				return t, p.errf(t, "option %s needs a value", t.s)
			}
			i++
			return toks[i], nil
		}
		switch t.s {
		case "family":
			v, err := next()
			if err != nil {
				return err
			}
			if !isHash && s.typ != typeBitmapIP {
				return p.errf(t, "%s has no family option", s.Type())
			}
			switch v.s {
			case "inet", "ipv4", "-4":
				s.family = packet.FamilyIPv4
			case "inet6", "ipv6", "-6":
				if s.typ == typeBitmapIP {
					return p.errf(v, "bitmap:ip supports family inet only")
				}
				s.family = packet.FamilyIPv6
			default:
				return p.errf(v, "unknown family %q", v.s)
			}
		case "-4", "-6":
			if !isHash {
				return p.errf(t, "%s has no family option", s.Type())
			}
			s.family = packet.FamilyIPv4
			if t.s == "-6" {
				s.family = packet.FamilyIPv6
			}
		case "hashsize", "maxelem", "bucketsize", "initval", "size", "timeout", "markmask":
			v, err := next()
			if err != nil {
				return err
			}
			n, ok := parseUint(v.s, 1<<32-1)
			if !ok {
				return p.errf(v, "invalid %s value", t.s)
			}
			switch t.s {
			case "hashsize", "maxelem", "bucketsize", "initval":
				if !isHash {
					return p.errf(t, "%s has no %s option", s.Type(), t.s)
				}
				if t.s == "maxelem" {
					s.maxelem = uint32(n)
				}
			case "size":
				if s.typ != typeListSet {
					return p.errf(t, "%s has no size option", s.Type())
				}
				s.listSize = uint32(n)
			case "timeout":
				if n > maxTimeout {
					return p.errf(v, "timeout too large (max %d)", maxTimeout)
				}
				s.withTimeout, s.defTimeout = true, uint32(n)
			case "markmask":
				return p.errf(t, "%s has no markmask option", s.Type())
			}
		case "netmask":
			v, err := next()
			if err != nil {
				return err
			}
			if s.typ != typeHashIP && s.typ != typeBitmapIP {
				return p.errf(t, "%s has no netmask option", s.Type())
			}
			n, ok := parseUint(v.s, 128)
			if !ok || n == 0 {
				return p.errf(v, "invalid netmask")
			}
			s.netmask, netmaskSet, netmaskTok = uint8(n), true, v
		case "range":
			v, err := next()
			if err != nil {
				return err
			}
			if s.typ != typeBitmapIP && s.typ != typeBitmapPort {
				return p.errf(t, "%s has no range option", s.Type())
			}
			rangeTok = &toks[i]
			_ = v
		case "counters":
			s.withCounters = true
		case "comment":
			s.withComment = true
		case "skbinfo":
			s.withSkbinfo = true
		case "forceadd":
			if !isHash {
				return p.errf(t, "%s has no forceadd option", s.Type())
			}
		default:
			return p.errf(t, "unknown create option %q for %s", t.s, s.Type())
		}
	}
	hostLen := uint8(32)
	if s.family == packet.FamilyIPv6 {
		hostLen = 128
	}
	if netmaskSet {
		if s.netmask > hostLen {
			return p.errf(netmaskTok, "netmask %d is beyond the family's %d bits", s.netmask, hostLen)
		}
	} else {
		s.netmask = hostLen
	}
	switch s.typ {
	case typeHashIP, typeHashIPPort:
		if s.family == packet.FamilyIPv4 {
			s.m64 = map[uint64]int32{}
		} else {
			s.mwide = map[wideKey]int32{}
		}
	case typeHashNetPort:
		if s.family == packet.FamilyIPv4 {
			s.m64 = map[uint64]int32{}
		} else {
			s.mwide = map[wideKey]int32{}
		}
	case typeHashIPPortIP:
		s.mwide = map[wideKey]int32{}
	case typeHashNet:
		s.nets = &bart.Table[uint32]{}
	case typeBitmapIP:
		if rangeTok == nil {
			return p.errf(toks[2], "bitmap:ip needs a range option")
		}
		if !strings.ContainsAny(rangeTok.s, "-/") {
			return p.errf(*rangeTok, "IP/cidr or IP-IP range must be specified")
		}
		if _, c, ok := strings.Cut(rangeTok.s, "/"); ok && c == "32" {
			// bitmap_ip_create: a CIDR of HOST_MASK or more is invalid.
			return p.errf(*rangeTok, "the CIDR of a bitmap:ip range must be under 32")
		}
		from, to, err := p.ipRange(*rangeTok, packet.FamilyIPv4)
		if err != nil {
			return err
		}
		if v4(from) > v4(to) {
			from, to = to, from
		}
		m := mask4(s.netmask)
		s.firstIP, s.lastIP = v4(from)&m, v4(to)|^m
		s.hosts = 1 << (32 - uint32(s.netmask))
		n := uint64(s.lastIP-s.firstIP)/uint64(s.hosts) + 1
		if n > 65536 {
			// IPSET_BITMAP_MAX_RANGE
			return p.errf(*rangeTok, "range too large: bitmap:ip holds at most 65536 entries")
		}
		s.bitmap = newBitmap(int(n))
	case typeBitmapPort:
		if rangeTok == nil {
			return p.errf(toks[2], "bitmap:port needs a range option")
		}
		lo, hi, err := p.portRange(*rangeTok, rangeTok.s)
		if err != nil {
			return err
		}
		s.firstPort, s.lastPrt = lo, hi
		s.bitmap = newBitmap(int(hi-lo) + 1)
	}
	for _, t := range toks[3:] {
		s.opts = append(s.opts, t.s)
	}
	p.r.sets[s.name] = s
	p.r.order = append(p.r.order, s)
	return nil
}

func newBitmap(n int) []int32 {
	b := make([]int32, n)
	for i := range b {
		b[i] = -1
	}
	return b
}

// addOpts are the per-element options of an add line.
type addOpts struct {
	e      elem
	before string
	after  bool
	hasRef bool
	refTok token
}

func (p *parser) add(toks []token) error {
	if len(toks) < 3 {
		return p.errf(toks[len(toks)-1], "add needs a set name and an element")
	}
	s := p.r.sets[toks[1].s]
	if s == nil {
		return p.errf(toks[1], "set %q does not exist", toks[1].s)
	}
	var o addOpts
	if s.withTimeout {
		o.e.hasTO = true
		o.e.timeout = s.defTimeout
	}
	for i := 3; i < len(toks); i++ {
		t := toks[i]
		next := func() (token, error) {
			if i+1 >= len(toks) {
				return t, p.errf(t, "option %s needs a value", t.s)
			}
			i++
			return toks[i], nil
		}
		switch t.s {
		case "timeout":
			v, err := next()
			if err != nil {
				return err
			}
			if !s.withTimeout {
				return p.errf(t, "set %q was created without timeout support", s.name)
			}
			n, ok := parseUint(v.s, maxTimeout)
			if !ok {
				return p.errf(v, "invalid timeout (0-%d seconds)", maxTimeout)
			}
			o.e.timeout = uint32(n)
		case "nomatch":
			if s.typ != typeHashNet && s.typ != typeHashNetPort {
				return p.errf(t, "%s elements cannot be nomatch", s.Type())
			}
			o.e.nomatch = true
		case "packets", "bytes":
			v, err := next()
			if err != nil {
				return err
			}
			if !s.withCounters {
				return p.errf(t, "set %q was created without counters", s.name)
			}
			n, ok := parseUint(v.s, 1<<64-1)
			if !ok {
				return p.errf(v, "invalid %s value", t.s)
			}
			if t.s == "packets" {
				o.e.packets.Store(n)
			} else {
				o.e.bytes.Store(n)
			}
		case "comment":
			v, err := next()
			if err != nil {
				return err
			}
			if !s.withComment {
				return p.errf(t, "set %q was created without comment support", s.name)
			}
			c := v.s
			if len(c) > 255 {
				return p.errf(v, "comment longer than 255 characters")
			}
			o.e.comment = c
		case "skbmark", "skbprio", "skbqueue":
			v, err := next()
			if err != nil {
				return err
			}
			if !s.withSkbinfo {
				return p.errf(t, "set %q was created without skbinfo support", s.name)
			}
			if err := p.checkSkb(t.s, v); err != nil {
				return err
			}
			o.e.skb = append(o.e.skb, t.s, v.s)
		case "before", "after":
			v, err := next()
			if err != nil {
				return err
			}
			if s.typ != typeListSet {
				return p.errf(t, "%s elements take no %s option", s.Type(), t.s)
			}
			o.hasRef, o.after, o.before, o.refTok = true, t.s == "after", v.s, v
		default:
			return p.errf(t, "unknown element option %q", t.s)
		}
	}
	if o.e.hasTO && o.e.timeout != 0 {
		o.e.expires = p.now + int64(o.e.timeout)*1e9
	}
	return p.addElem(s, toks[2], &o)
}

func (p *parser) checkSkb(opt string, v token) error {
	switch opt {
	case "skbmark":
		a, b, found := strings.Cut(v.s, "/")
		if _, ok := parseUint(a, 1<<32-1); !ok {
			return p.errf(v, "invalid skbmark")
		}
		if found {
			if _, ok := parseUint(b, 1<<32-1); !ok {
				return p.errf(v, "invalid skbmark mask")
			}
		}
	case "skbprio":
		a, b, found := strings.Cut(v.s, ":")
		_, ok1 := parseUint(a, 0xffff)
		_, ok2 := parseUint(b, 0xffff)
		if !found || !ok1 || !ok2 {
			return p.errf(v, "invalid skbprio, expected MAJOR:MINOR")
		}
	case "skbqueue":
		if _, ok := parseUint(v.s, 0xffff); !ok {
			return p.errf(v, "invalid skbqueue")
		}
	}
	return nil
}

// insert stores one expanded element; a duplicate is an error as in
// `ipset restore` without -exist.
func (p *parser) insert(s *Set, t token, e *elem) error {
	if uint64(len(s.elems)) >= uint64(s.maxelem) && s.typ <= typeHashIPPortIP {
		return p.errf(t, "set %q is full (maxelem %d)", s.name, s.maxelem)
	}
	if p.total >= maxElements {
		return p.errf(t, "file expands to more than %d elements", maxElements)
	}
	idx := int32(len(s.elems))
	dup := false
	switch s.typ {
	case typeHashIP:
		if s.family == packet.FamilyIPv4 {
			k := uint64(v4(e.ip1))
			_, dup = s.m64[k]
			if !dup {
				s.m64[k] = idx
			}
		} else {
			k := keyWide(e.ip1, netip.Addr{}, 0, 0, 0)
			_, dup = s.mwide[k]
			if !dup {
				s.mwide[k] = idx
			}
		}
	case typeHashIPPort:
		if s.family == packet.FamilyIPv4 {
			k := key4(v4(e.ip1), e.proto, e.port, 0)
			_, dup = s.m64[k]
			if !dup {
				s.m64[k] = idx
			}
		} else {
			k := keyWide(e.ip1, netip.Addr{}, e.proto, e.port, 0)
			_, dup = s.mwide[k]
			if !dup {
				s.mwide[k] = idx
			}
		}
	case typeHashNetPort:
		if s.family == packet.FamilyIPv4 {
			k := key4(v4(e.ip1), e.proto, e.port, e.cidr)
			_, dup = s.m64[k]
			if !dup {
				s.m64[k] = idx
			}
		} else {
			k := keyWide(e.ip1, netip.Addr{}, e.proto, e.port, e.cidr)
			_, dup = s.mwide[k]
			if !dup {
				s.mwide[k] = idx
			}
		}
		if !dup {
			s.addLen(e.cidr)
		}
	case typeHashIPPortIP:
		k := keyWide(e.ip1, e.ip2, e.proto, e.port, 0)
		_, dup = s.mwide[k]
		if !dup {
			s.mwide[k] = idx
		}
	case typeHashNet:
		pfx := netip.PrefixFrom(e.ip1, int(e.cidr))
		_, dup = s.nets.Get(pfx)
		if !dup {
			s.nets.Insert(pfx, netRef(idx, e.nomatch))
		}
	case typeBitmapIP:
		id := (v4(e.ip1) - s.firstIP) / s.hosts
		dup = s.bitmap[id] >= 0
		if !dup {
			s.bitmap[id] = idx
		}
	case typeBitmapPort:
		id := e.port - s.firstPort
		dup = s.bitmap[id] >= 0
		if !dup {
			s.bitmap[id] = idx
		}
	}
	if dup {
		return p.errf(t, "element %s is already in set %q", s.formatElem(e), s.name)
	}
	s.elems = append(s.elems, elem{})
	moveElem(&s.elems[idx], e)
	p.total++
	return nil
}

// moveElem copies an element (its atomics cannot be copied by value).
func moveElem(dst, src *elem) {
	dst.ip1, dst.ip2, dst.cidr, dst.proto, dst.port = src.ip1, src.ip2, src.cidr, src.proto, src.port
	dst.member, dst.nomatch, dst.expires, dst.timeout, dst.hasTO = src.member, src.nomatch, src.expires, src.timeout, src.hasTO
	dst.packets.Store(src.packets.Load())
	dst.bytes.Store(src.bytes.Load())
	dst.comment, dst.skb = src.comment, src.skb
}

func (p *parser) addElem(s *Set, t token, o *addOpts) error {
	fam := s.family
	switch s.typ {
	case typeListSet:
		m := p.r.sets[t.s]
		if m == nil {
			return p.errf(t, "set %q to be added as a member does not exist", t.s)
		}
		if m.typ == typeListSet {
			// list_set_uadt: a list:set cannot be a member (IPSET_ERR_LOOP).
			return p.errf(t, "a list:set cannot be a member of a list:set")
		}
		for i := range s.elems {
			if s.elems[i].member == m {
				return p.errf(t, "set %q is already a member of %q", t.s, s.name)
			}
		}
		pos := len(s.elems)
		if o.hasRef {
			pos = -1
			for i := range s.elems {
				if s.elems[i].member.name == o.before {
					pos = i
					if o.after {
						pos = i + 1
					}
				}
			}
			if pos < 0 {
				return p.errf(o.refTok, "reference set %q is not a member of %q", o.before, s.name)
			}
		}
		if p.total >= maxElements {
			return p.errf(t, "file expands to more than %d elements", maxElements)
		}
		o.e.member = m
		s.elems = append(s.elems, elem{})
		for i := len(s.elems) - 1; i > pos; i-- {
			moveElem(&s.elems[i], &s.elems[i-1])
		}
		moveElem(&s.elems[pos], &o.e)
		p.total++
		return nil
	case typeBitmapPort:
		// ipset_parse_tcp_udp_port: [tcp|udp:]port[-port].
		portStr := t.s
		if protoStr, rest, ok := strings.Cut(t.s, ":"); ok {
			proto, known := protoByName(protoStr)
			if !known {
				return p.errf(t, "unknown protocol %q", protoStr)
			}
			if proto != packet.ProtoTCP && proto != packet.ProtoUDP {
				return p.errf(t, "only protocols TCP and UDP are valid")
			}
			portStr = rest
		}
		lo, hi, err := p.portRange(t, portStr)
		if err != nil {
			return err
		}
		if lo < s.firstPort || hi > s.lastPrt {
			return p.errf(t, "port outside the set's range %d-%d", s.firstPort, s.lastPrt)
		}
		for port := uint32(lo); port <= uint32(hi); port++ {
			o.e.port = uint16(port)
			if err := p.insert(s, t, &o.e); err != nil {
				return err
			}
		}
		return nil
	case typeBitmapIP:
		from, to, err := p.ipRange(t, packet.FamilyIPv4)
		if err != nil {
			return err
		}
		a, b := v4(from), v4(to)
		if a > b {
			a, b = b, a // bitmap_ip_uadt swaps a backwards range
		}
		if a < s.firstIP || b > s.lastIP {
			return p.errf(t, "address outside the set's range")
		}
		// bitmap_ip_uadt walks ids; each id is stored once.
		for id := (a - s.firstIP) / s.hosts; id <= (b-s.firstIP)/s.hosts; id++ {
			o.e.ip1 = addr4(s.firstIP + id*s.hosts)
			if err := p.insert(s, t, &o.e); err != nil {
				return err
			}
		}
		return nil
	}

	parts := strings.Split(t.s, ",")
	want := typeDims[s.typ]
	if len(parts) != want {
		return p.errf(t, "%s element needs %d comma-separated parts", s.Type(), want)
	}
	var protos []protoPort
	if want >= 2 {
		var err error
		protos, err = p.parseProtoPort(t, parts[1], fam)
		if err != nil {
			return err
		}
	}
	var ip2 netip.Addr
	if want == 3 {
		a, err := parseAddr(parts[2])
		if err != nil || a.Zone() != "" {
			return p.errf(t, "invalid second address %q", parts[2])
		}
		if famOf(a) != fam {
			return p.errf(t, "address %s is not of the set's family", parts[2])
		}
		ip2 = a
	}
	emit := func(n netip.Prefix) error {
		o.e.ip1, o.e.cidr, o.e.ip2 = n.Addr(), uint8(n.Bits()), ip2
		if len(protos) == 0 {
			return p.insert(s, t, &o.e)
		}
		for _, pp := range protos {
			for port := uint32(pp.lo); port <= uint32(pp.hi); port++ {
				o.e.proto, o.e.port = pp.proto, uint16(port)
				if err := p.insert(s, t, &o.e); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if s.typ == typeHashNet || s.typ == typeHashNetPort {
		nets, err := p.netList(t, parts[0], fam)
		if err != nil {
			return err
		}
		for _, n := range nets {
			if err := emit(n); err != nil {
				return err
			}
		}
		return nil
	}
	from, to, err := p.ipSpec(t, parts[0], fam, s)
	if err != nil {
		return err
	}
	if fam == packet.FamilyIPv6 {
		b := maskAddr16(from, s.netmask)
		a := netip.AddrFrom16(b)
		if a.IsUnspecified() {
			return p.errf(t, "the zero address cannot be stored")
		}
		return emit(netip.PrefixFrom(a, 128))
	}
	// hash_ip4_uadt / hash_ipport4_uadt: the start is masked first; a
	// reversed range is swapped afterwards without masking again; then
	// the walk steps by the netmask's host count. insert stops the walk
	// at maxelem.
	m := mask4(s.netmask)
	a, b := v4(from)&m, v4(to)
	if a > b {
		a, b = b, a
	}
	if a == 0 {
		return p.errf(t, "the zero address cannot be stored")
	}
	hosts := uint64(1) << (32 - uint64(s.netmask))
	for ip := uint64(a); ip <= uint64(b); ip += hosts {
		if err := emit(netip.PrefixFrom(addr4(uint32(ip)), 32)); err != nil {
			return err
		}
	}
	return nil
}

func famOf(a netip.Addr) packet.Family {
	if a.Is4() {
		return packet.FamilyIPv4
	}
	return packet.FamilyIPv6
}

func addr4(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// ipSpec parses IP, IP/CIDR or IP-IP for the hash:ip* types. IPv6 takes
// no ranges (IPSET_ERR_HASH_RANGE_UNSUPPORTED) and only a /128.
func (p *parser) ipSpec(t token, s string, fam packet.Family, set *Set) (netip.Addr, netip.Addr, error) {
	if fam == packet.FamilyIPv6 {
		a, c, hasC := strings.Cut(s, "/")
		ip, err := netip.ParseAddr(a)
		if err != nil || ip.Zone() != "" || !ip.Is6() || ip.Is4In6() {
			return ip, ip, p.errf(t, "invalid IPv6 address %q", a)
		}
		if hasC && c != "128" {
			return ip, ip, p.errf(t, "IPv6 %s elements take no prefix other than /128", set.Type())
		}
		if strings.Contains(a, "-") {
			return ip, ip, p.errf(t, "IPv6 ranges are not supported")
		}
		return ip, ip, nil
	}
	return p.ipRangeStr(t, s, packet.FamilyIPv4)
}

func (p *parser) ipRange(t token, fam packet.Family) (netip.Addr, netip.Addr, error) {
	return p.ipRangeStr(t, t.s, fam)
}

func (p *parser) ipRangeStr(t token, s string, fam packet.Family) (netip.Addr, netip.Addr, error) {
	parse := func(x string) (netip.Addr, error) {
		a, err := parseAddr(x)
		if err != nil || a.Zone() != "" {
			return a, p.errf(t, "invalid address %q", x)
		}
		if famOf(a) != fam || a.Is4In6() {
			return a, p.errf(t, "address %s is not of the set's family", x)
		}
		return a, nil
	}
	if a, b, ok := strings.Cut(s, "-"); ok {
		from, err := parse(a)
		if err != nil {
			return from, from, err
		}
		to, err := parse(b)
		return from, to, err
	}
	if a, c, ok := strings.Cut(s, "/"); ok {
		ip, err := parse(a)
		if err != nil {
			return ip, ip, err
		}
		n, ok := parseUint(c, 32)
		if !ok || n == 0 || strings.HasPrefix(c, "0x") {
			return ip, ip, p.errf(t, "invalid prefix length %q", c)
		}
		m := mask4(uint8(n))
		return addr4(v4(ip) & m), addr4(v4(ip) | ^m), nil
	}
	ip, err := parse(s)
	return ip, ip, err
}

// netList parses a hash:net* network: IP[/CIDR] or, for IPv4, IP-IP,
// which ip_set_range_to_cidr splits into the fewest covering prefixes.
func (p *parser) netList(t token, s string, fam packet.Family) ([]netip.Prefix, error) {
	if a, b, ok := strings.Cut(s, "-"); ok {
		if fam != packet.FamilyIPv4 {
			return nil, p.errf(t, "IPv6 ranges are not supported")
		}
		from, to, err := p.ipRangeStr(t, a+"-"+b, fam)
		if err != nil {
			return nil, err
		}
		lo, hi := uint64(v4(from)), uint64(v4(to))
		if lo > hi {
			return nil, p.errf(t, "range start is after its end")
		}
		var out []netip.Prefix
		for lo <= hi {
			c := 32 - bits.TrailingZeros32(uint32(lo))
			if lo == 0 {
				c = 0
			}
			for c < 32 && lo+(uint64(1)<<(32-c))-1 > hi {
				c++
			}
			if c == 0 {
				c = 1 // hash:net cannot store /0
			}
			if len(out) >= maxElements {
				return nil, p.errf(t, "range expands to too many networks")
			}
			out = append(out, netip.PrefixFrom(addr4(uint32(lo)), c))
			lo += uint64(1) << (32 - c)
		}
		return out, nil
	}
	a, c, hasC := strings.Cut(s, "/")
	ip, err := parseAddr(a)
	if err != nil || ip.Zone() != "" {
		return nil, p.errf(t, "invalid address %q", a)
	}
	if famOf(ip) != fam || ip.Is4In6() {
		return nil, p.errf(t, "address %s is not of the set's family", a)
	}
	n := uint64(ip.BitLen())
	if hasC {
		v, ok := strconv.ParseUint(c, 10, 8)
		if ok != nil || v == 0 || v > n {
			return nil, p.errf(t, "invalid prefix length %q (1-%d)", c, n)
		}
		n = v
	}
	pfx, _ := ip.Prefix(int(n))
	return []netip.Prefix{pfx}, nil
}

type protoPort struct {
	proto  uint8
	lo, hi uint16
}

// parseProtoPort is ipset_parse_proto_port (lib/parse.c): [proto:]port,
// tcp by default; port ranges for protocols with ports; ICMP as a name
// or type/code; any other protocol only with the pseudo port 0.
func (p *parser) parseProtoPort(t token, s string, fam packet.Family) ([]protoPort, error) {
	protoStr, portStr, hasProto := strings.Cut(s, ":")
	if !hasProto {
		protoStr, portStr = "tcp", s
	}
	proto, ok := protoByName(protoStr)
	if !ok {
		return nil, p.errf(t, "unknown protocol %q", protoStr)
	}
	switch proto {
	case packet.ProtoTCP, packet.ProtoUDP, protoSCTP, protoUDPLite:
		lo, hi, err := p.portRange(t, portStr)
		if err != nil {
			return nil, err
		}
		return []protoPort{{proto, lo, hi}}, nil
	case packet.ProtoICMP, packet.ProtoICMPv6:
		if proto == packet.ProtoICMP && fam != packet.FamilyIPv4 {
			return nil, p.errf(t, "protocol ICMP can be used with family inet only")
		}
		if proto == packet.ProtoICMPv6 && fam != packet.FamilyIPv6 {
			return nil, p.errf(t, "protocol ICMPv6 can be used with family inet6 only")
		}
		v, ok := icmpByName(proto, portStr)
		if !ok {
			ty, co, found := strings.Cut(portStr, "/")
			a, ok1 := parseUint(ty, 255)
			b, ok2 := parseUint(co, 255)
			if !found || !ok1 || !ok2 {
				return nil, p.errf(t, "cannot parse %q as an ICMP type/code", portStr)
			}
			v = uint16(a)<<8 | uint16(b)
		}
		return []protoPort{{proto, v, v}}, nil
	}
	if proto == 0 {
		return nil, p.errf(t, "protocol 0 cannot be stored")
	}
	if portStr != "0" {
		return nil, p.errf(t, "protocol %s can be used with pseudo port value 0 only", protoStr)
	}
	return []protoPort{{proto, 0, 0}}, nil
}

func (p *parser) portRange(t token, s string) (uint16, uint16, error) {
	a, b, isRange := strings.Cut(s, "-")
	lo, ok := portByName(a)
	if !ok {
		return 0, 0, p.errf(t, "cannot parse %q as a port", a)
	}
	hi := lo
	if isRange {
		hi, ok = portByName(b)
		if !ok {
			return 0, 0, p.errf(t, "cannot parse %q as a port", b)
		}
	}
	if lo > hi {
		lo, hi = hi, lo
	}
	return lo, hi, nil
}

func portByName(s string) (uint16, bool) {
	if v, ok := parseUint(s, 65535); ok && s != "" && s[0] >= '0' && s[0] <= '9' {
		return uint16(v), true
	}
	v, ok := services[s]
	return v, ok
}

// parseAddr reads an address as ipset restore does, through the C
// library's getaddrinfo with numeric hosts: IPv6 as inet_pton; IPv4 in
// inet_aton's forms without hex, as glibc reads them there: one to four
// parts in decimal or 0-prefixed octal, the last filling the bytes left
// ("010" is 0.0.0.8, "1.2.3" is 1.2.0.3, "65535" is 0.0.255.255).
func parseAddr(s string) (netip.Addr, error) {
	if strings.Contains(s, ":") {
		return netip.ParseAddr(s)
	}
	bad := fmt.Errorf("invalid IPv4 address %q", s)
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return netip.Addr{}, bad
	}
	nums := make([]uint64, len(parts))
	for i, part := range parts {
		base := uint64(10)
		digits := part
		if len(part) > 1 && part[0] == '0' {
			base, digits = 8, part[1:]
		}
		if digits == "" || len(digits) > 11 {
			return netip.Addr{}, bad
		}
		for _, c := range digits {
			if c < '0' || uint64(c-'0') >= base {
				return netip.Addr{}, bad
			}
			nums[i] = nums[i]*base + uint64(c-'0')
		}
	}
	v, ok := inetaddr.Aton(nums)
	if !ok {
		return netip.Addr{}, bad
	}
	return addr4(v), nil
}
