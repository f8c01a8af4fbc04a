package rules

import (
	"fmt"
	"strings"

	"github.com/sluice-project/sluice/engine/hashlimit"
	"github.com/sluice-project/sluice/packet"
)

// Hashlimit is -m hashlimit, revision 3 (net/netfilter/xt_hashlimit.c).
type Hashlimit struct {
	Cfg hashlimit.Config
}

func (*Hashlimit) Name() string { return "hashlimit" }

// hashlimitMatch collects the option words first: libxt_hashlimit reads
// the burst relative to the rate (byte bursts are converted with it), so
// the conversion waits until every option is known.
func (p *parser) hashlimitMatch() MatchParser {
	var (
		rate, burst, mode, name string
		above, rateGiven        bool
		numbers                 = map[string]uint32{}
		srcMask, dstMask        = -1, -1
		rateMatch               bool
	)
	str := func(dst *string) optFunc {
		return func(inv bool, a *Args) error {
			v, err := a.Next()
			*dst = v
			return err
		}
	}
	num := func(key string) optFunc {
		return func(inv bool, a *Args) error {
			v, err := a.Next()
			if err != nil {
				return err
			}
			n, err := parseCUint(v, 32)
			if err != nil {
				return a.Errorf("--hashlimit-%s %q is not a number", key, v)
			}
			numbers[key] = uint32(n)
			return nil
		}
	}
	mask := func(dst *int) optFunc {
		return func(inv bool, a *Args) error {
			v, err := a.Next()
			if err != nil {
				return err
			}
			c, err := parseCUint(v, 8) // XTTYPE_PLEN: a C number
			n := int(c)
			max := 32
			if a.Family() == packet.FamilyIPv6 {
				max = 128
			}
			if err != nil || n < 0 || n > max {
				return a.Errorf("mask %q is not 0-%d", v, max)
			}
			*dst = n
			return nil
		}
	}
	rateOpt := func(isAbove bool) optFunc {
		return func(inv bool, a *Args) error {
			if rateGiven {
				return a.Errorf("give one of --hashlimit-upto and --hashlimit-above")
			}
			v, err := a.Next()
			if err != nil {
				return err
			}
			rate, rateGiven, above = v, true, isAbove != inv
			return nil
		}
	}
	sm := newSimple(map[string]optFunc{
		"hashlimit":                   rateOpt(false),
		"hashlimit-upto":              rateOpt(false),
		"hashlimit-above":             rateOpt(true),
		"hashlimit-burst":             str(&burst),
		"hashlimit-mode":              str(&mode),
		"hashlimit-name":              str(&name),
		"hashlimit-srcmask":           mask(&srcMask),
		"hashlimit-dstmask":           mask(&dstMask),
		"hashlimit-htable-size":       num("htable-size"),
		"hashlimit-htable-max":        num("htable-max"),
		"hashlimit-htable-expire":     num("htable-expire"),
		"hashlimit-htable-gcinterval": num("htable-gcinterval"),
		"hashlimit-rate-interval":     num("rate-interval"),
		"hashlimit-rate-match": func(inv bool, a *Args) error {
			rateMatch = true
			return nil
		},
	}, nil)
	for o := range sm.opts {
		if o != "hashlimit-upto" && o != "hashlimit-above" && o != "hashlimit" {
			sm.noInvert[o] = true
		}
	}
	sm.finish = func() (Match, error) {
		if name == "" {
			return nil, fmt.Errorf("hashlimit needs --hashlimit-name")
		}
		if !rateGiven {
			return nil, fmt.Errorf("hashlimit needs --hashlimit-upto or --hashlimit-above")
		}
		cfg := hashlimit.NewConfig(name, p.opt.Family)
		avg, bytes, mult, err := hashlimit.ParseRateMult(rate)
		if err != nil {
			return nil, err
		}
		cfg.Avg, cfg.Bytes, cfg.Above, cfg.RateMatch = avg, bytes, above, rateMatch
		if sm.seen["hashlimit-burst"] {
			if cfg.Burst, err = hashlimit.ParseBurst(burst, avg, bytes); err != nil {
				return nil, err
			}
		} else if bytes {
			cfg.Burst = 0
		}
		for _, m := range strings.Split(mode, ",") {
			switch m {
			case "":
			case "srcip":
				cfg.Mode |= hashlimit.HashSrcIP
			case "dstip":
				cfg.Mode |= hashlimit.HashDstIP
			case "srcport":
				cfg.Mode |= hashlimit.HashSrcPort
			case "dstport":
				cfg.Mode |= hashlimit.HashDstPort
			default:
				return nil, fmt.Errorf("hashlimit: bad --hashlimit-mode %q: use srcip, dstip, srcport, dstport", m)
			}
		}
		if srcMask >= 0 {
			cfg.SrcMask = uint8(srcMask)
		}
		if dstMask >= 0 {
			cfg.DstMask = uint8(dstMask)
		}
		cfg.Size, cfg.Max = numbers["htable-size"], numbers["htable-max"]
		cfg.GCInterval = numbers["htable-gcinterval"]
		cfg.Interval = numbers["rate-interval"]
		if e, ok := numbers["htable-expire"]; ok {
			cfg.Expire = e
		} else {
			cfg.Expire = hashlimit.DefaultExpire(mult, bytes, sm.seen["hashlimit-burst"])
		}
		ram := p.opt.TotalRAM
		if ram == 0 {
			ram = 4 << 30
		}
		cfg.Defaults(ram)
		if err := cfg.Check(p.hz()); err != nil {
			return nil, err
		}
		return &Hashlimit{Cfg: cfg}, nil
	}
	return sm
}
