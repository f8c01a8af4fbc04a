package xdp

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"

	"github.com/sluice-project/sluice/engine/strmatch"
	"github.com/sluice-project/sluice/rules"
)

// The string match (xt_string) in XDP.
//
// engine/strmatch.Matcher.Match is skb_find_text over the linear datagram
// l3: nothing when from >= to or from >= len(l3); otherwise the first hit r
// the algorithm reports in l3[from:] counts when r+len(pattern) <= to-from.
// For every configuration except ts_bm with --icase and a bad-character
// table that can skip an occurrence (the Latin-1 0xDF/0xFF quirk, below),
// both algorithms report the leftmost occurrence, so the match is "the
// pattern occurs at some L3 offset i with from <= i and
// i+len(pattern) <= min(len(l3), to)", where with --icase a text byte c
// equals a pattern byte p when the kernel's Latin-1 toupper(c) is
// toupper(p). That is what the program evaluates, with bpf_loop running
// one callback per rule (strExits) over the candidate offsets: the
// verifier walks the callback's code once per path to the rule, whatever
// the window.
//
// The quirky configurations stay fallback sites: their answer depends on
// the kernel's skip tables, which this code does not run.

// Stack of the string match: the callback's context, four slots inside
// the area the hashlimit code uses only while it builds a new entry
// (rlVal), which no string match interrupts. The callback itself uses no
// stack: with CompileOptions.Capture the program's frame is the whole
// 512 bytes, and a callback's frame would add to it.
const (
	strVal  = -456 // the counter value (R9), which holds the cursor
	strCnt  = -448 // candidates in the window
	strBase = -440 // offset of candidate 0 from data (L3 offset + from)
	strCtx  = -432 // the xdp_md pointer
)

// Offsets within the callback context, from its start (strVal).
const (
	strCtxVal  = 0
	strCtxCnt  = strCnt - strVal
	strCtxBase = strBase - strVal
	strCtxCtx  = strCtx - strVal
)

// strCursor is the counter-value slot of the search state: the next
// candidate (a multiple of 8) in the bits above 3, and in the low three
// bits strVerify (check the 8 candidates from there), or, once the
// search is over, strHit, strNoHit or strAbort (a candidate outside the
// XDP buffer). It lives in map memory, not on the stack, so that the
// verifier does not follow it from call to call (it would walk every
// iteration of the loop, and every result as a distinct state). The slot
// is parseL2's pkt_type scratch, dead once the rules run.
const strCursor = scratchPktType * 8

// Low bits of the search state.
const (
	strVerify = 1
	strHit    = 2
	strAbort  = 4
	strNoHit  = 6
)

// strWords is the number of 8-candidate words one callback call screens.
const strWords = 8

// strMaxOffset bounds the candidate offset from data that the callback
// accepts: frames are far shorter (an XDP buffer is at most a page), so
// the bound only gives the verifier the range it needs.
const strMaxOffset = 0xff00

// stringConfig is one string match's configuration, as Matcher.String
// prints it.
type stringConfig struct {
	pattern  []byte // as configured
	algo     strmatch.Algo
	from, to uint32
	icase    bool
}

