package packet

// Ethernet is a view of an Ethernet II header and what follows it. Like
// the other header views in this package it is a plain byte slice: the
// accessors read fixed offsets and never allocate, so the decoder can use
// them on every packet. Callers check the length (EthernetMinSize) first;
// the accessors do not.
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                  Destination MAC (6 octets)                   |
//	+                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                               |                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
//	|                    Source MAC (6 octets)                      |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|           EtherType           |  payload ...
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// An IEEE 802.1Q / 802.1ad tag sits where the EtherType was and pushes the
// real EtherType four octets further:
//
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|   TPID (0x8100 or 0x88a8)     | PCP |D|        VLAN id        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|     EtherType (or next TPID)  |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
type Ethernet []byte

// Sizes and EtherTypes the decoder uses.
const (
	EthernetMinSize = 14 // destination, source, EtherType
	VLANTagSize     = 4  // TCI and the following EtherType

	EtherTypeIPv4   = 0x0800
	EtherTypeARP    = 0x0806
	EtherTypeVLAN   = 0x8100 // IEEE 802.1Q customer tag
	EtherTypeQinQ   = 0x88a8 // IEEE 802.1ad service tag
	EtherTypeIPv6   = 0x86dd
	EtherTypeLLDP   = 0x88cc
	vlanIDMask      = 0x0fff
	etherTypeMin    = 0x0600 // below this the field is an 802.3 length
	macMulticastBit = 0x01
)

// Dst returns the destination MAC address.
func (e Ethernet) Dst() (m [6]byte) { copy(m[:], e[0:6]); return m }

// Src returns the source MAC address.
func (e Ethernet) Src() (m [6]byte) { copy(m[:], e[6:12]); return m }

// Type returns the EtherType (or the first VLAN TPID).
func (e Ethernet) Type() uint16 { return be16(e[12:]) }

// isVLANTPID reports whether an EtherType introduces a VLAN tag that the
// kernel strips before the network layer (eth_type_vlan() in
// include/linux/if_vlan.h: 802.1Q and 802.1ad only).
func isVLANTPID(t uint16) bool { return t == EtherTypeVLAN || t == EtherTypeQinQ }

func be16(b []byte) uint16 { return uint16(b[0])<<8 | uint16(b[1]) }

func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func putBE16(b []byte, v uint16) { b[0], b[1] = byte(v>>8), byte(v) }

func putBE32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
}
