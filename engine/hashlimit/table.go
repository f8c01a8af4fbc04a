package hashlimit

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/sluice-project/sluice/engine/jiffies"
	"github.com/sluice-project/sluice/packet"
)

// FullPolicy says what happens to a new flow when the table holds Max
// entries.
type FullPolicy uint8

const (
	// FullDrop is the kernel's behaviour: dsthash_alloc_init refuses the
	// entry (count >= max) and the match hotdrops the packet.
	FullDrop FullPolicy = iota
	// FullEvictOldest is a sluice option: the least recently used entry
	// is evicted to make room. It departs from iptables' counters by
	// design, for operators who prefer it under floods of new sources.
	FullEvictOldest
)

// keyLen is sizeof(struct dsthash_dst): two 16-byte addresses and ports.
const keyLen = 36

type key [keyLen]byte

const (
	chunkShift = 12
	chunkSize  = 1 << chunkShift
	nilIdx     = -1
)

// entry is struct dsthash_ent. In rate-match mode credit, creditCap and
// cost hold current_rate, rate and burst, as the kernel's union does.
type entry struct {
	k          key
	lruPrev    int32
	lruNext    int32
	bucket     uint32 // guarded by htable.mu, not the stripe lock
	expires    uint64
	prev       uint64
	credit     uint64
	creditCap  uint64
	cost       uint64
	interval   uint32
	prevWindow uint32
}

// link is an entry's place in its bucket chain (or the free list) and
// its key's hash. Links sit in their own dense array beside the entries
// (chunk), so a lookup walks a chain and rejects the other keys without
// touching their entries: a new source in a full table costs a cache
// miss or two in the links, not one per 100-byte entry.
type link struct {
	next int32
	hash uint32
}

// chunk holds chunkSize entries and their links; chunks are allocated
// as the table fills, so memory follows the entries in use up to Max.
type chunk struct {
	links [chunkSize]link
	ents  [chunkSize]entry
}

type stripe struct {
	mu sync.Mutex
	// fullDrops counts the new flows this stripe's buckets refused
	// (FullDrop), under mu: a flood of them would otherwise pay an
	// atomic add each. Stats sums the stripes.
	fullDrops uint64
	_         [48]byte // keep stripes on separate cache lines
}

// htable is struct xt_hashlimit_htable: shared by every rule naming it.
type htable struct {
	cfg     Config // the creating rule's, after Defaults
	mode    uint32
	k       consts
	expireJ uint64
	gcJ     uint64
	seed    [6]uint64 // hashKey's, random per table
	buckets []int32
	// tags[b] is the union of tagBit(h) over the hashes h of bucket b's
	// chain, kept with the chain under its stripe lock (set on insert,
	// recomputed when entries leave). A key whose bit is clear is not in
	// the table: under a flood of new (spoofed) sources into a full
	// table, most lookups end at these two bytes instead of at two cache
	// misses, the bucket head and its first link (768 KiB of them for the
	// kernel's default 65,536 entries, against 128 KiB of tags, which
	// send 6% of new keys on to the chain).
	tags     []uint16
	bmask    uint32
	stripes  []stripe
	smask    uint32
	maxCount int32

	mu     sync.Mutex // free list, chunk allocation, count, LRU list
	chunks []*chunk
	nalloc int32
	free   int32
	count  int32
	// full mirrors count >= maxCount (written under mu) so that a new
	// flow in a full table under FullDrop is refused without taking mu.
	full    atomic.Bool
	lruHead int32 // least recently used
	lruTail int32
	policy  atomic.Uint32

	gcMu      sync.Mutex
	nextGC    atomic.Uint64
	evictions atomic.Uint64
}

func newHtable(cfg Config, hz, j uint64) *htable {
	t := &htable{
		cfg:      cfg,
		mode:     cfg.mode(),
		k:        newConsts(hz),
		expireJ:  jiffies.MsecsToJiffies(cfg.Expire, hz),
		gcJ:      jiffies.MsecsToJiffies(cfg.GCInterval, hz),
		seed:     [6]uint64{rand.Uint64(), rand.Uint64(), rand.Uint64(), rand.Uint64(), rand.Uint64(), rand.Uint64()},
		maxCount: int32(cfg.Max),
		free:     nilIdx,
		lruHead:  nilIdx,
		lruTail:  nilIdx,
	}
	// Our own bucket count: a power of two near Max keeps chains short;
	// the kernel's Size only affects its speed, never a verdict.
	nb := uint32(16)
	for nb < cfg.Max && nb < 1<<21 {
		nb <<= 1
	}
	t.buckets = make([]int32, nb)
	t.tags = make([]uint16, nb)
	for i := range t.buckets {
		t.buckets[i] = nilIdx
	}
	t.bmask = nb - 1
	ns := uint32(64)
	if ns > nb {
		ns = nb
	}
	t.stripes = make([]stripe, ns)
	t.smask = ns - 1
	t.chunks = make([]*chunk, (int(cfg.Max)+chunkSize-1)/chunkSize)
	t.nextGC.Store(j + t.gcJ)
	return t
}

