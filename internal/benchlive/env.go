// Package benchlive measures filters on live traffic: one topology (a
// sender namespace holding the attacker and a legitimate HTTP client,
// one veth, a server namespace), one flood (testnet's XDP live-frames
// generator), one ruleset (sluice's built-in example), and for each
// configuration (the kernel's iptables-legacy raw table, the kernel's nft
// netdev ingress, sluice's AF_XDP and XDP tiers) the packets offered,
// received and dropped, the legitimate client's success rate and
// latency, and the CPU spent.
//
// Everything happens inside namespaces that the run creates and removes;
// the flood only ever leaves the topology's sender veth.
package benchlive

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluice-project/sluice/examples"
	"github.com/sluice-project/sluice/internal/testnet"
)

// Runner attaches a sluice live tier to iface inside ns (the server's
// namespace and veth), filtering with the built-in example ruleset. The
// live tiers plug in through LiveRunners.
type Runner func(ctx context.Context, ns *testnet.NS, iface string) (*Attachment, error)

// Attachment is a running live tier.
type Attachment struct {
	// Stop detaches it.
	Stop func() error
	// Dropped, when set, reads sluice's own count of frames it decided
	// to drop (rules, hotdrops, malformed), which the benchmark reports
	// instead of inferring drops from interface counters.
	Dropped func() (uint64, error)
}

// Names of the live tiers in LiveRunners.
const (
	TierAFXDP = "afxdp"
	TierXDP   = "xdp"
)

var (
	runnersMu sync.Mutex
	// LiveRunners holds the live tiers by name (TierAFXDP, TierXDP).
	// Register with RegisterRunner; configurations whose runner is
	// missing are skipped with a note.
	LiveRunners = map[string]Runner{}
)

// RegisterRunner makes a live tier available to the benchmark and the
// demo.
func RegisterRunner(name string, r Runner) {
	runnersMu.Lock()
	defer runnersMu.Unlock()
	LiveRunners[name] = r
}

// LookupRunner returns the registered runner for name, or nil.
func LookupRunner(name string) Runner {
	runnersMu.Lock()
	defer runnersMu.Unlock()
	return LiveRunners[name]
}

// Env is a topology with the legitimate service running and a flood
// ready to start.
type Env struct {
	Topo   *testnet.Topology
	Server *testnet.HTTPServer
	Flood  *testnet.Flood
	URL    string
}

// EnvOptions configures NewEnv.
type EnvOptions struct {
	Prefix string
	Flood  testnet.FloodKind // default testnet.FloodMix
	Seed   uint64
	// Workers and CallDuration are the generator's (default 1 and
	// 300ms: the server's receive processing runs inline on the
	// generator's CPU, so the offered rate is what the receiver takes).
	Workers      int
	CallDuration time.Duration
}

// NewEnv builds the topology, starts the HTTP server in the server
// namespace and prepares the flood (random sources over all of IPv4).
func NewEnv(opts EnvOptions) (e *Env, err error) {
	e = &Env{}
	defer func() {
		if err != nil {
			e.Close()
			e = nil
		}
	}()
	if e.Topo, err = testnet.NewTopology(testnet.TopologyOptions{Prefix: opts.Prefix}); err != nil {
		return nil, err
	}
	addr := netip.AddrPortFrom(e.Topo.ServerAddr, 80)
	if e.Server, err = testnet.ServeHTTP(e.Topo.Server, addr); err != nil {
		return nil, err
	}
	e.URL = "http://" + addr.String() + "/"
	kind := opts.Flood
	if kind == "" {
		kind = testnet.FloodMix
	}
	if opts.Workers <= 0 {
		opts.Workers = 1
	}
	if opts.CallDuration <= 0 {
		opts.CallDuration = 300 * time.Millisecond
	}
	if e.Flood, err = e.Topo.NewFlood(testnet.FloodOptions{Kind: kind, Seed: opts.Seed, RandomSource: true,
		Workers: opts.Workers, CallDuration: opts.CallDuration}); err != nil {
		return nil, err
	}
	return e, nil
}

