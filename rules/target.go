package rules

import (
	"fmt"
	"strconv"
	"strings"
)

type targetParser struct {
	t    Target
	tok  token
	name string
	seen map[string]bool
}

func (p *parser) targetOpt(b *ruleBuilder, c *Chain, t token, invert bool, a *Args) error {
	if invert {
		return p.errAt(t, "cannot negate a target")
	}
	if b.tgt != nil {
		return p.errAt(t, "a rule has one target")
	}
	name, err := a.Next()
	if err != nil {
		return err
	}
	nt := a.toks[a.i-1]
	tp := &targetParser{tok: nt, name: name, seen: map[string]bool{}}
	gotoT := t.s == "-g" || t.s == "--goto"
	switch name {
	case "ACCEPT":
		tp.t.Kind = TargetAccept
	case "DROP":
		tp.t.Kind = TargetDrop
	case "RETURN":
		tp.t.Kind = TargetReturn
	case "REJECT":
		tp.t.Kind = TargetReject
		if p.table.Name == "raw" || (c.Builtin && c.Name == "PREROUTING") {
			return p.errAt(nt, "REJECT is valid only in INPUT, FORWARD and OUTPUT chains")
		}
		p.warn(p.line, "REJECT: sluice drops the packet, as the kernel does, but sends no reply; the reply goes out only when the kernel itself evaluates this rule")
	case "LOG":
		tp.t.Kind = TargetLog
		tp.t.LogLevel = 4
	case "NFLOG":
		tp.t.Kind = TargetNFLog
	case "NOTRACK":
		tp.t.Kind = TargetNotrack
		if p.table.Name != "raw" {
			return p.errAt(nt, "NOTRACK is valid only in the raw table")
		}
	case "CT":
		tp.t.Kind = TargetNotrack
		if p.table.Name != "raw" {
			return p.errAt(nt, "CT is valid only in the raw table")
		}
	default:
		if strings.HasPrefix(name, "-") || name == "" {
			return p.errAt(nt, "missing target name")
		}
		if tc := p.table.Chain(name); tc != nil {
			if tc.Builtin {
				return p.errAt(nt, "cannot jump to a built-in chain")
			}
			tp.t.Kind = TargetJump
			tp.t.Chain = name
		} else if isKnownTarget(name) {
			return p.errAt(nt, fmt.Sprintf("target %s is not supported by sluice (it changes packets or connection state, which belongs to the kernel behind sluice)", name))
		} else {
			return p.errAt(nt, fmt.Sprintf("no chain or target named %q (declare user chains with :%s - before using them)", name, name))
		}
	}
	if gotoT {
		if tp.t.Kind != TargetJump {
			return p.errAt(nt, "-g needs a user chain")
		}
		tp.t.Kind = TargetGoto
	}
	b.tgt = tp
	return nil
}

func isKnownTarget(n string) bool {
	switch n {
	case "MARK", "CONNMARK", "DNAT", "SNAT", "MASQUERADE", "REDIRECT", "TPROXY", "TOS", "DSCP", "TTL", "HL",
		"TCPMSS", "SYNPROXY", "SET", "CLASSIFY", "TEE", "NFQUEUE", "QUEUE", "AUDIT", "CHECKSUM", "SECMARK",
		"CONNSECMARK", "IDLETIMER", "LED", "RATEEST", "TRACE", "ULOG", "HMARK", "CLUSTERIP", "ECN", "NETMAP":
		return true
	}
	return false
}

