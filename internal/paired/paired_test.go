//go:build paired

package paired

import (
	"io"
	"testing"

	"github.com/sluice-project/sluice/engine"
	"github.com/sluice-project/sluice/examples"
	"github.com/sluice-project/sluice/internal/benchmix"
	base "github.com/sluice-project/sluice/internal/paired/base"
	"github.com/sluice-project/sluice/packet"
	"github.com/sluice-project/sluice/pcapio"
)

// turns returns the Turns of REV's engine (A) and this tree's (B) on pkts.
func turns(tb testing.TB, rulesName string, rulesText []byte, setsName string, setsText []byte, pkts []packet.Packet, t0 int64) (a, b benchmix.Turn) {
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

// BenchmarkEngine is BenchmarkEngineReference and BenchmarkEngineExample1M
// (engine/bench_test.go), REV's engine as A against this tree's as B.
func BenchmarkEngine(b *testing.B) {
	b.Run("reference", func(b *testing.B) {
		rulesText, setsText := benchmix.ReferenceFiles(b, "../../engine/testdata")
		pkts := benchmix.Decode(packet.LinkEthernet, benchmix.Reference())
		ta, tb := turns(b, "reference.rules", rulesText, "reference.ipset", setsText, pkts, 0)
		benchmix.Paired(b, ta, tb)
	})
	b.Run("example1M", func(b *testing.B) {
		r, err := pcapio.NewReader(examples.Capture())
		if err != nil {
			b.Fatal(err)
		}
		var frames [][]byte
		var t0 int64
		for {
			f, _, ts, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			if frames == nil {
				t0 = ts
			}
			frames = append(frames, append([]byte(nil), f...))
		}
		pkts := benchmix.Decode(r.Link(), benchmix.RandomSources(r.Link(), frames, 1<<20))
		ta, tb := turns(b, examples.Rules4Name, examples.Rules4, examples.SetsName, examples.Sets, pkts, t0)
		benchmix.Paired(b, ta, tb)
	})
}
