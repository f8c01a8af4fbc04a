package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/sluice-project/sluice/daemon"
)

func init() {
	register(command{name: "stats", summary: "print a running daemon's counters", run: runStats})
}

func runStats(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("stats", "stats --control PATH [--json]", stderr)
	control := fs.String("control", "", "the daemon's control socket (sluice run --control)")
	asJSON := fs.Bool("json", false, "print the daemon's JSON as is")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if *control == "" {
		fs.Usage()
		return &exitError{code: 2, err: errors.New("--control is required")}
	}
	st, err := daemon.ReadControl(*control)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	writeStats(stdout, st)
	return nil
}

func writeStats(w io.Writer, st *daemon.Stats) {
	fmt.Fprintf(w, "interface %s, XDP %s mode, re-injecting through %s, up %.0fs\n\n", st.Iface, st.XDPMode, st.TAP, float64(st.UptimeNs)/1e9)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "queue\tzero-copy\trx\taccepted\tdropped\tmalformed\treinjected\ttap-errors\tring-full\tfill-empty\t")
	row := func(name string, q daemon.QueueStats) {
		fmt.Fprintf(tw, "%s\t%v\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", name, q.ZeroCopy, q.RX, q.Accepted, q.Dropped, q.Malformed, q.Reinjected, q.TAPErrors, q.RingFull, q.FillEmpty)
	}
	for _, q := range st.Queues {
		row(fmt.Sprint(q.Queue), q)
	}
	if len(st.Queues) > 1 {
		row("total", st.Totals())
	}
	tw.Flush()
	if st.Report != nil {
		fmt.Fprintln(w)
		for _, t := range st.Report.Tables {
			for _, c := range t.Chains {
				for _, r := range c.Rules {
					if r.Packets > 0 {
						fmt.Fprintf(w, "%s %s %s: %d packets, %d bytes: %s\n", t.Family, t.Table, c.Name, r.Packets, r.Bytes, r.Text)
					}
				}
			}
		}
	}
}
