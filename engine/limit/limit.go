// Package limit reproduces `-m limit` (net/netfilter/xt_limit.c) bit for bit,
// so that a rule's counters in sluice equal iptables' on the same packets.
//
// xt_limit is a token bucket whose quirks decide real verdicts and are easy
// to "fix" by accident: credits are u32, CREDITS_PER_JIFFY is a power of two
// derived from HZ, user2credits() overflows silently in u32 arithmetic, the
// load-time overflow check multiplies avg*burst in u32 (so some large bursts
// pass the check yet allow far fewer packets than asked), and refills are
// `(now - prev) * CREDITS_PER_JIFFY` truncated to u32 (a long-idle rule can
// come back with fewer credits than a briefly idle one). This package keeps
// all of them. Allowed() exposes the real burst so `sluice check` can warn.
//
// Option text is converted as iptables' extensions/libxt_limit.c does.
package limit

import (
	"fmt"
	"github.com/sluice-project/sluice/internal/clib"
	"strconv"
	"sync/atomic"
)

// Scale is XT_LIMIT_SCALE: Config.Avg is seconds between packets * Scale.
const Scale = 10000

// DefaultBurst is iptables' XT_LIMIT_BURST, used when --limit-burst is absent.
const DefaultBurst = 5

// DefaultAvg is iptables' default rate XT_LIMIT_AVG, "3/hour".
const DefaultAvg = Scale * 60 * 60 / 3

// Config is struct xt_rateinfo's user part as iptables fills it.
type Config struct {
	Avg   uint32 // seconds between packets * Scale (parse_rate)
	Burst uint32 // --limit-burst, 0..10000 in iptables
}

// pow2Below is the kernel's POW2_BELOW32: the highest power of two <= x,
// and 1 for x == 0, computed with the same shift-or cascade.
func pow2Below32(x uint32) uint32 {
	x |= x >> 1
	x |= x >> 2
	x |= x >> 4
	x |= x >> 8
	x |= x >> 16
	return (x >> 1) + 1
}

// CreditsPerJiffy is xt_limit's CREDITS_PER_JIFFY for hz:
// POW2_BELOW32(0xFFFFFFFF / (HZ*60*60*24)), all in unsigned int.
func CreditsPerJiffy(hz uint64) uint32 {
	return pow2Below32(0xFFFFFFFF / uint32(hz*60*60*24))
}

// user2credits is xt_limit's precision saver, including its u32 overflow
// in the divide-first branch.
func user2credits(user uint32, hz uint64) uint32 {
	hzc := uint32(hz) * CreditsPerJiffy(hz)
	if user > 0xFFFFFFFF/hzc {
		return (user / Scale) * hzc
	}
	return (user * hzc) / Scale
}

// OverflowError is limit_mt_check's -ERANGE: iptables-restore fails with
// it, so a ruleset containing such a rule never loads.
type OverflowError struct {
	Avg, Burst uint32
}

func (e *OverflowError) Error() string {
	if e.Burst == 0 {
		return fmt.Sprintf("limit: burst 0 is rejected by the kernel (xt_limit: Overflow, try lower: %d/%d)", e.Avg, e.Burst)
	}
	return fmt.Sprintf("limit: avg %d * burst %d overflows the kernel's u32 credits (xt_limit: Overflow, try lower: %d/%d)", e.Avg, e.Burst, e.Avg, e.Burst)
}

// Check is limit_mt_check's validation: burst 0, or an avg*burst whose
// credits (after u32 wrap) are below those of avg, is rejected.
func (c Config) Check(hz uint64) error {
	if c.Burst == 0 || user2credits(c.Avg*c.Burst, hz) < user2credits(c.Avg, hz) {
		return &OverflowError{Avg: c.Avg, Burst: c.Burst}
	}
	return nil
}

// State is one rule's bucket: xt_limit_priv plus the credit_cap and cost
// limit_mt_check derives. One State per rule, shared by all workers.
type State struct {
	// word packs the low 32 bits of prev (jiffies) above the u32 credit,
	// so one compare-and-swap updates both as the kernel's spinlock does.
	// Keeping only prev's low 32 bits is exact: the kernel adds
	// (now-prev)*CREDITS_PER_JIFFY to a u32, which depends on now-prev
	// modulo 2^32 only.
	word      atomic.Uint64
	creditCap uint32
	cost      uint32
	cpj       uint32
	cfg       Config
}

