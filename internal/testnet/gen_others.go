//go:build !linux

package testnet

import (
	"context"
	"net"
	"net/netip"
	"time"
)

// Names and addresses of a Topology (see the Linux build).
const (
	SenderIfName = "sl-tx"
	ServerIfName = "sl-rx"
)

var (
	SenderMAC  = net.HardwareAddr{0x02, 0x00, 0x5e, 0x00, 0x01, 0x0a}
	ServerMAC  = net.HardwareAddr{0x02, 0x00, 0x5e, 0x00, 0x01, 0x0b}
	ClientAddr = netip.MustParsePrefix("198.51.100.2/24")
	ServerAddr = netip.MustParsePrefix("198.51.100.1/24")
)

// TopologyOptions configures NewTopology.
type TopologyOptions struct {
	Prefix       string
	ThreadedNAPI bool
}

// Topology is a sender and a server namespace joined by a veth.
type Topology struct {
	Sender, Server         *NS
	SenderIf, ServerIf     string
	SenderIndex            int
	ServerIndex            int
	SenderMAC, ServerMAC   net.HardwareAddr
	ClientAddr, ServerAddr netip.Addr
}

func NewTopology(opts TopologyOptions) (*Topology, error) { return nil, ErrUnsupported }
func (t *Topology) Close() error                          { return nil }

// IfStats are an interface's packet counters.
type IfStats struct{ RxPackets, RxDropped, TxPackets, TxDropped uint64 }

func (t *Topology) ServerStats() (IfStats, error) { return IfStats{}, ErrUnsupported }
func (t *Topology) SenderStats() (IfStats, error) { return IfStats{}, ErrUnsupported }

// FloodOptions configures a Flood.
type FloodOptions struct {
	Kind         FloodKind
	Frames       [][]byte
	Templates    int
	Seed         uint64
	RandomSource bool
	SourcePrefix netip.Prefix
	Batch        uint32
	Workers      int
	CallDuration time.Duration
}

// Flood transmits frames with XDP live frames (Linux only).
type Flood struct{}

const (
	MaxFloodPackets  = 2_000_000_000
	MaxFloodDuration = 10 * time.Minute
)

func (t *Topology) NewFlood(opts FloodOptions) (*Flood, error) { return nil, ErrUnsupported }
func (f *Flood) Sent() uint64                                  { return 0 }
func (f *Flood) Close() error                                  { return nil }
func (f *Flood) Run(ctx context.Context, maxPackets uint64, maxDuration time.Duration) (uint64, error) {
	return 0, ErrUnsupported
}
