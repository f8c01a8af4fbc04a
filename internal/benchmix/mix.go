// Package benchmix holds the traffic the engine's benchmarks run and the
// paired runner that compares two ways of judging it: the reference mix,
// the example capture's frames with a million distinct sources, and
// Paired, which alternates two judges on the same slices of traffic so the
// drift of a shared machine affects both alike.
package benchmix

import (
	"encoding/binary"
	"net/netip"

	"github.com/sluice-project/sluice/packet"
)

// Reference is the reference benchmark's traffic: legitimate web,
// DNS, SSH and game traffic mixed with SYN floods from one /24, a DNS
// query flood, DNS and NTP amplification, scans, ICMP floods, fragments,
// SSH brute force, HTTP attack strings and blocklisted sources; 8000
// frames, most from distinct sources.
func Reference() [][]byte {
	var frames [][]byte
	a4 := func(x uint32) netip.Addr {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], x)
		return netip.AddrFrom4(b)
	}
	dst := netip.MustParseAddr("198.51.100.10")
	mss := []byte{2, 4, 5, 0xb4}
	dnsQuery := func(qtype byte, qr bool) []byte {
		q := append(make([]byte, 12), []byte("\x07example\x03org\x00\x00\x01\x00\x01")...)
		q[len(q)-3] = qtype
		if qr {
			q[2] = 0x80
		}
		return q
	}
	for i := 0; i < 8000; i++ {
		k, g := i%20, i/20
		src := a4(uint32(i)*2654435761 + 0x01000000)
		sport := uint16(1024 + i%60000)
		var l4 []byte
		proto := uint8(packet.ProtoTCP)
		opts := []packet.BuildOpt{packet.WithTTL(uint8(40 + i%80))}
		switch k {
		case 0, 1, 2: // SYN to the web ports
			l4 = packet.BuildTCPWithOptions(sport, []uint16{80, 443}[g%2], packet.TCPSyn, mss, nil)
		case 3: // established web traffic; some with TTL 1
			l4 = packet.BuildTCP(sport, 443, packet.TCPAck|packet.TCPPsh, make([]byte, 200))
			if g%10 == 0 {
				opts = append(opts, packet.WithTTL(1))
			}
		case 4: // large broadcast frames, or established traffic
			l4 = packet.BuildTCP(sport, 443, packet.TCPAck, make([]byte, 600))
			if g%10 == 0 {
				opts = append(opts, packet.WithDstMAC([6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}))
			}
		case 5: // HTTP requests, some of them attacks
			req := "GET /index.html HTTP/1.1\r\nHost: example.org\r\nUser-Agent: curl\r\n\r\n"
			switch g % 4 {
			case 0:
				req = "GET /xmlrpc.php HTTP/1.1\r\nHost: example.org\r\n\r\n"
			case 1:
				req = "GET / HTTP/1.1\r\nHost: example.org\r\nUser-Agent: masscan/1.3\r\n\r\n"
			}
			l4 = packet.BuildTCP(sport, 80, packet.TCPAck|packet.TCPPsh, []byte(req))
		case 6: // SYN to a closed port
			l4 = packet.BuildTCPWithOptions(sport, 3389, packet.TCPSyn, mss, nil)
		case 7: // scans
			l4 = packet.BuildTCP(sport, 22, []uint8{0, 0xff, packet.TCPFin | packet.TCPSyn, packet.TCPSyn | packet.TCPRst, packet.TCPUrg}[g%5], nil)
		case 8: // DNS queries from many sources: some ANY, some answers
			proto = packet.ProtoUDP
			l4 = packet.BuildUDP(sport, 53, dnsQuery([]byte{1, 1, 1, 0xff, 1, 28, 1}[g%7], g%7 == 6))
		case 9: // a DNS query flood from one source
			proto = packet.ProtoUDP
			src = netip.MustParseAddr("203.0.113.50")
			if g%10 == 0 {
				src = netip.MustParseAddr("203.0.113.66") // in the attackers set
			}
			l4 = packet.BuildUDP(sport, 53, dnsQuery(1, false))
		case 10: // DNS amplification
			proto = packet.ProtoUDP
			l4 = packet.BuildUDP(53, sport, make([]byte, 1400))
		case 11: // NTP monlist answers and memcached or SSDP reflection
			proto = packet.ProtoUDP
			switch g % 3 {
			case 0:
				l4 = packet.BuildUDP(123, sport, append([]byte{0x17}, make([]byte, 439)...))
			case 1:
				l4 = packet.BuildUDP(11211, sport, make([]byte, 1000))
			default:
				l4 = packet.BuildUDP(1900, sport, make([]byte, 300))
			}
		case 12: // game traffic: a flood from one source, tiny probes
			proto = packet.ProtoUDP
			n := 60
			if g%5 == 0 {
				n = 0
			}
			if g%2 == 0 {
				src = netip.MustParseAddr("203.0.113.60")
			}
			l4 = packet.BuildUDP(sport, 27015, make([]byte, n))
		case 13: // ping, a ping flood and big ICMP
			proto = packet.ProtoICMP
			switch g % 4 {
			case 0:
				l4 = packet.BuildICMP(0, 0, uint32(i), make([]byte, 56))
			case 1:
				l4 = packet.BuildICMP(8, 0, uint32(i), make([]byte, 1200))
			default:
				l4 = packet.BuildICMP(8, 0, uint32(i), make([]byte, 56))
			}
		case 14: // fragments, first and not
			proto = packet.ProtoUDP
			l4 = make([]byte, 512)
			opts = append(opts, packet.WithID(uint32(i)), packet.WithFragment(uint16(1480*(g%3)), g%2 == 0))
		case 15: // blocklisted and bogon sources
			src = a4([]uint32{0x01012a2a, 0x0a000001, 0x2d4c0101, 0xc0a80101, 0xc6120001}[g%5])
			l4 = packet.BuildTCPWithOptions(sport, 443, packet.TCPSyn, mss, nil)
		case 16: // SSH brute force from one source
			src = netip.MustParseAddr("203.0.113.70")
			l4 = packet.BuildTCPWithOptions(sport, 22, packet.TCPSyn, mss, nil)
		case 17: // a SYN flood from one /24
			src = a4(0xcb007100 | uint32(g%256)) // 203.0.113.x
			l4 = packet.BuildTCPWithOptions(sport, 443, packet.TCPSyn, mss, nil)
		case 18: // GRE from the tunnel peer and from others
			proto = 47
			l4 = make([]byte, 100)
			if g%2 == 0 {
				src = netip.MustParseAddr("198.51.100.77")
			}
		case 19: // SYN without MSS, replies to our connections, peers
			switch g % 3 {
			case 0:
				l4 = packet.BuildTCP(sport, 443, packet.TCPSyn, nil)
			case 1:
				l4 = packet.BuildTCP(443, 40000, packet.TCPAck, make([]byte, 100))
			default:
				src = netip.MustParseAddr("192.0.2.130")
				l4 = packet.BuildTCP(sport, 8080, packet.TCPAck, nil)
			}
		}
		frames = append(frames, packet.BuildIPv4(src, dst, proto, l4, opts...))
	}
	return frames
}

