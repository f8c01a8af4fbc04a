package rules

import (
	"net/netip"

	"github.com/sluice-project/sluice/packet"
)

// Ruleset is one family's parsed iptables-save file.
type Ruleset struct {
	Family packet.Family
	File   string
	Tables []*Table
	// Warnings are things the kernel accepts but the operator should know.
	Warnings []Warning
}

// Table is one `*table` section.
type Table struct {
	Name   string
	Line   int
	Chains []*Chain
}

// Policy is a built-in chain's policy; user chains have PolicyNone.
type Policy uint8

const (
	PolicyNone Policy = iota
	PolicyAccept
	PolicyDrop
)

func (p Policy) String() string {
	switch p {
	case PolicyAccept:
		return "ACCEPT"
	case PolicyDrop:
		return "DROP"
	}
	return "-"
}

// Chain is a built-in or user chain with its rules in order.
type Chain struct {
	Name    string
	Line    int
	Builtin bool
	Policy  Policy
	Rules   []*Rule
}

// Rule is one rule after expansion: a rule written with comma lists in -s or
// -d becomes one Rule per address pair, all with the same Line, as
// iptables-restore expands it.
type Rule struct {
	Line int
	Text string // the rule as written, without a leading [p:b]

	// The fixed part of every rule (struct ipt_ip / ip6t_ip6).
	Src, Dst AddrMask
	Proto    uint8 // 0 = any
	ProtoInv bool
	// ProtoGiven is true when the rule says -p, even -p all: ip6tables
	// then walks the extension-header chain for the rule.
	ProtoGiven       bool
	InIface          Iface
	OutIface         Iface
	Frag, FragInv    bool // -f: IPv4 non-first fragments
	HasOutIface      bool
	Matches          []Match
	Target           Target
	OrigSrc, OrigDst string // the -s/-d words this rule came from, for messages

	targetCol int // column of the -j/-g chain name, for the chain loop error
}

// AddrMask is an address with a possibly non-contiguous mask, as iptables
// allows (`-s 10.0.0.1/255.0.255.0`). A zero mask matches everything.
type AddrMask struct {
	Addr   netip.Addr
	Mask   netip.Addr
	Bits   int // prefix length when the mask is contiguous, else -1
	Invert bool
	Set    bool
}

// Iface is an -i/-o interface name; a trailing '+' is a prefix wildcard.
type Iface struct {
	Name     string
	Wildcard bool
	Invert   bool
	Set      bool
}

// TargetKind says what a rule does when it matches.
type TargetKind uint8

const (
	TargetNone    TargetKind = iota // no -j: count and continue
	TargetAccept                    // ACCEPT
	TargetDrop                      // DROP
	TargetReject                    // REJECT: dropped here; the kernel would also answer
	TargetReturn                    // RETURN
	TargetJump                      // -j CHAIN
	TargetGoto                      // -g CHAIN
	TargetLog                       // LOG: counts, logs, continues
	TargetNFLog                     // NFLOG: counts, continues
	TargetNotrack                   // CT --notrack / NOTRACK: counts, continues
)

// Target is the -j / -g part of a rule.
type Target struct {
	Kind  TargetKind
	Chain string // for TargetJump and TargetGoto
	// LogPrefix and LogLevel are kept for LOG lines when running live.
	LogPrefix string
	LogLevel  int
	Args      []string // the target's options as written, for normalized output
}

// Terminal reports whether the target ends evaluation of the packet in
// this hook (ACCEPT, DROP, REJECT).
func (t Target) Terminal() bool {
	return t.Kind == TargetAccept || t.Kind == TargetDrop || t.Kind == TargetReject
}

// Match is one -m match with its options. The concrete types are below;
// the engine switches on them at compile time only.
type Match interface {
	// Name is the -m name, e.g. "tcp".
	Name() string
}

// PortRange is an inclusive port range.
type PortRange struct{ Min, Max uint16 }

