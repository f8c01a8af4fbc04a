package engine

import "sync/atomic"

// Live holds the Program a daemon's workers evaluate. A reload compiles a
// new Program against the same State, off the packet path, and Swap makes
// it current in one atomic store: each worker picks it up between batches,
// so no packet is ever evaluated against a half-loaded ruleset, and a
// failed compile never reaches Swap, so the running ruleset stays.
type Live struct {
	p atomic.Pointer[Program]
}

// NewLive returns a Live running pr.
func NewLive(pr *Program) *Live {
	l := &Live{}
	l.p.Store(pr)
	return l
}

// Load returns the current program.
func (l *Live) Load() *Program { return l.p.Load() }

// Swap makes pr current and returns the previous program.
func (l *Live) Swap(pr *Program) *Program { return l.p.Swap(pr) }

// Refresh returns w if it evaluates the current program, or a new Worker
// for the current program. Workers call it once per batch.
func (l *Live) Refresh(w *Worker) *Worker {
	if pr := l.p.Load(); w == nil || w.pr != pr {
		return pr.NewWorker()
	}
	return w
}