// parseStringConfig re-reads the canonical text of m (Matcher.String:
// --string "..." or --hex-string "|..|", --algo, --from unless 0, --to
// unless 65535, --icase) and checks that the configuration it gives
// prints the same text, so that this package needs nothing unexported.
func parseStringConfig(m *strmatch.Matcher) (*stringConfig, error) {
	s := m.String()
	c := &stringConfig{to: strmatch.DefaultTo}
	switch {
	case strings.HasPrefix(s, `--hex-string "|`):
		s = s[len(`--hex-string "|`):]
		end := strings.Index(s, `|"`)
		if end < 0 || end%2 != 0 {
			return nil, fmt.Errorf("cannot read %q", m.String())
		}
		for i := 0; i < end; i += 2 {
			b, err := strconv.ParseUint(s[i:i+2], 16, 8)
			if err != nil {
				return nil, fmt.Errorf("cannot read %q: %v", m.String(), err)
			}
			c.pattern = append(c.pattern, byte(b))
		}
		s = s[end+2:]
	case strings.HasPrefix(s, `--string "`):
		s = s[len(`--string "`):]
		i := 0
		for ; i < len(s) && s[i] != '"'; i++ {
			if s[i] == '\\' {
				i++
				if i == len(s) {
					break
				}
			}
			c.pattern = append(c.pattern, s[i])
		}
		if i >= len(s) {
			return nil, fmt.Errorf("cannot read %q", m.String())
		}
		s = s[i+1:]
	default:
		return nil, fmt.Errorf("cannot read %q", m.String())
	}
	f := strings.Fields(s)
	for i := 0; i < len(f); i++ {
		var err error
		var v uint64
		switch f[i] {
		case "--algo", "--from", "--to":
			if i+1 >= len(f) {
				return nil, fmt.Errorf("cannot read %q", m.String())
			}
			if f[i] == "--algo" {
				c.algo, err = strmatch.ParseAlgo(f[i+1])
			} else if v, err = strconv.ParseUint(f[i+1], 10, 16); f[i] == "--from" {
				c.from = uint32(v)
			} else {
				c.to = uint32(v)
			}
			i++
		case "--icase":
			c.icase = true
		default:
			err = fmt.Errorf("unknown option %q", f[i])
		}
		if err != nil {
			return nil, fmt.Errorf("cannot read %q: %v", m.String(), err)
		}
	}
	again, err := strmatch.New(c.pattern, c.algo, c.from, c.to, c.icase)
	if err != nil {
		return nil, fmt.Errorf("cannot read %q: %v", m.String(), err)
	}
	if again.String() != m.String() {
		return nil, fmt.Errorf("%q reads back as %q", m.String(), again.String())
	}
	return c, nil
}

// searched returns the pattern as the kernel searches it: upper-cased
// with its Latin-1 toupper under --icase.
func (c *stringConfig) searched() []byte {
	p := append([]byte(nil), c.pattern...)
	if c.icase {
		for i := range p {
			p[i] = kernelToUpper(p[i])
		}
	}
	return p
}

// quirky reports what strmatch.New decides for ts_bm with --icase: its
// bad-character table (compute_prefix_tbl: entries for each pattern byte
// and its tolower only) gives some text byte a longer shift than the
// exact table (every byte whose toupper is a pattern byte), so the
// kernel's Boyer-Moore can jump over an occurrence and the answer is no
// longer "is there an occurrence".
func (c *stringConfig) quirky() bool {
	if !c.icase || c.algo != strmatch.AlgoBM {
		return false
	}
	pat := c.searched()
	n := len(pat)
	var kernel, exact [256]int
	for b := range kernel {
		kernel[b], exact[b] = n, n
	}
	for i := 0; i < n-1; i++ {
		kernel[pat[i]] = n - 1 - i
		kernel[kernelToLower(pat[i])] = n - 1 - i
	}
	for b := 0; b < 256; b++ {
		u := kernelToUpper(byte(b))
		for i := 0; i < n-1; i++ {
			if pat[i] == u {
				exact[b] = n - 1 - i
			}
		}
	}
	for b := range kernel {
		if kernel[b] > exact[b] {
			return true
		}
	}
	return false
}

// textBytes returns the text bytes that equal the searched pattern byte
// p: p itself without --icase, else every c with toupper(c) == p (one or
// two bytes; 0xDF, the upper case of 0xFF, is not its own).
func (c *stringConfig) textBytes(p byte) []byte {
	if !c.icase {
		return []byte{p}
	}
	var out []byte
	for b := 0; b < 256; b++ {
		if kernelToUpper(byte(b)) == p {
			out = append(out, byte(b))
		}
	}
	return out
}

// The kernel's Latin-1 character classes (lib/ctype.c), as
// engine/strmatch has them.
func kernelToUpper(c byte) byte {
	if (c >= 'a' && c <= 'z') || (c >= 0xdf && c != 0xf7) {
		return c - ('a' - 'A')
	}
	return c
}

func kernelToLower(c byte) byte {
	if (c >= 'A' && c <= 'Z') || (c >= 0xc0 && c <= 0xde && c != 0xd7) {
		return c + ('a' - 'A')
	}
	return c
}

// StringQuirkReason is the reason of the fallback site of a string match
// whose answer depends on ts_bm's --icase skip tables.
const StringQuirkReason = "string: --algo bm --icase with a pattern byte whose kernel skip table can jump over an occurrence (Latin-1 0xDF/0xFF); only userspace runs the kernel's Boyer-Moore"

// strGen holds the search callbacks of a program being generated.
type strGen struct {
	cbs   map[*strmatch.Matcher]*strCallback
	order []*strCallback
	sw    map[int16]string // labels of the callback being emitted
}

