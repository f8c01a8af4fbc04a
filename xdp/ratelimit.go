package xdp

import (
	"fmt"
	"maps"
	"math"
	"slices"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"

	"github.com/sluice-project/sluice/engine/hashlimit"
	"github.com/sluice-project/sluice/engine/jiffies"
	"github.com/sluice-project/sluice/engine/limit"
	"github.com/sluice-project/sluice/packet"
	"github.com/sluice-project/sluice/rules"
)

// Rate limits in XDP.
//
// With CompileOptions.RateLimits = RateLimitsXDP (or RateLimitsAuto, for
// the rules it decides; see "Where the state lives"), `-m limit` and `-m
// hashlimit` (revision 3, packet and byte mode, IPv4 tables) run in the
// program with the arithmetic of engine/limit and engine/hashlimit, which
// is the kernel's: xt_limit's u32 credits, CREDITS_PER_JIFFY and
// user2credits overflow (computed at compile time by engine/limit
// itself), the u32-truncated refill; xt_hashlimit's u64 credits with
// silent wrap, byte mode's chunked cost and bounded refills, `above`
// spending tokens, the key built from masked addresses and the 4 bytes
// at the transport offset + proto_ports_offset, expiry refreshed by every
// packet, garbage collection, and a full table hotdropping new flows.
//
// State. One limit bucket per rule (every inlined copy of a rule shares
// it, as the engine keys buckets by rule), in the array map rl_limits:
// {bpf_spin_lock; u32 credit; u64 prev}. One BPF hash map per hashlimit
// table (name, family), shared by every rule naming it, max_entries =
// --hashlimit-htable-max, key = the engine's 36-byte key, value
// {bpf_spin_lock; pad; expires, prev, credit, credit_cap, cost} (u64).
// Each table's GC clock is one element of the array rl_gc: {lock; pad;
// next; last}. The table's rate and expiry come from the first rule
// naming it in file order, as engine/hashlimit's Registry.Get keeps them;
// above/bytes are each rule's own.
//
// Concurrency: every read-modify-write of a bucket, an entry or a GC
// clock runs under the bpf_spin_lock in its value. Atomics cannot do it:
// xt_limit updates credit and prev together (engine/limit packs them into
// one word for a CAS loop, but a BPF CAS loop would need an unbounded
// retry) and hashlimit updates five u64 fields. No helper is called while
// a lock is held. A new flow is inserted with BPF_NOEXIST; losing that
// race (EEXIST) looks the winner's entry up, as the kernel's
// dsthash_alloc_init under its table lock ends up using one entry.
//
// Garbage collection. engine/hashlimit runs GC when a packet's jiffy
// reaches the next GC time: runAt = the last point of the grid load+k*gc
// not after the packet, and it frees every entry with
// time_after_eq(runAt, expires). The program keeps the same grid in
// rl_gc (last = the latest runAt) and collects lazily, which is exact:
// an entry the engine would have freed is precisely one whose expires is
// not after `last` (an entry refreshed at t gets expires = t+expire > t
// >= every runAt so far, so a later last >= expires means a GC run that
// the engine made after the refresh). Such an entry, when its flow comes
// back, is re-initialised in place as the engine's new entry would be
// (its slot is free in the engine, so the engine's allocation cannot
// fail). Only the table's fullness depends on collected entries still in
// the map: when an insert fails, the program deletes every collected
// entry (bpf_for_each_map_elem) and tries once more; if it fails again
// the engine's table is full too (live entries = max_entries), and the
// packet is hotdropped (FullDrop; hashlimit.FullEvictOldest is not
// compiled).
//
// Time. The program reads jiffies with bpf_jiffies64 at every limit and
// hashlimit match, as xt_limit and xt_hashlimit read `jiffies`. With
// CompileOptions.TestClock it reads them from the rl_clock map instead
// (Filter.SetTestClock), so a test feeds the program and the engine the
// same jiffies. Load starts every bucket full at the current kernel
// jiffies (TestClock: at the clock slot's value), as limit_mt_check and
// htable_create do at iptables-restore time; Filter.ResetRateLimits
// restarts them at a given jiffy.
//
// Where the state lives. A rule compiled here keeps its state only in
// BPF maps, so userspace must never evaluate the same rule: a frame that
// falls back at a site and is resumed in userspace (engine ProcessFrom)
// would otherwise meet a second, diverging bucket. Three modes:
//
//   - RateLimitsXDP compiles every limit and hashlimit it can: exact only
//     when no frame is ever resumed in userspace (the XDP-only
//     deployment, where fallback frames go to the kernel or the ruleset
//     is refused).
//   - RateLimitsUserspace keeps every one of them a fallback site:
//     userspace owns every bucket.
//   - RateLimitsAuto, for the combined tier, compiles a limit rule, or a
//     hashlimit table (all the rules naming it: one table, one place),
//     only when no live fallback site reaches it (reach.go): no frame
//     resumed in userspace can ever get to it, so every frame that
//     reaches it is judged by the program, against the maps. The others
//     stay fallback sites, whose reason names the site that reaches
//     them. Compile iterates to a fixpoint: a rate limit that stays in
//     userspace is itself a site, which may reach later ones. A site
//     reaches its own rule (userspace re-evaluates the whole rule), so a
//     rule with a rate limit and a match only userspace runs keeps its
//     rate limit in userspace too. Spec.CheckResume verifies the result
//     against the final program's sites, and ResumeSites refuses a spec
//     that fails it.
//
// Reloads carry a table or bucket over only within one tier: a rate
// limit moving between the program and userspace across a reload starts
// afresh, as a changed rule does.

