// Command examplegen writes sluice's built-in example data: the ipset file
// (with a 100k-prefix threat-feed blocklist) and the example capture, an
// attack mix plus legitimate traffic, both from a fixed seed so the files
// are reproducible:
//
//	go run ./internal/examplegen -out examples
//
// The rules file examples/antiddos.rules is written by hand; this program
// makes traffic that exercises every one of its rules.
package main

import (
	"compress/gzip"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/sluice-project/sluice/packet"
	"github.com/sluice-project/sluice/pcapio"
)

func main() {
	out := flag.String("out", "examples", "directory to write antiddos.ipset and capture.pcap.gz into")
	big := flag.String("big", "", "instead, write the capture repeated (shifted in time) to this uncompressed pcap, for throughput runs")
	repeat := flag.Int("repeat", 40, "with -big: how many copies (40 copies make about 1M frames)")
	flag.Parse()
	g := newGen(1)
	if *big != "" {
		g.sets() // draws the same random numbers as a normal run
		if err := g.writeBig(*big, *repeat); err != nil {
			log.Fatal(err)
		}
		return
	}
	if err := os.WriteFile(filepath.Join(*out, "antiddos.ipset"), []byte(g.sets()), 0o644); err != nil {
		log.Fatal(err)
	}
	if err := g.writeCapture(filepath.Join(*out, "capture.pcap.gz")); err != nil {
		log.Fatal(err)
	}
}

type frame struct {
	ts   int64
	data []byte
}

type gen struct {
	rng     *rand.Rand
	legit   []netip.Addr // legitimate clients
	botnets []netip.Prefix
	// named attackers: sources the rate rules must catch, kept off the
	// blocklist so that the rate rules see them.
	sshBrute, dnsFlooder, pinger netip.Addr
	blocked                      []netip.Prefix
	frames                       []frame
	server                       netip.Addr
	start                        int64
}

var (
	serverMAC = [6]byte{0x02, 0x00, 0x5e, 0x00, 0x53, 0x01}
	routerMAC = [6]byte{0x02, 0x00, 0x5e, 0x00, 0x53, 0xfe}
)

func newGen(seed uint64) *gen {
	g := &gen{rng: rand.New(rand.NewPCG(seed, seed^0x5eed)), server: netip.MustParseAddr("203.0.113.10"),
		start: 1767225600 * 1e9} // 2026-01-01T00:00:00Z
	for i := 0; i < 300; i++ {
		g.legit = append(g.legit, g.publicAddr())
	}
	for i := 0; i < 3; i++ {
		g.botnets = append(g.botnets, netip.PrefixFrom(g.publicAddr(), 24).Masked())
	}
	g.sshBrute, g.dnsFlooder, g.pinger = g.publicAddr(), g.publicAddr(), g.publicAddr()
	return g
}

// publicAddr returns an address outside the bogon and example ranges.
func (g *gen) publicAddr() netip.Addr {
	for {
		a := netip.AddrFrom4([4]byte{byte(1 + g.rng.IntN(222)), byte(g.rng.IntN(256)), byte(g.rng.IntN(256)), byte(1 + g.rng.IntN(254))})
		b := a.As4()
		switch {
		case b[0] == 10, b[0] == 127, b[0] == 100 && b[1]&0xC0 == 64, b[0] == 169 && b[1] == 254,
			b[0] == 172 && b[1]&0xF0 == 16, b[0] == 192 && b[1] == 168, b[0] == 198 && b[1]&0xFE == 18,
			b[0] == 192 && b[1] == 0, b[0] == 203 && b[1] == 0 && b[2] == 113, b[0] == 198 && b[1] == 51:
			continue
		}
		return a
	}
}

func (g *gen) sets() string {
	var b strings.Builder
	b.WriteString("create allowlist hash:net family inet hashsize 1024 maxelem 65536\n")
	b.WriteString("add allowlist 192.0.2.128/28\n")
	b.WriteString("create blocklist hash:net family inet hashsize 65536 maxelem 262144\n")
	// A threat feed: 120k prefixes, /16 to /24, none covering a legitimate
	// client or a botnet (botnets are caught by rate, not by list).
	seen := map[netip.Prefix]bool{}
	for len(g.blocked) < 120000 {
		p := netip.PrefixFrom(g.publicAddr(), 16+g.rng.IntN(9)).Masked()
		if seen[p] || g.coversKnown(p) {
			continue
		}
		seen[p] = true
		g.blocked = append(g.blocked, p)
	}
	sort.Slice(g.blocked, func(i, j int) bool { return g.blocked[i].Addr().Less(g.blocked[j].Addr()) })
	for _, p := range g.blocked {
		fmt.Fprintf(&b, "add blocklist %s\n", p)
	}
	// An exception inside a listed prefix: a customer's range.
	b.WriteString("add blocklist 45.76.0.0/16\nadd blocklist 45.76.12.0/24 nomatch\n")
	b.WriteString("create bogons hash:net family inet hashsize 1024 maxelem 65536\n")
	for _, p := range []string{"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "169.254.0.0/16", "172.16.0.0/12",
		"192.0.0.0/24", "192.168.0.0/16", "224.0.0.0/3"} {
		fmt.Fprintf(&b, "add bogons %s\n", p)
	}
	b.WriteString("create services bitmap:port range 0-65535\nadd services 22\nadd services 80\nadd services 443\n")
	return b.String()
}

