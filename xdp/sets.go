package xdp

import (
	"fmt"
	"maps"
	"slices"

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
	// LeafRef and Leaf, for an IPv4 hash:net, are the second level of
	// its table (see net4Table); "" and nil for other types.
	LeafRef string
	Leaf    *ebpf.MapSpec
}

// The 2-bit answers of a hash:net table (see net4Table) for an address
// or a /24 block.
const (
	netNone    = 0 // no entry covers it
	netMatch   = 1 // the most specific entry covering it is a match
	netNomatch = 2 // ... is a nomatch exception
	netMixed   = 3 // a /24 block whose addresses differ: see its leaf
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
	case "hash:ip", "hash:net", "hash:ip,port", "bitmap:port":
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
		ms.MaxEntries, ms.Flags = capacity(s, len(ps)), noPrealloc
		for _, p := range ps {
			ms.Contents = append(ms.Contents, ebpf.MapKV{Key: p.Addr, Value: uint8(1)})
		}
	case "hash:net":
		dir, leaves := net4Table(s.Prefixes4())
		ms.Type, ms.KeySize, ms.ValueSize, ms.MaxEntries = ebpf.Array, 4, net4Chunk, net4Entries
		for i := range net4Entries {
			if v := dir[i*net4Chunk : (i+1)*net4Chunk]; !allZero(v) {
				ms.Contents = append(ms.Contents, ebpf.MapKV{Key: uint32(i), Value: v})
			}
		}
		leaf := &ebpf.MapSpec{Name: leafName(ms.Name), Type: ebpf.Hash, KeySize: 4, ValueSize: net4Chunk,
			MaxEntries: capacity(s, len(leaves)), Flags: noPrealloc}
		for _, b := range slices.Sorted(maps.Keys(leaves)) {
			leaf.Contents = append(leaf.Contents, ebpf.MapKV{Key: b, Value: leaves[b][:]})
		}
		g.spec.Sets = append(g.spec.Sets, SetMap{Name: s.Name(), Type: s.Type(), Ref: ref, Map: ms, LeafRef: ref + "_leaf", Leaf: leaf})
		return ref
	case "hash:ip,port":
		keys := s.IPPortKeys4()
		ms.Type, ms.KeySize, ms.ValueSize = ebpf.Hash, 8, 1
		ms.MaxEntries, ms.Flags = capacity(s, len(keys)), noPrealloc
		for _, k := range keys {
			ms.Contents = append(ms.Contents, ebpf.MapKV{Key: k, Value: uint8(1)})
		}
	case "bitmap:port":
		ports := s.Ports()
		ms.Type, ms.KeySize, ms.ValueSize = ebpf.Hash, 4, 1
		ms.MaxEntries, ms.Flags = 65536, noPrealloc
		for _, p := range ports {
			ms.Contents = append(ms.Contents, ebpf.MapKV{Key: uint32(p), Value: uint8(1)})
		}
	}
	g.spec.Sets = append(g.spec.Sets, SetMap{Name: s.Name(), Type: s.Type(), Ref: ref, Map: ms})
	return ref
}

// noPrealloc is BPF_F_NO_PREALLOC: a set's hash maps are sized for its
// maxelem (so a reload can update them in place) but hold only what the
// set holds.
const noPrealloc = 1

