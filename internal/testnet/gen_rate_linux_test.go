package testnet

import (
	"context"
	"os"
	"testing"
	"time"
)

// TestGeneratorRate measures the generator into a veth whose peer drops
// everything in native XDP. Opt-in: SLUICE_GEN_RATE=1 (it loads both
// CPUs for a few seconds).
func TestGeneratorRate(t *testing.T) {
	if os.Getenv("SLUICE_GEN_RATE") == "" {
		t.Skip("set SLUICE_GEN_RATE=1 to measure the generator's rate")
	}
	for _, c := range []struct {
		name     string
		random   bool
		batch    uint32
		threaded bool
		kind     FloodKind
		workers  int
	}{
		{"syn-fixed-src", false, 1 << 16, false, FloodSYNClosed, 1},
		{"mix-random-src-1worker", true, 1 << 16, false, FloodMix, 1},
		{"mix-random-src-2workers", true, 1 << 16, false, FloodMix, 2},
		{"mix-random-src-2workers-threaded-napi", true, 1 << 16, true, FloodMix, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			topo := newTopologyForTest(t, TopologyOptions{ThreadedNAPI: c.threaded})
			attachXDPDrop(t, topo)
			f, err := topo.NewFlood(FloodOptions{Kind: c.kind, RandomSource: c.random, Batch: c.batch, Workers: c.workers})
			if err != nil {
				t.Fatal(err)
			}
			before, _ := topo.ServerStats()
			start := time.Now()
			sent, err := f.Run(context.Background(), 50_000_000, 2*time.Second)
			el := time.Since(start)
			if err != nil {
				t.Fatal(err)
			}
			after, _ := topo.ServerStats()
			t.Logf("sent %.2f Mpps, server rx %.2f Mpps (rx_dropped %d)", float64(sent)/el.Seconds()/1e6,
				float64(after.RxPackets-before.RxPackets)/el.Seconds()/1e6, after.RxDropped-before.RxDropped)
		})
	}
}
