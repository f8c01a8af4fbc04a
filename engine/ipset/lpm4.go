package ipset

import (
	"cmp"
	"math"
	"math/bits"
	"slices"

	"github.com/sluice-project/sluice/packet"
)

// lpm4 is a read-only IPv4 longest-prefix-match table: a DIR-24-8 (or
// DIR-16-8-8, by first) whose deeper levels are popcount-compressed
// 256-way nodes, as in poptrie.
//
// The first level is a flat []uint32 indexed by the address's top `first`
// bits. Every entry, at every level, is a ref:
//
//	0                      no prefix covers this range
//	lpmChild | n           the range is split further by nodes[n]
//	anything else v        the longest covering prefix's value is v
//
// A node stands for the 256 entries of the next 8 address bits. Runs of
// equal entries are stored once: bit i of the node's bitmap is set when
// entry i starts a run (differs from entry i-1; bit 0 is always set), and
// entry i is the rank(i)-th run value, where rank counts the set bits up
// to and including i. A node's cumulative word ranks make rank one
// popcount. A node lives in the flat nodes array as
//
//	[0:8]  the bitmap, four uint64 words as (low, high) uint32 pairs
//	[8]    the rank before each bitmap word, one byte each
//	[9:]   the run values
//
// so the values follow the bitmap in memory: a lookup that reaches a
// node reads one region (usually one or two cache lines) rather than a
// node and then a separate value array. A node is 36 bytes plus 4 bytes a
// run: a /24 holding one /28 costs 48 bytes where an uncompressed
// DIR-24-8 chunk costs 1 KiB.
type lpm4 struct {
	first uint8
	top   []uint32
	nodes []uint32
	// A zero20 bitmap has bit z set when no prefix covers any address
	// of /20 block z. Under random (spoofed) sources most lookups in a
	// /16 the table splits, or in a 64 MiB first level, would miss the
	// cache for a node or an entry that says "none"; these 128 KiB
	// answer them from the cache (for the example's blocklist, half the
	// lookups). zeroTop is consulted before the first level, zeroSplit
	// after a first-level entry that is a node (first 16); at most one is
	// set, neither when it would rarely answer.
	zeroTop, zeroSplit []uint64
}

const (
	lpmChild    = 1 << 31
	lpmNodeHead = 9 // words before a node's run values
)

// lpmPrefix is one input prefix: addr is masked to len bits; val is a
// value ref (non-zero, below lpmChild).
type lpmPrefix struct {
	addr uint32
	len  uint8
	val  uint32
}

// lookup returns the value of the longest prefix containing ip, or 0.
func (t *lpm4) lookup(ip uint32) uint32 {
	if z := t.zeroTop; z != nil && z[ip>>18]>>(ip>>12&63)&1 != 0 {
		return 0
	}
	e := t.top[ip>>(32-t.first)]
	if e&lpmChild == 0 {
		return e
	}
	if z := t.zeroSplit; z != nil && z[ip>>18]>>(ip>>12&63)&1 != 0 {
		return 0
	}
	shift := 24 - uint32(t.first)
	for {
		e = t.entry(e, (ip>>shift)&255)
		if e&lpmChild == 0 {
			return e
		}
		shift -= 8
	}
}

// entry is entry pos of node ref: the rank(pos)-th run value.
func (t *lpm4) entry(ref, pos uint32) uint32 {
	n := t.nodes[ref&^lpmChild:]
	w := pos >> 6
	b := uint64(n[2*w]) | uint64(n[2*w+1])<<32
	k := (n[8] >> (8 * w) & 255) + uint32(bits.OnesCount64(b&(2<<(pos&63)-1)))
	return n[lpmNodeHead-1+k]
}

// bytes is the table's memory footprint.
func (t *lpm4) bytes() int {
	return 4*cap(t.top) + 4*cap(t.nodes) + 8*cap(t.zeroTop) + 8*cap(t.zeroSplit)
}

// sortPrefixes4 orders prefixes by address, then shorter first: a prefix
// then precedes every prefix it contains, and painting them in this order
// leaves the longest match in every slot.
func sortPrefixes4(ps []lpmPrefix) {
	slices.SortFunc(ps, func(a, b lpmPrefix) int {
		if c := cmp.Compare(a.addr, b.addr); c != 0 {
			return c
		}
		return cmp.Compare(a.len, b.len)
	})
}