// capacity is the size of a hash map holding n entries of s now and at
// most maxelem after any reload (each element adds at most one key).
func capacity(s *ipset.Set, n int) uint32 {
	return uint32(max(n, int(s.MaxElem()), 1))
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
	defer g.matchEnd(yes, no, fail, m.Flags.Invert)
	if setNever(m, g.fam) {
		g.ja(no)
		return
	}
	addrSlot := int16(sSrc)
	if m.Dirs[0] == ipset.DirDst {
		addrSlot = sDst
	}
	if g.inlineSet(m, addrSlot, yes, no) {
		return
	}
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
		g.lookup(g.setMap(s))
		g.emit(asm.JEq.Imm(asm.R0, 0, no))
		g.ja(yes)
	case "hash:net":
		// Longest prefix first; with no timeouts or counters the first
		// entry decides (mtype_test_cidrs), nomatch flag included:
		// net4Table has that answer for every address. The array (its
		// lookups are inlined by the verifier) gives the 2-bit answer of
		// the address's /16, or of its /24 when the /16 is mixed; a
		// mixed /24's leaf has the address's own.
		ref := g.setMap(s)
		got, mixed16, mixed20, mixed := g.label(), g.label(), g.label(), g.label()
		g.note("/16 summary")
		g.net4Level(ref, addrSlot, 24, net4DirEntries, 16, no)
		g.emit(asm.JEq.Imm(asm.R1, netMixed, mixed16))
		g.ja(got)
		g.place(mixed16)
		g.note("/20 summary")
		g.net4Level(ref, addrSlot, 20, net4DirEntries+net4TopEntries, 12, no)
		g.emit(asm.JEq.Imm(asm.R1, netMixed, mixed20))
		g.ja(got)
		g.place(mixed20)
		g.note("/24 level")
		g.net4Level(ref, addrSlot, 16, 0, 8, no)
		g.emit(asm.JEq.Imm(asm.R1, netMixed, mixed))
		g.ja(got)
		g.place(mixed)
		// Every mixed block has a leaf: the absent-key jump cannot happen.
		g.net4Level(s2leaf(ref), addrSlot, 8, 0, 0, no)
		g.place(got)
		if m.Flags.ReturnNomatch {
			g.emit(asm.JEq.Imm(asm.R1, netNomatch, yes))
		} else {
			g.emit(asm.JEq.Imm(asm.R1, netMatch, yes))
		}
		g.ja(no)
	case "hash:ip,port":
		g.ipPortKey(m, addrSlot, no)
		if keys := s.IPPortKeys4(); len(keys) <= inlineSetMax {
			// Few elements: compared in the program (see inlineSet).
			for _, k := range keys {
				g.emit(
					asm.LoadImm(asm.R2, int64(k), asm.DWord),
					asm.JEq.Reg(asm.R1, asm.R2, yes),
				)
			}
			g.ja(no)
			return
		}
		g.emit(asm.StoreMem(asm.R10, sSetKey, asm.R1, asm.DWord))
		g.lookup(g.setMap(s))
		g.emit(asm.JEq.Imm(asm.R0, 0, no))
		g.ja(yes)
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
		if ports := s.Ports(); len(ports) <= inlineSetMax {
			// Few ports: compared in the program (see inlineSet).
			for _, p := range ports {
				g.emit(asm.JEq.Imm(asm.R1, int32(p), yes))
			}
			g.ja(no)
			return
		}
		g.emit(asm.StoreMem(asm.R10, sSetKey, asm.R1, asm.Word))
		g.lookup(g.setMap(s))
		g.emit(asm.JEq.Imm(asm.R0, 0, no))
		g.ja(yes)
	default:
		panic("setMatch: " + s.Type())
	}
}

