package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/sluice-project/sluice/internal/benchlive"
	"github.com/sluice-project/sluice/internal/testnet"
)

// runBenchLive is `sluice bench live`: the same flood and the built-in
// ruleset against the kernel's iptables raw table, nft netdev ingress and
// sluice's live tiers, inside private network namespaces. cli/bench.go
// dispatches to it.
func runBenchLive(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench live", "bench live [--runs N] [--duration D] [--json]", stderr)
	asJSON := fs.Bool("json", false, "print the results as JSON")
	runs := fs.Int("runs", 3, "runs per configuration; the table shows medians")
	dur := fs.Duration("duration", 5*time.Second, "flood duration of each run (at most 1m)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return &exitError{code: 2, err: fmt.Errorf("unexpected argument %q", pos[0])}
	}
	if *runs < 1 || *runs > 100 {
		return &exitError{code: 2, err: errors.New("--runs must be between 1 and 100")}
	}
	if *dur <= 0 || *dur > time.Minute {
		return &exitError{code: 2, err: errors.New("--duration must be positive and at most 1m")}
	}
	if err := needLiveRoot(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	testnet.SweepStale()
	var progress io.Writer = stderr
	rep, err := benchlive.Run(ctx, benchlive.Options{Runs: *runs, Duration: *dur, Progress: progress})
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted (namespaces removed): %w", err)
		}
		return err
	}
	if *asJSON {
		return rep.WriteJSON(stdout)
	}
	fmt.Fprintln(stdout, "sluice bench live: the built-in example ruleset against an XDP live-frames flood, in private network namespaces")
	rep.WriteTable(stdout)
	return nil
}

// needLiveRoot explains why live commands cannot run here.
func needLiveRoot() error {
	if runtime.GOOS != "linux" {
		return &exitError{code: 1, err: errors.New("needs Linux (network namespaces, veth, XDP)")}
	}
	if os.Geteuid() != 0 {
		return &exitError{code: 1, err: errors.New("needs root: it creates network namespaces, loads XDP programs and iptables/nft rules (all private to namespaces it removes afterwards); run it with sudo")}
	}
	return nil
}
