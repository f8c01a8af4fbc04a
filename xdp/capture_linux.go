//go:build linux

package xdp

import (
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/perf"
)

// captureMaps adds the capture maps' specs to a collection being loaded.
func (s *Spec) captureMaps(cs *ebpf.CollectionSpec) {
	if s.Capture == nil {
		return
	}
	cs.Maps[capCtlRef] = s.Capture.Ctl.Copy()
	cs.Maps[capEventsRef] = s.Capture.Events.Copy()
}

// capturedMaps returns the loaded capture maps, for Filter.Close.
func (s *Spec) capturedMaps(coll *ebpf.Collection) []*ebpf.Map {
	if s.Capture == nil {
		return nil
	}
	return []*ebpf.Map{coll.Maps[capCtlRef], coll.Maps[capEventsRef]}
}

// CaptureMaps are the capture maps programs compiled with Capture share
// (LoadShared), so that a capture goes on across reloads: one control
// value, one perf buffer.
type CaptureMaps struct {
	Ctl, Events *ebpf.Map
}

// NewCaptureMaps creates the shared capture maps, capture off.
func NewCaptureMaps() (*CaptureMaps, error) {
	cs, es := CaptureMapSpecs()
	ctl, err := ebpf.NewMap(cs)
	if err != nil {
		return nil, fmt.Errorf("xdp: capture control map: %w", err)
	}
	ev, err := ebpf.NewMap(es)
	if err != nil {
		ctl.Close()
		return nil, fmt.Errorf("xdp: capture event map: %w", err)
	}
	return &CaptureMaps{Ctl: ctl, Events: ev}, nil
}

// Set writes the control value: Mask 0 stops capturing.
func (c *CaptureMaps) Set(ctl CaptureCtl) error {
	return c.Ctl.Update(uint32(0), EncodeCaptureCtl(ctl), ebpf.UpdateAny)
}

// Reader opens a reader of the perf buffer, perCPU bytes a CPU.
func (c *CaptureMaps) Reader(perCPU int) (*perf.Reader, error) {
	if perCPU <= 0 {
		perCPU = 64 * os.Getpagesize()
	}
	return perf.NewReader(c.Events, perCPU)
}

// Close releases the maps (programs using them keep their references).
func (c *CaptureMaps) Close() error {
	return errors.Join(c.Ctl.Close(), c.Events.Close())
}

// LoadShared loads the program as Load does, but with xsks (when not
// nil) as its XSKMAP and cm's maps (when not nil) as its capture maps
// instead of its own: what a reload that swaps the program under running
// sockets and a running capture needs.
func (s *Spec) LoadShared(xsks *ebpf.Map, cm *CaptureMaps) (*Filter, error) {
	return s.LoadCarrying(xsks, cm, nil)
}

// LoadCarrying is LoadShared for a program that replaces prev (nil: none)
// on a reload: the rate-limit state of what did not change carries over
// (see carryRateLimits in ratelimit_linux.go).
func (s *Spec) LoadCarrying(xsks *ebpf.Map, cm *CaptureMaps, prev *Filter) (*Filter, error) {
	repl := map[string]*ebpf.Map{}
	for ref, m := range s.carriedTables(prev) {
		repl[ref] = m
	}
	if xsks != nil && s.XSKs != nil {
		repl["xsks"] = xsks
	}
	if cm != nil && s.Capture != nil {
		repl[capCtlRef], repl[capEventsRef] = cm.Ctl, cm.Events
	}
	return s.load(repl, prev)
}

// CaptureMissed reads the frames selected for capture but not copied
// (rate bound or full perf buffer), summed over CPUs.
func (f *Filter) CaptureMissed() (uint64, error) {
	if f.spec.Capture == nil {
		return 0, nil
	}
	vals, err := f.ReadCounters()
	if err != nil {
		return 0, err
	}
	return vals[f.spec.Capture.Missed], nil
}
