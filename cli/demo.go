package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/sluice-project/sluice/internal/benchlive"
	"github.com/sluice-project/sluice/internal/testnet"
)

func init() {
	register(command{name: "demo", summary: "see it work: a live flood against a web server, the kernel alone then with sluice (root)", run: runDemo})
}

func runDemo(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", "demo [--kernel D] [--sluice D] [--tier xdp|afxdp]", stderr)
	kernelDur := fs.Duration("kernel", 8*time.Second, "length of the kernel-alone phase")
	sluiceDur := fs.Duration("sluice", 12*time.Second, "length of the with-sluice phase")
	tier := fs.String("tier", "", "live tier for the sluice phase (default: xdp if registered, else afxdp)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return &exitError{code: 2, err: fmt.Errorf("unexpected argument %q", pos[0])}
	}
	if *kernelDur <= 0 || *kernelDur > 2*time.Minute || *sluiceDur <= 0 || *sluiceDur > 2*time.Minute {
		return &exitError{code: 2, err: errors.New("phase durations must be positive and at most 2m")}
	}
	if err := needLiveRoot(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	testnet.SweepStale()

	fmt.Fprintln(stdout, "sluice demo: building a private topology (attacker + web client namespace --veth--> web server namespace)...")
	env, err := benchlive.NewEnv(benchlive.EnvOptions{Prefix: "demo", Seed: uint64(time.Now().UnixNano()),
		Workers: 2, CallDuration: 200 * time.Millisecond})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := env.Close(); cerr != nil {
			fmt.Fprintf(stderr, "sluice demo: cleanup: %v\n", cerr)
		} else {
			fmt.Fprintln(stdout, "cleaned up: namespaces, veth, programs and rules removed")
		}
	}()
	setup, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := env.LoadIptables(setup); err != nil {
		return fmt.Errorf("load the example into iptables-legacy: %w", err)
	}
	client, err := env.StartClient(testnet.ClientOptions{Interval: 20 * time.Millisecond, Workers: 2,
		MaxDuration: *kernelDur + *sluiceDur + time.Minute})
	if err != nil {
		return err
	}
	defer client.Stop()
	fmt.Fprintf(stdout, "web server on %s; legitimate client: 2 workers, one new connection per request every 20ms, 1s timeout\n", env.URL)
	fmt.Fprintf(stdout, "attack: %s flood from random spoofed sources, XDP live frames, two generator threads, faster than the server can receive\n", testnet.FloodMix)
	time.Sleep(500 * time.Millisecond)

	v := &demoView{out: stdout, tty: isTerminal(stdout)}
	kernel, err := v.phase(ctx, env, client, "kernel alone (iptables-legacy raw, the built-in example)", *kernelDur, nil)
	if err != nil {
		return err
	}
	name := *tier
	if name == "" {
		name = benchlive.TierXDP
		if benchlive.LookupRunner(name) == nil {
			name = benchlive.TierAFXDP
		}
	}
	var withSluice *phaseSummary
	if runner := benchlive.LookupRunner(name); runner != nil {
		if err := env.AddAccounting(setup); err != nil {
			return err
		}
		att, err := runner(setup, env.Topo.Server, env.Topo.ServerIf)
		if err != nil {
			return fmt.Errorf("attach sluice %s: %w", name, err)
		}
		detach := att.Stop
		withSluice, err = v.phase(ctx, env, client, "with sluice ("+name+") in front of the kernel", *sluiceDur, detach)
		if derr := detach(); derr != nil {
			err = errors.Join(err, fmt.Errorf("detach sluice: %w", derr))
		}
		if err != nil {
			return err
		}
	} else {
		fmt.Fprintf(stdout, "\nwith sluice: no live tier is registered yet (AF_XDP and XDP are being written), so the live phase is skipped.\n")
		fmt.Fprintf(stdout, "offline instead: the engine replaying the same attack frames through the same rules, one core...\n")
		res, err := benchlive.EngineRate(testnet.FloodMix, 4096, 2*time.Second)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "  engine: %.2f Mpps on one core (%d frames, %d dropped, %d accepted), decode included\n",
			res.PPS/1e6, res.Frames, res.Dropped, res.Accepted)
	}
	fmt.Fprintln(stdout, "\nsummary")
	kernel.print(stdout, "kernel alone")
	if withSluice != nil {
		withSluice.print(stdout, "with sluice")
		if kernel.dropped > 0 {
			fmt.Fprintf(stdout, "  sluice dropped %.1fx the attack packets per second the kernel's rules did.\n", withSluice.dropped/kernel.dropped)
		}
		fmt.Fprintf(stdout, "  note: the flood generator, the web client and server and the filter share this machine's %d CPUs,\n"+
			"  and a request whose packets wait too long times out after 1s; legitimate success here measures\n"+
			"  that contention as much as the filter (BENCHMARKS.md has the details).\n", runtime.NumCPU())
	}
	return ctx.Err()
}

type demoView struct {
	out io.Writer
	tty bool
}

type phaseSummary struct {
	offered, received, dropped float64 // pps
	legit                      testnet.ClientStats
	top                        []benchlive.RuleCounter
}

