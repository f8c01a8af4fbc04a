package recent

import (
	"errors"
	"net/netip"
	"sync"
	"testing"

	"github.com/sluice-project/sluice/packet"
)

const hz = 250

func packetForTest(src, dst string, ttl uint8) *packet.Packet {
	s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
	p := &packet.Packet{Src: s, Dst: d, TTL: ttl, Family: packet.FamilyIPv4, Proto: packet.ProtoTCP}
	if s.Is6() {
		p.Family = packet.FamilyIPv6
	}
	return p
}

func mustGetForTest(t testing.TB, r *Registry, c Config) *Match {
	t.Helper()
	if c.Family == 0 {
		c.Family = packet.FamilyIPv4
	}
	if c.Name == "" {
		c.Name = "DEFAULT"
	}
	m, err := r.Get(c)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

type step struct {
	m    *Match
	p    *packet.Packet
	j    uint64
	want bool
}

func runForTest(t *testing.T, steps []step) {
	t.Helper()
	for i, s := range steps {
		got, hd := s.m.Match(s.p, s.j)
		if got != s.want || hd {
			t.Fatalf("step %d (j=%d): match=%v hotdrop=%v, want %v", i, s.j, got, hd, s.want)
		}
	}
}

func TestBruteForceHitcount(t *testing.T) {
	r := NewRegistry(hz)
	set := mustGetForTest(t, r, Config{Name: "SSH", Set: true})
	upd := mustGetForTest(t, r, Config{Name: "SSH", Update: true, Seconds: 60, Hitcount: 4})
	x := packetForTest("192.0.2.1", "198.51.100.1", 64)
	runForTest(t, []step{
		{set, x, 0, true}, {upd, x, 0, false},
		{set, x, 1, true}, {upd, x, 1, false},
		{set, x, 2, true}, {upd, x, 2, false},
		{set, x, 3, true}, {upd, x, 3, true}, // 4 stamps: 0,1,2,3; update adds 3 again
		// 60 s = 15000 jiffies: at 15001, time = 1 and stamp 0 is older.
		{upd, x, 15001, true},  // stamps 1,2,3,3 still count; adds 15001
		{upd, x, 15004, false}, // time = 4: only 15001 counts
	})
}

func TestSecondsU32Overflow(t *testing.T) {
	// seconds*HZ is computed in u32: 17179870*250 = 2^32+204, a window of
	// 204 jiffies instead of 199 days.
	r := NewRegistry(hz)
	set := mustGetForTest(t, r, Config{Set: true})
	chk := mustGetForTest(t, r, Config{Check: true, Seconds: 17179870})
	x := packetForTest("192.0.2.1", "198.51.100.1", 64)
	runForTest(t, []step{
		{set, x, 1000, true},
		{chk, x, 1204, true},
		{chk, x, 1205, false},
	})
}

func TestEvictionAtTableSize(t *testing.T) {
	r := NewRegistry(hz)
	if err := r.SetModuleParams(3, 0); err != nil {
		t.Fatal(err)
	}
	set := mustGetForTest(t, r, Config{Set: true})
	chk := mustGetForTest(t, r, Config{Check: true})
	upd := mustGetForTest(t, r, Config{Update: true})
	a := packetForTest("192.0.2.1", "198.51.100.1", 64)
	b := packetForTest("192.0.2.2", "198.51.100.1", 64)
	c := packetForTest("192.0.2.3", "198.51.100.1", 64)
	d := packetForTest("192.0.2.4", "198.51.100.1", 64)
	runForTest(t, []step{
		{set, a, 0, true}, {set, b, 1, true}, {set, c, 2, true},
		{upd, a, 3, true}, // a becomes most recently updated; b is LRU
		{chk, b, 4, true}, // --rcheck does not touch the LRU order
		{set, d, 5, true}, // list full: evicts b
		{chk, b, 6, false}, {chk, a, 6, true}, {chk, c, 6, true}, {chk, d, 6, true},
	})
	if n := set.Entries(); n != 3 {
		t.Fatalf("entries = %d", n)
	}
}

func TestStampRing(t *testing.T) {
	tests := []struct {
		name     string
		hitcount uint32
		updates  int
		// the hitcount that still matches after updates+1 stamps
		nstamps int
	}{
		{"default 32 stamps", 0, 100, 32},
		// The --set rule created the list with 32 stamps; 8 needed here do not shrink it.
		{"hitcount 5 keeps 32 stamps", 5, 100, 32},
		// A 256-stamp ring: the u16 index does not wrap there (kernels
		// with a u8 index counted 255).
		{"hitcount 255 -> 256 visible", 255, 400, 256},
		// 6.18 takes hitcounts up to 65535 (kernel-checked); a
		// 65536-stamp ring, whose last slot the wrapping u16 index hides.
		{"hitcount 300 -> 512 visible", 300, 600, 512},
		{"hitcount 40000 -> 65535 visible", 40000, 70000, 65535},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewRegistry(hz)
			set := mustGetForTest(t, r, Config{Set: true, Name: "R"})
			hc := tt.hitcount
			if hc == 0 {
				hc = 1
			}
			_ = mustGetForTest(t, r, Config{Check: true, Name: "R", Hitcount: hc})
			x := packetForTest("192.0.2.1", "198.51.100.1", 64)
			for i := 0; i <= tt.updates; i++ {
				set.Match(x, uint64(i))
			}
			e := &set.t.ents[set.t.lookup(&[16]byte{192, 0, 2, 1}, nfprotoIPv4, 0)]
			if int(e.nstamps) != tt.nstamps {
				t.Fatalf("nstamps = %d, want %d", e.nstamps, tt.nstamps)
			}
			if tt.hitcount == 255 {
				// all 256 stamps are visible: hitcount 255 matches.
				m := mustGetForTest(t, r, Config{Check: true, Name: "R", Hitcount: 255})
				runForTest(t, []step{{m, x, 1000, true}})
			}
		})
	}
}

