// Package jiffies converts sluice's packet clock (nanoseconds) into the
// kernel's jiffies, the unit every netfilter rate and state match counts in.
//
// The matches must be fed jiffies rather than nanoseconds because their
// arithmetic only reproduces iptables' counters when it is done on the same
// integers: xt_limit, xt_hashlimit and xt_recent all sample `jiffies` and
// derive credits or windows from whole ticks, so two packets 3.9 ms apart at
// HZ=250 may be 0 or 1 jiffy apart, and that decides whether a token is
// refilled.
//
// Epoch. The kernel starts jiffies at INITIAL_JIFFIES
// ((unsigned long)(unsigned int)(-300*HZ), include/linux/jiffies.h), so that
// 32-bit wrap bugs surface five minutes after boot. On 64-bit kernels
// `unsigned long` never wraps in practice, and every match compares jiffies
// only through differences: time_after() on a signed difference (xt_recent,
// xt_hashlimit's gc), `now - prev` (xt_limit, xt_hashlimit). xt_limit even
// truncates `(now - prev) * CREDITS_PER_JIFFY` to u32, but that truncation
// depends on the difference only, not on the absolute value. The epoch
// therefore does not change any verdict, and Clock lets the caller choose it
// through Offset (InitialJiffies reproduces a freshly booted kernel). The
// one place the absolute value leaks is documented in engine/recent (an
// out-of-bounds stamp read in --reap).
package jiffies

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"strconv"
	"strings"
)

// DefaultHZ is CONFIG_HZ of the kernel sluice is validated against.
const DefaultHZ = 250

// nsPerSec is NSEC_PER_SEC.
const nsPerSec = 1_000_000_000

// InitialJiffies is the kernel's INITIAL_JIFFIES for hz on a 64-bit kernel:
// -300*HZ truncated to unsigned int, then zero-extended to unsigned long.
func InitialJiffies(hz uint64) uint64 {
	return uint64(uint32(-int64(300 * hz)))
}

// Clock converts nanoseconds since an arbitrary epoch into jiffies. It is a
// value type so the engine can copy it into each worker.
type Clock struct {
	// HZ is the kernel's CONFIG_HZ; 0 means DefaultHZ.
	HZ uint64
	// Offset is the jiffies value at nanosecond 0 of the packet clock.
	Offset uint64
}

// Jiffies returns Offset + floor(now*HZ/1e9). The product is formed in 128
// bits, so nanosecond wall-clock epochs (now ~ 1.7e18) never overflow;
// negative times round towards minus infinity, like a tick counter does.
func (c Clock) Jiffies(now int64) uint64 {
	hz := c.HZ
	if hz == 0 {
		hz = DefaultHZ
	}
	neg := now < 0
	u := uint64(now)
	if neg {
		u = uint64(-(now + 1)) + 1
	}
	var q, r uint64
	if nsPerSec%hz == 0 {
		// Fast path: HZ=100/250/1000 divide a second exactly.
		step := nsPerSec / hz
		q, r = u/step, u%step
	} else {
		hi, lo := bits.Mul64(u, hz)
		// hi < 1e9 holds for any u < 2^64 when hz < 1e9.
		q, r = bits.Div64(hi, lo, nsPerSec)
	}
	if neg {
		if r != 0 {
			q++
		}
		return c.Offset - q
	}
	return c.Offset + q
}

// Tick returns Jiffies(now) and the span [from, to) of packet-clock
// nanoseconds around now that map to the same jiffy, so a caller whose
// clock moves forward in small steps can reuse the value until now
// leaves the span instead of dividing for every packet. When the span is
// not cheap to find (a negative time, an HZ that does not divide a
// second, the clock's last tick) it is empty: from == to == now.
func (c Clock) Tick(now int64) (j uint64, from, to int64) {
	j = c.Jiffies(now)
	hz := c.HZ
	if hz == 0 {
		hz = DefaultHZ
	}
	if now < 0 || nsPerSec%hz != 0 {
		return j, now, now
	}
	step := int64(nsPerSec / hz)
	from = now - now%step
	if from > math.MaxInt64-step {
		return j, now, now
	}
	return j, from, from + step
}

