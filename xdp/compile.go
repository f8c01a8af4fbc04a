package xdp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/sluice-project/sluice/packet"
	"github.com/sluice-project/sluice/rules"
)

// CompileOptions are the facts of one attachment that the compiled
// program bakes in as constants.
type CompileOptions struct {
	// Name is the program's name in the kernel (default "sluice_filter").
	Name string
	// InIface is the name of the interface the program is attached to:
	// -i is decided at compile time against it (a rule whose -i cannot
	// match gets no code at all), exactly as ifname_compare_aligned
	// would decide it for every packet.
	InIface string
	// LocalMAC, when set, is the interface's MAC: unicast frames to
	// another MAC are PACKET_OTHERHOST and IP ones among them are dropped
	// as malformed, as packet.Decoder does with HasLocalMAC.
	LocalMAC net.HardwareAddr
	// LocalAddrs are the host's own addresses: an IPv4 source claiming
	// one is a martian that never reaches INPUT, and the solicited-node
	// multicast groups of the IPv6 ones are joined, so reach INPUT
	// (engine.Config.LocalAddrs).
	LocalAddrs []netip.Addr
	// XSKQueues, when > 0, gives the program an XSKMAP of that many
	// entries (Spec.XSKs, Filter.XSKs): a frame reaching a fallback site
	// is redirected, its site in the metadata, to the AF_XDP socket of
	// its receive queue (bpf_redirect_map(xsks, rx_queue_index,
	// XDP_PASS): passed to the kernel when the queue has no socket).
	XSKQueues int
	// Userspace lists rules to compile as fallback sites whatever they
	// hold, each with the reason: LoadDemoting fills it with the rules the
	// verifier gave up in. Only for a program with XSKQueues.
	Userspace map[*rules.Rule]string
	// MaxInstructions bounds the generated program (default 1,000,000,
	// the kernel's BPF_COMPLEXITY_LIMIT_INSNS). Inlining user chains per
	// call site can grow a program; past this, Compile fails.
	MaxInstructions int
	// Capture adds the capture block (capture.go) before every verdict
	// exit, and Spec.Capture: `sluice capture` in the XDP tier.
	Capture bool
	// Generation is stamped in the top byte of the fallback metadata
	// (SiteGenFromMeta) and in capture records, so that a reload can tell
	// the frames of the program it replaced from the new one's.
	Generation uint8
	// RateLimits selects where -m limit and -m hashlimit run
	// (ratelimit.go, "Where the state lives"); HZ is the kernel's CONFIG_HZ they count in (0:
	// jiffies.DefaultHZ); TestClock makes the program read jiffies from
	// a map the caller writes (Filter.SetTestClock) instead of
	// bpf_jiffies64, for differential tests.
	RateLimits RateLimitMode
	HZ         uint64
	TestClock  bool
}

// Spec is a compiled ruleset pair: an XDP program and the map of its
// counters. Load it with (*Spec).Load on Linux.
type Spec struct {
	Program *ebpf.ProgramSpec
	// Counters is a BPF_MAP_TYPE_PERCPU_ARRAY with one element of
	// NumCounters() uint64s: first NumStats statistics (Stat*), then the
	// IPv4 rule and policy counters, then the IPv6 ones, each family
	// indexed as engine/program.go allocates its counter slots (two per
	// rule, then two per chain, in file order: packets, bytes).
	Counters *ebpf.MapSpec
	// Rules says, for every rule of both rulesets in file order, whether
	// it runs in XDP.
	Rules []RuleInfo
	// Fallback lists the points where the program stops and hands the
	// packet to userspace. Site IDs index this slice.
	Fallback []FallbackSite
	// Families holds the counter base (an index into the counter value)
	// of each family's rule counters, 0 when absent.
	Families [3]FamilyLayout
	// Sets are the ipset sets the program looks up, as BPF maps.
	Sets []SetMap
	// XSKs is the XSKMAP fallback frames are redirected through, nil
	// without CompileOptions.XSKQueues.
	XSKs *ebpf.MapSpec
	// Capture describes the capture maps (CompileOptions.Capture).
	Capture *CaptureSpec
	// RateLimits describes the rate-limit maps (CompileOptions.RateLimits),
	// nil when no limit or hashlimit runs in the program.
	RateLimits *RateLimitSpec

	owner    []int32 // per instruction: index into Rules, or -1
	rs4, rs6 *rules.Ruleset
}

// FamilyLayout locates one family's counters.
type FamilyLayout struct {
	Compiled bool
	Base     int // index of the family's counter slot 0 in the value
	Slots    int // engine counter slots (2 per rule, 2 per chain)
}

// RuleInfo describes one rule of the input.
type RuleInfo struct {
	Family packet.Family
	Table  string
	Chain  string
	Rule   *rules.Rule
	// Slot is the rule's packet counter index in the family's layout
	// (bytes at Slot+1), as engine/program.go numbers it.
	Slot int
	// Mode is "xdp" (the whole rule runs in the program), "fallback"
	// (the program hands the packet to userspace when it reaches this
	// rule and the rule's earlier, XDP-able checks pass), "never" (-i or
	// -o can never match on this attachment: no code) or "unreachable"
	// (no ingress hook reaches its chain).
	Mode   string
	Reason string // why it falls back or never matches
	Sites  int    // inlined copies (call sites) of this rule
}

// FallbackSite is one place in the program where evaluation stops. The
// program writes its index (a little-endian uint32) into the XDP metadata
// area in front of the frame and returns XDP_PASS; userspace resumes the
// traversal there: at Rule, in Chain, with the return points of Stack
// pending (outermost jump first), in ingress hook Hook.
type FallbackSite struct {
	Family packet.Family
	// Hook indexes rules.IngressHooks; -1 means the whole packet (the
	// program did not evaluate any rule, e.g. an IPv6 frame).
	Hook   int
	Table  string
	Chain  string
	Rule   *rules.Rule
	Stack  []*rules.Rule
	Reason string
	// Dead is true when no packet can reach the site (an earlier site
	// or verdict takes every packet first).
	Dead bool
}

