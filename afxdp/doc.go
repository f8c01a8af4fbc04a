// Package afxdp is a small AF_XDP socket library: a UMEM (one page-aligned
// mmap cut into frames), its fill and completion rings, and a socket's RX
// and TX rings, bound to one receive queue of one interface.
//
// Rings are single-producer single-consumer arrays shared with the kernel
// (Documentation/networking/af_xdp.rst). Each side keeps a cached copy of
// the far side's index and reloads it only when the cache says the ring
// is empty (consumer) or full (producer), so a busy batch loop touches the
// shared cache lines once per batch. Indexes are free-running uint32s; the
// slot is index & (size-1). Producer indexes are published with a release
// store and far-side indexes read with an acquire load (sync/atomic's
// sequentially consistent operations are at least that strong).
//
// The index arithmetic (ring.go) is portable and tested without root; the
// socket itself (socket_linux.go) needs Linux and CAP_NET_RAW, and every
// conversion of mmap'd memory into Go pointers is in *_unsafe*.go files.
//
// A Socket is used by one goroutine at a time; Stats may be read from any.
package afxdp

// Desc is a ring descriptor, struct xdp_desc: a frame's address in the
// UMEM, its length, and option bits (XDP_PKT_CONTD for multi-buffer).
type Desc struct {
	Addr    uint64
	Len     uint32
	Options uint32
}

// Stats are the socket's XDP_STATISTICS counters.
type Stats struct {
	// RxDropped: frames dropped for another reason than a full ring
	// (too long for a UMEM frame, ...).
	RxDropped uint64 `json:"rx_dropped"`
	// RxInvalidDescs: invalid descriptors in the fill ring.
	RxInvalidDescs uint64 `json:"rx_invalid_descs"`
	// TxInvalidDescs: invalid descriptors in the TX ring.
	TxInvalidDescs uint64 `json:"tx_invalid_descs"`
	// RxRingFull: frames dropped because the RX ring was full (the
	// application is too slow).
	RxRingFull uint64 `json:"rx_ring_full"`
	// RxFillRingEmptyDescs: times the kernel found the fill ring empty
	// (the application returns frames too slowly).
	RxFillRingEmptyDescs uint64 `json:"rx_fill_ring_empty_descs"`
	// TxRingEmptyDescs: times the kernel found the TX ring empty.
	TxRingEmptyDescs uint64 `json:"tx_ring_empty_descs"`
}

// Mode is how a socket binds.
type Mode uint8

const (
	// ModeAuto tries zero-copy, then falls back to copy mode.
	ModeAuto Mode = iota
	// ModeZeroCopy insists on zero-copy (XDP_ZEROCOPY).
	ModeZeroCopy
	// ModeCopy asks for copy mode (XDP_COPY), which every driver supports.
	ModeCopy
)

func (m Mode) String() string {
	switch m {
	case ModeZeroCopy:
		return "zerocopy"
	case ModeCopy:
		return "copy"
	}
	return "auto"
}
