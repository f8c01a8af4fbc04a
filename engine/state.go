package engine

// State is what outlives one compiled Program: the sets and the stateful
// matches' tables. A reload compiles a new Program against the same State,
// so rate-limit buckets and recent lists carry over, as the issue of
// reloading under attack demands.
type State struct {
	hz  uint64
	ext extState
}

// NewState returns empty state for the given sets (nil for none).
func NewState(sets SetRegistry, hz uint64) *State {
	st := &State{hz: hz}
	st.ext.init(sets, hz)
	return st
}
