package packet

// TCP is a view of a TCP header (RFC 9293, section 3.1).
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|          Source Port          |       Destination Port        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                        Sequence Number                        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Acknowledgment Number                      |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Data |       |C|E|U|A|P|R|S|F|                               |
//	| Offset| Rsrvd |W|C|R|C|S|S|Y|I|            Window             |
//	|       |       |R|E|G|K|H|T|N|N|                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|           Checksum            |         Urgent Pointer        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Options and padding ...                    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// TCPMinSize is what xt_tcp reads (sizeof(struct tcphdr)); a shorter
// transport header makes the tcp match hotdrop.
type TCP []byte

// TCPMinSize is the fixed part of the TCP header.
const TCPMinSize = 20

// SrcPort returns the source port.
func (h TCP) SrcPort() uint16 { return be16(h[0:]) }

// DstPort returns the destination port.
func (h TCP) DstPort() uint16 { return be16(h[2:]) }

// Seq returns the sequence number.
func (h TCP) Seq() uint32 { return be32(h[4:]) }

// Ack returns the acknowledgment number.
func (h TCP) Ack() uint32 { return be32(h[8:]) }

// DataOff returns the header length in bytes (doff*4). It may be less than
// TCPMinSize in a hostile packet; xt_tcp hotdrops such a packet only when
// a rule asks for --tcp-option.
func (h TCP) DataOff() uint8 { return (h[12] >> 4) * 4 }

// Flags returns the eight flag bits (TCPFin ... TCPCwr).
func (h TCP) Flags() uint8 { return h[13] }

// Window returns the window field.
func (h TCP) Window() uint16 { return be16(h[14:]) }

// Checksum returns the checksum field.
func (h TCP) Checksum() uint16 { return be16(h[16:]) }