// ipPortKey leaves in R1 the hash:ip,port key of the packet for m
// (ipset.IPPortKey4: address, protocol, port), as hash_ipport4_kadt
// builds it with ip_set_get_ip4_port, or jumps to no where that fails:
// a non-first fragment or protocol 0; TCP shorter than its 20-byte
// header, UDP or UDP-Lite than 8 bytes, SCTP than 12, ICMP than 8 (the
// port is then type<<8 | code). Other protocols get port 0. It clobbers
// R1-R4.
func (g *gen) ipPortKey(m *rules.Set, addrSlot int16, no string) {
	portSlot := int16(sDport)
	if m.Dirs[1] == ipset.DirSrc {
		portSlot = sSport
	}
	tcp, l8, sctp, icmp, port, build := g.label(), g.label(), g.label(), g.label(), g.label(), g.label()
	g.ld(asm.R1, sFrag)
	g.emit(asm.JNE.Imm(asm.R1, 0, no))
	g.ld(asm.R3, sProto)
	g.ld(asm.R2, sL4Len)
	g.emit(
		asm.JEq.Imm(asm.R3, 0, no),
		asm.JEq.Imm(asm.R3, packet.ProtoTCP, tcp),
		asm.JEq.Imm(asm.R3, packet.ProtoUDP, l8),
		asm.JEq.Imm(asm.R3, 136, l8), // UDP-Lite
		asm.JEq.Imm(asm.R3, 132, sctp),
		asm.JEq.Imm(asm.R3, packet.ProtoICMP, icmp),
		asm.Mov.Imm(asm.R4, 0),
	)
	g.ja(build)
	g.place(tcp)
	g.emit(asm.JLT.Imm(asm.R2, 20, no))
	g.ja(port)
	g.place(sctp)
	g.emit(asm.JLT.Imm(asm.R2, 12, no))
	g.ja(port)
	g.place(l8)
	g.emit(asm.JLT.Imm(asm.R2, 8, no))
	g.place(port)
	g.ld(asm.R4, portSlot)
	g.ja(build)
	g.place(icmp)
	g.emit(asm.JLT.Imm(asm.R2, 8, no))
	g.ld(asm.R4, sICMPType)
	g.ld(asm.R2, sICMPCode)
	g.emit(
		asm.LSh.Imm(asm.R4, 8),
		asm.Or.Reg(asm.R4, asm.R2),
	)
	g.place(build)
	g.ld(asm.R1, addrSlot)
	g.emit(
		asm.LSh.Imm(asm.R1, 32),
		asm.LSh.Imm(asm.R3, 24),
		asm.Or.Reg(asm.R1, asm.R3),
		asm.LSh.Imm(asm.R4, 8),
		asm.Or.Reg(asm.R1, asm.R4),
	)
}

// inlineSetMax is the most elements a set may have to be compiled into
// comparisons rather than a map lookup (a variable so that tests can
// compile every set to a map).
var inlineSetMax = 16

// inlineSet emits the address lookup of a small hash:net or hash:ip as
// comparisons in the program, jumping to yes or no, and reports whether
// it did. Allow-lists and bogon lists hold a handful of prefixes: a map
// lookup costs a helper call (hash, LPM) or a cache miss in a 4 MiB table
// (hash:net, under random sources), while a few compares of a register
// cost nothing. Such a set's contents are part of the program, so
// changing them means a new program, as any rule change does.
func (g *gen) inlineSet(m *rules.Set, addrSlot int16, yes, no string) bool {
	s := m.Set
	if s.Type() != "hash:ip" && s.Type() != "hash:net" {
		return false
	}
	ps := s.Prefixes4()
	if len(ps) > inlineSetMax {
		return false
	}
	g.ld(asm.R1, addrSlot)
	if s.Type() == "hash:ip" {
		// ip & netmask; 0 never matches (hash_ip4_kadt).
		if nm := s.Netmask(); nm < 32 {
			g.emit(asm.And.Imm32(asm.R1, int32(mask4(nm))))
		}
		g.emit(asm.JEq.Imm32(asm.R1, 0, no))
		for _, p := range ps {
			g.emit(asm.JEq.Imm32(asm.R1, int32(p.Addr), yes))
		}
		g.ja(no)
		return true
	}
	// hash:net: the most specific entry decides, as in net4Table; entries
	// of one length never overlap, so their order does not matter.
	ps = slices.Clone(ps)
	slices.SortStableFunc(ps, func(a, b ipset.Prefix4) int { return int(b.Len) - int(a.Len) })
	for _, p := range ps {
		hit := p.Nomatch == m.Flags.ReturnNomatch
		to := no
		if hit {
			to = yes
		}
		g.emit(
			asm.Mov.Reg(asm.R2, asm.R1),
			asm.And.Imm32(asm.R2, int32(mask4(p.Len))),
			asm.JEq.Imm32(asm.R2, int32(p.Addr), to),
		)
	}
	g.ja(no)
	return true
}

