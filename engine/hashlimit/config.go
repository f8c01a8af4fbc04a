// Package hashlimit reproduces `-m hashlimit` revision 3
// (net/netfilter/xt_hashlimit.c), the revision iptables picks on current
// kernels, with the kernel's exact arithmetic and table behaviour.
//
// Why a faithful copy rather than "a per-source token bucket": iptables'
// counters depend on details an approximation gets wrong. Credits are u64
// refilled by (now-prev)*CREDITS_PER_JIFFY with silent u64 wrap; byte mode
// uses a different u32 scale, charges the L3 length in 16-byte chunks and
// refills a bounded number of times; --hashlimit-above spends tokens even
// though it inverts the verdict; the key is built from masked addresses and
// from "ports" read at the transport offset even for ESP/AH (the SPI) and
// for non-first fragments; expired entries keep matching until the
// periodic garbage collector removes them; a full table hotdrops new flows;
// and two rules naming one table share it, with entries initialised from
// the first rule's rate while each rule keeps its own above/bytes mode.
//
// Option text is converted as iptables' extensions/libxt_hashlimit.c does.
package hashlimit

import (
	"fmt"
	"github.com/sluice-project/sluice/internal/clib"
	"math"
	"strconv"
	"strings"

	"github.com/sluice-project/sluice/packet"
)

// Hash mode bits (XT_HASHLIMIT_HASH_*) and the rule flags the kernel keeps
// in the same mode word.
const (
	HashDstIP   = 1 << 0 // XT_HASHLIMIT_HASH_DIP
	HashDstPort = 1 << 1 // XT_HASHLIMIT_HASH_DPT
	HashSrcIP   = 1 << 2 // XT_HASHLIMIT_HASH_SIP
	HashSrcPort = 1 << 3 // XT_HASHLIMIT_HASH_SPT

	modeInvert    = 1 << 4 // XT_HASHLIMIT_INVERT
	modeBytes     = 1 << 5 // XT_HASHLIMIT_BYTES
	modeRateMatch = 1 << 6 // XT_HASHLIMIT_RATE_MATCH
)

// Kernel and iptables constants.
const (
	Scale           = 1000000 // XT_HASHLIMIT_SCALE_v2: Avg unit (rev 2+)
	byteShift       = 4       // XT_HASHLIMIT_BYTE_SHIFT
	DefaultBurst    = 5       // iptables XT_HASHLIMIT_BURST
	BurstMax        = 1000000 // iptables XT_HASHLIMIT_BURST_MAX (rev 2+)
	DefaultGC       = 1000    // iptables XT_HASHLIMIT_GCINTERVAL, ms
	byteExpire      = 15      // iptables XT_HASHLIMIT_BYTE_EXPIRE, s
	byteExpireBurst = 60      // iptables XT_HASHLIMIT_BYTE_EXPIRE_BURST, s
	MaxSize         = 1048576 // kernel HASHLIMIT_MAX_SIZE: size and max are clamped to it
	nameMax         = 255     // NAME_MAX: the name buffer of xt_hashlimit_mtinfo3
)

// Config mirrors struct hashlimit_cfg3 plus the name and family the kernel
// keys tables by. Mode holds only the HASH_* bits; Above, Bytes and
// RateMatch are the other mode bits.
type Config struct {
	Name   string
	Family packet.Family

	Mode      uint8 // HashDstIP | HashDstPort | HashSrcIP | HashSrcPort
	Above     bool  // --hashlimit-above (XT_HASHLIMIT_INVERT)
	Bytes     bool  // byte rate such as 10kb/s (XT_HASHLIMIT_BYTES)
	RateMatch bool  // --hashlimit-rate-match (XT_HASHLIMIT_RATE_MATCH)

	Avg   uint64 // packets: seconds between packets * Scale; bytes: cost (bytes_to_cost)
	Burst uint32 // packets: --hashlimit-burst; bytes: number of bucket refills

	Size       uint32 // --hashlimit-htable-size (buckets)
	Max        uint32 // --hashlimit-htable-max (entries)
	GCInterval uint32 // ms
	Expire     uint32 // ms
	Interval   uint32 // --hashlimit-rate-interval, s

	SrcMask, DstMask uint8 // prefix lengths
}

