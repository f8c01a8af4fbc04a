package afxdp

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// Config describes one socket and its UMEM. Zero fields take defaults.
type Config struct {
	// Ifindex and Queue are the interface and receive queue to bind to.
	Ifindex int
	Queue   int
	// FrameSize is the UMEM chunk size: 2048 or 4096 (default 4096, so
	// any frame up to a 1500-byte-MTU jumbo-less page fits in copy mode).
	FrameSize int
	// NumFrames is the number of UMEM frames (default 4096).
	NumFrames int
	// FillSize, CompletionSize, RXSize and TXSize are ring sizes, powers
	// of two (defaults 2048, 2048, 2048 and 0: no TX ring).
	FillSize, CompletionSize, RXSize, TXSize int
	// Mode picks zero-copy, copy, or zero-copy with copy as fallback.
	Mode Mode
	// NoNeedWakeup disables XDP_USE_NEED_WAKEUP.
	NoNeedWakeup bool
}

func (c *Config) defaults() error {
	if c.FrameSize == 0 {
		c.FrameSize = 4096
	}
	if c.NumFrames == 0 {
		c.NumFrames = 4096
	}
	if c.FillSize == 0 {
		c.FillSize = 2048
	}
	if c.CompletionSize == 0 {
		c.CompletionSize = 2048
	}
	if c.RXSize == 0 {
		c.RXSize = 2048
	}
	if c.FrameSize != 2048 && c.FrameSize != 4096 {
		return fmt.Errorf("afxdp: frame size %d: want 2048 or 4096", c.FrameSize)
	}
	for _, r := range []struct {
		name string
		n    int
	}{{"fill", c.FillSize}, {"completion", c.CompletionSize}, {"rx", c.RXSize}} {
		if !validRingSize(r.n) {
			return fmt.Errorf("afxdp: %s ring size %d is not a power of two", r.name, r.n)
		}
	}
	if c.TXSize != 0 && !validRingSize(c.TXSize) {
		return fmt.Errorf("afxdp: tx ring size %d is not a power of two", c.TXSize)
	}
	if c.NumFrames < c.FillSize {
		return fmt.Errorf("afxdp: %d frames cannot fill a fill ring of %d", c.NumFrames, c.FillSize)
	}
	if c.Ifindex <= 0 || c.Queue < 0 {
		return fmt.Errorf("afxdp: bad interface index %d or queue %d", c.Ifindex, c.Queue)
	}
	return nil
}

// Socket is an AF_XDP socket with its own UMEM.
type Socket struct {
	fd        int
	cfg       Config
	zeroCopy  bool
	umem      []byte
	frameMask uint64

	fill, comp addrRing
	rx, tx     descRing
	maps       [][]byte // ring mmaps, unmapped by Close

	// free holds UMEM frame addresses owned by the application and in
	// no ring.
	free []uint64

	pollfd [1]unix.PollFd
}

// Open creates the socket, registers its UMEM, maps its rings, puts
// FillSize frames in the fill ring and binds to (Ifindex, Queue).
// ModeAuto binds with XDP_ZEROCOPY first and, when the driver refuses,
// starts again with XDP_COPY.
func Open(cfg Config) (*Socket, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	switch cfg.Mode {
	case ModeZeroCopy:
		return open(cfg, true)
	case ModeCopy:
		return open(cfg, false)
	}
	s, errZC := open(cfg, true)
	if errZC == nil {
		return s, nil
	}
	s, err := open(cfg, false)
	if err != nil {
		return nil, fmt.Errorf("%w (zero-copy: %v)", err, errZC)
	}
	return s, nil
}

