package engine_test

import (
	"slices"
	"testing"
	"time"

	"github.com/sluice-project/sluice/engine"
	"github.com/sluice-project/sluice/packet"
)

// BenchmarkPaired compares two ways of judging the same traffic in one
// process, where the machine's drift affects both alike: A and B take
// turns on 8,192-packet slices, b.N turns each (-benchtime 400x is what
// BENCHMARKS.md reports), and the median of the per-turn time ratios B/A
// is reported with its quartiles, beside each side's ns/packet.
//
//   - prefilter: A without the prefilter (skip tables only), B with it;
//   - batch: A with Process, B with ProcessBatch.
func BenchmarkPaired(b *testing.B) {
	c := exampleCapture(b)
	ref := func() *engine.Program { return referenceProgramForTest(b) }
	ex := func() *engine.Program { return exampleProgramForTest(b, c) }
	refPkts := func() []packet.Packet { return decodeAll(packet.LinkEthernet, referenceMix()) }
	exPkts := func() []packet.Packet { return millionForTest(c) }
	for _, tc := range []struct {
		name    string
		prog    func() *engine.Program
		pkts    func() []packet.Packet
		t0      int64
		batchB  bool
		prefilt bool
	}{
		{"prefilter/reference", ref, refPkts, 0, false, true},
		{"prefilter/example1M", ex, exPkts, c.ts[0], false, true},
		{"batch/reference", ref, refPkts, 0, true, false},
		{"batch/example1M", ex, exPkts, c.ts[0], true, false},
	} {
		b.Run(tc.name, func(b *testing.B) {
			pa, pb := tc.prog(), tc.prog()
			if tc.prefilt {
				engine.DisablePrefilter(pa)
			}
			pkts := tc.pkts()
			wa, wb := pa.NewWorker(), pb.NewWorker()
			const slice = 8192
			var ptrs [engine.MaxBatch]*packet.Packet
			var nows [engine.MaxBatch]int64
			var out [engine.MaxBatch]engine.Verdict
			var ta, tb time.Duration
			ratios := make([]float64, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for turn := 0; turn < b.N; turn++ {
				i0 := turn * slice
				st := time.Now()
				for i := i0; i < i0+slice; i++ {
					wa.Process(&pkts[i%len(pkts)], tc.t0+int64(i)*1000)
				}
				da := time.Since(st)
				st = time.Now()
				if tc.batchB {
					for i := i0; i < i0+slice; i += engine.MaxBatch {
						for k := range ptrs {
							ptrs[k], nows[k] = &pkts[(i+k)%len(pkts)], tc.t0+int64(i+k)*1000
						}
						wb.ProcessBatch(ptrs[:], nows[:], out[:], nil)
					}
				} else {
					for i := i0; i < i0+slice; i++ {
						wb.Process(&pkts[i%len(pkts)], tc.t0+int64(i)*1000)
					}
				}
				db := time.Since(st)
				ta, tb = ta+da, tb+db
				ratios = append(ratios, float64(db)/float64(da))
			}
			b.StopTimer()
			slices.Sort(ratios)
			n := len(ratios)
			b.ReportMetric(ratios[n/2], "B/A")
			b.ReportMetric(ratios[n/4], "B/A-q1")
			b.ReportMetric(ratios[(3*n)/4], "B/A-q3")
			b.ReportMetric(float64(ta.Nanoseconds())/float64(n*slice), "A-ns/packet")
			b.ReportMetric(float64(tb.Nanoseconds())/float64(n*slice), "B-ns/packet")
		})
	}
}
