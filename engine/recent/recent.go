// Package recent reproduces `-m recent` (net/netfilter/xt_recent.c) so that
// port-knocking and brute-force rules give iptables' verdicts in sluice.
//
// The kernel's behaviour differs from a naive "seen N times in S seconds"
// in ways that change counters: lists hold ip_list_tot (100) addresses and
// a new address evicts the least recently updated one; each address keeps
// a ring of nstamps_max_mask+1 stamps (sized from --hitcount, 32 by
// default since ip_pkt_list_tot now defaults to 0) with a u16 index that
// wraps, which makes the last slot of a 65536-stamp ring invisible (kernels
// before XT_RECENT_MAX_NSTAMPS went from 256 to 65536 had a u8 index and
// refused --hitcount above 255; the kernel this was checked on, 6.18,
// takes up to 65535); --seconds
// is multiplied by HZ in u32; windows are judged with time_after on
// jiffies; --reap looks only at the least recently updated entry; --rttl
// compares TTLs with 0 as a wildcard; a list is shared by name across
// iptables and ip6tables and keeps the 16-byte mask of the rule that
// created it (all ones for an iptables rule without --mask, the address
// then zeros with one: see Config.MaskGiven).
package recent

import (
	"fmt"
	"hash/maphash"
	"math/bits"
	"net/netip"
	"sync"

	"github.com/sluice-project/sluice/engine/jiffies"
	"github.com/sluice-project/sluice/packet"
)

// Kernel defaults and limits.
const (
	DefaultIPListTot    = 100   // module parameter ip_list_tot
	DefaultIPPktListTot = 0     // module parameter ip_pkt_list_tot (kept for compatibility)
	MaxNStamps          = 65536 // XT_RECENT_MAX_NSTAMPS (256 before the u16 index)
	NameLen             = 200   // XT_RECENT_NAME_LEN, including the NUL
)

const (
	nfprotoIPv4 = 2
	nfprotoIPv6 = 10
	nilIdx      = -1
)

// Config mirrors struct xt_recent_mtinfo_v1 as iptables fills it.
type Config struct {
	Name   string // --name, "DEFAULT" when absent
	Family packet.Family

	Set, Update, Check, Remove bool // exactly one (Check is --rcheck)
	Seconds, Hitcount          uint32
	RTTL, Reap                 bool
	RSource, RDest             bool // RDest selects the destination address
	Mask                       netip.Addr
	// MaskGiven reports that the rule had --mask. It matters only for an
	// IPv4 rule that creates a list ip6tables rules share: libxt_recent's
	// init fills all 16 bytes of xt_recent_mtinfo_v1.mask with 0xff
	// whatever the family, and --mask (XTTYPE_HOST, XTOPT_PUT) overwrites
	// all 16 with the address then zeros. So a list created by
	// `-m recent` keeps whole IPv6 addresses, and one created by
	// `-m recent --mask 255.255.255.255` keeps their first 32 bits.
	MaskGiven bool
	Invert    bool

	// TTLPlusOne is set by the engine for rules in chains where the kernel
	// has an output device and the packet no socket (FORWARD,
	// POSTROUTING): recent_mt then uses TTL+1, "as seen before forwarding".
	TTLPlusOne bool
}

// ConfigError is recent_mt_check's -EINVAL: iptables-restore fails.
type ConfigError struct {
	Name   string
	Reason string
}

func (e *ConfigError) Error() string { return fmt.Sprintf("recent %q: %s", e.Name, e.Reason) }

// Registry holds the recent lists of one ruleset (one network namespace).
type Registry struct {
	hz           uint64
	ipListTot    uint32
	ipPktListTot uint32
	seed         maphash.Seed
	mu           sync.Mutex
	tables       map[string]*table
}

// NewRegistry returns a registry with the kernel's module defaults.
func NewRegistry(hz uint64) *Registry {
	if hz == 0 {
		hz = jiffies.DefaultHZ
	}
	return &Registry{hz: hz, ipListTot: DefaultIPListTot, ipPktListTot: DefaultIPPktListTot,
		seed: maphash.MakeSeed(), tables: make(map[string]*table)}
}

