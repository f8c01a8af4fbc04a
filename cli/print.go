package cli

import (
	"fmt"
	"io"

	"github.com/sluice-project/sluice/report"
)

// printReport prints counters in the spirit of `iptables -L -v -n -x`: one
// block per table and chain, exact numbers, and the rule as the operator
// wrote it with its line number.
func printReport(w io.Writer, r *report.Report) {
	for _, t := range r.Tables {
		fmt.Fprintf(w, "Table %s (%s)\n", t.Table, t.Family)
		for _, c := range t.Chains {
			if c.Policy != "-" {
				fmt.Fprintf(w, "Chain %s (policy %s %d packets, %d bytes)\n", c.Name, c.Policy, c.PolicyPackets, c.PolicyBytes)
			} else {
				fmt.Fprintf(w, "Chain %s (user chain)\n", c.Name)
			}
			if len(c.Rules) > 0 {
				fmt.Fprintf(w, "%10s %12s %6s  %s\n", "pkts", "bytes", "line", "rule")
			}
			for _, ru := range c.Rules {
				fmt.Fprintf(w, "%10d %12d %6d  %s\n", ru.Packets, ru.Bytes, ru.Line, ru.Text)
			}
			fmt.Fprintln(w)
		}
	}
	fmt.Fprintf(w, "packets %d: accepted %d, dropped %d (hotdropped %d), malformed %d, not filtered %d\n",
		r.Packets, r.Accepted, r.Dropped, r.Hotdropped, r.Malformed, r.NotFiltered)
	for reason, n := range r.MalformedBy {
		fmt.Fprintf(w, "  malformed %s: %d\n", reason, n)
	}
	if r.PacketsPerSecond > 0 {
		fmt.Fprintf(w, "replay: %.0f packets/s end to end (read, decode, evaluate; one core)\n", r.PacketsPerSecond)
	}
}
