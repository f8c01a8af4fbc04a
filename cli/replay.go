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
		p       packet.Packet
		dec     packet.Decoder
		res     = &replayResult{}
		acc     *pcapWriter
		drop    *pcapWriter
		elapsed time.Duration
		setup   time.Duration // compiling the ruleset: not packet work
	)
	defer acc.close()
	defer drop.close()
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
			dec.Link = lt
			dec.Decode(frame, &p)
			v := w.Process(&p, ts)
			res.frames++
			switch v {
			case engine.Accept, engine.NotFiltered:
				if err := acc.write(frame, ts); err != nil {
					return nil, err
				}
			default:
				if err := drop.write(frame, ts); err != nil {
					return nil, err
				}
			}
		}
		if res.damaged != nil {
			break
		}
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