// newLPM4 builds the table over ps, which must be sorted by sortPrefixes4
// and free of duplicates. first is 16 or 24.
func newLPM4(ps []lpmPrefix, first uint8) *lpm4 {
	t := &lpm4{first: first, top: make([]uint32, 1<<first)}
	shift := 32 - uint32(first)
	for i := 0; i < len(ps); {
		p := ps[i]
		slot := p.addr >> shift
		if p.len <= first {
			n := uint32(1) << (uint32(first) - uint32(p.len))
			fill(t.top[slot:slot+n], p.val)
			i++
			continue
		}
		// Everything longer than first under this slot follows (see
		// sortPrefixes4) and goes in one subtree.
		j := i + 1
		for j < len(ps) && ps[j].addr>>shift == slot {
			j++
		}
		t.top[slot] = t.build(ps[i:j], uint32(first), t.top[slot])
		i = j
	}
	t.nodes = slices.Clip(t.nodes)
	if first >= 16 {
		// Kept where it answers enough of the lookups it is consulted
		// for: before the first level when most /20s are uncovered (a
		// quarter, for a 64 MiB first level), else after a first-level
		// node (first 16) when a quarter of the /20s under nodes are; a
		// dense table would only pay for the extra cache line.
		zero20 := make([]uint64, 1<<20/64)
		// zero: uncovered /20s of all 2^20; split, zeroSplit: /20s under
		// a first-level node, and the uncovered ones among them.
		zero, split, zeroSplit := 0, 0, 0
		for z := range uint32(1 << 20) {
			under := first == 16 && t.top[z>>4]&lpmChild != 0
			if under {
				split++
			}
			if t.zeroBlock20(z) {
				zero20[z>>6] |= 1 << (z & 63)
				zero++
				if under {
					zeroSplit++
				}
			}
		}
		switch {
		case 2*zero >= 1<<20 || (first == 24 && 4*zero >= 1<<20):
			// Most random addresses are uncovered: ask before the first
			// level, which is bigger.
			t.zeroTop = zero20
		case first == 16 && zeroSplit > 0 && 4*zeroSplit >= split:
			t.zeroSplit = zero20
		}
	}
	return t
}

// zeroBlock20 reports whether no prefix covers any address of /20 block
// z: its first-level entries (first 24) or its 16 entries in the node of
// its /16 (first 16) are all 0. A node entry that is a child is not: a
// node exists only under a longer prefix, whose value is not 0.
func (t *lpm4) zeroBlock20(z uint32) bool {
	if t.first == 24 {
		for _, e := range t.top[z<<4 : z<<4+16] {
			if e != 0 {
				return false
			}
		}
		return true
	}
	e := t.top[z>>4]
	if e&lpmChild == 0 {
		return e == 0
	}
	for pos := (z & 15) << 4; pos < (z&15)<<4+16; pos++ {
		if t.entry(e, pos) != 0 {
			return false
		}
	}
	return true
}

// build makes the node for the 8 address bits after depth, all of ps
// being longer than depth and under one depth-bit slot whose covering
// value is base. It returns the node's ref.
func (t *lpm4) build(ps []lpmPrefix, depth, base uint32) uint32 {
	var ent [256]uint32
	fill(ent[:], base)
	shift := 24 - depth
	for i := 0; i < len(ps); {
		p := ps[i]
		b := (p.addr >> shift) & 255
		if uint32(p.len) <= depth+8 {
			n := uint32(1) << (depth + 8 - uint32(p.len))
			fill(ent[b:b+n], p.val)
			i++
			continue
		}
		j := i + 1
		for j < len(ps) && (ps[j].addr>>shift)&255 == b {
			j++
		}
		ent[b] = t.build(ps[i:j], depth+8, ent[b])
		i = j
	}
	at := uint32(len(t.nodes))
	var bm [4]uint64
	var vals [256]uint32
	nv := 0
	for i, v := range ent {
		if i == 0 || v != ent[i-1] {
			bm[i>>6] |= 1 << (i & 63)
			vals[nv] = v
			nv++
		}
	}
	var cum, c uint32
	for w := 0; w < 4; w++ {
		cum |= c << (8 * w)
		c += uint32(bits.OnesCount64(bm[w]))
		t.nodes = append(t.nodes, uint32(bm[w]), uint32(bm[w]>>32))
	}
	t.nodes = append(t.nodes, cum)
	t.nodes = append(t.nodes, vals[:nv]...)
	return lpmChild | at
}