// strCallback is a search callback to emit after the program's exits.
type strCallback struct {
	label string
	cfg   *stringConfig
	owner int32
	text  string
}

// stringMatch emits xt_string: the window end is min(L3 length, to); with
// room for the pattern, bpf_loop runs the rule's callback over the
// candidate offsets from..end-len(pattern), and the result (or its
// inverse with !) decides. Callbacks are shared by the call sites of a
// rule.
func (g *gen) stringMatch(m *rules.String, fail string) string {
	cfg, err := parseStringConfig(m.M)
	if err != nil {
		return "string: " + err.Error()
	}
	if cfg.quirky() {
		return StringQuirkReason
	}
	if g.str.cbs == nil {
		g.str.cbs = map[*strmatch.Matcher]*strCallback{}
	}
	cb := g.str.cbs[m.M]
	if cb == nil {
		cb = &strCallback{label: fmt.Sprintf("str_cb_%d", len(g.str.order)), cfg: cfg, owner: g.cur, text: m.M.String()}
		g.str.cbs[m.M] = cb
		g.str.order = append(g.str.order, cb)
	}
	n := uint32(len(cfg.pattern))
	inv := ""
	if m.Invert {
		inv = "! "
	}
	hit, miss := g.label(), g.label()
	g.note("-m string %s%s: window [%d, min(L3 length, %d)), pattern of %d bytes inside it", inv, m.M.String(), cfg.from, cfg.to, n)
	clamped := g.label()
	g.note("the L3 length, laundered through map memory: the compares below must not narrow the stack slot (a state per range at the bpf_loop call)")
	g.ld(asm.R1, sLen)
	g.emit(
		asm.StoreMem(asm.R9, strCursor, asm.R1, asm.DWord),
		asm.LoadMem(asm.R1, asm.R9, strCursor, asm.DWord),
	)
	g.emit(
		asm.JLE.Imm(asm.R1, int32(cfg.to), clamped),
		asm.Mov.Imm(asm.R1, int32(cfg.to)),
	)
	g.place(clamped)
	g.note("no room for the pattern between from and the window end: no hit")
	g.emit(
		asm.JLT.Imm(asm.R1, int32(cfg.from+n), miss),
		asm.Sub.Imm(asm.R1, int32(cfg.from+n-1)), // R1 = candidate offsets
	)
	g.note("callback context: ctx, counter value, candidate 0's offset from data, candidates; both laundered through map memory, so that the callback's entry state is the same on every path and bpf_loop, which makes its R1 precise, does not make the L3 length precise")
	g.emit(
		asm.StoreMem(asm.R9, strCursor, asm.R1, asm.DWord),
		asm.LoadMem(asm.R1, asm.R9, strCursor, asm.DWord),
		asm.StoreMem(asm.R10, strCnt, asm.R1, asm.DWord),
		asm.StoreMem(asm.R10, strCtx, asm.R6, asm.DWord),
		asm.StoreMem(asm.R10, strVal, asm.R9, asm.DWord),
		asm.LoadMem(asm.R2, asm.R9, scratchL3Off*8, asm.DWord),
		asm.Add.Imm(asm.R2, int32(cfg.from)),
		asm.StoreMem(asm.R9, strCursor, asm.R2, asm.DWord),
		asm.LoadMem(asm.R2, asm.R9, strCursor, asm.DWord),
		asm.StoreMem(asm.R10, strBase, asm.R2, asm.DWord),
		asm.Mov.Imm(asm.R2, 0),
		asm.StoreMem(asm.R9, strCursor, asm.R2, asm.DWord),
	)
	g.note("at most two calls per 8 candidates (a screen, then their check), and one to end")
	g.emit(
		asm.Add.Imm(asm.R1, 7),
		asm.RSh.Imm(asm.R1, 3),
		asm.LSh.Imm(asm.R1, 1),
		asm.Add.Imm(asm.R1, 1),
	)
	fn := asm.LoadImm(asm.R2, -1, asm.DWord) // resolved to the callback by the assembler
	fn.Src = asm.PseudoFunc
	g.note("bpf_loop(calls, %s, &context, 0), then the state's low bits: hit, no hit, or else abort", cb.label)
	g.emit(
		fn.WithReference(cb.label),
		asm.Mov.Reg(asm.R3, asm.R10),
		asm.Add.Imm(asm.R3, strVal),
		asm.Mov.Imm(asm.R4, 0),
		asm.FnLoop.Call(),
		asm.LoadMem(asm.R1, asm.R9, strCursor, asm.DWord),
		asm.And.Imm(asm.R1, 7),
		asm.JEq.Imm(asm.R1, strHit, hit),
		asm.JEq.Imm(asm.R1, strNoHit, miss),
	)
	g.note("a candidate outside the XDP buffer, or calls left over: cannot happen (the datagram is in the frame)")
	g.ja(lAbort)
	g.matchEnd(hit, miss, fail, m.Invert)
	return ""
}