// RateLimitMode selects where -m limit and -m hashlimit run.
type RateLimitMode uint8

const (
	// RateLimitsUserspace keeps them as fallback sites: userspace owns
	// the buckets (the default, for deployments that resume frames).
	RateLimitsUserspace RateLimitMode = iota
	// RateLimitsXDP compiles every limit and every hashlimit table that
	// the program can run into BPF maps (see the package comment in
	// ratelimit.go for what remains a fallback site). Only for
	// deployments where userspace never resumes a frame at or before
	// such a rule.
	RateLimitsXDP
	// RateLimitsAuto compiles a limit rule or a hashlimit table into BPF
	// maps when no live fallback site reaches it (reach.go), and keeps
	// the others as fallback sites: exact with userspace resumption.
	RateLimitsAuto
)

func (m RateLimitMode) String() string {
	switch m {
	case RateLimitsUserspace:
		return "userspace"
	case RateLimitsXDP:
		return "xdp"
	case RateLimitsAuto:
		return "auto"
	}
	return fmt.Sprintf("RateLimitMode(%d)", uint8(m))
}

// rateDemotions are RateLimitsAuto's decisions so far: the limit rules
// and hashlimit tables that stay in userspace because a fallback site
// reaches them, with the reason.
type rateDemotions struct {
	limits map[*rules.Rule]string
	tables map[string]string // hlTableKey
}

func newRateDemotions() *rateDemotions {
	return &rateDemotions{limits: map[*rules.Rule]string{}, tables: map[string]string{}}
}

// demoteReachable moves to d every limit rule and hashlimit table the
// program compiled that a live site of s reaches, and reports whether it
// moved any (then the caller compiles again: the new sites may reach
// more).
func (s *Spec) demoteReachable(rs4, rs6 *rules.Ruleset, d *rateDemotions) bool {
	rl := s.RateLimits
	if rl == nil {
		return false
	}
	reach := reachable(rs4, rs6, s.Fallback)
	changed := false
	for _, b := range rl.LimitRules {
		if id, ok := reach[b.Rule]; ok {
			d.limits[b.Rule] = "reachable from " + describeSite(&s.Fallback[id])
			changed = true
		}
	}
	for _, t := range rl.Tables {
		key := hlTableKey(t.Name, t.Family)
		for _, ri := range s.Rules {
			if !namesTable(ri.Rule, key) {
				continue
			}
			if id, ok := reach[ri.Rule]; ok {
				d.tables[key] = fmt.Sprintf("the table's rule at %s %s %s line %d is reachable from %s",
					ri.Family, ri.Table, ri.Chain, ri.Rule.Line, describeSite(&s.Fallback[id]))
				changed = true
				break
			}
		}
	}
	return changed
}

// namesTable reports whether r has a hashlimit match of table key.
func namesTable(r *rules.Rule, key string) bool {
	for _, m := range r.Matches {
		if h, ok := m.(*rules.Hashlimit); ok && hlTableKey(h.Cfg.Name, h.Cfg.Family) == key {
			return true
		}
	}
	return false
}

// xdpRateRules returns the rules whose limit bucket or hashlimit table
// the program holds.
func (s *Spec) xdpRateRules() map[*rules.Rule]string {
	out := map[*rules.Rule]string{}
	rl := s.RateLimits
	if rl == nil {
		return out
	}
	for _, b := range rl.LimitRules {
		out[b.Rule] = "limit"
	}
	for _, t := range rl.Tables {
		key := hlTableKey(t.Name, t.Family)
		for _, ri := range s.Rules {
			if namesTable(ri.Rule, key) {
				out[ri.Rule] = "hashlimit " + t.Name
			}
		}
	}
	return out
}

// CheckResume verifies that no live fallback site reaches a rule whose
// rate-limit state the program holds: userspace, resuming a frame at any
// site, never evaluates such a rule. RateLimitsAuto guarantees it; a
// RateLimitsXDP program with live sites generally fails it (it is meant
// for deployments that never resume frames).
func (s *Spec) CheckResume() error {
	held := s.xdpRateRules()
	if len(held) == 0 {
		return nil
	}
	reach := reachable(s.rs4, s.rs6, s.Fallback)
	for r, what := range held {
		if id, ok := reach[r]; ok {
			return fmt.Errorf("the program holds the %s state of line %d, which userspace would evaluate when resuming a frame from %s",
				what, r.Line, describeSite(&s.Fallback[id]))
		}
	}
	return nil
}

// noteRateLimits says, for every rule whose rate limit RateLimitsAuto
// compiled, why it may.
func (s *Spec) noteRateLimits() {
	held := s.xdpRateRules()
	for i := range s.Rules {
		ri := &s.Rules[i]
		if what, ok := held[ri.Rule]; ok && ri.Mode == "xdp" && ri.Reason == "" {
			ri.Reason = what + " runs in XDP: no fallback site reaches this rule, so its state lives in BPF maps only"
		}
	}
}

// RateLimitSpec describes the rate-limit maps of a compiled program.
type RateLimitSpec struct {
	HZ        uint64
	TestClock bool
	// Clock is the TestClock map: one u64, the jiffies the program sees.
	Clock *ebpf.MapSpec
	// Limits holds one bucket per limit match compiled (LimitRules).
	Limits     *ebpf.MapSpec
	LimitRules []LimitBucket
	// GC holds one GC clock per hashlimit table (Tables).
	GC     *ebpf.MapSpec
	Tables []HashlimitTable
}