// Statistics at the start of the counter value.
const (
	StatPackets     = iota // every frame the program saw
	StatAccepted           // passed after the hooks (ACCEPT, policies, or not reaching INPUT)
	StatDropped            // dropped by a rule or a policy
	StatHotdropped         // dropped by a match that could not read its header
	StatNotFiltered        // not IPv4/IPv6, VLAN-tagged, or no ruleset for the family
	StatFallback           // handed to userspace at a fallback site
	StatMalformed          // dropped as the receive path would; by reason below
	// StatMalformedBy + packet.Malformed value: per-reason counts.
	StatMalformedBy
	NumStats = StatMalformedBy + 16
)

// scratch counter slots, after the statistics: values laundered through
// map memory so that the verifier does not track them per path.
const (
	scratchL3Off = NumStats + iota
	scratchPktType
	scratchNH    // IPv6 extension-header walk: next header
	scratchOff   // offset of that header within L3
	scratchProto // walk results: upper-layer protocol,
	scratchFound // whether it was found,
	scratchFrag  // fragment offset in bytes (non-first fragments),
	scratchL4Off // and the transport header offset
	numScratch   = 8
)

// maxCounterValue is the largest per-CPU value the kernel allocates
// (PCPU_MIN_UNIT_SIZE): 4096 counters. Larger rulesets spread their
// counters over several elements of the per-CPU array (ctrPerElem each):
// the prologue looks every element up once and keeps the pointers on the
// stack (sCtrPtr), so a counter beyond the first element costs one more
// load. Counter i is element i/ctrPerElem, index i%ctrPerElem.
const (
	maxCounterValue = 32768
	ctrPerElem      = maxCounterValue / 8
	maxCounterElems = 8    // 32768 counters, about 16,000 rules
	sCtrPtr         = -264 // pointers to elements 1..maxCounterElems-1, 8 bytes each, downwards
)

// NumCounters returns the number of uint64 counters, the statistics and
// the rule and policy counters of every element (the last padded).
func (s *Spec) NumCounters() int {
	return int(s.Counters.ValueSize/8) * int(s.Counters.MaxEntries)
}

// Instructions returns the number of instructions (double-wide loads
// count twice, as the kernel counts them).
func (s *Spec) Instructions() int {
	n := 0
	for _, ins := range s.Program.Instructions {
		n += int(ins.Size() / asm.InstructionSize)
	}
	return n
}

// RuleAt returns the rule whose code holds raw instruction offset off,
// or nil (packet parsing, exits).
func (s *Spec) RuleAt(off int) *RuleInfo {
	raw := 0
	for i, ins := range s.Program.Instructions {
		w := int(ins.Size() / asm.InstructionSize)
		if off < raw+w {
			if o := s.owner[i]; o >= 0 {
				return &s.Rules[o]
			}
			return nil
		}
		raw += w
	}
	return nil
}

// XDP actions (enum xdp_action), named apart from redirect.go's.
const (
	xdpDrop = 1
	xdpPass = 2
)

// ErrTooLarge is wrapped by Compile when inlining exceeds MaxInstructions.
var ErrTooLarge = errors.New("program too large")

// Compile turns the IPv4 and IPv6 rulesets (either may be nil) into one
// XDP program.
//
// User chains are inlined at each call site (-j inlines the chain with a
// return to the next rule, -g with the caller's return), so the program is
// straight-line code with forward jumps only: no call stack, no depth
// limit, no loops for the verifier. The cost is size when a large chain
// is jumped to from many places; MaxInstructions bounds it.
//
// IPv6 frames run rs6 in XDP like IPv4 frames run rs4 (parseIPv6 in
// compile_ipv6.go, with the hop-by-hop options validated in
// hopopts.go). Without rs6 they pass unfiltered (counted as not
// filtered; the kernel applies its own receive checks to them).
func Compile(rs4, rs6 *rules.Ruleset, opts CompileOptions) (*Spec, error) {
	if opts.Name == "" {
		opts.Name = "sluice_filter"
	}
	if opts.MaxInstructions == 0 {
		opts.MaxInstructions = 1_000_000
	}
	if len(opts.InIface) > 15 {
		return nil, fmt.Errorf("interface name %q is longer than 15 characters", opts.InIface)
	}
	if opts.LocalMAC != nil && len(opts.LocalMAC) != 6 {
		return nil, fmt.Errorf("local MAC %s is not 6 bytes", opts.LocalMAC)
	}
	// RateLimitsAuto: compile with every rate limit in XDP, then move
	// to userspace those a live fallback site reaches, and again, until
	// no site reaches a rate limit the program holds. Each round moves
	// at least one limit rule or table, so it ends.
	demote := newRateDemotions()
	for {
		spec, err := compileOnce(rs4, rs6, opts, demote)
		if err != nil {
			return nil, err
		}
		if opts.RateLimits == RateLimitsAuto && spec.demoteReachable(rs4, rs6, demote) {
			continue
		}
		if opts.RateLimits == RateLimitsAuto {
			spec.noteRateLimits()
		}
		return spec, nil
	}
}

// compileOnce is one compilation, with the rate limits of demote kept in
// userspace (RateLimitsAuto).
func compileOnce(rs4, rs6 *rules.Ruleset, opts CompileOptions, demote *rateDemotions) (*Spec, error) {
	for _, long := range []bool{false, true} {
		g := newGen(opts, long)
		g.demote = demote
		if err := g.program(rs4, rs6); err != nil {
			return nil, err
		}
		if !long && len(g.insns) > 30000 {
			// Jumps of more than 32767 instructions need gotol.
			continue
		}
		spec, err := g.finish()
		if err == nil {
			spec.rs4, spec.rs6 = rs4, rs6
		}
		return spec, err
	}
	panic("unreachable")
}

