package daemon

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/sluice-project/sluice/afxdp"
	"github.com/sluice-project/sluice/engine"
	"github.com/sluice-project/sluice/engine/hashlimit"
	"github.com/sluice-project/sluice/packet"
	"github.com/sluice-project/sluice/report"
	"github.com/sluice-project/sluice/rules"
	"github.com/sluice-project/sluice/tap"
	"github.com/sluice-project/sluice/xdp"
)

// Config configures a Daemon.
type Config struct {
	// Iface is the interface to filter.
	Iface string
	// Queues are the receive queues to serve; nil means all of them.
	Queues []int
	// TAP is the re-injection device's name (default tap.DefaultName).
	TAP string
	// Program is the compiled ruleset, compiled with Monotonic() as load
	// time and Iface (or the TAP's name) as the input interface.
	Program *engine.Program
	// LockDir holds <iface>.lock (default DefaultLockDir).
	LockDir string
	// Socket is the template for each queue's socket (Ifindex and Queue
	// are filled in).
	Socket afxdp.Config
	// Batch is the RX batch size (default 64).
	Batch int
	// Logf, when set, receives one line per notable event.
	Logf func(format string, args ...any)
	// Reload, when set, re-reads the rules and sets files and compiles
	// them (against the running program's engine.State, so rate-limit
	// state carries over); Daemon.Reload swaps the result in.
	Reload func() (*engine.Program, error)
	// LogSink, when set, receives LOG and NFLOG target lines.
	LogSink engine.LogSink
	// XDP, when set, makes this the combined tier (sluice run --mode
	// auto): instead of the redirect program, Start attaches the rulesets
	// compiled to one XDP program (package xdp) with an XSKMAP holding
	// the queues' sockets. The program judges every frame it can in the
	// kernel; a frame reaching a fallback site is redirected to its
	// queue's socket with the site in the XDP metadata, and the queue's
	// worker resumes the traversal exactly there (engine
	// Worker.ProcessFrom), so every frame is evaluated once and every
	// rule counted once. Program must be compiled from the same
	// rulesets (InIface, LocalAddrs alike). Only Iface, InIface, Rules4,
	// Rules6, LocalAddrs, RateLimitsInXDP, HZ (the engine's) and Reload
	// are used: with RateLimitsInXDP the rate limits no fallback site
	// reaches run in the program (xdp.RateLimitsAuto), which userspace
	// then never evaluates. Daemon.Reload replaces
	// both programs through XDP.Reload (see xdptier_linux.go), and
	// Config.Reload is not used.
	XDP *XDPConfig
}

// Daemon is a running userspace tier on one interface.
type Daemon struct {
	cfg     Config
	ifindex int
	ifc     *net.Interface
	tap     *tap.Device
	red     *xdp.Redirect
	link    link.Link
	mode    xdp.AttachMode
	queues  []*queue
	lock    *os.File
	lockP   string
	stop    atomic.Bool
	wg      sync.WaitGroup
	started time.Time

	stopOnce sync.Once
	stopErr  error

	live                   *engine.Live
	reloadMu               sync.Mutex
	reloadOK, reloadFailed atomic.Uint64
	capture                atomic.Pointer[captureSession]
	captureMu              sync.Mutex

	// The combined tier (Config.XDP): the compiled program's current
	// generation (its counters, and the resume point of each of its
	// fallback sites), the capture maps and the running program capture.
	tier atomic.Pointer[tierGen]
	caps *xdp.CaptureMaps
	xcap *xdpCapture
}

type queue struct {
	id   int
	d    *Daemon
	sock *afxdp.Socket
	// w is this queue's engine worker; the queue's goroutine replaces it
	// when a reload swaps the program, Stats reads it.
	w atomic.Pointer[engine.Worker]
	// prevW, in the combined tier, is the worker of the previous
	// generation's program, for the frames it handed over before a
	// reload (only the queue's goroutine uses it).
	prevW *engine.Worker
	tap   *tap.Device
	dec   packet.Decoder

	rx, accepted, dropped, malformed, reinjected, tapErrors, batches atomic.Uint64
	// resumed and noSite count, in the combined tier, the frames that
	// came with a valid fallback site and those that did not.
	resumed, noSite atomic.Uint64
}

