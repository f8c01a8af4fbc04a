package daemon

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/perf"
	"golang.org/x/sys/unix"

	"github.com/sluice-project/sluice/engine"
	"github.com/sluice-project/sluice/engine/hashlimit"
	"github.com/sluice-project/sluice/rules"
	"github.com/sluice-project/sluice/xdp"
)

// Reload and capture in the XDP tiers (--mode xdp and --mode auto).
//
// Reload. The files are read and compiled again (XDPConfig.Reload); the
// new program is loaded with fresh counters (as iptables-restore zeroes
// them) and its own set maps, sharing only the XSKMAP (the queues'
// sockets) and the capture maps with the running one, then replaces it
// atomically on the bpf_link (BPF_LINK_UPDATE: no instant without a
// program, nothing detached). Any failure before the update (a parse
// error with its file:line:col, a verifier refusal, fallback sites in
// --mode xdp) closes what was built and leaves everything running.
//
// Sets only. When the new files compile to the same program as the
// running one (same rules, same small sets; only sets held in maps
// changed, e.g. a refreshed blocklist), the running program's set maps
// are updated in place instead (updateInPlace): no verifier run, no
// link update, the generation and the rate-limit state stay, and the
// counters restart at zero as with any reload.
//
// Generations. Every program carries a generation number (one byte,
// CompileOptions.Generation) in the top byte of the fallback metadata it
// writes in front of a frame it hands to AF_XDP, and in its capture
// records. Frames already in the RX rings when the program is replaced
// carry sites of the old program: the queue worker resumes each frame
// with the engine program and resume sites of the generation that wrote
// it (tierGen.prev), so a frame sees exactly one ruleset from its first
// rule to its verdict, as with iptables-restore's atomic table swap. The
// new generation is published to the workers before the link update, so
// its frames are never early. Only the two newest generations are kept:
// a frame of an older one (two reloads before its ring drained, which a
// ring of a few thousand frames does in microseconds) is judged whole by
// the current program and counted in NoSite.

// tierGen is one generation of the compiled XDP program.
type tierGen struct {
	gen            uint8
	spec           *xdp.Spec
	filter         *xdp.Filter
	rules4, rules6 *rules.Ruleset
	// Combined tier only: the engine program the sites resolve against.
	pr    *engine.Program
	sites []engine.ResumeSite
	// prev is the generation this one replaced (its prev is nil).
	prev *tierGen

	// mu orders counter reads (scrapes, stats) against the close of a
	// generation a reload replaced: a reader that loaded this generation
	// just before the swap must not read maps being closed.
	mu     sync.RWMutex
	closed bool
}

// readCounters reads the program's counters, or fails once the
// generation is closed.
func (tg *tierGen) readCounters() ([]uint64, error) {
	tg.mu.RLock()
	defer tg.mu.RUnlock()
	if tg.closed {
		return nil, errors.New("daemon: the XDP program was replaced by a reload")
	}
	return tg.filter.ReadCounters()
}

// hashlimitStats reads the hashlimit tables the program holds
// (xdp.Filter.HashlimitStats), or fails once the generation is closed.
func (tg *tierGen) hashlimitStats() ([]hashlimit.TableStats, error) {
	tg.mu.RLock()
	defer tg.mu.RUnlock()
	if tg.closed {
		return nil, errors.New("daemon: the XDP program was replaced by a reload")
	}
	return tg.filter.HashlimitStats()
}

// close closes the generation's program and maps once no reader uses them.
func (tg *tierGen) close() error {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	if tg.closed {
		return nil
	}
	tg.closed = true
	return tg.filter.Close()
}

// compileTier compiles rs4 and rs6 for ifc as generation gen, with the
// capture block, leaving the rules in userspace (xdp.LoadDemoting's) to
// the AF_XDP tier.
func compileTier(cfg XDPConfig, ifc *net.Interface, xskQueues int, gen uint8, userspace map[*rules.Rule]string) (*xdp.Spec, error) {
	in := cfg.InIface
	if in == "" {
		in = cfg.Iface
	}
	opts := xdp.CompileOptions{InIface: in, LocalAddrs: cfg.LocalAddrs, XSKQueues: xskQueues, Capture: true, Generation: gen, HZ: cfg.HZ,
		Userspace: userspace}
	switch {
	case xskQueues == 0 && cfg.RateLimitsInXDP:
		// XDP alone: no frame is ever resumed in userspace, so the
		// program's maps are the only state of its limit and hashlimit
		// rules, which is exact (xdp/ratelimit.go).
		opts.RateLimits = xdp.RateLimitsXDP
	case cfg.RateLimitsInXDP:
		// The combined tier: a limit rule or hashlimit table runs in
		// the program when no fallback site reaches it, so userspace,
		// resuming frames at those sites, never evaluates it; the others
		// stay sites and userspace owns their buckets (xdp/reach.go).
		// ResumeSites refuses a program that breaks this.
		opts.RateLimits = xdp.RateLimitsAuto
	}
	if len(ifc.HardwareAddr) == 6 {
		opts.LocalMAC = ifc.HardwareAddr
	}
	spec, err := xdp.Compile(cfg.Rules4, cfg.Rules6, opts)
	if err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	return spec, nil
}