// SetModuleParams sets xt_recent's ip_list_tot and ip_pkt_list_tot, as
// `modprobe xt_recent ip_list_tot=...` would; call it before Get.
// recent_mt_init refuses ip_list_tot 0 and ip_pkt_list_tot >= 256.
func (r *Registry) SetModuleParams(ipListTot, ipPktListTot uint32) error {
	if ipListTot == 0 || ipPktListTot >= MaxNStamps {
		return &ConfigError{Name: "xt_recent", Reason: fmt.Sprintf("module parameters ip_list_tot=%d ip_pkt_list_tot=%d rejected (need ip_list_tot > 0, ip_pkt_list_tot < %d)", ipListTot, ipPktListTot, MaxNStamps)}
	}
	r.ipListTot, r.ipPktListTot = ipListTot, ipPktListTot
	return nil
}

// Match is one rule's handle on a shared list.
type Match struct {
	t        *table
	cfg      Config
	seconds  uint64 // info->seconds * HZ, computed in u32 as the kernel does
	family   uint8
	dest     bool
	set      bool
	update   bool
	check    bool
	remove   bool
	reap     bool
	rttl     bool
	hitcount uint32
}

func roundupPow2(x uint32) uint32 {
	if x <= 1 {
		return 1
	}
	return 1 << bits.Len32(x-1)
}

