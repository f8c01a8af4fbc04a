package afxdp

import (
	"fmt"
	"sync/atomic"
	"testing"
)

// sharedIdx stands for the two index words the kernel shares.
type sharedIdx struct{ prod, cons, flags atomic.Uint32 }

func TestProducerRingFreeAndWrap(t *testing.T) {
	for _, start := range []uint32{0, 1<<32 - 5} {
		var sh sharedIdx
		sh.prod.Store(start)
		sh.cons.Store(start)
		var r ring
		r.initProducer(&sh.prod, &sh.cons, &sh.flags, 8)
		if got := r.free(1); got != 8 {
			t.Fatalf("start %d: free %d, want 8", start, got)
		}
		idx, got := r.reserve(5)
		if idx != start || got != 5 {
			t.Fatalf("reserve(5) = %d,%d", idx, got)
		}
		// Not yet submitted: the kernel sees nothing.
		if sh.prod.Load() != start {
			t.Fatal("reserve published the producer index")
		}
		r.submit(5)
		if sh.prod.Load() != start+5 {
			t.Fatalf("producer %d after submit, want %d", sh.prod.Load(), start+5)
		}
		// Only 3 left until the kernel consumes.
		if _, got := r.reserve(5); got != 3 {
			t.Fatalf("reserve with 3 free got %d", got)
		}
		r.submit(3)
		if _, got := r.reserve(1); got != 0 {
			t.Fatalf("full ring reserved %d", got)
		}
		// The kernel consumes 4: the cached consumer is refreshed
		// only when the cache says full.
		sh.cons.Store(start + 4)
		idx, got = r.reserve(6)
		if got != 4 || idx != start+8 {
			t.Fatalf("after kernel consumed 4: reserve(6) = %d,%d, want %d,4", idx, got, start+8)
		}
		if idx&r.mask != start&r.mask {
			t.Fatalf("slot %d does not wrap to %d", idx&r.mask, start&r.mask)
		}
	}
}

func TestConsumerRingPeekRelease(t *testing.T) {
	for _, start := range []uint32{0, 1<<32 - 3} {
		var sh sharedIdx
		sh.prod.Store(start)
		sh.cons.Store(start)
		var r ring
		r.initConsumer(&sh.prod, &sh.cons, &sh.flags, 16)
		if _, got := r.peek(64); got != 0 {
			t.Fatalf("empty ring gave %d", got)
		}
		sh.prod.Store(start + 10) // the kernel produced 10
		idx, got := r.peek(4)
		if idx != start || got != 4 {
			t.Fatalf("peek(4) = %d,%d", idx, got)
		}
		// The cache serves the rest without reloading.
		sh.prod.Store(start + 12)
		idx, got = r.peek(64)
		if idx != start+4 || got != 6 {
			t.Fatalf("peek(64) from cache = %d,%d, want %d,6", idx, got, start+4)
		}
		r.release(10)
		if sh.cons.Load() != start+10 {
			t.Fatalf("consumer %d, want %d", sh.cons.Load(), start+10)
		}
		// Cache empty: now it reloads and sees the 2 new ones.
		idx, got = r.peek(64)
		if idx != start+10 || got != 2 {
			t.Fatalf("peek after reload = %d,%d", idx, got)
		}
	}
}

func TestNeedWakeupAndSizes(t *testing.T) {
	var sh sharedIdx
	var r ring
	r.initProducer(&sh.prod, &sh.cons, &sh.flags, 4)
	if r.needWakeup() {
		t.Fatal("flag clear but needWakeup")
	}
	sh.flags.Store(ringNeedWakeup)
	if !r.needWakeup() {
		t.Fatal("flag set but no needWakeup")
	}
	r.flags = nil
	if r.needWakeup() {
		t.Fatal("no flags word but needWakeup")
	}
	for n, want := range map[int]bool{0: false, 1: true, 3: false, 64: true, 2048: true, 3000: false, -4: false} {
		if validRingSize(n) != want {
			t.Errorf("validRingSize(%d) = %v", n, !want)
		}
	}
}

// TestProducerConsumerPair runs a producer ring against a consumer ring
// on the same indexes from two goroutines, as the application and the
// kernel share the fill ring, and checks every value arrives in order.
func TestProducerConsumerPair(t *testing.T) {
	var sh sharedIdx
	const size, total = 64, 100000
	slots := make([]uint64, size)
	var p, c ring
	p.initProducer(&sh.prod, &sh.cons, nil, size)
	c.initConsumer(&sh.prod, &sh.cons, nil, size)
	done := make(chan error, 1)
	go func() {
		next := uint64(0)
		for next < total {
			idx, got := c.peek(17)
			for i := uint32(0); i < got; i++ {
				if v := atomic.LoadUint64(&slots[(idx+i)&c.mask]); v != next {
					done <- fmt.Errorf("got %d, want %d", v, next)
					return
				}
				next++
			}
			c.release(got)
		}
		done <- nil
	}()
	for v := uint64(0); v < total; {
		idx, got := p.reserve(uint32(min(23, total-v)))
		for i := uint32(0); i < got; i++ {
			atomic.StoreUint64(&slots[(idx+i)&p.mask], v)
			v++
		}
		p.submit(got)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