func (s *phaseSummary) print(w io.Writer, name string) {
	fmt.Fprintf(w, "  %-13s attack offered %6.3f Mpps, reached the server %6.3f Mpps, dropped %6.3f Mpps; legit %5.1f%% ok of %d, p50 %v, p99 %v\n",
		name, s.offered/1e6, s.received/1e6, s.dropped/1e6, 100*s.legit.SuccessRate(), s.legit.Requests,
		s.legit.P50.Round(10*time.Microsecond), s.legit.P99.Round(10*time.Microsecond))
}

// phase floods for d, refreshing the view every second. With detach
// nil the drops are iptables' DROP counters; otherwise the packets the
// server's veth received but the kernel's raw PREROUTING never saw.
func (v *demoView) phase(ctx context.Context, env *benchlive.Env, client *testnet.Client, title string, d time.Duration, detach func() error) (*phaseSummary, error) {
	dropped := func() (uint64, []benchlive.RuleCounter, error) {
		rs, err := env.RawCounters(ctx)
		if err != nil {
			return 0, nil, err
		}
		if detach == nil {
			return benchlive.Dropped(rs), rs, nil
		}
		st, err := env.Topo.ServerStats()
		return st.RxPackets - benchlive.Accounted(rs), rs, err
	}
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	sent0 := env.Flood.Sent()
	st0, err := env.Topo.ServerStats()
	if err != nil {
		return nil, err
	}
	d0, rs0, err := dropped()
	if err != nil {
		return nil, err
	}
	mark := client.Mark()
	start := time.Now()
	go func() {
		_, err := env.Flood.Run(fctx, 1_000_000_000, d)
		done <- err
	}()
	prevSent, prevRx, prevDrop, prevRS, prevMark := sent0, st0.RxPackets, d0, rs0, mark
	prevT := start
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var ferr error
	running := true
	for running {
		select {
		case ferr = <-done:
			running = false
		case <-ctx.Done():
			cancel()
			<-done
			return nil, ctx.Err()
		case <-tick.C:
		}
		now := time.Now()
		sec := now.Sub(prevT).Seconds()
		sent := env.Flood.Sent()
		st, err := env.Topo.ServerStats()
		if err != nil {
			return nil, err
		}
		dr, rs, err := dropped()
		if err != nil {
			return nil, err
		}
		m := client.Mark()
		legit := client.StatsSince(prevMark)
		if sec > 0.2 {
			v.render(title, now.Sub(start), d, float64(sent-prevSent)/sec, float64(st.RxPackets-prevRx)/sec, float64(dr-prevDrop)/sec,
				verdictRules(benchlive.TopDeltas(prevRS, rs, len(rs)), 4), sec, legit, detach != nil)
		}
		prevSent, prevRx, prevDrop, prevRS, prevMark, prevT = sent, st.RxPackets, dr, rs, m, now
	}
	if ferr != nil {
		return nil, ferr
	}
	el := time.Since(start).Seconds()
	st1, err := env.Topo.ServerStats()
	if err != nil {
		return nil, err
	}
	d1, rs1, err := dropped()
	if err != nil {
		return nil, err
	}
	return &phaseSummary{
		offered:  float64(env.Flood.Sent()-sent0) / el,
		received: float64(st1.RxPackets-st0.RxPackets) / el,
		dropped:  float64(d1-d0) / el,
		legit:    client.StatsSince(mark),
		top:      benchlive.TopDeltas(rs0, rs1, 4),
	}, nil
}

func (v *demoView) render(title string, at, total time.Duration, offered, received, dropped float64, top []benchlive.RuleCounter, sec float64, legit testnet.ClientStats, sluice bool) {
	var b strings.Builder
	if v.tty {
		b.WriteString("\033[H\033[2J")
	} else {
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "== %s  [%2.0fs / %.0fs]\n", title, at.Seconds(), total.Seconds())
	fmt.Fprintf(&b, "attack   offered %7.3f Mpps   reached the server %7.3f Mpps   dropped %7.3f Mpps\n", offered/1e6, received/1e6, dropped/1e6)
	if sluice {
		b.WriteString("         (dropped = received by the veth but never seen by the kernel's raw PREROUTING)\n")
	} else {
		b.WriteString("top rules by hits/s (iptables-legacy-save -c):\n")
		for _, r := range top {
			fmt.Fprintf(&b, "  %10.0f/s  %-6s %s\n", float64(r.Packets)/sec, r.Target, truncate(r.Label(), 70))
		}
	}
	lat := "-"
	if legit.Succeeded > 0 {
		lat = fmt.Sprintf("p50 %v  p99 %v", legit.P50.Round(10*time.Microsecond), legit.P99.Round(10*time.Microsecond))
	}
	fmt.Fprintf(&b, "legit    %5.1f%% ok (%d/%d requests this second)   %s\n", 100*legit.SuccessRate(), legit.Succeeded, legit.Requests, lat)
	io.WriteString(v.out, b.String())
}

// verdictRules keeps the first n rules that decide (DROP or ACCEPT), not
// the jumps to user chains.
func verdictRules(rs []benchlive.RuleCounter, n int) []benchlive.RuleCounter {
	var out []benchlive.RuleCounter
	for _, r := range rs {
		if (r.Target == "DROP" || r.Target == "ACCEPT") && len(out) < n {
			out = append(out, r)
		}
	}
	return out
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