func TestTTLMaskInvertFamilies(t *testing.T) {
	r := NewRegistry(hz)
	set := mustGetForTest(t, r, Config{Name: "M", Set: true, Mask: netip.MustParseAddr("255.255.255.0"), MaskGiven: true})
	rttl := mustGetForTest(t, r, Config{Name: "M", Check: true, RTTL: true})
	notChk := mustGetForTest(t, r, Config{Name: "M", Check: true, Invert: true})
	fwd := mustGetForTest(t, r, Config{Name: "M", Check: true, RTTL: true, TTLPlusOne: true})
	dst := mustGetForTest(t, r, Config{Name: "M", Check: true, RDest: true})
	v6 := mustGetForTest(t, r, Config{Name: "M", Family: packet.FamilyIPv6, Set: true})
	v6chk := mustGetForTest(t, r, Config{Name: "M", Family: packet.FamilyIPv6, Check: true})
	runForTest(t, []step{
		{set, packetForTest("10.0.0.1", "10.9.9.9", 64), 0, true},
		{rttl, packetForTest("10.0.0.2", "10.9.9.9", 64), 1, true},  // same /24, same TTL
		{rttl, packetForTest("10.0.0.2", "10.9.9.9", 63), 1, false}, // TTL differs
		{fwd, packetForTest("10.0.0.2", "10.9.9.9", 63), 1, true},   // 63+1 in FORWARD
		{notChk, packetForTest("10.0.1.1", "10.9.9.9", 64), 1, true},
		{notChk, packetForTest("10.0.0.7", "10.9.9.9", 64), 1, false},
		{dst, packetForTest("10.9.9.9", "10.0.0.200", 64), 1, true},
		// The list is shared with ip6tables and keeps the v4 rule's
		// explicit --mask, ff.ff.ff.00 then three zero words: only the first 24 bits of an
		// IPv6 address are kept.
		{v6, packetForTest("2001:db8::1", "2001:db8::9", 64), 2, true},
		{v6chk, packetForTest("2001:db8:ffff::2", "2001:db8::9", 64), 3, true},
		{v6chk, packetForTest("2001:db9::1", "2001:db8::9", 64), 3, true},
		{v6chk, packetForTest("2001:ee8::1", "2001:db8::9", 64), 3, false},
	})
	// TTL 255 + 1 wraps to 0, the wildcard.
	runForTest(t, []step{{fwd, packetForTest("10.0.0.2", "10.9.9.9", 255), 4, true}})
}

