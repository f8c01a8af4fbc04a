package hashlimit

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"

	"github.com/sluice-project/sluice/packet"
)

const hz = 250

// packetForTest builds a consistent packet: an IPv4 or IPv6 header, then
// l4 (transport bytes), with Len and L4Off as the decoder sets them.
func packetForTest(src, dst string, proto uint8, l4 []byte) *packet.Packet {
	s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
	p := &packet.Packet{Src: s, Dst: d, Proto: proto, ProtoFound: true, TTL: 64}
	if s.Is4() {
		h := make([]byte, 20, 20+len(l4))
		h[0] = 0x45
		h[9] = proto
		a, b := s.As4(), d.As4()
		copy(h[12:], a[:])
		copy(h[16:], b[:])
		p.Family = packet.FamilyIPv4
		p.L3 = append(h, l4...)
		p.L4Off = 20
	} else {
		h := make([]byte, 40, 40+len(l4))
		h[0] = 0x60
		h[6] = proto
		a, b := s.As16(), d.As16()
		copy(h[8:], a[:])
		copy(h[24:], b[:])
		p.Family = packet.FamilyIPv6
		p.L3 = append(h, l4...)
		p.L4Off = 40
	}
	binary.BigEndian.PutUint16(p.L3[2:], uint16(len(p.L3)))
	p.Len = len(p.L3)
	p.L4Len = len(l4)
	return p
}

func udpForTest(src, dst string, sport, dport uint16) *packet.Packet {
	l4 := make([]byte, 8)
	binary.BigEndian.PutUint16(l4[0:], sport)
	binary.BigEndian.PutUint16(l4[2:], dport)
	p := packetForTest(src, dst, packet.ProtoUDP, l4)
	p.SrcPort, p.DstPort = sport, dport
	return p
}

// configForTest is a Config as iptables-restore would hand it to us.
func configForTest(t testing.TB, name, rate string, burst uint32, mode uint8) Config {
	t.Helper()
	c := NewConfig(name, packet.FamilyIPv4)
	avg, bytes, err := ParseRate(rate)
	if err != nil {
		t.Fatal(err)
	}
	c.Avg, c.Bytes, c.Mode = avg, bytes, mode
	if bytes {
		c.Burst = 0
	}
	if burst != 0 {
		c.Burst = burst
	}
	c.Defaults(4 << 30)
	return c
}

func TestConsts(t *testing.T) {
	k := newConsts(250)
	if k.cpj != 1<<39 || k.cpjBytes != 1<<24 || k.capBytes != 4194304000 {
		t.Fatalf("consts = %+v", k)
	}
	if got := k.user2credits(100000); got != 100000*137438953 {
		t.Fatalf("user2credits = %d", got)
	}
	if got := k.user2creditsByte(66076419); got != 64527752 {
		t.Fatalf("user2credits_byte = %d", got)
	}
}

func TestParseRate(t *testing.T) {
	tests := []struct {
		in    string
		avg   uint64
		bytes bool
		mult  uint32
		err   bool
	}{
		{in: "10/sec", avg: 100000, mult: 1},
		{in: "10/s", avg: 100000, mult: 1},
		{in: "10", avg: 100000, mult: 1},
		{in: "3/MIN", avg: 20000000, mult: 60},
		{in: "1/d", avg: 86400000000, mult: 86400},
		{in: "1000000/s", avg: 1, mult: 1},
		{in: "1kb/s", avg: 66076419, bytes: true, mult: 15},
		{in: "10kb/s", avg: 0xFFFFFFFF / 641, bytes: true, mult: 15},
		{in: "1mb/s", avg: 0xFFFFFFFF / 65537, bytes: true, mult: 15},
		{in: "512b/s", avg: 0xFFFFFFFF / 33, bytes: true, mult: 15},
		{in: "1000001/s", err: true}, // Rate too fast
		{in: "10/secs", err: true},
		{in: "b/s", err: true}, // "b/s" at the start is not a byte rate; then bad unit
		{in: "0kb/s", err: true},
		{in: "10/", err: true},
		{in: "-1/s", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			avg, bytes, mult, err := ParseRateMult(tt.in)
			if tt.err {
				var re *RateError
				if !errors.As(err, &re) {
					t.Fatalf("got %d %v %v, want RateError", avg, bytes, err)
				}
				return
			}
			if err != nil || avg != tt.avg || bytes != tt.bytes || mult != tt.mult {
				t.Fatalf("got %d %v %d %v, want %d %v %d", avg, bytes, mult, err, tt.avg, tt.bytes, tt.mult)
			}
		})
	}
}

