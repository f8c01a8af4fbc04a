// Package daemon runs sluice live: AF_XDP sockets on chosen receive
// queues of an interface feed the engine, and accepted frames re-enter
// the kernel through a TAP device (see package tap for what that means for
// routing and sysctls).
//
// Per queue, one goroutine locked to its OS thread owns one socket and
// one engine.Worker and loops: take a batch from the RX ring, decode and
// judge each frame, write the accepted ones to the TAP, recycle every
// frame to the fill ring. Nothing is allocated per packet. Counters are
// atomics read at scrape time (Stats).
//
// The combined tier (Config.XDP, sluice run --mode auto) attaches the
// ruleset compiled to XDP (package xdp) instead of the redirect program:
// the kernel judges every frame the program can, and a frame reaching a
// fallback site (a match XDP cannot evaluate) is redirected to its
// queue's socket with the site number as its 4-byte XDP metadata, which
// the kernel leaves just before the frame in the UMEM chunk in copy and
// zero-copy mode alike (afxdp.Socket.Meta). The queue's worker resumes
// the traversal at that site (engine.Worker.ProcessFrom), so rules
// before it are counted by the program, rules from it on by the worker,
// and the report (Daemon.Report) is the sum.
//
// Fail open: the XDP program is attached through a bpf_link owned by the
// process, so if the daemon dies the kernel detaches it and the interface
// behaves as without sluice; the TAP is non-persistent and disappears with
// its last file descriptor.
package daemon

import (
	"time"

	"github.com/sluice-project/sluice/afxdp"
	"github.com/sluice-project/sluice/engine"
	"github.com/sluice-project/sluice/report"
	"github.com/sluice-project/sluice/rules"
)

// DefaultLockDir holds one lock file per interface served.
const DefaultLockDir = "/run/sluice"

// epoch anchors Monotonic.
var epoch = time.Now()

// Monotonic is the daemon's packet clock: nanoseconds on the monotonic
// clock since the process started. Compile the program with
// Monotonic() as the load time.
func Monotonic() int64 { return int64(time.Since(epoch)) }

// WallOffset turns Monotonic into Unix time: compile with it as
// engine.Config.WallOffset (the IPv4 timestamp option records the time
// of day).
func WallOffset() int64 { return epoch.UnixNano() }

// QueueStats are one queue's counters.
type QueueStats struct {
	Queue    int  `json:"queue"`
	ZeroCopy bool `json:"zero_copy"`
	// RX counts frames taken from the RX ring; every one ends up in
	// exactly one of Accepted (then Reinjected or TAPErrors), Dropped
	// and Malformed.
	RX         uint64 `json:"rx"`
	Accepted   uint64 `json:"accepted"`
	Dropped    uint64 `json:"dropped"`
	Malformed  uint64 `json:"malformed"`
	Reinjected uint64 `json:"reinjected"`
	TAPErrors  uint64 `json:"tap_errors"`
	Batches    uint64 `json:"batches"`
	// Resumed counts, in the combined tier (--mode auto), the frames the
	// compiled XDP program handed over at a fallback site, resumed there;
	// NoSite those that came without a valid site (judged whole; none is
	// expected).
	Resumed uint64 `json:"resumed,omitempty"`
	NoSite  uint64 `json:"no_site,omitempty"`
	// RingFull and FillEmpty come from the socket's XDP_STATISTICS:
	// frames the kernel dropped because the RX ring was full, and times
	// it found no frame in the fill ring.
	RingFull  uint64 `json:"rx_ring_full"`
	FillEmpty uint64 `json:"rx_fill_ring_empty"`
	// XSK is the whole XDP_STATISTICS block.
	XSK afxdp.Stats `json:"xsk"`
}

// Stats is what the control socket serves.
type Stats struct {
	Iface    string         `json:"iface"`
	TAP      string         `json:"tap"`
	XDPMode  string         `json:"xdp_mode"`
	UptimeNs int64          `json:"uptime_ns"`
	Queues   []QueueStats   `json:"queues"`
	Report   *report.Report `json:"report"`
	// Reloads and ReloadFailures count ruleset reloads.
	Reloads        uint64 `json:"reloads"`
	ReloadFailures uint64 `json:"reload_failures"`
}

// Lost is the number of frames the kernel could not hand to sluice
// (overload): dropped for a full RX ring or an empty fill ring.
func (q *QueueStats) Lost() uint64 { return q.XSK.RxDropped + q.XSK.RxRingFull }

// Totals sums the per-queue counters.
func (s *Stats) Totals() QueueStats {
	t := QueueStats{Queue: -1}
	for _, q := range s.Queues {
		t.RX += q.RX
		t.Accepted += q.Accepted
		t.Dropped += q.Dropped
		t.Malformed += q.Malformed
		t.Reinjected += q.Reinjected
		t.TAPErrors += q.TAPErrors
		t.Batches += q.Batches
		t.Resumed += q.Resumed
		t.NoSite += q.NoSite
		t.RingFull += q.RingFull
		t.FillEmpty += q.FillEmpty
		t.XSK.RxDropped += q.XSK.RxDropped
		t.XSK.RxInvalidDescs += q.XSK.RxInvalidDescs
		t.XSK.TxInvalidDescs += q.XSK.TxInvalidDescs
		t.XSK.RxRingFull += q.XSK.RxRingFull
		t.XSK.RxFillRingEmptyDescs += q.XSK.RxFillRingEmptyDescs
		t.XSK.TxRingEmptyDescs += q.XSK.TxRingEmptyDescs
	}
	return t
}

// Reloaded is one reload's result for the XDP tiers (XDPConfig.Reload):
// the rulesets parsed again, and in the combined tier the engine program
// compiled from them (against the running engine.State).
type Reloaded struct {
	Program        *engine.Program
	Rules4, Rules6 *rules.Ruleset
}