// strExits emits the search callbacks after the program's exits.
//
// callback(i, context) continues the search at the cursor c (strCursor)
// and returns 1 (stop) on a hit (result 1), at the window's end (result
// 0) or for a candidate outside the XDP buffer (result 2), else 0:
//
//   - in screen mode it tests 8 words of 8 candidates each for the
//     pattern's first and last bytes (at candidate+0 and +len-1): a SWAR
//     zero-byte test on the word xor that byte in every lane, after
//     folding bit 5 under --icase when the byte's two forms differ in it
//     alone (a byte with two other forms, 0xBF, is not screened). The
//     test can pass a candidate that does not hold the bytes, never fail
//     one that does. The first word that passes (or, near the end of the
//     buffer, the next word) switches to verify mode at that word; when
//     none passes, the cursor moves past them;
//   - in verify mode it compares the pattern at each of the 8 candidates
//     from c, in order, each checked against the window's end first (so
//     the first occurrence past it stops the search) and against the
//     buffer, then goes back to screen mode after them.
//
// The code the verifier walks per call is one screen and one 8-candidate
// check, whatever the window; bpf_loop runs it as often as needed.
func (g *gen) strExits() {
	if len(g.str.order) == 0 {
		return
	}
	vp := &btf.Pointer{Target: &btf.Void{}}
	i64 := &btf.Int{Name: "long", Size: 8, Encoding: btf.Signed}
	if btf.FuncMetadata(&g.insns[0]) == nil {
		// bpf_loop wants BTF func_info for the program's functions.
		g.insns[0] = btf.WithFuncMetadata(g.insns[0], mainFuncBTF(g.opts.Name))
	}
	for _, cb := range g.str.order {
		g.cur = cb.owner
		pat := cb.cfg.searched()
		n := int32(len(pat))
		verify, hit, stop, abort, done := g.label(), g.label(), g.label(), g.label(), g.label()
		g.place(cb.label)
		g.note("string search callback for %s: R2 = context; R6 = context, R7 = candidate c, R8 = data_end, R1 = c", cb.text)
		g.emit(
			btf.WithFuncMetadata(asm.Mov.Reg(asm.R6, asm.R2), &btf.Func{Name: cb.label, Linkage: btf.StaticFunc,
				Type: &btf.FuncProto{Return: i64, Params: []btf.FuncParam{{Name: "index", Type: &btf.Int{Name: "u32", Size: 4}},
					{Name: "ctx", Type: vp}}}}),
			asm.LoadMem(asm.R3, asm.R6, strCtxCtx, asm.DWord),
			asm.LoadMem(asm.R7, asm.R3, 0, asm.Word), // data
			asm.LoadMem(asm.R8, asm.R3, 4, asm.Word), // data_end
			asm.LoadMem(asm.R2, asm.R6, strCtxVal, asm.DWord),
			asm.LoadMem(asm.R1, asm.R2, strCursor, asm.DWord),
			asm.Mov.Reg(asm.R2, asm.R1),
			asm.And.Imm(asm.R2, 7), // R2 = mode
			asm.JGT.Imm(asm.R2, strVerify, done),
			asm.And.Imm(asm.R1, -8),
			asm.LoadMem(asm.R0, asm.R6, strCtxCnt, asm.DWord),
			asm.JGE.Reg(asm.R1, asm.R0, stop),
			asm.JGT.Imm(asm.R1, strMaxOffset, abort),
			asm.LoadMem(asm.R0, asm.R6, strCtxBase, asm.DWord),
			asm.Add.Reg(asm.R0, asm.R1),
			asm.JGT.Imm(asm.R0, strMaxOffset, abort),
			asm.Add.Reg(asm.R7, asm.R0),
			asm.JNE.Imm(asm.R2, 0, verify),
		)
		// The screen tests the first and the last pattern byte (each
		// when its text forms are one byte or a bit-5 pair): R5 = the
		// first byte's form in every lane, R3 = the lanes' fold mask
		// (0x20 under --icase for a letter), R4 and R9 the same for the
		// last byte at candidate+n-1. R0, R1, R2 and R8 (data_end, not
		// needed once the words are known to be in the buffer) are
		// scratch; the cursor is read again from map memory to update.
		type screenByte struct {
			at        int16
			val, fold byte
			valR, orR asm.Register
		}
		var screens []screenByte
		for _, sb := range []screenByte{{at: 0, valR: asm.R5, orR: asm.R3}, {at: int16(n - 1), valR: asm.R4, orR: asm.R9}} {
			if n == 1 && sb.at > 0 {
				continue // the same byte
			}
			alts := cb.cfg.textBytes(pat[sb.at])
			switch {
			case len(alts) == 1:
				sb.val = alts[0]
			case len(alts) == 2 && alts[0]|0x20 == alts[1] && alts[0]&0x20 == 0:
				sb.val, sb.fold = alts[1], 0x20
			default:
				continue // 0xBF under --icase (0xBF or 0xDF): not screened
			}
			screens = append(screens, sb)
		}
		g.note("screen mode: %d words when the buffer holds them and the bytes after, else verify the next 8", strWords)
		g.emit(
			asm.Mov.Reg(asm.R0, asm.R7),
			asm.Add.Imm(asm.R0, 8*strWords+n-1),
			asm.JGT.Reg(asm.R0, asm.R8, g.strSwitch(0)),
		)
		if len(screens) == 0 {
			g.note("no pattern byte to screen for: verify every candidate")
			g.emit(asm.Ja.Label(g.strSwitch(0)))
		}
		for _, sb := range screens {
			g.note("screen for (byte at candidate+%d | 0x%02x) == 0x%02x", sb.at, sb.fold, sb.val)
			g.emit(asm.LoadImm(sb.valR, int64(lanes(sb.val)), asm.DWord))
			if sb.fold != 0 {
				g.emit(asm.LoadImm(sb.orR, int64(lanes(sb.fold)), asm.DWord))
			}
		}
		// zero sets dst to a non-zero value when a lane of R2 is 0
		// (the SWAR test (x - 0x01..) & ^x & 0x80..; R1 and R2 are
		// clobbered).
		zero := func(dst asm.Register) {
			g.emit(
				asm.Mov.Reg(dst, asm.R2),
				asm.LoadImm(asm.R1, int64(lanes(0x01)), asm.DWord),
				asm.Sub.Reg(dst, asm.R1),
				asm.Xor.Imm(asm.R2, -1),
				asm.And.Reg(dst, asm.R2),
				asm.LoadImm(asm.R1, int64(lanes(0x80)), asm.DWord),
				asm.And.Reg(dst, asm.R1),
			)
		}
		if len(screens) > 0 {
			for w := int16(0); w < strWords; w++ {
				for i, sb := range screens {
					g.emit(asm.LoadMem(asm.R2, asm.R7, 8*w+sb.at, asm.DWord))
					if sb.fold != 0 {
						g.emit(asm.Or.Reg(asm.R2, sb.orR))
					}
					g.emit(asm.Xor.Reg(asm.R2, sb.valR))
					if i == 0 {
						zero(asm.R0)
					} else {
						zero(asm.R8)
						g.emit(asm.And.Reg(asm.R0, asm.R8))
					}
				}
				g.emit(asm.JNE.Imm(asm.R0, 0, g.strSwitch(w)))
			}
			g.note("no candidate in these words: move past them")
			g.emit(
				asm.LoadMem(asm.R2, asm.R6, strCtxVal, asm.DWord),
				asm.LoadMem(asm.R1, asm.R2, strCursor, asm.DWord),
				asm.Add.Imm(asm.R1, 8*strWords),
				asm.StoreMem(asm.R2, strCursor, asm.R1, asm.DWord),
				asm.Mov.Imm(asm.R0, 0),
				asm.Return(),
			)
		}
		for w := int16(0); w < strWords; w++ {
			if _, ok := g.str.sw[w]; !ok {
				continue
			}
			g.place(g.strSwitch(w))
			g.emit(
				asm.LoadMem(asm.R2, asm.R6, strCtxVal, asm.DWord),
				asm.LoadMem(asm.R1, asm.R2, strCursor, asm.DWord),
				asm.Add.Imm(asm.R1, int32(8*w+strVerify)),
				asm.StoreMem(asm.R2, strCursor, asm.R1, asm.DWord),
				asm.Mov.Imm(asm.R0, 0),
				asm.Return(),
			)
		}
		g.place(verify)
		g.note("verify mode: the 8 candidates from c, each inside the window (R9 = candidates left) and the buffer")
		g.emit(
			asm.LoadMem(asm.R9, asm.R6, strCtxCnt, asm.DWord),
			asm.Sub.Reg(asm.R9, asm.R1),
		)
		for j := int32(0); j < 8; j++ {
			next := g.label()
			g.emit(
				asm.JLE.Imm(asm.R9, j, stop),
				asm.Mov.Reg(asm.R0, asm.R7),
				asm.Add.Imm(asm.R0, j+n),
				asm.JGT.Reg(asm.R0, asm.R8, abort),
			)
			g.strCompare(cb.cfg, pat, asm.R7, int16(j), next)
			g.emit(asm.Ja.Label(hit))
			g.place(next)
		}
		g.note("none of the 8: back to screen mode after them")
		g.emit(
			asm.Add.Imm(asm.R1, 8),
			asm.LoadMem(asm.R2, asm.R6, strCtxVal, asm.DWord),
			asm.StoreMem(asm.R2, strCursor, asm.R1, asm.DWord),
			asm.Mov.Imm(asm.R0, 0),
			asm.Return(),
		)
		for _, end := range []struct {
			label string
			state int32
			what  string
		}{{hit, strHit, "hit"}, {stop, strNoHit, "past the window's end: no hit"}, {abort, strAbort, "a candidate outside the XDP buffer: abort"}} {
			g.place(end.label)
			g.note("%s: state %d, stop", end.what, end.state)
			g.emit(
				asm.LoadMem(asm.R2, asm.R6, strCtxVal, asm.DWord),
				asm.Mov.Imm(asm.R0, end.state),
				asm.StoreMem(asm.R2, strCursor, asm.R0, asm.DWord),
			)
			if end.state != strAbort {
				g.emit(asm.Ja.Label(done))
			}
		}
		g.place(done)
		g.note("the search is over")
		g.emit(asm.Mov.Imm(asm.R0, 1), asm.Return())
		g.str.sw = nil
	}
	g.cur = -1
}