// gen is the code generator's state.
type gen struct {
	opts  CompileOptions
	long  bool
	insns asm.Instructions
	owner []int32
	cur   int32 // current owner

	nlabel  int
	labels  map[string]int // label -> index of the instruction it precedes
	pending []string       // labels waiting for the next instruction
	comment string         // source text for the next instruction

	spec    *Spec
	ruleIdx map[*rules.Rule]int32
	nctr    int
	ifname  [16]byte
	fam     packet.Family
	base    int // counter base of the family being generated
	err     error

	usedMalformed [16]bool
	siteInsn      []int // instruction index of each fallback site
	rl            rateGen
	demote        *rateDemotions // RateLimitsAuto: rate limits kept in userspace
	capBase       int            // first of the capture slots (CompileOptions.Capture)
	vlanUsed      bool           // parseL2 calls vlanCallback
	str           strGen
}

func newGen(opts CompileOptions, long bool) *gen {
	g := &gen{opts: opts, long: long, labels: map[string]int{}, cur: -1,
		spec: &Spec{}, ruleIdx: map[*rules.Rule]int32{}}
	copy(g.ifname[:], opts.InIface)
	return g
}

// Labels shared by the whole program.
const (
	lAccept     = "accept"
	lDrop       = "drop"
	lHotdrop    = "hotdrop"
	lNotFilter  = "not_filtered"
	lFallback   = "fallback" // R7 = site
	lMalformed  = "malformed"
	lAbort      = "abort_pass"
	lIPv4       = "ipv4"
	lIPv6       = "ipv6"
	lL3         = "l3"
	stackFields = 23
)

func (g *gen) label() string {
	g.nlabel++
	return fmt.Sprintf("L%d", g.nlabel)
}

// place puts label l on the next instruction emitted.
func (g *gen) place(l string) { g.pending = append(g.pending, l) }

// note attaches source text to the next instruction emitted.
func (g *gen) note(format string, a ...any) {
	s := fmt.Sprintf(format, a...)
	s = strings.ReplaceAll(s, "\n", " ")
	if g.comment != "" {
		g.comment += " | " + s
	} else {
		g.comment = s
	}
}

func (g *gen) emit(ins ...asm.Instruction) {
	for _, in := range ins {
		for _, l := range g.pending {
			g.labels[l] = len(g.insns)
		}
		g.pending = g.pending[:0]
		if g.comment != "" {
			in = in.WithSource(asm.Comment(g.comment))
			g.comment = ""
		}
		g.insns = append(g.insns, in)
		g.owner = append(g.owner, g.cur)
	}
	if len(g.insns) > g.opts.MaxInstructions && g.err == nil {
		g.err = fmt.Errorf("%w: more than %d instructions (user chains are inlined at every call site)", ErrTooLarge, g.opts.MaxInstructions)
	}
}

// ja jumps to a label that may be far away.
func (g *gen) ja(l string) {
	if g.long {
		g.emit(asm.LongJump(l))
	} else {
		g.emit(asm.Ja.Label(l))
	}
}

// jfar emits conditional jump j to a label that may be far away: in long
// mode as the inverse condition over a gotol.
func (g *gen) jfar(j asm.Instruction, target string) {
	if !g.long {
		g.emit(j.WithReference(target))
		return
	}
	inv, ok := invertJump[j.OpCode.JumpOp()]
	if !ok {
		panic("jfar: cannot invert " + j.OpCode.JumpOp().String())
	}
	skip := g.label()
	j.OpCode = j.OpCode.SetJumpOp(inv)
	g.emit(j.WithReference(skip))
	g.emit(asm.LongJump(target))
	g.place(skip)
}

var invertJump = map[asm.JumpOp]asm.JumpOp{
	asm.JEq: asm.JNE, asm.JNE: asm.JEq,
	asm.JGT: asm.JLE, asm.JLE: asm.JGT, asm.JGE: asm.JLT, asm.JLT: asm.JGE,
	asm.JSGT: asm.JSLE, asm.JSLE: asm.JSGT, asm.JSGE: asm.JSLT, asm.JSLT: asm.JSGE,
}

// Stack slots (offsets from R10) of the parsed packet.
const (
	sSrc        = -8 * (iota + 1) // IPv4 source, numeric (host order); IPv6: its high 64 bits
	sDst                          // IPv4 destination, numeric; IPv6: its high 64 bits
	sLen                          // L3 length (IPv4 total length, IPv6 payload length + 40)
	sProto                        // protocol
	sTTL                          // TTL or hop limit
	sTOS                          // TOS byte or traffic class
	sFrag                         // fragment offset: IPv4 in 8-byte units (par->fragoff), IPv6 in bytes
	sIsFrag                       // any fragment: offset != 0 or MF
	sL4Len                        // bytes from the transport header to the end of the datagram
	sSport                        // ports (TCP/UDP/UDP-Lite/SCTP/DCCP, first fragment, >= 4 bytes)
	sDport                        //
	sTCPByte13                    // byte 13 of the transport header (TCP flags) when >= 14 bytes
	sICMPType                     // ICMP type and code (the family's ICMP, >= 2 bytes)
	sICMPCode                     //
	sPktType                      // skb->pkt_type as eth_type_trans sets it
	sSrcMAC                       // source MAC, the six bytes loaded little-endian
	sVLAN                         // OR of the VLAN tags' ids: 0 untagged or priority tags only
	sL4Off                        // transport header offset within L3
	sKey                          // map key (0)
	sSetKey                       // set map keys (8 bytes)
	sSrc6Lo                       // IPv6: low 64 bits of the source (sSrc holds the high 64), numeric
	sDst6Lo                       // IPv6: low 64 bits of the destination (sDst the high 64)
	sProtoFound                   // IPv6: the extension-header walk found the upper layer
)

// ld loads a slot. The OR with 0 changes nothing but unlinks the register
// from the slot in the verifier (an ALU result gets a fresh identity):
// otherwise every comparison a rule makes refines the spilled slot too,
// the paths reaching the next rule carry different facts about it, the
// verifier cannot prune them, and a flat ruleset of a thousand rules
// exhausts its one million instructions.
func (g *gen) ld(dst asm.Register, slot int16) {
	g.emit(asm.LoadMem(dst, asm.R10, slot, asm.DWord), asm.Or.Imm(dst, 0))
}
func (g *gen) st(slot int16, src asm.Register) { g.emit(asm.StoreMem(asm.R10, slot, src, asm.DWord)) }