// NewConfig returns a Config as iptables' hashlimit_mt4_init /
// hashlimit_mt6_init leave it before options are parsed: burst 5, gc
// interval 1 s, full-length masks.
func NewConfig(name string, family packet.Family) Config {
	c := Config{Name: name, Family: family, Burst: DefaultBurst, GCInterval: DefaultGC, SrcMask: 32, DstMask: 32}
	if family == packet.FamilyIPv6 {
		c.SrcMask, c.DstMask = 128, 128
	}
	return c
}

func (c *Config) mode() uint32 {
	m := uint32(c.Mode)
	if c.Above {
		m |= modeInvert
	}
	if c.Bytes {
		m |= modeBytes
	}
	if c.RateMatch {
		m |= modeRateMatch
	}
	return m
}

// Quantum is the expiry, in ms, iptables-save leaves implicit for this
// rate (print_rate/print_bytes' return value): iptables-save omits
// --hashlimit-htable-expire exactly when Expire equals it.
func (c *Config) Quantum() uint32 {
	if c.Bytes {
		if c.Burst == 0 {
			return byteExpire * 1000
		}
		return byteExpireBurst * 1000
	}
	if c.Avg == 0 {
		return 0
	}
	i := rateIndex(c.Avg)
	return uint32(rates[i].mult / Scale * 1000)
}

// Defaults fills what iptables and the kernel fill when options are
// absent: burst 5 (packet mode), gc interval 1000 ms, expire = Quantum()
// (exact for iptables-save output; for hand-written rules set Expire from
// DefaultExpire), then as hashlimit_mt_check_common and htable_create do:
// size and max clamped to 1048576, size derived from totalRAM (bytes, as
// /proc/meminfo MemTotal*1024) when 0, max = 8*size when 0 and at least
// size. Masks cannot be defaulted (0 is valid): start from NewConfig.
func (c *Config) Defaults(totalRAM uint64) {
	if c.Burst == 0 && !c.Bytes {
		c.Burst = DefaultBurst
	}
	if c.GCInterval == 0 {
		c.GCInterval = DefaultGC
	}
	if c.Expire == 0 {
		c.Expire = c.Quantum()
	}
	if c.RateMatch && c.Interval == 0 {
		c.Interval = 1
	}
	if c.Size > MaxSize {
		c.Size = MaxSize
	}
	if c.Max > MaxSize {
		c.Max = MaxSize
	}
	if c.Size == 0 {
		c.Size = SizeForRAM(totalRAM)
	}
	if c.Max == 0 {
		c.Max = 8 * c.Size
	} else if c.Max < c.Size {
		c.Max = c.Size
	}
}

// SizeForRAM is htable_create's default bucket count on a 64-bit kernel
// with 4 KiB pages: RAM/16384/sizeof(struct hlist_head), 8192 above 1 GiB,
// at least 16.
func SizeForRAM(totalRAM uint64) uint32 {
	pages := totalRAM >> 12
	size := (pages << 12) / 16384 / 8
	if pages > 1024*1024*1024/4096 {
		size = 8192
	}
	if size < 16 {
		size = 16
	}
	return uint32(size)
}

// DefaultExpire is the expiry iptables sets when --hashlimit-htable-expire
// is absent: the rate's unit in seconds (mult from ParseRateMult) * 1000,
// or 15 s for byte rates, 60 s for byte rates with a burst.
func DefaultExpire(mult uint32, bytes, burstGiven bool) uint32 {
	if bytes {
		if burstGiven {
			return byteExpireBurst * 1000
		}
		return byteExpire * 1000
	}
	return mult * 1000
}

// ConfigError is hashlimit_mt_check_common's rejection (-EINVAL/-ERANGE);
// iptables-restore fails, so the ruleset never loads.
type ConfigError struct {
	Name   string
	Reason string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("hashlimit %q: %s", e.Name, e.Reason)
}

