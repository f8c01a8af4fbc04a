//go:build linux

package xdp

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/sluice-project/sluice/engine/hashlimit"
)

// rateMaps are a loaded program's rate-limit maps.
type rateMaps struct {
	spec   *RateLimitSpec
	clock  *ebpf.Map
	limits *ebpf.Map
	gc     *ebpf.Map
	tables []*ebpf.Map
}

// rateLimitMaps adds the rate-limit map specs to cs.
func (s *Spec) rateLimitMaps(cs *ebpf.CollectionSpec) {
	rs := s.RateLimits
	if rs == nil {
		return
	}
	if rs.Clock != nil {
		cs.Maps[rlClockRef] = rs.Clock.Copy()
	}
	if rs.Limits != nil {
		cs.Maps[rlLimitsRef] = rs.Limits.Copy()
	}
	if rs.GC != nil {
		cs.Maps[rlGCRef] = rs.GC.Copy()
	}
	for _, t := range rs.Tables {
		cs.Maps[t.Ref] = t.Map.Copy()
	}
}

// rateLimitLoaded picks the loaded maps out of coll and starts every
// bucket and table at the current jiffies: the kernel's (bpf_jiffies64,
// read through a probe program), or under TestClock the clock map's (0
// until SetTestClock).
func (f *Filter) rateLimitLoaded(coll *ebpf.Collection, prev *Filter) error {
	rs := f.spec.RateLimits
	if rs == nil {
		return nil
	}
	m := &rateMaps{spec: rs, clock: coll.Maps[rlClockRef], limits: coll.Maps[rlLimitsRef], gc: coll.Maps[rlGCRef]}
	for _, t := range rs.Tables {
		m.tables = append(m.tables, coll.Maps[t.Ref])
	}
	for _, mp := range append([]*ebpf.Map{m.clock, m.limits, m.gc}, m.tables...) {
		if mp != nil {
			f.sets = append(f.sets, mp)
		}
	}
	f.rl = m
	j := uint64(0)
	if !rs.TestClock {
		var err error
		if j, err = KernelJiffies(); err != nil {
			return err
		}
	}
	if err := f.resetRateLimits(j, f.spec.carriedTables(prev)); err != nil {
		return err
	}
	return f.carryRateLimits(prev)
}

// Carrying rate-limit state over a reload.
//
// The userspace engine keeps its buckets across reloads for unchanged
// rules (engine.State), and xt_hashlimit shares a table by name between
// the old and the new ruleset of an iptables-restore. A program that
// replaces another (LoadCarrying) does the same: a hashlimit table with
// the same name, family and configuration is the previous program's map
// itself (a map replacement, so both programs update one table during
// the swap) with its GC clock copied; a limit bucket of a rule with the
// same text and rate starts where the previous program's left off. A
// reload in the middle of a flood therefore does not hand every flooding
// source a fresh burst.

// carriedTables maps the reference of each of s's hashlimit tables that
// prev also has, unchanged, to prev's map.
func (s *Spec) carriedTables(prev *Filter) map[string]*ebpf.Map {
	out := map[string]*ebpf.Map{}
	if prev == nil || prev.rl == nil || s.RateLimits == nil || s.RateLimits.TestClock != prev.rl.spec.TestClock {
		return out
	}
	for _, t := range s.RateLimits.Tables {
		if i := prev.rl.spec.table(t); i >= 0 && sameShape(t.Map, prev.rl.spec.Tables[i].Map) {
			out[t.Ref] = prev.rl.tables[i]
		}
	}
	return out
}

// table returns the index of the table with t's name, family and
// configuration, or -1.
func (rs *RateLimitSpec) table(t HashlimitTable) int {
	for i, o := range rs.Tables {
		if o.Name == t.Name && o.Family == t.Family && o.Cfg == t.Cfg {
			return i
		}
	}
	return -1
}