// Start sets everything up and starts one worker per queue. It must run
// in the interface's network namespace; the workers need not (sockets
// and devices keep the namespace they were created in). On error,
// whatever was set up is torn down.
func Start(cfg Config) (_ *Daemon, err error) {
	if cfg.Program == nil {
		return nil, errors.New("daemon: no program")
	}
	if cfg.TAP == "" {
		cfg.TAP = tap.DefaultName
	}
	if cfg.LockDir == "" {
		cfg.LockDir = DefaultLockDir
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 64
	}
	d := &Daemon{cfg: cfg, started: time.Now(), live: engine.NewLive(cfg.Program)}
	defer func() {
		if err != nil {
			d.Stop()
		}
	}()
	if err := d.acquireLock(); err != nil {
		return nil, err
	}
	ifc, err := net.InterfaceByName(cfg.Iface)
	if err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	d.ifindex, d.ifc = ifc.Index, ifc
	queues := cfg.Queues
	if queues == nil {
		n, err := rxQueues(cfg.Iface)
		if err != nil {
			return nil, err
		}
		for i := 0; i < n; i++ {
			queues = append(queues, i)
		}
	}
	if len(queues) == 0 {
		return nil, errors.New("daemon: no queues to serve")
	}
	maxQ := 0
	for _, q := range queues {
		maxQ = max(maxQ, q)
	}
	if d.tap, err = tap.Create(tap.Config{Name: cfg.TAP, Like: cfg.Iface}); err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	// setSocket puts a queue's socket in the attached program's XSKMAP.
	var setSocket func(q, fd int) error
	if cfg.XDP != nil {
		if d.caps, err = xdp.NewCaptureMaps(); err != nil {
			return nil, fmt.Errorf("daemon: %w", err)
		}
		tg, err := d.buildTier(ifc, maxQ+1, cfg.Program, cfg.XDP.Rules4, cfg.XDP.Rules6, 0, nil, nil)
		if err != nil {
			return nil, err
		}
		d.tier.Store(tg)
		setSocket = func(q, fd int) error { return tg.filter.XSKs.Put(uint32(q), uint32(fd)) }
	} else {
		if d.red, err = xdp.NewRedirect(xdp.RedirectOptions{Queues: maxQ + 1, Fallback: xdp.ActionPass}); err != nil {
			return nil, fmt.Errorf("daemon: %w", err)
		}
		setSocket = d.red.SetSocket
	}
	for _, id := range queues {
		sc := cfg.Socket
		sc.Ifindex, sc.Queue = d.ifindex, id
		sock, err := afxdp.Open(sc)
		if err != nil {
			return nil, fmt.Errorf("daemon: queue %d: %w", id, err)
		}
		q := &queue{id: id, d: d, sock: sock, tap: d.tap,
			dec: packet.Decoder{Link: packet.LinkEthernet, LocalMAC: [6]byte(ifc.HardwareAddr), HasLocalMAC: true}}
		q.w.Store(d.newWorker(cfg.Program))
		d.queues = append(d.queues, q)
		if err := setSocket(id, sock.FD()); err != nil {
			return nil, fmt.Errorf("daemon: queue %d: XSKMAP: %w", id, err)
		}
	}
	if tg := d.tier.Load(); tg != nil {
		d.link, d.mode, err = attachXDP(tg.filter, d.ifindex)
	} else {
		d.link, d.mode, err = d.red.Attach(d.ifindex)
	}
	if err != nil {
		if errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("daemon: %s already has an XDP program attached (another sluice daemon, or another XDP user): %w", cfg.Iface, err)
		}
		return nil, fmt.Errorf("daemon: %w", err)
	}
	if tg := d.tier.Load(); tg != nil {
		d.logf("sluice: %s: compiled XDP filter attached in %s mode (%d instructions, %d fallback site(s) resumed in userspace), %d queue(s) %v, re-injecting through %s",
			cfg.Iface, d.mode, tg.spec.Instructions(), len(tg.spec.Fallback), len(queues), queues, d.tap.Name())
	} else {
		d.logf("sluice: %s: XDP attached in %s mode, %d queue(s) %v, re-injecting through %s", cfg.Iface, d.mode, len(queues), queues, d.tap.Name())
	}
	for _, q := range d.queues {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			q.run(&d.stop, cfg.Batch)
		}()
	}
	return d, nil
}

