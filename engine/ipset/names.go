package ipset

import "github.com/sluice-project/sluice/internal/clib"

// The names ipset prints and accepts. ipset resolves protocols with
// getprotobyname(3) and ports with getservbyname(3); sluice must read a
// file identically on any host, so the names are fixed here: protocols
// as in the netbase /etc/protocols, ICMP names as in ipset's lib/icmp.c
// and lib/icmpv6.c (checked against `ipset save` of every type/code),
// and a set of common service names.

// protoNames is /etc/protocols (netbase): number to ipset's printed name.
var protoNames = map[uint8]string{
	0:   "ip",
	1:   "icmp",
	2:   "igmp",
	3:   "ggp",
	4:   "ipencap",
	5:   "st",
	6:   "tcp",
	8:   "egp",
	9:   "igp",
	12:  "pup",
	17:  "udp",
	20:  "hmp",
	22:  "xns-idp",
	27:  "rdp",
	29:  "iso-tp4",
	33:  "dccp",
	36:  "xtp",
	37:  "ddp",
	38:  "idpr-cmtp",
	41:  "ipv6",
	43:  "ipv6-route",
	44:  "ipv6-frag",
	45:  "idrp",
	46:  "rsvp",
	47:  "gre",
	50:  "esp",
	51:  "ah",
	57:  "skip",
	58:  "ipv6-icmp",
	59:  "ipv6-nonxt",
	60:  "ipv6-opts",
	73:  "rspf",
	81:  "vmtp",
	88:  "eigrp",
	89:  "ospf",
	93:  "ax.25",
	94:  "ipip",
	97:  "etherip",
	98:  "encap",
	103: "pim",
	108: "ipcomp",
	112: "vrrp",
	115: "l2tp",
	124: "isis",
	132: "sctp",
	133: "fc",
	135: "mobility-header",
	136: "udplite",
	137: "mpls-in-ip",
	138: "manet",
	139: "hip",
	140: "shim6",
	141: "wesp",
	142: "rohc",
	143: "ethernet",
}

var protoAliases = map[string]uint8{
	"icmpv6":          58,
	"AX.25":           93,
	"CPHB":            73,
	"DCCP":            33,
	"DDP":             37,
	"EGP":             8,
	"EIGRP":           88,
	"ENCAP":           98,
	"ETHERIP":         97,
	"Ethernet":        143,
	"FC":              133,
	"GGP":             3,
	"GRE":             47,
	"HIP":             139,
	"HMP":             20,
	"HOPOPT":          0,
	"ICMP":            1,
	"IDPR-CMTP":       38,
	"IDRP":            45,
	"IGMP":            2,
	"IGP":             9,
	"IP":              0,
	"IP-ENCAP":        4,
	"IPCOMP":          108,
	"IPIP":            94,
	"IPSEC-AH":        51,
	"IPSEC-ESP":       50,
	"IPv6":            41,
	"IPv6-Frag":       44,
	"IPv6-ICMP":       58,
	"IPv6-NoNxt":      59,
	"IPv6-Opts":       60,
	"IPv6-Route":      43,
	"ISIS":            124,
	"ISO-TP4":         29,
	"L2TP":            115,
	"MPLS-in-IP":      137,
	"Mobility-Header": 135,
	"OSPFIGP":         89,
	"PIM":             103,
	"PUP":             12,
	"RDP":             27,
	"ROHC":            142,
	"RSPF":            73,
	"RSVP":            46,
	"SCTP":            132,
	"SKIP":            57,
	"ST":              5,
	"Shim6":           140,
	"TCP":             6,
	"UDP":             17,
	"UDPLite":         136,
	"VMTP":            81,
	"VRRP":            112,
	"WESP":            141,
	"XNS-IDP":         22,
	"XTP":             36,
	"ah":              51,
	"ax.25":           93,
	"dccp":            33,
	"ddp":             37,
	"egp":             8,
	"eigrp":           88,
	"encap":           98,
	"esp":             50,
	"etherip":         97,
	"ethernet":        143,
	"fc":              133,
	"ggp":             3,
	"gre":             47,
	"hip":             139,
	"hmp":             20,
	"hopopt":          0,
	"icmp":            1,
	"idpr-cmtp":       38,
	"idrp":            45,
	"igmp":            2,
	"igp":             9,
	"ip":              0,
	"ipcomp":          108,
	"ipencap":         4,
	"ipip":            94,
	"ipv6":            41,
	"ipv6-frag":       44,
	"ipv6-icmp":       58,
	"ipv6-nonxt":      59,
	"ipv6-opts":       60,
	"ipv6-route":      43,
	"isis":            124,
	"iso-tp4":         29,
	"l2tp":            115,
	"manet":           138,
	"mobility-header": 135,
	"mpls-in-ip":      137,
	"ospf":            89,
	"pim":             103,
	"pup":             12,
	"rdp":             27,
	"rohc":            142,
	"rspf":            73,
	"rsvp":            46,
	"sctp":            132,
	"shim6":           140,
	"skip":            57,
	"st":              5,
	"tcp":             6,
	"udp":             17,
	"udplite":         136,
	"vmtp":            81,
	"vrrp":            112,
	"wesp":            141,
	"xns-idp":         22,
	"xtp":             36,
}