// ctrElems is the number of counter elements the layout needs.
func (g *gen) ctrElems() int { return max(1, (g.nctr+ctrPerElem-1)/ctrPerElem) }

// loadCtrPtrs looks up counter elements 1.. after R9 (element 0) and
// spills their pointers to sCtrPtr.
func (g *gen) loadCtrPtrs() {
	for e := 1; e < g.ctrElems(); e++ {
		g.note("counter element %d (counters %d..%d)", e, e*ctrPerElem, (e+1)*ctrPerElem-1)
		g.emit(
			asm.Mov.Imm(asm.R1, int32(e)),
			asm.StoreMem(asm.R10, sSetKey, asm.R1, asm.Word),
			asm.LoadMapPtr(asm.R1, 0).WithReference("counters"),
			asm.Mov.Reg(asm.R2, asm.R10),
			asm.Add.Imm(asm.R2, sSetKey),
			asm.FnMapLookupElem.Call(),
		)
		g.jfar(asm.JEq.Imm(asm.R0, 0, ""), lAbort)
		g.emit(asm.StoreMem(asm.R10, sCtrPtr-8*int16(e-1), asm.R0, asm.DWord))
	}
	if g.ctrElems() > 1 {
		g.emit(asm.Mov.Imm(asm.R1, 0), asm.StoreMem(asm.R10, sSetKey, asm.R1, asm.DWord))
	}
}

// addCtr adds src to counter idx. In element 0 it goes through R9 and
// clobbers R1; beyond, through the element's spilled pointer, with an
// atomic add (no scratch register), clobbering R1.
func (g *gen) addCtr(idx int, src asm.Register) {
	if idx < ctrPerElem {
		off := int16(idx * 8)
		g.emit(
			asm.LoadMem(asm.R1, asm.R9, off, asm.DWord),
			asm.Add.Reg(asm.R1, src),
			asm.StoreMem(asm.R9, off, asm.R1, asm.DWord),
		)
		return
	}
	e, off := idx/ctrPerElem, int16(idx%ctrPerElem*8)
	g.emit(
		asm.LoadMem(asm.R1, asm.R10, sCtrPtr-8*int16(e-1), asm.DWord),
		asm.AddAtomic.Mem(asm.R1, src, asm.DWord, off),
	)
}

// incr adds 1 to counter idx (absolute index); it clobbers R1 and R2.
func (g *gen) incr(idx int) {
	if idx < ctrPerElem {
		off := int16(idx * 8)
		g.emit(
			asm.LoadMem(asm.R1, asm.R9, off, asm.DWord),
			asm.Add.Imm(asm.R1, 1),
			asm.StoreMem(asm.R9, off, asm.R1, asm.DWord),
		)
		return
	}
	g.emit(asm.Mov.Imm(asm.R2, 1))
	g.addCtr(idx, asm.R2)
}

// count adds one packet and its L3 length to the counter pair at idx.
func (g *gen) count(idx int) {
	if idx+1 < ctrPerElem {
		off := int16(idx * 8)
		g.ld(asm.R2, sLen)
		g.emit(
			asm.LoadMem(asm.R1, asm.R9, off, asm.DWord),
			asm.Add.Imm(asm.R1, 1),
			asm.StoreMem(asm.R9, off, asm.R1, asm.DWord),
			asm.LoadMem(asm.R1, asm.R9, off+8, asm.DWord),
			asm.Add.Reg(asm.R1, asm.R2),
			asm.StoreMem(asm.R9, off+8, asm.R1, asm.DWord),
		)
		return
	}
	g.incr(idx)
	g.ld(asm.R2, sLen)
	g.addCtr(idx+1, asm.R2)
}

func (g *gen) ret(action int32) {
	g.emit(asm.Mov.Imm(asm.R0, action), asm.Return())
}

// program emits the whole program.
func (g *gen) program(rs4, rs6 *rules.Ruleset) error {
	// Counter layout, exactly engine/program.go's slot numbering.
	base := NumStats + numScratch
	if g.opts.Capture {
		// The capture slots sit right after the statistics, in the
		// first counter element, where R9 reaches them.
		g.capBase = base
		base += numCaptureSlots
	}
	for _, rs := range []*rules.Ruleset{rs4, rs6} {
		if rs == nil {
			continue
		}
		fl := &g.spec.Families[rs.Family]
		fl.Compiled, fl.Base = true, base
		slot := 0
		for _, t := range rs.Tables {
			for _, c := range t.Chains {
				for _, r := range c.Rules {
					g.ruleIdx[r] = int32(len(g.spec.Rules))
					g.spec.Rules = append(g.spec.Rules, RuleInfo{Family: rs.Family, Table: t.Name, Chain: c.Name,
						Rule: r, Slot: slot, Mode: "unreachable"})
					slot += 2
				}
				slot += 2
			}
		}
		fl.Slots = slot
		base += slot
	}
	g.nctr = base
	g.scanRateLimits(rs4, rs6) // may add counters after the rules'
	if g.nctr > maxCounterElems*ctrPerElem {
		return fmt.Errorf("the rulesets need %d counters; the counter map holds at most %d (about %d rules)", g.nctr, maxCounterElems*ctrPerElem, maxCounterElems*ctrPerElem/2)
	}

	g.prologue()
	g.parseL2(rs4 != nil, rs6 != nil)
	if rs4 != nil {
		g.fam, g.base = packet.FamilyIPv4, g.spec.Families[packet.FamilyIPv4].Base
		g.parseIPv4()
		g.hooks(rs4)
	}
	if rs6 != nil {
		g.fam, g.base = packet.FamilyIPv6, g.spec.Families[packet.FamilyIPv6].Base
		g.cur = -1
		g.place(lIPv6)
		g.parseIPv6()
		g.hooks(rs6)
	}
	g.exits()
	g.vlanExits()
	g.rateExits()
	g.strExits()
	if rs6 != nil {
		g.ipv6Exits()
	}
	if g.err != nil {
		return g.err
	}
	return nil
}

