package engine

import (
	"fmt"

	"github.com/sluice-project/sluice/packet"
	"github.com/sluice-project/sluice/rules"
)

// SetRegistry is the loaded ipset sets.
type SetRegistry = any

type extState struct{}

func (e *extState) init(sets SetRegistry, hz uint64) {}

type extOp struct{}

func compileExt(fam packet.Family, m rules.Match, st *State, now int64) (op, bool, error) {
	return op{}, false, fmt.Errorf("match %s: %w", m.Name(), errUnsupported)
}

func (w *Worker) evalExt(o *op, p *packet.Packet, j uint64) uint8 { return resNo }
