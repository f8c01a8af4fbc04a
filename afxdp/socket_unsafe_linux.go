package afxdp

import (
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// This file holds every conversion between kernel-shared memory or
// socket-option structs and Go pointers.

func getsockopt[T any](fd, opt int, v *T) error {
	size := uint32(unsafe.Sizeof(*v))
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_XDP, uintptr(opt),
		uintptr(unsafe.Pointer(v)), uintptr(unsafe.Pointer(&size)), 0)
	if errno != 0 {
		return errno
	}
	return nil
}

func (s *Socket) registerUMEM() error {
	reg := unix.XDPUmemReg{
		Addr: uint64(uintptr(unsafe.Pointer(&s.umem[0]))),
		Len:  uint64(len(s.umem)),
		Size: uint32(s.cfg.FrameSize),
	}
	_, _, errno := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(s.fd), unix.SOL_XDP, unix.XDP_UMEM_REG,
		uintptr(unsafe.Pointer(&reg)), unsafe.Sizeof(reg), 0)
	if errno != 0 {
		return fmt.Errorf("afxdp: XDP_UMEM_REG (%d frames of %d bytes): %w", s.cfg.NumFrames, s.cfg.FrameSize, errno)
	}
	return nil
}

func (s *Socket) mmapOffsets() (unix.XDPMmapOffsets, error) {
	var off unix.XDPMmapOffsets
	if err := getsockopt(s.fd, unix.XDP_MMAP_OFFSETS, &off); err != nil {
		return off, fmt.Errorf("afxdp: XDP_MMAP_OFFSETS: %w", err)
	}
	return off, nil
}

// mapRing maps one ring and returns pointers to its index words and its
// descriptor array.
func (s *Socket) mapRing(pgoff int64, o unix.XDPRingOffset, n int, descSize uintptr, name string) (prod, cons, flags *atomic.Uint32, descs unsafe.Pointer, err error) {
	length := int(o.Desc) + n*int(descSize)
	m, err := unix.Mmap(s.fd, pgoff, length, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("afxdp: mmap %s ring: %w", name, err)
	}
	s.maps = append(s.maps, m)
	base := unsafe.Pointer(&m[0])
	prod = (*atomic.Uint32)(unsafe.Add(base, o.Producer))
	cons = (*atomic.Uint32)(unsafe.Add(base, o.Consumer))
	// The flags word follows the consumer index on kernels with
	// need_wakeup (5.4+); older ones report offset 0 for it.
	if o.Flags != 0 {
		flags = (*atomic.Uint32)(unsafe.Add(base, o.Flags))
	}
	return prod, cons, flags, unsafe.Add(base, o.Desc), nil
}

func (s *Socket) mapRings(off unix.XDPMmapOffsets) error {
	c := &s.cfg
	prod, cons, flags, d, err := s.mapRing(unix.XDP_UMEM_PGOFF_FILL_RING, off.Fr, c.FillSize, 8, "fill")
	if err != nil {
		return err
	}
	s.fill.initProducer(prod, cons, flags, uint32(c.FillSize))
	s.fill.descs = unsafe.Slice((*uint64)(d), c.FillSize)

	if prod, cons, flags, d, err = s.mapRing(unix.XDP_UMEM_PGOFF_COMPLETION_RING, off.Cr, c.CompletionSize, 8, "completion"); err != nil {
		return err
	}
	s.comp.initConsumer(prod, cons, flags, uint32(c.CompletionSize))
	s.comp.descs = unsafe.Slice((*uint64)(d), c.CompletionSize)

	if prod, cons, flags, d, err = s.mapRing(unix.XDP_PGOFF_RX_RING, off.Rx, c.RXSize, unsafe.Sizeof(Desc{}), "rx"); err != nil {
		return err
	}
	s.rx.initConsumer(prod, cons, flags, uint32(c.RXSize))
	s.rx.descs = unsafe.Slice((*Desc)(d), c.RXSize)

	if c.TXSize > 0 {
		if prod, cons, flags, d, err = s.mapRing(unix.XDP_PGOFF_TX_RING, off.Tx, c.TXSize, unsafe.Sizeof(Desc{}), "tx"); err != nil {
			return err
		}
		s.tx.initProducer(prod, cons, flags, uint32(c.TXSize))
		s.tx.descs = unsafe.Slice((*Desc)(d), c.TXSize)
	}
	return nil
}