func (d *Daemon) logf(format string, args ...any) {
	if d.cfg.Logf != nil {
		d.cfg.Logf(format, args...)
	}
}

// acquireLock takes an exclusive flock on LockDir/<iface>.lock, which
// the kernel releases when the process dies.
func (d *Daemon) acquireLock() error {
	if err := os.MkdirAll(d.cfg.LockDir, 0o700); err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	p := filepath.Join(d.cfg.LockDir, d.cfg.Iface+".lock")
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("daemon: lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(p)
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return fmt.Errorf("daemon: another sluice daemon is running on %s (%s is locked by pid %s)", d.cfg.Iface, p, strings.TrimSpace(string(holder)))
		}
		return fmt.Errorf("daemon: lock %s: %w", p, err)
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	d.lock, d.lockP = f, p
	return nil
}

// pollTimeout bounds how long an idle worker takes to notice Stop.
const pollTimeout = 100 * time.Millisecond

func (q *queue) run(stop *atomic.Bool, batch int) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	descs := make([]afxdp.Desc, batch)
	// The frames of a batch that the program did not start (or that no
	// program started) are judged together by ProcessBatch.
	pkts := make([]packet.Packet, batch)
	ptrs := make([]*packet.Packet, batch)
	nows := make([]int64, batch)
	verdicts := make([]engine.Verdict, batch)
	rules := make([]int32, batch)
	w := q.w.Load()
	for !stop.Load() {
		n := q.sock.Receive(descs)
		if n == 0 {
			q.sock.Poll(pollTimeout)
			continue
		}
		q.batches.Add(1)
		// A reload takes effect between batches: no packet sees half a
		// ruleset. In the combined tier, the generation is the program's
		// (tierGen), and a frame the previous one handed over resumes
		// with the previous engine program.
		tg := q.d.tier.Load()
		pr := q.d.live.Load()
		if tg != nil {
			pr = tg.pr
		}
		if pr != w.Program() {
			if tg != nil && tg.prev != nil && tg.prev.pr == w.Program() {
				q.prevW = w
			}
			w = q.d.newWorker(pr)
			q.w.Store(w)
		}
		now := Monotonic()
		// Frames [from, i) are whole frames for w, decoded, waiting to be
		// judged; a frame resumed at a site (or with the previous
		// generation's worker) is judged alone, after them, so every
		// frame is judged in arrival order.
		from := 0
		judge := func(to int) {
			if to == from {
				return
			}
			w.ProcessBatch(ptrs[from:to], nows[from:to], verdicts[from:to], rules[from:to])
			for k := from; k < to; k++ {
				q.finish(w, q.sock.Frame(descs[k]), verdicts[k], pkts[k].Family, rules[k], now)
			}
		}
		for i := range descs[:n] {
			ww, site := q.site(tg, w, descs[i])
			if site == nil && ww == w {
				q.dec.Decode(q.sock.Frame(descs[i]), &pkts[i])
				ptrs[i], nows[i] = &pkts[i], now
				continue
			}
			judge(i)
			q.handle(ww, q.sock.Frame(descs[i]), site, now, &pkts[i])
			from = i + 1
		}
		judge(n)
		q.rx.Add(uint64(n))
		q.sock.Recycle(descs[:n])
	}
}

// noSite is what site leaves in the metadata bytes it has read: not a
// site of any program.
const noSite = 0xffffffff

