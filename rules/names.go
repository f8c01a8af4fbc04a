package rules

import (
	"fmt"
	"strconv"
	"strings"
)

// protoNames are the names iptables prints (from /etc/protocols and its own
// table) and accepts.
var protoNames = map[string]uint8{
	"all": 0, "tcp": 6, "udp": 17, "udplite": 136, "icmp": 1, "icmpv6": 58, "ipv6-icmp": 58,
	"esp": 50, "ah": 51, "sctp": 132, "gre": 47, "dccp": 33, "mh": 135, "ipv6-mh": 135, "igmp": 2,
	"ipip": 4, "ipencap": 4, "ipv6": 41, "ospf": 89, "pim": 103, "vrrp": 112, "l2tp": 115,
}

// ProtoByName resolves -p's argument: a name or a number 0-255.
func ProtoByName(s string) (uint8, bool) {
	if n, ok := protoNames[s]; ok {
		return n, true
	}
	v, err := parseCUint(s, 8)
	if err != nil {
		return 0, false
	}
	return uint8(v), true
}

// ProtoName names a protocol number for normalized output.
func ProtoName(n uint8) string {
	switch n {
	case 0:
		return "all"
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 1:
		return "icmp"
	case 58:
		return "ipv6-icmp"
	}
	return strconv.Itoa(int(n))
}

// serviceNames covers the port names operators write; iptables-save itself
// always prints numbers.
var serviceNames = map[string]uint16{
	"ftp-data": 20, "ftp": 21, "ssh": 22, "telnet": 23, "smtp": 25, "domain": 53, "dns": 53, "http": 80, "www": 80,
	"pop3": 110, "ntp": 123, "imap": 143, "snmp": 161, "bgp": 179, "ldap": 389, "https": 443, "smtps": 465,
	"submission": 587, "ldaps": 636, "imaps": 993, "pop3s": 995, "memcache": 11211, "mysql": 3306,
	"postgresql": 5432, "rdp": 3389, "ms-wbt-server": 3389, "chargen": 19, "echo": 7, "sip": 5060,
	"ssdp": 1900, "openvpn": 1194, "bootps": 67, "bootpc": 68, "tftp": 69, "syslog": 514, "redis": 6379,
}

// ParsePort parses a port number or service name.
func ParsePort(s string) (uint16, bool) {
	if v, err := parseCUint(s, 16); err == nil {
		return uint16(v), true
	}
	p, ok := serviceNames[strings.ToLower(s)]
	return p, ok
}

// ParsePortRange parses PORT, PORT:PORT, :PORT or PORT: as libxt_tcp
// and libxt_multiport do: ports in C notation or service names, an empty
// bound is 0 or 65535, and a range whose start is past its end is refused.
func ParsePortRange(s string) (PortRange, bool) {
	r, ok := portRange(s, ParsePort)
	return r, ok && r.Min <= r.Max
}

// portRange splits a port range, reading each bound with port.
func portRange(s string, port func(string) (uint16, bool)) (PortRange, bool) {
	lo, hi, isRange := strings.Cut(s, ":")
	if !isRange {
		p, ok := port(s)
		return PortRange{p, p}, ok
	}
	r := PortRange{0, 65535}
	var ok bool
	if lo != "" {
		if r.Min, ok = port(lo); !ok {
			return r, false
		}
	}
	if hi != "" {
		if r.Max, ok = port(hi); !ok {
			return r, false
		}
	}
	return r, true
}

type icmpName struct {
	name             string
	typ              uint8
	codeMin, codeMax uint8
}

// icmpNames is iptables' libxt_icmp table of names.
var icmpNames = []icmpName{
	{"any", 0xFF, 0, 0xFF},
	{"echo-reply", 0, 0, 0xFF}, {"pong", 0, 0, 0xFF},
	{"destination-unreachable", 3, 0, 0xFF},
	{"network-unreachable", 3, 0, 0}, {"host-unreachable", 3, 1, 1}, {"protocol-unreachable", 3, 2, 2},
	{"port-unreachable", 3, 3, 3}, {"fragmentation-needed", 3, 4, 4}, {"source-route-failed", 3, 5, 5},
	{"network-unknown", 3, 6, 6}, {"host-unknown", 3, 7, 7}, {"network-prohibited", 3, 9, 9},
	{"host-prohibited", 3, 10, 10}, {"TOS-network-unreachable", 3, 11, 11}, {"TOS-host-unreachable", 3, 12, 12},
	{"communication-prohibited", 3, 13, 13}, {"host-precedence-violation", 3, 14, 14},
	{"precedence-cutoff", 3, 15, 15},
	{"source-quench", 4, 0, 0xFF},
	{"redirect", 5, 0, 0xFF}, {"network-redirect", 5, 0, 0}, {"host-redirect", 5, 1, 1},
	{"TOS-network-redirect", 5, 2, 2}, {"TOS-host-redirect", 5, 3, 3},
	{"echo-request", 8, 0, 0xFF}, {"ping", 8, 0, 0xFF},
	{"router-advertisement", 9, 0, 0xFF}, {"router-solicitation", 10, 0, 0xFF},
	{"time-exceeded", 11, 0, 0xFF}, {"ttl-exceeded", 11, 0, 0xFF}, {"ttl-zero-during-transit", 11, 0, 0},
	{"ttl-zero-during-reassembly", 11, 1, 1},
	{"parameter-problem", 12, 0, 0xFF}, {"ip-header-bad", 12, 0, 0}, {"required-option-missing", 12, 1, 1},
	{"timestamp-request", 13, 0, 0xFF}, {"timestamp-reply", 14, 0, 0xFF},
	{"address-mask-request", 17, 0, 0xFF}, {"address-mask-reply", 18, 0, 0xFF},
}

