package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/sluice-project/sluice/engine"
	"github.com/sluice-project/sluice/examples"
	"github.com/sluice-project/sluice/packet"
	"github.com/sluice-project/sluice/pcapio"
	"github.com/sluice-project/sluice/report"
)

func init() {
	register(command{name: "replay", summary: "run captures through the rules offline and print the counters", run: runReplay})
}

func runReplay(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("replay", "replay [--rules F] [--rules6 F] [--sets F] [--json] [--write-accepted F] [--write-dropped F] [CAPTURE...]", stderr)
	var rf ruleFlags
	rf.register(fs)
	asJSON := fs.Bool("json", false, "print the counters as JSON")
	wAcc := fs.String("write-accepted", "", "write accepted frames to this pcap file")
	wDrop := fs.String("write-dropped", "", "write dropped frames (rule drops, hotdrops, malformed) to this pcap file")
	files, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	l, err := rf.load()
	if err != nil {
		return err
	}
	var srcs []frameSource
	if len(files) == 0 {
		if !l.builtin {
			return errors.New("no capture given (the built-in example capture goes with the built-in ruleset only)")
		}
		r, err := pcapio.NewReader(examples.Capture())
		if err != nil {
			return err
		}
		srcs = append(srcs, frameSource{name: examples.CaptureName, r: r})
	}
	for _, f := range files {
		r, err := pcapio.Open(f)
		if err != nil {
			return err
		}
		defer r.Close()
		srcs = append(srcs, frameSource{name: f, r: r})
	}
	res, err := replay(l, srcs, *wAcc, *wDrop)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res.rep); err != nil {
			return err
		}
	} else {
		printReport(stdout, res.rep)
	}
	if res.damaged != nil {
		return &exitError{code: 1, err: res.damaged}
	}
	return nil
}

type frameSource struct {
	name string
	r    *pcapio.Reader
}

type replayResult struct {
	rep     *report.Report
	damaged error
	frames  int
}

// replay runs every frame through a Program compiled at the first frame's
// time, so rate matches start exactly as the kernel's do when rules are
// loaded just before traffic arrives.
func replay(l *loaded, srcs []frameSource, wAcc, wDrop string) (*replayResult, error) {
	var (
		pr      *engine.Program
		w       *engine.Worker
		dec     packet.Decoder
		res     = &replayResult{}
		acc     *pcapWriter
		drop    *pcapWriter
		elapsed time.Duration
		setup   time.Duration // compiling the ruleset: not packet work
		b       replayBatch
	)
	defer acc.close()
	defer drop.close()
	// flush judges the batch and writes its frames out, in order.
	flush := func() error {
		n := len(b.ts)
		if n == 0 {
			return nil
		}
		for k := 0; k < n; k++ {
			dec.Link = b.links[k]
			dec.Decode(b.frame(k), &b.pkts[k])
			b.ptrs[k] = &b.pkts[k]
		}
		w.ProcessBatch(b.ptrs[:n], b.ts, b.out[:n], nil)
		for k := 0; k < n; k++ {
			out := drop
			if v := b.out[k]; v == engine.Accept || v == engine.NotFiltered {
				out = acc
			}
			if err := out.write(b.frame(k), b.ts[k]); err != nil {
				return err
			}
		}
		res.frames += n
		b.reset()
		return nil
	}
	start := time.Now()
	for _, s := range srcs {
		for {
			frame, lt, ts, err := s.r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				res.damaged = fmt.Errorf("%s: %w", s.name, err)
				break
			}
			if pr == nil {
				t0 := time.Now()
				if pr, _, err = l.compile(ts); err != nil {
					return nil, err
				}
				setup = time.Since(t0)
				w = pr.NewWorker()
				if acc, err = openPcapWriter(wAcc, lt); err != nil {
					return nil, err
				}
				if drop, err = openPcapWriter(wDrop, lt); err != nil {
					return nil, err
				}
			}
			b.add(frame, lt, ts)
			if len(b.ts) == engine.MaxBatch {
				if err := flush(); err != nil {
					return nil, err
				}
			}
		}
		if res.damaged != nil {
			break
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	elapsed = time.Since(start) - setup
	if pr == nil {
		var err error
		if pr, _, err = l.compile(0); err != nil {
			return nil, err
		}
		w = pr.NewWorker()
	}
	res.rep = pr.Report(w)
	if elapsed > 0 {
		res.rep.PacketsPerSecond = float64(res.frames) / elapsed.Seconds()
	}
	if err := acc.close(); err != nil {
		return nil, err
	}
	if err := drop.close(); err != nil {
		return nil, err
	}
	return res, nil
}

// replayBatch holds frames until ProcessBatch judges them: the reader
// reuses its buffer, so each frame is copied into arena (and decoded only
// once the arena stops growing, as a packet points into its frame).
type replayBatch struct {
	arena []byte
	ends  []int
	links []packet.LinkType
	ts    []int64
	pkts  [engine.MaxBatch]packet.Packet
	ptrs  [engine.MaxBatch]*packet.Packet
	out   [engine.MaxBatch]engine.Verdict
}

func (b *replayBatch) add(frame []byte, lt packet.LinkType, ts int64) {
	b.arena = append(b.arena, frame...)
	b.ends = append(b.ends, len(b.arena))
	b.links = append(b.links, lt)
	b.ts = append(b.ts, ts)
}

func (b *replayBatch) frame(k int) []byte {
	start := 0
	if k > 0 {
		start = b.ends[k-1]
	}
	return b.arena[start:b.ends[k]:b.ends[k]]
}

func (b *replayBatch) reset() {
	b.arena, b.ends, b.links, b.ts = b.arena[:0], b.ends[:0], b.links[:0], b.ts[:0]
}

type pcapWriter struct {
	f *os.File
	w *pcapio.Writer
}

func openPcapWriter(path string, lt packet.LinkType) (*pcapWriter, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	w, err := pcapio.NewWriter(f, lt, 0)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &pcapWriter{f: f, w: w}, nil
}

func (pw *pcapWriter) write(frame []byte, ts int64) error {
	if pw == nil {
		return nil
	}
	return pw.w.Write(frame, ts, len(frame))
}

func (pw *pcapWriter) close() error {
	if pw == nil || pw.f == nil {
		return nil
	}
	err := pw.w.Flush()
	if cerr := pw.f.Close(); err == nil {
		err = cerr
	}
	pw.f = nil
	return err
}
