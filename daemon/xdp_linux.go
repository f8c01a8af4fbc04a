package daemon

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/sluice-project/sluice/report"
	"github.com/sluice-project/sluice/rules"
	"github.com/sluice-project/sluice/xdp"
)

// XDPConfig configures the XDP tier alone: the ruleset compiled into one
// XDP program (package xdp) attached to the interface, no AF_XDP sockets,
// no TAP. Accepted frames go on to the kernel as if sluice were not there.
type XDPConfig struct {
	// Iface is the interface to filter.
	Iface string
	// InIface is the name -i compares against (default Iface).
	InIface string
	// Rules4 and Rules6 are the rulesets, parsed with their sets.
	Rules4, Rules6 *rules.Ruleset
	// LocalAddrs are the host's addresses (martian sources).
	LocalAddrs []netip.Addr
	// LockDir holds <iface>.lock (default DefaultLockDir).
	LockDir string
	// Logf, when set, receives one line per notable event.
	Logf func(format string, args ...any)
}

// XDPDaemon is a running XDP tier on one interface. Its counters live in
// the program's per-CPU map and are read at scrape time.
type XDPDaemon struct {
	cfg     XDPConfig
	spec    *xdp.Spec
	filter  *xdp.Filter
	link    link.Link
	mode    xdp.AttachMode
	lock    *os.File
	lockP   string
	started time.Time

	stopOnce sync.Once
	stopErr  error
}

// ErrFallbackSites is wrapped by StartXDP when the ruleset needs the
// userspace tier somewhere.
var ErrFallbackSites = errors.New("the ruleset has fallback sites and no userspace tier is running")

// CompileXDP compiles cfg's rulesets for the interface (its MAC and
// cfg.InIface baked in). It must run in the interface's namespace.
func CompileXDP(cfg XDPConfig) (*xdp.Spec, int, error) { return compileXDP(cfg, 0) }

// compileXDP is CompileXDP with an XSKMAP of xskQueues entries.
func compileXDP(cfg XDPConfig, xskQueues int) (*xdp.Spec, int, error) {
	ifc, err := net.InterfaceByName(cfg.Iface)
	if err != nil {
		return nil, 0, fmt.Errorf("daemon: %w", err)
	}
	in := cfg.InIface
	if in == "" {
		in = cfg.Iface
	}
	opts := xdp.CompileOptions{InIface: in, LocalAddrs: cfg.LocalAddrs, XSKQueues: xskQueues}
	if len(ifc.HardwareAddr) == 6 {
		opts.LocalMAC = ifc.HardwareAddr
	}
	spec, err := xdp.Compile(cfg.Rules4, cfg.Rules6, opts)
	if err != nil {
		return nil, 0, fmt.Errorf("daemon: %w", err)
	}
	return spec, ifc.Index, nil
}

// DescribeSites lists sites one a line, for errors and logs.
func DescribeSites(sites []xdp.FallbackSite) string {
	var b strings.Builder
	for _, s := range sites {
		if s.Rule != nil {
			fmt.Fprintf(&b, "\n\t%s %s line %d: %s (%s)", s.Table, s.Chain, s.Rule.Line, s.Rule.Text, s.Reason)
		} else {
			fmt.Fprintf(&b, "\n\t%s", s.Reason)
		}
	}
	return b.String()
}

