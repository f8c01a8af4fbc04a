//go:build paired

package paired

import (
	"testing"

	"github.com/sluice-project/sluice/engine"
	"github.com/sluice-project/sluice/examples"
	"github.com/sluice-project/sluice/internal/benchmix"
	base "github.com/sluice-project/sluice/internal/paired/base"
	"github.com/sluice-project/sluice/packet"
)

// turns returns the Turns of REV's engine (A) and this tree's (B) on
// pkts: Process a packet at a time, or ProcessBatch when batch.
func turns(tb testing.TB, rulesName string, rulesText []byte, setsName string, setsText []byte, pkts []packet.Packet, t0 int64, batch bool) (a, b benchmix.Turn) {
	tb.Helper()
	rs, sets := benchmix.Ruleset(tb, rulesName, rulesText, setsName, setsText, t0)
	pa, err := base.Compile(base.Config{Rules4: rs, HZ: 250, InIface: "eth0"}, base.NewState(sets, 250), t0)
	if err != nil {
		tb.Fatal(err)
	}
	rs, sets = benchmix.Ruleset(tb, rulesName, rulesText, setsName, setsText, t0)
	pb, err := engine.Compile(engine.Config{Rules4: rs, HZ: 250, InIface: "eth0"}, engine.NewState(sets, 250), t0)
	if err != nil {
		tb.Fatal(err)
	}
	wa, wb := pa.NewWorker(), pb.NewWorker()
	if batch {
		var va [engine.MaxBatch]base.Verdict
		var vb [engine.MaxBatch]engine.Verdict
		a = batched(pkts, t0, func(ps []*packet.Packet, nows []int64) { wa.ProcessBatch(ps, nows, va[:], nil) })
		b = batched(pkts, t0, func(ps []*packet.Packet, nows []int64) { wb.ProcessBatch(ps, nows, vb[:], nil) })
		return a, b
	}
	a = func(i0 int) {
		for i := i0; i < i0+benchmix.Slice; i++ {
			wa.Process(&pkts[i%len(pkts)], t0+int64(i)*1000)
		}
	}
	b = func(i0 int) {
		for i := i0; i < i0+benchmix.Slice; i++ {
			wb.Process(&pkts[i%len(pkts)], t0+int64(i)*1000)
		}
	}
	return a, b
}

// batched is a Turn that judges its slice with process, MaxBatch
// packets at a time, as benchProcessBatch does.
func batched(pkts []packet.Packet, t0 int64, process func([]*packet.Packet, []int64)) benchmix.Turn {
	ps := make([]*packet.Packet, engine.MaxBatch)
	nows := make([]int64, engine.MaxBatch)
	return func(i0 int) {
		for i := i0; i < i0+benchmix.Slice; i += engine.MaxBatch {
			for k := range ps {
				ps[k], nows[k] = &pkts[(i+k)%len(pkts)], t0+int64(i+k)*1000
			}
			process(ps, nows)
		}
	}
}

// BenchmarkEngine is BenchmarkEngineReference, BenchmarkEngineExample1M
// and BenchmarkEngineExample1MBatch (engine/bench_test.go), REV's engine
// as A against this tree's as B.
func BenchmarkEngine(b *testing.B) {
	b.Run("reference", func(b *testing.B) {
		rulesText, setsText := benchmix.ReferenceFiles(b, "../../engine/testdata")
		pkts := benchmix.Decode(packet.LinkEthernet, benchmix.Reference())
		ta, tb := turns(b, "reference.rules", rulesText, "reference.ipset", setsText, pkts, 0, false)
		benchmix.Paired(b, ta, tb)
	})
	// The example with 1M sources, a packet at a time and with
	// ProcessBatch (as replay, bench engine and the AF_XDP workers run
	// it): the capture is decoded once for both.
	var (
		pkts []packet.Packet
		t0   int64
	)
	for _, batch := range []bool{false, true} {
		name := "example1M"
		if batch {
			name = "example1MBatch"
		}
		b.Run(name, func(b *testing.B) {
			if pkts == nil {
				pkts, t0 = benchmix.ExampleMillion(b), benchmix.ExampleCapture(b).TS[0]
			}
			ta, tb := turns(b, examples.Rules4Name, examples.Rules4, examples.SetsName, examples.Sets, pkts, t0, batch)
			benchmix.Paired(b, ta, tb)
		})
	}
}
