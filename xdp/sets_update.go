package xdp

import (
	"slices"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// Updating sets in place.
//
// A reload that changes only the contents of sets compiled to maps (the
// common case: a threat feed refreshes the blocklist every few minutes)
// compiles to the same instructions and the same map shapes: set maps
// are sized by the set's maxelem, not its length. The daemon then writes
// the difference into the running program's maps (Filter.UpdateSets)
// instead of loading a program: the verifier does not run again, nothing
// is re-attached, and the rate-limit state stays, as `ipset restore`
// changes sets under a running iptables ruleset. A small set compiled
// into comparisons (inlineSet) is part of the instructions, so changing
// it means a new program, as a rule change does.

// SameProgram reports whether s and o are the same program over maps of
// the same shapes, so that o's set contents can be written into a
// running s (Filter.UpdateSets).
func (s *Spec) SameProgram(o *Spec) bool {
	if len(s.Sets) != len(o.Sets) || !sameInsns(s.Program.Instructions, o.Program.Instructions) ||
		!sameShape(s.Counters, o.Counters) || !sameShape(s.XSKs, o.XSKs) ||
		(s.Capture == nil) != (o.Capture == nil) || (s.RateLimits == nil) != (o.RateLimits == nil) {
		return false
	}
	for i := range s.Sets {
		a, b := &s.Sets[i], &o.Sets[i]
		if a.Name != b.Name || a.Type != b.Type || a.Ref != b.Ref || a.LeafRef != b.LeafRef ||
			!sameShape(a.Map, b.Map) || !sameShape(a.Leaf, b.Leaf) {
			return false
		}
	}
	if s.RateLimits != nil {
		a, b := s.RateLimits, o.RateLimits
		if len(a.LimitRules) != len(b.LimitRules) || len(a.Tables) != len(b.Tables) ||
			!sameShape(a.Limits, b.Limits) || !sameShape(a.GC, b.GC) {
			return false
		}
		for i := range a.LimitRules {
			if a.LimitRules[i].CreditCap != b.LimitRules[i].CreditCap || a.LimitRules[i].Cost != b.LimitRules[i].Cost {
				return false
			}
		}
		for i := range a.Tables {
			if a.Tables[i].Cfg != b.Tables[i].Cfg || !sameShape(a.Tables[i].Map, b.Tables[i].Map) {
				return false
			}
		}
	}
	return true
}

// sameInsns compares two programs instruction by instruction, map
// references and jump labels included; comments (rule text) too, since
// they travel in the same metadata as the references.
func sameInsns(a, b asm.Instructions) bool {
	return slices.EqualFunc(a, b, func(x, y asm.Instruction) bool {
		return x.OpCode == y.OpCode && x.Dst == y.Dst && x.Src == y.Src && x.Offset == y.Offset &&
			x.Constant == y.Constant && x.Reference() == y.Reference() && x.Symbol() == y.Symbol() &&
			sourceText(x) == sourceText(y)
	})
}

func sourceText(i asm.Instruction) string {
	if src := i.Source(); src != nil {
		return src.String()
	}
	return ""
}

// sameShape compares what a map's kernel object is made of, not its
// contents.
func sameShape(a, b *ebpf.MapSpec) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Type == b.Type && a.KeySize == b.KeySize && a.ValueSize == b.ValueSize &&
		a.MaxEntries == b.MaxEntries && a.Flags == b.Flags
}