func fill(s []uint32, v uint32) {
	for i := range s {
		s[i] = v
	}
}

// Table sizes for IPv4 hash:net sets, by prefix count: the first level
// costs 4<<first bytes whatever the set holds, so a small set starts
// with 8 bits (1 KiB), a mid-size one with 16 (256 KiB, DIR-16-8-8) and
// a large one with 24 (64 MiB, DIR-24-8: one memory access for any
// address not under a prefix longer than /24).
const (
	lpm4Mid   = 1 << 10
	lpm4Large = 1 << 18
)

// lpm4First is the first-level width for n prefixes.
func lpm4First(n int) uint8 {
	switch {
	case n >= lpm4Large:
		return 24
	case n >= lpm4Mid:
		return 16
	}
	return 8
}

// validUntil is the latest packet time at which no element has expired
// yet: until then every element passes extOK's timeout check.
func (s *Set) validUntil() int64 {
	t := int64(math.MaxInt64)
	if s.withTimeout {
		for i := range s.elems {
			// extOK fails an element once now > expires.
			if e := s.elems[i].expires; e != 0 && e < t {
				t = e
			}
		}
	}
	return t
}

// finishNet builds a hash:net set's match structures once all its
// elements are in: netParent, netFastUntil, and for IPv4 the lpm4 table,
// which replaces the bart table.
func (s *Set) finishNet() {
	s.netFastUntil = s.validUntil()
	s.netParent = make([]int32, len(s.elems))
	if s.family != packet.FamilyIPv4 {
		for i := range s.elems {
			e := &s.elems[i]
			s.netParent[i] = -1
			if e.cidr > 1 {
				pfx, _ := e.ip1.Prefix(int(e.cidr) - 1)
				if r, ok := s.nets.LookupPrefix(pfx); ok {
					s.netParent[i] = int32((r - 1) >> 1)
				}
			}
		}
		return
	}
	ps := make([]lpmPrefix, len(s.elems))
	for i := range s.elems {
		e := &s.elems[i]
		ps[i] = lpmPrefix{addr: v4(e.ip1), len: e.cidr, val: netRef(int32(i), e.nomatch)}
	}
	sortPrefixes4(ps)
	// In that order the prefixes containing ps[k] are a stack.
	var stack []lpmPrefix
	for _, p := range ps {
		for len(stack) > 0 {
			t := stack[len(stack)-1]
			if t.len < p.len && p.addr&mask4(t.len) == t.addr {
				break
			}
			stack = stack[:len(stack)-1]
		}
		parent := int32(-1)
		if len(stack) > 0 {
			parent = int32((stack[len(stack)-1].val - 1) >> 1)
		}
		s.netParent[(p.val-1)>>1] = parent
		stack = append(stack, p)
	}
	s.net4 = newLPM4(ps, lpm4First(len(ps)))
	s.nets = nil
}

// lookupBatch sets out[k] = lookup(ips[k]) for every k (out is at least
// as long as ips). Under a flood of random addresses each lookup misses
// the caches once or twice, and lookup one address at a time waits for
// each miss in turn: the branch on a missed entry (a node or not?)
// stalls everything after it. lookupBatch goes in stages over up to
// batchChunk addresses, each stage a tight loop whose loads do not depend
// on each other, so the misses of different addresses overlap:
//
//  1. the zero bitmap and the first-level entry, both loaded without a
//     branch on either; addresses that go on to a node are listed;
//  2. each listed node's bitmap word and ranks (one cache line);
//  3. the run value that word selects, which may sit on the next line.
//
// An address whose value is a deeper node (a prefix longer than
// first+8 under it) finishes with lookup's loop from there.
func (t *lpm4) lookupBatch(ips, out []uint32) {
	var st lpmStages
	for len(ips) > 0 {
		n := min(len(ips), batchChunk)
		in, res := ips[:n], out[:n]
		np := t.stage1(in, res, &st)
		if t.zeroSplit != nil {
			np = t.splitZeros(in, np, &st)
		}
		t.stage2(in, st.pend[:np], &st)
		t.stage3(in, res, st.pend[:np], &st)
		ips, out = ips[n:], out[n:]
	}
}

