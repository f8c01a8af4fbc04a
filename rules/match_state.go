package rules

import (
	"fmt"
	"strings"

	"github.com/sluice-project/sluice/engine/ipset"
	"github.com/sluice-project/sluice/engine/limit"
)

// Limit is -m limit (net/netfilter/xt_limit.c).
type Limit struct {
	Cfg limit.Config
}

// Set is -m set --match-set NAME DIRS (net/netfilter/xt_set.c).
type Set struct {
	SetName string
	Set     *ipset.Set
	Dirs    []ipset.Dir
	Flags   ipset.MatchFlags
}

func (*Limit) Name() string { return "limit" }
func (*Set) Name() string   { return "set" }

func (p *parser) limitMatch() MatchParser {
	m := &Limit{Cfg: limit.Config{Avg: limit.DefaultAvg, Burst: limit.DefaultBurst}}
	sm := newSimple(map[string]optFunc{
		"limit": func(inv bool, a *Args) error {
			v, err := a.Next()
			if err != nil {
				return err
			}
			if m.Cfg.Avg, err = limit.ParseRate(v); err != nil {
				return a.Wrap(err)
			}
			return nil
		},
		"limit-burst": func(inv bool, a *Args) error {
			v, err := a.Next()
			if err != nil {
				return err
			}
			n, err := parseCUint(v, 32)
			if err != nil || n > 10000 {
				return a.Errorf("--limit-burst %q is not 0-10000", v)
			}
			m.Cfg.Burst = uint32(n)
			return nil
		},
	}, nil)
	sm.noInvert["limit"], sm.noInvert["limit-burst"] = true, true
	line := p.line
	sm.finish = func() (Match, error) {
		if err := m.Cfg.Check(p.hz()); err != nil {
			return nil, err
		}
		st, _ := limit.New(m.Cfg, p.hz(), 0)
		if allowed := st.Allowed(); allowed != uint64(m.Cfg.Burst) {
			p.warn(line, "limit %s with burst %d: the kernel's 32-bit credit arithmetic allows %d packets back to back, not %d (sluice does the same)",
				limit.FormatRate(m.Cfg.Avg), m.Cfg.Burst, allowed, m.Cfg.Burst)
		}
		return m, nil
	}
	return sm
}

func (p *parser) hz() uint64 {
	if p.opt.HZ == 0 {
		return 250
	}
	return p.opt.HZ
}

func (p *parser) setMatch() MatchParser {
	m := &Set{}
	counter := func(isBytes bool, op ipset.CounterOp) optFunc {
		return func(inv bool, a *Args) error {
			v, err := a.Next()
			if err != nil {
				return err
			}
			n, err := parseCUint(v, 64)
			if err != nil {
				return a.Errorf("counter value %q is not a number", v)
			}
			if inv {
				if op != ipset.CounterEQ {
					return a.Errorf("only the -eq counter comparisons can be negated")
				}
				op = ipset.CounterNE
			}
			if isBytes {
				m.Flags.BytesOp, m.Flags.Bytes = op, n
			} else {
				m.Flags.PacketsOp, m.Flags.Packets = op, n
			}
			return nil
		}
	}
	matchSet := func(inv bool, a *Args) error {
		if m.SetName != "" {
			return a.Errorf("one --match-set per -m set")
		}
		name, err := a.Next()
		if err != nil {
			return err
		}
		if p.opt.Sets == nil || p.opt.Sets.Get(name) == nil {
			return a.Errorf("no ipset named %q (give the sets file with --sets)", name)
		}
		m.SetName, m.Set, m.Flags.Invert = name, p.opt.Sets.Get(name), inv
		dirs, err := a.Next()
		if err != nil {
			return err
		}
		// libxt_set parse_dirs compares the first three letters only:
		// "srcX" is src, "dst\" is dst.
		for _, d := range strings.Split(dirs, ",") {
			switch {
			case strings.HasPrefix(d, "src"):
				m.Dirs = append(m.Dirs, ipset.DirSrc)
			case strings.HasPrefix(d, "dst"):
				m.Dirs = append(m.Dirs, ipset.DirDst)
			default:
				return a.Errorf("direction %q must be src or dst", d)
			}
		}
		if len(m.Dirs) > 6 {
			return a.Errorf("at most 6 directions (IPSET_DIM_MAX)")
		}
		return nil
	}
	sm := newSimple(map[string]optFunc{
		"match-set": matchSet,
		"set": func(inv bool, a *Args) error {
			if m.SetName != "" {
				return a.Errorf("--set here belongs to -m set (its old name for --match-set), as iptables gives an option two loaded matches know to the one first loaded last; iptables-restore rejects this rule too: put -m recent's --set before the first -m set")
			}
			return matchSet(inv, a)
		},
		"return-nomatch": func(inv bool, a *Args) error {
			m.Flags.ReturnNomatch = true
			return nil
		},
		"update-counters": func(inv bool, a *Args) error {
			m.Flags.SkipCounterUpdate = inv
			return nil
		},
		"update-subcounters": func(inv bool, a *Args) error {
			m.Flags.SkipSubcounterUpdate = inv
			return nil
		},
		"packets-eq": counter(false, ipset.CounterEQ),
		"packets-lt": counter(false, ipset.CounterLT),
		"packets-gt": counter(false, ipset.CounterGT),
		"bytes-eq":   counter(true, ipset.CounterEQ),
		"bytes-lt":   counter(true, ipset.CounterLT),
		"bytes-gt":   counter(true, ipset.CounterGT),
	}, func() (Match, error) {
		if m.SetName == "" {
			return nil, fmt.Errorf("set needs --match-set NAME src|dst[,...]")
		}
		return m, nil
	})
	sm.noInvert["return-nomatch"] = true
	return sm
}
