package rules

import (
	"fmt"

	"github.com/sluice-project/sluice/engine/cbpf"
	"github.com/sluice-project/sluice/engine/strmatch"
	"github.com/sluice-project/sluice/engine/u32"
)

// U32 is -m u32 --u32 EXPR (net/netfilter/xt_u32.c).
type U32 struct {
	M      *u32.Match
	Invert bool
}

// BPF is -m bpf --bytecode: classic BPF run from the IP header
// (net/netfilter/xt_bpf.c). xt_bpf has no inversion.
type BPF struct {
	F *cbpf.Filter
}

// String is -m string (net/netfilter/xt_string.c).
type String struct {
	M      *strmatch.Matcher
	Invert bool
}

func (*U32) Name() string    { return "u32" }
func (*BPF) Name() string    { return "bpf" }
func (*String) Name() string { return "string" }

func u32Match() MatchParser {
	m := &U32{}
	return newSimple(map[string]optFunc{
		"u32": func(inv bool, a *Args) error {
			v, err := a.Next()
			if err != nil {
				return err
			}
			if m.M, err = u32.Parse(v); err != nil {
				return a.Wrap(err)
			}
			if n, wide := m.M.WideShift(); wide {
				// net/netfilter/xt_u32.c u32_mt_checkentry: EINVAL.
				return a.Errorf("u32 shift by %d: the kernel refuses shift counts of 32 or more (older kernels shifted by the count modulo 32)", n)
			}
			m.Invert = inv
			return nil
		},
	}, func() (Match, error) {
		if m.M == nil {
			return nil, fmt.Errorf("u32 needs --u32")
		}
		return m, nil
	})
}

func bpfMatch() MatchParser {
	m := &BPF{}
	sm := newSimple(map[string]optFunc{
		"bytecode": func(inv bool, a *Args) error {
			v, err := a.Next()
			if err != nil {
				return err
			}
			prog, err := cbpf.ParseBytecode(v)
			if err != nil {
				return a.Wrap(err)
			}
			if m.F, err = cbpf.Compile(prog); err != nil {
				return a.Wrap(err)
			}
			return nil
		},
		"object-pinned": func(inv bool, a *Args) error {
			return a.Errorf("bpf --object-pinned loads an eBPF object from the kernel, which sluice cannot run; use --bytecode")
		},
	}, func() (Match, error) {
		if m.F == nil {
			return nil, fmt.Errorf("bpf needs --bytecode")
		}
		return m, nil
	})
	sm.noInvert["bytecode"] = true
	return sm
}

func stringMatch() MatchParser {
	var (
		pattern    []byte
		hasPattern bool
		invert     bool
		algo       strmatch.Algo
		hasAlgo    bool
		from       uint32
		to         uint32 = 65535 // libxt_string's init: to_offset = UINT16_MAX
		icase      bool
	)
	offset := func(dst *uint32) optFunc {
		return func(inv bool, a *Args) error {
			v, err := a.Next()
			if err != nil {
				return err
			}
			n, err := parseCUint(v, 16)
			if err != nil {
				return a.Errorf("offset %q is not 0-65535", v)
			}
			*dst = uint32(n)
			return nil
		}
	}
	pat := func(hex bool) optFunc {
		return func(inv bool, a *Args) error {
			if hasPattern {
				return a.Errorf("only one --string or --hex-string")
			}
			v, err := a.Next()
			if err != nil {
				return err
			}
			if hex {
				if pattern, err = strmatch.ParseHexString(v); err != nil {
					return a.Wrap(err)
				}
			} else {
				pattern = []byte(v)
			}
			hasPattern, invert = true, inv
			return nil
		}
	}
	sm := newSimple(map[string]optFunc{
		"from":       offset(&from),
		"to":         offset(&to),
		"string":     pat(false),
		"hex-string": pat(true),
		"algo": func(inv bool, a *Args) error {
			v, err := a.Next()
			if err != nil {
				return err
			}
			if algo, err = strmatch.ParseAlgo(v); err != nil {
				return a.Wrap(err)
			}
			hasAlgo = true
			return nil
		},
		"icase": func(inv bool, a *Args) error { icase = true; return nil },
	}, nil)
	sm.finish = func() (Match, error) {
		if !hasPattern {
			return nil, fmt.Errorf("string needs --string or --hex-string")
		}
		if !hasAlgo {
			return nil, fmt.Errorf("string needs --algo bm or --algo kmp")
		}
		m, err := strmatch.New(pattern, algo, from, to, icase)
		if err != nil {
			return nil, err
		}
		return &String{M: m, Invert: invert}, nil
	}
	for _, o := range []string{"from", "to", "algo", "icase"} {
		sm.noInvert[o] = true
	}
	return sm
}