func (t *htable) ent(i int32) *entry { return &t.chunks[i>>chunkShift].ents[i&(chunkSize-1)] }

func (t *htable) lnk(i int32) *link { return &t.chunks[i>>chunkShift].links[i&(chunkSize-1)] }

// Table is one rule's handle on a shared hashlimit table: the table's
// entries, rate and expiry come from the rule that created it (as the
// kernel's hinfo->cfg), while the above/bytes/rate-match flags that decide
// the verdict are this rule's own (cfg->mode in hashlimit_mt_common).
type Table struct {
	ht   *htable
	mode uint32
}

// Registry holds the tables of one ruleset, keyed by (name, family) as
// htable_find_get does.
type Registry struct {
	hz     uint64
	mu     sync.Mutex
	tables map[string]*htable
}

// NewRegistry returns an empty registry for a kernel with the given HZ.
func NewRegistry(hz uint64) *Registry {
	if hz == 0 {
		hz = jiffies.DefaultHZ
	}
	return &Registry{hz: hz, tables: make(map[string]*htable)}
}

// Get is hashlimit_mt_check for a rule loaded at jiffy j: it validates cfg
// and returns the rule's handle on the table named cfg.Name for
// cfg.Family, creating it from cfg if absent. A later rule naming an
// existing table does not change it: its size, max, expiry, gc interval,
// hash mode, masks, rate and burst are ignored, as in the kernel.
func (r *Registry) Get(cfg Config, j uint64) (*Table, error) {
	if err := cfg.Check(r.hz); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	name := cfg.Name + "\x00" + cfg.Family.String()
	ht := r.tables[name]
	if ht == nil {
		ht = newHtable(cfg, r.hz, j)
		r.tables[name] = ht
	}
	return &Table{ht: ht, mode: cfg.mode()}, nil
}

// SetFullPolicy chooses what a full table does; it applies to the shared
// table. Switching to FullEvictOldest while entries exist orders those
// entries arbitrarily in the LRU list.
func (t *Table) SetFullPolicy(p FullPolicy) {
	ht := t.ht
	if FullPolicy(ht.policy.Load()) == p {
		return
	}
	for i := range ht.stripes {
		ht.stripes[i].mu.Lock()
	}
	ht.mu.Lock()
	ht.lruHead, ht.lruTail = nilIdx, nilIdx
	if p == FullEvictOldest {
		for b := range ht.buckets {
			for i := ht.buckets[b]; i != nilIdx; i = ht.lnk(i).next {
				ht.lruPush(i)
			}
		}
	}
	ht.policy.Store(uint32(p))
	ht.mu.Unlock()
	for i := range ht.stripes {
		ht.stripes[i].mu.Unlock()
	}
}

// Stats reports the table's size and how often it was full. It takes
// every stripe's lock in turn (the drop counts live there): call it at
// scrape time, not per packet.
func (t *Table) Stats() (entries, max int, fullDrops, evictions uint64) {
	ht := t.ht
	ht.mu.Lock()
	n := ht.count
	ht.mu.Unlock()
	for i := range ht.stripes {
		s := &ht.stripes[i]
		s.mu.Lock()
		fullDrops += s.fullDrops
		s.mu.Unlock()
	}
	return int(n), int(ht.maxCount), fullDrops, ht.evictions.Load()
}

// GC runs the garbage collections due by jiffy j. Match does this itself;
// call GC at scrape time so idle tables report their true size.
func (t *Table) GC(j uint64) { t.ht.maybeGC(j) }

