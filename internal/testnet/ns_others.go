//go:build !linux

package testnet

import (
	"context"
	"errors"
	"net"
	"net/netip"
)

const supported = false

// Interface names of the pair (see the Linux build).
const (
	AIfName = "sl-a"
	BIfName = "sl-b"
)

// ErrUnsupported is returned everywhere but on Linux: network namespaces,
// veths and AF_PACKET sockets are Linux facilities.
var ErrUnsupported = errors.New("testnet: network namespaces need Linux")

// Addresses and MACs configured on the pair (see the Linux build).
var (
	AMAC  = net.HardwareAddr{0x02, 0x00, 0x5e, 0x00, 0x00, 0x0a}
	BMAC  = net.HardwareAddr{0x02, 0x00, 0x5e, 0x00, 0x00, 0x0b}
	BIPv4 = netip.MustParsePrefix("192.0.2.1/24")
	BIPv6 = netip.MustParsePrefix("2001:db8::1/64")
)

// NS is a named network namespace.
type NS struct{ Name string }

func NewNS(prefix string) (*NS, error) { return nil, ErrUnsupported }
func (ns *NS) Close() error            { return ErrUnsupported }
func (ns *NS) Do(f func() error) error { return ErrUnsupported }
func SweepStale() ([]string, error)    { return nil, nil }
func Pinned(f func() error) error      { return ErrUnsupported }
func (ns *NS) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	return nil, ErrUnsupported
}
func (ns *NS) RunInput(ctx context.Context, input []byte, name string, args ...string) ([]byte, error) {
	return nil, ErrUnsupported
}

// PairOptions configures NewPair.
type PairOptions struct {
	Prefix string
	MTU    int
}

// Pair is two namespaces joined by a veth.
type Pair struct {
	A, B           *NS
	AIf, BIf       string
	AMAC, BMAC     net.HardwareAddr
	AIndex, BIndex int
}

func NewPair(opts PairOptions) (*Pair, error)     { return nil, ErrUnsupported }
func (p *Pair) Close() error                      { return nil }
func (p *Pair) Barrier(ctx context.Context) error { return ErrUnsupported }
func (p *Pair) NewSender() (*Sender, error)       { return nil, ErrUnsupported }
func (p *Pair) Counters() (Counters, error)       { return Counters{}, ErrUnsupported }

// Sender writes frames onto A's veth.
type Sender struct{ Requeued uint64 }

func (s *Sender) Send(frame []byte) error         { return ErrUnsupported }
func (s *Sender) SendBatch(frames [][]byte) error { return ErrUnsupported }
func (s *Sender) Close() error                    { return nil }
