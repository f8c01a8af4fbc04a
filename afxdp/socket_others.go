//go:build !linux

package afxdp

import (
	"errors"
	"time"
)

// ErrUnsupported is returned by Open off Linux.
var ErrUnsupported = errors.New("afxdp: AF_XDP needs Linux")

// Config describes one socket and its UMEM (see the Linux version).
type Config struct {
	Ifindex, Queue                           int
	FrameSize, NumFrames                     int
	FillSize, CompletionSize, RXSize, TXSize int
	Mode                                     Mode
	NoNeedWakeup                             bool
}

// Socket is an AF_XDP socket; off Linux none can be opened.
type Socket struct{}

func Open(cfg Config) (*Socket, error)                  { return nil, ErrUnsupported }
func (s *Socket) FD() int                               { return -1 }
func (s *Socket) ZeroCopy() bool                        { return false }
func (s *Socket) Queue() int                            { return 0 }
func (s *Socket) Receive(descs []Desc) int              { return 0 }
func (s *Socket) Frame(d Desc) []byte                   { return nil }
func (s *Socket) Meta(d Desc, n int) []byte             { return nil }
func (s *Socket) Recycle(descs []Desc)                  {}
func (s *Socket) Poll(timeout time.Duration) bool       { return false }
func (s *Socket) Transmit(frames [][]byte) (int, error) { return 0, ErrUnsupported }
func (s *Socket) Stats() (Stats, error)                 { return Stats{}, ErrUnsupported }
func (s *Socket) Close() error                          { return nil }