// LimitBucket is one limit match's bucket: slot i of Limits.
type LimitBucket struct {
	Rule      *rules.Rule
	Match     int    // the limit match's index in Rule.Matches
	CreditCap uint32 // the initial (full) credit
	Cost      uint32
}

// HashlimitTable is one hashlimit table compiled into a BPF hash map.
type HashlimitTable struct {
	Name    string
	Family  packet.Family
	Cfg     hashlimit.Config // the creating (first) rule's
	Ref     string
	Map     *ebpf.MapSpec
	GCJ     uint64 // gc interval in jiffies
	ExpireJ uint64 // expiry in jiffies
	// FullCtr is the counter slot (after the rules') that counts the new
	// flows the full table refused, each hotdropped as the kernel does:
	// the metrics' table-full drops (Filter.HashlimitStats).
	FullCtr int

	k hlConsts
}

// Value layouts.
const (
	limitValueSize = 16 // lock, credit u32, prev u64
	gcValueSize    = 24 // lock, pad, next u64, last u64
	hlKeySize      = 36
	hlValueSize    = 48 // lock, pad, expires, prev, credit, cap, cost

	hlExpires = 8
	hlPrev    = 16
	hlCredit  = 24
	hlCap     = 32
	hlCost    = 40
)

// Stack slots (from R10) the rate-limit code uses: between the parsed
// packet's slots and the cBPF scratch, and between that and the capture
// block.
const (
	rlJ      = -192 // jiffies now
	rlLastGC = -200 // hashlimit: the table's latest GC run
	rlKey    = -240 // hashlimit key, 36 bytes
	rlIdx    = -248 // array key (u32); the verdict while unlocking
	rlPtr    = -256 // map value pointer across helper calls
	rlVal    = -464 // a new hashlimit entry, 48 bytes
)

const (
	rlClockRef  = "rl_clock"
	rlLimitsRef = "rl_limits"
	rlGCRef     = "rl_gc"
	rlPurgeCB   = "rl_purge_cb"
	bpfNoExist  = 1
	errEExist   = -17
)

// isRateRef reports whether a reference is a rate-limit map's.
func isRateRef(ref string) bool {
	return ref == rlClockRef || ref == rlLimitsRef || ref == rlGCRef || len(ref) > 6 && ref[:6] == "rl_hl_"
}

// rateGen is the generator's rate-limit state.
type rateGen struct {
	spec *RateLimitSpec
	// limits maps a limit match of a rule to its bucket slot: one per
	// match of each rule, as the kernel keeps one xt_rateinfo per match
	// of each entry (a rule with two limit matches has two buckets, and
	// so has each rule a comma list expands to, though they share the
	// parsed match), shared by every site the rule is inlined at.
	limits  map[limitKey]int
	tables  map[string]*hlTableInfo
	needsCB bool
}

// hlTableInfo is what a prescan of the rulesets found about one table.
type hlTableInfo struct {
	cfg     hashlimit.Config // the first rule's
	reason  string           // why the table stays in userspace, or ""
	idx     int              // index in spec.Tables once emitted, -1 before
	fullCtr int              // its table-full counter slot
}

// limitKey names a limit bucket: the rule (spec.Rules index) and the match.
type limitKey struct {
	rule  int32
	match *rules.Limit
}

func hlTableKey(name string, fam packet.Family) string { return name + "\x00" + fam.String() }

func (g *gen) hz() uint64 {
	if g.opts.HZ == 0 {
		return jiffies.DefaultHZ
	}
	return g.opts.HZ
}

// scanRateLimits finds each hashlimit table's creating rule (file order,
// IPv4 first, as engine.Compile creates them) and whether every rule
// naming the table can run in XDP: a table is compiled whole or not at
// all, so that its state lives in one place.
func (g *gen) scanRateLimits(rsets ...*rules.Ruleset) {
	g.rl.tables = map[string]*hlTableInfo{}
	g.rl.limits = map[limitKey]int{}
	for _, rs := range rsets {
		if rs == nil {
			continue
		}
		for _, t := range rs.Tables {
			for _, c := range t.Chains {
				for _, r := range c.Rules {
					for _, m := range r.Matches {
						h, ok := m.(*rules.Hashlimit)
						if !ok {
							continue
						}
						key := hlTableKey(h.Cfg.Name, h.Cfg.Family)
						ti := g.rl.tables[key]
						if ti == nil {
							ti = &hlTableInfo{cfg: h.Cfg, idx: -1}
							g.rl.tables[key] = ti
						}
						if ti.reason != "" {
							continue
						}
						switch {
						case h.Cfg.RateMatch || ti.cfg.RateMatch:
							ti.reason = "hashlimit --hashlimit-rate-match is not compiled"
						case h.Cfg.Family != packet.FamilyIPv4 || rs.Family != packet.FamilyIPv4:
							ti.reason = "hashlimit tables are compiled for IPv4 only"
						case ti.cfg.Max == 0 || ti.cfg.GCInterval == 0 || ti.cfg.Expire == 0:
							ti.reason = "hashlimit table without size, gc interval or expiry"
						}
					}
				}
			}
		}
	}
	if g.opts.RateLimits == RateLimitsUserspace {
		return
	}
	// A table-full counter for every table that may be compiled, given
	// before the prologue loads the counter elements, in name order so
	// that equal rulesets compile to equal programs.
	for _, key := range slices.Sorted(maps.Keys(g.rl.tables)) {
		if ti := g.rl.tables[key]; ti.reason == "" {
			ti.fullCtr = g.nctr
			g.nctr++
		}
	}
}