// TestSharedListMaskFromIPv4Rule: an ip6tables rule sharing a list that an
// iptables rule created uses that rule's 16-byte mask. Kernel counts from
// `sluice verify --pace off` (iptables-legacy, kernel 6.18) with
//
//	rules.v4:  *filter  -A INPUT -m recent --name r0 --rcheck [--mask 255.255.255.255]
//	rules.v6:  *filter  -A INPUT -m recent --name r0 --rcheck
//	                    -A INPUT -m recent --name r0 --set
//
// and four UDP frames to 2001:db8::1 from 2001:db8:1::9, 2001:db8:2::1,
// 2001:db8:1::9, 2001:db9::1: the v6 --rcheck counted 1 packet with the
// default v4 mask (all 16 bytes 0xff: whole IPv6 addresses), 2 with
// --mask 255.255.255.255 (then zeros: the first 32 bits), and 1 without
// the v4 rule. Before MaskGiven sluice counted 2 in the first case.
func TestSharedListMaskFromIPv4Rule(t *testing.T) {
	srcs := []string{"2001:db8:1::9", "2001:db8:2::1", "2001:db8:1::9", "2001:db9::1"}
	for _, tc := range []struct {
		name  string
		v4    *Config // the iptables rule, compiled first; nil: none
		check int     // kernel's count for the v6 --rcheck rule
	}{
		{"v4 default mask", &Config{Check: true, Mask: netip.MustParseAddr("255.255.255.255")}, 1},
		{"v4 --mask 255.255.255.255", &Config{Check: true, Mask: netip.MustParseAddr("255.255.255.255"), MaskGiven: true}, 2},
		{"no v4 rule", nil, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRegistry(hz)
			if tc.v4 != nil {
				c := *tc.v4
				c.Name = "r0"
				mustGetForTest(t, r, c)
			}
			all6 := netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")
			chk := mustGetForTest(t, r, Config{Name: "r0", Family: packet.FamilyIPv6, Check: true, Mask: all6})
			set := mustGetForTest(t, r, Config{Name: "r0", Family: packet.FamilyIPv6, Set: true, Mask: all6})
			n := 0
			for i, s := range srcs {
				p := packetForTest(s, "2001:db8::1", 64)
				if m, _ := chk.Match(p, uint64(i)); m {
					n++
				}
				if m, _ := set.Match(p, uint64(i)); !m {
					t.Fatalf("frame %d: --set did not match", i)
				}
			}
			if n != tc.check {
				t.Errorf("v6 --rcheck matched %d packets, kernel %d", n, tc.check)
			}
		})
	}
}