// icmp6Names is ip6tables' libxt_icmp6 table of names.
var icmp6Names = []icmpName{
	{"destination-unreachable", 1, 0, 0xFF}, {"no-route", 1, 0, 0}, {"communication-prohibited", 1, 1, 1},
	{"beyond-scope", 1, 2, 2}, {"address-unreachable", 1, 3, 3}, {"port-unreachable", 1, 4, 4},
	{"failed-policy", 1, 5, 5}, {"reject-route", 1, 6, 6},
	{"packet-too-big", 2, 0, 0xFF},
	{"time-exceeded", 3, 0, 0xFF}, {"ttl-exceeded", 3, 0, 0xFF}, {"ttl-zero-during-transit", 3, 0, 0},
	{"ttl-zero-during-reassembly", 3, 1, 1},
	{"parameter-problem", 4, 0, 0xFF}, {"bad-header", 4, 0, 0}, {"unknown-header-type", 4, 1, 1},
	{"unknown-option", 4, 2, 2},
	{"echo-request", 128, 0, 0xFF}, {"ping", 128, 0, 0xFF}, {"echo-reply", 129, 0, 0xFF}, {"pong", 129, 0, 0xFF},
	{"mld-listener-query", 130, 0, 0xFF}, {"mld-listener-report", 131, 0, 0xFF}, {"mld-listener-done", 132, 0, 0xFF},
	{"mld-listener-reduction", 132, 0, 0xFF},
	{"router-solicitation", 133, 0, 0xFF}, {"router-advertisement", 134, 0, 0xFF},
	{"neighbour-solicitation", 135, 0, 0xFF}, {"neighbor-solicitation", 135, 0, 0xFF},
	{"neighbour-advertisement", 136, 0, 0xFF}, {"neighbor-advertisement", 136, 0, 0xFF},
	{"redirect", 137, 0, 0xFF},
}

// parseICMPType parses `--icmp-type` / `--icmpv6-type`: a name, TYPE or
// TYPE/CODE.
func parseICMPType(s string, v6 bool) (typ, cmin, cmax uint8, ok bool) {
	table := icmpNames
	if v6 {
		table = icmp6Names
	}
	for _, n := range table {
		if strings.EqualFold(n.name, s) {
			return n.typ, n.codeMin, n.codeMax, true
		}
	}
	ts, cs, hasCode := strings.Cut(s, "/")
	t, err := parseCUint(ts, 8)
	if err != nil {
		return 0, 0, 0, false
	}
	if !hasCode {
		return uint8(t), 0, 0xFF, true
	}
	c, err := parseCUint(cs, 8)
	if err != nil {
		return 0, 0, 0, false
	}
	return uint8(t), uint8(c), uint8(c), true
}

// parseUDPPortRange is -m udp's --sport/--dport as iptables 1.8.9's
// libxt_udp reads them, which differs from libxt_tcp and multiport: a port
// is a service name or a decimal number (no octal or hex) cut to 16 bits
// (70000 is 4464), and a backwards range is taken (udp_mt then never
// matches it).
func parseUDPPortRange(s string) (PortRange, bool) {
	port := func(s string) (uint16, bool) {
		if p, ok := serviceNames[strings.ToLower(s)]; ok {
			return p, true
		}
		if s == "" || len(s) > 20 {
			return 0, false
		}
		var n uint64
		for _, c := range s {
			if c < '0' || c > '9' {
				return 0, false
			}
			d := uint64(c - '0')
			if n > (1<<64-1-d)/10 {
				return 0, false // strtoul's ERANGE
			}
			n = n*10 + d
		}
		return uint16(n), true
	}
	return portRange(s, port)
}

// parseCUint reads an unsigned number as iptables' extensions do
// (xtables_strtoui and the XTTYPE_UINT* options: strtoul with base 0), so
// "010" is 8 and "0x10" is 16, and checks it fits bitSize bits. A number
// in a rules file means what it means to iptables-restore.
func parseCUint(s string, bitSize int) (uint64, error) {
	n, ok := cNumber(s)
	if !ok || bitSize < 64 && n >= 1<<bitSize {
		return 0, fmt.Errorf("%q is not a number of %d bits", s, bitSize)
	}
	return n, nil
}