func (g *gen) rateSpec() *RateLimitSpec {
	if g.rl.spec == nil {
		g.rl.spec = &RateLimitSpec{HZ: g.hz(), TestClock: g.opts.TestClock}
	}
	return g.rl.spec
}

// rlLookup calls bpf_map_lookup_elem(ref, R10+key) and jumps to lAbort
// on NULL (an array index that exists cannot miss); R0 = value.
func (g *gen) rlLookupArray(ref string, slot int) {
	g.emit(
		asm.StoreImm(asm.R10, rlIdx, int64(slot), asm.Word),
		asm.LoadMapPtr(asm.R1, 0).WithReference(ref),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, rlIdx),
		asm.FnMapLookupElem.Call(),
	)
	g.jfar(asm.JEq.Imm(asm.R0, 0, ""), lAbort)
}

// readJiffies stores the current jiffies at rlJ.
func (g *gen) readJiffies() {
	if g.opts.TestClock {
		g.note("jiffies from the test clock map")
		g.rlLookupArray(rlClockRef, 0)
		g.emit(asm.LoadMem(asm.R0, asm.R0, 0, asm.DWord))
	} else {
		g.note("jiffies (bpf_jiffies64)")
		g.emit(asm.FnJiffies64.Call())
	}
	g.emit(asm.StoreMem(asm.R10, rlJ, asm.R0, asm.DWord))
}

// limitMatch emits xt_limit's limit_mt as engine/limit.State.Match has it.
func (g *gen) limitMatch(m *rules.Limit, fail string) string {
	switch g.opts.RateLimits {
	case RateLimitsUserspace:
		return "limit keeps a token bucket in userspace"
	case RateLimitsAuto:
		if why := g.demote.limits[g.spec.Rules[g.cur].Rule]; why != "" {
			return "limit keeps its token bucket in userspace: " + why
		}
	}
	hz := g.hz()
	st, err := limit.New(m.Cfg, hz, 0)
	if err != nil {
		return "limit: " + err.Error()
	}
	_, creditCap, cost := st.Credit()
	cpj := limit.CreditsPerJiffy(hz)
	rs := g.rateSpec()
	key := limitKey{g.cur, m}
	slot, ok := g.rl.limits[key]
	if !ok {
		slot = len(rs.LimitRules)
		g.rl.limits[key] = slot
		r := g.spec.Rules[g.cur].Rule
		rs.LimitRules = append(rs.LimitRules, LimitBucket{Rule: r, Match: slices.Index(r.Matches, rules.Match(m)),
			CreditCap: creditCap, Cost: cost})
	}
	g.readJiffies()
	g.note("-m limit bucket %d: cap %d, cost %d, %d credits per jiffy (u32)", slot, creditCap, cost, cpj)
	g.rlLookupArray(rlLimitsRef, slot)
	noMatch, capped := g.label(), g.label()
	g.emit(
		asm.StoreMem(asm.R10, rlPtr, asm.R0, asm.DWord),
		asm.Mov.Reg(asm.R1, asm.R0),
		asm.FnSpinLock.Call(),
		asm.LoadMem(asm.R1, asm.R10, rlPtr, asm.DWord),
		asm.LoadMem(asm.R2, asm.R10, rlJ, asm.DWord),
		asm.LoadMem(asm.R3, asm.R1, 8, asm.DWord),  // prev
		asm.StoreMem(asm.R1, 8, asm.R2, asm.DWord), // prev = now
		asm.Sub.Reg(asm.R2, asm.R3),
		asm.Mul.Imm32(asm.R2, int32(cpj)), // (now-prev)*CREDITS_PER_JIFFY in u32
		asm.LoadMem(asm.R3, asm.R1, 4, asm.Word),
		asm.Add.Reg32(asm.R3, asm.R2),
		asm.JLE.Imm32(asm.R3, int32(creditCap), capped),
		asm.Mov.Imm32(asm.R3, int32(creditCap)),
	)
	g.place(capped)
	g.emit(
		asm.Mov.Imm(asm.R0, 0),
		asm.JLT.Imm32(asm.R3, int32(cost), noMatch),
		asm.Sub.Imm32(asm.R3, int32(cost)),
		asm.Mov.Imm(asm.R0, 1),
	)
	g.place(noMatch)
	g.emit(
		asm.StoreMem(asm.R1, 4, asm.R3, asm.Word),
		asm.StoreMem(asm.R10, rlIdx, asm.R0, asm.Word),
		asm.FnSpinUnlock.Call(),
		asm.LoadMem(asm.R0, asm.R10, rlIdx, asm.Word),
	)
	g.jfar(asm.JEq.Imm(asm.R0, 0, ""), fail)
	return ""
}

// hlConsts are xt_hashlimit's HZ-derived constants (engine/hashlimit's
// consts, recomputed here: they are unexported there; the differential
// tests hold them equal).
type hlConsts struct {
	cpj, cpjBytes, capBytes uint64
	// the creating rule's initial entry (rateinfo_init)
	credit, creditCap, cost uint64
	bytes                   bool // the table's own mode
}

func pow2Below64(x uint64) uint64 {
	x |= x >> 1
	x |= x >> 2
	x |= x >> 4
	x |= x >> 8
	x |= x >> 16
	x |= x >> 32
	return (x >> 1) + 1
}