// RandomSources returns n frames made from base, each well-formed IPv4
// frame with its source rewritten to a distinct pseudo-random address
// (i times an odd constant is a bijection mod 2^32) and its header
// checksum fixed. Other frames are kept as they are.
func RandomSources(link packet.LinkType, base [][]byte, n int) [][]byte {
	size := 0
	for _, f := range base {
		size += len(f)
	}
	arena := make([]byte, 0, size*(n/len(base)+1))
	out := make([][]byte, n)
	var d packet.Decoder
	d.Link = link
	var p packet.Packet
	for i := range out {
		f := base[i%len(base)]
		start := len(arena)
		arena = append(arena, f...)
		nf := arena[start:len(arena):len(arena)]
		d.Decode(nf, &p)
		if p.Malformed == packet.MalformedNone && p.Family == packet.FamilyIPv4 {
			binary.BigEndian.PutUint32(p.L3[12:], uint32(i)*2654435761+0x5bd1e995)
			packet.IPv4(p.L3).SetChecksum()
		}
		out[i] = nf
	}
	return out
}

// Decode decodes every frame into its own Packet, as a benchmark that
// measures the engine alone wants them: decoded up front.
func Decode(link packet.LinkType, frames [][]byte) []packet.Packet {
	d := packet.Decoder{Link: link}
	pkts := make([]packet.Packet, len(frames))
	for i, f := range frames {
		d.Decode(f, &pkts[i])
	}
	return pkts
}
