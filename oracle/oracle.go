package oracle

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-project/sluice/report"
)

// Backend selects which iptables implementation loads and reads the rules.
type Backend uint8

const (
	// Legacy uses iptables-legacy-restore and friends (x_tables), the
	// semantics sluice reproduces. It is the default.
	Legacy Backend = iota
	// NFT uses iptables-nft-restore (the nf_tables compatibility layer).
	NFT
)

// String names the backend as its binaries do.
func (b Backend) String() string {
	switch b {
	case Legacy:
		return "legacy"
	case NFT:
		return "nft"
	}
	return fmt.Sprintf("Backend(%d)", uint8(b))
}

// tool returns the binary name for an iptables tool ("iptables-restore",
// "ip6tables-save -c", ...) under the backend.
func (b Backend) tool(family, verb string) string {
	base := "iptables"
	if family == "ipv6" {
		base = "ip6tables"
	}
	if verb == "" {
		return base + "-" + b.String()
	}
	return base + "-" + b.String() + "-" + verb
}

// Spec is what the kernel is loaded with. Any part may be empty; a family
// without rules is neither loaded nor reported.
type Spec struct {
	Rules4  []byte // iptables-save text
	Rules6  []byte // ip6tables-save text
	Sets    []byte // `ipset save` text, restored before the rules
	Backend Backend
	// Iface names the receiving interface, so rules with -i see the
	// name they were written for; empty means testnet.BIfName.
	Iface string
}

// Frame is one Ethernet frame to send, with its capture timestamp.
type Frame struct {
	Data []byte
	Time int64 // nanoseconds, any epoch; only differences matter
}

// Options controls sending.
type Options struct {
	// Pace sleeps between frames so that the gaps follow Frame.Time, for
	// rules whose outcome depends on time (limit, hashlimit, recent).
	Pace bool
	// Repeat sends the whole list this many times; 0 means once.
	Repeat int
	// Timeout bounds the whole run; 0 means DefaultTimeout.
	Timeout time.Duration
}

// DefaultTimeout bounds a Run when Options.Timeout is zero.
const DefaultTimeout = 2 * time.Minute

// ParseError is a line of iptables-save -c output that ParseCounters could
// not understand.
type ParseError struct {
	Line int // 1-based
	Text string
	Msg  string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("oracle: iptables-save line %d: %s: %q", e.Line, e.Msg, e.Text)
}

// ParseCounters parses `iptables-save -c` output into tables: each chain
// with its policy and policy counters from `:CHAIN POLICY [p:b]`, and its
// rules in order from `[p:b] -A CHAIN ...`. Rule.Text is the rule after
// the counters; Rule.Line is 0 because save output has no source lines.
func ParseCounters(family string, save []byte) ([]report.Table, error) {
	if family != "ipv4" && family != "ipv6" {
		return nil, fmt.Errorf("oracle: family %q: want ipv4 or ipv6", family)
	}
	var tables []report.Table
	var cur *report.Table
	sc := bufio.NewScanner(bytes.NewReader(save))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		fail := func(msg string) error { return &ParseError{Line: n, Text: line, Msg: msg} }
		switch {
		case line == "" || line[0] == '#':
		case line[0] == '*':
			if cur != nil {
				return nil, fail("table starts before COMMIT of table " + cur.Table)
			}
			tables = append(tables, report.Table{Family: family, Table: line[1:], Chains: []report.Chain{}})
			cur = &tables[len(tables)-1]
		case line == "COMMIT":
			if cur == nil {
				return nil, fail("COMMIT outside a table")
			}
			cur = nil
		case line[0] == ':':
			if cur == nil {
				return nil, fail("chain outside a table")
			}
			f := strings.Fields(line[1:])
			if len(f) != 3 {
				return nil, fail("want :CHAIN POLICY [packets:bytes]")
			}
			p, b, err := parseCounter(f[2])
			if err != nil {
				return nil, fail(err.Error())
			}
			if cur.Chain(f[0]) != nil {
				return nil, fail("chain " + f[0] + " declared twice")
			}
			cur.Chains = append(cur.Chains, report.Chain{Name: f[0], Policy: f[1], PolicyPackets: p, PolicyBytes: b, Rules: []report.Rule{}})
		case line[0] == '[':
			if cur == nil {
				return nil, fail("rule outside a table")
			}
			ctr, text, ok := strings.Cut(line, " ")
			if !ok {
				return nil, fail("counters without a rule")
			}
			p, b, err := parseCounter(ctr)
			if err != nil {
				return nil, fail(err.Error())
			}
			text = strings.TrimSpace(text)
			f := strings.Fields(text)
			if len(f) < 2 || f[0] != "-A" {
				return nil, fail("want [packets:bytes] -A CHAIN ...")
			}
			ch := cur.Chain(f[1])
			if ch == nil {
				return nil, fail("rule in undeclared chain " + f[1])
			}
			ch.Rules = append(ch.Rules, report.Rule{Packets: p, Bytes: b, Text: text})
		default:
			return nil, fail("rule without counters (was the output made with -c?)")
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("oracle: read iptables-save output: %w", err)
	}
	if cur != nil {
		return nil, &ParseError{Line: n, Msg: "missing COMMIT for table " + cur.Table}
	}
	return tables, nil
}

// parseCounter parses "[packets:bytes]".
func parseCounter(s string) (packets, bytes uint64, err error) {
	if len(s) < 5 || s[0] != '[' || s[len(s)-1] != ']' {
		return 0, 0, fmt.Errorf("counters %q: want [packets:bytes]", s)
	}
	ps, bs, ok := strings.Cut(s[1:len(s)-1], ":")
	if !ok {
		return 0, 0, fmt.Errorf("counters %q: want [packets:bytes]", s)
	}
	if packets, err = strconv.ParseUint(ps, 10, 64); err != nil {
		return 0, 0, fmt.Errorf("counters %q: packets: %w", s, err)
	}
	if bytes, err = strconv.ParseUint(bs, 10, 64); err != nil {
		return 0, 0, fmt.Errorf("counters %q: bytes: %w", s, err)
	}
	return packets, bytes, nil
}

// tablesIn lists the tables (*name lines) a restore file loads, in order.
func tablesIn(rules []byte) []string {
	var out []string
	for _, line := range strings.Split(string(rules), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "*") && len(line) > 1 {
			out = append(out, line[1:])
		}
	}
	return out
}