// TCP is -m tcp.
type TCP struct {
	Src, Dst             PortRange
	SrcInv, DstInv       bool
	HasSrc, HasDst       bool
	FlagMask, FlagComp   uint8
	FlagsInv, HasFlags   bool
	Option               uint8
	OptionInv, HasOption bool
}

// UDP is -m udp.
type UDP struct {
	Src, Dst       PortRange
	SrcInv, DstInv bool
	HasSrc, HasDst bool
}

// ICMP is -m icmp (IPv4) or -m icmp6 (IPv6). Type 0xFF with Any means any
// type, as iptables encodes `--icmp-type any`.
type ICMP struct {
	V6               bool
	Type             uint8
	CodeMin, CodeMax uint8
	Any              bool
	Invert           bool
}

// Multiport is -m multiport.
type Multiport struct {
	Dir    MultiportDir
	Ports  []PortRange
	Invert bool
}

// MultiportDir says which ports -m multiport compares.
type MultiportDir uint8

const (
	MultiportSrc MultiportDir = iota + 1
	MultiportDst
	MultiportAny
)

// Length is -m length: the L3 length as the kernel sees it.
type Length struct {
	Min, Max uint16
	Invert   bool
}

// TTLOp is the comparison of -m ttl and -m hl.
type TTLOp uint8

const (
	TTLEq TTLOp = iota
	TTLNe
	TTLLt
	TTLGt
)

// TTL is -m ttl (IPv4) or -m hl (IPv6).
type TTL struct {
	V6    bool
	Op    TTLOp
	Value uint8
}

// IPRange is -m iprange.
type IPRange struct {
	SrcMin, SrcMax netip.Addr
	DstMin, DstMax netip.Addr
	HasSrc, HasDst bool
	SrcInv, DstInv bool
}

// DSCP is -m dscp: the upper six bits of the TOS / traffic class byte.
type DSCP struct {
	Value  uint8
	Invert bool
}

// TOS is -m tos: (tos & mask) == value.
type TOS struct {
	Value, Mask uint8
	Invert      bool
}

// PktType is -m pkttype.
type PktType struct {
	Type   packet.PktType
	Invert bool
}

// MAC is -m mac --mac-source.
type MAC struct {
	Addr   [6]byte
	Invert bool
}

// Comment is -m comment; it always matches.
type Comment struct{ Text string }

func (*TCP) Name() string { return "tcp" }
func (*UDP) Name() string { return "udp" }
func (m *ICMP) Name() string {
	if m.V6 {
		return "icmp6"
	}
	return "icmp"
}
func (*Multiport) Name() string { return "multiport" }
func (*Length) Name() string    { return "length" }
func (m *TTL) Name() string {
	if m.V6 {
		return "hl"
	}
	return "ttl"
}
func (*IPRange) Name() string { return "iprange" }
func (*DSCP) Name() string    { return "dscp" }
func (*TOS) Name() string     { return "tos" }
func (*PktType) Name() string { return "pkttype" }
func (*MAC) Name() string     { return "mac" }
func (*Comment) Name() string { return "comment" }

// Table and chain names of the ingress path, in the order the kernel runs
// them for a packet addressed to this host.
var IngressHooks = []struct{ Table, Chain string }{
	{"raw", "PREROUTING"},
	{"mangle", "PREROUTING"},
	{"mangle", "INPUT"},
	{"filter", "INPUT"},
}

// builtinChains lists the built-in chains of each table sluice accepts.
var builtinChains = map[string][]string{
	"raw":    {"PREROUTING", "OUTPUT"},
	"mangle": {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"},
	"filter": {"INPUT", "FORWARD", "OUTPUT"},
}

// Table returns the named table or nil.
func (rs *Ruleset) Table(name string) *Table {
	for _, t := range rs.Tables {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// Chain returns the named chain or nil.
func (t *Table) Chain(name string) *Chain {
	for _, c := range t.Chains {
		if c.Name == name {
			return c
		}
	}
	return nil
}