func TestFormatRate(t *testing.T) {
	tests := []struct {
		avg   uint64
		bytes bool
		want  string
	}{
		{100000, false, "10/sec"}, {20000000, false, "3/min"}, {86400000000, false, "1/day"},
		{66076419, true, "1kb/s"}, {0xFFFFFFFF / 641, true, "10kb/s"}, {0xFFFFFFFF / 65537, true, "1mb/s"},
		{0xFFFFFFFF / 33, true, "512b/s"},
	}
	for _, tt := range tests {
		if got := FormatRate(tt.avg, tt.bytes); got != tt.want {
			t.Errorf("FormatRate(%d, %v) = %q, want %q", tt.avg, tt.bytes, got, tt.want)
		}
	}
}

func TestParseBurst(t *testing.T) {
	tests := []struct {
		in    string
		avg   uint64
		bytes bool
		want  uint32
		err   bool
	}{
		{in: "5", want: 5},
		{in: "1000000", want: 1000000},
		{in: "1000001", err: true},
		{in: "0", err: true},
		{in: "0x10", want: 16},
		{in: "2k", want: 2048}, // suffix skips the range check, as in iptables
		{in: "2k", avg: 66076419, bytes: true, want: 2},
		{in: "1500", avg: 66076419, bytes: true, want: 2}, // ceil(1500/1024)
		{in: "1000", avg: 66076419, bytes: true, err: true},
		{in: "-1", err: true},
	}
	for _, tt := range tests {
		got, err := ParseBurst(tt.in, tt.avg, tt.bytes)
		if tt.err != (err != nil) || (!tt.err && got != tt.want) {
			t.Errorf("ParseBurst(%q) = %d, %v; want %d err=%v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestDefaults(t *testing.T) {
	tests := []struct {
		name   string
		cfg    Config
		ram    uint64
		size   uint32
		max    uint32
		expire uint32
		burst  uint32
	}{
		{"big RAM", Config{Avg: 100000}, 8 << 30, 8192, 65536, 1000, 5},
		{"512 MiB", Config{Avg: 20000000}, 512 << 20, 4096, 32768, 60000, 5},
		{"tiny RAM", Config{Avg: 100000}, 1 << 20, 16, 128, 1000, 5},
		{"max below size", Config{Avg: 100000, Size: 100, Max: 10}, 0, 100, 100, 1000, 5},
		{"clamped", Config{Avg: 100000, Size: 1 << 30, Max: 1 << 30}, 0, MaxSize, MaxSize, 1000, 5},
		{"bytes no burst", Config{Avg: 66076419, Bytes: true}, 8 << 30, 8192, 65536, 15000, 0},
		{"bytes burst", Config{Avg: 66076419, Bytes: true, Burst: 2}, 8 << 30, 8192, 65536, 60000, 2},
	}
	for _, tt := range tests {
		c := tt.cfg
		c.Defaults(tt.ram)
		if c.Size != tt.size || c.Max != tt.max || c.Expire != tt.expire || c.Burst != tt.burst || c.GCInterval != 1000 {
			t.Errorf("%s: got size %d max %d expire %d burst %d gc %d", tt.name, c.Size, c.Max, c.Expire, c.Burst, c.GCInterval)
		}
	}
}

func TestCheck(t *testing.T) {
	ok := configForTest(t, "ok", "10/s", 5, HashSrcIP)
	tests := []struct {
		name string
		mod  func(c *Config)
		bad  bool
	}{
		{"ok", func(c *Config) {}, false},
		{"1/day burst 1", func(c *Config) { c.Avg = 86400000000; c.Burst = 1 }, false},
		// 86400000000*2*137438953 wraps u64 below the single cost.
		{"1/day burst 2 overflows", func(c *Config) { c.Avg = 86400000000; c.Burst = 2 }, true},
		{"burst 0", func(c *Config) { c.Burst = 0 }, true},
		{"mask", func(c *Config) { c.SrcMask = 33 }, true},
		{"name slash", func(c *Config) { c.Name = "a/b" }, true},
		{"empty name", func(c *Config) { c.Name = "" }, true},
		{"expire 0", func(c *Config) { c.Expire = 0 }, true},
		{"bytes too fast", func(c *Config) { c.Bytes = true; c.Avg = 1 }, true},
		{"rate-match interval 0", func(c *Config) { c.RateMatch = true }, true},
	}
	for _, tt := range tests {
		c := ok
		tt.mod(&c)
		err := c.Check(hz)
		var ce *ConfigError
		if tt.bad != errors.As(err, &ce) {
			t.Errorf("%s: Check = %v", tt.name, err)
		}
	}
}

type pkt struct {
	p       *packet.Packet
	j       uint64
	match   bool
	hotdrop bool
}

func run(t *testing.T, tb *Table, steps []pkt) {
	t.Helper()
	for i, s := range steps {
		m, h := tb.Match(s.p, s.j)
		if m != s.match || h != s.hotdrop {
			t.Fatalf("step %d (j=%d): got match=%v hotdrop=%v, want %v %v", i, s.j, m, h, s.match, s.hotdrop)
		}
	}
}

func TestUptoAndAbove(t *testing.T) {
	a := udpForTest("10.0.0.1", "10.0.0.9", 1000, 53)
	b := udpForTest("10.0.0.2", "10.0.0.9", 1000, 53)
	const j0 = 4294892296
	up := configForTest(t, "u", "10/s", 5, HashSrcIP)
	reg := NewRegistry(hz)
	tu, err := reg.Get(up, j0)
	if err != nil {
		t.Fatal(err)
	}
	// New entries start full: 5 back to back, then 25 jiffies for one more
	// (24*2^39 < 100000*137438953 <= 25*2^39).
	run(t, tu, []pkt{
		{a, j0, true, false}, {a, j0, true, false}, {a, j0, true, false}, {a, j0, true, false}, {a, j0, true, false},
		{a, j0, false, false},
		{b, j0, true, false}, // separate bucket per source
		{a, j0 + 24, false, false},
		{a, j0 + 25, true, false},
		{a, j0 + 25, false, false},
	})
	ab := up
	ab.Name = "a"
	ab.Above = true
	ta, err := reg.Get(ab, j0)
	if err != nil {
		t.Fatal(err)
	}
	// --hashlimit-above: the inverse verdict, same token spending.
	run(t, ta, []pkt{
		{a, j0, false, false}, {a, j0, false, false}, {a, j0, false, false}, {a, j0, false, false}, {a, j0, false, false},
		{a, j0, true, false},
		{a, j0 + 25, false, false},
		{a, j0 + 25, true, false},
	})
}

func TestPacketCreditWrap(t *testing.T) {
	// delta*2^39 wraps u64 to 0 after exactly 2^25 idle jiffies.
	c := configForTest(t, "w", "10/s", 1, HashSrcIP)
	c.Expire, c.GCInterval = 0xFFFFFFFF, 0xFFFFFFFF
	for _, tc := range []struct {
		idle  uint64
		match bool
	}{{1 << 25, false}, {1<<25 - 1, true}, {1<<25 + 25, true}} {
		tb, err := NewRegistry(hz).Get(c, 0)
		if err != nil {
			t.Fatal(err)
		}
		a := udpForTest("10.0.0.1", "10.0.0.9", 1, 2)
		run(t, tb, []pkt{{a, 0, true, false}, {a, 0, false, false}, {a, tc.idle, tc.match, false}})
	}
}

func TestByteMode(t *testing.T) {
	p := udpForTest("10.0.0.1", "10.0.0.9", 1, 2)
	p.Len = 100 // 7 chunks * 64527752 = 451694264 per packet
	count := func(c Config) int {
		tb, err := NewRegistry(hz).Get(c, 0)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for i := 0; i < 1000; i++ {
			if m, _ := tb.Match(p, 0); m {
				n++
			}
		}
		return n
	}
	c := configForTest(t, "b", "1kb/s", 0, HashSrcIP)
	if n := count(c); n != 9 { // 4194304000 / 451694264
		t.Fatalf("1kb/s no burst: %d packets, want 9", n)
	}
	c.Burst, _ = ParseBurst("2k", c.Avg, true)
	if n := count(c); n != 27 { // two refills of a full second
		t.Fatalf("1kb/s burst 2kb: %d packets, want 27", n)
	}
	// A jumbo packet costs at most one second of credit.
	big := udpForTest("10.0.0.1", "10.0.0.9", 1, 2)
	big.Len = 65535
	c.Burst = 0
	tb, _ := NewRegistry(hz).Get(c, 0)
	run(t, tb, []pkt{{big, 0, true, false}, {big, 0, false, false}, {big, 1, false, false}, {big, 250, true, false}})
}

func TestKeyAndHotdrop(t *testing.T) {
	c := configForTest(t, "k", "1/min", 1, HashSrcIP|HashDstPort)
	c.SrcMask = 24
	tb, _ := NewRegistry(hz).Get(c, 0)
	frag := packetForTest("10.1.1.1", "10.0.0.9", packet.ProtoUDP, []byte{0, 1, 0, 53, 9, 9, 9, 9})
	frag.FragOff = 1480 // non-first fragment: "ports" are its first bytes
	short := packetForTest("10.2.2.2", "10.0.0.9", packet.ProtoUDP, []byte{0, 1, 0})
	esp := packetForTest("10.3.3.3", "10.0.0.9", 50, []byte{0xaa, 0xbb, 0xcc, 0xdd})
	esp2 := packetForTest("10.3.3.3", "10.0.0.9", 50, []byte{0xaa, 0xbb, 0xcc, 0xde})
	icmp := packetForTest("10.4.4.4", "10.0.0.9", packet.ProtoICMP, nil)
	icmp2 := packetForTest("10.4.4.4", "10.0.0.9", packet.ProtoICMP, []byte{8, 0})
	run(t, tb, []pkt{
		{udpForTest("10.0.0.1", "10.0.0.9", 5, 53), 0, true, false},
		{udpForTest("10.0.0.2", "10.0.0.8", 6, 53), 0, false, false}, // same /24 and dport
		{udpForTest("10.0.0.2", "10.0.0.8", 6, 54), 0, true, false},  // other dport
		{frag, 0, true, false},
		{udpForTest("10.1.1.7", "10.0.0.9", 5, 53), 0, false, false}, // the fragment's bytes read as dport 53
		{short, 0, false, true}, // ports unreadable: hotdrop
		{esp, 0, true, false},
		{esp2, 0, true, false}, // SPI low half differs: other "dport"
		{icmp, 0, true, false}, // no ports for ICMP: key without port
		{icmp2, 0, false, false},
	})
	st, _, _, _ := tb.Stats()
	if st != 6 {
		t.Fatalf("entries = %d, want 6", st)
	}
}

func TestIPv6Key(t *testing.T) {
	c := NewConfig("v6", packet.FamilyIPv6)
	c.Avg, c.Burst, c.Mode, c.SrcMask = 60000000, 1, HashSrcIP|HashDstPort, 64
	c.Defaults(4 << 30)
	tb, err := NewRegistry(hz).Get(c, 0)
	if err != nil {
		t.Fatal(err)
	}
	udp := make([]byte, 8)
	binary.BigEndian.PutUint16(udp[2:], 53)
	// Hop-by-hop (8 bytes) then UDP.
	hbh := append([]byte{packet.ProtoUDP, 0, 0, 0, 0, 0, 0, 0}, udp...)
	p1 := packetForTest("2001:db8::1", "2001:db8::9", 0, hbh)
	p2 := packetForTest("2001:db8::2", "2001:db8::9", packet.ProtoUDP, udp) // same /64, dport 53
	// Non-first fragment: walk stops at the fragment header, ports 0.
	frag := packetForTest("2001:db8:1::1", "2001:db8::9", 44, append([]byte{packet.ProtoUDP, 0, 0x05, 0xc8, 0, 0, 0, 1}, udp...))
	frag2 := packetForTest("2001:db8:1::1", "2001:db8::9", packet.ProtoUDP, make([]byte, 8)) // dport 0
	none := packetForTest("2001:db8:2::1", "2001:db8::9", 59, nil)
	run(t, tb, []pkt{
		{p1, 0, true, false}, {p2, 0, false, false},
		{frag, 0, true, false}, {frag2, 0, false, false},
		{none, 0, false, true},
	})
}

func TestTableFull(t *testing.T) {
	c := configForTest(t, "f", "10/s", 5, HashSrcIP)
	c.Size, c.Max = 2, 2
	a := udpForTest("10.0.0.1", "10.0.0.9", 1, 2)
	b := udpForTest("10.0.0.2", "10.0.0.9", 1, 2)
	d := udpForTest("10.0.0.3", "10.0.0.9", 1, 2)

	drop, _ := NewRegistry(hz).Get(c, 0)
	run(t, drop, []pkt{{a, 0, true, false}, {b, 0, true, false}, {d, 0, false, true}, {a, 0, true, false}})
	if n, max, fd, ev := drop.Stats(); n != 2 || max != 2 || fd != 1 || ev != 0 {
		t.Fatalf("drop stats = %d %d %d %d", n, max, fd, ev)
	}

	ev, _ := NewRegistry(hz).Get(c, 0)
	ev.SetFullPolicy(FullEvictOldest)
	// a spends 4 tokens, b arrives, a is touched again (LRU order b, a):
	// d evicts b; b then comes back as a new, full entry by evicting a.
	run(t, ev, []pkt{
		{a, 0, true, false}, {a, 0, true, false}, {a, 0, true, false}, {a, 0, true, false},
		{b, 0, true, false}, {a, 0, true, false}, {a, 0, false, false},
		{d, 0, true, false}, {b, 0, true, false},
	})
	if n, _, fd, evc := ev.Stats(); n != 2 || fd != 0 || evc != 2 {
		t.Fatalf("evict stats = %d %d %d", n, fd, evc)
	}
	// a was evicted by b's return: it starts full again.
	run(t, ev, []pkt{{a, 0, true, false}})
}

func TestGCExpiry(t *testing.T) {
	c := configForTest(t, "g", "1/min", 1, HashSrcIP)
	c.Expire, c.GCInterval = 1000, 10000 // 250 and 2500 jiffies
	tb, _ := NewRegistry(hz).Get(c, 0)
	a := udpForTest("10.0.0.1", "10.0.0.9", 1, 2)
	run(t, tb, []pkt{
		{a, 0, true, false},
		// Expired at 250 but gc only runs at 2500: the entry still
		// exists with no credit, so the kernel does not match.
		{a, 300, false, false},  // expiry now 550
		{a, 2499, false, false}, // refreshed: expires 2749
	})
	if n, _, _, _ := tb.Stats(); n != 1 {
		t.Fatalf("entries = %d", n)
	}
	// gc runs at 2500 (2749 not yet expired) and 5000 (removed).
	tb.GC(4999)
	if n, _, _, _ := tb.Stats(); n != 1 {
		t.Fatalf("entries after gc at 2500 = %d", n)
	}
	tb.GC(5000)
	if n, _, _, _ := tb.Stats(); n != 0 {
		t.Fatalf("entries after gc at 5000 = %d", n)
	}
	run(t, tb, []pkt{{a, 5001, true, false}}) // new entry, full
}

func TestSharedTable(t *testing.T) {
	reg := NewRegistry(hz)
	r1 := configForTest(t, "x", "10/s", 5, HashSrcIP)
	r2 := configForTest(t, "x", "1/s", 1, HashSrcIP|HashDstPort)
	r2.Above = true
	t1, _ := reg.Get(r1, 0)
	t2, _ := reg.Get(r2, 0)
	a := udpForTest("10.0.0.1", "10.0.0.9", 1, 2)
	// r2 uses the table's (r1's) rate, burst and key, but its own "above".
	run(t, t1, []pkt{{a, 0, true, false}, {a, 0, true, false}, {a, 0, true, false}})
	run(t, t2, []pkt{{a, 0, false, false}, {a, 0, false, false}, {a, 0, true, false}})
	if n, _, _, _ := t2.Stats(); n != 1 {
		t.Fatalf("shared entries = %d", n)
	}
	// Same name, other family: another table.
	r6 := NewConfig("x", packet.FamilyIPv6)
	r6.Avg, r6.Burst, r6.Mode = 100000, 5, HashSrcIP
	r6.Defaults(4 << 30)
	t6, _ := reg.Get(r6, 0)
	if t6.ht == t1.ht {
		t.Fatal("ipv6 table shared with ipv4")
	}
}

func TestRateMatch(t *testing.T) {
	c := configForTest(t, "r", "10/s", 5, HashSrcIP)
	c.RateMatch, c.Interval = true, 1 // rate 10, burst 5+10
	c.Expire = 10000                  // keep gc (every 250 jiffies) away
	tb, err := NewRegistry(hz).Get(c, 0)
	if err != nil {
		t.Fatal(err)
	}
	a := udpForTest("10.0.0.1", "10.0.0.9", 1, 2)
	var steps []pkt
	for i := 0; i < 15; i++ {
		steps = append(steps, pkt{a, 0, true, false})
	}
	steps = append(steps, pkt{a, 0, false, false}, pkt{a, 250, false, false}, pkt{a, 500, true, false})
	run(t, tb, steps)
}

func TestConcurrentRace(t *testing.T) {
	c := configForTest(t, "c", "10/s", 5, HashSrcIP)
	c.Size, c.Max = 64, 64
	reg := NewRegistry(hz)
	for _, pol := range []FullPolicy{FullDrop, FullEvictOldest} {
		c.Name = "c" + string(rune('0'+pol))
		tb, _ := reg.Get(c, 0)
		tb.SetFullPolicy(pol)
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				p := udpForTest("10.0.0.1", "10.0.0.9", 1, 2)
				for i := 0; i < 3000; i++ {
					p.Src = netip.AddrFrom4([4]byte{10, byte(w), byte(i >> 8), byte(i % 97)})
					tb.Match(p, uint64(i/10))
				}
			}(w)
		}
		wg.Wait()
		if n, max, _, _ := tb.Stats(); n > max {
			t.Fatalf("%d entries > max %d", n, max)
		}
	}
}

func TestMatchAllocs(t *testing.T) {
	c := configForTest(t, "z", "10/s", 5, HashSrcIP|HashDstPort)
	c.Size, c.Max = 4096, 4096
	tb, _ := NewRegistry(hz).Get(c, 0)
	p := udpForTest("10.0.0.1", "10.0.0.9", 1, 2)
	// Warm the first chunk, then new and existing flows allocate nothing.
	tb.Match(p, 0)
	i := 0
	if n := testing.AllocsPerRun(1000, func() {
		i++
		p.Src = netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
		tb.Match(p, uint64(i))
	}); n != 0 {
		t.Fatalf("allocs per Match = %v", n)
	}
}

func FuzzParseRate(f *testing.F) {
	for _, s := range []string{"10/s", "1kb/s", "b/s", "xb/s", "-5b/s", "4294967295mb/s", "1/d", "3/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		avg, bytes, err := ParseRate(s)
		if err == nil && avg == 0 {
			t.Fatalf("%q: avg 0 accepted", s)
		}
		if err == nil {
			_ = FormatRate(avg, bytes)
		}
	})
}

