package benchlive

import (
	"bytes"
	"time"

	"github.com/sluice-project/sluice/engine"
	"github.com/sluice-project/sluice/engine/ipset"
	"github.com/sluice-project/sluice/engine/jiffies"
	"github.com/sluice-project/sluice/examples"
	"github.com/sluice-project/sluice/internal/testnet"
	"github.com/sluice-project/sluice/packet"
	"github.com/sluice-project/sluice/rules"
)

// EngineResult is the offline engine's rate on flood frames.
type EngineResult struct {
	Frames   uint64        `json:"frames"`
	Elapsed  time.Duration `json:"elapsed_ns"`
	PPS      float64       `json:"pps"`
	Dropped  uint64        `json:"dropped"`
	Accepted uint64        `json:"accepted"`
}

// CompileExample compiles the built-in example ruleset with now as the
// load time, as `sluice replay` does.
func CompileExample(now int64) (*engine.Program, error) {
	hz, err := jiffies.DetectHZ()
	if err != nil {
		hz = jiffies.DefaultHZ
	}
	sets, err := ipset.Parse(examples.SetsName, bytes.NewReader(examples.Sets), now)
	if err != nil {
		return nil, err
	}
	st := engine.NewState(sets, hz)
	r4, err := rules.Parse(bytes.NewReader(examples.Rules4), rules.Options{Family: packet.FamilyIPv4, File: examples.Rules4Name, Sets: sets, HZ: hz})
	if err != nil {
		return nil, err
	}
	return engine.Compile(engine.Config{Rules4: r4, HZ: hz, InIface: testnet.ServerIfName}, st, now)
}

// EngineRate replays flood frames of kind (templates distinct frames,
// with distinct random sources) through the built-in example on one
// goroutine for about d, decoding each frame as the live path would, and
// returns the rate.
func EngineRate(kind testnet.FloodKind, templates int, d time.Duration) (EngineResult, error) {
	var res EngineResult
	if templates <= 0 {
		templates = 4096
	}
	frames, err := testnet.FloodFrames(kind, testnet.SenderMAC, testnet.ServerMAC, testnet.ServerAddr.Addr(), templates, 7)
	if err != nil {
		return res, err
	}
	now := time.Now().UnixNano()
	pr, err := CompileExample(now)
	if err != nil {
		return res, err
	}
	w := pr.NewWorker()
	dec := packet.Decoder{Link: packet.LinkEthernet}
	var p packet.Packet
	start := time.Now()
	deadline := start.Add(d)
	for {
		for _, f := range frames {
			dec.Decode(f, &p)
			switch w.Process(&p, now) {
			case engine.Accept, engine.NotFiltered:
				res.Accepted++
			default:
				res.Dropped++
			}
			res.Frames++
		}
		now = time.Now().UnixNano()
		if time.Now().After(deadline) {
			break
		}
	}
	res.Elapsed = time.Since(start)
	res.PPS = float64(res.Frames) / res.Elapsed.Seconds()
	return res, nil
}
