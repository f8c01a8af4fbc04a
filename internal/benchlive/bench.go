package benchlive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"time"

	"github.com/sluice-project/sluice/internal/testnet"
)

// Configuration names, in table order.
const (
	ConfigIptables = "iptables-legacy raw"
	ConfigNFT      = "nft netdev ingress"
	ConfigAFXDP    = "sluice AF_XDP"
	ConfigXDP      = "sluice XDP"
	ConfigXDPDrop  = "bare XDP_DROP"
)

// Configs lists every configuration.
var Configs = []string{ConfigIptables, ConfigNFT, ConfigAFXDP, ConfigXDP, ConfigXDPDrop}

// Options configures Run.
type Options struct {
	// Runs per configuration (default 3); the table shows medians.
	Runs int
	// Duration of the flood in each run (default 5s, at most 60s).
	Duration time.Duration
	// MaxPackets bounds each run's flood (default 500 million).
	MaxPackets uint64
	// Flood kind (default testnet.FloodMix).
	Flood testnet.FloodKind
	// Configs to run (default all).
	Configs []string
	// Runners for the sluice tiers (default: LiveRunners).
	Runners map[string]Runner
	// Workers are the generator's threads (default 1: the offered rate
	// is what the receiver takes; 2 offers more than it takes).
	Workers int
	// Progress, when set, gets a line per run.
	Progress io.Writer
}

// Measurement is one configuration's result (the median over runs of
// each field separately).
type Measurement struct {
	Config string `json:"config"`
	// Skipped says why the configuration did not run.
	Skipped string `json:"skipped,omitempty"`
	Runs    int    `json:"runs"`
	// OfferedPPS is what the generator sent; ReceivedPPS what the
	// server's veth took in (rx_packets, legitimate traffic included);
	// RingDroppedPPS what it had no room for (rx_dropped); DroppedPPS
	// what the filter dropped, from its own counters.
	OfferedPPS     float64 `json:"offered_pps"`
	ReceivedPPS    float64 `json:"received_pps"`
	RingDroppedPPS float64 `json:"ring_dropped_pps"`
	DroppedPPS     float64 `json:"dropped_pps"`
	// DropCounter says where DroppedPPS comes from.
	DropCounter string `json:"drop_counter"`
	// Legitimate requests during the flood.
	Requests    int           `json:"requests"`
	SuccessRate float64       `json:"success_rate"`
	P50         time.Duration `json:"p50_ns"`
	P99         time.Duration `json:"p99_ns"`
	// CPUBusy and CPUSoftirq are shares of all CPUs of the machine
	// (CPUs of them), whoever used them.
	CPUBusy    float64 `json:"cpu_busy"`
	CPUSoftirq float64 `json:"cpu_softirq"`
	CPUs       int     `json:"cpus"`
	// DroppedVsIptables is DroppedPPS over iptables' (0 when unknown).
	DroppedVsIptables float64 `json:"dropped_vs_iptables,omitempty"`
}

// Report is a whole benchmark.
type Report struct {
	Flood    testnet.FloodKind `json:"flood"`
	Duration time.Duration     `json:"duration_ns"`
	Runs     int               `json:"runs"`
	Results  []Measurement     `json:"results"`
	Notes    []string          `json:"notes"`
}

