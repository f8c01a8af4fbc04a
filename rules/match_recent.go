package rules

import (
	"fmt"
	"net/netip"

	"github.com/sluice-project/sluice/engine/recent"
	"github.com/sluice-project/sluice/packet"
)

// Recent is -m recent (net/netfilter/xt_recent.c).
type Recent struct {
	Cfg recent.Config
}

func (*Recent) Name() string { return "recent" }

func (p *parser) recentMatch() MatchParser {
	cfg := recent.Config{Name: "DEFAULT", Family: p.opt.Family, RSource: true}
	if p.opt.Family == packet.FamilyIPv6 {
		cfg.Mask = netip.IPv6Unspecified()
	} else {
		cfg.Mask = netip.IPv4Unspecified()
	}
	ops := 0
	op := func(dst *bool) optFunc {
		return func(inv bool, a *Args) error {
			ops++
			if ops > 1 {
				return a.Errorf("recent takes one of --set, --rcheck, --update and --remove")
			}
			*dst, cfg.Invert = true, inv
			return nil
		}
	}
	u32opt := func(dst *uint32) optFunc {
		return func(inv bool, a *Args) error {
			v, err := a.Next()
			if err != nil {
				return err
			}
			n, err := parseCUint(v, 32)
			if err != nil {
				return a.Errorf("%q is not a number", v)
			}
			*dst = uint32(n)
			return nil
		}
	}
	maskSet := false
	sm := newSimple(map[string]optFunc{
		"set":    op(&cfg.Set),
		"rcheck": op(&cfg.Check),
		"update": op(&cfg.Update),
		"remove": op(&cfg.Remove),
		"seconds": func(inv bool, a *Args) error {
			// libxt_recent: XTTYPE_UINT32 with min 1.
			if err := u32opt(&cfg.Seconds)(inv, a); err != nil {
				return err
			}
			if cfg.Seconds == 0 {
				return a.Errorf("--seconds must be at least 1")
			}
			return nil
		},
		"hitcount": u32opt(&cfg.Hitcount),
		"reap":     func(inv bool, a *Args) error { cfg.Reap = true; return nil },
		"rttl":     func(inv bool, a *Args) error { cfg.RTTL = true; return nil },
		"rsource":  func(inv bool, a *Args) error { cfg.RSource, cfg.RDest = true, false; return nil },
		"rdest":    func(inv bool, a *Args) error { cfg.RSource, cfg.RDest = false, true; return nil },
		"name": func(inv bool, a *Args) error {
			v, err := a.Next()
			if err != nil {
				return err
			}
			if v == "" || len(v) >= recent.NameLen {
				return a.Errorf("--name must be 1 to %d characters", recent.NameLen-1)
			}
			cfg.Name = v
			return nil
		},
		"mask": func(inv bool, a *Args) error {
			v, err := a.Next()
			if err != nil {
				return err
			}
			// XTTYPE_HOST: the numeric forms, then the resolver's.
			m, ok := parseNumericAddr(v, p.opt.Family, true)
			if !ok {
				return a.Errorf("--mask %q is not an address of this family", v)
			}
			cfg.Mask, cfg.MaskGiven, maskSet = m, true, true
			return nil
		},
	}, nil)
	for o := range sm.opts {
		switch o {
		case "set", "rcheck", "update", "remove":
		default:
			sm.noInvert[o] = true
		}
	}
	sm.finish = func() (Match, error) {
		if ops == 0 {
			return nil, fmt.Errorf("recent needs one of --set, --rcheck, --update and --remove")
		}
		if !maskSet {
			// libxt_recent's init: an all-ones mask, all 16 bytes of it
			// even for iptables (MaskGiven false tells the engine).
			if p.opt.Family == packet.FamilyIPv6 {
				cfg.Mask = netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")
			} else {
				cfg.Mask = netip.MustParseAddr("255.255.255.255")
			}
		}
		// Validate as recent_mt_check would, so a bad rule fails here
		// with its position rather than at compile time.
		if _, err := recent.NewRegistry(p.hz()).Get(cfg); err != nil {
			return nil, err
		}
		return &Recent{Cfg: cfg}, nil
	}
	return sm
}