func open(cfg Config, zc bool) (_ *Socket, err error) {
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("afxdp: socket: %w", err)
	}
	s := &Socket{fd: fd, cfg: cfg, zeroCopy: zc, frameMask: ^uint64(cfg.FrameSize - 1)}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	s.umem, err = unix.Mmap(-1, 0, cfg.FrameSize*cfg.NumFrames, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("afxdp: mmap UMEM of %d bytes: %w", cfg.FrameSize*cfg.NumFrames, err)
	}
	if err := s.registerUMEM(); err != nil {
		return nil, err
	}
	sizes := []struct {
		opt, n int
		name   string
	}{
		{unix.XDP_UMEM_FILL_RING, cfg.FillSize, "fill"},
		{unix.XDP_UMEM_COMPLETION_RING, cfg.CompletionSize, "completion"},
		{unix.XDP_RX_RING, cfg.RXSize, "rx"},
		{unix.XDP_TX_RING, cfg.TXSize, "tx"},
	}
	for _, r := range sizes {
		if r.n == 0 {
			continue
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_XDP, r.opt, r.n); err != nil {
			return nil, fmt.Errorf("afxdp: set %s ring size %d: %w", r.name, r.n, err)
		}
	}
	off, err := s.mmapOffsets()
	if err != nil {
		return nil, err
	}
	if err := s.mapRings(off); err != nil {
		return nil, err
	}
	// Every frame starts free; then the fill ring gets FillSize of them.
	s.free = make([]uint64, 0, cfg.NumFrames)
	for i := cfg.NumFrames - 1; i >= 0; i-- {
		s.free = append(s.free, uint64(i*cfg.FrameSize))
	}
	s.refill()

	flags := uint16(unix.XDP_COPY)
	if zc {
		flags = unix.XDP_ZEROCOPY
	}
	if !cfg.NoNeedWakeup {
		flags |= unix.XDP_USE_NEED_WAKEUP
	}
	sa := &unix.SockaddrXDP{Flags: flags, Ifindex: uint32(cfg.Ifindex), QueueID: uint32(cfg.Queue)}
	if err := unix.Bind(fd, sa); err != nil {
		mode := "copy"
		if zc {
			mode = "zero-copy"
		}
		return nil, fmt.Errorf("afxdp: bind to interface %d queue %d in %s mode: %w", cfg.Ifindex, cfg.Queue, mode, err)
	}
	s.pollfd[0] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
	return s, nil
}

// FD is the socket's file descriptor, for the XSKMAP.
func (s *Socket) FD() int { return s.fd }

// ZeroCopy reports whether the socket is bound in zero-copy mode.
func (s *Socket) ZeroCopy() bool { return s.zeroCopy }

// Queue is the receive queue the socket is bound to.
func (s *Socket) Queue() int { return s.cfg.Queue }

// Receive takes up to len(descs) received frames from the RX ring into
// descs and returns how many. The frames stay owned by the caller, who
// reads them with Frame and hands them back with Recycle.
func (s *Socket) Receive(descs []Desc) int {
	idx, n := s.rx.peek(uint32(len(descs)))
	for i := uint32(0); i < n; i++ {
		descs[i] = s.rx.descs[(idx+i)&s.rx.mask]
	}
	s.rx.release(n)
	return int(n)
}

// Frame returns the bytes of a received frame, aliasing the UMEM: valid
// until the frame is recycled.
func (s *Socket) Frame(d Desc) []byte {
	end := d.Addr + uint64(d.Len)
	return s.umem[d.Addr:end:end]
}

// Meta returns the n bytes in front of a received frame, aliasing the
// UMEM (valid until the frame is recycled), or nil when the frame's
// chunk has fewer than n bytes of headroom.
//
// This is where the kernel leaves the XDP metadata area
// (bpf_xdp_adjust_meta) of a frame redirected to the socket: the
// descriptor's address points at the packet data, and the metalen bytes
// just before it are the metadata. In copy mode __xsk_rcv copies
// data_meta..data_end to xsk_buff->data - metalen (net/xdp/xsk.c); in
// zero-copy mode the program ran on the UMEM chunk itself, so data_meta
// already lies there. Either way the packet data starts
// XDP_PACKET_HEADROOM (256) bytes into the chunk, and the metadata (at
// most 32 bytes) fits in that headroom. The descriptor does not carry
// metalen: the caller must know what its XDP program wrote, and the
// bytes are stale (whatever the chunk held before) for a frame the
// program redirected without metadata.
func (s *Socket) Meta(d Desc, n int) []byte {
	base := d.Addr & s.frameMask
	if n < 0 || d.Addr-base < uint64(n) || d.Addr > uint64(len(s.umem)) {
		return nil
	}
	return s.umem[d.Addr-uint64(n) : d.Addr : d.Addr]
}

// Recycle returns received frames to the fill ring (or, when it is
// full, to the free list) and wakes the kernel if it asked for it.
func (s *Socket) Recycle(descs []Desc) {
	for i := range descs {
		s.free = append(s.free, descs[i].Addr&s.frameMask)
	}
	s.refill()
}