// Close stops everything and removes the namespaces.
func (e *Env) Close() error {
	var errs []error
	if e.Flood != nil {
		errs = append(errs, e.Flood.Close())
	}
	if e.Server != nil {
		errs = append(errs, e.Server.Close())
	}
	if e.Topo != nil {
		errs = append(errs, e.Topo.Close())
	}
	return errors.Join(errs...)
}

// StartClient starts the legitimate client in the sender namespace.
func (e *Env) StartClient(opts testnet.ClientOptions) (*testnet.Client, error) {
	opts.URL = e.URL
	return testnet.StartClient(e.Topo.Sender, opts)
}

// LoadIptables loads the built-in example into the server namespace's
// kernel: `ipset restore` of the sets, then `iptables-legacy-restore` of
// the rules (raw, mangle and filter tables).
func (e *Env) LoadIptables(ctx context.Context) error {
	if _, err := e.Topo.Server.RunInput(ctx, examples.Sets, "ipset", "restore"); err != nil {
		return err
	}
	_, err := e.Topo.Server.RunInput(ctx, examples.Rules4, "iptables-legacy-restore", "--wait=10")
	return err
}

// AccountingComment marks the rule AddAccounting inserts.
const AccountingComment = "sluice-bench: reached the kernel"

// AddAccounting inserts, first in raw PREROUTING, a rule without target
// that counts every IPv4 packet reaching the kernel's netfilter: what a
// sluice tier in front let through.
func (e *Env) AddAccounting(ctx context.Context) error {
	_, err := e.Topo.Server.Run(ctx, "iptables-legacy", "-w", "10", "-t", "raw", "-I", "PREROUTING", "1", "-m", "comment", "--comment", AccountingComment)
	return err
}

// NFTTable and NFTCounter name the nft objects LoadNFT creates.
const (
	NFTTable   = "sluice_bench"
	NFTCounter = "dropped"
)

// NFTRules is the nft netdev ingress translation of the part of the
// example ruleset that the flood exercises. It is not a general
// translation: it drops the flood's signatures, as an operator writing
// nft by hand for this attack would.
//
//   - non-first fragments                     (-f -j DROP)
//   - UDP from port 53 of 512 bytes or more  (large DNS answers)
//   - UDP from port 123 with NTP mode 7       (the u32 monlist rule)
//   - UDP from ports 19, 389, 1900, 11211     (reflection)
//   - UDP to anything but port 53, from anything but ports 53 and 123
//     ("no other UDP service")
//   - TCP SYN (without ACK/RST/FIN) to ports other than 22, 80, 443
//     ("SYN to a closed port", with the services set inlined)
//
// Not translated: the ipset blocklist (120k prefixes) and bogon sets,
// TTL, the benchmarking range, hashlimit/recent rate limits, the bpf and
// string matches and ICMP; none of them is needed to drop this flood.
func NFTRules(iface string) string {
	return fmt.Sprintf(`table netdev %[2]s {
	counter %[3]s { }
	chain ingress {
		type filter hook ingress device "%[1]s" priority -500; policy accept;
		ip frag-off & 0x1fff != 0 counter name %[3]s drop
		udp sport 53 ip length >= 512 counter name %[3]s drop
		udp sport 123 @th,64,8 & 0x7 == 0x7 counter name %[3]s drop
		udp sport { 19, 389, 1900, 11211 } counter name %[3]s drop
		udp dport != 53 udp sport != { 53, 123 } counter name %[3]s drop
		tcp flags & (fin|syn|rst|ack) == syn tcp dport != { 22, 80, 443 } counter name %[3]s drop
	}
}
`, iface, NFTTable, NFTCounter)
}

// LoadNFT loads NFTRules on the server's veth.
func (e *Env) LoadNFT(ctx context.Context) error {
	_, err := e.Topo.Server.RunInput(ctx, []byte(NFTRules(e.Topo.ServerIf)), "nft", "-f", "-")
	return err
}

// NFTDropped reads the nft drop counter.
func (e *Env) NFTDropped(ctx context.Context) (uint64, error) {
	out, err := e.Topo.Server.Run(ctx, "nft", "list", "counter", "netdev", NFTTable, NFTCounter)
	if err != nil {
		return 0, err
	}
	m := regexp.MustCompile(`packets ([0-9]+)`).FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("benchlive: no packet count in nft output %q", out)
	}
	return strconv.ParseUint(string(m[1]), 10, 64)
}

