package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/sluice-project/sluice/engine"
	"github.com/sluice-project/sluice/examples"
	"github.com/sluice-project/sluice/internal/testnet"
	"github.com/sluice-project/sluice/oracle"
	"github.com/sluice-project/sluice/packet"
	"github.com/sluice-project/sluice/pcapio"
	"github.com/sluice-project/sluice/report"
	"github.com/sluice-project/sluice/rules"
)

func init() {
	register(command{name: "verify", summary: "prove sluice's counters equal the kernel's iptables on a capture (root)", run: runVerify})
}

func runVerify(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("verify", "verify [--rules F] [--rules6 F] [--sets F] [--json] [--nft] [--pace|--no-pace] [--repeat N] [CAPTURE...]", stderr)
	var rf ruleFlags
	rf.register(fs)
	asJSON := fs.Bool("json", false, `print {"equal":..., "kernel":{...}, "sluice":{...}}`)
	nft := fs.Bool("nft", false, "load the rules with the nft-based iptables instead of iptables-legacy")
	pace := fs.String("pace", "auto", "pace frames by their timestamps: auto (when the rules have time-based matches), on or off")
	repeat := fs.Int("repeat", 1, "send the capture this many times without pacing (a stress run)")
	timeout := fs.Duration("timeout", 5*time.Minute, "give up after this long")
	files, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if err := oracle.Available(); err != nil {
		return err
	}
	l, err := rf.load()
	if err != nil {
		return err
	}
	if _, err := l.parse(0); err != nil {
		return err // a bad rules or sets file, before anything is set up
	}
	if rf.hlFull == "evict-oldest" {
		return &exitError{code: 2, err: fmt.Errorf("--hashlimit-full evict-oldest is a sluice option the kernel does not have; verify compares with the kernel's drop")}
	}
	frames, err := readFrames(l, files)
	if err != nil {
		return err
	}
	if len(frames) == 0 {
		return errors.New("the capture holds no frames")
	}
	if *repeat < 1 {
		return errors.New("--repeat must be at least 1")
	}
	// The sluice side: the same frames, the same number of times, on a
	// host configured like the oracle's.
	l.localAddrs = []netip.Addr{testnet.BIPv4.Addr(), testnet.BIPv6.Addr()}
	l.localNets = []netip.Prefix{testnet.BIPv4}
	pr, _, err := l.compile(frames[0].ts)
	if err != nil {
		return err
	}
	timed := hasTimedMatches(l)
	doPace := timed
	switch *pace {
	case "on":
		doPace = true
	case "off":
		doPace = false
	case "auto":
	default:
		return fmt.Errorf("--pace must be auto, on or off")
	}
	if *repeat > 1 {
		doPace = false
	}
	w := pr.NewWorker()
	var p packet.Packet
	var dec packet.Decoder
	var span int64
	for r := 0; r < *repeat; r++ {
		for _, f := range frames {
			dec.Link = packet.LinkEthernet
			dec.Decode(f.eth, &p)
			w.Process(&p, f.ts+int64(r)*(span+1e9))
		}
		span = frames[len(frames)-1].ts - frames[0].ts
	}
	sluiceRep := pr.Report(w)

	spec := oracle.Spec{Rules4: l.text4, Rules6: l.text6, Sets: l.sets, Iface: l.iface}
	if *nft {
		spec.Backend = oracle.NFT
	}
	of := make([]oracle.Frame, len(frames))
	for i, f := range frames {
		of[i] = oracle.Frame{Data: f.eth, Time: f.ts}
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	kernelRep, err := oracle.Run(ctx, spec, of, oracle.Options{Pace: doPace, Repeat: *repeat, Timeout: *timeout})
	if err != nil {
		return err
	}
	kernelRep.Packets = uint64(len(frames) * *repeat)
	diff := report.Compare(kernelRep, sluiceRep)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(struct {
			Equal  bool           `json:"equal"`
			Kernel *report.Report `json:"kernel"`
			Sluice *report.Report `json:"sluice"`
		}{diff.Equal, kernelRep, sluiceRep}); err != nil {
			return err
		}
	} else {
		printDiff(stdout, diff, timed && doPace)
	}
	if diff.Equal {
		return nil
	}
	if tol, ok := withinJitter(l, diff); ok && doPace {
		fmt.Fprintf(stdout, "within the clock's jitter: every difference is at most %d packets, the total by which rules with time-based matches differ (tolerance shown, exit status 3)\n", tol)
		return &exitError{code: 3}
	}
	return &exitError{code: 1}
}