// site returns the resume point of a frame the compiled program handed
// over (Config.XDP), or nil: the whole traversal (the redirect program's
// frames). The program redirects a frame to the socket only from its
// fallback tail, after writing the site as the 4-byte metadata, which
// the kernel leaves just before the frame in the UMEM chunk (see
// afxdp.Socket.Meta). The bytes are overwritten once read, so a frame
// that somehow came without metadata finds noSite, not the site of the
// chunk's previous frame, and is judged whole.
//
// The metadata's top byte is the generation of the program that wrote
// it (xdptier_linux.go): a frame of the previous generation resumes with
// the previous engine program's worker and sites.
func (q *queue) site(tg *tierGen, w *engine.Worker, d afxdp.Desc) (*engine.Worker, *engine.ResumeSite) {
	if tg == nil {
		return w, nil
	}
	meta := q.sock.Meta(d, 4)
	s, gen, ok := xdp.SiteGenFromMeta(meta)
	if !ok {
		return w, nil
	}
	binary.LittleEndian.PutUint32(meta, noSite)
	sites := tg.sites
	if gen != tg.gen {
		if p := tg.prev; p != nil && gen == p.gen {
			if q.prevW == nil || q.prevW.Program() != p.pr {
				q.prevW = q.d.newWorker(p.pr)
			}
			w, sites = q.prevW, p.sites
		} else {
			sites = nil
		}
	}
	if s < 0 || s >= len(sites) {
		// Judged whole. With rate limits in the program (xdp
		// RateLimitsAuto) such a frame meets userspace's own, otherwise
		// unused, bucket for them: only a frame of a generation two
		// reloads old can get here, which noSite counts.
		q.noSite.Add(1)
		return w, nil
	}
	q.resumed.Add(1)
	return w, &sites[s]
}

// handle judges one frame (from site when not nil: the compiled
// program evaluated it up to there) and re-injects it if the kernel's
// rules would let it through. It does not allocate.
func (q *queue) handle(w *engine.Worker, frame []byte, site *engine.ResumeSite, now int64, p *packet.Packet) {
	q.dec.Decode(frame, p)
	var v engine.Verdict
	if site != nil {
		v = w.ProcessFrom(p, now, *site)
	} else {
		v = w.Process(p, now)
	}
	_, rule := w.LastRuleIndex()
	q.finish(w, frame, v, p.Family, rule, now)
}

// finish carries out verdict v on a judged frame (rule decided it, for
// capture by rule) and counts it.
func (q *queue) finish(w *engine.Worker, frame []byte, v engine.Verdict, fam packet.Family, rule int32, now int64) {
	if c := q.d.capture.Load(); c != nil {
		c.offer(frame, v, w.Program(), fam, rule, now)
	}
	switch v {
	case engine.Drop, engine.Hotdrop:
		q.dropped.Add(1)
	case engine.Malformed:
		// The kernel would discard it before netfilter too.
		q.malformed.Add(1)
	default: // Accept, NotFiltered
		q.accepted.Add(1)
		if err := q.tap.Write(frame); err != nil {
			q.tapErrors.Add(1)
		} else {
			q.reinjected.Add(1)
		}
	}
}

// Workers returns the engine workers, for Program.Report.
func (d *Daemon) Workers() []*engine.Worker {
	ws := make([]*engine.Worker, len(d.queues))
	for i, q := range d.queues {
		ws[i] = q.w.Load()
	}
	return ws
}

// Judged is the number of frames the workers have taken from their RX
// rings so far: a cheap progress counter.
func (d *Daemon) Judged() uint64 {
	var n uint64
	for _, q := range d.queues {
		n += q.rx.Load()
	}
	return n
}

