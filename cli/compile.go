package cli

import (
	"fmt"
	"io"
	"net"

	"github.com/sluice-project/sluice/engine/hashlimit"
	"github.com/sluice-project/sluice/xdp"
)

func init() {
	register(command{name: "compile", summary: "compile the rules into an XDP program; show what runs in XDP and what falls back", run: runCompile})
}

func runCompile(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("compile", "compile [--rules F] [--rules6 F] [--sets F] [--iface-name N] [--local-mac M] [--mode auto|xdp] [--dump]", stderr)
	var rf ruleFlags
	rf.register(fs)
	dump := fs.Bool("dump", false, "print the annotated program")
	mac := fs.String("local-mac", "", "the interface's MAC: IP frames to another unicast MAC are dropped as the kernel drops them")
	mode := fs.String("mode", "auto", "compile as `sluice run --mode` would: auto (the combined tier: a limit or hashlimit table runs in BPF maps when no fallback site reaches it, else it falls back and userspace owns its buckets) or xdp (the program alone: limit and hashlimit in BPF maps)")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	l, err := rf.load()
	if err != nil {
		return err
	}
	ps, err := l.parse(0)
	if err != nil {
		return err
	}
	opts := xdp.CompileOptions{InIface: l.iface, LocalAddrs: l.localAddrs, HZ: l.hz}
	switch *mode {
	case "auto":
		// As daemon compileTier does with AF_XDP queues: hashlimit's
		// evict-oldest runs in userspace only.
		if l.hlFull == hashlimit.FullDrop {
			opts.RateLimits = xdp.RateLimitsAuto
		}
	case "xdp":
		if l.hlFull == hashlimit.FullDrop {
			opts.RateLimits = xdp.RateLimitsXDP
		}
	default:
		return &exitError{code: 2, err: fmt.Errorf("--mode %q: want auto or xdp", *mode)}
	}
	if *mac != "" {
		if opts.LocalMAC, err = net.ParseMAC(*mac); err != nil {
			return fmt.Errorf("--local-mac: %v", err)
		}
	}
	spec, err := xdp.Compile(ps.r4, ps.r6, opts)
	if err != nil {
		return err
	}
	if *dump {
		fmt.Fprintf(stdout, "%v\n", spec.Program.Instructions)
	}
	n := map[string]int{}
	for _, ri := range spec.Rules {
		n[ri.Mode]++
		mode := ri.Mode
		if ri.Sites > 1 {
			mode = fmt.Sprintf("%s x%d", mode, ri.Sites)
		}
		fmt.Fprintf(stdout, "%-12s %s %s %s line %d: %s\n", mode, ri.Family, ri.Table, ri.Chain, ri.Rule.Line, ri.Rule.Text)
		if ri.Reason != "" {
			fmt.Fprintf(stdout, "%12s   %s\n", "", ri.Reason)
		}
	}
	for i, s := range spec.Fallback {
		if s.Dead {
			continue
		}
		where := "whole packet"
		if s.Rule != nil {
			where = fmt.Sprintf("%s %s line %d", s.Table, s.Chain, s.Rule.Line)
		} else if s.Hook >= 0 {
			where = fmt.Sprintf("before %s %s", s.Table, s.Chain)
		}
		fam := "any"
		if s.Family != 0 {
			fam = s.Family.String()
		}
		fmt.Fprintf(stdout, "fallback site %d (%s, %s, %d return points pending): %s\n", i, fam, where, len(s.Stack), s.Reason)
	}
	fmt.Fprintf(stdout, "%d instructions; rules: %d in XDP, %d fall back, %d shadowed by earlier fallbacks, %d never match here, %d unreachable; %d counters\n",
		spec.Instructions(), n["xdp"], n["fallback"], n["shadowed"], n["never"], n["unreachable"], spec.NumCounters())
	return nil
}