// withinJitter decides whether a difference is explained by pacing: frames
// sent at their capture times reach the kernel a little early or late, so
// a limit, hashlimit or recent rule may see a packet in the neighbouring
// jiffy. The tolerance is the total packet difference of those rules; every
// other difference must be no larger, since each follows from theirs.
func withinJitter(l *loaded, d *report.Diff) (uint64, bool) {
	ps, err := l.parse(0)
	if err != nil {
		return 0, false
	}
	timed := map[string]bool{}
	for _, rs := range []*rules.Ruleset{ps.r4, ps.r6} {
		if rs == nil {
			continue
		}
		for _, t := range rs.Tables {
			for _, c := range t.Chains {
				for i, r := range c.Rules {
					if engine.HasTimedMatches(&rules.Ruleset{Tables: []*rules.Table{{Chains: []*rules.Chain{{Rules: []*rules.Rule{r}}}}}}) {
						timed[fmt.Sprintf("%s/%s/%s/%d", rs.Family, t.Name, c.Name, i)] = true
					}
				}
			}
		}
	}
	var tol uint64
	for _, r := range d.Mismatches() {
		if timed[fmt.Sprintf("%s/%s/%s/%d", r.Family, r.Table, r.Chain, r.Index)] {
			tol += absDiff(r.KernelPackets, r.SluicePackets)
		}
	}
	if tol == 0 || len(d.Problems) > 0 {
		return 0, false
	}
	for _, r := range d.Mismatches() {
		if absDiff(r.KernelPackets, r.SluicePackets) > tol {
			return 0, false
		}
	}
	return tol, true
}

func absDiff(a, b uint64) uint64 {
	if a > b {
		return a - b
	}
	return b - a
}

type capturedFrame struct {
	eth []byte
	ts  int64
}

// readFrames loads whole captures into memory as Ethernet frames, wrapping
// raw-IP and cooked frames in an Ethernet header so they can be sent.
func readFrames(l *loaded, files []string) ([]capturedFrame, error) {
	var srcs []frameSource
	if len(files) == 0 {
		if !l.builtin {
			return nil, errors.New("no capture given")
		}
		r, err := pcapio.NewReader(examples.Capture())
		if err != nil {
			return nil, err
		}
		srcs = append(srcs, frameSource{name: examples.CaptureName, r: r})
	}
	for _, f := range files {
		r, err := pcapio.Open(f)
		if err != nil {
			return nil, err
		}
		defer r.Close()
		srcs = append(srcs, frameSource{name: f, r: r})
	}
	var out []capturedFrame
	for _, s := range srcs {
		for {
			data, lt, ts, err := s.r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", s.name, err)
			}
			eth, ok := toEthernet(data, lt)
			if !ok {
				continue
			}
			// A capture is taken on the host's link: unicast frames were
			// addressed to the host, so they are readdressed to the test
			// host's MAC (broadcast and multicast stay as they are).
			if eth[0]&1 == 0 {
				copy(eth[:6], testnet.BMAC)
			}
			out = append(out, capturedFrame{eth: eth, ts: ts})
		}
	}
	return out, nil
}

// toEthernet returns a copy of the frame as Ethernet II. Frames too short
// to carry an Ethernet header cannot be sent on a veth and are skipped.
func toEthernet(data []byte, lt packet.LinkType) ([]byte, bool) {
	var l3 []byte
	var etype uint16
	switch lt {
	case packet.LinkEthernet:
		if len(data) < 14 {
			return nil, false
		}
		return append([]byte(nil), data...), true
	case packet.LinkRawIP:
		l3 = data
	case packet.LinkLinuxSLL:
		if len(data) < 16 {
			return nil, false
		}
		l3, etype = data[16:], uint16(data[14])<<8|uint16(data[15])
	case packet.LinkLinuxSLL2:
		if len(data) < 20 {
			return nil, false
		}
		l3, etype = data[20:], uint16(data[0])<<8|uint16(data[1])
	}
	if etype == 0 && len(l3) > 0 {
		etype = 0x0800
		if l3[0]>>4 == 6 {
			etype = 0x86DD
		}
	}
	eth := make([]byte, 14+len(l3))
	eth[0] = 0x02 // a placeholder unicast MAC; the oracle addresses the frame to its host
	eth[6] = 0x02
	eth[12], eth[13] = byte(etype>>8), byte(etype)
	copy(eth[14:], l3)
	return eth, true
}

func hasTimedMatches(l *loaded) bool {
	ps, err := l.parse(0)
	if err != nil {
		return false
	}
	return engine.HasTimedMatches(ps.r4) || engine.HasTimedMatches(ps.r6)
}

func printDiff(w io.Writer, d *report.Diff, paced bool) {
	fmt.Fprintf(w, "%-6s %-7s %-14s %5s %10s %12s %10s %12s  %s\n", "family", "table", "chain", "line", "kernel pkts", "kernel bytes", "sluice pkts", "sluice bytes", "rule")
	for _, r := range d.Rows {
		mark := " "
		if !r.Equal {
			mark = "≠"
		}
		line := fmt.Sprint(r.Line)
		if r.Index < 0 {
			line = "-"
		}
		fmt.Fprintf(w, "%-6s %-7s %-14s %5s %10d %12d %10d %12d %s %s\n", r.Family, r.Table, r.Chain, line,
			r.KernelPackets, r.KernelBytes, r.SluicePackets, r.SluiceBytes, mark, r.Text)
	}
	for _, p := range d.Problems {
		fmt.Fprintf(w, "problem: %s\n", p)
	}
	if d.Equal {
		fmt.Fprintf(w, "\nequal: every counter matches the kernel's (%d counters)\n", len(d.Rows))
		return
	}
	fmt.Fprintf(w, "\nNOT EQUAL: %d of %d counters differ", len(d.Mismatches()), len(d.Rows))
	if paced {
		fmt.Fprintf(w, " (the ruleset has time-based matches: frames were paced by their timestamps, and the kernel's jiffies may fall differently)")
	}
	fmt.Fprintln(w)
}
