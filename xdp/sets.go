package xdp

import (
	"encoding/binary"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/sluice-project/sluice/engine/ipset"
	"github.com/sluice-project/sluice/packet"
	"github.com/sluice-project/sluice/rules"
)

// SetMap is one ipset set compiled to a BPF map. Its MapSpec carries the
// set's contents, which Load writes into the new map.
type SetMap struct {
	Name string // the set's name
	Type string // the set's type ("hash:net", ...)
	// Ref is the name the program's map loads refer to.
	Ref string
	Map *ebpf.MapSpec
}

// Values of a hash:net set's LPM trie.
const (
	netMatch   = 1
	netNomatch = 2
)

// setReason says why -m set m cannot run in XDP in a ruleset of family
// fam, or "".
func setReason(m *rules.Set, fam packet.Family) string {
	s := m.Set
	if s == nil {
		return "set " + m.SetName + " is not loaded"
	}
	if setNever(m, fam) {
		return "" // never tested: a constant
	}
	if fam != packet.FamilyIPv4 {
		return fmt.Sprintf("set %s: sets are compiled to BPF maps for IPv4 rulesets only", s.Name())
	}
	switch {
	case s.HasTimeouts():
		return fmt.Sprintf("set %s has timeouts: its answer depends on time", s.Name())
	case s.HasCounters():
		return fmt.Sprintf("set %s has counters, which userspace keeps", s.Name())
	case m.Flags.PacketsOp != ipset.CounterNone || m.Flags.BytesOp != ipset.CounterNone:
		return "set counter comparisons are not compiled"
	}
	switch s.Type() {
	case "hash:ip", "hash:net", "bitmap:port":
		return ""
	}
	return fmt.Sprintf("set type %s is not compiled to a BPF map yet", s.Type())
}

// setNever reports whether ip_set_test refuses m before any lookup in a
// ruleset of family fam: too few directions, or a set of the other family.
func setNever(m *rules.Set, fam packet.Family) bool {
	s := m.Set
	return len(m.Dirs) < s.Dims() || (s.Family() != packet.FamilyNone && s.Family() != fam)
}

// setMap returns the reference of s's map, creating its spec on first use.
func (g *gen) setMap(s *ipset.Set) string {
	for _, sm := range g.spec.Sets {
		if sm.Name == s.Name() {
			return sm.Ref
		}
	}
	ref := fmt.Sprintf("set_%d", len(g.spec.Sets))
	ms := &ebpf.MapSpec{Name: mapName(s.Name())}
	switch s.Type() {
	case "hash:ip":
		ps := s.Prefixes4()
		ms.Type, ms.KeySize, ms.ValueSize = ebpf.Hash, 4, 1
		ms.MaxEntries = uint32(max(len(ps), 1))
		for _, p := range ps {
			ms.Contents = append(ms.Contents, ebpf.MapKV{Key: p.Addr, Value: uint8(1)})
		}
	case "hash:net":
		ps := s.Prefixes4()
		ms.Type, ms.KeySize, ms.ValueSize = ebpf.LPMTrie, 8, 1
		ms.Flags = 1 // BPF_F_NO_PREALLOC, required for LPM tries
		ms.MaxEntries = uint32(max(len(ps), 1))
		for _, p := range ps {
			var k [8]byte
			binary.NativeEndian.PutUint32(k[:4], uint32(p.Len))
			binary.BigEndian.PutUint32(k[4:], p.Addr)
			v := uint8(netMatch)
			if p.Nomatch {
				v = netNomatch
			}
			ms.Contents = append(ms.Contents, ebpf.MapKV{Key: k, Value: v})
		}
	case "bitmap:port":
		ports := s.Ports()
		ms.Type, ms.KeySize, ms.ValueSize = ebpf.Hash, 4, 1
		ms.MaxEntries = uint32(max(len(ports), 1))
		for _, p := range ports {
			ms.Contents = append(ms.Contents, ebpf.MapKV{Key: uint32(p), Value: uint8(1)})
		}
	}
	g.spec.Sets = append(g.spec.Sets, SetMap{Name: s.Name(), Type: s.Type(), Ref: ref, Map: ms})
	return ref
}