// lpmStages carries lookupBatch's addresses from stage to stage; each
// stage is a function of its own so that the compiler keeps its loop in
// registers.
type lpmStages struct {
	pend [batchChunk]uint8  // the addresses that go on to a node
	ref  [batchChunk]uint32 // their first-level entry, then their value
	bm   [batchChunk]uint64 // their node's bitmap word
	rank [batchChunk]uint32 // and the rank before it
}

// stage1 sets res[k] from the zero bitmap and first level, both loaded
// without a branch on either, and lists the addresses that go on to a
// node. It returns how many.
func (t *lpm4) stage1(in, res []uint32, st *lpmStages) int {
	top, zero, zmask := t.top, t.zeroTop, uint32(1<<14-1)
	if zero == nil {
		// One zero word: every /20 "covered", the check a no-op.
		zero, zmask = noZero20[:], 0
	}
	topShift := 32 - uint32(t.first)
	np := 0
	for k, ip := range in {
		e := top[ip>>topShift]
		z := uint32(zero[ip>>18&zmask]>>(ip>>12&63)) & 1
		// res[k] is e unless the /20 is uncovered or e is a node; the
		// address is listed when it goes on to a node.
		c := e >> 31 // lpmChild
		res[k] = e & ((z | c) - 1)
		st.pend[np&(batchChunk-1)], st.ref[np&(batchChunk-1)] = uint8(k), e
		np += int(c &^ z)
	}
	return np
}

// splitZeros drops the listed addresses whose /20 the zeroSplit bitmap
// says is uncovered (rare: see newLPM4).
func (t *lpm4) splitZeros(in []uint32, np int, st *lpmStages) int {
	m := 0
	for i := range np {
		ip := in[st.pend[i]]
		if t.zeroSplit[ip>>18]>>(ip>>12&63)&1 == 0 {
			st.pend[m], st.ref[m] = st.pend[i], st.ref[i]
			m++
		}
	}
	return m
}

// stage2 loads each listed node's bitmap word and the ranks before it.
func (t *lpm4) stage2(in []uint32, pend []uint8, st *lpmStages) {
	nodes, shift := t.nodes, 24-uint32(t.first)
	for i, k := range pend {
		pos := in[k] >> shift & 255
		nd := nodes[st.ref[i&(batchChunk-1)]&^lpmChild:]
		w := pos >> 6
		st.bm[i&(batchChunk-1)] = uint64(nd[2*w]) | uint64(nd[2*w+1])<<32
		st.rank[i&(batchChunk-1)] = nd[8] >> (8 * w) & 255
	}
}

// stage3 loads the run value each bitmap word selects into res, going
// deeper (lookup's loop) where that value is a node.
func (t *lpm4) stage3(in, res []uint32, pend []uint8, st *lpmStages) {
	nodes, shift := t.nodes, 24-uint32(t.first)
	for i, k := range pend {
		pos := in[k] >> shift & 255
		j := i & (batchChunk - 1)
		r := st.rank[j] + uint32(bits.OnesCount64(st.bm[j]&(2<<(pos&63)-1)))
		st.ref[j] = nodes[st.ref[j]&^lpmChild+lpmNodeHead-1+r]
	}
	for i, k := range pend {
		e := st.ref[i&(batchChunk-1)]
		if e&lpmChild != 0 {
			ip := in[k]
			for s := shift - 8; e&lpmChild != 0; s -= 8 {
				e = t.entry(e, ip>>s&255)
			}
		}
		res[k] = e
	}
}

// batchChunk is how many addresses lookupBatch takes per stage.
const batchChunk = 64

// noZero20 stands for a table without a zeroTop bitmap in lookupBatch.
var noZero20 [1]uint64
