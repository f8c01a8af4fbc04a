package cli

import (
	"context"
	"os"

	"github.com/sluice-project/sluice/daemon"
	"github.com/sluice-project/sluice/engine/hashlimit"
	"github.com/sluice-project/sluice/internal/benchlive"
	"github.com/sluice-project/sluice/internal/testnet"
)

// The live tiers plug into `sluice demo` and `sluice bench live` here:
// each runner starts sluice with the built-in example ruleset on an
// interface of the benchmark's server namespace.
func init() {
	benchlive.RegisterRunner(benchlive.TierAFXDP, func(ctx context.Context, ns *testnet.NS, iface string) (*benchlive.Attachment, error) {
		return liveRunner(ns, iface, false)
	})
	benchlive.RegisterRunner(benchlive.TierXDP, func(ctx context.Context, ns *testnet.NS, iface string) (*benchlive.Attachment, error) {
		return liveRunner(ns, iface, true)
	})
}

// liveRunner starts sluice on iface in ns: the AF_XDP tier alone, or
// (withXDP) as `sluice run --mode auto` does, the compiled XDP program with
// the AF_XDP tier resuming at its fallback sites.
func liveRunner(ns *testnet.NS, iface string, withXDP bool) (*benchlive.Attachment, error) {
	rf := ruleFlags{iface: iface}
	l, err := rf.load()
	if err != nil {
		return nil, err
	}
	pr, ps, err := l.compile(daemon.Monotonic())
	if err != nil {
		return nil, err
	}
	lockDir, err := os.MkdirTemp("", "sluice-bench-lock-")
	if err != nil {
		return nil, err
	}
	var d *daemon.Daemon
	err = ns.Do(func() error {
		var err error
		cfg := daemon.Config{Iface: iface, Program: pr, LockDir: lockDir}
		if withXDP {
			cfg.XDP = &daemon.XDPConfig{Iface: iface, InIface: iface, Rules4: ps.r4, Rules6: ps.r6,
				RateLimitsInXDP: l.hlFull == hashlimit.FullDrop, HZ: l.hz}
		}
		d, err = daemon.Start(cfg)
		return err
	})
	if err != nil {
		os.RemoveAll(lockDir)
		return nil, err
	}
	return &benchlive.Attachment{
		Stop: func() error {
			err := d.Stop()
			os.RemoveAll(lockDir)
			return err
		},
		Dropped: func() (uint64, error) {
			r := d.Report()
			return r.Dropped + r.Malformed, nil
		},
	}, nil
}
