package testnet

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"

	"github.com/sluice-project/sluice/packet"
)

// FloodKind names a family of attack frames that FloodFrames builds.
type FloodKind string

// The flood templates. Every one is IPv4 with a 20-byte header, sent to
// the topology's server address and MAC; sources are rewritten per packet
// by the generator when the Flood asks for random sources.
const (
	// FloodUDP53 is spoofed UDP queries to port 53 (an A query).
	FloodUDP53 FloodKind = "udp53"
	// FloodUDP123 is spoofed small UDP datagrams to port 123.
	FloodUDP123 FloodKind = "udp123"
	// FloodSYN is a SYN flood to the HTTP port (which is open).
	FloodSYN FloodKind = "syn"
	// FloodSYNClosed is a SYN flood to closed ports.
	FloodSYNClosed FloodKind = "syn-closed"
	// FloodDNSAmp is large DNS answers (source port 53), as an
	// amplification attack reflects them.
	FloodDNSAmp FloodKind = "dns-amp"
	// FloodNTPAmp is NTP mode 7 (monlist) answers from source port 123.
	FloodNTPAmp FloodKind = "ntp-amp"
	// FloodMix is the attack mix the benchmark and the demo use: SYNs to
	// closed ports, UDP to port 123, NTP monlist and DNS amplification
	// answers, mostly small frames. Every frame of the mix is dropped by
	// the built-in example ruleset in raw PREROUTING, whatever its source.
	FloodMix FloodKind = "mix"
)

// FloodKinds lists the kinds FloodFrames knows.
var FloodKinds = []FloodKind{FloodUDP53, FloodUDP123, FloodSYN, FloodSYNClosed, FloodDNSAmp, FloodNTPAmp, FloodMix}

// FloodFrames builds n template frames of the given kind from srcMAC to
// dstMAC and dst, with sources drawn from a generator seeded with seed.
// UDP frames carry no UDP checksum (zero is valid for IPv4), so the
// generator can rewrite their source without touching the transport
// header; TCP checksums are kept valid by the generator.
func FloodFrames(kind FloodKind, srcMAC, dstMAC net.HardwareAddr, dst netip.Addr, n int, seed uint64) ([][]byte, error) {
	if !dst.Is4() {
		return nil, fmt.Errorf("testnet: flood destination %v is not IPv4", dst)
	}
	if len(srcMAC) != 6 || len(dstMAC) != 6 {
		return nil, fmt.Errorf("testnet: flood MACs must be 6 bytes")
	}
	if n <= 0 {
		n = 1
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var sm, dm [6]byte
	copy(sm[:], srcMAC)
	copy(dm[:], dstMAC)
	opts := []packet.BuildOpt{packet.WithSrcMAC(sm), packet.WithDstMAC(dm)}
	src := func() netip.Addr {
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], rng.Uint32())
		a[0] = 1 + byte(rng.IntN(222)) // unicast, not 0/8 nor 224/3
		return netip.AddrFrom4(a)
	}
	port := func() uint16 { return uint16(1024 + rng.IntN(64000)) }
	udp := func(sport, dport uint16, payload []byte) []byte {
		l4 := packet.BuildUDP(sport, dport, payload)
		l4[6], l4[7] = 0, 0
		return packet.BuildIPv4(src(), dst, packet.ProtoUDP, l4, append(opts, packet.WithoutL4Checksum(), packet.WithID(uint32(rng.Uint32())))...)
	}
	tcp := func(dport uint16, flags uint8) []byte {
		return packet.BuildIPv4(src(), dst, packet.ProtoTCP, packet.BuildTCP(port(), dport, flags, nil), append(opts, packet.WithID(uint32(rng.Uint32())))...)
	}
	one := func(k FloodKind, i int) []byte {
		switch k {
		case FloodUDP53:
			return udp(port(), 53, dnsQuery(uint16(rng.Uint32()), "www.example.net", 1))
		case FloodUDP123:
			return udp(port(), 123, make([]byte, 18))
		case FloodSYN:
			return tcp(80, packet.TCPSyn)
		case FloodSYNClosed:
			return tcp([]uint16{8080, 3389, 25, 5060}[i%4], packet.TCPSyn)
		case FloodDNSAmp:
			ans := dnsQuery(uint16(rng.Uint32()), "isc.org", 255)
			ans[2] |= 0x80
			return udp(53, port(), append(ans, make([]byte, 1200)...))
		case FloodNTPAmp:
			p := make([]byte, 440)
			p[0] = 0x17 // version 2, mode 7
			p[3] = 42   // MON_GETLIST_1
			return udp(123, port(), p)
		}
		return nil
	}
	// The mix, by frame count: 4 SYNs to closed ports, 2 UDP to 123, one
	// NTP and one DNS amplification answer in every 8.
	mix := []FloodKind{FloodSYNClosed, FloodUDP123, FloodSYNClosed, FloodNTPAmp, FloodSYNClosed, FloodUDP123, FloodSYNClosed, FloodDNSAmp}
	frames := make([][]byte, 0, n)
	for i := 0; i < n; i++ {
		k := kind
		if kind == FloodMix {
			k = mix[i%len(mix)]
		}
		f := one(k, i)
		if f == nil {
			return nil, fmt.Errorf("testnet: unknown flood kind %q", kind)
		}
		frames = append(frames, f)
	}
	return frames, nil
}

// dnsQuery is a DNS message with one question.
func dnsQuery(id uint16, name string, qtype uint16) []byte {
	b := make([]byte, 12, 64)
	binary.BigEndian.PutUint16(b[0:], id)
	b[2] = 0x01 // RD
	binary.BigEndian.PutUint16(b[4:], 1)
	start := 0
	for i := 0; i <= len(name); i++ {
		if i == len(name) || name[i] == '.' {
			b = append(b, byte(i-start))
			b = append(b, name[start:i]...)
			start = i + 1
		}
	}
	b = append(b, 0)
	b = binary.BigEndian.AppendUint16(b, qtype)
	b = binary.BigEndian.AppendUint16(b, 1)
	return b
}
