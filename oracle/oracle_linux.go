package oracle

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"time"

	"github.com/sluice-project/sluice/internal/testnet"
	"github.com/sluice-project/sluice/report"
)

// Available returns nil when Run can work here: root, the binaries it
// runs, and network namespaces that can be created.
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("oracle: not root: network namespaces, veths and iptables need root (run as root or with sudo)")
	}
	for _, tool := range []struct{ bin, pkg string }{
		{"ip", "iproute2"},
		{"ipset", "ipset"},
		{"iptables-legacy-restore", "iptables"},
		{"iptables-legacy-save", "iptables"},
		{"iptables-legacy", "iptables"},
		{"ip6tables-legacy-restore", "iptables"},
		{"ip6tables-legacy-save", "iptables"},
		{"ip6tables-legacy", "iptables"},
	} {
		if _, err := exec.LookPath(tool.bin); err != nil {
			return fmt.Errorf("oracle: %s not found: apt-get install %s", tool.bin, tool.pkg)
		}
	}
	ns, err := testnet.NewNS("probe")
	if err != nil {
		return fmt.Errorf("oracle: cannot create a network namespace: %w", err)
	}
	if err := ns.Close(); err != nil {
		return fmt.Errorf("oracle: cannot delete a network namespace: %w", err)
	}
	return nil
}

// Run loads spec into a fresh namespace, sends frames into it and returns
// the kernel's counters. See the package documentation for the setup and
// for what the kernel does with frames before netfilter sees them.
func Run(ctx context.Context, spec Spec, frames []Frame, opt Options) (rep *report.Report, err error) {
	if spec.Backend != Legacy && spec.Backend != NFT {
		return nil, fmt.Errorf("oracle: unknown backend %v", spec.Backend)
	}
	repeat := max(opt.Repeat, 1)
	timeout := opt.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	pair, err := testnet.NewPair(testnet.PairOptions{Prefix: "oracle", BIfName: spec.Iface})
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := pair.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	if len(spec.Sets) > 0 {
		if _, err := pair.B.RunInput(ctx, spec.Sets, "ipset", "restore"); err != nil {
			return nil, fmt.Errorf("oracle: load sets: %w", err)
		}
	}
	type fam struct {
		name  string
		rules []byte
	}
	fams := []fam{{"ipv4", spec.Rules4}, {"ipv6", spec.Rules6}}
	for _, f := range fams {
		if len(f.rules) == 0 {
			continue
		}
		if _, err := pair.B.RunInput(ctx, f.rules, spec.Backend.tool(f.name, "restore"), xtablesWaitRestore); err != nil {
			return nil, fmt.Errorf("oracle: load %s rules: %w", f.name, err)
		}
		// Restore without -c starts at zero already; zero again so that
		// counters in the input file cannot leak into the result.
		for _, table := range tablesIn(f.rules) {
			if _, err := pair.B.Run(ctx, spec.Backend.tool(f.name, ""), "-w", xtablesWaitSecs, "-t", table, "-Z"); err != nil {
				return nil, fmt.Errorf("oracle: zero %s %s counters: %w", f.name, table, err)
			}
		}
	}

	sender, err := pair.NewSender()
	if err != nil {
		return nil, err
	}
	defer sender.Close()
	before, err := pair.Counters()
	if err != nil {
		return nil, err
	}
	var sent uint64
	err = testnet.Pinned(func() error {
		start := time.Now()
		var offset time.Duration // added per repeat so paced repeats keep their gaps
		for r := 0; r < repeat; r++ {
			var last time.Duration
			for i, f := range frames {
				if err := ctx.Err(); err != nil {
					return fmt.Errorf("oracle: stopped after %d frames: %w", sent, err)
				}
				if opt.Pace && len(frames) > 0 {
					last = time.Duration(f.Time - frames[0].Time)
					if d := time.Until(start.Add(offset + last)); d > 0 {
						t := time.NewTimer(d)
						select {
						case <-t.C:
						case <-ctx.Done():
							t.Stop()
							return fmt.Errorf("oracle: stopped after %d frames: %w", sent, ctx.Err())
						}
					}
				}
				if err := sender.Send(f.Data); err != nil {
					return fmt.Errorf("oracle: frame %d (repeat %d): %w", i, r, err)
				}
				sent++
			}
			offset += last
		}
		return pair.Barrier(ctx)
	})
	if err != nil {
		return nil, err
	}
	after, err := pair.Counters()
	if err != nil {
		return nil, err
	}
	if err := testnet.CheckDelivered(before, after, sent+1, sender.Requeued); err != nil {
		return nil, fmt.Errorf("oracle: %w", err)
	}

	rep = &report.Report{Packets: sent, Tables: []report.Table{}}
	for _, f := range fams {
		if len(f.rules) == 0 {
			continue
		}
		out, err := pair.B.Run(ctx, spec.Backend.tool(f.name, "save"), "-c")
		if err != nil {
			return nil, fmt.Errorf("oracle: read %s counters: %w", f.name, err)
		}
		tables, err := ParseCounters(f.name, out)
		if err != nil {
			return nil, err
		}
		rep.Tables = append(rep.Tables, tables...)
	}
	return rep, nil
}

// The xtables lock (/run/xtables.lock) is one file for every network
// namespace: iptables-legacy in another namespace (a parallel test, the
// host's firewall) may hold it, and without a wait the command fails at
// once. The nft tools accept and ignore the option.
const (
	xtablesWaitSecs    = "10"
	xtablesWaitRestore = "--wait=" + xtablesWaitSecs
)
