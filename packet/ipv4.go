package packet

import (
	"encoding/binary"
	"net/netip"
)

// IPv4 is a view of an IPv4 header (RFC 791, section 3.1). The decoder
// validates the length before using it, exactly as ip_rcv_core() does, so
// the accessors themselves do not check.
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version|  IHL  |Type of Service|          Total Length         |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|         Identification        |Flags|      Fragment Offset    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Time to Live |    Protocol   |         Header Checksum       |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                       Source Address                          |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Destination Address                        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Options                    |    Padding    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
type IPv4 []byte

// IPv4 sizes and flag bits.
const (
	IPv4MinSize = 20
	IPv4MaxSize = 60 // IHL is four bits of 32-bit words

	ipv4FlagMF     = 0x2000 // more fragments, in the flags+offset word
	ipv4FlagDF     = 0x4000
	ipv4OffsetMask = 0x1fff // IP_OFFSET in include/net/ip.h
)

// Version returns the version nibble.
func (h IPv4) Version() uint8 { return h[0] >> 4 }

// HeaderLen returns IHL*4, the header length in bytes.
func (h IPv4) HeaderLen() int { return int(h[0]&0x0f) * 4 }

// TOS returns the type-of-service (DSCP and ECN) byte.
func (h IPv4) TOS() uint8 { return h[1] }

// TotalLen returns the datagram length the header claims.
func (h IPv4) TotalLen() int { return int(be16(h[2:])) }

// ID returns the identification field.
func (h IPv4) ID() uint16 { return be16(h[4:]) }

// FragOffUnits returns the raw 13-bit fragment offset, in units of 8
// bytes. This is what iptables' par->fragoff holds for IPv4.
func (h IPv4) FragOffUnits() uint16 { return be16(h[6:]) & ipv4OffsetMask }

// FragOff returns the fragment offset in bytes.
func (h IPv4) FragOff() uint16 { return h.FragOffUnits() << 3 }

// MoreFrags reports the MF flag.
func (h IPv4) MoreFrags() bool { return be16(h[6:])&ipv4FlagMF != 0 }

// DontFrag reports the DF flag.
func (h IPv4) DontFrag() bool { return be16(h[6:])&ipv4FlagDF != 0 }

// TTL returns the time to live.
func (h IPv4) TTL() uint8 { return h[8] }

// Protocol returns the protocol field.
func (h IPv4) Protocol() uint8 { return h[9] }

// Checksum returns the header checksum field.
func (h IPv4) Checksum() uint16 { return be16(h[10:]) }

// Src returns the source address.
func (h IPv4) Src() netip.Addr { return netip.AddrFrom4([4]byte(h[12:16])) }

// Dst returns the destination address.
func (h IPv4) Dst() netip.Addr { return netip.AddrFrom4([4]byte(h[16:20])) }

// ChecksumValid reports whether the header checksum over HeaderLen bytes
// verifies, the test ip_fast_csum(iph, iph->ihl) == 0 makes in
// ip_rcv_core() (net/ipv4/ip_input.c).
func (h IPv4) ChecksumValid() bool {
	return onesSum(h[:h.HeaderLen()], 0) == 0xffff
}

// SetChecksum recomputes the header checksum in place.
func (h IPv4) SetChecksum() {
	h[10], h[11] = 0, 0
	putBE16(h[10:], ^onesSum(h[:h.HeaderLen()], 0))
}

// onesSum adds b as big-endian 16-bit words in one's complement arithmetic
// (RFC 1071), starting from initial, and returns the folded sum. An odd
// trailing byte is padded with zero.
//
// It adds 32-bit words into a 64-bit sum and folds at the end, as the
// kernel's csum_partial does: one's complement addition with end-around
// carry gives the same 16-bit sum whatever the word size (RFC 1071 2(B)),
// and an IPv4 header is then five loads instead of ten.
func onesSum(b []byte, initial uint32) uint16 {
	s := uint64(initial)
	for len(b) >= 8 {
		s += uint64(binary.BigEndian.Uint32(b)) + uint64(binary.BigEndian.Uint32(b[4:]))
		b = b[8:]
	}
	if len(b) >= 4 {
		s += uint64(binary.BigEndian.Uint32(b))
		b = b[4:]
	}
	if len(b) >= 2 {
		s += uint64(b[0])<<8 | uint64(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint64(b[0]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}
