package cli

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"time"

	"github.com/sluice-project/sluice/engine"
	"github.com/sluice-project/sluice/examples"
	"github.com/sluice-project/sluice/packet"
	"github.com/sluice-project/sluice/pcapio"
)

func init() {
	register(command{name: "bench", summary: "measure: bench engine (in memory), bench live (the kernel and sluice on one flood)", run: runBench})
}

func runBench(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(stderr, "Usage: sluice bench engine [--rules F] [--sets F] [--capture F] [--packets N] [--json]")
		fmt.Fprintln(stderr, "       sluice bench live [--json] [--runs N] [--duration D]   (root)")
		if len(args) == 0 {
			return &exitError{code: 2}
		}
		return nil
	}
	switch args[0] {
	case "engine":
		return runBenchEngine(args[1:], stdout, stderr)
	case "live":
		return runBenchLive(args[1:], stdout, stderr)
	}
	return &exitError{code: 2, err: fmt.Errorf("unknown bench %q: use engine or live", args[0])}
}

// benchResult is `sluice bench engine --json`.
type benchResult struct {
	Rules           string  `json:"rules"`
	Capture         string  `json:"capture"`
	Packets         int     `json:"packets"`
	Mix             int     `json:"mix"`
	DistinctSources int     `json:"distinct_sources"`
	NsPerPacket     float64 `json:"ns_per_packet"`
	Mpps            float64 `json:"mpps"`
	AllocsPerPacket float64 `json:"allocs_per_packet"`
	BytesPerPacket  float64 `json:"bytes_per_packet"`
	Accepted        uint64  `json:"accepted"`
	Dropped         uint64  `json:"dropped"`
	Malformed       uint64  `json:"malformed"`
}

const defaultBenchSources = 1 << 20

func runBenchEngine(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench engine", "bench engine [--rules F] [--rules6 F] [--sets F] [--capture F] [--packets N] [--sources N] [--json]", stderr)
	var rf ruleFlags
	rf.register(fs)
	capture := fs.String("capture", "", "capture whose frames make the packet mix (default: the built-in example capture)")
	npackets := fs.Int("packets", defaultBenchSources, "packets to process")
	sources := fs.Int("sources", -1, "rewrite IPv4 sources to this many distinct random addresses, cycling the capture's frames (default: 1048576 for the built-in capture, 0 = keep the capture's sources with --capture)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return &exitError{code: 2, err: fmt.Errorf("unexpected argument %q (give the capture with --capture)", rest[0])}
	}
	if *npackets <= 0 {
		return &exitError{code: 2, err: errors.New("--packets must be positive")}
	}
	l, err := rf.load()
	if err != nil {
		return err
	}
	capName := examples.CaptureName
	var r *pcapio.Reader
	if *capture == "" {
		r, err = pcapio.NewReader(examples.Capture())
	} else {
		capName = *capture
		r, err = pcapio.Open(*capture)
	}
	if err != nil {
		return err
	}
	defer r.Close()
	var (
		frames [][]byte
		links  []packet.LinkType
		t0     int64
	)
	for {
		f, lt, ts, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %w", capName, err)
		}
		if len(frames) == 0 {
			t0 = ts
		}
		frames = append(frames, append([]byte(nil), f...))
		links = append(links, lt)
	}
	if len(frames) == 0 {
		return fmt.Errorf("%s: no frames", capName)
	}
	nsrc := *sources
	if nsrc < 0 {
		nsrc = 0
		if *capture == "" {
			nsrc = defaultBenchSources
		}
	}
	// The mix: as many packets as --packets asks, at most the distinct
	// sources wanted (or the capture itself), decoded up front so the
	// measurement is the engine alone.
	mixLen := len(frames)
	if nsrc > 0 {
		mixLen = min(nsrc, *npackets)
		nsrc = mixLen
	}
	pkts := buildBenchMix(frames, links, mixLen, nsrc > 0)

	pr, _, err := l.compile(t0)
	if err != nil {
		return err
	}
	w := pr.NewWorker()
	n := *npackets
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	// The packet clock runs at 1 Mpps, so rate matches see a flood. The
	// packets go in batches, as the daemon and replay give them.
	var ptrs [engine.MaxBatch]*packet.Packet
	var nows [engine.MaxBatch]int64
	var out [engine.MaxBatch]engine.Verdict
	for i := 0; i < n; i += engine.MaxBatch {
		m := min(engine.MaxBatch, n-i)
		for k := 0; k < m; k++ {
			ptrs[k], nows[k] = &pkts[(i+k)%len(pkts)], t0+int64(i+k)*1000
		}
		w.ProcessBatch(ptrs[:m], nows[:m], out[:m], nil)
	}
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	rep := pr.Report(w)
	name := l.name4
	if name == "" {
		name = l.name6
	}
	res := benchResult{
		Rules: name, Capture: capName, Packets: n, Mix: len(pkts), DistinctSources: nsrc,
		NsPerPacket:     float64(elapsed.Nanoseconds()) / float64(n),
		AllocsPerPacket: float64(after.Mallocs-before.Mallocs) / float64(n),
		BytesPerPacket:  float64(after.TotalAlloc-before.TotalAlloc) / float64(n),
		Accepted:        rep.Accepted, Dropped: rep.Dropped, Malformed: rep.Malformed,
	}
	if res.NsPerPacket > 0 {
		res.Mpps = 1e3 / res.NsPerPacket
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	src := "the capture's own sources"
	if nsrc > 0 {
		src = fmt.Sprintf("%d distinct random sources", nsrc)
	}
	fmt.Fprintf(stdout, "sluice bench engine: %s, %d packets from %s (%d frames, %s); one worker, decode excluded\n",
		name, n, capName, len(pkts), src)
	fmt.Fprintf(stdout, "  ns/packet      %.1f\n", res.NsPerPacket)
	fmt.Fprintf(stdout, "  Mpps           %.2f\n", res.Mpps)
	fmt.Fprintf(stdout, "  allocs/packet  %.4f (%.1f bytes/packet)\n", res.AllocsPerPacket, res.BytesPerPacket)
	fmt.Fprintf(stdout, "  verdicts       %d accepted, %d dropped, %d malformed\n", res.Accepted, res.Dropped, res.Malformed)
	return nil
}

// buildBenchMix decodes n packets cycling over frames. With rewrite, each
// well-formed IPv4 frame gets a distinct source (i times an odd constant
// is a bijection mod 2^32) and a fixed header checksum; the frames live
// in one arena, which the returned packets alias.
func buildBenchMix(frames [][]byte, links []packet.LinkType, n int, rewrite bool) []packet.Packet {
	pkts := make([]packet.Packet, n)
	var d packet.Decoder
	if !rewrite {
		for i := range pkts {
			d.Link = links[i%len(frames)]
			d.Decode(frames[i%len(frames)], &pkts[i])
		}
		return pkts
	}
	size := 0
	for i := 0; i < n; i++ {
		size += len(frames[i%len(frames)])
	}
	arena := make([]byte, 0, size)
	for i := range pkts {
		f := frames[i%len(frames)]
		start := len(arena)
		arena = append(arena, f...)
		nf := arena[start:len(arena):len(arena)]
		d.Link = links[i%len(frames)]
		d.Decode(nf, &pkts[i])
		p := &pkts[i]
		if p.Malformed == packet.MalformedNone && p.Family == packet.FamilyIPv4 {
			binary.BigEndian.PutUint32(p.L3[12:], uint32(i)*2654435761+0x5bd1e995)
			packet.IPv4(p.L3).SetChecksum()
			d.Decode(nf, p)
		}
	}
	return pkts
}
