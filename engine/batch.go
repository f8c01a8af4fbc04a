package engine

import "github.com/sluice-project/sluice/packet"

// MaxBatch is how many packets ProcessBatch looks ahead at once.
const MaxBatch = 64

// ProcessBatch judges pkts[k] at time now[k] into out[k], in order, as
// Process would one at a time; when rule is not nil, rule[k] gets what
// LastRuleIndex would have said right after pkts[k].
//
// What it adds is memory-level parallelism. Under a flood from random
// sources the lead set test, the one every packet takes first (an allow
// list or blocklist of prefixes, grouped with the other prefix sets on
// the same address: prefilter.go), misses the caches for each packet, and
// Process waits for each miss in turn. ProcessBatch first looks the
// test's answer up for the whole batch, in stages whose loads do not
// depend on each other (ipset's lookupBatch), so that the processor
// overlaps the misses of different packets, then runs each packet with
// its answer in hand. The lookup is a pure function of the address, so
// verdicts, counters and every stateful match come out exactly as from
// Process (TestBatchEqualsProcess). On the example with 1M random
// sources, paired against Process, the batch took 0.90–0.93× the time
// with a loop of plain lookups, and the staged lookup takes 0.88× of
// that loop's (scripts/paired, /example1MBatch).
func (w *Worker) ProcessBatch(pkts []*packet.Packet, now []int64, out []Verdict, rule []int32) {
	var lead, addrs [MaxBatch]uint32
	fp := w.pr.fam[packet.FamilyIPv4]
	ahead := fp != nil && fp.pf.grp != nil
	for len(pkts) > 0 {
		n := min(len(pkts), MaxBatch)
		if ahead {
			var v4 uint64 // the packets that have an answer
			for k, p := range pkts[:n] {
				a := p.Src
				if fp.pf.dst {
					a = p.Dst
				}
				addrs[k&(MaxBatch-1)] = 0
				if p.Family == packet.FamilyIPv4 && a.Is4() {
					addrs[k&(MaxBatch-1)] = addr4(a)
					v4 |= 1 << k
				}
			}
			fp.pf.grp.GroupLookup4Batch(addrs[:n], lead[:n])
			for k := range n {
				if v4>>k&1 == 0 {
					lead[k&(MaxBatch-1)] = 0
				}
			}
		}
		w.mu.Lock()
		for k, p := range pkts[:n] {
			w.lead = lead[k&(MaxBatch-1)]
			out[k] = w.judge(p, now[k])
			if rule != nil {
				rule[k] = w.lastRule
			}
		}
		w.lead = 0
		w.mu.Unlock()
		pkts, now, out = pkts[n:], now[n:], out[n:]
		if rule != nil {
			rule = rule[n:]
		}
	}
}