// Match is hashlimit_mt_common at jiffy j. hotdrop is true when the kernel
// would drop the packet outright: its ports cannot be read, or the table
// is full (FullDrop). Safe for concurrent use; no allocation.
func (t *Table) Match(p *packet.Packet, j uint64) (match, hotdrop bool) {
	ht := t.ht
	ht.maybeGC(j)
	var k key
	if !ht.initDst(&k, p) {
		return false, true
	}
	h := hashKey(&ht.seed, &k)
	b := h & ht.bmask
	s := &ht.stripes[b&ht.smask]
	s.mu.Lock()
	var e *entry
	for {
		idx := int32(nilIdx)
		if ht.tags[b]&tagBit(h) != 0 {
			idx = ht.buckets[b]
		}
		for idx != nilIdx {
			l := ht.lnk(idx)
			if l.hash == h {
				if c := ht.ent(idx); keyEqual(&c.k, &k) {
					e = c
					break
				}
			}
			idx = l.next
		}
		if e != nil {
			// Found (expired or not: only gc removes entries).
			e.expires = j + ht.expireJ
			ht.recalc(e, j)
			if FullPolicy(ht.policy.Load()) == FullEvictOldest {
				ht.mu.Lock()
				ht.lruUnlink(idx)
				ht.lruPush(idx)
				ht.mu.Unlock()
			}
			break
		}
		idx, retry := ht.alloc(b, s)
		if retry {
			continue
		}
		if idx == nilIdx {
			s.fullDrops++
			s.mu.Unlock()
			return false, true
		}
		e = ht.ent(idx)
		e.k = k
		*ht.lnk(idx) = link{next: ht.buckets[b], hash: h}
		ht.buckets[b] = idx
		ht.tags[b] |= tagBit(h)
		e.expires = j + ht.expireJ
		ht.initRate(e, j)
		break
	}
	match = t.verdict(e, p)
	s.mu.Unlock()
	return match, false
}

// verdict spends credit with this rule's flags, as the tail of
// hashlimit_mt_common does: --hashlimit-above inverts the result but
// spends tokens exactly like --hashlimit-upto.
func (t *Table) verdict(e *entry, p *packet.Packet) bool {
	inv := t.mode&modeInvert != 0
	if t.mode&modeRateMatch != 0 {
		cost := uint64(1)
		if t.mode&modeBytes != 0 {
			cost = uint64(uint32(p.Len))
		}
		e.credit += cost // current_rate
		if e.prevWindow == 0 && e.credit <= e.cost /* burst */ {
			return !inv
		}
		return inv
	}
	var cost uint64
	if t.mode&modeBytes != 0 {
		cost = t.ht.byteCost(uint32(p.Len), e)
	} else {
		cost = e.cost
	}
	if e.credit >= cost {
		e.credit -= cost
		return !inv
	}
	return inv
}

// byteCost is hashlimit_byte_cost: the length in 16-byte chunks (plus
// one) times the per-chunk cost, capped at a second's worth; when credit
// is short and refills remain, one refill restores a full second.
func (t *htable) byteCost(l uint32, e *entry) uint64 {
	tmp := uint64((l>>byteShift)+1) * e.cost
	if tmp > t.k.capBytes {
		tmp = t.k.capBytes
	}
	if e.credit < tmp && e.creditCap != 0 {
		e.creditCap--
		e.credit = t.k.capBytes
	}
	return uint64(uint32(tmp))
}

// initRate is rateinfo_init, from the table's (first rule's) config.
func (t *htable) initRate(e *entry, j uint64) {
	c := &t.cfg
	e.prev = j
	switch {
	case t.mode&modeRateMatch != 0:
		e.prevWindow = 0
		e.credit = 0
		if t.mode&modeBytes != 0 {
			u := uint32(c.Avg)
			r := uint64(0xFFFFFFFF)
			if u != 0 {
				r = uint64(0xFFFFFFFF / u)
			}
			e.creditCap = (r - 1) << byteShift // user2rate_bytes
			if c.Burst != 0 {
				e.cost = uint64(c.Burst) * e.creditCap
			} else {
				e.cost = e.creditCap
			}
		} else {
			e.creditCap = 0
			if c.Avg != 0 {
				e.creditCap = Scale / c.Avg // user2rate
			}
			e.cost = uint64(c.Burst) + e.creditCap
		}
		e.interval = c.Interval
	case t.mode&modeBytes != 0:
		e.credit = t.k.capBytes
		e.cost = t.k.user2creditsByte(uint32(c.Avg))
		e.creditCap = uint64(c.Burst)
	default:
		e.credit = t.k.user2credits(c.Avg * uint64(c.Burst))
		e.cost = t.k.user2credits(c.Avg)
		e.creditCap = e.credit
	}
}