// Stats reads every counter now.
func (d *Daemon) Stats() *Stats {
	s := &Stats{Iface: d.cfg.Iface, XDPMode: string(d.mode), UptimeNs: int64(time.Since(d.started))}
	if d.tier.Load() != nil {
		s.XDPMode = "compiled-" + string(d.mode)
	}
	if d.tap != nil {
		s.TAP = d.tap.Name()
	}
	for _, q := range d.queues {
		qs := QueueStats{Queue: q.id, ZeroCopy: q.sock.ZeroCopy(),
			RX: q.rx.Load(), Accepted: q.accepted.Load(), Dropped: q.dropped.Load(), Malformed: q.malformed.Load(),
			Reinjected: q.reinjected.Load(), TAPErrors: q.tapErrors.Load(), Batches: q.batches.Load(),
			Resumed: q.resumed.Load(), NoSite: q.noSite.Load()}
		if xs, err := q.sock.Stats(); err == nil {
			qs.XSK, qs.RingFull, qs.FillEmpty = xs, xs.RxRingFull, xs.RxFillRingEmptyDescs
		}
		s.Queues = append(s.Queues, qs)
	}
	sort.Slice(s.Queues, func(i, j int) bool { return s.Queues[i].Queue < s.Queues[j].Queue })
	s.Report = d.Report()
	s.Reloads, s.ReloadFailures = d.reloadOK.Load(), d.reloadFailed.Load()
	return s
}

// Report is the report of every frame the daemon judged: the workers'
// counters and, in the combined tier, the compiled program's added
// (xdp.AddReport): a frame judged in XDP is counted by the program, one
// handed over at a fallback site by the program up to the site and by
// its worker from there, so each rule's counters are what the engine
// alone would have counted.
func (d *Daemon) Report() *report.Report {
	tg := d.tier.Load()
	if tg == nil {
		return d.live.Load().Report(d.Workers()...)
	}
	// Only the workers already on this generation's program: the others
	// count the previous ruleset, whose counters a reload zeroes.
	var ws []*engine.Worker
	for _, w := range d.Workers() {
		if w.Program() == tg.pr {
			ws = append(ws, w)
		}
	}
	rep := tg.pr.Report(ws...)
	vals, err := tg.readCounters()
	if err != nil {
		vals = nil
	}
	xdp.AddReport(rep, tg.spec.Report(vals, tg.rules4, tg.rules6))
	return rep
}

// XDPCounters reads the compiled program's counters (xdp.Stat*), summed
// over CPUs; nil without Config.XDP.
func (d *Daemon) XDPCounters() ([]uint64, error) {
	tg := d.tier.Load()
	if tg == nil {
		return nil, nil
	}
	return tg.readCounters()
}

// HashlimitStats reports every hashlimit table for the metrics: those
// the combined tier's program holds (xdp.RateLimitsAuto) from its maps,
// the others from the engine's State st.
func (d *Daemon) HashlimitStats(st *engine.State) []hashlimit.TableStats {
	out := st.HashlimitStats()
	tg := d.tier.Load()
	if tg == nil {
		return out
	}
	prog, err := tg.hashlimitStats()
	if err != nil || len(prog) == 0 {
		return out
	}
	// The engine compiled those tables too, but never evaluates them.
	inProg := map[string]bool{}
	for _, s := range prog {
		inProg[s.Name+"/"+s.Family.String()] = true
	}
	for _, s := range out {
		if !inProg[s.Name+"/"+s.Family.String()] {
			prog = append(prog, s)
		}
	}
	return prog
}

// XDPSpec is the compiled program's description; nil without Config.XDP.
func (d *Daemon) XDPSpec() *xdp.Spec {
	if tg := d.tier.Load(); tg != nil {
		return tg.spec
	}
	return nil
}

// Stop detaches the XDP program (traffic goes straight to the kernel
// again), stops the workers, closes the sockets, deletes the TAP and
// releases the lock. It may be called more than once.
func (d *Daemon) Stop() error {
	d.stopOnce.Do(func() {
		var errs []error
		if d.link != nil {
			errs = append(errs, d.link.Close())
		}
		d.stop.Store(true)
		d.wg.Wait()
		for _, q := range d.queues {
			errs = append(errs, q.sock.Close())
		}
		if d.red != nil {
			errs = append(errs, d.red.Close())
		}
		d.captureMu.Lock()
		if d.xcap != nil {
			d.xcap.stop()
			d.xcap = nil
		}
		d.captureMu.Unlock()
		if tg := d.tier.Load(); tg != nil {
			errs = append(errs, tg.close())
		}
		if d.caps != nil {
			errs = append(errs, d.caps.Close())
		}
		if d.tap != nil {
			errs = append(errs, d.tap.Close())
		}
		if d.lock != nil {
			os.Remove(d.lockP)
			errs = append(errs, d.lock.Close())
		}
		d.stopErr = errors.Join(errs...)
	})
	return d.stopErr
}

