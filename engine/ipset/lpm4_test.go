package ipset

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/sluice-project/sluice/packet"
)

// refPrefix is one element of the naive reference.
type refPrefix struct {
	addr    uint32
	len     uint8
	nomatch bool
	expires int64 // 0 = permanent
}

// refTest is mtype_test_cidrs done the slow obvious way: scan every
// prefix, and among those containing ip and not expired at now, the
// longest decides (1, -1 for nomatch, 0 for none).
func refTest(ps []refPrefix, ip uint32, now int64) int {
	best := -1
	for i, p := range ps {
		if ip&mask4(p.len) != p.addr || (p.expires != 0 && now > p.expires) {
			continue
		}
		if best < 0 || p.len > ps[best].len {
			best = i
		}
	}
	switch {
	case best < 0:
		return 0
	case ps[best].nomatch:
		return -1
	}
	return 1
}

// randRefPrefixes makes n distinct IPv4 prefixes (/1../32) clustered
// around a few bases so that many nest, about a quarter of them nomatch.
func randRefPrefixes(rng *rand.Rand, n int) []refPrefix {
	bases := make([]uint32, 8)
	for i := range bases {
		bases[i] = rng.Uint32()
	}
	seen := map[uint64]bool{}
	var ps []refPrefix
	for len(ps) < n {
		var l uint8
		if rng.IntN(4) == 0 {
			l = uint8(1 + rng.IntN(32))
		} else {
			l = uint8(8 + rng.IntN(25))
		}
		a := bases[rng.IntN(len(bases))] ^ rng.Uint32()>>(4+rng.IntN(28))
		if rng.IntN(3) == 0 {
			a = rng.Uint32()
		}
		a &= mask4(l)
		if k := uint64(a)<<8 | uint64(l); !seen[k] {
			seen[k] = true
			ps = append(ps, refPrefix{addr: a, len: l, nomatch: rng.IntN(4) == 0})
		}
	}
	return ps
}

// probeAddrs returns addresses inside, at the edges of and just outside
// random prefixes of ps, plus uniformly random ones.
func probeAddrs(rng *rand.Rand, ps []refPrefix, n int) []uint32 {
	out := make([]uint32, 0, n)
	for len(out) < n {
		p := ps[rng.IntN(len(ps))]
		host := ^mask4(p.len)
		switch rng.IntN(5) {
		case 0:
			out = append(out, p.addr)
		case 1:
			out = append(out, p.addr|host)
		case 2:
			out = append(out, p.addr-1, (p.addr|host)+1)
		case 3:
			out = append(out, p.addr|rng.Uint32()&host)
		default:
			out = append(out, rng.Uint32())
		}
	}
	return out
}

// TestLPM4Differential checks lookup against refTest, and lookupBatch
// against lookup, on every first-level width and both zero bitmaps.
func TestLPM4Differential(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	var zeroTop, zeroSplit bool
	defer func() {
		if !zeroTop || !zeroSplit {
			t.Errorf("the tables had no zeroTop (%v) or no zeroSplit (%v) bitmap", zeroTop, zeroSplit)
		}
	}()
	for _, n := range []int{1, 20, 700, 3000, -1} {
		var ps []refPrefix
		if n > 0 {
			ps = randRefPrefixes(rng, n)
		} else {
			// Most of the space covered (0/1 and a /8), and /24s
			// scattered over the rest: first 16 gets a zeroSplit
			// bitmap.
			ps = []refPrefix{{addr: 0, len: 1}, {addr: 0x80000000, len: 8}}
			for range 300 {
				ps = append(ps, refPrefix{addr: (0x81000000 + rng.Uint32()%0x7f000000) &^ 255, len: 24, nomatch: rng.IntN(4) == 0})
			}
		}
		in := make([]lpmPrefix, len(ps))
		for i, p := range ps {
			in[i] = lpmPrefix{addr: p.addr, len: p.len, val: netRef(int32(i), p.nomatch)}
		}
		sortPrefixes4(in)
		addrs := probeAddrs(rng, ps, 20000)
		for _, first := range []uint8{8, 16, 24} {
			tb := newLPM4(in, first)
			zeroTop = zeroTop || tb.zeroTop != nil
			zeroSplit = zeroSplit || tb.zeroSplit != nil
			batch := make([]uint32, len(addrs))
			tb.lookupBatch(addrs, batch)
			for k, ip := range addrs {
				if r := tb.lookup(ip); batch[k] != r {
					t.Fatalf("n=%d first=%d %s: lookupBatch %#x, lookup %#x", n, first, addr4(ip), batch[k], r)
				}
			}
			for _, ip := range addrs {
				want := refTest(ps, ip, 0)
				got := 0
				if r := tb.lookup(ip); r != 0 {
					got = 1
					if (r-1)&1 != 0 {
						got = -1
					}
				}
				if got != want {
					t.Fatalf("n=%d first=%d %s: lookup %d, reference %d", n, first, addr4(ip), got, want)
				}
			}
		}
	}
}