// carryRateLimits copies prev's GC clocks of the carried tables and the
// buckets of unchanged limit rules into f's maps.
func (f *Filter) carryRateLimits(prev *Filter) error {
	m := f.rl
	if prev == nil || prev.rl == nil || m.spec.TestClock != prev.rl.spec.TestClock {
		return nil
	}
	p := prev.rl
	for i, t := range m.spec.Tables {
		j := p.spec.table(t)
		if j < 0 {
			continue
		}
		v := make([]byte, gcValueSize)
		if err := p.gc.Lookup(uint32(j), v); err != nil {
			return fmt.Errorf("xdp: hashlimit %s gc clock: %w", t.Name, err)
		}
		if err := m.gc.Update(uint32(i), v, ebpf.UpdateAny); err != nil {
			return fmt.Errorf("xdp: hashlimit %s gc clock: %w", t.Name, err)
		}
	}
	used := make([]bool, len(p.spec.LimitRules))
	for i, b := range m.spec.LimitRules {
		for j, o := range p.spec.LimitRules {
			if used[j] || o.Rule.Text != b.Rule.Text || o.Match != b.Match || o.CreditCap != b.CreditCap || o.Cost != b.Cost {
				continue
			}
			used[j] = true
			v := make([]byte, limitValueSize)
			if err := p.limits.Lookup(uint32(j), v); err != nil {
				return fmt.Errorf("xdp: limit bucket %d: %w", j, err)
			}
			if err := m.limits.Update(uint32(i), v, ebpf.UpdateAny); err != nil {
				return fmt.Errorf("xdp: limit bucket %d: %w", i, err)
			}
			break
		}
	}
	return nil
}

// SetTestClock sets the jiffies a program compiled with
// CompileOptions.TestClock reads.
func (f *Filter) SetTestClock(j uint64) error {
	if f.rl == nil || f.rl.clock == nil {
		return errors.New("xdp: the program was not compiled with TestClock and rate limits")
	}
	return f.rl.clock.Update(uint32(0), j, ebpf.UpdateAny)
}

// ResetRateLimits restarts every limit bucket full at jiffy j (as
// limit_mt_check does at load), empties every hashlimit table and starts
// its GC clock at j (htable_create): the state engine.Compile creates at
// the packet time whose jiffies are j.
func (f *Filter) ResetRateLimits(j uint64) error { return f.resetRateLimits(j, nil) }

// resetRateLimits is ResetRateLimits leaving the tables in keep alone.
func (f *Filter) resetRateLimits(j uint64, keep map[string]*ebpf.Map) error {
	m := f.rl
	if m == nil {
		return nil
	}
	le := binary.LittleEndian
	for i, b := range m.spec.LimitRules {
		v := make([]byte, limitValueSize)
		le.PutUint32(v[4:], b.CreditCap)
		le.PutUint64(v[8:], j)
		if err := m.limits.Update(uint32(i), v, ebpf.UpdateAny); err != nil {
			return fmt.Errorf("xdp: limit bucket %d: %w", i, err)
		}
	}
	for i, t := range m.spec.Tables {
		if keep[t.Ref] != nil {
			continue
		}
		v := make([]byte, gcValueSize)
		le.PutUint64(v[8:], j+t.GCJ)
		le.PutUint64(v[16:], j)
		if err := m.gc.Update(uint32(i), v, ebpf.UpdateAny); err != nil {
			return fmt.Errorf("xdp: hashlimit %s gc clock: %w", t.Name, err)
		}
		var keys [][]byte
		k := make([]byte, hlKeySize)
		it := m.tables[i].Iterate()
		var val []byte
		for it.Next(&k, &val) {
			keys = append(keys, append([]byte(nil), k...))
		}
		if err := it.Err(); err != nil {
			return fmt.Errorf("xdp: hashlimit %s: %w", t.Name, err)
		}
		for _, k := range keys {
			if err := m.tables[i].Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return fmt.Errorf("xdp: hashlimit %s: %w", t.Name, err)
			}
		}
	}
	return nil
}

