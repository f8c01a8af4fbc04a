package difftest

import (
	"fmt"
	"strings"

	"github.com/sluice-project/sluice/oracle"
	"github.com/sluice-project/sluice/report"
)

// egressChains are compared by nobody: sluice filters ingress only, and
// the oracle host's own replies (ICMPv6 errors, RSTs to on-link sources
// such as fe80::1 or 192.0.2.50) go through OUTPUT and POSTROUTING.
var egressChains = map[string]bool{"OUTPUT": true, "POSTROUTING": true, "FORWARD": true}

// ingressOnly drops the egress rows from a diff and recomputes Equal.
func ingressOnly(d *report.Diff) *report.Diff {
	out := &report.Diff{Equal: len(d.Problems) == 0, Problems: d.Problems}
	for _, r := range d.Rows {
		if egressChains[r.Chain] {
			continue
		}
		out.Rows = append(out.Rows, r)
		if !r.Equal {
			out.Equal = false
		}
	}
	return out
}

// countingCase counts, per family, what reaches raw PREROUTING and filter
// INPUT: the receive path alone, without the generated rules.
func countingCase(c Case) Case {
	const t = "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A PREROUTING\nCOMMIT\n*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT\nCOMMIT\n"
	out := Case{}
	if len(c.Rules4) > 0 {
		out.Rules4 = []byte(t)
	}
	if len(c.Rules6) > 0 {
		out.Rules6 = []byte(t)
	}
	return out
}

// isolate finds frames that, sent alone, make the kernel and sluice
// disagree (group testing: halves that agree are dropped). It gives up
// after budget oracle runs.
func isolate(c Case, frames []oracle.Frame, hz uint64, budget int) (bad []int, runs int) {
	var rec func(idx []int)
	rec = func(idx []int) {
		if len(idx) == 0 || runs >= budget {
			return
		}
		fs := make([]oracle.Frame, len(idx))
		for i, k := range idx {
			fs[i] = frames[k]
		}
		runs++
		d, err := compareKernel(c, fs, hz)
		if err != nil || ingressOnly(d).Equal {
			return
		}
		if len(idx) == 1 {
			bad = append(bad, idx[0])
			return
		}
		rec(idx[:len(idx)/2])
		rec(idx[len(idx)/2:])
	}
	all := make([]int, len(frames))
	for i := range all {
		all[i] = i
	}
	rec(all)
	return bad, runs
}

// describeIsolated renders isolated frames with the counters each gets.
func describeIsolated(c Case, frames []oracle.Frame, bad []int, hz uint64) string {
	var b strings.Builder
	for _, k := range bad {
		fmt.Fprintf(&b, "frame %d: %x\n", k, frames[k].Data)
		if d, err := compareKernel(c, frames[k:k+1], hz); err == nil {
			for _, line := range strings.Split(strings.TrimSpace(FormatDiff(ingressOnly(d))), "\n") {
				fmt.Fprintf(&b, "    %s\n", line)
			}
		}
	}
	return b.String()
}