func FuzzParseBurst(f *testing.F) {
	for _, s := range []string{"5", "2k", "0x10", "-1", "99999999999999999999999", "1m"} {
		f.Add(s, uint64(66076419), true)
		f.Add(s, uint64(0), false)
		f.Add(s, uint64(0xffffffff), true) // 1b/s: cost_to_bytes is 0
	}
	f.Fuzz(func(t *testing.T, s string, avg uint64, bytes bool) {
		_, _ = ParseBurst(s, avg, bytes)
	})
}

// xorshiftForTest yields pseudo-random IPv4 sources.
func xorshiftForTest(x uint32) uint32 {
	x ^= x << 13
	x ^= x >> 17
	x ^= x << 5
	return x
}

func benchFlood(b *testing.B, pol FullPolicy, max uint32) {
	c := configForTest(b, "bench", "10/s", 5, HashSrcIP)
	c.Size, c.Max = max, max
	tb, _ := NewRegistry(hz).Get(c, 0)
	tb.SetFullPolicy(pol)
	p := udpForTest("10.0.0.1", "10.0.0.9", 1, 2)
	x := uint32(1)
	// Steady state: fill the table and its chunks first.
	for i := 0; i < 2*int(max); i++ {
		x = xorshiftForTest(x)
		p.Src = netip.AddrFrom4([4]byte{byte(x >> 24), byte(x >> 16), byte(x >> 8), byte(x)})
		tb.Match(p, 0)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		x = xorshiftForTest(x)
		// 1M distinct sources: the low 20 bits of the sequence.
		v := x & 0xFFFFF
		p.Src = netip.AddrFrom4([4]byte{10, byte(v >> 16), byte(v >> 8), byte(v)})
		tb.Match(p, uint64(i>>10))
	}
}

