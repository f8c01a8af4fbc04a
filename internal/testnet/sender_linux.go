package testnet

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// Sender writes whole Ethernet frames onto A's end of the veth through an
// AF_PACKET SOCK_RAW socket. The socket is created inside A, and stays
// there whichever thread later writes to it.
type Sender struct {
	fd      int
	ifindex int
	// Requeued counts frames the veth refused with ENOBUFS (B's backlog
	// was full) and that were sent again. Such a frame was dropped in
	// enqueue_to_backlog, before B's IP layer and any netfilter hook, so
	// sending it again is invisible to every counter the oracle reads;
	// it still shows in A's tx_dropped.
	Requeued uint64
}

// maxRequeueWait bounds how long Send keeps retrying one frame that the
// receiving backlog refuses.
const maxRequeueWait = 2 * time.Second

// NewSender opens a Sender on A's veth.
func (p *Pair) NewSender() (*Sender, error) {
	s := &Sender{fd: -1, ifindex: p.AIndex}
	err := p.A.Do(func() error {
		// Protocol 0: this socket only transmits, it receives nothing.
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("testnet: packet socket in %s: %w", p.A.Name, err)
		}
		s.fd = fd
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: p.AIndex}); err != nil {
			unix.Close(fd)
			s.fd = -1
			return fmt.Errorf("testnet: bind packet socket to %s: %w", AIfName, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Send writes one frame. A frame refused because B's backlog is full is
// retried for up to two seconds, then reported.
func (s *Sender) Send(frame []byte) error {
	if len(frame) < 14 {
		return fmt.Errorf("testnet: frame of %d bytes is shorter than an Ethernet header", len(frame))
	}
	var waited time.Duration
	backoff := 20 * time.Microsecond
	for {
		n, err := unix.Write(s.fd, frame)
		switch {
		case err == nil && n == len(frame):
			return nil
		case err == nil:
			return fmt.Errorf("testnet: short write: %d of %d bytes", n, len(frame))
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.ENOBUFS) && waited < maxRequeueWait:
			s.Requeued++
			time.Sleep(backoff)
			waited += backoff
			backoff = min(2*backoff, 10*time.Millisecond)
		case errors.Is(err, unix.EMSGSIZE):
			return fmt.Errorf("testnet: send %d-byte frame: longer than the veth MTU allows: %w", len(frame), err)
		default:
			return fmt.Errorf("testnet: send %d-byte frame: %w", len(frame), err)
		}
	}
}

// SendBatch sends frames in order, stopping at the first error, which
// names the frame's index.
func (s *Sender) SendBatch(frames [][]byte) error {
	for i, f := range frames {
		if err := s.Send(f); err != nil {
			return fmt.Errorf("frame %d: %w", i, err)
		}
	}
	return nil
}

// Close closes the socket.
func (s *Sender) Close() error {
	if s.fd < 0 {
		return nil
	}
	err := unix.Close(s.fd)
	s.fd = -1
	return err
}