// updateInPlace applies a reload whose program (compiled as old's
// generation) is the same as old's, differing only in set contents
// (xdp/sets_update.go): the running program's set maps are updated and
// its counters zeroed, as a new program's would be. It reports false,
// changing nothing, when the programs differ; after a failed update the
// caller replaces the program, which rewrites every set.
func updateInPlace(old *tierGen, spec *xdp.Spec) (bool, error) {
	if !old.spec.SameProgram(spec) {
		return false, nil
	}
	old.mu.RLock()
	defer old.mu.RUnlock()
	if old.closed {
		return false, nil
	}
	if err := old.filter.UpdateSets(spec); err != nil {
		return false, err
	}
	return true, old.filter.ZeroCounters()
}

// updateLink replaces the attached program.
func updateLink(l link.Link, f *xdp.Filter) error {
	if err := l.Update(f.Program); err != nil {
		return fmt.Errorf("daemon: replacing the attached XDP program: %w", err)
	}
	return nil
}

// xdpCapture copies the frames the compiled program samples into a
// capture session: cap_ctl selects them, a goroutine reads cap_events.
type xdpCapture struct {
	maps *xdp.CaptureMaps
	rd   *perf.Reader
	done chan struct{}
}

// ctlFor is the cap_ctl value for session c against spec.
func ctlFor(c *captureSession, spec *xdp.Spec) xdp.CaptureCtl {
	ctl := xdp.CaptureCtl{RatePerCPU: uint32(c.req.RatePerSec), Snaplen: uint32(c.req.Snaplen)}
	if c.req.Dropped {
		ctl.Mask |= xdp.CtlDropped
	}
	if c.req.Accepted {
		ctl.Mask |= xdp.CtlAccepted
	}
	if c.ruleChain != "" {
		ctl.Mask = xdp.CtlDropped | xdp.CtlAccepted
		ids := spec.RuleRef(c.ruleTable, c.ruleChain, c.ruleN)
		switch {
		case len(ids) == 0:
			ctl.Mask = 0 // no such rule in the program: nothing to copy
		case len(ids) <= len(ctl.Rules):
			for i, id := range ids {
				ctl.Rules[i] = uint32(id + 1)
			}
			// More: the program copies every decided frame, the reader
			// keeps the rule's.
		}
	}
	return ctl
}

// monoOffset is what turns CLOCK_MONOTONIC (bpf_ktime_get_ns) into wall
// time.
func monoOffset() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return time.Now().UnixNano() - ts.Nano()
}

// startXDPCapture arms the program's capture for session c. gens returns
// the generations whose records may arrive (the current one first).
func startXDPCapture(maps *xdp.CaptureMaps, c *captureSession, gens func() *tierGen) (*xdpCapture, error) {
	rd, err := maps.Reader(0)
	if err != nil {
		return nil, fmt.Errorf("daemon: capture: %w", err)
	}
	x := &xdpCapture{maps: maps, rd: rd, done: make(chan struct{})}
	if err := maps.Set(ctlFor(c, gens().spec)); err != nil {
		rd.Close()
		return nil, fmt.Errorf("daemon: capture: %w", err)
	}
	off := monoOffset()
	go func() {
		defer close(x.done)
		for {
			rec, err := rd.Read()
			if err != nil {
				if errors.Is(err, perf.ErrClosed) {
					return
				}
				continue
			}
			if rec.LostSamples > 0 {
				c.mu.Lock()
				c.missed += rec.LostSamples
				c.mu.Unlock()
				continue
			}
			r, data, err := xdp.DecodeCaptureSample(rec.RawSample)
			if err != nil {
				continue
			}
			if c.ruleChain != "" && !recordRule(c, gens(), r) {
				continue
			}
			if !c.take(Monotonic()) {
				continue
			}
			c.send(capturedFrame{data: data, origLen: int(r.OrigLen), ts: int64(r.TimeNs) + off})
		}
	}()
	return x, nil
}

// recordRule reports whether a record's deciding rule is the session's.
func recordRule(c *captureSession, g *tierGen, r xdp.CaptureRecord) bool {
	if r.Rule == 0 {
		return false
	}
	for ; g != nil; g = g.prev {
		if g.gen != r.Gen {
			continue
		}
		t, ch, n, ok := g.spec.RulePosition(int(r.Rule) - 1)
		return ok && ch == c.ruleChain && n == c.ruleN && (c.ruleTable == "" || t == c.ruleTable)
	}
	return false
}

// rearm rewrites cap_ctl for a new generation's rule numbering.
func (x *xdpCapture) rearm(c *captureSession, spec *xdp.Spec) {
	if x != nil {
		x.maps.Set(ctlFor(c, spec))
	}
}

// stop disarms the program's capture and ends the reader.
func (x *xdpCapture) stop() {
	x.maps.Set(xdp.CaptureCtl{})
	x.rd.Close()
	<-x.done
}

// xdpCaptureState is the capture bookkeeping both XDP tiers share.
type xdpCaptureState struct {
	mu      sync.Mutex
	session *captureSession
	x       *xdpCapture
}
