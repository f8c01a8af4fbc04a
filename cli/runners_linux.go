package cli

import (
	"context"
	"os"

	"github.com/sluice-project/sluice/daemon"
	"github.com/sluice-project/sluice/internal/benchlive"
	"github.com/sluice-project/sluice/internal/testnet"
)

// The live tiers plug into `sluice demo` and `sluice bench live` here:
// each runner starts sluice with the built-in example ruleset on an
// interface of the benchmark's server namespace.
func init() {
	benchlive.RegisterRunner(benchlive.TierAFXDP, afxdpRunner)
}

func afxdpRunner(ctx context.Context, ns *testnet.NS, iface string) (func() error, error) {
	rf := ruleFlags{iface: iface}
	l, err := rf.load()
	if err != nil {
		return nil, err
	}
	pr, _, err := l.compile(daemon.Monotonic())
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
		d, err = daemon.Start(daemon.Config{Iface: iface, Program: pr, LockDir: lockDir})
		return err
	})
	if err != nil {
		os.RemoveAll(lockDir)
		return nil, err
	}
	return func() error {
		err := d.Stop()
		os.RemoveAll(lockDir)
		return err
	}, nil
}