// mask4 is the IPv4 netmask of length l.
func mask4(l uint8) uint32 {
	if l == 0 {
		return 0
	}
	return ^uint32(0) << (32 - l)
}

// net4Level is one level of a hash:net table: it looks up key
// addr>>keyShift + add in map ref (jumping to no when it is absent) and
// leaves in R1 the 2-bit answer at index (addr>>codeShift)&0xff of the
// chunk found. It clobbers R1-R5.
func (g *gen) net4Level(ref string, addrSlot int16, keyShift, add, codeShift int32, no string) {
	g.ld(asm.R1, addrSlot)
	g.emit(asm.RSh.Imm32(asm.R1, keyShift))
	if add != 0 {
		g.emit(asm.Add.Imm(asm.R1, add))
	}
	g.emit(asm.StoreMem(asm.R10, sSetKey, asm.R1, asm.Word))
	g.lookup(ref)
	g.emit(asm.JEq.Imm(asm.R0, 0, no))
	g.ld(asm.R1, addrSlot)
	if codeShift != 0 {
		g.emit(asm.RSh.Imm32(asm.R1, codeShift))
	}
	g.code2(asm.R1)
}

// code2 loads into r the 2-bit answer at index r&0xff of the 64-byte
// chunk R0 points to (net4Table's packing: 4 answers per byte, the lowest
// index in the lowest bits). It clobbers R2.
func (g *gen) code2(r asm.Register) {
	g.emit(
		asm.And.Imm(r, 0xff),
		asm.Mov.Reg(asm.R2, r),
		asm.RSh.Imm(r, 2),
		asm.Add.Reg(r, asm.R0),
		asm.LoadMem(r, r, 0, asm.Byte),
		asm.And.Imm(asm.R2, 3),
		asm.LSh.Imm(asm.R2, 1),
		asm.RSh.Reg(r, asm.R2),
		asm.And.Imm(r, 3),
	)
}

// s2leaf is the reference of a hash:net's leaf map.
func s2leaf(ref string) string { return ref + "_leaf" }

// leafName is the kernel name of a hash:net's leaf map.
func leafName(name string) string {
	if len(name) > 13 {
		name = name[:13]
	}
	return name + "_l"
}

// IPv4 hash:net tables.
//
// The kernel's hash:net answers a test by trying the set's prefix lengths
// from the most specific down (mtype_test_cidrs) and stopping at the first
// entry found, match or nomatch. A BPF LPM trie gives the same answer, but
// it walks one node per prefix bit, and with a blocklist of 100k+ prefixes
// and random (spoofed) sources every node is a cache miss. The answer is a
// function of the address with only three values, so net4Table
// precomputes it, DIR-24-8 style, in two levels of 2-bit answers:
//
//   - the first level has one answer per /24 block (2^24 answers, 4 MiB),
//     held in an array map of 65536 chunks of 64 bytes indexed by addr>>16,
//     byte ((addr>>8)&0xff)/4, bits 2*((addr>>8)&3);
//   - a block that prefixes longer than /24 split is netMixed there, and a
//     hash map keyed by addr>>8 holds its 256 per-address answers (64
//     bytes), indexed by addr&0xff the same way;
//   - in front, two summaries: one answer per /16 (16 KiB, entries
//     65536..65791 of the same array, indexed by 65536+addr>>24 and
//     (addr>>16)&0xff), then for the /16s that are mixed one answer per
//     /20 (256 KiB, entries 65792..69887, indexed by 65792+addr>>20 and
//     (addr>>12)&0xff): the answer when the whole block has one, netMixed
//     otherwise. Under random (spoofed) sources every lookup of the 4 MiB
//     level misses the cache and the TLB (about 200 ns here); the
//     summaries stay cached. With the example's 120k-prefix blocklist and
//     random sources, 43% of lookups end at the /16 summary, 54% at the
//     /20 one, and 3% go on to the /24 level.
//
// Painting the prefixes from the least to the most specific, each over
// the answers of the addresses it covers, leaves every address with the
// answer of its most specific entry: exactly the kernel's. A lookup is an
// inlined array access, one byte load, and for a mixed block one hash
// lookup.
const (
	net4Chunk      = 64      // bytes per first-level entry and per leaf
	net4DirEntries = 1 << 16 // first-level entries
	net4TopEntries = 256     // /16 summary entries after them
	net4MidEntries = 4096    // /20 summary entries after those
	net4Entries    = net4DirEntries + net4TopEntries + net4MidEntries
)