// netSetText writes ps as a hash:net set; with timeouts, elements with
// an expiry get `timeout` seconds relative to a load at 0.
func netSetText(ps []refPrefix, opts string) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "create s hash:net maxelem %d%s\n", 2*len(ps)+1, opts)
	for _, p := range ps {
		fmt.Fprintf(&sb, "add s %s/%d", addr4(p.addr), p.len)
		if p.expires != 0 {
			fmt.Fprintf(&sb, " timeout %d", p.expires/1e9)
		} else if strings.Contains(opts, "timeout") {
			sb.WriteString(" timeout 0")
		}
		if p.nomatch {
			sb.WriteString(" nomatch")
		}
		sb.WriteByte('\n')
	}
	return sb.String()
}

// TestHashNetDifferential checks Match on random hash:net sets against
// refTest: the single-lookup fast path (plain set; counters set without a
// counter compare; timeout set before any expiry), the general walk
// (a counter compare that always passes; a timeout set after some
// expiries, where expired entries fall through to shorter prefixes),
// and --return-nomatch, across the three lpm4 first-level sizes.
func TestHashNetDifferential(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	sizes := []int{30, 2000, lpm4Large + 1000}
	if testing.Short() {
		sizes = sizes[:2]
	}
	const sec = int64(1e9)
	for _, n := range sizes {
		ps := randRefPrefixes(rng, n)
		big := n >= lpm4Large
		plain := parseForTest(t, netSetText(ps, "")).Get("s")
		cnt := parseForTest(t, netSetText(ps, " counters")).Get("s")
		for i := range ps {
			if rng.IntN(3) == 0 {
				ps[i].expires = (1 + rng.Int64N(100)) * sec
			}
		}
		tmo := parseForTest(t, netSetText(ps, " timeout 1000")).Get("s")
		if want := map[bool]uint8{false: 16, true: 24}[big]; n > 100 && plain.net4.first != want {
			t.Fatalf("n=%d: first level %d bits, want %d", n, plain.net4.first, want)
		}
		probes := 20000
		if big {
			probes = 300 // refTest scans every prefix
		}
		gt0 := MatchFlags{PacketsOp: CounterGT}
		rn := MatchFlags{ReturnNomatch: true}
		for _, ip := range probeAddrs(rng, ps, probes) {
			p := &packet.Packet{Family: packet.FamilyIPv4, Src: addr4(ip), Dst: addr4(ip), Len: 60}
			now := rng.Int64N(120) * sec
			wantPerm := refTest(ps, ip, 0)
			wantNow := refTest(ps, ip, now)
			for _, c := range []struct {
				name string
				s    *Set
				f    MatchFlags
				now  int64
				want int
			}{
				{"plain fast", plain, MatchFlags{}, 0, wantPerm},
				{"plain return-nomatch", plain, rn, 0, -wantPerm},
				{"counters fast", cnt, MatchFlags{}, 0, wantPerm},
				{"counters slow", cnt, gt0, 0, wantPerm},
				{"timeout fast", tmo, MatchFlags{}, sec, wantPerm},
				{"timeout slow", tmo, MatchFlags{}, now, wantNow},
				{"timeout slow return-nomatch", tmo, rn, now, -wantNow},
			} {
				if got := c.s.Match(p, src, c.f, c.now); got != (c.want > 0) {
					t.Fatalf("n=%d %s: %s at %ds: Match %v, reference %d", n, c.name, addr4(ip), c.now/sec, got, c.want)
				}
			}
			// The general walk from the longest match, used whatever the
			// flags, agrees with the single lookup when nothing can fail.
			if r := plain.net4.lookup(ip); r != 0 {
				if got := plain.testNetFrom(int32((r-1)>>1), p, MatchFlags{}, false, 0); got != wantPerm {
					t.Fatalf("n=%d %s: walk %d, reference %d", n, addr4(ip), got, wantPerm)
				}
			}
		}
		// Counters were bumped on the fast path's hits too: every hit
		// above went to an element.
		var pk uint64
		for i := range cnt.elems {
			pk += cnt.elems[i].packets.Load()
		}
		if pk == 0 {
			t.Fatalf("n=%d: no element counter was updated", n)
		}
	}
}