// Abandon stops the workers and closes every descriptor without any
// orderly teardown, as the kernel does when the process is killed: the
// tests use it to check that the interface then works without sluice.
func (d *Daemon) Abandon() {
	d.stop.Store(true)
	d.wg.Wait()
	// Closing a bpf_link's fd (no BPF_LINK_DETACH) is what exit does.
	if d.link != nil {
		d.link.Close()
	}
	for _, q := range d.queues {
		q.sock.Close()
	}
	if d.red != nil {
		d.red.Close()
	}
	if tg := d.tier.Load(); tg != nil {
		tg.close()
	}
	if d.caps != nil {
		d.caps.Close()
	}
	d.tap.Close()
	d.lock.Close()
	d.stopOnce.Do(func() {})
}

// rxQueues returns the interface's number of receive queues (ethtool's
// combined or rx channel count), or 1 when the driver does not say.
func rxQueues(iface string) (int, error) {
	ch, err := ethtoolChannels(iface)
	if err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) {
			return 1, nil
		}
		return 0, fmt.Errorf("daemon: queues of %s: %w", iface, err)
	}
	return max(int(ch.rxCount), int(ch.combinedCount), 1), nil
}

func (d *Daemon) newWorker(pr *engine.Program) *engine.Worker {
	w := pr.NewWorker()
	if d.cfg.LogSink != nil {
		w.SetLogSink(d.cfg.LogSink)
	}
	return w
}

// Program returns the running program.
func (d *Daemon) Program() *engine.Program { return d.live.Load() }

// Reload re-reads and compiles the ruleset through Config.Reload and swaps
// it in. On error the running program stays in force.
func (d *Daemon) Reload() error {
	if d.tier.Load() != nil {
		d.reloadMu.Lock()
		defer d.reloadMu.Unlock()
		if err := d.reloadTier(); err != nil {
			d.reloadFailed.Add(1)
			d.logf("sluice: reload failed, the running ruleset stays: %v", err)
			return err
		}
		d.reloadOK.Add(1)
		return nil
	}
	if d.cfg.Reload == nil {
		return errors.New("daemon: reload is not configured")
	}
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	pr, err := d.cfg.Reload()
	if err != nil {
		d.reloadFailed.Add(1)
		d.logf("sluice: reload failed, the running ruleset stays: %v", err)
		return err
	}
	d.live.Swap(pr)
	d.reloadOK.Add(1)
	d.logf("sluice: reloaded")
	return nil
}

// StartCapture begins a capture session; only one runs at a time.
func (d *Daemon) StartCapture(req CaptureRequest) (*captureSession, error) {
	d.captureMu.Lock()
	defer d.captureMu.Unlock()
	if d.capture.Load() != nil {
		return nil, errors.New("daemon: a capture is already running")
	}
	c, err := newCaptureSession(req, time.Now().UnixNano()-Monotonic())
	if err != nil {
		return nil, err
	}
	if d.caps != nil {
		// The combined tier: the compiled program copies what it judges.
		if d.xcap, err = startXDPCapture(d.caps, c, d.tier.Load); err != nil {
			return nil, err
		}
	}
	d.capture.Store(c)
	return c, nil
}

// EndCapture stops the session.
func (d *Daemon) EndCapture(c *captureSession) {
	d.captureMu.Lock()
	if d.capture.CompareAndSwap(c, nil) && d.xcap != nil {
		d.xcap.stop()
		d.xcap = nil
	}
	d.captureMu.Unlock()
}