// StartXDP compiles the rulesets, loads the program with its set maps
// and attaches it through a bpf_link owned by the process (fail-open: if
// the process dies, the kernel detaches it). A ruleset with fallback
// sites (Spec.Blocking) is refused: it needs the userspace tier.
func StartXDP(cfg XDPConfig) (_ *XDPDaemon, err error) {
	if cfg.LockDir == "" {
		cfg.LockDir = DefaultLockDir
	}
	d := &XDPDaemon{cfg: cfg, started: time.Now()}
	defer func() {
		if err != nil {
			d.Stop()
		}
	}()
	lk := &Daemon{cfg: Config{Iface: cfg.Iface, LockDir: cfg.LockDir}}
	if err := lk.acquireLock(); err != nil {
		return nil, err
	}
	d.lock, d.lockP = lk.lock, lk.lockP
	spec, ifindex, err := CompileXDP(cfg)
	if err != nil {
		return nil, err
	}
	if bl := spec.Blocking(); len(bl) > 0 {
		return nil, fmt.Errorf("daemon: %w (use --mode auto or afxdp); %d site(s):%s", ErrFallbackSites, len(bl), DescribeSites(bl))
	}
	d.spec = spec
	if d.filter, err = spec.Load(); err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	if d.link, d.mode, err = attachXDP(d.filter, ifindex); err != nil {
		if errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("daemon: %s already has an XDP program attached (another sluice daemon, or another XDP user): %w", cfg.Iface, err)
		}
		return nil, fmt.Errorf("daemon: %w", err)
	}
	if cfg.Logf != nil {
		cfg.Logf("sluice: %s: compiled XDP filter attached in %s mode (%d instructions, %d set map(s))", cfg.Iface, d.mode, spec.Instructions(), len(spec.Sets))
	}
	return d, nil
}

// attachXDP attaches in driver mode, or generic mode when the driver has
// no XDP support.
func attachXDP(f *xdp.Filter, ifindex int) (link.Link, xdp.AttachMode, error) {
	l, err := link.AttachXDP(link.XDPOptions{Program: f.Program, Interface: ifindex, Flags: link.XDPDriverMode})
	if err == nil {
		return l, xdp.AttachDriver, nil
	}
	l, err2 := link.AttachXDP(link.XDPOptions{Program: f.Program, Interface: ifindex, Flags: link.XDPGenericMode})
	if err2 == nil {
		return l, xdp.AttachGeneric, nil
	}
	return nil, "", fmt.Errorf("attach XDP: driver mode: %v; generic mode: %w", err, err2)
}

// Spec returns the compiled program's description.
func (d *XDPDaemon) Spec() *xdp.Spec { return d.spec }

// Counters reads the program's counters, summed over CPUs.
func (d *XDPDaemon) Counters() ([]uint64, error) { return d.filter.ReadCounters() }

// Report reads the counters now and returns the report the engine would
// give for the same packets.
func (d *XDPDaemon) Report() *report.Report {
	vals, err := d.filter.ReadCounters()
	if err != nil {
		vals = nil
	}
	return d.spec.Report(vals, d.cfg.Rules4, d.cfg.Rules6)
}

// Stats is what the control socket serves: no queues, the report.
func (d *XDPDaemon) Stats() *Stats {
	return &Stats{Iface: d.cfg.Iface, XDPMode: "compiled-" + string(d.mode), UptimeNs: int64(time.Since(d.started)),
		Report: d.Report()}
}

// Reload is not supported by the XDP tier yet.
func (d *XDPDaemon) Reload() error {
	return errors.New("daemon: reload is not supported in --mode xdp yet (restart sluice)")
}

// StartCapture is not supported by the XDP tier.
func (d *XDPDaemon) StartCapture(CaptureRequest) (*captureSession, error) {
	return nil, errors.New("daemon: capture is not supported in --mode xdp")
}

// EndCapture does nothing.
func (d *XDPDaemon) EndCapture(*captureSession) {}

// Stop detaches the program and releases everything. It may be called
// more than once.
func (d *XDPDaemon) Stop() error {
	d.stopOnce.Do(func() {
		var errs []error
		if d.link != nil {
			errs = append(errs, d.link.Close())
		}
		if d.filter != nil {
			errs = append(errs, d.filter.Close())
		}
		if d.lock != nil {
			os.Remove(d.lockP)
			errs = append(errs, d.lock.Close())
		}
		d.stopErr = errors.Join(errs...)
	})
	return d.stopErr
}

// Abandon closes every descriptor without orderly teardown, as exit does.
func (d *XDPDaemon) Abandon() {
	d.stopOnce.Do(func() {
		if d.link != nil {
			d.link.Close()
		}
		if d.filter != nil {
			d.filter.Close()
		}
		if d.lock != nil {
			d.lock.Close()
		}
	})
}