// prologue: R6 = ctx, R9 = this CPU's counters; stack slots zeroed.
func (g *gen) prologue() {
	g.note("sluice XDP filter: R6 = ctx, R9 = this CPU's counters, parsed packet on the stack")
	g.emit(asm.Mov.Reg(asm.R6, asm.R1), asm.Mov.Imm(asm.R1, 0))
	for s := int16(1); s <= stackFields; s++ {
		g.emit(asm.StoreMem(asm.R10, -8*s, asm.R1, asm.DWord))
	}
	g.emit(
		asm.LoadMapPtr(asm.R1, 0).WithReference("counters"),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, sKey),
		asm.FnMapLookupElem.Call(),
	)
	g.jfar(asm.JEq.Imm(asm.R0, 0, ""), lAbort)
	g.emit(asm.Mov.Reg(asm.R9, asm.R0))
	g.loadCtrPtrs()
	g.incr(StatPackets)
	g.captureReset()
}

// parseL2 reads the Ethernet header and VLAN tags as packet.Decoder does,
// leaving R7 at the network header and the EtherType (network order, as
// loaded) in R2, then dispatches.
func (g *gen) parseL2(v4, v6 bool) {
	g.note("Ethernet: R7 = data, R8 = data_end; a frame shorter than 14 bytes is truncated_l2")
	g.emit(
		asm.LoadMem(asm.R7, asm.R6, 0, asm.Word),
		asm.LoadMem(asm.R8, asm.R6, 4, asm.Word),
		asm.Mov.Reg(asm.R1, asm.R7),
		asm.Add.Imm(asm.R1, packet.EthernetMinSize),
	)
	g.malformedIf(asm.JGT.Reg(asm.R1, asm.R8, ""), packet.MalformedTruncatedL2)

	// pkt_type, branch-free so that it stays one unknown value for the
	// verifier: mc = dst[0]&1; nz = dst != ff:ff:ff:ff:ff:ff;
	// type = mc*(1+nz) (host 0, broadcast 1, multicast 2); with a local
	// MAC, unicast to another MAC is 3 and the local MAC itself is 0.
	g.note("pkt_type from the destination MAC (eth_type_trans)")
	g.emit(
		asm.LoadMem(asm.R1, asm.R7, 0, asm.Word),
		asm.LoadMem(asm.R2, asm.R7, 4, asm.Half),
		asm.LSh.Imm(asm.R2, 32),
		asm.Or.Reg(asm.R1, asm.R2), // R1 = dst MAC as LE u48
		asm.Mov.Reg(asm.R3, asm.R1),
		asm.And.Imm(asm.R3, 1), // R3 = mc
		asm.Mov.Reg(asm.R4, asm.R1),
	)
	g.emit(asm.LoadImm(asm.R5, 0xffffffffffff, asm.DWord),
		asm.Xor.Reg(asm.R4, asm.R5),
		asm.Neg.Imm(asm.R4, 0),
		asm.RSh.Imm(asm.R4, 63), // R4 = nz (not broadcast)
		asm.Add.Imm(asm.R4, 1),
		asm.Mul.Reg(asm.R4, asm.R3), // R4 = mc*(1+nz)
	)
	if g.opts.LocalMAC != nil {
		var b [8]byte
		copy(b[:], g.opts.LocalMAC)
		local := binary.LittleEndian.Uint64(b[:])
		g.emit(
			// + (1-mc)*3
			asm.Mov.Imm(asm.R5, 1),
			asm.Sub.Reg(asm.R5, asm.R3),
			asm.Mul.Imm(asm.R5, 3),
			asm.Add.Reg(asm.R4, asm.R5),
			// * (dst != local)
			asm.LoadImm(asm.R5, int64(local), asm.DWord),
			asm.Xor.Reg(asm.R5, asm.R1),
			asm.Neg.Imm(asm.R5, 0),
			asm.RSh.Imm(asm.R5, 63),
			asm.Mul.Reg(asm.R4, asm.R5),
		)
	}
	// Launder through map memory: the verifier forgets it is a function
	// of the branches above.
	g.emit(
		asm.StoreMem(asm.R9, scratchPktType*8, asm.R4, asm.DWord),
		asm.LoadMem(asm.R4, asm.R9, scratchPktType*8, asm.DWord),
		asm.StoreMem(asm.R10, sPktType, asm.R4, asm.DWord),
	)
	g.note("source MAC for -m mac")
	g.emit(
		asm.LoadMem(asm.R1, asm.R7, 6, asm.Word),
		asm.LoadMem(asm.R2, asm.R7, 10, asm.Half),
		asm.LSh.Imm(asm.R2, 32),
		asm.Or.Reg(asm.R1, asm.R2),
		asm.StoreMem(asm.R10, sSrcMAC, asm.R1, asm.DWord),
		asm.LoadMem(asm.R2, asm.R7, 12, asm.Half),
	)
	// VLAN tags: 802.1Q and 802.1ad, stripped as __netif_receive_skb_core
	// does, any number of them (vlan.go). R5 = the network header offset.
	done := g.label()
	g.emit(asm.Mov.Imm(asm.R5, packet.EthernetMinSize))
	g.vlanTags(done)
	// Launder the offset through map memory so that the code after this
	// point is one path for the verifier, not one per tag count.
	g.place(done)
	g.note("R7 = network header (below 16 KiB: XDP frames are shorter)")
	g.emit(
		asm.StoreMem(asm.R9, scratchL3Off*8, asm.R5, asm.DWord),
		asm.LoadMem(asm.R5, asm.R9, scratchL3Off*8, asm.DWord),
	)
	g.jfar(asm.JGT.Imm(asm.R5, maxFrameOff, ""), lAbort)
	g.emit(asm.Add.Reg(asm.R7, asm.R5))
	g.note("dispatch on the EtherType")
	g.emit(asm.JEq.Imm(asm.R2, int32(swap16(packet.EtherTypeIPv4)), lIPv4))
	if v6 {
		g.emit(asm.JEq.Imm(asm.R2, int32(swap16(packet.EtherTypeIPv6)), lIPv6))
	}
	g.ja(lNotFilter)
	if !v4 {
		// No IPv4 ruleset: the decoder still validates IPv4 headers and
		// the engine counts malformed ones; so does this program.
		g.place(lIPv4)
		g.parseIPv4Header()
		g.ja(lNotFilter)
	}
}