// recalc is rateinfo_recalc with the table's mode. Packet mode adds
// delta*CREDITS_PER_JIFFY with silent u64 wrap; byte mode detects its
// wrap and refills to one second.
func (t *htable) recalc(e *entry, now uint64) {
	delta := now - e.prev
	if delta == 0 {
		return
	}
	if t.mode&modeRateMatch != 0 {
		interval := uint64(e.interval * uint32(t.k.hz))
		if delta < interval {
			return
		}
		e.prev = now
		e.prevWindow = 0
		if e.credit*interval > delta*e.creditCap {
			e.prevWindow = 1
		}
		e.credit = 0
		return
	}
	e.prev = now
	var cap uint64
	if t.mode&modeBytes != 0 {
		tmp := e.credit
		e.credit += t.k.cpjBytes * delta
		cap = t.k.capBytes
		if tmp >= e.credit {
			e.credit = cap
			return
		}
	} else {
		e.credit += delta * t.k.cpj
		cap = e.creditCap
	}
	if e.credit > cap {
		e.credit = cap
	}
}

// alloc takes a free entry slot for a new flow in bucket b (stripe s is
// held). It returns nilIdx when the table is full under FullDrop, and
// retry when eviction had to drop s to avoid a lock-order deadlock (the
// caller must look the key up again).
func (t *htable) alloc(b uint32, s *stripe) (idx int32, retry bool) {
	if t.full.Load() && FullPolicy(t.policy.Load()) != FullEvictOldest {
		return nilIdx, false
	}
	t.mu.Lock()
	if t.count < t.maxCount {
		idx = t.free
		if idx != nilIdx {
			t.free = t.lnk(idx).next
		} else {
			idx = t.nalloc
			c := idx >> chunkShift
			if t.chunks[c] == nil {
				t.chunks[c] = new(chunk)
			}
			t.nalloc++
		}
		t.count++
		t.full.Store(t.count >= t.maxCount)
		t.ent(idx).bucket = b
		if FullPolicy(t.policy.Load()) == FullEvictOldest {
			t.lruPush(idx)
		}
		t.mu.Unlock()
		return idx, false
	}
	if FullPolicy(t.policy.Load()) != FullEvictOldest || t.lruHead == nilIdx {
		t.mu.Unlock()
		return nilIdx, false
	}
	victim := t.lruHead
	ve := t.ent(victim)
	vs := &t.stripes[ve.bucket&t.smask]
	if vs != s && !vs.mu.TryLock() {
		t.mu.Unlock()
		s.mu.Unlock()
		runtime.Gosched()
		s.mu.Lock()
		return nilIdx, true
	}
	t.unlinkBucket(victim, ve.bucket)
	if vs != s {
		vs.mu.Unlock()
	}
	ve.bucket = b
	t.lruUnlink(victim)
	t.lruPush(victim)
	t.evictions.Add(1)
	t.mu.Unlock()
	return victim, false
}

// unlinkBucket removes entry i from bucket b's chain (its stripe held).
func (t *htable) unlinkBucket(i int32, b uint32) {
	p := &t.buckets[b]
	for *p != i {
		p = &t.lnk(*p).next
	}
	*p = t.lnk(i).next
	t.retag(b)
}

// tagBit is a hash's bit in its bucket's tags: its top four bits, which
// the bucket index (the low bits, at most 21) does not use. With the
// kernel's default sizes a chain holds one entry on average, so a new
// key finds its bit set in 1-e^(-1/16), about 6%, of buckets.
func tagBit(h uint32) uint16 { return 1 << (h >> 28) }

// retag sets bucket b's tags from its chain (its stripe held), after
// entries left it.
func (t *htable) retag(b uint32) {
	var tags uint16
	for i := t.buckets[b]; i != nilIdx; i = t.lnk(i).next {
		tags |= tagBit(t.lnk(i).hash)
	}
	t.tags[b] = tags
}

func (t *htable) lruPush(i int32) {
	e := t.ent(i)
	e.lruNext = nilIdx
	e.lruPrev = t.lruTail
	if t.lruTail != nilIdx {
		t.ent(t.lruTail).lruNext = i
	} else {
		t.lruHead = i
	}
	t.lruTail = i
}

func (t *htable) lruUnlink(i int32) {
	e := t.ent(i)
	if e.lruPrev != nilIdx {
		t.ent(e.lruPrev).lruNext = e.lruNext
	} else {
		t.lruHead = e.lruNext
	}
	if e.lruNext != nilIdx {
		t.ent(e.lruNext).lruPrev = e.lruPrev
	} else {
		t.lruTail = e.lruPrev
	}
}