// Get is recent_mt_check: it validates cfg and returns the rule's handle
// on the list cfg.Name, creating it with cfg's mask if absent. Lists are
// looked up by name only, so iptables and ip6tables rules naming the same
// list share it (entries remember their family). If this rule needs more
// stamps than the list has, the list is flushed and grown, as the kernel
// does.
func (r *Registry) Get(cfg Config) (*Match, error) {
	bad := func(f string, a ...any) error { return &ConfigError{Name: cfg.Name, Reason: fmt.Sprintf(f, a...)} }
	ops := 0
	for _, b := range []bool{cfg.Set, cfg.Update, cfg.Check, cfg.Remove} {
		if b {
			ops++
		}
	}
	switch {
	case ops != 1:
		return nil, bad("exactly one of --set, --rcheck, --update, --remove is required")
	case (cfg.Set || cfg.Remove) && (cfg.Seconds != 0 || cfg.Hitcount != 0 || cfg.RTTL || cfg.Reap):
		return nil, bad("--set and --remove take no --seconds, --hitcount, --rttl or --reap")
	case cfg.Reap && cfg.Seconds == 0:
		return nil, bad("--reap requires --seconds")
	case cfg.Hitcount >= MaxNStamps:
		return nil, bad("hitcount (%d) is larger than allowed maximum (%d)", cfg.Hitcount, MaxNStamps-1)
	case cfg.Name == "" || len(cfg.Name) >= NameLen:
		return nil, bad("name must be 1..%d bytes", NameLen-1)
	case cfg.Family != packet.FamilyIPv4 && cfg.Family != packet.FamilyIPv6:
		return nil, bad("family must be ipv4 or ipv6")
	case cfg.RSource && cfg.RDest:
		return nil, bad("--rsource and --rdest are exclusive")
	}
	var nmask uint32
	switch {
	case r.ipPktListTot != 0 && cfg.Hitcount < r.ipPktListTot:
		nmask = roundupPow2(r.ipPktListTot) - 1
	case cfg.Hitcount != 0:
		nmask = roundupPow2(cfg.Hitcount) - 1
	default:
		nmask = 32 - 1
	}
	m := &Match{cfg: cfg, seconds: uint64(cfg.Seconds * uint32(r.hz)), dest: cfg.RDest,
		set: cfg.Set, update: cfg.Update, check: cfg.Check, remove: cfg.Remove,
		reap: cfg.Reap, rttl: cfg.RTTL, hitcount: cfg.Hitcount, family: nfprotoIPv4}
	if cfg.Family == packet.FamilyIPv6 {
		m.family = nfprotoIPv6
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.tables[cfg.Name]
	if t == nil {
		t = newTable(cfg, r.ipListTot, uint16(nmask), r.seed)
		r.tables[cfg.Name] = t
	} else if uint16(nmask) > t.nmask {
		t.mu.Lock()
		t.resize(uint16(nmask))
		t.mu.Unlock()
	}
	m.t = t
	return m, nil
}

type entry struct {
	addr    [16]byte
	family  uint8
	ttl     uint8
	index   uint16 // u16 as in struct recent_entry: wraps at 65536
	nstamps uint16
	next    int32
	lruPrev int32
	lruNext int32
	bucket  uint32
}

// table is struct recent_table with preallocated storage for ip_list_tot
// entries; mu plays the kernel's recent_lock.
type table struct {
	mu      sync.Mutex
	mask    [16]byte
	nmask   uint16
	tot     uint32
	seed    maphash.Seed
	ents    []entry
	stamps  []uint64 // (nmask+1) per entry
	buckets []int32
	free    int32
	count   uint32
	lruHead int32 // least recently updated
	lruTail int32
}

func newTable(cfg Config, tot uint32, nmask uint16, seed maphash.Seed) *table {
	t := &table{tot: tot, seed: seed}
	switch {
	case !cfg.Mask.IsValid():
		for i := range t.mask {
			t.mask[i] = 0xff
		}
	case cfg.Mask.Is4():
		// recent_mt_check copies the rule's 16-byte info->mask into the
		// new table, and recent_mt masks every family's address with it,
		// so an ip6tables rule sharing this list inherits it. Without
		// --mask, libxt_recent's init left bytes 4..15 at 0xff; an
		// explicit v4 --mask wrote zeros there.
		a := cfg.Mask.As4()
		copy(t.mask[:], a[:])
		if !cfg.MaskGiven {
			for i := 4; i < len(t.mask); i++ {
				t.mask[i] = 0xff
			}
		}
	default:
		t.mask = cfg.Mask.As16()
	}
	nb := uint32(1)
	for nb < 2*tot {
		nb <<= 1
	}
	t.buckets = make([]int32, nb)
	t.ents = make([]entry, tot)
	t.resize(nmask)
	return t
}

// resize flushes the list and sizes the stamp rings for nmask, as
// recent_table_flush then nstamps_max_mask = nstamp_mask do.
func (t *table) resize(nmask uint16) {
	t.nmask = nmask
	t.stamps = make([]uint64, len(t.ents)*(int(nmask)+1))
	for i := range t.buckets {
		t.buckets[i] = nilIdx
	}
	t.free = nilIdx
	for i := len(t.ents) - 1; i >= 0; i-- {
		t.ents[i].next = t.free
		t.free = int32(i)
	}
	t.count = 0
	t.lruHead, t.lruTail = nilIdx, nilIdx
}

func (t *table) stamp(i int32, slot int) *uint64 {
	return &t.stamps[int(i)*(int(t.nmask)+1)+slot]
}

// lookup is recent_entry_lookup: the first entry of the chain, in
// insertion order, with this family and address and a compatible TTL
// (equal, or either side 0).
func (t *table) lookup(addr *[16]byte, family, ttl uint8) int32 {
	b := uint32(maphash.Bytes(t.seed, addr[:])) & uint32(len(t.buckets)-1)
	for i := t.buckets[b]; i != nilIdx; i = t.ents[i].next {
		e := &t.ents[i]
		if e.family == family && e.addr == *addr && (ttl == e.ttl || ttl == 0 || e.ttl == 0) {
			return i
		}
	}
	return nilIdx
}

func (t *table) remove(i int32) {
	e := &t.ents[i]
	p := &t.buckets[e.bucket]
	for *p != i {
		p = &t.ents[*p].next
	}
	*p = e.next
	t.lruUnlink(i)
	e.next = t.free
	t.free = i
	t.count--
}

func (t *table) lruUnlink(i int32) {
	e := &t.ents[i]
	if e.lruPrev != nilIdx {
		t.ents[e.lruPrev].lruNext = e.lruNext
	} else {
		t.lruHead = e.lruNext
	}
	if e.lruNext != nilIdx {
		t.ents[e.lruNext].lruPrev = e.lruPrev
	} else {
		t.lruTail = e.lruPrev
	}
}

func (t *table) lruPush(i int32) {
	e := &t.ents[i]
	e.lruNext = nilIdx
	e.lruPrev = t.lruTail
	if t.lruTail != nilIdx {
		t.ents[t.lruTail].lruNext = i
	} else {
		t.lruHead = i
	}
	t.lruTail = i
}

// initEntry is recent_entry_init: evict the least recently updated entry
// when the list holds ip_list_tot, then add addr with one stamp.
func (t *table) initEntry(addr *[16]byte, family, ttl uint8, j uint64) int32 {
	if t.count >= t.tot {
		t.remove(t.lruHead)
	}
	i := t.free
	e := &t.ents[i]
	t.free = e.next
	e.addr, e.family, e.ttl = *addr, family, ttl
	*t.stamp(i, 0) = j
	e.nstamps, e.index = 1, 1
	// list_add_tail: keep chains in insertion order.
	b := uint32(maphash.Bytes(t.seed, addr[:])) & uint32(len(t.buckets)-1)
	e.bucket, e.next = b, nilIdx
	p := &t.buckets[b]
	for *p != nilIdx {
		p = &t.ents[*p].next
	}
	*p = i
	t.lruPush(i)
	t.count++
	return i
}

// update is recent_entry_update, with the kernel's u16 index: for a
// 65536-stamp ring the index wraps from 65535 to 0 after writing slot
// 65535, so nstamps never exceeds 65535 and that slot is never counted.
func (t *table) update(i int32, j uint64) {
	e := &t.ents[i]
	e.index &= t.nmask
	*t.stamp(i, int(e.index)) = j
	e.index++
	if uint16(e.index) > e.nstamps {
		e.nstamps = uint16(e.index)
	}
	t.lruUnlink(i)
	t.lruPush(i)
}

// lastStamp is e->stamps[e->index-1]. When the u16 index has wrapped to 0
// the kernel reads the word before the ring, i.e. the entry's own
// family/ttl/index/nstamps fields (x86-64 layout: family u16, ttl u8, a
// pad byte assumed zero, index u16, nstamps u16): a value so far in the
// future that --reap never removes the entry.
func (t *table) lastStamp(i int32) uint64 {
	e := &t.ents[i]
	if e.index == 0 {
		return uint64(e.family) | uint64(e.ttl)<<16 | uint64(e.nstamps)<<48
	}
	return *t.stamp(i, int(e.index)-1)
}

// Match is recent_mt at jiffy j. The kernel's only hotdrop (allocation
// failure) cannot happen here, so hotdrop is always false.
func (m *Match) Match(p *packet.Packet, j uint64) (match, hotdrop bool) {
	var addr [16]byte
	a := p.Src
	if m.dest {
		a = p.Dst
	}
	switch m.family {
	case nfprotoIPv4:
		if !a.Is4() {
			return false, false
		}
		v := a.As4()
		copy(addr[:4], v[:])
	default:
		if !a.Is6() {
			return false, false
		}
		addr = a.As16()
	}
	ttl := p.TTL
	if m.cfg.TTLPlusOne {
		ttl++
	}
	t := m.t
	t.mu.Lock()
	for i := range addr {
		addr[i] &= t.mask[i]
	}
	lt := uint8(0)
	if m.rttl {
		lt = ttl
	}
	ret := m.cfg.Invert
	i := t.lookup(&addr, m.family, lt)
	if i == nilIdx {
		if m.set {
			t.initEntry(&addr, m.family, ttl, j)
			ret = !ret
		}
		t.mu.Unlock()
		return ret, false
	}
	gone := false
	switch {
	case m.set:
		ret = !ret
	case m.remove:
		t.remove(i)
		t.mu.Unlock()
		return !ret, false
	default: // check or update
		time := j - m.seconds
		hits := uint32(0)
		e := &t.ents[i]
		for s := 0; s < int(e.nstamps); s++ {
			if m.seconds != 0 && jiffies.TimeAfter(time, *t.stamp(i, s)) {
				continue
			}
			hits++
			if m.hitcount == 0 || hits >= m.hitcount {
				ret = !ret
				break
			}
		}
		if m.reap {
			// recent_entry_reap: only the least recently updated entry.
			h := t.lruHead
			if jiffies.TimeAfter(time, t.lastStamp(h)) {
				t.remove(h)
				gone = h == i
			}
		}
	}
	if (m.set || (m.update && ret)) && !gone {
		// (If --reap just removed this very entry, the kernel updates a
		// freed entry and crashes on the poisoned LRU links; only
		// `! --update --reap` can get there. We skip the update.)
		t.update(i, j)
		t.ents[i].ttl = ttl
	}
	t.mu.Unlock()
	return ret, false
}

// Entries is the number of addresses in the list, for metrics.
func (m *Match) Entries() int {
	m.t.mu.Lock()
	defer m.t.mu.Unlock()
	return int(m.t.count)
}

// Contains reports whether addr (already masked) is in the list, for
// tests and state dumps.
func (m *Match) Contains(addr netip.Addr) bool {
	var k [16]byte
	fam := uint8(nfprotoIPv6)
	if addr.Is4() {
		v := addr.As4()
		copy(k[:4], v[:])
		fam = nfprotoIPv4
	} else {
		k = addr.As16()
	}
	m.t.mu.Lock()
	defer m.t.mu.Unlock()
	return m.t.lookup(&k, fam, 0) != nilIdx
}