// Run measures every configuration.
func Run(ctx context.Context, opts Options) (*Report, error) {
	if opts.Runs <= 0 {
		opts.Runs = 3
	}
	if opts.Duration <= 0 {
		opts.Duration = 5 * time.Second
	}
	opts.Duration = min(opts.Duration, time.Minute)
	if opts.MaxPackets == 0 {
		opts.MaxPackets = 500_000_000
	}
	if opts.Flood == "" {
		opts.Flood = testnet.FloodMix
	}
	if opts.Configs == nil {
		opts.Configs = Configs
	}
	if opts.Runners == nil {
		runnersMu.Lock()
		opts.Runners = make(map[string]Runner, len(LiveRunners))
		for k, v := range LiveRunners {
			opts.Runners[k] = v
		}
		runnersMu.Unlock()
	}
	rep := &Report{Flood: opts.Flood, Duration: opts.Duration, Runs: opts.Runs}
	rep.Notes = append(rep.Notes,
		"one veth: the XDP live-frames generator and the legitimate client share the sender namespace; the server's receive processing runs in the generator's softirq context, so offered and received rates are coupled",
		"CPU is machine-wide (/proc/stat), other processes on the machine included",
		"nft: a hand translation that drops the flood's signatures (see benchlive.NFTRules), without the blocklist sets",
		"bare XDP_DROP: a program that drops every frame, legitimate ones included: the ceiling any XDP filter is measured against")
	for _, name := range opts.Configs {
		m := Measurement{Config: name, CPUs: runtime.NumCPU()}
		var runner Runner
		switch name {
		case ConfigAFXDP:
			runner = opts.Runners[TierAFXDP]
		case ConfigXDP:
			runner = opts.Runners[TierXDP]
		case ConfigXDPDrop:
			runner = xdpDropRunner
		case ConfigIptables, ConfigNFT:
		default:
			return nil, fmt.Errorf("benchlive: unknown configuration %q", name)
		}
		if (name == ConfigAFXDP || name == ConfigXDP) && runner == nil {
			m.Skipped = "no live runner registered (the tier is not attachable yet)"
			rep.Results = append(rep.Results, m)
			continue
		}
		var runs []Measurement
		for i := 0; i < opts.Runs; i++ {
			if err := ctx.Err(); err != nil {
				return rep, err
			}
			r, err := runOnce(ctx, name, runner, opts)
			if err != nil {
				return rep, fmt.Errorf("%s, run %d: %w", name, i+1, err)
			}
			if opts.Progress != nil {
				fmt.Fprintf(opts.Progress, "%-20s run %d/%d: offered %.2f Mpps, dropped %.2f Mpps, legit %.1f%% ok, p99 %v\n",
					name, i+1, opts.Runs, r.OfferedPPS/1e6, r.DroppedPPS/1e6, 100*r.SuccessRate, r.P99.Round(10*time.Microsecond))
			}
			runs = append(runs, r)
		}
		rep.Results = append(rep.Results, medianOf(name, runs))
	}
	var base float64
	for _, m := range rep.Results {
		if m.Config == ConfigIptables && m.Skipped == "" {
			base = m.DroppedPPS
		}
	}
	for i := range rep.Results {
		if base > 0 && rep.Results[i].Skipped == "" {
			rep.Results[i].DroppedVsIptables = rep.Results[i].DroppedPPS / base
		}
	}
	return rep, nil
}

// runOnce builds a fresh topology, sets the configuration up, floods for
// opts.Duration with the client running, and tears everything down.
func runOnce(ctx context.Context, name string, runner Runner, opts Options) (m Measurement, err error) {
	m = Measurement{Config: name, Runs: 1, CPUs: runtime.NumCPU()}
	env, err := NewEnv(EnvOptions{Prefix: "bench", Flood: opts.Flood, Seed: uint64(time.Now().UnixNano()), Workers: opts.Workers})
	if err != nil {
		return m, err
	}
	defer func() { err = errors.Join(err, env.Close()) }()
	setup, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var dropped func() (uint64, error)
	switch name {
	case ConfigIptables:
		if err := env.LoadIptables(setup); err != nil {
			return m, err
		}
		m.DropCounter = "iptables raw DROP rule counters"
		dropped = func() (uint64, error) {
			rs, err := env.RawCounters(ctx)
			return Dropped(rs), err
		}
	case ConfigNFT:
		if err := env.LoadNFT(setup); err != nil {
			return m, err
		}
		m.DropCounter = "nft named counter on every drop rule"
		dropped = func() (uint64, error) { return env.NFTDropped(ctx) }
	default:
		if err := env.AddAccounting(setup); err != nil {
			return m, err
		}
		att, rerr := runner(setup, env.Topo.Server, env.Topo.ServerIf)
		if rerr != nil {
			return m, fmt.Errorf("attach %s: %w", name, rerr)
		}
		defer func() { err = errors.Join(err, att.Stop()) }()
		if att.Dropped != nil {
			m.DropCounter = "sluice's own drop decisions (rules, hotdrops, malformed)"
			dropped = att.Dropped
			break
		}
		m.DropCounter = "server veth rx_packets minus packets reaching raw PREROUTING"
		dropped = func() (uint64, error) {
			st, err := env.Topo.ServerStats()
			if err != nil {
				return 0, err
			}
			rs, err := env.RawCounters(ctx)
			if err != nil {
				return 0, err
			}
			return st.RxPackets - Accounted(rs), nil
		}
	}
	client, err := env.StartClient(testnet.ClientOptions{Interval: 20 * time.Millisecond, Workers: 2,
		MaxDuration: opts.Duration + 10*time.Second})
	if err != nil {
		return m, err
	}
	defer client.Stop()
	time.Sleep(300 * time.Millisecond) // the client's first requests, unflooded
	d0, err := dropped()
	if err != nil {
		return m, err
	}
	s0, err := env.Topo.ServerStats()
	if err != nil {
		return m, err
	}
	c0, err := ReadCPU()
	if err != nil {
		return m, err
	}
	mark := client.Mark()
	start := time.Now()
	sent, ferr := env.Flood.Run(ctx, opts.MaxPackets, opts.Duration)
	el := time.Since(start)
	c1, cerr := ReadCPU()
	cs := client.StatsSince(mark)
	time.Sleep(100 * time.Millisecond) // let the server's ring drain
	s1, serr := env.Topo.ServerStats()
	d1, derr := dropped()
	if err := errors.Join(ferr, cerr, serr, derr); err != nil {
		return m, err
	}
	sec := el.Seconds()
	m.OfferedPPS = float64(sent) / sec
	m.ReceivedPPS = float64(s1.RxPackets-s0.RxPackets) / sec
	m.RingDroppedPPS = float64(s1.RxDropped-s0.RxDropped) / sec
	m.DroppedPPS = float64(d1-d0) / sec
	m.Requests, m.SuccessRate, m.P50, m.P99 = cs.Requests, cs.SuccessRate(), cs.P50, cs.P99
	m.CPUBusy, m.CPUSoftirq = Usage(c0, c1)
	return m, nil
}