func (tp *targetParser) option(p *parser, name string, invert bool, a *Args) (bool, error) {
	flag := func() (bool, error) {
		if invert {
			return true, a.Errorf("cannot negate --%s", name)
		}
		if tp.seen[name] {
			return true, a.Errorf("--%s given twice", name)
		}
		tp.seen[name] = true
		tp.t.Args = append(tp.t.Args, "--"+name)
		return true, nil
	}
	value := func() (string, bool, error) {
		if ok, err := flag(); err != nil {
			return "", ok, err
		}
		v, err := a.Next()
		if err != nil {
			return "", true, err
		}
		tp.t.Args = append(tp.t.Args, v)
		return v, true, nil
	}
	switch tp.name {
	case "LOG":
		switch name {
		case "log-prefix":
			v, ok, err := value()
			if err == nil && len(v) > 29 {
				err = a.Errorf("maximum prefix length is 29 characters")
			}
			tp.t.LogPrefix = v
			return ok, err
		case "log-level":
			v, ok, err := value()
			if err != nil {
				return ok, err
			}
			lvl, perr := logLevel(v)
			if perr != nil {
				return true, a.Errorf("%v", perr)
			}
			tp.t.LogLevel = lvl
			return true, nil
		case "log-tcp-sequence", "log-tcp-options", "log-ip-options", "log-uid", "log-macdecode":
			return flag()
		}
	case "NFLOG":
		switch name {
		case "nflog-group", "nflog-range", "nflog-size", "nflog-threshold":
			// libxt_NFLOG: group and threshold are u16, range and
			// size u32 and exclusive; numbers in C notation.
			if other := map[string]string{"nflog-range": "nflog-size", "nflog-size": "nflog-range"}[name]; tp.seen[other] {
				return true, a.Errorf("--%s and --%s cannot go together", other, name)
			}
			v, ok, err := value()
			if err == nil {
				max := uint64(1<<32 - 1)
				if name == "nflog-group" || name == "nflog-threshold" {
					max = 1<<16 - 1
				}
				if n, nok := cNumber(v); !nok || n > max {
					err = a.Errorf("--%s needs a number from 0 to %d", name, max)
				}
			}
			return ok, err
		case "nflog-prefix":
			v, ok, err := value()
			if err == nil && len(v) > 63 {
				err = a.Errorf("maximum prefix length is 63 characters")
			}
			tp.t.LogPrefix = v
			return ok, err
		}
	case "CT":
		switch name {
		case "notrack":
			return flag()
		case "zone", "zone-orig", "zone-reply", "helper", "timeout", "ctevents", "expevents":
			return true, a.Errorf("CT --%s changes connection tracking and is not supported; sluice supports CT --notrack", name)
		}
	case "REJECT":
		if name == "reject-with" {
			_, ok, err := value()
			return ok, err
		}
	}
	return false, nil
}

func (tp *targetParser) finish(p *parser) error {
	if tp.name == "CT" && !tp.seen["notrack"] {
		return p.errAt(tp.tok, "CT without --notrack is not supported")
	}
	return nil
}

func logLevel(s string) (int, error) {
	names := []string{"emerg", "alert", "crit", "error", "warning", "notice", "info", "debug"}
	for i, n := range names {
		if s == n {
			return i, nil
		}
	}
	switch s {
	case "panic":
		return 0, nil
	case "err":
		return 3, nil
	case "warn":
		return 4, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 7 {
		return 0, fmt.Errorf("log level %q is not 0-7 or a syslog level name", s)
	}
	return n, nil
}

// commit validates a table the way the kernel's translate_table does:
// every jump lands in a chain of this table, and no chain can reach
// itself (mark_source_chains' loop check).
func (p *parser) commit() error {
	t := p.table
	state := map[string]int{} // 0 unvisited, 1 on stack, 2 done
	var visit func(c *Chain, depth int) error
	visit = func(c *Chain, depth int) error {
		state[c.Name] = 1
		for _, r := range c.Rules {
			if r.Target.Kind != TargetJump && r.Target.Kind != TargetGoto {
				continue
			}
			tc := t.Chain(r.Target.Chain)
			switch state[tc.Name] {
			case 1:
				col := r.targetCol
				if col == 0 {
					col = 1
				}
				return &Error{File: p.opt.File, Line: r.Line, Col: col, Word: r.Target.Chain,
					Msg: fmt.Sprintf("chain loop: %s reaches itself through %s (the kernel refuses this table with ELOOP)", tc.Name, c.Name)}
			case 0:
				if err := visit(tc, depth+1); err != nil {
					return err
				}
			}
		}
		state[c.Name] = 2
		return nil
	}
	for _, c := range t.Chains {
		if state[c.Name] == 0 {
			if err := visit(c, 0); err != nil {
				return err
			}
		}
	}
	return nil
}