func (g *gen) coversKnown(p netip.Prefix) bool {
	for _, a := range g.legit {
		if p.Contains(a) {
			return true
		}
	}
	for _, n := range g.botnets {
		if p.Overlaps(n) {
			return true
		}
	}
	for _, a := range []netip.Addr{g.sshBrute, g.dnsFlooder, g.pinger} {
		if p.Contains(a) {
			return true
		}
	}
	return p.Overlaps(netip.MustParsePrefix("45.76.0.0/16"))
}

// at returns a timestamp spread over the two-second capture.
func (g *gen) at() int64 { return g.start + g.rng.Int64N(2e9) }

func (g *gen) add(ts int64, f []byte) { g.frames = append(g.frames, frame{ts, f}) }

func (g *gen) v4(src netip.Addr, proto uint8, l4 []byte, opts ...packet.BuildOpt) []byte {
	opts = append([]packet.BuildOpt{packet.WithSrcMAC(routerMAC), packet.WithDstMAC(serverMAC)}, opts...)
	return packet.BuildIPv4(src, g.server, proto, l4, opts...)
}

func (g *gen) port() uint16 { return uint16(1024 + g.rng.IntN(64000)) }

func dnsQuery(id uint16, name string, qtype uint16) []byte {
	q := []byte{byte(id >> 8), byte(id), 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0}
	for _, l := range strings.Split(name, ".") {
		q = append(q, byte(len(l)))
		q = append(q, l...)
	}
	return append(q, 0, byte(qtype>>8), byte(qtype), 0, 1)
}