func swap16(v uint16) uint16 { return v>>8 | v<<8 }

// malformedIf emits a conditional jump (its label is replaced) to a
// per-reason malformed exit.
func (g *gen) malformedIf(j asm.Instruction, reason packet.Malformed) {
	g.jfar(j, fmt.Sprintf("%s_%d", lMalformed, reason))
	g.usedMalformed[reason] = true
}

// parseIPv4 validates the IPv4 header and fills the stack slots.
func (g *gen) parseIPv4() {
	g.place(lIPv4)
	g.parseIPv4Header()
}

// ipHeaderStart emits what ip_rcv_core and ip6_rcv_core do first: drop
// a PACKET_OTHERHOST frame (with a known local MAC), then a header
// shorter than min bytes in the frame (R7 at the header, R8 data_end).
func (g *gen) ipHeaderStart(min int32) {
	if g.opts.LocalMAC != nil {
		g.ld(asm.R1, sPktType)
		g.malformedIf(asm.JEq.Imm(asm.R1, int32(packet.PktOtherHost), ""), packet.MalformedOtherHost)
	}
	g.note("%d bytes in the frame", min)
	g.emit(
		asm.Mov.Reg(asm.R1, asm.R7),
		asm.Add.Imm(asm.R1, min),
	)
	g.malformedIf(asm.JGT.Reg(asm.R1, asm.R8, ""), packet.MalformedIPHeaderLen)
}

// parseIPv4Header is ip_rcv_core as packet/decode.go's decodeIPv4 has it.
// R7 points at the IPv4 header, R8 is data_end.
func (g *gen) parseIPv4Header() {
	g.note("IPv4 (ip_rcv_core): pkt_type OTHERHOST is dropped first")
	g.ipHeaderStart(packet.IPv4MinSize)
	g.note("version 4, IHL >= 5 and within the frame")
	g.emit(
		asm.LoadMem(asm.R1, asm.R7, 0, asm.Byte),
		asm.Mov.Reg(asm.R2, asm.R1),
		asm.RSh.Imm(asm.R2, 4),
	)
	g.malformedIf(asm.JNE.Imm(asm.R2, 4, ""), packet.MalformedIPVersion)
	g.emit(
		asm.And.Imm(asm.R1, 0x0f),
		asm.LSh.Imm(asm.R1, 2), // R1 = hl
	)
	g.malformedIf(asm.JLT.Imm(asm.R1, packet.IPv4MinSize, ""), packet.MalformedIPHeaderLen)
	g.emit(
		asm.Mov.Reg(asm.R2, asm.R8),
		asm.Sub.Reg(asm.R2, asm.R7), // R2 = bytes from the IP header to the end of the frame
	)
	g.malformedIf(asm.JGT.Reg(asm.R1, asm.R2, ""), packet.MalformedIPHeaderLen)
	g.emit(asm.StoreMem(asm.R10, sL4Off, asm.R1, asm.DWord))
	// Checksum: ip_fast_csum over hl bytes, as 32-bit words summed in 64
	// bits (2^16 = 1 mod 0xffff, and a byte-swapped sum is the swapped
	// sum), then folded; valid iff the fold is 0xffff. Words past IHL are
	// skipped; each load is bounds-checked for the verifier.
	g.note("header checksum over IHL words (ip_fast_csum)")
	sum := g.label()
	g.emit(asm.Mov.Imm(asm.R3, 0))
	for w := 0; w < 15; w++ {
		if w >= 5 {
			g.emit(asm.JLE.Imm(asm.R1, int32(4*w), sum))
			g.emit(
				asm.Mov.Reg(asm.R4, asm.R7),
				asm.Add.Imm(asm.R4, int32(4*w+4)),
				asm.JGT.Reg(asm.R4, asm.R8, sum),
			)
		}
		g.emit(
			asm.LoadMem(asm.R4, asm.R7, int16(4*w), asm.Word),
			asm.Add.Reg(asm.R3, asm.R4),
		)
	}
	g.place(sum)
	for i := 0; i < 3; i++ {
		g.emit(
			asm.Mov.Reg(asm.R4, asm.R3),
			asm.RSh.Imm(asm.R4, 16),
			asm.And.Imm(asm.R3, 0xffff),
			asm.Add.Reg(asm.R3, asm.R4),
		)
	}
	g.malformedIf(asm.JNE.Imm(asm.R3, 0xffff, ""), packet.MalformedIPChecksum)
	g.note("total length: within the frame and at least IHL*4")
	g.emit(
		asm.LoadMem(asm.R3, asm.R7, 2, asm.Half),
		asm.HostTo(asm.BE, asm.R3, asm.Half),
	)
	g.malformedIf(asm.JGT.Reg(asm.R3, asm.R2, ""), packet.MalformedIPTotalLen)
	g.malformedIf(asm.JLT.Reg(asm.R3, asm.R1, ""), packet.MalformedIPTotalLen)
	g.note("fields for the rules")
	g.emit(
		asm.StoreMem(asm.R10, sLen, asm.R3, asm.DWord),
		asm.Sub.Reg(asm.R3, asm.R1),
		asm.StoreMem(asm.R10, sL4Len, asm.R3, asm.DWord),
		asm.LoadMem(asm.R2, asm.R7, 12, asm.Word),
		asm.HostTo(asm.BE, asm.R2, asm.Word),
		asm.StoreMem(asm.R10, sSrc, asm.R2, asm.DWord),
		asm.LoadMem(asm.R2, asm.R7, 16, asm.Word),
		asm.HostTo(asm.BE, asm.R2, asm.Word),
		asm.StoreMem(asm.R10, sDst, asm.R2, asm.DWord),
		asm.LoadMem(asm.R2, asm.R7, 8, asm.Byte),
		asm.StoreMem(asm.R10, sTTL, asm.R2, asm.DWord),
		asm.LoadMem(asm.R2, asm.R7, 1, asm.Byte),
		asm.StoreMem(asm.R10, sTOS, asm.R2, asm.DWord),
		asm.LoadMem(asm.R2, asm.R7, 9, asm.Byte),
		asm.StoreMem(asm.R10, sProto, asm.R2, asm.DWord),
		asm.LoadMem(asm.R4, asm.R7, 6, asm.Half),
		asm.HostTo(asm.BE, asm.R4, asm.Half),
		asm.Mov.Reg(asm.R5, asm.R4),
		asm.And.Imm(asm.R5, 0x1fff),
		asm.StoreMem(asm.R10, sFrag, asm.R5, asm.DWord),
		asm.And.Imm(asm.R4, 0x3fff), // offset or MF
		asm.StoreMem(asm.R10, sIsFrag, asm.R4, asm.DWord),
	)
	// Transport fields (decodeTransport): only for offset 0, L4Len > 0,
	// and as far as the bytes go. R1 = hl, R3 = l4len, R2 = proto.
	g.transport(packet.ProtoICMP)
	g.note("a VLAN-tagged frame (id != 0) is not this interface's: unfiltered")
	g.ld(asm.R1, sVLAN)
	g.jfar(asm.JNE.Imm(asm.R1, 0, ""), lNotFilter)
}

