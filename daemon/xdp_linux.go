package daemon

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/sluice-project/sluice/engine/hashlimit"
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
	// RateLimitsInXDP compiles -m limit and -m hashlimit into the
	// program: buckets in BPF maps, with the kernel's arithmetic in
	// jiffies at HZ (0: the default). When the program runs alone
	// (--mode xdp, or auto without other fallback sites) all of them;
	// in the combined tier those no fallback site reaches
	// (xdp.RateLimitsAuto), the others staying sites whose buckets
	// userspace owns. Off, they are all fallback sites, which --mode
	// xdp refuses.
	RateLimitsInXDP bool
	HZ              uint64
	// Reload, when set, re-reads the rules and sets files (XDPDaemon.Reload,
	// and Daemon.Reload in the combined tier, which also needs
	// Reloaded.Program). An error (file:line:col for a bad file) leaves
	// everything running as it was.
	Reload func() (*Reloaded, error)
}

// XDPDaemon is a running XDP tier on one interface. Its counters live in
// the program's per-CPU map and are read at scrape time.
type XDPDaemon struct {
	cfg     XDPConfig
	ifc     *net.Interface
	tier    atomic.Pointer[tierGen]
	caps    *xdp.CaptureMaps
	capture xdpCaptureState
	link    link.Link
	mode    xdp.AttachMode
	lock    *os.File
	lockP   string
	started time.Time

	stopOnce sync.Once
	stopErr  error

	reloadMu               sync.Mutex
	reloadOK, reloadFailed atomic.Uint64
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
	if d.ifc, err = net.InterfaceByName(cfg.Iface); err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	if d.caps, err = xdp.NewCaptureMaps(); err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	tg, err := d.build(cfg.Rules4, cfg.Rules6, 0, nil)
	if err != nil {
		return nil, err
	}
	d.tier.Store(tg)
	spec := tg.spec
	if d.link, d.mode, err = attachXDP(tg.filter, d.ifc.Index); err != nil {
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

// build compiles and loads generation gen (no fallback sites allowed),
// sharing the capture maps and carrying over the rate-limit state of the
// generation it replaces (prev, nil at start).
func (d *XDPDaemon) build(rs4, rs6 *rules.Ruleset, gen uint8, prev *tierGen) (*tierGen, error) {
	xc := d.cfg
	xc.Rules4, xc.Rules6 = rs4, rs6
	spec, err := compileTier(xc, d.ifc, 0, gen, nil)
	if err != nil {
		return nil, err
	}
	if bl := spec.Blocking(); len(bl) > 0 {
		return nil, fmt.Errorf("daemon: %w (use --mode auto or afxdp); %d site(s):%s", ErrFallbackSites, len(bl), DescribeSites(bl))
	}
	var pf *xdp.Filter
	if prev != nil {
		pf = prev.filter
	}
	f, err := spec.LoadCarrying(nil, d.caps, pf)
	if err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	return &tierGen{gen: gen, spec: spec, filter: f, rules4: rs4, rules6: rs6}, nil
}

// Spec returns the compiled program's description.
func (d *XDPDaemon) Spec() *xdp.Spec { return d.tier.Load().spec }

// Counters reads the program's counters, summed over CPUs.
func (d *XDPDaemon) Counters() ([]uint64, error) { return d.tier.Load().readCounters() }

// HashlimitStats reports the hashlimit tables the program holds, for the
// metrics (nil on a read error: a scrape racing a reload).
func (d *XDPDaemon) HashlimitStats() []hashlimit.TableStats {
	s, _ := d.tier.Load().hashlimitStats()
	return s
}

// Report reads the counters now and returns the report the engine would
// give for the same packets (since the last reload).
func (d *XDPDaemon) Report() *report.Report {
	tg := d.tier.Load()
	vals, err := tg.readCounters()
	if err != nil {
		vals = nil
	}
	return tg.spec.Report(vals, tg.rules4, tg.rules6)
}

// Stats is what the control socket serves: no queues, the report.
func (d *XDPDaemon) Stats() *Stats {
	return &Stats{Iface: d.cfg.Iface, XDPMode: "compiled-" + string(d.mode), UptimeNs: int64(time.Since(d.started)),
		Report: d.Report(), Reloads: d.reloadOK.Load(), ReloadFailures: d.reloadFailed.Load()}
}

// Reload re-reads the files (XDPConfig.Reload), compiles and loads the
// new program and swaps it in on the bpf_link (see xdptier_linux.go). On
// error the running program stays attached and unchanged.
func (d *XDPDaemon) Reload() error {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	err := d.reload()
	if err != nil {
		d.reloadFailed.Add(1)
		d.logf("sluice: reload failed, the running ruleset stays: %v", err)
		return err
	}
	d.reloadOK.Add(1)
	return nil
}

func (d *XDPDaemon) reload() error {
	if d.cfg.Reload == nil {
		return errors.New("daemon: reload is not configured")
	}
	r, err := d.cfg.Reload()
	if err != nil {
		return err
	}
	old := d.tier.Load()
	xc := d.cfg
	xc.Rules4, xc.Rules6 = r.Rules4, r.Rules6
	same, err := compileTier(xc, d.ifc, 0, old.gen, nil)
	if err != nil {
		return err
	}
	if ok, err := updateInPlace(old, same); err != nil {
		d.logf("sluice: %s: updating sets in place failed, replacing the program: %v", d.cfg.Iface, err)
	} else if ok {
		d.tier.Store(&tierGen{gen: old.gen, spec: same, filter: old.filter, rules4: r.Rules4, rules6: r.Rules6, prev: old.prev})
		d.logf("sluice: %s: reloaded: set maps updated in place (generation %d, program unchanged)", d.cfg.Iface, old.gen)
		return nil
	}
	tg, err := d.build(r.Rules4, r.Rules6, old.gen+1, old)
	if err != nil {
		return err
	}
	if err := updateLink(d.link, tg.filter); err != nil {
		tg.close()
		return err
	}
	tg.prev = &tierGen{gen: old.gen, spec: old.spec, rules4: old.rules4, rules6: old.rules6}
	d.tier.Store(tg)
	d.capture.mu.Lock()
	if d.capture.session != nil {
		d.capture.x.rearm(d.capture.session, tg.spec)
	}
	d.capture.mu.Unlock()
	old.close()
	d.logf("sluice: %s: reloaded: XDP program replaced (generation %d, %d instructions, %d set map(s))", d.cfg.Iface, tg.gen, tg.spec.Instructions(), len(tg.spec.Sets))
	return nil
}

func (d *XDPDaemon) logf(format string, args ...any) {
	if d.cfg.Logf != nil {
		d.cfg.Logf(format, args...)
	}
}

// StartCapture arms the program's capture (xdp/capture.go): the program
// copies the selected frames, at most RatePerSec a second per CPU, to a
// perf buffer this daemon reads.
func (d *XDPDaemon) StartCapture(req CaptureRequest) (*captureSession, error) {
	d.capture.mu.Lock()
	defer d.capture.mu.Unlock()
	if d.capture.session != nil {
		return nil, errors.New("daemon: a capture is already running")
	}
	c, err := newCaptureSession(req, time.Now().UnixNano()-Monotonic())
	if err != nil {
		return nil, err
	}
	x, err := startXDPCapture(d.caps, c, d.tier.Load)
	if err != nil {
		return nil, err
	}
	d.capture.session, d.capture.x = c, x
	return c, nil
}

// EndCapture disarms the program's capture.
func (d *XDPDaemon) EndCapture(c *captureSession) {
	d.capture.mu.Lock()
	defer d.capture.mu.Unlock()
	if d.capture.session != c {
		return
	}
	d.capture.x.stop()
	d.capture.session, d.capture.x = nil, nil
}

// Stop detaches the program and releases everything. It may be called
// more than once.
func (d *XDPDaemon) Stop() error {
	d.stopOnce.Do(func() {
		var errs []error
		if d.link != nil {
			errs = append(errs, d.link.Close())
		}
		d.capture.mu.Lock()
		if d.capture.x != nil {
			d.capture.x.stop()
			d.capture.session, d.capture.x = nil, nil
		}
		d.capture.mu.Unlock()
		if tg := d.tier.Load(); tg != nil {
			errs = append(errs, tg.close())
		}
		if d.caps != nil {
			errs = append(errs, d.caps.Close())
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
		if tg := d.tier.Load(); tg != nil {
			tg.close()
		}
		if d.caps != nil {
			d.caps.Close()
		}
		if d.lock != nil {
			d.lock.Close()
		}
	})
}