func (g *gen) writeCapture(path string) error {
	syn, ack := uint8(packet.TCPSyn), uint8(packet.TCPAck)
	// Legitimate web clients: handshake, request, close.
	for _, c := range g.legit[:200] {
		ts, sp, dp := g.at(), g.port(), []uint16{80, 443}[g.rng.IntN(2)]
		g.add(ts, g.v4(c, packet.ProtoTCP, packet.BuildTCP(sp, dp, syn, nil)))
		g.add(ts+2e6, g.v4(c, packet.ProtoTCP, packet.BuildTCP(sp, dp, ack, nil)))
		g.add(ts+3e6, g.v4(c, packet.ProtoTCP, packet.BuildTCP(sp, dp, ack|packet.TCPPsh, []byte("GET / HTTP/1.1\r\nHost: example.net\r\n\r\n"))))
		g.add(ts+9e6, g.v4(c, packet.ProtoTCP, packet.BuildTCP(sp, dp, ack|packet.TCPFin, nil)))
	}
	// Legitimate resolvers asking for A records.
	for _, c := range g.legit[200:] {
		for k := 0; k < 1+g.rng.IntN(4); k++ {
			g.add(g.at(), g.v4(c, packet.ProtoUDP, packet.BuildUDP(g.port(), 53, dnsQuery(uint16(g.rng.Uint32()), "www.example.net", 1))))
		}
	}
	// Replies to the server's own outgoing connections and lookups.
	for i := 0; i < 200; i++ {
		c := g.legit[g.rng.IntN(len(g.legit))]
		g.add(g.at(), g.v4(c, packet.ProtoTCP, packet.BuildTCP(443, g.port(), ack|packet.TCPSyn, nil)))
		g.add(g.at(), g.v4(c, packet.ProtoUDP, packet.BuildUDP(53, g.port(), make([]byte, 120))))
	}
	// SSH brute force from one address: 12 SYNs in a second.
	bad := g.sshBrute
	for k := 0; k < 12; k++ {
		g.add(g.start+int64(k)*80e6, g.v4(bad, packet.ProtoTCP, packet.BuildTCP(g.port(), 22, syn, nil)))
	}
	// SYN flood from three botnet /24s, and from random spoofed sources.
	for i := 0; i < 6000; i++ {
		n := g.botnets[i%3].Addr().As4()
		n[3] = byte(1 + g.rng.IntN(254))
		g.add(g.at(), g.v4(netip.AddrFrom4(n), packet.ProtoTCP, packet.BuildTCP(g.port(), 80, syn, nil)))
	}
	for i := 0; i < 2000; i++ {
		g.add(g.at(), g.v4(g.publicAddr(), packet.ProtoTCP, packet.BuildTCP(g.port(), []uint16{80, 443, 8080, 3389}[i%4], syn, nil)))
	}
	// DNS amplification: large answers from open resolvers.
	for i := 0; i < 3000; i++ {
		g.add(g.at(), g.v4(g.publicAddr(), packet.ProtoUDP, packet.BuildUDP(53, g.port(), make([]byte, 1200+g.rng.IntN(200)))))
	}
	// NTP monlist answers (mode 7) and memcached / SSDP / CLDAP reflection.
	for i := 0; i < 1000; i++ {
		p := make([]byte, 440)
		p[0] = 0x17
		g.add(g.at(), g.v4(g.publicAddr(), packet.ProtoUDP, packet.BuildUDP(123, g.port(), p)))
	}
	for i := 0; i < 1500; i++ {
		g.add(g.at(), g.v4(g.publicAddr(), packet.ProtoUDP, packet.BuildUDP([]uint16{11211, 1900, 389, 19}[i%4], g.port(), make([]byte, 900))))
	}
	// Random-port UDP flood.
	for i := 0; i < 3000; i++ {
		g.add(g.at(), g.v4(g.publicAddr(), packet.ProtoUDP, packet.BuildUDP(g.port(), g.port(), make([]byte, 64))))
	}
	// DNS ANY queries, answers sent to port 53, and one source flooding queries.
	for i := 0; i < 500; i++ {
		g.add(g.at(), g.v4(g.publicAddr(), packet.ProtoUDP, packet.BuildUDP(g.port(), 53, dnsQuery(uint16(i), "isc.org", 255))))
	}
	for i := 0; i < 300; i++ {
		ans := dnsQuery(uint16(i), "example.com", 1)
		ans[2] |= 0x80
		g.add(g.at(), g.v4(g.publicAddr(), packet.ProtoUDP, packet.BuildUDP(g.port(), 53, ans)))
	}
	flooder := g.dnsFlooder
	for i := 0; i < 1000; i++ {
		g.add(g.start+int64(i)*1e6, g.v4(flooder, packet.ProtoUDP, packet.BuildUDP(g.port(), 53, dnsQuery(uint16(i), "example.net", 1))))
	}
	// Ping flood, oversized ICMP, and useful ICMP.
	pinger := g.pinger
	for i := 0; i < 2000; i++ {
		g.add(g.at(), g.v4(pinger, packet.ProtoICMP, packet.BuildICMP(8, 0, uint32(i), make([]byte, 56))))
	}
	for i := 0; i < 100; i++ {
		g.add(g.at(), g.v4(g.publicAddr(), packet.ProtoICMP, packet.BuildICMP(8, 0, uint32(i), make([]byte, 1400))))
		g.add(g.at(), g.v4(g.publicAddr(), packet.ProtoICMP, packet.BuildICMP(3, 4, 1400, make([]byte, 28))))
	}
	// Scans with impossible flags.
	for i := 0; i < 300; i++ {
		flags := []uint8{0, 0x3F, packet.TCPSyn | packet.TCPFin, packet.TCPSyn | packet.TCPRst, packet.TCPFin}[i%5]
		g.add(g.at(), g.v4(g.publicAddr(), packet.ProtoTCP, packet.BuildTCP(g.port(), g.port(), flags, nil)))
	}
	// Fragments: a first fragment and a non-first one per datagram.
	for i := 0; i < 200; i++ {
		src := g.publicAddr()
		payload := make([]byte, 1480)
		g.add(g.at(), g.v4(src, packet.ProtoUDP, append(packet.BuildUDP(g.port(), 53, nil), payload[:1472]...), packet.WithFragment(0, true), packet.WithID(uint32(i))))
		g.add(g.at(), g.v4(src, packet.ProtoUDP, payload[:600], packet.WithFragment(1480, false), packet.WithID(uint32(i))))
	}
	// Threat-feed, bogon, TTL-1, benchmarking-range and GRE sources.
	for i := 0; i < 1500; i++ {
		p := g.blocked[g.rng.IntN(len(g.blocked))]
		a := p.Addr().As4()
		a[3] = byte(1 + g.rng.IntN(254))
		g.add(g.at(), g.v4(netip.AddrFrom4(a), packet.ProtoTCP, packet.BuildTCP(g.port(), 443, syn, nil)))
	}
	for i := 0; i < 100; i++ {
		g.add(g.at(), g.v4(netip.AddrFrom4([4]byte{45, 76, 12, byte(i + 1)}), packet.ProtoTCP, packet.BuildTCP(g.port(), 443, syn, nil)))
		g.add(g.at(), g.v4(netip.AddrFrom4([4]byte{45, 76, 13, byte(i + 1)}), packet.ProtoTCP, packet.BuildTCP(g.port(), 443, syn, nil)))
		g.add(g.at(), g.v4(netip.AddrFrom4([4]byte{192, 168, 1, byte(i + 1)}), packet.ProtoUDP, packet.BuildUDP(g.port(), 53, nil)))
		g.add(g.at(), g.v4(g.publicAddr(), packet.ProtoUDP, packet.BuildUDP(g.port(), 33434, nil), packet.WithTTL(1)))
		g.add(g.at(), g.v4(netip.AddrFrom4([4]byte{198, 18, byte(i), 7}), packet.ProtoTCP, packet.BuildTCP(g.port(), 80, syn, nil)))
		g.add(g.at(), g.v4(g.publicAddr(), 47, make([]byte, 40)))
	}
	// HTTP pingback flood and the allow-listed monitor.
	for i := 0; i < 200; i++ {
		c := g.legit[g.rng.IntN(200)]
		g.add(g.at(), g.v4(c, packet.ProtoTCP, packet.BuildTCP(g.port(), 80, ack|packet.TCPPsh, []byte("GET /xmlrpc.php HTTP/1.1\r\nHost: example.net\r\n\r\n"))))
		g.add(g.at(), g.v4(netip.AddrFrom4([4]byte{192, 0, 2, byte(129 + i%14)}), packet.ProtoUDP, packet.BuildUDP(g.port(), 161, nil)))
	}
	// Damaged frames the kernel discards before netfilter, truncated TCP
	// headers that hotdrop, broadcasts, and ARP that sluice leaves alone.
	for i := 0; i < 50; i++ {
		g.add(g.at(), g.v4(g.publicAddr(), packet.ProtoTCP, packet.BuildTCP(g.port(), 80, syn, nil), packet.WithBadChecksum()))
		g.add(g.at(), g.v4(g.publicAddr(), packet.ProtoTCP, packet.BuildTCP(g.port(), 80, syn, nil)[:12], packet.WithoutL4Checksum()))
		g.add(g.at(), packet.BuildIPv4(g.legit[i], netip.MustParseAddr("255.255.255.255"), packet.ProtoUDP, packet.BuildUDP(68, 67, make([]byte, 300)),
			packet.WithSrcMAC(routerMAC), packet.WithDstMAC([6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})))
		g.add(g.at(), arp(g.legit[i]))
	}
	sort.SliceStable(g.frames, func(i, j int) bool { return g.frames[i].ts < g.frames[j].ts })
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	zw, _ := gzip.NewWriterLevel(f, gzip.BestCompression)
	zw.ModTime = timeZero
	w, err := pcapio.NewWriter(zw, packet.LinkEthernet, 65535)
	if err != nil {
		return err
	}
	for _, fr := range g.frames {
		if err := w.Write(fr.data, fr.ts, len(fr.data)); err != nil {
			return err
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "examplegen: %d frames, %d blocklist prefixes\n", len(g.frames), len(g.blocked))
	return f.Close()
}

// writeBig writes the example capture repeat times, each copy two seconds
// after the previous one.
func (g *gen) writeBig(path string, repeat int) error {
	tmp := path + ".gz.tmp"
	if err := g.writeCapture(tmp); err != nil {
		return err
	}
	os.Remove(tmp)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w, err := pcapio.NewWriter(f, packet.LinkEthernet, 65535)
	if err != nil {
		return err
	}
	for r := 0; r < repeat; r++ {
		for _, fr := range g.frames {
			if err := w.Write(fr.data, fr.ts+int64(r)*2e9, len(fr.data)); err != nil {
				return err
			}
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "examplegen: %d frames in %s\n", repeat*len(g.frames), path)
	return f.Close()
}

func arp(sender netip.Addr) []byte {
	b := make([]byte, 42)
	copy(b, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(b[6:], routerMAC[:])
	b[12], b[13] = 0x08, 0x06
	copy(b[14:], []byte{0, 1, 8, 0, 6, 4, 0, 1})
	copy(b[22:], routerMAC[:])
	s := sender.As4()
	copy(b[28:], s[:])
	copy(b[38:], []byte{203, 0, 113, 10})
	return b
}
