package benchmix

import (
	"errors"
	"io"
	"sync"
	"testing"

	"github.com/sluice-project/sluice/examples"
	"github.com/sluice-project/sluice/packet"
	"github.com/sluice-project/sluice/pcapio"
)

// Example is the built-in example capture: its frames, copied out of the
// reader's buffer, their timestamps and the capture's link type. Callers
// share it and must not modify it.
type Example struct {
	Frames [][]byte
	TS     []int64
	Link   packet.LinkType
}

var (
	exampleOnce sync.Once
	example     Example
	exampleErr  error
	millionOnce sync.Once
	million     []packet.Packet
)

// ExampleCapture reads the built-in example capture, once per process.
func ExampleCapture(tb testing.TB) *Example {
	tb.Helper()
	exampleOnce.Do(func() {
		r, err := pcapio.NewReader(examples.Capture())
		if err != nil {
			exampleErr = err
			return
		}
		example.Link = r.Link()
		for {
			f, _, ts, err := r.Next()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				exampleErr = err
				return
			}
			example.Frames = append(example.Frames, append([]byte(nil), f...))
			example.TS = append(example.TS, ts)
		}
	})
	if exampleErr != nil {
		tb.Fatal(exampleErr)
	}
	return &example
}

// ExampleMillion is the example capture's frames with 1M distinct random
// sources (RandomSources), decoded, once per process: the traffic of the
// example-1M benchmarks. Callers share it and must not modify it.
func ExampleMillion(tb testing.TB) []packet.Packet {
	tb.Helper()
	e := ExampleCapture(tb)
	millionOnce.Do(func() {
		million = Decode(e.Link, RandomSources(e.Link, e.Frames, 1<<20))
	})
	return million
}