func newHLConsts(c hashlimit.Config, hz uint64) hlConsts {
	k := hlConsts{bytes: c.Bytes}
	k.cpj = pow2Below64(math.MaxUint64 / (hz * 60 * 60 * 24))
	k.cpjBytes = pow2Below64(uint64(uint32(0xFFFFFFFF / uint32(hz))))
	k.capBytes = uint64(uint32(k.cpjBytes) * uint32(hz))
	user2credits := func(user uint64) uint64 {
		hzc := hz * k.cpj
		if hashlimit.Scale >= hzc {
			return user / (hashlimit.Scale / hzc)
		}
		return user * (hzc / hashlimit.Scale)
	}
	if c.Bytes {
		k.credit = k.capBytes
		k.cost = uint64(uint32((uint64(uint32(c.Avg)) * k.capBytes) >> 32))
		k.creditCap = uint64(c.Burst)
	} else {
		k.credit = user2credits(c.Avg * uint64(c.Burst))
		k.cost = user2credits(c.Avg)
		k.creditCap = k.credit
	}
	return k
}

// hlTable returns the compiled table for m, creating its map spec, or a
// reason it stays in userspace.
func (g *gen) hlTable(m *rules.Hashlimit) (*HashlimitTable, int, string) {
	ti := g.rl.tables[hlTableKey(m.Cfg.Name, m.Cfg.Family)]
	if ti == nil {
		return nil, 0, "hashlimit table not found in the prescan"
	}
	if ti.reason != "" {
		return nil, 0, ti.reason
	}
	rs := g.rateSpec()
	if ti.idx < 0 {
		ti.idx = len(rs.Tables)
		hz := g.hz()
		c := ti.cfg
		ref := fmt.Sprintf("rl_hl_%d", ti.idx)
		ms := &ebpf.MapSpec{Name: mapName(c.Name), Type: ebpf.Hash, KeySize: hlKeySize, ValueSize: hlValueSize,
			MaxEntries: c.Max, Key: hlKeyBTF(), Value: hlValueBTF()}
		ms.Name = "h" + ms.Name[1:]
		rs.Tables = append(rs.Tables, HashlimitTable{Name: c.Name, Family: c.Family, Cfg: c, Ref: ref, Map: ms,
			GCJ: jiffies.MsecsToJiffies(c.GCInterval, hz), ExpireJ: jiffies.MsecsToJiffies(c.Expire, hz),
			FullCtr: ti.fullCtr, k: newHLConsts(c, hz)})
	}
	return &rs.Tables[ti.idx], ti.idx, ""
}