// buildTier compiles and loads generation gen of the combined tier's
// program for engine program pr, sharing xsks (nil: its own) and the
// capture maps, and carrying over the rate-limit state the program holds
// from prev (the generation it replaces, nil at start), as the XDP
// tier's reload does.
func (d *Daemon) buildTier(ifc *net.Interface, queues int, pr *engine.Program, rs4, rs6 *rules.Ruleset, gen uint8, xsks *ebpf.Map, prev *xdp.Filter) (*tierGen, error) {
	xc := *d.cfg.XDP
	xc.Iface, xc.Rules4, xc.Rules6 = d.cfg.Iface, rs4, rs6
	var sites []engine.ResumeSite
	spec, f, userspace, err := xdp.LoadDemoting(func(us map[*rules.Rule]string) (*xdp.Spec, error) {
		return compileTier(xc, ifc, queues, gen, us)
	}, func(spec *xdp.Spec) (*xdp.Filter, error) {
		var err error
		if sites, err = spec.ResumeSites(pr); err != nil {
			return nil, fmt.Errorf("the engine program does not match the XDP program: %w", err)
		}
		return spec.LoadCarrying(xsks, d.caps, prev)
	})
	if err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	for r, why := range userspace {
		d.logf("sluice: %s: line %d (%s) runs in userspace: %s", d.cfg.Iface, r.Line, r.Text, why)
	}
	return &tierGen{gen: gen, spec: spec, filter: f, rules4: rs4, rules6: rs6, pr: pr, sites: sites}, nil
}

// reloadTier is Reload in the combined tier (see xdptier_linux.go): the
// new generation is published to the workers, then the program is
// replaced on the link; on failure the old generation is put back.
func (d *Daemon) reloadTier() error {
	if d.cfg.XDP.Reload == nil {
		return errors.New("daemon: reload is not configured")
	}
	r, err := d.cfg.XDP.Reload()
	if err != nil {
		return err
	}
	if r.Program == nil {
		return errors.New("daemon: reload: no engine program")
	}
	old := d.tier.Load()
	xc := *d.cfg.XDP
	xc.Iface, xc.Rules4, xc.Rules6 = d.cfg.Iface, r.Rules4, r.Rules6
	// Without the rules the verifier gave up on: a program that has
	// some is never the same, and the reload goes the full way.
	same, err := compileTier(xc, d.ifc, int(old.spec.XSKs.MaxEntries), old.gen, nil)
	if err != nil {
		return err
	}
	if sites, err := same.ResumeSites(r.Program); err == nil && old.spec.SameProgram(same) {
		if ok, err := updateInPlace(old, same); err != nil {
			d.logf("sluice: %s: updating sets in place failed, replacing the program: %v", d.cfg.Iface, err)
		} else if ok {
			// Same program, same sites: frames already handed over
			// resume with the new engine program, whose sets are the
			// ones just written.
			d.tier.Store(&tierGen{gen: old.gen, spec: same, filter: old.filter, rules4: r.Rules4, rules6: r.Rules6, pr: r.Program, sites: sites, prev: old.prev})
			d.live.Swap(r.Program)
			d.logf("sluice: %s: reloaded: set maps updated in place (generation %d, program unchanged)", d.cfg.Iface, old.gen)
			return nil
		}
	}
	tg, err := d.buildTier(d.ifc, int(old.spec.XSKs.MaxEntries), r.Program, r.Rules4, r.Rules6, old.gen+1, old.filter.XSKs, old.filter)
	if err != nil {
		return err
	}
	tg.prev = &tierGen{gen: old.gen, spec: old.spec, rules4: old.rules4, rules6: old.rules6, pr: old.pr, sites: old.sites}
	d.tier.Store(tg)
	d.live.Swap(r.Program)
	if err := updateLink(d.link, tg.filter); err != nil {
		d.tier.Store(old)
		d.live.Swap(old.pr)
		tg.close()
		return err
	}
	d.captureMu.Lock()
	if c := d.capture.Load(); c != nil {
		d.xcap.rearm(c, tg.spec)
	}
	d.captureMu.Unlock()
	old.close()
	d.logf("sluice: %s: reloaded: XDP program replaced (generation %d, %d instructions, %d fallback site(s)); frames already handed over finish with the previous ruleset",
		d.cfg.Iface, tg.gen, tg.spec.Instructions(), len(tg.spec.Fallback))
	return nil
}