func BenchmarkFlood1MSourcesDrop(b *testing.B)    { benchFlood(b, FullDrop, 65536) }
func BenchmarkFlood1MSourcesEvict(b *testing.B)   { benchFlood(b, FullEvictOldest, 65536) }
func BenchmarkFlood1MSourcesFitsMax(b *testing.B) { benchFlood(b, FullDrop, MaxSize) }

func BenchmarkExistingFlow(b *testing.B) {
	c := configForTest(b, "bench", "10/s", 5, HashSrcIP|HashDstPort)
	tb, _ := NewRegistry(hz).Get(c, 0)
	p := udpForTest("10.0.0.1", "10.0.0.9", 1, 2)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		tb.Match(p, uint64(i>>8))
	}
}

// TestHashKeySpreads: keys that differ in a few bits (consecutive /24s,
// consecutive ports, IPv6 /64s) spread over the buckets about as evenly
// as random keys would: no bucket gets more than 2.5 times its share (random keys: about 2),
// for each of a few seeds drawn as newTable draws them.
func TestHashKeySpreads(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	const nbuckets, nkeys = 1 << 12, 1 << 16
	for _, tc := range []struct {
		name string
		key  func(i int) key
	}{
		{"ipv4 /24 sources", func(i int) key {
			var k key
			binary.BigEndian.PutUint32(k[0:], 0x0a000000|uint32(i)<<8)
			return k
		}},
		{"one source, dst ports", func(i int) key {
			var k key
			binary.BigEndian.PutUint32(k[0:], 0xc0000201)
			binary.BigEndian.PutUint16(k[34:], uint16(i))
			return k
		}},
		{"ipv6 /64 destinations", func(i int) key {
			var k key
			binary.BigEndian.PutUint64(k[16:], 0x20010db800000000|uint64(i))
			return k
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for range 4 {
				seed := [6]uint64{r.Uint64(), r.Uint64(), r.Uint64(), r.Uint64(), r.Uint64(), r.Uint64()}
				var n [nbuckets]int
				for i := range nkeys {
					k := tc.key(i)
					n[hashKey(&seed, &k)&(nbuckets-1)]++
				}
				most := 0
				for _, c := range n {
					most = max(most, c)
				}
				if share := nkeys / nbuckets; most > 5*share/2 {
					t.Errorf("seed %x: a bucket holds %d keys, %d× its share of %d", seed, most, most/share, share)
				}
			}
		})
	}
}