// hashlimitMatch emits hashlimit_mt_common (revision 3) as
// engine/hashlimit's Table.Match has it, for an IPv4 table.
func (g *gen) hashlimitMatch(m *rules.Hashlimit, fail string) string {
	if g.opts.RateLimits == RateLimitsUserspace {
		return "hashlimit keeps per-flow buckets in userspace"
	}
	if g.fam != packet.FamilyIPv4 {
		return "hashlimit tables are compiled for IPv4 only"
	}
	if why := g.demote.tables[hlTableKey(m.Cfg.Name, m.Cfg.Family)]; why != "" && g.opts.RateLimits == RateLimitsAuto {
		return fmt.Sprintf("hashlimit table %s stays in userspace: %s", m.Cfg.Name, why)
	}
	t, ti, reason := g.hlTable(m)
	if reason != "" {
		return reason
	}
	k := &t.k
	c := &t.Cfg // the table's: key, masks, rate, expiry
	g.readJiffies()

	g.note("-m hashlimit %s: GC clock (runs due by now: last = load + n*gc)", t.Name)
	g.rlLookupArray(rlGCRef, ti)
	noGC := g.label()
	g.emit(
		asm.StoreMem(asm.R10, rlPtr, asm.R0, asm.DWord),
		asm.Mov.Reg(asm.R1, asm.R0),
		asm.FnSpinLock.Call(),
		asm.LoadMem(asm.R1, asm.R10, rlPtr, asm.DWord),
		asm.LoadMem(asm.R2, asm.R10, rlJ, asm.DWord),
		asm.LoadMem(asm.R3, asm.R1, 8, asm.DWord), // next
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Sub.Reg(asm.R4, asm.R3),
		asm.JSLT.Imm(asm.R4, 0, noGC), // !time_after_eq(now, next)
	)
	g.loadConst(asm.R5, t.GCJ)
	g.emit(
		asm.Div.Reg(asm.R4, asm.R5),
		asm.Mul.Reg(asm.R4, asm.R5),
		asm.Add.Reg(asm.R4, asm.R3), // runAt
		asm.StoreMem(asm.R1, 16, asm.R4, asm.DWord),
		asm.Add.Reg(asm.R4, asm.R5),
		asm.StoreMem(asm.R1, 8, asm.R4, asm.DWord),
	)
	g.place(noGC)
	g.emit(
		asm.LoadMem(asm.R4, asm.R1, 16, asm.DWord),
		asm.StoreMem(asm.R10, rlLastGC, asm.R4, asm.DWord),
		asm.FnSpinUnlock.Call(),
	)

	g.note("hashlimit key (hashlimit_init_dst): masked addresses, ports at the transport offset")
	g.emit(asm.Mov.Imm(asm.R1, 0))
	for off := int16(0); off < 32; off += 8 {
		g.emit(asm.StoreMem(asm.R10, rlKey+off, asm.R1, asm.DWord))
	}
	g.emit(asm.StoreMem(asm.R10, rlKey+32, asm.R1, asm.Word))
	addr := func(slot int16, bits uint8, off int16) {
		g.ld(asm.R1, slot)
		if bits < 32 {
			var mask uint32
			if bits > 0 {
				mask = ^uint32(0) << (32 - bits)
			}
			g.emit(asm.And.Imm32(asm.R1, int32(mask)))
		}
		g.emit(
			asm.HostTo(asm.BE, asm.R1, asm.Word),
			asm.StoreMem(asm.R10, rlKey+off, asm.R1, asm.Word),
		)
	}
	if c.Mode&hashlimit.HashDstIP != 0 {
		addr(sDst, c.DstMask, 16)
	}
	if c.Mode&hashlimit.HashSrcIP != 0 {
		addr(sSrc, c.SrcMask, 0)
	}
	if c.Mode&(hashlimit.HashSrcPort|hashlimit.HashDstPort) != 0 {
		p0, p4, have, noPorts, bad, abort := g.label(), g.label(), g.label(), g.label(), g.label(), g.label()
		g.ld(asm.R2, sProto)
		for _, p := range []int32{6, 17, 33, 50, 132, 136} {
			g.emit(asm.JEq.Imm(asm.R2, p, p0))
		}
		g.emit(asm.JEq.Imm(asm.R2, 51, p4))
		g.ja(noPorts)
		g.place(p4)
		g.emit(asm.Mov.Imm(asm.R3, 4))
		g.ja(have)
		g.place(p0)
		g.emit(asm.Mov.Imm(asm.R3, 0))
		g.place(have)
		g.ld(asm.R1, sL4Off)
		g.ld(asm.R5, sLen)
		g.emit(
			asm.Add.Reg(asm.R3, asm.R1),
			asm.Mov.Reg(asm.R4, asm.R3),
			asm.Add.Imm(asm.R4, 4),
			asm.JGT.Reg(asm.R4, asm.R5, bad), // ports beyond the datagram: hotdrop
			asm.Mov.Reg(asm.R5, asm.R3),
		)
		// u32Load reads the big-endian word at L3 offset R5 into R3;
		// keep the bytes in memory order instead.
		g.u32Load(abort)
		g.emit(asm.HostTo(asm.BE, asm.R3, asm.Word))
		switch c.Mode & (hashlimit.HashSrcPort | hashlimit.HashDstPort) {
		case hashlimit.HashSrcPort:
			g.emit(asm.And.Imm32(asm.R3, 0x0000ffff))
		case hashlimit.HashDstPort:
			g.emit(asm.And.Imm32(asm.R3, -0x10000))
		}
		g.emit(asm.StoreMem(asm.R10, rlKey+32, asm.R3, asm.Word))
		g.ja(noPorts)
		g.place(bad)
		g.ja(lHotdrop)
		g.place(abort)
		g.ja(lAbort)
		g.place(noPorts)
	}

	g.note("look the flow up; a new one is inserted (BPF_NOEXIST), a full table purged of collected entries once")
	found, relookup := g.label(), g.label()
	lookup := func() {
		g.emit(
			asm.LoadMapPtr(asm.R1, 0).WithReference(t.Ref),
			asm.Mov.Reg(asm.R2, asm.R10),
			asm.Add.Imm(asm.R2, rlKey),
			asm.FnMapLookupElem.Call(),
		)
	}
	insert := func() {
		g.emit(
			asm.LoadMapPtr(asm.R1, 0).WithReference(t.Ref),
			asm.Mov.Reg(asm.R2, asm.R10),
			asm.Add.Imm(asm.R2, rlKey),
			asm.Mov.Reg(asm.R3, asm.R10),
			asm.Add.Imm(asm.R3, rlVal),
			asm.Mov.Imm(asm.R4, bpfNoExist),
			asm.FnMapUpdateElem.Call(),
		)
		g.emit(asm.JEq.Imm(asm.R0, 0, relookup), asm.JEq.Imm(asm.R0, errEExist, relookup))
	}
	lookup()
	g.jfar(asm.JNE.Imm(asm.R0, 0, ""), found)
	// The new entry: expires = now + expire, rateinfo_init.
	g.emit(asm.Mov.Imm(asm.R1, 0), asm.StoreMem(asm.R10, rlVal, asm.R1, asm.DWord))
	g.emit(asm.LoadMem(asm.R2, asm.R10, rlJ, asm.DWord))
	g.storeInit(asm.R10, rlVal, t)
	insert()
	cb := asm.LoadImm(asm.R2, -1, asm.DWord) // -1: resolved to the callback by the assembler
	cb.Src = asm.PseudoFunc                  // a function pointer: the purge callback
	g.emit(
		asm.LoadMapPtr(asm.R1, 0).WithReference(t.Ref),
		cb.WithReference(rlPurgeCB),
		asm.Mov.Reg(asm.R3, asm.R10),
		asm.Add.Imm(asm.R3, rlLastGC),
		asm.Mov.Imm(asm.R4, 0),
		asm.FnForEachMapElem.Call(),
	)
	g.rl.needsCB = true
	insert()
	g.note("table full (FullDrop): count it for the table, hotdrop")
	g.incr(t.FullCtr)
	g.ja(lHotdrop)
	g.place(relookup)
	lookup()
	g.jfar(asm.JEq.Imm(asm.R0, 0, ""), lAbort)

	g.place(found)
	g.note("under the entry's lock: collected? re-initialise; else refresh expiry and recalc; then spend")
	live, verdict := g.label(), g.label()
	g.emit(
		asm.StoreMem(asm.R10, rlPtr, asm.R0, asm.DWord),
		asm.Mov.Reg(asm.R1, asm.R0),
		asm.FnSpinLock.Call(),
		asm.LoadMem(asm.R1, asm.R10, rlPtr, asm.DWord),
		asm.LoadMem(asm.R2, asm.R10, rlJ, asm.DWord),
		asm.LoadMem(asm.R3, asm.R1, hlExpires, asm.DWord),
		asm.LoadMem(asm.R4, asm.R10, rlLastGC, asm.DWord),
		asm.Sub.Reg(asm.R4, asm.R3),
		asm.JSLT.Imm(asm.R4, 0, live), // !time_after_eq(last, expires)
	)
	g.storeInit(asm.R1, 0, t)
	g.ja(verdict)
	g.place(live)
	g.loadConst(asm.R3, t.ExpireJ)
	g.emit(
		asm.Add.Reg(asm.R3, asm.R2),
		asm.StoreMem(asm.R1, hlExpires, asm.R3, asm.DWord),
		// rateinfo_recalc with the table's mode
		asm.LoadMem(asm.R3, asm.R1, hlPrev, asm.DWord),
		asm.Mov.Reg(asm.R5, asm.R2),
		asm.Sub.Reg(asm.R5, asm.R3), // delta
		asm.JEq.Imm(asm.R5, 0, verdict),
		asm.StoreMem(asm.R1, hlPrev, asm.R2, asm.DWord),
		asm.LoadMem(asm.R4, asm.R1, hlCredit, asm.DWord),
	)
	if k.bytes {
		g.loadConst(asm.R3, k.cpjBytes)
		store := g.label()
		g.emit(
			asm.Mul.Reg(asm.R5, asm.R3),
			asm.Add.Reg(asm.R5, asm.R4), // new credit; R4 = old
		)
		g.loadConst(asm.R3, k.capBytes)
		g.emit(
			asm.JGE.Reg(asm.R4, asm.R5, store+"_cap"), // wrapped: refill to one second
			asm.JLE.Reg(asm.R5, asm.R3, store),
		)
		g.place(store + "_cap")
		g.emit(asm.Mov.Reg(asm.R5, asm.R3))
		g.place(store)
		g.emit(asm.StoreMem(asm.R1, hlCredit, asm.R5, asm.DWord))
	} else {
		store := g.label()
		g.loadConst(asm.R3, k.cpj)
		g.emit(
			asm.Mul.Reg(asm.R5, asm.R3),
			asm.Add.Reg(asm.R4, asm.R5),
			asm.LoadMem(asm.R3, asm.R1, hlCap, asm.DWord),
			asm.JLE.Reg(asm.R4, asm.R3, store),
			asm.Mov.Reg(asm.R4, asm.R3),
		)
		g.place(store)
		g.emit(asm.StoreMem(asm.R1, hlCredit, asm.R4, asm.DWord))
	}

	g.place(verdict)
	inv := int32(0)
	if m.Cfg.Above {
		inv = 1
	}
	spent := g.label()
	g.emit(asm.Mov.Imm(asm.R0, inv))
	if m.Cfg.Bytes {
		// hashlimit_byte_cost with this rule's length: ((len>>4)+1)*cost
		// capped at a second; a short credit takes one refill if any.
		capped, noRefill := g.label(), g.label()
		g.ld(asm.R3, sLen)
		g.emit(
			asm.RSh.Imm(asm.R3, 4),
			asm.Add.Imm(asm.R3, 1),
			asm.LoadMem(asm.R4, asm.R1, hlCost, asm.DWord),
			asm.Mul.Reg(asm.R3, asm.R4),
		)
		g.loadConst(asm.R5, k.capBytes)
		g.emit(
			asm.JLE.Reg(asm.R3, asm.R5, capped),
			asm.Mov.Reg(asm.R3, asm.R5),
		)
		g.place(capped)
		g.emit(
			asm.LoadMem(asm.R4, asm.R1, hlCredit, asm.DWord),
			asm.JGE.Reg(asm.R4, asm.R3, noRefill),
			asm.LoadMem(asm.R2, asm.R1, hlCap, asm.DWord),
			asm.JEq.Imm(asm.R2, 0, noRefill),
			asm.Sub.Imm(asm.R2, 1),
			asm.StoreMem(asm.R1, hlCap, asm.R2, asm.DWord),
			asm.StoreMem(asm.R1, hlCredit, asm.R5, asm.DWord),
		)
		g.place(noRefill)
		g.emit(asm.Mov.Reg32(asm.R3, asm.R3)) // cost = (u32)tmp
	} else {
		g.emit(asm.LoadMem(asm.R3, asm.R1, hlCost, asm.DWord))
	}
	g.emit(
		asm.LoadMem(asm.R4, asm.R1, hlCredit, asm.DWord),
		asm.JLT.Reg(asm.R4, asm.R3, spent),
		asm.Sub.Reg(asm.R4, asm.R3),
		asm.StoreMem(asm.R1, hlCredit, asm.R4, asm.DWord),
		asm.Mov.Imm(asm.R0, 1-inv),
	)
	g.place(spent)
	g.emit(
		asm.StoreMem(asm.R10, rlIdx, asm.R0, asm.Word),
		asm.FnSpinUnlock.Call(),
		asm.LoadMem(asm.R0, asm.R10, rlIdx, asm.Word),
	)
	g.jfar(asm.JEq.Imm(asm.R0, 0, ""), fail)
	return ""
}

