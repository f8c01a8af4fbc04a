package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sluice-project/sluice/afxdp"
	"github.com/sluice-project/sluice/daemon"
	"github.com/sluice-project/sluice/engine"
	"github.com/sluice-project/sluice/engine/hashlimit"
	"github.com/sluice-project/sluice/metrics"
	"github.com/sluice-project/sluice/tap"
)

func init() {
	register(command{name: "run", summary: "filter an interface live (XDP, with AF_XDP and a TAP for what XDP cannot judge)", run: runRun})
}

func runRun(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("run", "run --iface IF [--mode auto|xdp|afxdp] [--queues all|0,3] [--tap sluice0] [--rules F] [--rules6 F] [--sets F] [--control PATH]", stderr)
	var rf ruleFlags
	rf.register(fs)
	iface := fs.String("iface", "", "interface to filter (required)")
	mode := fs.String("mode", "auto", "auto (the ruleset compiled to one XDP program; frames reaching a rule it cannot evaluate go to AF_XDP and the userspace engine resumes at that rule), xdp (the compiled program alone; refused when the ruleset has fallback sites), afxdp (every IP frame judged in userspace)")
	queues := fs.String("queues", "all", "receive queues to serve: all, or a comma-separated list")
	tapName := fs.String("tap", tap.DefaultName, "TAP device accepted frames are re-injected through")
	control := fs.String("control", "", "control socket serving the counters (default /run/sluice/IFACE.sock)")
	lockDir := fs.String("lock-dir", daemon.DefaultLockDir, "directory of the per-interface lock files")
	copyMode := fs.Bool("copy", false, "bind the AF_XDP sockets in copy mode without trying zero-copy")
	frameSize := fs.Int("frame-size", 4096, "UMEM frame size: 2048 or 4096")
	metricsAddr := fs.String("metrics", "", "serve Prometheus metrics on this address (e.g. 127.0.0.1:9465); off by default")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if *iface == "" {
		fs.Usage()
		return &exitError{code: 2, err: errors.New("--iface is required")}
	}
	switch *mode {
	case "afxdp", "xdp", "auto":
	default:
		return &exitError{code: 2, err: fmt.Errorf("--mode %q: want afxdp, xdp or auto", *mode)}
	}
	// -i in the rules compares against the filtered interface unless
	// --iface-name says otherwise.
	ifaceNameSet := false
	fs.Visit(func(f *flag.Flag) { ifaceNameSet = ifaceNameSet || f.Name == "iface-name" })
	if !ifaceNameSet {
		rf.iface = *iface
	}
	qs, err := parseQueues(*queues)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	if *control == "" {
		*control = filepath.Join(daemon.DefaultLockDir, *iface+".sock")
	}
	l, err := loadLive(&rf)
	if err != nil {
		return err
	}
	pr, ps, err := l.compile(daemon.Monotonic())
	if err != nil {
		return err
	}
	st := ps.st
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	// reloadXDP re-reads the files for the XDP tiers: the rulesets the
	// program is compiled from and the engine program (against the
	// running state) that resumes its fallback sites.
	reloadXDP := func() (*daemon.Reloaded, error) {
		nl, err := loadLive(&rf)
		if err != nil {
			return nil, err
		}
		npr, nps, err := nl.compileWith(st, daemon.Monotonic())
		if err != nil {
			return nil, err
		}
		return &daemon.Reloaded{Program: npr, Rules4: nps.r4, Rules6: nps.r6}, nil
	}
	if *mode != "afxdp" {
		// The program runs limit and hashlimit itself, except with
		// --hashlimit-full evict-oldest, which only userspace implements.
		xc := daemon.XDPConfig{Iface: *iface, InIface: rf.iface, Rules4: ps.r4, Rules6: ps.r6, LocalAddrs: l.localAddrs,
			LockDir: *lockDir, Logf: func(format string, a ...any) { logger.Info(fmt.Sprintf(format, a...)) }, Reload: reloadXDP,
			RateLimitsInXDP: l.hlFull == hashlimit.FullDrop, HZ: l.hz}
		xd, err := daemon.StartXDP(xc)
		switch {
		case err == nil:
			return serveXDP(xd, *control, *metricsAddr, logger)
		case *mode == "auto" && errors.Is(err, daemon.ErrFallbackSites):
			logger.Info("--mode auto: the ruleset has fallback sites: XDP judges what it can, AF_XDP and the userspace engine resume the rest at their site", "reason", err.Error())
		default:
			return err
		}
	}
	var xdpTier *daemon.XDPConfig
	if *mode == "auto" {
		// Rate limits no fallback site reaches run in the program
		// (xdp.RateLimitsAuto), unless --hashlimit-full evict-oldest.
		xdpTier = &daemon.XDPConfig{Iface: *iface, InIface: rf.iface, Rules4: ps.r4, Rules6: ps.r6, LocalAddrs: l.localAddrs, Reload: reloadXDP,
			RateLimitsInXDP: l.hlFull == hashlimit.FullDrop, HZ: l.hz}
	}
	// reload re-reads the files it was started with and compiles them
	// against the running state, so rate-limit state carries over.
	reload := func() (*engine.Program, error) {
		nl, err := loadLive(&rf)
		if err != nil {
			return nil, err
		}
		npr, _, err := nl.compileWith(st, daemon.Monotonic())
		return npr, err
	}
	sc := afxdp.Config{FrameSize: *frameSize}
	if *copyMode {
		sc.Mode = afxdp.ModeCopy
	}
	d, err := daemon.Start(daemon.Config{Iface: *iface, Queues: qs, TAP: *tapName, Program: pr, LockDir: *lockDir, Socket: sc,
		Logf:    func(format string, a ...any) { logger.Info(fmt.Sprintf(format, a...)) },
		Reload:  reload,
		LogSink: func(level int, line []byte) { logger.Warn("LOG", "level", level, "line", string(line)) },
		XDP:     xdpTier,
	})
	if err != nil {
		return err
	}
	defer d.Stop()
	ctl, err := daemon.ServeControl(*control, d)
	if err != nil {
		return err
	}
	defer ctl.Close()
	if *metricsAddr != "" {
		ln, err := net.Listen("tcp", *metricsAddr)
		if err != nil {
			return fmt.Errorf("--metrics: %w", err)
		}
		srv := &http.Server{Handler: metricsMux(d, st), ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
		logger.Info("serving Prometheus metrics", "addr", ln.Addr().String(), "path", "/metrics")
	}
	logger.Info("serving the control socket; SIGHUP reloads, SIGTERM or SIGINT stops", "control", *control)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	for {
		select {
		case <-hup:
			d.Reload() // the daemon logs the outcome; a failure keeps the ruleset
		case <-ctx.Done():
			logger.Info("stopping: detaching XDP, closing sockets, deleting the TAP", "tap", *tapName)
			return d.Stop()
		}
	}
}

// metricsMux serves /metrics for a running daemon, reading every counter
// at scrape time.
func metricsMux(d *daemon.Daemon, st *engine.State) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", metrics.Handler(metrics.Sources{
		Report: d.Report,
		Queues: func() []metrics.QueueStats {
			s := d.Stats()
			var out []metrics.QueueStats
			for _, q := range s.Queues {
				out = append(out, metrics.QueueStats{Iface: s.Iface, Queue: q.Queue, RX: q.RX, Accepted: q.Accepted,
					Dropped: q.Dropped, Reinjected: q.Reinjected, RingFull: q.RingFull, FillEmpty: q.FillEmpty,
					RXDropped: q.XSK.RxDropped, InvalidDesc: q.XSK.RxInvalidDescs})
			}
			return out
		},
		Hashlimit: func() []hashlimit.TableStats { return d.HashlimitStats(st) },
		Reloads: func() (uint64, uint64) {
			s := d.Stats()
			return s.Reloads, s.ReloadFailures
		},
	}))
	return mux
}

