package engine_test

import (
	"reflect"
	"testing"

	"github.com/sluice-project/sluice/engine"
	"github.com/sluice-project/sluice/packet"
)

// TestBatchEqualsProcess: ProcessBatch is Process. The traffic cases
// (trafficCasesForTest) go through one program a packet at a time and
// through another, with its own state, in batches of several sizes;
// every verdict, every deciding rule and every counter must agree.
func TestBatchEqualsProcess(t *testing.T) {
	for _, tc := range trafficCasesForTest(t) {
		for _, size := range []int{1, engine.MaxBatch, 3*engine.MaxBatch + 5} {
			t.Run(tc.name, func(t *testing.T) {
				checkBatchEqualsProcess(t, tc.compile(t), tc.compile(t), tc.pkts, tc.t0, tc.step, size)
			})
		}
	}
}

// checkBatchEqualsProcess runs pkts (step ns apart) through one with
// Process and through many with ProcessBatch in chunks of size.
func checkBatchEqualsProcess(t *testing.T, one, many *engine.Program, pkts []packet.Packet, t0, step int64, size int) {
	t.Helper()
	w1, wb := one.NewWorker(), many.NewWorker()
	ptrs := make([]*packet.Packet, size)
	nows := make([]int64, size)
	out := make([]engine.Verdict, size)
	rule := make([]int32, size)
	for base := 0; base < len(pkts); base += size {
		n := min(size, len(pkts)-base)
		for k := 0; k < n; k++ {
			ptrs[k], nows[k] = &pkts[base+k], t0+int64(base+k)*step
		}
		wb.ProcessBatch(ptrs[:n], nows[:n], out[:n], rule[:n])
		for k := 0; k < n; k++ {
			v := w1.Process(ptrs[k], nows[k])
			_, r := w1.LastRuleIndex()
			if v != out[k] || r != rule[k] {
				t.Fatalf("batches of %d, packet %d: Process %v by rule %d, ProcessBatch %v by rule %d", size, base+k, v, r, out[k], rule[k])
			}
		}
		f1, l1 := w1.LastRuleIndex()
		fb, lb := wb.LastRuleIndex()
		if f1 != fb || l1 != lb {
			t.Fatalf("batches of %d, after packet %d: LastRuleIndex %v %d, after ProcessBatch %v %d", size, base+n-1, f1, l1, fb, lb)
		}
	}
	a, b := one.Report(w1), many.Report(wb)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("batches of %d: reports differ:\nProcess      %+v\nProcessBatch %+v", size, a, b)
	}
}