// Check validates c as xt_check_proc_name and hashlimit_mt_check_common do
// (after Defaults: a zero Size or Max is reported too).
func (c *Config) Check(hz uint64) error {
	bad := func(f string, a ...any) error { return &ConfigError{Name: c.Name, Reason: fmt.Sprintf(f, a...)} }
	switch {
	case c.Name == "" || c.Name == "." || c.Name == "..":
		return bad("invalid table name")
	case len(c.Name) >= nameMax:
		return bad("table name longer than %d bytes", nameMax-1)
	case strings.IndexByte(c.Name, '/') >= 0:
		return bad("table name contains '/'")
	}
	if c.Family != packet.FamilyIPv4 && c.Family != packet.FamilyIPv6 {
		return bad("family must be ipv4 or ipv6")
	}
	if c.GCInterval == 0 || c.Expire == 0 {
		return bad("gcinterval and expire must be non-zero (got %d, %d)", c.GCInterval, c.Expire)
	}
	maxMask := uint8(32)
	if c.Family == packet.FamilyIPv6 {
		maxMask = 128
	}
	if c.SrcMask > maxMask || c.DstMask > maxMask {
		return bad("srcmask %d / dstmask %d exceed %d", c.SrcMask, c.DstMask, maxMask)
	}
	if c.Mode&^0xf != 0 {
		return bad("unknown mode bits %#x", c.Mode)
	}
	k := newConsts(hz)
	switch {
	case c.RateMatch:
		if c.Avg == 0 || c.Avg > math.MaxUint32 {
			return bad("invalid rate %d for rate-match", c.Avg)
		}
		if c.Interval == 0 {
			return bad("invalid rate-interval 0")
		}
	case c.Bytes:
		if k.user2creditsByte(uint32(c.Avg)) == 0 {
			return bad("overflow, rate too high: %d", c.Avg)
		}
	case c.Burst == 0 || k.user2credits(c.Avg*uint64(c.Burst)) < k.user2credits(c.Avg):
		return bad("overflow, try lower: %d/%d", c.Avg, c.Burst)
	}
	if c.Size == 0 || c.Max == 0 {
		return bad("size and max must be set (call Defaults)")
	}
	return nil
}

