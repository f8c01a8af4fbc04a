package ipset

// table64 maps the 64-bit keys of IPv4 hash:ip, hash:ip,port and
// hash:net,port elements (key4) to their element index. It is an
// open-addressing table with linear probing, built once when Parse is
// done (sets do not change afterwards): a key and its index share a slot,
// so a lookup costs one cache line where a Go map costs its control word
// and generic hashing, and it takes half the memory. A blocklist of
// millions of addresses is exactly the set a flood hammers.
type table64 struct {
	slots []slot64
	shift uint8 // 64 - log2(len(slots))
}

type slot64 struct {
	key uint64
	val int32 // element index, or -1: empty
}

// newTable64 builds the table of m, at most half full.
func newTable64(m map[uint64]int32) *table64 {
	bits := uint8(3)
	for 1<<bits < 2*len(m) {
		bits++
	}
	t := &table64{slots: make([]slot64, 1<<bits), shift: 64 - bits}
	for i := range t.slots {
		t.slots[i].val = -1
	}
	mask := uint64(len(t.slots) - 1)
	for k, v := range m {
		i := t.home(k)
		for t.slots[i].val >= 0 {
			i = (i + 1) & mask
		}
		t.slots[i] = slot64{key: k, val: v}
	}
	return t
}

// home is k's first slot: Fibonacci hashing takes the product's top
// bits, which every bit of the key (address, protocol, port) reaches.
func (t *table64) home(k uint64) uint64 { return (k * 0x9E3779B97F4A7C15) >> t.shift }

// get returns k's element index.
func (t *table64) get(k uint64) (int32, bool) {
	mask := uint64(len(t.slots) - 1)
	for i := t.home(k); ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.val < 0 {
			return 0, false
		}
		if s.key == k {
			return s.val, true
		}
	}
}
