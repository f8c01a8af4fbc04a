package xdp

import (
	"errors"
	"fmt"
	"reflect"

	"github.com/cilium/ebpf"
)

// UpdateSets writes the set contents of next, which must be SameProgram
// as the filter's spec, into the filter's maps, and makes next the
// filter's spec. Within one set the order keeps every lookup answering
// with either the old or the new contents for its address: new and
// changed hash:net leaves first, then the first level (a block turning
// mixed finds its leaf), then the leaves no longer used. On error the
// maps may hold a mix of both contents; the daemon then reloads by
// replacing the program.
func (f *Filter) UpdateSets(next *Spec) error {
	if !f.spec.SameProgram(next) {
		return errors.New("xdp: UpdateSets: the new spec is not the same program")
	}
	for i := range next.Sets {
		old, nw, m := &f.spec.Sets[i], &next.Sets[i], f.setMaps[i]
		var err error
		if nw.Leaf != nil {
			err = updateMap(m[1], old.Leaf, nw.Leaf, true, false)
		}
		if err == nil {
			err = updateMap(m[0], old.Map, nw.Map, true, nw.Map.Type != ebpf.Array)
		}
		if err == nil && nw.Leaf != nil {
			err = updateMap(m[1], old.Leaf, nw.Leaf, false, true)
		}
		if err != nil {
			return fmt.Errorf("xdp: updating set %s in place: %w", nw.Name, err)
		}
	}
	f.spec = next
	return nil
}

// updateMap moves m from the contents of old to those of nw: with put,
// it writes the keys whose value is new or changed (in an array, a key
// nw lacks is written as zeroes); with del, it deletes the keys nw lacks.
// Set map keys are integers (uint32, or uint64 for hash:ip,port).
func updateMap(m *ebpf.Map, old, nw *ebpf.MapSpec, put, del bool) error {
	was := make(map[any]any, len(old.Contents))
	for _, kv := range old.Contents {
		was[kv.Key] = kv.Value
	}
	now := make(map[any]bool, len(nw.Contents))
	for _, kv := range nw.Contents {
		k := kv.Key
		now[k] = true
		if v, ok := was[k]; put && (!ok || !reflect.DeepEqual(v, kv.Value)) {
			if err := m.Put(k, kv.Value); err != nil {
				return err
			}
		}
	}
	for k := range was {
		if now[k] {
			continue
		}
		switch {
		case nw.Type == ebpf.Array && put:
			if err := m.Put(k, make([]byte, nw.ValueSize)); err != nil {
				return err
			}
		case nw.Type != ebpf.Array && del:
			if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return err
			}
		}
	}
	return nil
}

// ZeroCounters sets every counter of every CPU to zero, as loading a new
// program does: a reload that updates sets in place still starts the
// counters afresh, like every other reload.
func (f *Filter) ZeroCounters() error {
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return err
	}
	zero := make([][]uint64, ncpu)
	for i := range zero {
		zero[i] = make([]uint64, f.spec.Counters.ValueSize/8)
	}
	for e := range f.spec.Counters.MaxEntries {
		if err := f.Counters.Put(e, zero); err != nil {
			return err
		}
	}
	return nil
}
