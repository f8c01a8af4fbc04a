package packet

// UDP is a view of a UDP header (RFC 768).
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|          Source Port          |       Destination Port        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|            Length             |           Checksum            |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// xt_udp reads all eight bytes (sizeof(struct udphdr)) even though it
// needs only the ports, so a 4..7-byte UDP header still hotdrops.
type UDP []byte

// UDPSize is the UDP header length.
const UDPSize = 8

// SrcPort returns the source port.
func (h UDP) SrcPort() uint16 { return be16(h[0:]) }

// DstPort returns the destination port.
func (h UDP) DstPort() uint16 { return be16(h[2:]) }

// Length returns the length field (header plus data).
func (h UDP) Length() uint16 { return be16(h[4:]) }

// Checksum returns the checksum field.
func (h UDP) Checksum() uint16 { return be16(h[6:]) }
