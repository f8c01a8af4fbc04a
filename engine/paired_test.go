package engine_test

import (
	"testing"

	"github.com/sluice-project/sluice/engine"
	"github.com/sluice-project/sluice/internal/benchmix"
	"github.com/sluice-project/sluice/packet"
)

// BenchmarkPaired compares two ways of judging the same traffic in one
// process, where the machine's drift affects both alike
// (benchmix.Paired: order-balanced turns on 8,192-packet slices; b.N turns
// each, -benchtime 1600x is what BENCHMARKS.md reports):
//
//   - prefilter: A without the prefilter (skip tables only), B with it;
//   - batch: A with Process, B with ProcessBatch.
//
// scripts/paired compares the engine at another commit with this one the
// same way.
func BenchmarkPaired(b *testing.B) {
	c := exampleCapture(b)
	ref := func() *engine.Program { return referenceProgramForTest(b) }
	ex := func() *engine.Program { return exampleProgramForTest(b, c) }
	refPkts := func() []packet.Packet { return benchmix.Decode(packet.LinkEthernet, benchmix.Reference()) }
	exPkts := func() []packet.Packet { return millionForTest(b) }
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
			var ptrs [engine.MaxBatch]*packet.Packet
			var nows [engine.MaxBatch]int64
			var out [engine.MaxBatch]engine.Verdict
			one := func(w *engine.Worker) benchmix.Turn {
				return func(i0 int) {
					for i := i0; i < i0+benchmix.Slice; i++ {
						w.Process(&pkts[i%len(pkts)], tc.t0+int64(i)*1000)
					}
				}
			}
			turnB := one(wb)
			if tc.batchB {
				turnB = func(i0 int) {
					for i := i0; i < i0+benchmix.Slice; i += engine.MaxBatch {
						for k := range ptrs {
							ptrs[k], nows[k] = &pkts[(i+k)%len(pkts)], tc.t0+int64(i+k)*1000
						}
						wb.ProcessBatch(ptrs[:], nows[:], out[:], nil)
					}
				}
			}
			benchmix.Paired(b, one(wa), turnB)
		})
	}
}
