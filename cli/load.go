package cli

import (
	"bytes"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/sluice-project/sluice/engine"
	"github.com/sluice-project/sluice/engine/hashlimit"
	"github.com/sluice-project/sluice/engine/ipset"
	"github.com/sluice-project/sluice/engine/jiffies"
	"github.com/sluice-project/sluice/examples"
	"github.com/sluice-project/sluice/packet"
	"github.com/sluice-project/sluice/rules"
)

// ruleFlags are the flags every command that loads a ruleset shares.
type ruleFlags struct {
	rules4, rules6, sets string
	hz                   uint64
	iface                string
	local                string
	hlFull               string
}

func (rf *ruleFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&rf.rules4, "rules", "", "IPv4 rules in iptables-save format (default: the built-in example ruleset)")
	fs.StringVar(&rf.rules6, "rules6", "", "IPv6 rules in ip6tables-save format")
	fs.StringVar(&rf.sets, "sets", "", "ipset sets in `ipset save` format")
	fs.Uint64Var(&rf.hz, "hz", 0, "kernel tick rate for limit/hashlimit/recent (default: this kernel's CONFIG_HZ, else 250)")
	fs.StringVar(&rf.iface, "iface-name", "eth0", "input interface name that -i compares against")
	fs.StringVar(&rf.hlFull, "hashlimit-full", "drop", "when a hashlimit table is full: drop (the kernel's behaviour: new sources are dropped) or evict-oldest (keeps new legitimate sources working under a spoofed flood)")
	fs.StringVar(&rf.local, "local-addrs", "", "comma-separated addresses of this host, each optionally with its prefix length (IPv4 sources claiming one are martians and never reach INPUT; a prefix makes its broadcast address known)")
}

// loaded is the text of a ruleset pair and its sets, kept as read because
// `sluice verify` hands exactly this text to the kernel.
type loaded struct {
	text4, text6, sets    []byte
	name4, name6, setsNam string
	hz                    uint64
	iface                 string
	localAddrs            []netip.Addr
	localNets             []netip.Prefix
	wallOffset            int64 // engine.Config.WallOffset
	hlFull                hashlimit.FullPolicy
	builtin               bool
}

// parsed is a loaded ruleset parsed at a given load time.
type parsed struct {
	r4, r6 *rules.Ruleset
	st     *engine.State
	sets   *ipset.Registry
}

// load reads the rule files, or the embedded example when none is given.
func (rf *ruleFlags) load() (*loaded, error) {
	l := &loaded{hz: rf.hz, iface: rf.iface, name4: rf.rules4, name6: rf.rules6, setsNam: rf.sets}
	switch rf.hlFull {
	case "", "drop":
		l.hlFull = hashlimit.FullDrop
	case "evict-oldest":
		l.hlFull = hashlimit.FullEvictOldest
	default:
		return nil, fmt.Errorf("--hashlimit-full %q: use drop or evict-oldest", rf.hlFull)
	}
	if l.hz == 0 {
		if hz, err := jiffies.DetectHZ(); err == nil {
			l.hz = hz
		} else {
			l.hz = jiffies.DefaultHZ
		}
	}
	var err error
	for _, a := range strings.Split(rf.local, ",") {
		if a == "" {
			continue
		}
		if strings.Contains(a, "/") {
			pfx, err := netip.ParsePrefix(a)
			if err != nil {
				return nil, fmt.Errorf("--local-addrs: %v", err)
			}
			l.localAddrs = append(l.localAddrs, pfx.Addr())
			l.localNets = append(l.localNets, pfx)
			continue
		}
		addr, err := netip.ParseAddr(a)
		if err != nil {
			return nil, fmt.Errorf("--local-addrs: %v", err)
		}
		l.localAddrs = append(l.localAddrs, addr)
	}
	if rf.rules4 == "" && rf.rules6 == "" && rf.sets == "" {
		l.builtin = true
		l.text4, l.sets = examples.Rules4, examples.Sets
		l.name4, l.setsNam = examples.Rules4Name, examples.SetsName
		return l, nil
	}
	read := func(path string) ([]byte, error) {
		if path == "" {
			return nil, nil
		}
		return os.ReadFile(path)
	}
	if l.text4, err = read(rf.rules4); err != nil {
		return nil, err
	}
	if l.text6, err = read(rf.rules6); err != nil {
		return nil, err
	}
	if l.sets, err = read(rf.sets); err != nil {
		return nil, err
	}
	if l.text4 == nil && l.text6 == nil {
		return nil, fmt.Errorf("no rules: give --rules and/or --rules6")
	}
	return l, nil
}

// parse parses sets and rules with now as the load time (set element
// timeouts count from it). Nothing is returned unless everything parsed.
func (l *loaded) parse(now int64) (*parsed, error) { return l.parseWith(nil, now) }

// parseWith is parse against an existing engine state, for reloads: the
// new sets replace the old ones for programs compiled from now on, and
// hashlimit, recent and limit state carries over.
func (l *loaded) parseWith(st *engine.State, now int64) (*parsed, error) {
	ps := &parsed{}
	if l.sets != nil {
		reg, err := ipset.Parse(l.setsNam, bytes.NewReader(l.sets), now)
		if err != nil {
			return nil, err
		}
		ps.sets = reg
	}
	if st == nil {
		st = engine.NewState(ps.sets, l.hz)
		st.SetHashlimitFullPolicy(l.hlFull)
	} else {
		st.ReplaceSets(ps.sets)
	}
	ps.st = st
	var resolver rules.SetResolver
	if ps.sets != nil {
		resolver = ps.sets
	}
	var err error
	if l.text4 != nil {
		if ps.r4, err = rules.Parse(bytes.NewReader(l.text4), rules.Options{Family: packet.FamilyIPv4, File: l.name4, Sets: resolver, HZ: l.hz}); err != nil {
			return nil, err
		}
	}
	if l.text6 != nil {
		if ps.r6, err = rules.Parse(bytes.NewReader(l.text6), rules.Options{Family: packet.FamilyIPv6, File: l.name6, Sets: resolver, HZ: l.hz}); err != nil {
			return nil, err
		}
	}
	return ps, nil
}

// compile parses and compiles with now as the load time.
func (l *loaded) compile(now int64) (*engine.Program, *parsed, error) { return l.compileWith(nil, now) }

// compileWith parses and compiles against st (nil: a new state).
func (l *loaded) compileWith(st *engine.State, now int64) (*engine.Program, *parsed, error) {
	ps, err := l.parseWith(st, now)
	if err != nil {
		return nil, nil, err
	}
	pr, err := engine.Compile(engine.Config{Rules4: ps.r4, Rules6: ps.r6, HZ: l.hz, InIface: l.iface,
		LocalAddrs: l.localAddrs, LocalNets: l.localNets, WallOffset: l.wallOffset}, ps.st, now)
	if err != nil {
		return nil, nil, err
	}
	return pr, ps, nil
}
