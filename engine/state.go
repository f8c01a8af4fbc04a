package engine

import (
	"sync"

	"github.com/sluice-project/sluice/engine/hashlimit"
	"github.com/sluice-project/sluice/engine/ipset"
	"github.com/sluice-project/sluice/engine/jiffies"
)

// State is what outlives one compiled Program: the sets and the stateful
// matches' tables. A reload compiles a new Program against the same State,
// so rate-limit buckets and recent lists carry over, as the issue of
// reloading under attack demands.
type State struct {
	mu  sync.Mutex // serialises compiles against this state
	hz  uint64
	ext extState
}

// NewState returns empty state for the given sets (nil for none).
func NewState(sets *ipset.Registry, hz uint64) *State {
	st := &State{hz: hz}
	st.ext.init(sets, hz)
	return st
}

func (st *State) clock() jiffies.Clock { return jiffies.Clock{HZ: st.hz} }

// Sets returns the loaded sets, or nil.
func (st *State) Sets() *ipset.Registry { return st.ext.sets }

// SetHashlimitFullPolicy chooses what a full hashlimit table does for
// tables compiled from now on: hashlimit.FullDrop (the kernel's
// behaviour) or hashlimit.FullEvictOldest.
func (st *State) SetHashlimitFullPolicy(p hashlimit.FullPolicy) { st.ext.full = p }

// ReplaceSets installs newly loaded sets for programs compiled from now
// on. Programs already running keep the sets they were compiled with, so
// a packet never sees half of a set update.
func (st *State) ReplaceSets(sets *ipset.Registry) {
	st.mu.Lock()
	st.ext.sets = sets
	st.mu.Unlock()
}

// HashlimitStats reports every hashlimit table's occupancy and table-full
// drops, read at scrape time.
func (st *State) HashlimitStats() []hashlimit.TableStats { return st.ext.hashlimit.Stats() }