// transport is decodeTransport: the fields of an unfragmented or first
// fragment's transport header, as far as its bytes go. R1 = transport
// header offset within L3 (bounded), R2 = protocol, R3 = L4Len, R5 =
// fragment offset; icmpProto is the family's ICMP (type and code are
// read for it alone).
func (g *gen) transport(icmpProto int32) {
	done := g.label()
	g.note("transport header fields (decodeTransport)")
	g.emit(
		asm.JNE.Imm(asm.R5, 0, done),
		asm.JEq.Imm(asm.R3, 0, done),
		asm.Add.Reg(asm.R1, asm.R7), // R1 = transport header
	)
	notTCP, ports, icmp, bad := g.label(), g.label(), g.label(), g.label()
	g.emit(asm.JNE.Imm(asm.R2, packet.ProtoTCP, notTCP))
	// TCP: byte 13 when L4Len >= 14 (flags); ports when >= 4.
	g.emit(
		asm.JLT.Imm(asm.R3, 14, ports),
		asm.Mov.Reg(asm.R4, asm.R1),
		asm.Add.Imm(asm.R4, 14),
		asm.JGT.Reg(asm.R4, asm.R8, bad),
		asm.LoadMem(asm.R4, asm.R1, 13, asm.Byte),
		asm.StoreMem(asm.R10, sTCPByte13, asm.R4, asm.DWord),
	)
	g.ja(ports)
	g.place(notTCP)
	g.emit(asm.JEq.Imm(asm.R2, icmpProto, icmp))
	for _, p := range []int32{packet.ProtoUDP, 136, 132, 33} { // UDP, UDP-Lite, SCTP, DCCP
		g.emit(asm.JEq.Imm(asm.R2, p, ports))
	}
	g.ja(done)
	g.place(ports)
	g.emit(
		asm.JLT.Imm(asm.R3, 4, done),
		asm.Mov.Reg(asm.R4, asm.R1),
		asm.Add.Imm(asm.R4, 4),
		asm.JGT.Reg(asm.R4, asm.R8, bad),
		asm.LoadMem(asm.R4, asm.R1, 0, asm.Half),
		asm.HostTo(asm.BE, asm.R4, asm.Half),
		asm.StoreMem(asm.R10, sSport, asm.R4, asm.DWord),
		asm.LoadMem(asm.R4, asm.R1, 2, asm.Half),
		asm.HostTo(asm.BE, asm.R4, asm.Half),
		asm.StoreMem(asm.R10, sDport, asm.R4, asm.DWord),
	)
	g.ja(done)
	g.place(icmp)
	g.emit(
		asm.JLT.Imm(asm.R3, 2, done),
		asm.Mov.Reg(asm.R4, asm.R1),
		asm.Add.Imm(asm.R4, 2),
		asm.JGT.Reg(asm.R4, asm.R8, bad),
		asm.LoadMem(asm.R4, asm.R1, 0, asm.Byte),
		asm.StoreMem(asm.R10, sICMPType, asm.R4, asm.DWord),
		asm.LoadMem(asm.R4, asm.R1, 1, asm.Byte),
		asm.StoreMem(asm.R10, sICMPCode, asm.R4, asm.DWord),
	)
	g.ja(done)
	g.place(bad)
	g.ja(lAbort)
	g.place(done)
}

// exits emits the shared tails.
func (g *gen) exits() {
	g.cur = -1
	g.place(lAccept)
	g.note("accepted: on to the kernel")
	g.incr(StatAccepted)
	g.captureExit(CaptureAccepted)
	g.ret(xdpPass)
	g.place(lDrop)
	g.note("dropped by a rule or a policy")
	g.incr(StatDropped)
	g.captureExit(CaptureDropped)
	g.ret(xdpDrop)
	g.place(lHotdrop)
	g.note("hotdrop: a match could not read its header; no rule counts it")
	g.incr(StatHotdropped)
	g.captureExit(CaptureHotdropped)
	g.ret(xdpDrop)
	g.place(lNotFilter)
	g.note("not filtered")
	g.incr(StatNotFiltered)
	g.captureExit(CaptureNotFiltered)
	g.ret(xdpPass)
	for reason := packet.Malformed(1); int(reason) < packet.NumMalformed; reason++ {
		if !g.usedMalformed[reason] {
			continue
		}
		g.place(fmt.Sprintf("%s_%d", lMalformed, reason))
		g.note("malformed (%s): the receive path drops it before netfilter", reason)
		g.incr(StatMalformed)
		g.incr(StatMalformedBy + int(reason))
		g.captureExit(CaptureMalformed + int(reason))
		g.ret(xdpDrop)
	}
	if len(g.spec.Fallback) > 0 {
		g.place(lFallback)
		g.note("fallback: R7 = site; write it to the XDP metadata, pass to userspace")
		g.incr(StatFallback)
		g.emit(
			asm.Mov.Reg(asm.R1, asm.R6),
			asm.Mov.Imm(asm.R2, -4),
			asm.FnXdpAdjustMeta.Call(),
			asm.JNE.Imm(asm.R0, 0, lAbort+"_meta"),
			asm.LoadMem(asm.R2, asm.R6, 8, asm.Word), // data_meta
			asm.LoadMem(asm.R3, asm.R6, 0, asm.Word), // data
			asm.Mov.Reg(asm.R4, asm.R2),
			asm.Add.Imm(asm.R4, 4),
			asm.JGT.Reg(asm.R4, asm.R3, lAbort+"_meta"),
			asm.StoreMem(asm.R2, 0, asm.R7, asm.Word),
		)
		if g.opts.XSKQueues > 0 {
			g.note("redirect to this receive queue's AF_XDP socket (XDP_PASS without one)")
			g.emit(
				asm.LoadMapPtr(asm.R1, 0).WithReference("xsks"),
				asm.LoadMem(asm.R2, asm.R6, 16, asm.Word), // rx_queue_index
				asm.Mov.Imm(asm.R3, xdpPass),
				asm.FnRedirectMap.Call(),
				asm.Return(),
			)
		} else {
			g.ret(xdpPass)
		}
		g.place(lAbort + "_meta")
		g.note("no room for metadata: pass without it")
		g.ret(xdpPass)
	}
	g.place(lAbort)
	g.note("cannot happen (map lookup failed, bounds the verifier needs): pass")
	g.ret(xdpPass)
}

