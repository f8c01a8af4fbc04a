package oracle

import (
	"encoding/binary"
	"net"
	"net/netip"

	"github.com/sluice-project/sluice/internal/testnet"
)

// frameSpecForTest describes a hand-built test frame. Zero fields get
// sensible defaults: B's MAC, UDP, TTL 64.
type frameSpecForTest struct {
	dstMAC       net.HardwareAddr
	vlans        []uint16 // 802.1Q TCIs, outermost first
	src, dst     netip.Addr
	proto        uint8 // 6 TCP, 17 UDP (default), 58 ICMPv6, 1 ICMP
	sport, dport uint16
	payload      int // payload bytes after the transport header
}

const (
	protoTCP = 6
	protoUDP = 17
)

// segmentForTest builds the transport segment with a correct checksum.
func segmentForTest(s frameSpecForTest) []byte {
	var seg []byte
	switch s.proto {
	case protoTCP:
		seg = make([]byte, 20+s.payload)
		binary.BigEndian.PutUint16(seg[0:], s.sport)
		binary.BigEndian.PutUint16(seg[2:], s.dport)
		binary.BigEndian.PutUint32(seg[4:], 1000)
		seg[12] = 5 << 4
		seg[13] = 0x02 // SYN
		binary.BigEndian.PutUint16(seg[14:], 65535)
	default:
		seg = make([]byte, 8+s.payload)
		binary.BigEndian.PutUint16(seg[0:], s.sport)
		binary.BigEndian.PutUint16(seg[2:], s.dport)
		binary.BigEndian.PutUint16(seg[4:], uint16(len(seg)))
	}
	for i := len(seg) - s.payload; i < len(seg); i++ {
		seg[i] = byte(i)
	}
	// Pseudo-header checksum.
	var sum uint32
	src, dst := s.src.AsSlice(), s.dst.AsSlice()
	sum = csumAddForTest(sum, src)
	sum = csumAddForTest(sum, dst)
	sum += uint32(s.proto) + uint32(len(seg))
	sum = csumAddForTest(sum, seg)
	c := csumFoldForTest(sum)
	if s.proto == protoUDP && c == 0 {
		c = 0xffff
	}
	off := 6
	if s.proto == protoTCP {
		off = 16
	}
	binary.BigEndian.PutUint16(seg[off:], c)
	return seg
}

func csumAddForTest(sum uint32, b []byte) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	return sum
}

func csumFoldForTest(sum uint32) uint16 {
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// ethForTest prepends the Ethernet header (and VLAN tags).
func ethForTest(s frameSpecForTest, l3 []byte, v6 bool) []byte {
	dst := s.dstMAC
	if dst == nil {
		dst = testnet.BMAC
	}
	f := make([]byte, 0, 14+4*len(s.vlans)+len(l3))
	f = append(f, dst...)
	f = append(f, testnet.AMAC...)
	for _, tci := range s.vlans {
		f = binary.BigEndian.AppendUint16(f, 0x8100)
		f = binary.BigEndian.AppendUint16(f, tci)
	}
	et := uint16(0x0800)
	if v6 {
		et = 0x86DD
	}
	f = binary.BigEndian.AppendUint16(f, et)
	return append(f, l3...)
}

func ipv4HeaderForTest(s frameSpecForTest, payloadLen int, fragOff int, more bool) []byte {
	h := make([]byte, 20)
	h[0] = 0x45
	binary.BigEndian.PutUint16(h[2:], uint16(20+payloadLen))
	binary.BigEndian.PutUint16(h[4:], 0x1234)
	fo := uint16(fragOff / 8)
	if more {
		fo |= 0x2000
	}
	binary.BigEndian.PutUint16(h[6:], fo)
	h[8] = 64
	h[9] = s.proto
	copy(h[12:16], s.src.AsSlice())
	copy(h[16:20], s.dst.AsSlice())
	binary.BigEndian.PutUint16(h[10:], csumFoldForTest(csumAddForTest(0, h)))
	return h
}

func ipv6HeaderForTest(s frameSpecForTest, payloadLen int, next uint8) []byte {
	h := make([]byte, 40)
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(payloadLen))
	h[6] = next
	h[7] = 64
	copy(h[8:24], s.src.AsSlice())
	copy(h[24:40], s.dst.AsSlice())
	return h
}

func (s frameSpecForTest) withDefaults() frameSpecForTest {
	if s.proto == 0 {
		s.proto = protoUDP
	}
	return s
}

// frameForTest builds one unfragmented frame.
func frameForTest(s frameSpecForTest) []byte {
	s = s.withDefaults()
	seg := segmentForTest(s)
	if s.src.Is4() {
		return ethForTest(s, append(ipv4HeaderForTest(s, len(seg), 0, false), seg...), false)
	}
	return ethForTest(s, append(ipv6HeaderForTest(s, len(seg), s.proto), seg...), true)
}

// fragmentsForTest splits the datagram's transport segment into
// fragments carrying at most chunk bytes each (a multiple of 8).
func fragmentsForTest(s frameSpecForTest, chunk int) [][]byte {
	s = s.withDefaults()
	seg := segmentForTest(s)
	var out [][]byte
	for off := 0; off < len(seg); off += chunk {
		end := min(off+chunk, len(seg))
		more := end < len(seg)
		if s.src.Is4() {
			l3 := append(ipv4HeaderForTest(s, end-off, off, more), seg[off:end]...)
			out = append(out, ethForTest(s, l3, false))
			continue
		}
		fh := make([]byte, 8)
		fh[0] = s.proto
		fo := uint16(off)
		if more {
			fo |= 1
		}
		binary.BigEndian.PutUint16(fh[2:], fo)
		binary.BigEndian.PutUint32(fh[4:], 0xabcd)
		l3 := append(ipv6HeaderForTest(s, 8+end-off, 44), fh...)
		out = append(out, ethForTest(s, append(l3, seg[off:end]...), true))
	}
	return out
}