// FuzzLPM4 checks lookup against refTest, and lookupBatch against lookup,
// on prefixes and addresses from the fuzzer's bytes: 5 bytes a prefix
// (address, length), then 4 bytes an address.
func FuzzLPM4(f *testing.F) {
	f.Add([]byte{10, 0, 0, 0, 8, 10, 1, 0, 0, 16, 10, 1, 2, 0, 24, 10, 1, 2, 3, 10, 9, 9, 9}, uint8(16), uint8(3))
	f.Add([]byte{0, 0, 0, 0, 1, 128, 0, 0, 0, 8, 129, 1, 1, 0, 24, 129, 1, 1, 7, 200, 1, 1, 1}, uint8(16), uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, first, nprefix uint8) {
		// 8 and 16 bits: a first level of 24 bits takes 64 MiB and a scan
		// of its 2^20 /20 blocks per input (TestLPM4Differential covers it).
		first = 8 + 8*(first&1)
		seen := map[uint64]bool{}
		var ps []refPrefix
		for len(data) >= 5 && len(ps) < int(nprefix) {
			l := data[4] % 33
			a := uint32(data[0])<<24 | uint32(data[1])<<16 | uint32(data[2])<<8 | uint32(data[3])
			a &= mask4(l)
			if k := uint64(a)<<8 | uint64(l); !seen[k] {
				seen[k] = true
				ps = append(ps, refPrefix{addr: a, len: l, nomatch: data[4]&0x80 != 0})
			}
			data = data[5:]
		}
		var addrs []uint32
		for ; len(data) >= 4; data = data[4:] {
			addrs = append(addrs, uint32(data[0])<<24|uint32(data[1])<<16|uint32(data[2])<<8|uint32(data[3]))
		}
		for _, p := range ps {
			// Each prefix's edges and neighbours too.
			addrs = append(addrs, p.addr, p.addr|^mask4(p.len), p.addr-1, (p.addr|^mask4(p.len))+1)
		}
		in := make([]lpmPrefix, len(ps))
		for i, p := range ps {
			in[i] = lpmPrefix{addr: p.addr, len: p.len, val: netRef(int32(i), p.nomatch)}
		}
		sortPrefixes4(in)
		tb := newLPM4(in, first)
		batch := make([]uint32, len(addrs))
		tb.lookupBatch(addrs, batch)
		for k, ip := range addrs {
			r := tb.lookup(ip)
			if batch[k] != r {
				t.Fatalf("first=%d %s: lookupBatch %#x, lookup %#x", first, addr4(ip), batch[k], r)
			}
			got := 0
			if r != 0 {
				got = 1
				if (r-1)&1 != 0 {
					got = -1
				}
			}
			if want := refTest(ps, ip, 0); got != want {
				t.Fatalf("first=%d %s: lookup %d, reference %d", first, addr4(ip), got, want)
			}
		}
	})
}