// checkTagsForTest fails unless every entry's tag bit is set in its
// bucket's tags: a clear bit lets Match skip the chain, so a missing one
// would make a known flow new again.
func checkTagsForTest(t *testing.T, ht *htable) {
	t.Helper()
	for b := range ht.buckets {
		for i := ht.buckets[b]; i != nilIdx; i = ht.lnk(i).next {
			if h := ht.lnk(i).hash; ht.tags[b]&tagBit(h) == 0 {
				t.Fatalf("bucket %d: entry %d (hash %#x) not in tags %016b", b, i, h, ht.tags[b])
			}
		}
	}
}

// TestTagsCoverChains: the bucket tags cover every chain through
// inserts, expiry and gc, and evictions, under both full policies, and
// they clear again once gc has emptied the table.
func TestTagsCoverChains(t *testing.T) {
	for _, pol := range []FullPolicy{FullDrop, FullEvictOldest} {
		c := configForTest(t, "tags", "10/s", 5, HashSrcIP)
		c.Size, c.Max = 64, 300 // 512 buckets: chains of several entries
		c.Expire, c.GCInterval = 1000, 1000
		tb, _ := NewRegistry(hz).Get(c, 0)
		tb.SetFullPolicy(pol)
		ht := tb.ht
		p := udpForTest("10.0.0.1", "10.0.0.9", 1, 2)
		x := uint32(7)
		for i := range 20000 {
			x = xorshiftForTest(x)
			// 2,048 sources: flows repeat, expire and come back.
			p.Src = netip.AddrFrom4([4]byte{10, 1, byte(x >> 8 & 7), byte(x)})
			tb.Match(p, uint64(i/8))
			if i%997 == 0 {
				checkTagsForTest(t, ht)
			}
		}
		checkTagsForTest(t, ht)
		if _, _, fd, ev := tb.Stats(); fd+ev == 0 {
			t.Errorf("policy %d: the table was never full", pol)
		}
		tb.GC(20000/8 + 1000)
		if n, _, _, _ := tb.Stats(); n != 0 {
			t.Fatalf("policy %d: %d entries left after gc", pol, n)
		}
		for b, tags := range ht.tags {
			if tags != 0 {
				t.Fatalf("policy %d: bucket %d of an empty table keeps tags %016b", pol, b, tags)
			}
		}
	}
}

