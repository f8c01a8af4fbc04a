package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/sluice-project/sluice/daemon"
)

func init() {
	register(command{name: "stats", summary: "print a running daemon's counters", run: runStats})
}

func runStats(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("stats", "stats --control PATH [--json]", stderr)
	control := fs.String("control", "", "the daemon's control socket (sluice run --control)")
	asJSON := fs.Bool("json", false, "print the daemon's JSON as is")
	watch := fs.Bool("watch", false, "refresh every second until interrupted, with per-second rates")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if *control == "" {
		fs.Usage()
		return &exitError{code: 2, err: errors.New("--control is required")}
	}
	if *watch {
		return watchStats(*control, stdout)
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

// watchStats redraws the counters once a second, with the rates since
// the previous sample, until interrupted.
func watchStats(control string, w io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var prev *daemon.Stats
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		st, err := daemon.ReadControl(control)
		if err != nil {
			return err
		}
		fmt.Fprint(w, "\x1b[H\x1b[2J") // home, clear
		if prev != nil {
			secs := float64(st.UptimeNs-prev.UptimeNs) / 1e9
			if secs > 0 {
				a, b := st.Totals(), prev.Totals()
				fmt.Fprintf(w, "rates: rx %.0f/s, dropped %.0f/s, re-injected %.0f/s\n\n",
					float64(a.RX-b.RX)/secs, float64(a.Dropped-b.Dropped)/secs, float64(a.Reinjected-b.Reinjected)/secs)
			}
		}
		writeStats(w, st)
		prev = st
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
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
		printReport(w, st.Report)
	}
}