// RuleCounter is one raw-table rule with its packet count.
type RuleCounter struct {
	Chain   string `json:"chain"`
	Rule    string `json:"rule"` // the rule as iptables-save prints it, without its counters
	Comment string `json:"comment,omitempty"`
	Target  string `json:"target,omitempty"`
	Packets uint64 `json:"packets"`
}

// Label is the comment, else the rule text.
func (r RuleCounter) Label() string {
	if r.Comment != "" {
		return r.Comment
	}
	return r.Rule
}

// RawCounters reads the server's raw table counters.
func (e *Env) RawCounters(ctx context.Context) ([]RuleCounter, error) {
	out, err := e.Topo.Server.Run(ctx, "iptables-legacy-save", "-c", "-t", "raw")
	if err != nil {
		return nil, err
	}
	return ParseSaveCounters(out)
}

var (
	counterPrefix = regexp.MustCompile(`^\[([0-9]+):([0-9]+)\] (.*)$`)
	commentRe     = regexp.MustCompile(`--comment (?:"((?:[^"\\]|\\.)*)"|(\S+))`)
	targetRe      = regexp.MustCompile(` -j (\S+)`)
)

// ParseSaveCounters parses `iptables-save -c` output into rule counters,
// in order.
func ParseSaveCounters(out []byte) ([]RuleCounter, error) {
	var rs []RuleCounter
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		m := counterPrefix.FindStringSubmatch(sc.Text())
		if m == nil || !strings.HasPrefix(m[3], "-A ") {
			continue
		}
		n, err := strconv.ParseUint(m[1], 10, 64)
		if err != nil {
			return nil, err
		}
		r := RuleCounter{Rule: m[3], Packets: n}
		r.Chain, _, _ = strings.Cut(strings.TrimPrefix(m[3], "-A "), " ")
		if c := commentRe.FindStringSubmatch(m[3]); c != nil {
			r.Comment = c[1] + c[2]
		}
		if t := targetRe.FindStringSubmatch(m[3]); t != nil {
			r.Target = t[1]
		}
		rs = append(rs, r)
	}
	return rs, sc.Err()
}

// Dropped sums the counters of DROP rules.
func Dropped(rs []RuleCounter) uint64 {
	var n uint64
	for _, r := range rs {
		if r.Target == "DROP" {
			n += r.Packets
		}
	}
	return n
}

// Accounted returns the accounting rule's count.
func Accounted(rs []RuleCounter) uint64 {
	for _, r := range rs {
		if r.Comment == AccountingComment {
			return r.Packets
		}
	}
	return 0
}

// TopDeltas returns the n rules whose counters grew most between before
// and after (same ruleset, same order), largest first.
func TopDeltas(before, after []RuleCounter, n int) []RuleCounter {
	var out []RuleCounter
	for i, r := range after {
		var prev uint64
		if i < len(before) && before[i].Rule == r.Rule {
			prev = before[i].Packets
		}
		if r.Packets > prev {
			r.Packets -= prev
			out = append(out, r)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Packets > out[j].Packets })
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// CPUTimes are the machine-wide /proc/stat jiffies.
type CPUTimes struct{ Busy, Softirq, Total uint64 }

// ReadCPU reads the first line of /proc/stat.
func ReadCPU() (CPUTimes, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return CPUTimes{}, err
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return CPUTimes{}, fmt.Errorf("benchlive: unexpected /proc/stat line %q", line)
	}
	var c CPUTimes
	for i, s := range f[1:] {
		if i >= 8 { // guest time is already in user
			break
		}
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return CPUTimes{}, err
		}
		c.Total += v
		switch i {
		case 3, 4: // idle, iowait
		default:
			c.Busy += v
		}
		if i == 6 {
			c.Softirq = v
		}
	}
	return c, nil
}

// Usage returns the busy and softirq shares (0..1 of all CPUs) between
// two readings.
func Usage(before, after CPUTimes) (busy, softirq float64) {
	t := float64(after.Total - before.Total)
	if t <= 0 {
		return 0, 0
	}
	return float64(after.Busy-before.Busy) / t, float64(after.Softirq-before.Softirq) / t
}