// parseQueues parses --queues: "all" (nil) or a list of queue indexes.
func parseQueues(s string) ([]int, error) {
	if s == "all" || s == "" {
		return nil, nil
	}
	var qs []int
	seen := map[int]bool{}
	for _, f := range strings.Split(s, ",") {
		q, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || q < 0 || q > 4095 {
			return nil, fmt.Errorf("--queues: %q is not a queue index", f)
		}
		if !seen[q] {
			seen[q] = true
			qs = append(qs, q)
		}
	}
	return qs, nil
}

// serveXDP serves the control socket and metrics of a running XDP tier
// until SIGTERM or SIGINT.
func serveXDP(d *daemon.XDPDaemon, control, metricsAddr string, logger *slog.Logger) error {
	defer d.Stop()
	ctl, err := daemon.ServeControl(control, d)
	if err != nil {
		return err
	}
	defer ctl.Close()
	if metricsAddr != "" {
		ln, err := net.Listen("tcp", metricsAddr)
		if err != nil {
			return fmt.Errorf("--metrics: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", metrics.Handler(metrics.Sources{Report: d.Report, Hashlimit: d.HashlimitStats}))
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
		logger.Info("serving Prometheus metrics", "addr", ln.Addr().String(), "path", "/metrics")
	}
	logger.Info("XDP tier running; serving the control socket; SIGHUP reloads, SIGTERM or SIGINT stops", "control", control)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	for {
		select {
		case <-hup:
			d.Reload() // the daemon logs the outcome; a failure keeps the program
		case <-ctx.Done():
			logger.Info("stopping: detaching XDP")
			return d.Stop()
		}
	}
}

// loadLive is rf.load for the daemon, whose packet clock is
// daemon.Monotonic.
func loadLive(rf *ruleFlags) (*loaded, error) {
	l, err := rf.load()
	if err != nil {
		return nil, err
	}
	l.wallOffset = daemon.WallOffset()
	return l, nil
}