// strSwitch returns the label of the callback's switch to verify mode at
// word w (made on first use, per callback).
func (g *gen) strSwitch(w int16) string {
	if g.str.sw == nil {
		g.str.sw = map[int16]string{}
	}
	if l, ok := g.str.sw[w]; ok {
		return l
	}
	l := g.label()
	g.str.sw[w] = l
	return l
}

// strCompare emits the comparison of the pattern with the bytes at
// ptr+off (in the buffer: the caller checked), jumping to next on the
// first byte that differs; R0 is clobbered.
func (g *gen) strCompare(cfg *stringConfig, pat []byte, ptr asm.Register, off int16, next string) {
	for k, p := range pat {
		alts := cfg.textBytes(p)
		g.emit(asm.LoadMem(asm.R0, ptr, off+int16(k), asm.Byte))
		switch {
		case len(alts) == 1:
			g.emit(asm.JNE.Imm(asm.R0, int32(alts[0]), next))
		case len(alts) == 2 && alts[0]|0x20 == alts[1] && alts[0]&0x20 == 0:
			g.emit(
				asm.Or.Imm(asm.R0, 0x20),
				asm.JNE.Imm(asm.R0, int32(alts[1]), next),
			)
		default:
			ok := g.label()
			for _, a := range alts[:len(alts)-1] {
				g.emit(asm.JEq.Imm(asm.R0, int32(a), ok))
			}
			g.emit(asm.JNE.Imm(asm.R0, int32(alts[len(alts)-1]), next))
			g.place(ok)
		}
	}
}

// lanes returns b in every byte of a uint64.
func lanes(b byte) uint64 { return uint64(b) * 0x0101010101010101 }

// mainFuncBTF is the BTF of the program's entry function, which the
// kernel wants once the program has other functions (callbacks).
func mainFuncBTF(name string) *btf.Func {
	return &btf.Func{Name: name, Linkage: btf.GlobalFunc,
		Type: &btf.FuncProto{Return: &btf.Int{Name: "int", Size: 4, Encoding: btf.Signed},
			Params: []btf.FuncParam{{Name: "ctx", Type: &btf.Pointer{Target: &btf.Void{}}}}}}
}