// MsecsToJiffies is the kernel's msecs_to_jiffies for a u32 millisecond
// value: it rounds up, so any non-zero duration is at least one jiffy
// (include/linux/jiffies.h, _msecs_to_jiffies).
func MsecsToJiffies(m uint32, hz uint64) uint64 {
	if hz == 0 {
		hz = DefaultHZ
	}
	return (uint64(m)*hz + 999) / 1000
}

// TimeAfter reports the kernel's time_after(a, b): a is later than b,
// judged on the signed difference so that wrap-around is tolerated.
func TimeAfter(a, b uint64) bool { return int64(b-a) < 0 }

// TimeAfterEq reports the kernel's time_after_eq(a, b).
func TimeAfterEq(a, b uint64) bool { return int64(a-b) >= 0 }

// HZError says why CONFIG_HZ could not be read from the running kernel.
type HZError struct {
	Tried []string // files consulted, in order
	Errs  []error  // why each one failed
}

func (e *HZError) Error() string {
	var b strings.Builder
	b.WriteString("cannot determine the kernel's CONFIG_HZ")
	for i, p := range e.Tried {
		fmt.Fprintf(&b, "; %s: %v", p, e.Errs[i])
	}
	b.WriteString("; pass --hz with the kernel's CONFIG_HZ (100, 250, 300 or 1000)")
	return b.String()
}

// ConfigError reports a kernel config text that has no usable CONFIG_HZ.
type ConfigError struct {
	Line   int    // 1-based line of the offending entry, 0 if absent
	Reason string // what is wrong
}

func (e *ConfigError) Error() string {
	if e.Line == 0 {
		return "kernel config: " + e.Reason
	}
	return fmt.Sprintf("kernel config line %d: %s", e.Line, e.Reason)
}

// ParseConfigHZ reads a kernel .config and returns CONFIG_HZ. It never
// panics on arbitrary input.
func ParseConfigHZ(r io.Reader) (uint64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		v, ok := strings.CutPrefix(s, "CONFIG_HZ=")
		if !ok {
			continue
		}
		hz, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return 0, &ConfigError{Line: line, Reason: fmt.Sprintf("CONFIG_HZ=%q is not a decimal number", v)}
		}
		if hz == 0 || hz > 100000 {
			return 0, &ConfigError{Line: line, Reason: fmt.Sprintf("CONFIG_HZ=%d is out of range (1..100000)", hz)}
		}
		return hz, nil
	}
	if err := sc.Err(); err != nil {
		return 0, &ConfigError{Line: line + 1, Reason: err.Error()}
	}
	return 0, &ConfigError{Reason: "no CONFIG_HZ= line"}
}

// DetectHZ reads CONFIG_HZ of the running kernel from /proc/config.gz, or
// else from /boot/config-$(uname -r). sluice cannot measure HZ reliably
// from user space, so when neither file exists the operator must say it.
func DetectHZ() (uint64, error) {
	return detectHZ("/proc/config.gz", "/proc/sys/kernel/osrelease", "/boot")
}

func detectHZ(configGz, osrelease, bootDir string) (uint64, error) {
	he := &HZError{}
	hz, err := hzFromGzip(configGz)
	if err == nil {
		return hz, nil
	}
	he.Tried = append(he.Tried, configGz)
	he.Errs = append(he.Errs, err)

	rel, err := os.ReadFile(osrelease)
	if err != nil {
		he.Tried = append(he.Tried, osrelease)
		he.Errs = append(he.Errs, err)
		return 0, he
	}
	path := bootDir + "/config-" + string(bytes.TrimSpace(rel))
	f, err := os.Open(path)
	if err == nil {
		defer f.Close()
		hz, err = ParseConfigHZ(f)
		if err == nil {
			return hz, nil
		}
	}
	he.Tried = append(he.Tried, path)
	he.Errs = append(he.Errs, err)
	return 0, he
}

func hzFromGzip(path string) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return 0, err
	}
	defer zr.Close()
	return ParseConfigHZ(zr)
}