// consts are the HZ-derived constants of xt_hashlimit.c.
type consts struct {
	hz       uint64
	cpj      uint64 // CREDITS_PER_JIFFY (64-bit, rev 2+)
	cpjBytes uint64 // CREDITS_PER_JIFFY_BYTES
	capBytes uint64 // CREDITS_PER_JIFFY_BYTES * HZ, in unsigned int
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

func newConsts(hz uint64) consts {
	k := consts{hz: hz}
	k.cpj = pow2Below64(math.MaxUint64 / (hz * 60 * 60 * 24))
	// POW2_BELOW32 on a u32: the 64-bit cascade gives the same result.
	k.cpjBytes = pow2Below64(uint64(uint32(0xFFFFFFFF / uint32(hz))))
	k.capBytes = uint64(uint32(k.cpjBytes) * uint32(hz))
	return k
}

// user2credits is the rev 2+ precision saver (u64, wrapping).
func (k *consts) user2credits(user uint64) uint64 {
	hzc := k.hz * k.cpj
	if Scale >= hzc {
		return user / (Scale / hzc)
	}
	return user * (hzc / Scale)
}

func (k *consts) user2creditsByte(user uint32) uint64 {
	return uint64(uint32((uint64(user) * k.capBytes) >> 32))
}

// RateError says why a rate or burst value is rejected; Reason starts with
// iptables' own wording.
type RateError struct {
	Text   string
	Reason string
}

func (e *RateError) Error() string { return fmt.Sprintf("hashlimit: %s (value %q)", e.Reason, e.Text) }

func factor(c byte) uint64 {
	switch c {
	case 'm':
		return 1024 * 1024
	case 'k':
		return 1024
	}
	return 1
}

// costToBytes and bytesToCost are libxt_hashlimit's conversions between
// a byte rate and the kernel's per-chunk cost. ok is false where iptables
// itself would divide by zero (and crash).
func costToBytes(cost uint64) uint64 {
	r := uint64(math.MaxUint32)
	if cost != 0 {
		r = math.MaxUint32 / cost
	}
	return (r - 1) << byteShift
}

func bytesToCost(bytes uint64) (uint64, bool) {
	d := uint32(bytes>>byteShift) + 1
	if d == 0 {
		return 0, false
	}
	return uint64(math.MaxUint32 / d), true
}

// ParseRate converts a --hashlimit-upto/--hashlimit-above value as rev 3
// iptables does: a byte rate when the text contains "b/s" after at least
// one character ("10kb/s", "1mb/s", "500b/s"; k and m are 1024-based),
// else a packet rate "N[/second|minute|hour|day]" (any case-insensitive
// non-empty prefix of the unit).
func ParseRate(s string) (avg uint64, bytes bool, err error) {
	avg, bytes, _, err = ParseRateMult(s)
	return
}

// ParseRateMult is ParseRate that also returns the unit in seconds that
// iptables uses for the default expiry (15 for byte rates).
func ParseRateMult(s string) (avg uint64, bytes bool, mult uint32, err error) {
	if i := strings.Index(s, "b/s"); i > 0 {
		if r := uint64(clib.Strtoll(s)); r != 0 {
			tmp := r * factor(s[i-1])
			cost, ok := bytesToCost(tmp)
			if !ok {
				return 0, false, 0, &RateError{Text: s, Reason: "byte rate wraps iptables' bytes_to_cost divisor to zero"}
			}
			if cost == 0 {
				return 0, false, 0, &RateError{Text: s, Reason: "Rate too high: byte rates above 4 GiB/s (cost 0) are not representable"}
			}
			return cost, true, byteExpire, nil
		}
	}
	mult = 1
	if i := strings.IndexByte(s, '/'); i >= 0 {
		u := s[i+1:]
		ok := false
		for _, c := range [...]struct {
			name string
			mult uint32
		}{{"second", 1}, {"minute", 60}, {"hour", 3600}, {"day", 86400}} {
			if u != "" && len(u) <= len(c.name) && strings.EqualFold(u, c.name[:len(u)]) {
				mult, ok = c.mult, true
				break
			}
		}
		if !ok {
			return 0, false, 0, &RateError{Text: s, Reason: "Bad value: the unit after '/' must be a prefix of second, minute, hour or day"}
		}
	}
	r := uint64(clib.Strtoll(s))
	if r == 0 {
		return 0, false, 0, &RateError{Text: s, Reason: "Bad value: the rate must start with a non-zero integer"}
	}
	avg = Scale * uint64(mult) / r
	if avg == 0 {
		return 0, false, 0, &RateError{Text: s, Reason: "Rate too fast: the fastest packet rate is 1000000/second"}
	}
	return avg, false, mult, nil
}

// ParseBurst converts a --hashlimit-burst value as rev 3 iptables does
// (parse_burst, then hashlimit_mt_check): a packet burst is 1..1000000
// (a k/m suffix multiplies by 1024/1048576 and bypasses the range check,
// as in iptables); a byte burst is a byte count turned into the number of
// bucket refills, ceil(bytes / cost_to_bytes(avg)), after truncating the
// byte count to u32 exactly as iptables does.
func ParseBurst(s string, avg uint64, bytes bool) (uint32, error) {
	p := strings.TrimLeft(s, " \t\n\v\f\r")
	if strings.HasPrefix(p, "-") {
		return 0, &RateError{Text: s, Reason: "bad value for option \"--hashlimit-burst\", or out of range (1-1000000)"}
	}
	v, end, ok := strtoumax0(p)
	if !ok || v < 1 || (end == "" && v > BurstMax) {
		return 0, &RateError{Text: s, Reason: "bad value for option \"--hashlimit-burst\", or out of range (1-1000000)"}
	}
	if end != "" {
		v *= factor(end[0])
	}
	if !bytes {
		if v > BurstMax {
			return 0, &RateError{Text: s, Reason: "bad value for option \"--hashlimit-burst\", or out of range (1-1000000)"}
		}
		return uint32(v), nil
	}
	ctb := costToBytes(avg)
	if ctb == 0 {
		// A byte rate under 16 b/s: iptables' parse_burst divides by
		// cost_to_bytes(avg), which is 0 here, and iptables-restore dies
		// of SIGFPE on the rule (iptables 1.8.9). No kernel runs it.
		return 0, &RateError{Text: s, Reason: "a --hashlimit-burst with a byte rate under 16 b/s makes iptables divide by zero (iptables-restore crashes on this rule)"}
	}
	if v < ctb {
		return 0, &RateError{Text: s, Reason: "burst cannot be smaller than " + strconv.FormatUint(ctb, 10) + "b"}
	}
	burst := uint64(uint32(v)) / ctb
	if v%ctb != 0 {
		burst++
	}
	return uint32(burst), nil
}

// strtoumax0 is strtoumax(s, &end, 0): 0x/0 prefixes select hex/octal;
// ok is false when no digit was read or the value overflows (ERANGE).
func strtoumax0(s string) (v uint64, end string, ok bool) {
	i := 0
	if i < len(s) && s[i] == '+' {
		i++
	}
	base := uint64(10)
	if i+1 < len(s) && s[i] == '0' && (s[i+1] == 'x' || s[i+1] == 'X') && i+2 < len(s) && isDigit(s[i+2], 16) {
		base, i = 16, i+2
	} else if i < len(s) && s[i] == '0' {
		base = 8
	}
	start := i
	for ; i < len(s) && isDigit(s[i], base); i++ {
		d := digitVal(s[i])
		if v > (math.MaxUint64-d)/base {
			return 0, "", false
		}
		v = v*base + d
	}
	if i == start {
		return 0, "", false
	}
	return v, s[i:], true
}

func isDigit(c byte, base uint64) bool {
	switch {
	case c >= '0' && c <= '9':
		return uint64(c-'0') < base
	case c >= 'a' && c <= 'f', c >= 'A' && c <= 'F':
		return base == 16
	}
	return false
}

func digitVal(c byte) uint64 {
	switch {
	case c >= '0' && c <= '9':
		return uint64(c - '0')
	case c >= 'a' && c <= 'f':
		return uint64(c-'a') + 10
	}
	return uint64(c-'A') + 10
}

var rates = [...]struct {
	name string
	mult uint64
}{{"day", Scale * 86400}, {"hour", Scale * 3600}, {"min", Scale * 60}, {"sec", Scale}}

// rateIndex is print_rate's unit choice.
func rateIndex(avg uint64) int {
	i := 1
	for ; i < len(rates); i++ {
		if avg > rates[i].mult || rates[i].mult/avg < rates[i].mult%avg {
			break
		}
	}
	return i - 1
}

// FormatRate prints a rate as iptables-save does: "N/unit" for packets
// (print_rate), "N[k|m]b/s" for bytes (print_bytes).
func FormatRate(avg uint64, bytes bool) string {
	if bytes {
		r := costToBytes(avg)
		units := [...]struct {
			name   string
			thresh uint64
		}{{"m", 1024 * 1024}, {"k", 1024}, {"", 1}}
		i := 0
		for ; i < len(units)-1; i++ {
			if c, ok := bytesToCost(r &^ (units[i].thresh - 1)); r >= units[i].thresh && ok && c == avg {
				break
			}
		}
		return strconv.FormatUint(r/units[i].thresh, 10) + units[i].name + "b/s"
	}
	if avg == 0 {
		return "inf"
	}
	i := rateIndex(avg)
	return strconv.FormatUint(rates[i].mult/avg, 10) + "/" + rates[i].name
}