// storeInit writes a new entry (expires, prev = now, rateinfo_init from
// the table's config) at base+off; R2 = now. Clobbers R3.
func (g *gen) storeInit(base asm.Register, off int16, t *HashlimitTable) {
	g.loadConst(asm.R3, t.ExpireJ)
	g.emit(
		asm.Add.Reg(asm.R3, asm.R2),
		asm.StoreMem(base, off+hlExpires, asm.R3, asm.DWord),
		asm.StoreMem(base, off+hlPrev, asm.R2, asm.DWord),
	)
	for _, f := range []struct {
		at int16
		v  uint64
	}{{hlCredit, t.k.credit}, {hlCap, t.k.creditCap}, {hlCost, t.k.cost}} {
		g.loadConst(asm.R3, f.v)
		g.emit(asm.StoreMem(base, off+f.at, asm.R3, asm.DWord))
	}
}

// loadConst puts a 64-bit constant in reg.
func (g *gen) loadConst(reg asm.Register, v uint64) {
	if v <= math.MaxInt32 {
		g.emit(asm.Mov.Imm(reg, int32(v)))
		return
	}
	g.emit(asm.LoadImm(reg, int64(v), asm.DWord))
}

// rateExits emits the purge callback after the program's exits: it
// deletes an entry whose expiry the table's latest GC run reached.
// R1 = map, R2 = key, R3 = value, R4 = &last.
func (g *gen) rateExits() {
	if !g.rl.needsCB {
		return
	}
	g.cur = -1
	keep := g.label()
	g.place(rlPurgeCB)
	g.note("hashlimit purge callback: delete entries the GC has collected")
	// bpf_for_each_map_elem wants BTF func_info for the program's
	// functions: the filter itself and the callback.
	vp := &btf.Pointer{Target: &btf.Void{}}
	i64 := &btf.Int{Name: "long", Size: 8, Encoding: btf.Signed}
	g.insns[0] = btf.WithFuncMetadata(g.insns[0], &btf.Func{Name: g.opts.Name, Linkage: btf.GlobalFunc,
		Type: &btf.FuncProto{Return: &btf.Int{Name: "int", Size: 4, Encoding: btf.Signed},
			Params: []btf.FuncParam{{Name: "ctx", Type: vp}}}})
	g.emit(
		btf.WithFuncMetadata(asm.LoadMem(asm.R5, asm.R4, 0, asm.DWord), &btf.Func{Name: rlPurgeCB, Linkage: btf.StaticFunc,
			Type: &btf.FuncProto{Return: i64, Params: []btf.FuncParam{{Name: "map", Type: vp}, {Name: "key", Type: vp},
				{Name: "value", Type: vp}, {Name: "ctx", Type: vp}}}}),
		asm.LoadMem(asm.R0, asm.R3, hlExpires, asm.DWord),
		asm.Sub.Reg(asm.R5, asm.R0),
		asm.JSLT.Imm(asm.R5, 0, keep),
		asm.FnMapDeleteElem.Call(),
	)
	g.place(keep)
	g.emit(asm.Mov.Imm(asm.R0, 0), asm.Return())
}