// fallbackHere records a site and jumps to the fallback tail.
func (g *gen) fallbackHere(site FallbackSite) {
	id := len(g.spec.Fallback)
	g.spec.Fallback = append(g.spec.Fallback, site)
	g.siteInsn = append(g.siteInsn, len(g.insns))
	g.note("FALLBACK site %d: %s", id, site.Reason)
	g.emit(asm.Mov.Imm(asm.R7, int32(id)|int32(g.opts.Generation)<<24))
	g.ja(lFallback)
}

// finish resolves labels and builds the Spec.
func (g *gen) finish() (*Spec, error) {
	if len(g.pending) > 0 {
		return nil, fmt.Errorf("internal error: labels %v at the end of the program", g.pending)
	}
	g.deadCode()
	// Several labels can precede one instruction: the first placed is
	// canonical, references to the others are rewritten.
	canon := map[int]string{}
	alias := map[string]string{}
	for l, i := range g.labels {
		if c, ok := canon[i]; !ok || l < c {
			canon[i] = l
		}
	}
	for l, i := range g.labels {
		alias[l] = canon[i]
	}
	used := map[string]bool{}
	for i := range g.insns {
		ref := g.insns[i].Reference()
		if ref == "" || ref == "counters" || ref == "xsks" || strings.HasPrefix(ref, "set_") || isCaptureRef(ref) || isRateRef(ref) {
			continue
		}
		c, ok := alias[ref]
		if !ok {
			return nil, fmt.Errorf("internal error: jump to unplaced label %q", ref)
		}
		g.insns[i] = g.insns[i].WithReference(c)
		used[c] = true
	}
	for i, l := range canon {
		if used[l] {
			g.insns[i] = g.insns[i].WithSymbol(l)
		}
	}
	g.insns[0] = g.insns[0].WithSymbol(g.opts.Name)
	g.spec.Program = &ebpf.ProgramSpec{
		Name:         g.opts.Name,
		Type:         ebpf.XDP,
		Instructions: g.insns,
		License:      "GPL",
	}
	g.spec.Counters = &ebpf.MapSpec{
		Name:       "sluice_ctr",
		Type:       ebpf.PerCPUArray,
		KeySize:    4,
		ValueSize:  uint32(min(g.nctr, ctrPerElem) * 8),
		MaxEntries: uint32(g.ctrElems()),
	}
	if g.opts.XSKQueues > 0 {
		g.spec.XSKs = &ebpf.MapSpec{Name: "sluice_xsks", Type: ebpf.XSKMap, KeySize: 4, ValueSize: 4, MaxEntries: uint32(g.opts.XSKQueues)}
	}
	g.finishRateLimits()
	g.spec.RateLimits = g.rl.spec
	g.spec.owner = g.owner
	return g.spec, nil
}

// deadCode removes instructions no path reaches (code after a check
// that always fails, rules after a fallback every packet takes): the
// verifier refuses unreachable instructions. A rule whose code all goes
// becomes "shadowed".
func (g *gen) deadCode() {
	reach := make([]bool, len(g.insns))
	work := []int{0}
	for len(work) > 0 {
		i := work[len(work)-1]
		work = work[:len(work)-1]
		for i < len(g.insns) && !reach[i] {
			reach[i] = true
			ins := &g.insns[i]
			cls := ins.OpCode.Class()
			if ins.IsLoadOfFunctionPointer() {
				work = append(work, g.labels[ins.Reference()]) // a callback (ratelimit.go)
			}
			if cls.IsJump() {
				op := ins.OpCode.JumpOp()
				if op == asm.Exit {
					break
				}
				if op != asm.Call {
					if ref := ins.Reference(); ref != "" {
						work = append(work, g.labels[ref])
					}
					if op == asm.Ja {
						break
					}
				}
			}
			i++
		}
	}
	newIdx := make([]int, len(g.insns)+1)
	var insns asm.Instructions
	var owner []int32
	live := map[int32]bool{}
	for i, ins := range g.insns {
		newIdx[i] = len(insns)
		if !reach[i] {
			continue
		}
		insns = append(insns, ins)
		owner = append(owner, g.owner[i])
		live[g.owner[i]] = true
	}
	newIdx[len(g.insns)] = len(insns)
	for l, i := range g.labels {
		g.labels[l] = newIdx[i]
	}
	for i := range g.spec.Rules {
		r := &g.spec.Rules[i]
		if r.Sites > 0 && (r.Mode == "xdp" || r.Mode == "fallback") && !live[int32(i)] {
			r.Mode, r.Reason = "shadowed", "every packet that gets here has fallen back or left earlier"
		}
	}
	for id, i := range g.siteInsn {
		g.spec.Fallback[id].Dead = !reach[i]
	}
	g.insns, g.owner = insns, owner
}
