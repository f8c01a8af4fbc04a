package packet

// ICMP is a view of an ICMP (RFC 792) or ICMPv6 (RFC 4443) header; the
// first four bytes have the same layout in both.
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|     Type      |     Code      |          Checksum             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                 Rest of header (id/seq, MTU, ...)             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// ICMPMinSize is what the icmp and icmp6 matches read
// (sizeof(struct icmphdr) in ip_tables.c, sizeof(struct icmp6hdr) in
// ip6_tables.c): with fewer bytes they hotdrop, although Type and Code
// need only two.
type ICMP []byte

// ICMPMinSize is the fixed ICMP header the kernel's matches read.
const ICMPMinSize = 8

// Type returns the message type.
func (h ICMP) Type() uint8 { return h[0] }

// Code returns the message code.
func (h ICMP) Code() uint8 { return h[1] }

// Checksum returns the checksum field.
func (h ICMP) Checksum() uint16 { return be16(h[2:]) }