// net4Table builds the two levels for the prefixes of a hash:net.
func net4Table(ps []ipset.Prefix4) (dir []byte, leaves map[uint32]*[net4Chunk]byte) {
	dir = make([]byte, net4Entries*net4Chunk)
	leaves = map[uint32]*[net4Chunk]byte{}
	sorted := slices.Clone(ps)
	slices.SortStableFunc(sorted, func(a, b ipset.Prefix4) int { return int(a.Len) - int(b.Len) })
	for _, p := range sorted {
		code := byte(netMatch)
		if p.Nomatch {
			code = netNomatch
		}
		if p.Len <= 24 {
			paint2(dir, p.Addr>>8, uint32(1)<<(24-p.Len), code)
			continue
		}
		b := p.Addr >> 8
		leaf := leaves[b]
		if leaf == nil {
			leaf = new([net4Chunk]byte)
			paint2(leaf[:], 0, 256, get2(dir, b))
			leaves[b] = leaf
			put2(dir, b, netMixed)
		}
		paint2(leaf[:], p.Addr&0xff, uint32(1)<<(32-p.Len), code)
	}
	// The /16 summary (256 /24 answers, a chunk, per /16) and the /20
	// one (16 /24 answers, 4 bytes, per /20).
	summarize(dir[net4DirEntries*net4Chunk:], dir[:net4DirEntries*net4Chunk], net4Chunk)
	summarize(dir[(net4DirEntries+net4TopEntries)*net4Chunk:], dir[:net4DirEntries*net4Chunk], 4)
	return dir, leaves
}

// summarize writes into sum one 2-bit answer per n bytes of the packed
// level: the answer those bytes all hold, or netMixed.
func summarize(sum, level []byte, n int) {
	for i := range uint32(len(level) / n) {
		b := level[int(i)*n : int(i+1)*n]
		code := byte(netMixed)
		if c := b[0]; c&3 != netMixed && c == (c&3)*0x55 && allEqual(b, c) {
			code = c & 3
		}
		put2(sum, i, code)
	}
}

func allEqual(b []byte, c byte) bool {
	for _, x := range b {
		if x != c {
			return false
		}
	}
	return true
}

// paint2 sets answers [first, first+n) of a packed table to code, whole
// bytes at a time where it can.
func paint2(t []byte, first, n uint32, code byte) {
	end := first + n
	for ; first < end && first&3 != 0; first++ {
		put2(t, first, code)
	}
	if whole := (end - first) &^ 3; whole > 0 {
		b := t[first>>2 : (first+whole)>>2]
		b[0] = code * 0x55
		for i := 1; i < len(b); i *= 2 {
			copy(b[i:], b[:i])
		}
		first += whole
	}
	for ; first < end; first++ {
		put2(t, first, code)
	}
}

// put2 and get2 access answer i of a packed table.
func put2(t []byte, i uint32, code byte) {
	sh := (i & 3) * 2
	t[i>>2] = t[i>>2]&^(3<<sh) | code<<sh
}

func get2(t []byte, i uint32) byte { return t[i>>2] >> ((i & 3) * 2) & 3 }

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
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