// mapName makes a kernel object name (15 characters of [A-Za-z0-9_.]).
func mapName(set string) string {
	b := []byte("s_")
	for i := 0; i < len(set) && len(b) < 15; i++ {
		c := set[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' {
			b = append(b, c)
		} else {
			b = append(b, '_')
		}
	}
	return string(b)
}

// setMatch emits xt_set's set_match_v4 for a set setReason accepts:
// ip_set_test's family and dimension checks, the type's lookup, then
// --return-nomatch and `!`.
func (g *gen) setMatch(m *rules.Set, fail string) {
	s := m.Set
	yes, no := g.label(), g.label()
	defer func() {
		if m.Flags.Invert {
			g.place(yes)
			g.ja(fail)
			g.place(no)
		} else {
			g.place(no)
			g.ja(fail)
			g.place(yes)
		}
	}()
	if setNever(m, g.fam) {
		g.ja(no)
		return
	}
	addrSlot := int16(sSrc)
	if m.Dirs[0] == ipset.DirDst {
		addrSlot = sDst
	}
	ref := g.setMap(s)
	switch s.Type() {
	case "hash:ip":
		// ip & netmask; 0 never matches (hash_ip4_kadt).
		g.ld(asm.R1, addrSlot)
		if nm := s.Netmask(); nm < 32 {
			var mask uint32
			if nm > 0 {
				mask = ^uint32(0) << (32 - nm)
			}
			g.emit(asm.And.Imm32(asm.R1, int32(mask)))
		}
		g.emit(
			asm.JEq.Imm(asm.R1, 0, no),
			asm.StoreMem(asm.R10, sSetKey, asm.R1, asm.Word),
		)
		g.lookup(ref)
		g.emit(asm.JEq.Imm(asm.R0, 0, no))
		g.ja(yes)
	case "hash:net":
		// Longest prefix first; with no timeouts or counters the first
		// entry decides (mtype_test_cidrs), nomatch flag included.
		g.ld(asm.R1, addrSlot)
		g.emit(
			asm.HostTo(asm.BE, asm.R1, asm.Word),
			asm.StoreMem(asm.R10, sSetKey+4, asm.R1, asm.Word),
			asm.Mov.Imm(asm.R1, 32),
			asm.StoreMem(asm.R10, sSetKey, asm.R1, asm.Word),
		)
		g.lookup(ref)
		g.emit(
			asm.JEq.Imm(asm.R0, 0, no),
			asm.LoadMem(asm.R1, asm.R0, 0, asm.Byte),
		)
		if m.Flags.ReturnNomatch {
			g.emit(asm.JEq.Imm(asm.R1, netNomatch, yes))
		} else {
			g.emit(asm.JEq.Imm(asm.R1, netMatch, yes))
		}
		g.ja(no)
	case "bitmap:port":
		// ip_set_get_ip4_port: TCP (20-byte header) and UDP (8) only,
		// first fragments only.
		portSlot := int16(sSport)
		if m.Dirs[0] == ipset.DirDst {
			portSlot = sDport
		}
		tcp, udp, got := g.label(), g.label(), g.label()
		g.ld(asm.R1, sFrag)
		g.emit(asm.JNE.Imm(asm.R1, 0, no))
		g.ld(asm.R2, sL4Len)
		g.ld(asm.R1, sProto)
		g.emit(
			asm.JEq.Imm(asm.R1, packet.ProtoTCP, tcp),
			asm.JEq.Imm(asm.R1, packet.ProtoUDP, udp),
		)
		g.ja(no)
		g.place(tcp)
		g.emit(asm.JLT.Imm(asm.R2, 20, no))
		g.ja(got)
		g.place(udp)
		g.emit(asm.JLT.Imm(asm.R2, 8, no))
		g.place(got)
		g.ld(asm.R1, portSlot)
		g.emit(asm.StoreMem(asm.R10, sSetKey, asm.R1, asm.Word))
		g.lookup(ref)
		g.emit(asm.JEq.Imm(asm.R0, 0, no))
		g.ja(yes)
	default:
		panic("setMatch: " + s.Type())
	}
}

// lookup calls bpf_map_lookup_elem(ref, &key at sSetKey): R0 = value or
// NULL; R1-R5 are clobbered.
func (g *gen) lookup(ref string) {
	g.emit(
		asm.LoadMapPtr(asm.R1, 0).WithReference(ref),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, sSetKey),
		asm.FnMapLookupElem.Call(),
	)
}