// New is limit_mt_check at load time j (jiffies): it validates cfg and
// starts the bucket full.
func New(cfg Config, hz uint64, j uint64) (*State, error) {
	if err := cfg.Check(hz); err != nil {
		return nil, err
	}
	s := &State{
		creditCap: user2credits(cfg.Avg*cfg.Burst, hz),
		cost:      user2credits(cfg.Avg, hz),
		cpj:       CreditsPerJiffy(hz),
		cfg:       cfg,
	}
	s.word.Store(uint64(uint32(j))<<32 | uint64(s.creditCap))
	return s, nil
}

// Match is limit_mt at time j (jiffies): refill by elapsed jiffies, cap,
// and spend cost if there is enough. prev moves to j whether or not the
// packet matches, as the kernel's xchg does. Safe for concurrent use.
func (s *State) Match(j uint64) bool {
	now := uint32(j)
	for {
		old := s.word.Load()
		credit := uint32(old) + (now-uint32(old>>32))*s.cpj
		if credit > s.creditCap {
			credit = s.creditCap
		}
		ok := credit >= s.cost
		if ok {
			credit -= s.cost
		}
		if s.word.CompareAndSwap(old, uint64(now)<<32|uint64(credit)) {
			return ok
		}
	}
}

// Allowed is how many packets the kernel lets through back to back right
// after load. It equals Burst unless user2credits overflowed; `sluice
// check` warns when it differs.
func (s *State) Allowed() uint64 {
	return uint64(s.creditCap / s.cost)
}

// Credit returns the current credit, credit cap and cost, for tests and
// state dumps.
func (s *State) Credit() (credit, creditCap, cost uint32) {
	return uint32(s.word.Load()), s.creditCap, s.cost
}

// Config returns the configuration the State was built from.
func (s *State) Config() Config { return s.cfg }

// RateError says why a --limit value is rejected, with iptables' wording
// first so operators recognise it.
type RateError struct {
	Text    string // the option value as given
	TooFast bool   // parsed, but maps to avg 0 ("Rate too fast")
	Reason  string
}

func (e *RateError) Error() string {
	if e.TooFast {
		return fmt.Sprintf("Rate too fast %q: %s", e.Text, e.Reason)
	}
	return fmt.Sprintf("bad rate %q: %s", e.Text, e.Reason)
}

// unitMult is libxt_limit's unit match: the text after '/' must be a
// non-empty case-insensitive prefix of second, minute, hour or day, tried
// in that order ("m" is minute, "s" second, "sec", "min", "mins" is bad).
func unitMult(u string) (uint32, bool) {
	if u == "" {
		return 0, false
	}
	for _, c := range [...]struct {
		name string
		mult uint32
	}{{"second", 1}, {"minute", 60}, {"hour", 3600}, {"day", 86400}} {
		if len(u) <= len(c.name) && clib.EqualFoldASCII(u, c.name[:len(u)]) {
			return c.mult, true
		}
	}
	return 0, false
}

// atoi is glibc's atoi: (int)strtol, i.e. the saturated long truncated
// to 32 bits.
func atoi(s string) int32 { return clib.Atoi(s) }

// ParseRate converts a --limit value as libxt_limit's parse_rate does:
// "N[/unit]" with N read by atoi (trailing junk ignored, negative values
// wrap to huge u32), avg = XT_LIMIT_SCALE*mult/N in u32, and avg 0
// rejected as "Rate too fast".
func ParseRate(s string) (uint32, error) {
	mult := uint32(1)
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			m, ok := unitMult(s[i+1:])
			if !ok {
				return 0, &RateError{Text: s, Reason: "the unit after '/' must be a prefix of second, minute, hour or day"}
			}
			mult = m
			break
		}
	}
	r := uint32(atoi(s))
	if r == 0 {
		return 0, &RateError{Text: s, Reason: "the rate must start with a non-zero integer"}
	}
	avg := Scale * mult / r
	if avg == 0 {
		return 0, &RateError{Text: s, TooFast: true, Reason: "the fastest rate is 10000/second"}
	}
	return avg, nil
}

// FormatRate prints avg as iptables-save does (print_rate): the largest
// unit whose quotient is not dominated by its remainder.
func FormatRate(avg uint32) string {
	if avg == 0 {
		return "inf"
	}
	rates := [...]struct {
		name string
		mult uint32
	}{{"day", Scale * 86400}, {"hour", Scale * 3600}, {"min", Scale * 60}, {"sec", Scale}}
	i := 1
	for ; i < len(rates); i++ {
		if avg > rates[i].mult || rates[i].mult/avg < rates[i].mult%avg {
			break
		}
	}
	return strconv.FormatUint(uint64(rates[i-1].mult/avg), 10) + "/" + rates[i-1].name
}
