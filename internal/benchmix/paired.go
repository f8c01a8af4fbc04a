package benchmix

import (
	"slices"
	"testing"
	"time"
)

// Slice is how many packets a judge takes per turn in Paired.
const Slice = 8192

// Turn judges Slice packets of the traffic starting at packet i0 (the
// judge wraps around its packets as it needs).
type Turn func(i0 int)

// Paired compares judge b against judge a on the same traffic: bt.N times,
// each judges the same slice of Slice packets, one after the other, and
// reports B/A, the median over pairs of turns of the ratio of their summed
// times, with its quartiles, beside each side's ns/packet (an op, for
// the allocation figures, is one turn of both judges).
//
// The order alternates, A first on even turns and B first on odd ones,
// and a ratio is taken over both orders: the second judge of a turn finds
// the slice's packets in the caches the first one filled, which favoured
// whichever ran second by 2–5% on the reference mix. Timing each side
// alone, in separate runs, is useless on a machine whose speed drifts by
// more than the changes measured (BENCHMARKS.md).
func Paired(bt *testing.B, a, b Turn) {
	var sumA, sumB, pa, pb time.Duration
	ratios := make([]float64, 0, bt.N/2)
	run := func(t Turn, i0 int) time.Duration {
		st := time.Now()
		t(i0)
		return time.Since(st)
	}
	bt.ReportAllocs()
	bt.ResetTimer()
	for turn := 0; turn < bt.N; turn++ {
		i0 := turn * Slice
		var da, db time.Duration
		if turn%2 == 0 {
			da = run(a, i0)
			db = run(b, i0)
		} else {
			db = run(b, i0)
			da = run(a, i0)
		}
		sumA, sumB, pa, pb = sumA+da, sumB+db, pa+da, pb+db
		if turn%2 == 1 {
			ratios = append(ratios, float64(pb)/float64(pa))
			pa, pb = 0, 0
		}
	}
	bt.StopTimer()
	if len(ratios) == 0 {
		// b.N of 1: the framework's first probe; nothing to compare.
		return
	}
	slices.Sort(ratios)
	n := len(ratios)
	bt.ReportMetric(ratios[n/2], "B/A")
	bt.ReportMetric(ratios[n/4], "B/A-q1")
	bt.ReportMetric(ratios[(3*n)/4], "B/A-q3")
	bt.ReportMetric(float64(sumA.Nanoseconds())/float64(bt.N*Slice), "A-ns/packet")
	bt.ReportMetric(float64(sumB.Nanoseconds())/float64(bt.N*Slice), "B-ns/packet")
}
