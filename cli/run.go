package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/sluice-project/sluice/afxdp"
	"github.com/sluice-project/sluice/daemon"
	"github.com/sluice-project/sluice/tap"
)

func init() {
	register(command{name: "run", summary: "filter an interface live (AF_XDP, re-injecting through a TAP)", run: runRun})
}

func runRun(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("run", "run --iface IF [--mode afxdp] [--queues all|0,3] [--tap sluice0] [--rules F] [--rules6 F] [--sets F] [--control PATH]", stderr)
	var rf ruleFlags
	rf.register(fs)
	iface := fs.String("iface", "", "interface to filter (required)")
	mode := fs.String("mode", "afxdp", "userspace tier: afxdp")
	queues := fs.String("queues", "all", "receive queues to serve: all, or a comma-separated list")
	tapName := fs.String("tap", tap.DefaultName, "TAP device accepted frames are re-injected through")
	control := fs.String("control", "", "control socket serving the counters (default /run/sluice/IFACE.sock)")
	lockDir := fs.String("lock-dir", daemon.DefaultLockDir, "directory of the per-interface lock files")
	copyMode := fs.Bool("copy", false, "bind the AF_XDP sockets in copy mode without trying zero-copy")
	frameSize := fs.Int("frame-size", 4096, "UMEM frame size: 2048 or 4096")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if *iface == "" {
		fs.Usage()
		return &exitError{code: 2, err: errors.New("--iface is required")}
	}
	if *mode != "afxdp" {
		return &exitError{code: 2, err: fmt.Errorf("--mode %q: only afxdp is implemented", *mode)}
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
	l, err := rf.load()
	if err != nil {
		return err
	}
	pr, _, err := l.compile(daemon.Monotonic())
	if err != nil {
		return err
	}
	sc := afxdp.Config{FrameSize: *frameSize}
	if *copyMode {
		sc.Mode = afxdp.ModeCopy
	}
	d, err := daemon.Start(daemon.Config{Iface: *iface, Queues: qs, TAP: *tapName, Program: pr, LockDir: *lockDir, Socket: sc,
		Logf: func(format string, a ...any) { fmt.Fprintf(stderr, format+"\n", a...) }})
	if err != nil {
		return err
	}
	defer d.Stop()
	ctl, err := daemon.ServeControl(*control, d.Stats)
	if err != nil {
		return err
	}
	defer ctl.Close()
	fmt.Fprintf(stderr, "sluice: serving counters on %s; SIGTERM or SIGINT stops\n", *control)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	<-ctx.Done()
	fmt.Fprintln(stderr, "sluice: stopping: detaching XDP, closing sockets, deleting", *tapName)
	return d.Stop()
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