// HashlimitStats reports every compiled hashlimit table as the engine's
// tables report themselves to the metrics: its live entries (those no GC
// run has collected: the entries the kernel's table would hold), its
// size, and the new flows it refused while full (hotdropped). It walks
// each table's map, so it is for scrapes, not for the packet path.
func (f *Filter) HashlimitStats() ([]hashlimit.TableStats, error) {
	if f.rl == nil || len(f.rl.spec.Tables) == 0 {
		return nil, nil
	}
	ctrs, err := f.ReadCounters()
	if err != nil {
		return nil, err
	}
	var out []hashlimit.TableStats
	gc := make([]byte, gcValueSize)
	k, v := make([]byte, hlKeySize), make([]byte, hlValueSize)
	for i, t := range f.rl.spec.Tables {
		if err := f.rl.gc.Lookup(uint32(i), &gc); err != nil {
			return nil, fmt.Errorf("xdp: hashlimit %s: GC clock: %w", t.Name, err)
		}
		last := binary.NativeEndian.Uint64(gc[16:])
		n := 0
		it := f.rl.tables[i].Iterate()
		for it.Next(&k, &v) {
			// Collected once a GC run at or after its expiry happened:
			// time_after_eq(last, expires).
			if int64(last-binary.NativeEndian.Uint64(v[hlExpires:])) < 0 {
				n++
			}
		}
		if err := it.Err(); err != nil {
			return nil, fmt.Errorf("xdp: hashlimit %s: %w", t.Name, err)
		}
		out = append(out, hashlimit.TableStats{Name: t.Name, Family: t.Family, Entries: n, Max: int(t.Map.MaxEntries), FullDrops: ctrs[t.FullCtr]})
	}
	return out, nil
}

// HashlimitEntries returns how many entries table i's map holds, GC'd
// or not (collected entries stay until a full table purges them).
func (f *Filter) HashlimitEntries(i int) (int, error) {
	if f.rl == nil || i >= len(f.rl.tables) {
		return 0, errors.New("xdp: no such hashlimit table")
	}
	n := 0
	k := make([]byte, hlKeySize)
	var v []byte
	it := f.rl.tables[i].Iterate()
	for it.Next(&k, &v) {
		n++
	}
	return n, it.Err()
}

// KernelJiffies reads the kernel's jiffies_64 (bpf_jiffies64), through
// a one-shot XDP program run with BPF_PROG_TEST_RUN.
func KernelJiffies() (uint64, error) {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "sluice_jiffies",
		Type: ebpf.XDP,
		Instructions: asm.Instructions{
			asm.Mov.Reg(asm.R6, asm.R1),
			asm.FnJiffies64.Call(),
			asm.LoadMem(asm.R2, asm.R6, 0, asm.Word),
			asm.LoadMem(asm.R3, asm.R6, 4, asm.Word),
			asm.Mov.Reg(asm.R4, asm.R2),
			asm.Add.Imm(asm.R4, 8),
			asm.JGT.Reg(asm.R4, asm.R3, "out"),
			asm.StoreMem(asm.R2, 0, asm.R0, asm.DWord),
			asm.Mov.Imm(asm.R0, xdpPass).WithSymbol("out"),
			asm.Return(),
		},
		License: "GPL",
	})
	if err != nil {
		return 0, fmt.Errorf("xdp: loading the jiffies probe: %w", err)
	}
	defer prog.Close()
	out := make([]byte, 64)
	ro := &ebpf.RunOptions{Data: make([]byte, 64), DataOut: out}
	if _, err := prog.Run(ro); err != nil {
		return 0, fmt.Errorf("xdp: running the jiffies probe: %w", err)
	}
	if len(ro.DataOut) < 8 {
		return 0, errors.New("xdp: jiffies probe returned no data")
	}
	return binary.LittleEndian.Uint64(ro.DataOut), nil
}