// maybeGC reproduces htable_gc deterministically on the packet clock: the
// kernel runs it every gc interval from the table's creation and frees
// entries whose expiry has passed (time_after_eq(jiffies, expires)).
// Several missed runs collapse into the last one, which frees a superset.
// A run due at the packet's own jiffy happens before the packet.
func (t *htable) maybeGC(j uint64) {
	next := t.nextGC.Load()
	if !jiffies.TimeAfterEq(j, next) || !t.gcMu.TryLock() {
		return
	}
	next = t.nextGC.Load()
	if !jiffies.TimeAfterEq(j, next) {
		t.gcMu.Unlock()
		return
	}
	runAt := next + (j-next)/t.gcJ*t.gcJ
	ns := uint32(len(t.stripes))
	for si := uint32(0); si < ns; si++ {
		s := &t.stripes[si]
		s.mu.Lock()
		for b := si; b <= t.bmask; b += ns {
			p := &t.buckets[b]
			var tags uint16 // of the entries kept
			for *p != nilIdx {
				i := *p
				l := t.lnk(i)
				if !jiffies.TimeAfterEq(runAt, t.ent(i).expires) {
					tags |= tagBit(l.hash)
					p = &l.next
					continue
				}
				*p = l.next
				t.mu.Lock()
				if FullPolicy(t.policy.Load()) == FullEvictOldest {
					t.lruUnlink(i)
				}
				l.next = t.free
				t.free = i
				t.count--
				t.full.Store(false)
				t.mu.Unlock()
			}
			t.tags[b] = tags
		}
		s.mu.Unlock()
	}
	t.nextGC.Store(runAt + t.gcJ)
	t.gcMu.Unlock()
}

// hashKey hashes k with a table's random seed, as the kernel's jhash2
// with its hash_rnd: a flood cannot aim its keys at one chain without the
// seed. It reads the key as four 8-byte words and a 4-byte one and folds
// them with 64×64→128-bit multiplies (wyhash's mum): a few instructions
// against maphash.Bytes' call and AES rounds, and a hash per packet.
func hashKey(s *[6]uint64, k *key) uint32 {
	le := binary.LittleEndian
	h := mum(le.Uint64(k[0:8])^s[0], le.Uint64(k[8:16])^s[1]) ^
		mum(le.Uint64(k[16:24])^s[2], le.Uint64(k[24:32])^s[3])
	h = mum(h^s[4], uint64(le.Uint32(k[32:36]))^s[5])
	// murmur3's fmix64: every bit of h reaches the low bits that
	// pick the bucket.
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	return uint32(h)
}