// services are common /etc/services names (tcp and udp share numbers).
var services = map[string]uint16{
	"ftp-data":      20,
	"www":           80,
	"imap":          143,
	"ftp":           21,
	"ssh":           22,
	"telnet":        23,
	"smtp":          25,
	"domain":        53,
	"tftp":          69,
	"http":          80,
	"kerberos":      88,
	"pop3":          110,
	"sunrpc":        111,
	"ntp":           123,
	"netbios-ns":    137,
	"netbios-dgm":   138,
	"netbios-ssn":   139,
	"snmp":          161,
	"snmp-trap":     162,
	"bgp":           179,
	"ldap":          389,
	"https":         443,
	"microsoft-ds":  445,
	"isakmp":        500,
	"syslog":        514,
	"submission":    587,
	"ldaps":         636,
	"imaps":         993,
	"pop3s":         995,
	"openvpn":       1194,
	"mysql":         3306,
	"postgresql":    5432,
	"ms-wbt-server": 3389,
	"sip":           5060,
	"sip-tls":       5061,
	"http-alt":      8080,
	"xmpp-client":   5222,
	"redis":         6379,
	"bootps":        67,
	"bootpc":        68,
}

type icmpName struct {
	name string
	tc   uint16 // type<<8 | code
}

// icmpNames is lib/icmp.c's table, in ipset's order.
var icmpNames = []icmpName{
	{"echo-reply", 0x0000},
	{"network-unreachable", 0x0300},
	{"host-unreachable", 0x0301},
	{"protocol-unreachable", 0x0302},
	{"port-unreachable", 0x0303},
	{"fragmentation-needed", 0x0304},
	{"source-route-failed", 0x0305},
	{"network-unknown", 0x0306},
	{"host-unknown", 0x0307},
	{"network-prohibited", 0x0309},
	{"host-prohibited", 0x030a},
	{"TOS-network-unreachable", 0x030b},
	{"TOS-host-unreachable", 0x030c},
	{"communication-prohibited", 0x030d},
	{"host-precedence-violation", 0x030e},
	{"precedence-cutoff", 0x030f},
	{"source-quench", 0x0400},
	{"network-redirect", 0x0500},
	{"host-redirect", 0x0501},
	{"TOS-network-redirect", 0x0502},
	{"TOS-host-redirect", 0x0503},
	{"echo-request", 0x0800},
	{"router-advertisement", 0x0900},
	{"router-solicitation", 0x0a00},
	{"ttl-zero-during-transit", 0x0b00},
	{"ttl-zero-during-reassembly", 0x0b01},
	{"ip-header-bad", 0x0c00},
	{"required-option-missing", 0x0c01},
	{"timestamp-request", 0x0d00},
	{"timestamp-reply", 0x0e00},
	{"address-mask-request", 0x1100},
	{"address-mask-reply", 0x1200},
}

// icmpv6Names is lib/icmpv6.c's table.
var icmpv6Names = []icmpName{
	{"no-route", 0x0100},
	{"communication-prohibited", 0x0101},
	{"address-unreachable", 0x0103},
	{"port-unreachable", 0x0104},
	{"packet-too-big", 0x0200},
	{"ttl-zero-during-transit", 0x0300},
	{"ttl-zero-during-reassembly", 0x0301},
	{"bad-header", 0x0400},
	{"unknown-header-type", 0x0401},
	{"unknown-option", 0x0402},
	{"echo-request", 0x8000},
	{"echo-reply", 0x8100},
	{"router-solicitation", 0x8500},
	{"router-advertisement", 0x8600},
	{"neighbour-solicitation", 0x8700},
	{"neighbour-advertisement", 0x8800},
	{"redirect", 0x8900},
}

func icmpTable(proto uint8) []icmpName {
	if proto == 58 {
		return icmpv6Names
	}
	return icmpNames
}

// icmpByName resolves an ICMP/ICMPv6 name, case-insensitively as ipset's
// STREQ-on-prefix lookup effectively does for the full names.
func icmpByName(proto uint8, s string) (uint16, bool) {
	for _, n := range icmpTable(proto) {
		if clib.EqualFoldASCII(n.name, s) {
			return n.tc, true
		}
	}
	return 0, false
}

func icmpString(proto uint8, tc uint16) string {
	for _, n := range icmpTable(proto) {
		if n.tc == tc {
			return n.name
		}
	}
	return itoa(uint64(tc>>8)) + "/" + itoa(uint64(tc&0xff))
}

func protoByName(s string) (uint8, bool) {
	if v, ok := parseUint(s, 255); ok && s != "" && s[0] >= '0' && s[0] <= '9' {
		return uint8(v), true
	}
	v, ok := protoAliases[s]
	return v, ok
}

func protoString(p uint8) string {
	if n, ok := protoNames[p]; ok {
		return n
	}
	return itoa(uint64(p))
}