// benchFullTable matches packets from the sources src(x) yields, x a
// pseudo-random sequence, against a table of the kernel's default 65,536
// entries, full with the sources 10.0.0.0 up; every packet must be
// hotdropped (the table refusing a new flow) or not, as hot says.
func benchFullTable(b *testing.B, hot bool, src func(x, n uint32) netip.Addr) {
	c := configForTest(b, "bench", "10/s", 5, HashSrcIP)
	c.Size, c.Max = 8192, 65536
	tb, _ := NewRegistry(hz).Get(c, 0)
	p := udpForTest("10.0.0.1", "10.0.0.9", 1, 2)
	for i := range c.Max {
		p.Src = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		tb.Match(p, 0)
	}
	x := uint32(1)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		x = xorshiftForTest(x)
		p.Src = src(x, c.Max)
		if _, h := tb.Match(p, 0); h != hot {
			b.Fatalf("%s: hotdrop %v, want %v", p.Src, h, hot)
		}
	}
}

// BenchmarkFloodFullNewSources is the spoofed flood's steady state: the
// table is full, no entry expires, and every packet comes from a source
// never seen (FullDrop: hotdrop).
func BenchmarkFloodFullNewSources(b *testing.B) {
	benchFullTable(b, true, func(x, _ uint32) netip.Addr {
		return netip.AddrFrom4([4]byte{11 + byte(x>>24)%200, byte(x >> 16), byte(x >> 8), byte(x)})
	})
}

// BenchmarkKnownSourcesFullTable is the other side of a full table: every
// packet comes from one of its sources, in random order, so the lookup
// finds its entry (bucket, chain and entry out of the cache).
func BenchmarkKnownSourcesFullTable(b *testing.B) {
	benchFullTable(b, false, func(x, n uint32) netip.Addr {
		v := x % n
		return netip.AddrFrom4([4]byte{10, byte(v >> 16), byte(v >> 8), byte(v)})
	})
}