func TestReapAndRemove(t *testing.T) {
	r := NewRegistry(hz)
	set := mustGetForTest(t, r, Config{Set: true})
	reap := mustGetForTest(t, r, Config{Check: true, Seconds: 1, Reap: true})
	rm := mustGetForTest(t, r, Config{Remove: true})
	chk := mustGetForTest(t, r, Config{Check: true})
	a := packetForTest("192.0.2.1", "198.51.100.1", 64)
	b := packetForTest("192.0.2.2", "198.51.100.1", 64)
	runForTest(t, []step{
		{set, a, 0, true}, {set, b, 100, true},
		// time = 300-250 = 50: b (stamp 100) matches; the LRU head a
		// (last stamp 0) is older and reaped.
		{reap, b, 300, true},
		{chk, a, 300, false},
		{rm, b, 301, true}, {chk, b, 302, false}, {rm, b, 303, false},
	})
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no op", Config{Name: "x", Family: packet.FamilyIPv4}},
		{"two ops", Config{Name: "x", Family: packet.FamilyIPv4, Set: true, Check: true}},
		{"set with seconds", Config{Name: "x", Family: packet.FamilyIPv4, Set: true, Seconds: 5}},
		{"remove with rttl", Config{Name: "x", Family: packet.FamilyIPv4, Remove: true, RTTL: true}},
		{"reap without seconds", Config{Name: "x", Family: packet.FamilyIPv4, Check: true, Reap: true}},
		{"hitcount 65536", Config{Name: "x", Family: packet.FamilyIPv4, Check: true, Hitcount: 65536}},
		{"empty name", Config{Family: packet.FamilyIPv4, Check: true}},
	}
	r := NewRegistry(hz)
	for _, tt := range tests {
		var ce *ConfigError
		if _, err := r.Get(tt.cfg); !errors.As(err, &ce) {
			t.Errorf("%s: err = %v", tt.name, err)
		}
	}
	if err := r.SetModuleParams(0, 0); err == nil {
		t.Error("ip_list_tot 0 accepted")
	}
	if err := r.SetModuleParams(10, 65536); err == nil {
		t.Error("ip_pkt_list_tot 65536 accepted")
	}
}

func TestGrowFlushes(t *testing.T) {
	r := NewRegistry(hz)
	set := mustGetForTest(t, r, Config{Set: true})
	x := packetForTest("192.0.2.1", "198.51.100.1", 64)
	set.Match(x, 0)
	// A later rule needing 64 stamps flushes the list (recent_mt_check).
	mustGetForTest(t, r, Config{Check: true, Hitcount: 40})
	if set.Entries() != 0 || set.t.nmask != 63 {
		t.Fatalf("entries %d nmask %d", set.Entries(), set.t.nmask)
	}
}

func TestConcurrent(t *testing.T) {
	r := NewRegistry(hz)
	set := mustGetForTest(t, r, Config{Set: true})
	upd := mustGetForTest(t, r, Config{Update: true, Seconds: 10, Hitcount: 3, Reap: true})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			p := packetForTest("192.0.2.1", "198.51.100.1", 64)
			for i := 0; i < 2000; i++ {
				p.Src = netip.AddrFrom4([4]byte{10, byte(w), 0, byte(i % 150)})
				set.Match(p, uint64(i))
				upd.Match(p, uint64(i))
			}
		}(w)
	}
	wg.Wait()
	if n := set.Entries(); n > DefaultIPListTot {
		t.Fatalf("entries %d", n)
	}
}

func TestMatchAllocs(t *testing.T) {
	r := NewRegistry(hz)
	set := mustGetForTest(t, r, Config{Set: true})
	upd := mustGetForTest(t, r, Config{Update: true, Seconds: 60, Hitcount: 10})
	p := packetForTest("192.0.2.1", "198.51.100.1", 64)
	i := 0
	if n := testing.AllocsPerRun(1000, func() {
		i++
		p.Src = netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
		set.Match(p, uint64(i))
		upd.Match(p, uint64(i))
	}); n != 0 {
		t.Fatalf("allocs = %v", n)
	}
}

func BenchmarkSetUpdate(b *testing.B) {
	r := NewRegistry(hz)
	set := mustGetForTest(b, r, Config{Set: true})
	upd := mustGetForTest(b, r, Config{Update: true, Seconds: 60, Hitcount: 10})
	p := packetForTest("192.0.2.1", "198.51.100.1", 64)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		p.Src = netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
		set.Match(p, uint64(i))
		upd.Match(p, uint64(i))
	}
}