func mum(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// keyEqual compares two keys as four 8-byte words and a 4-byte one,
// which the compiler keeps in registers, rather than through memequal.
func keyEqual(a, b *key) bool {
	le := binary.LittleEndian
	return le.Uint64(a[0:8]) == le.Uint64(b[0:8]) &&
		le.Uint64(a[8:16]) == le.Uint64(b[8:16]) &&
		le.Uint64(a[16:24]) == le.Uint64(b[16:24]) &&
		le.Uint64(a[24:32]) == le.Uint64(b[24:32]) &&
		le.Uint32(a[32:36]) == le.Uint32(b[32:36])
}

// initDst is hashlimit_init_dst: it builds the key from the masked
// addresses and, when the mode hashes ports, the 4 bytes at the transport
// offset plus proto_ports_offset (0 for TCP, UDP, DCCP, ESP, SCTP,
// UDPLITE; 4 for AH; none otherwise). It does not look at the fragment
// offset, so a non-first IPv4 fragment is keyed by its first payload
// bytes. false means the kernel hotdrops (ports unreadable, or an IPv6
// extension chain it cannot walk).
func (t *htable) initDst(k *key, p *packet.Packet) bool {
	c := &t.cfg
	var nexthdr uint8
	var protoff int
	l3 := p.L3
	switch t.cfg.Family {
	case packet.FamilyIPv4:
		if !p.Src.Is4() || !p.Dst.Is4() {
			return false
		}
		if c.Mode&HashDstIP != 0 {
			a := p.Dst.As4()
			binary.BigEndian.PutUint32(k[16:], maskl(binary.BigEndian.Uint32(a[:]), c.DstMask))
		}
		if c.Mode&HashSrcIP != 0 {
			a := p.Src.As4()
			binary.BigEndian.PutUint32(k[0:], maskl(binary.BigEndian.Uint32(a[:]), c.SrcMask))
		}
		if c.Mode&(HashDstPort|HashSrcPort) == 0 {
			return true
		}
		if len(l3) < 20 {
			return false
		}
		nexthdr = l3[9]
		protoff = p.L4Off
	default:
		if !p.Src.Is6() || !p.Dst.Is6() {
			return false
		}
		if c.Mode&HashDstIP != 0 {
			a := p.Dst.As16()
			mask6(k[16:32], a, c.DstMask)
		}
		if c.Mode&HashSrcIP != 0 {
			a := p.Src.As16()
			mask6(k[0:16], a, c.SrcMask)
		}
		if c.Mode&(HashDstPort|HashSrcPort) == 0 {
			return true
		}
		if len(l3) < 40 {
			return false
		}
		var ok bool
		protoff, nexthdr, ok = skipExthdr(l3, 40, l3[6])
		if !ok {
			return false
		}
	}
	var ports [4]byte
	if poff := portsOffset(nexthdr); poff >= 0 {
		off := protoff + poff
		if off < 0 || off+4 > len(l3) {
			return false
		}
		copy(ports[:], l3[off:off+4])
	}
	if c.Mode&HashSrcPort != 0 {
		k[32], k[33] = ports[0], ports[1]
	}
	if c.Mode&HashDstPort != 0 {
		k[34], k[35] = ports[2], ports[3]
	}
	return true
}

// maskl keeps the top l bits of a host-order IPv4 address.
func maskl(a uint32, l uint8) uint32 {
	if l == 0 {
		return 0
	}
	return a & (^uint32(0) << (32 - l))
}

func mask6(dst []byte, a [16]byte, l uint8) {
	for i := 0; i < 16; i++ {
		switch {
		case int(l) >= (i+1)*8:
			dst[i] = a[i]
		case int(l) > i*8:
			dst[i] = a[i] & byte(0xff<<(8-(int(l)-i*8)))
		}
	}
}

// portsOffset is proto_ports_offset (include/linux/in.h).
func portsOffset(proto uint8) int {
	switch proto {
	case 6, 17, 33, 50, 132, 136: // TCP UDP DCCP ESP SCTP UDPLITE
		return 0
	case 51: // AH: the SPI
		return 4
	}
	return -1
}

// skipExthdr is ipv6_skip_exthdr (net/ipv6/exthdrs_core.c): it skips
// hop-by-hop, routing, destination options, AH and first-fragment
// headers; at a non-first fragment it stops with nexthdr = 44 (so no
// ports); NEXTHDR_NONE or a truncated header fails.
func skipExthdr(b []byte, start int, nexthdr uint8) (int, uint8, bool) {
	for nexthdr == 0 || nexthdr == 43 || nexthdr == 44 || nexthdr == 51 || nexthdr == 59 || nexthdr == 60 {
		if nexthdr == 59 || start+2 > len(b) {
			return 0, 0, false
		}
		var hdrlen int
		switch nexthdr {
		case 44:
			if start+4 > len(b) {
				return 0, 0, false
			}
			if binary.BigEndian.Uint16(b[start+2:])&^7 != 0 {
				return start, nexthdr, true
			}
			hdrlen = 8
		case 51:
			hdrlen = (int(b[start+1]) + 2) << 2
		default:
			hdrlen = (int(b[start+1]) + 1) << 3
		}
		nexthdr = b[start]
		start += hdrlen
	}
	return start, nexthdr, true
}

// TableStats is one shared table's occupancy, for metrics.
type TableStats struct {
	Name              string
	Family            packet.Family
	Entries, Max      int
	FullDrops, Evicts uint64
}

// Stats reports every table in the registry, sorted by name and family.
func (r *Registry) Stats() []TableStats {
	r.mu.Lock()
	hts := make([]*htable, 0, len(r.tables))
	for _, ht := range r.tables {
		hts = append(hts, ht)
	}
	r.mu.Unlock()
	out := make([]TableStats, 0, len(hts))
	for _, ht := range hts {
		e, m, f, ev := (&Table{ht: ht}).Stats()
		out = append(out, TableStats{Name: ht.cfg.Name, Family: ht.cfg.Family, Entries: e, Max: m, FullDrops: f, Evicts: ev})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Family < out[j].Family
	})
	return out
}
