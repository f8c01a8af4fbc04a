package afxdp

import "sync/atomic"

// ring is the index half of one ring: pointers to the shared producer,
// consumer and flags words, and this side's cached indexes.
//
// For a ring this process produces into (fill, TX), cachedProd is our
// producer index including reserved but unsubmitted slots, and
// cachedCons is the kernel's consumer index plus the ring size, so that
// cachedCons-cachedProd is the number of free slots. For a ring this
// process consumes (RX, completion), cachedCons is our consumer index
// including peeked but unreleased slots, and cachedProd the kernel's
// producer index as last read.
type ring struct {
	producer *atomic.Uint32
	consumer *atomic.Uint32
	flags    *atomic.Uint32 // nil when the kernel has no need_wakeup flags
	size     uint32
	mask     uint32

	cachedProd uint32
	cachedCons uint32
}

// initProducer sets up a ring this process produces into.
func (r *ring) initProducer(prod, cons, flags *atomic.Uint32, size uint32) {
	*r = ring{producer: prod, consumer: cons, flags: flags, size: size, mask: size - 1}
	r.cachedProd = prod.Load()
	r.cachedCons = cons.Load() + size
}

// initConsumer sets up a ring this process consumes from.
func (r *ring) initConsumer(prod, cons, flags *atomic.Uint32, size uint32) {
	*r = ring{producer: prod, consumer: cons, flags: flags, size: size, mask: size - 1}
	r.cachedProd = prod.Load()
	r.cachedCons = cons.Load()
}

// free returns the number of slots free for producing, reloading the
// consumer index only when the cache shows fewer than n.
func (r *ring) free(n uint32) uint32 {
	free := r.cachedCons - r.cachedProd
	if free >= n {
		return free
	}
	r.cachedCons = r.consumer.Load() + r.size
	return r.cachedCons - r.cachedProd
}

// reserve reserves up to n slots for producing and returns the first
// index and how many it got.
func (r *ring) reserve(n uint32) (idx, got uint32) {
	got = min(r.free(n), n)
	idx = r.cachedProd
	r.cachedProd += got
	return idx, got
}

// submit publishes n reserved slots to the kernel (release store).
func (r *ring) submit(n uint32) {
	if n > 0 {
		r.producer.Store(r.producer.Load() + n)
	}
}

// avail returns how many entries (at most n) are ready to consume,
// reloading the producer index only when the cache is empty.
func (r *ring) avail(n uint32) uint32 {
	entries := r.cachedProd - r.cachedCons
	if entries == 0 {
		r.cachedProd = r.producer.Load()
		entries = r.cachedProd - r.cachedCons
	}
	return min(entries, n)
}

// peek takes up to n ready entries and returns the first index and how
// many it took.
func (r *ring) peek(n uint32) (idx, got uint32) {
	got = r.avail(n)
	idx = r.cachedCons
	r.cachedCons += got
	return idx, got
}

// release hands n consumed slots back to the kernel (release store).
func (r *ring) release(n uint32) {
	if n > 0 {
		r.consumer.Store(r.consumer.Load() + n)
	}
}

// needWakeup reports whether the kernel asked to be woken up
// (XDP_RING_NEED_WAKEUP) for this ring.
func (r *ring) needWakeup() bool {
	return r.flags != nil && r.flags.Load()&ringNeedWakeup != 0
}

// ringNeedWakeup is XDP_RING_NEED_WAKEUP.
const ringNeedWakeup = 1

// addrRing is a fill or completion ring: descriptors are UMEM addresses.
type addrRing struct {
	ring
	descs []uint64
}

// descRing is an RX or TX ring of xdp_desc.
type descRing struct {
	ring
	descs []Desc
}

// validRingSize reports whether n is a power of two, as the kernel
// requires of every ring.
func validRingSize(n int) bool { return n > 0 && n&(n-1) == 0 }