// finishRateLimits builds the rate-limit map specs.
func (g *gen) finishRateLimits() {
	rs := g.rl.spec
	if rs == nil {
		return
	}
	u32 := &btf.Int{Name: "u32", Size: 4}
	if g.opts.TestClock {
		rs.Clock = &ebpf.MapSpec{Name: "sluice_rlclock", Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1}
	}
	if len(rs.LimitRules) > 0 {
		rs.Limits = &ebpf.MapSpec{Name: "sluice_limits", Type: ebpf.Array, KeySize: 4, ValueSize: limitValueSize,
			MaxEntries: uint32(len(rs.LimitRules)), Key: u32, Value: lockedStruct("sluice_limit", limitValueSize,
				btf.Member{Name: "credit", Type: u32, Offset: 32}, btf.Member{Name: "prev", Type: u64BTF(), Offset: 64})}
	}
	if len(rs.Tables) > 0 {
		rs.GC = &ebpf.MapSpec{Name: "sluice_hlgc", Type: ebpf.Array, KeySize: 4, ValueSize: gcValueSize,
			MaxEntries: uint32(len(rs.Tables)), Key: u32, Value: lockedStruct("sluice_hlgc", gcValueSize,
				btf.Member{Name: "next", Type: u64BTF(), Offset: 64}, btf.Member{Name: "last", Type: u64BTF(), Offset: 128})}
	}
}

func u64BTF() btf.Type { return &btf.Int{Name: "u64", Size: 8} }

// lockedStruct is a BTF struct whose first member is a bpf_spin_lock.
func lockedStruct(name string, size uint32, members ...btf.Member) *btf.Struct {
	lock := &btf.Struct{Name: "bpf_spin_lock", Size: 4, Members: []btf.Member{{Name: "val", Type: &btf.Int{Name: "u32", Size: 4}}}}
	return &btf.Struct{Name: name, Size: size, Members: append([]btf.Member{{Name: "lock", Type: lock}}, members...)}
}

func hlKeyBTF() btf.Type {
	return &btf.Array{Index: &btf.Int{Name: "u32", Size: 4}, Type: &btf.Int{Name: "u8", Size: 1}, Nelems: hlKeySize}
}

func hlValueBTF() btf.Type {
	u64 := u64BTF()
	return lockedStruct("sluice_hlent", hlValueSize,
		btf.Member{Name: "expires", Type: u64, Offset: 64}, btf.Member{Name: "prev", Type: u64, Offset: 128},
		btf.Member{Name: "credit", Type: u64, Offset: 192}, btf.Member{Name: "credit_cap", Type: u64, Offset: 256},
		btf.Member{Name: "cost", Type: u64, Offset: 320})
}