// medianOf takes each field's median over runs.
func medianOf(name string, runs []Measurement) Measurement {
	m := runs[0]
	m.Config, m.Runs = name, len(runs)
	f := func(get func(Measurement) float64) float64 {
		v := make([]float64, len(runs))
		for i, r := range runs {
			v[i] = get(r)
		}
		return Median(v)
	}
	m.OfferedPPS = f(func(r Measurement) float64 { return r.OfferedPPS })
	m.ReceivedPPS = f(func(r Measurement) float64 { return r.ReceivedPPS })
	m.RingDroppedPPS = f(func(r Measurement) float64 { return r.RingDroppedPPS })
	m.DroppedPPS = f(func(r Measurement) float64 { return r.DroppedPPS })
	m.Requests = int(f(func(r Measurement) float64 { return float64(r.Requests) }))
	m.SuccessRate = f(func(r Measurement) float64 { return r.SuccessRate })
	m.P50 = time.Duration(f(func(r Measurement) float64 { return float64(r.P50) }))
	m.P99 = time.Duration(f(func(r Measurement) float64 { return float64(r.P99) }))
	m.CPUBusy = f(func(r Measurement) float64 { return r.CPUBusy })
	m.CPUSoftirq = f(func(r Measurement) float64 { return r.CPUSoftirq })
	return m
}

// Median of v (the mean of the middle two for an even count).
func Median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// WriteTable prints the report as a table.
func (r *Report) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "flood %s, %v per run, median of %d run(s)\n\n", r.Flood, r.Duration, r.Runs)
	fmt.Fprintf(w, "%-20s %9s %9s %9s %9s %8s %8s %9s %9s %6s %6s\n",
		"config", "offered", "received", "ring-drop", "dropped", "vs ipt", "legit ok", "p50", "p99", "cpu", "sirq")
	fmt.Fprintf(w, "%-20s %9s %9s %9s %9s %8s %8s %9s %9s %6s %6s\n",
		"", "Mpps", "Mpps", "Mpps", "Mpps", "", "", "", "", "", "")
	for _, m := range r.Results {
		if m.Skipped != "" {
			fmt.Fprintf(w, "%-20s skipped: %s\n", m.Config, m.Skipped)
			continue
		}
		ratio := "-"
		if m.DroppedVsIptables > 0 {
			ratio = fmt.Sprintf("%.2fx", m.DroppedVsIptables)
		}
		fmt.Fprintf(w, "%-20s %9.3f %9.3f %9.3f %9.3f %8s %7.1f%% %9s %9s %5.0f%% %5.0f%%\n",
			m.Config, m.OfferedPPS/1e6, m.ReceivedPPS/1e6, m.RingDroppedPPS/1e6, m.DroppedPPS/1e6, ratio,
			100*m.SuccessRate, fmtDur(m.P50), fmtDur(m.P99), 100*m.CPUBusy, 100*m.CPUSoftirq)
	}
	fmt.Fprintln(w)
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	fmt.Fprintf(w, "note: cpu and sirq are shares of all %d CPUs\n", runtime.NumCPU())
}

// WriteJSON prints the report as JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func fmtDur(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Millisecond).String()
}