// refill moves free frames into the fill ring.
func (s *Socket) refill() {
	if len(s.free) == 0 {
		return
	}
	idx, n := s.fill.reserve(uint32(len(s.free)))
	for i := uint32(0); i < n; i++ {
		s.fill.descs[(idx+i)&s.fill.mask] = s.free[len(s.free)-1]
		s.free = s.free[:len(s.free)-1]
	}
	s.fill.submit(n)
	if n > 0 && s.fill.needWakeup() {
		s.wakeupRX()
	}
}

// wakeupRX kicks the driver to refill from the fill ring, as libxdp
// does when XDP_RING_NEED_WAKEUP is set on it.
func (s *Socket) wakeupRX() {
	_, _, _ = unix.Recvfrom(s.fd, nil, unix.MSG_DONTWAIT)
}

// Poll waits up to timeout for received frames and reports whether there
// are some. EINTR counts as a timeout.
func (s *Socket) Poll(timeout time.Duration) bool {
	if s.rx.avail(1) > 0 {
		return true
	}
	s.pollfd[0].Revents = 0
	n, err := unix.Poll(s.pollfd[:], int(timeout/time.Millisecond))
	return err == nil && n > 0
}

// Transmit copies frames into free UMEM frames and queues them on the TX
// ring, returning how many it queued; it needs a TX ring (Config.TXSize).
// Completed frames are reclaimed on each call.
func (s *Socket) Transmit(frames [][]byte) (int, error) {
	if s.tx.descs == nil {
		return 0, errors.New("afxdp: socket has no TX ring")
	}
	s.complete()
	idx, n := s.tx.reserve(uint32(min(len(frames), len(s.free))))
	for i := uint32(0); i < n; i++ {
		f := frames[i]
		if len(f) > s.cfg.FrameSize {
			s.tx.cachedProd -= n - i // give back the unused reservations
			n = i
			break
		}
		addr := s.free[len(s.free)-1]
		s.free = s.free[:len(s.free)-1]
		copy(s.umem[addr:], f)
		s.tx.descs[(idx+i)&s.tx.mask] = Desc{Addr: addr, Len: uint32(len(f))}
	}
	s.tx.submit(n)
	if n > 0 {
		// Copy mode always needs sendto to transmit; zero-copy only
		// when the kernel asks.
		if !s.zeroCopy || s.tx.needWakeup() {
			_, _, errno := unix.Syscall6(unix.SYS_SENDTO, uintptr(s.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
			if errno != 0 && errno != unix.EAGAIN && errno != unix.EBUSY && errno != unix.ENOBUFS {
				return int(n), fmt.Errorf("afxdp: sendto: %w", errno)
			}
		}
	}
	return int(n), nil
}

// complete reclaims transmitted frames from the completion ring.
func (s *Socket) complete() {
	idx, n := s.comp.peek(s.comp.size)
	for i := uint32(0); i < n; i++ {
		s.free = append(s.free, s.comp.descs[(idx+i)&s.comp.mask]&s.frameMask)
	}
	s.comp.release(n)
}

// Stats reads XDP_STATISTICS. Safe from any goroutine.
func (s *Socket) Stats() (Stats, error) {
	var st unix.XDPStatistics
	if err := getsockopt(s.fd, unix.XDP_STATISTICS, &st); err != nil {
		return Stats{}, fmt.Errorf("afxdp: XDP_STATISTICS: %w", err)
	}
	return Stats{
		RxDropped: st.Rx_dropped, RxInvalidDescs: st.Rx_invalid_descs, TxInvalidDescs: st.Tx_invalid_descs,
		RxRingFull: st.Rx_ring_full, RxFillRingEmptyDescs: st.Rx_fill_ring_empty_descs,
		TxRingEmptyDescs: st.Tx_ring_empty_descs,
	}, nil
}

// Close closes the socket (the kernel removes it from any XSKMAP) and
// unmaps its rings and UMEM.
func (s *Socket) Close() error {
	var errs []error
	if s.fd >= 0 {
		errs = append(errs, unix.Close(s.fd))
		s.fd = -1
	}
	for _, m := range s.maps {
		errs = append(errs, unix.Munmap(m))
	}
	s.maps = nil
	s.fill, s.comp, s.rx, s.tx = addrRing{}, addrRing{}, descRing{}, descRing{}
	if s.umem != nil {
		errs = append(errs, unix.Munmap(s.umem))
		s.umem = nil
	}
	return errors.Join(errs...)
}
