// Package pcapio reads and writes capture files for `sluice replay`,
// `sluice verify` and `sluice capture`. It hides the pcap / pcapng
// difference and maps pcap link types onto the decoder's, so everything
// downstream sees (frame, link type, timestamp) and nothing else.
package pcapio

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/sluice-project/sluice/packet"
)

// Link type numbers from the tcpdump.org registry that sluice reads.
const (
	linkEthernet = 1
	linkRawBSD   = 12 // DLT_RAW on OpenBSD-ish writers
	linkRaw      = 101
	linkLinuxSLL = 113
	linkIPv4     = 228
	linkIPv6     = 229
	linkSLL2     = 276
)

// LinkType maps a pcap link type to the decoder's.
func LinkType(lt layers.LinkType) (packet.LinkType, error) {
	switch int(lt) {
	case linkEthernet:
		return packet.LinkEthernet, nil
	case linkRaw, linkRawBSD, linkIPv4, linkIPv6:
		return packet.LinkRawIP, nil
	case linkLinuxSLL:
		return packet.LinkLinuxSLL, nil
	case linkSLL2:
		return packet.LinkLinuxSLL2, nil
	}
	return 0, fmt.Errorf("unsupported link type %d (%s): sluice reads Ethernet, raw IP and Linux cooked captures", int(lt), lt)
}

// PcapLinkType is the pcap link type for writing frames of a decoder link type.
func PcapLinkType(lt packet.LinkType) layers.LinkType {
	switch lt {
	case packet.LinkRawIP:
		return layers.LinkType(linkRaw)
	case packet.LinkLinuxSLL:
		return layers.LinkType(linkLinuxSLL)
	case packet.LinkLinuxSLL2:
		return layers.LinkType(linkSLL2)
	}
	return layers.LinkType(linkEthernet)
}

// Reader reads frames from a pcap or pcapng stream.
type Reader struct {
	pcap   *pcapgo.Reader
	ng     *pcapgo.NgReader
	link   packet.LinkType
	ngLink []packet.LinkType
	closer io.Closer
	n      int
	err    error // the first error Next returned: every later call returns it
}

// TruncatedError reports a capture that ends in the middle of a record.
// Frames before the damage were returned.
type TruncatedError struct {
	Frames int // frames read before the damage
	Err    error
}

func (e *TruncatedError) Error() string {
	return fmt.Sprintf("capture damaged after %d frames: %v", e.Frames, e.Err)
}

func (e *TruncatedError) Unwrap() error { return e.Err }

// Open opens a capture file.
func Open(path string) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	r, err := NewReader(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	r.closer = f
	return r, nil
}

// NewReader detects pcap or pcapng from the first bytes.
func NewReader(in io.Reader) (*Reader, error) {
	br := bufio.NewReaderSize(in, 1<<16)
	magic, err := br.Peek(4)
	if err != nil {
		return nil, fmt.Errorf("not a capture file: %w", err)
	}
	r := &Reader{}
	if magic[0] == 0x0a && magic[1] == 0x0d && magic[2] == 0x0d && magic[3] == 0x0a {
		ng, err := pcapgo.NewNgReader(br, pcapgo.NgReaderOptions{})
		if err != nil {
			return nil, fmt.Errorf("pcapng: %w", err)
		}
		r.ng = ng
		for i := 0; i < ng.NInterfaces(); i++ {
			intf, _ := ng.Interface(i)
			lt, err := LinkType(intf.LinkType)
			if err != nil {
				return nil, err
			}
			r.ngLink = append(r.ngLink, lt)
		}
		if len(r.ngLink) > 0 {
			r.link = r.ngLink[0]
		}
		return r, nil
	}
	pr, err := pcapgo.NewReader(br)
	if err != nil {
		return nil, fmt.Errorf("pcap: %w", err)
	}
	r.pcap = pr
	if r.link, err = LinkType(pr.LinkType()); err != nil {
		return nil, err
	}
	return r, nil
}

// Link is the link type of the (first interface of the) capture.
func (r *Reader) Link() packet.LinkType { return r.link }

// Next returns the next frame, its link type and its timestamp in
// nanoseconds. The frame is valid until the next call. It returns io.EOF
// at the end, and a *TruncatedError when the file is damaged; after an
// error it returns the same error again.
func (r *Reader) Next() ([]byte, packet.LinkType, int64, error) {
	if r.err != nil {
		return nil, 0, 0, r.err
	}
	data, lt, ts, err := r.next()
	if err != nil {
		r.err = err
	}
	return data, lt, ts, err
}

// next is Next without the sticky error: after damage the stream's
// position means nothing, so what follows must not be read as frames.
func (r *Reader) next() ([]byte, packet.LinkType, int64, error) {
	var (
		data []byte
		ci   gopacket.CaptureInfo
		err  error
		lt   = r.link
	)
	if r.ng != nil {
		data, ci, err = r.ng.ZeroCopyReadPacketData()
		if err == nil && ci.InterfaceIndex >= 0 && ci.InterfaceIndex < len(r.ngLink) {
			lt = r.ngLink[ci.InterfaceIndex]
		} else if err == nil && ci.InterfaceIndex >= len(r.ngLink) {
			// An interface block after the first packets: refresh.
			intf, ierr := r.ng.Interface(ci.InterfaceIndex)
			if ierr != nil {
				return nil, 0, 0, &TruncatedError{Frames: r.n, Err: ierr}
			}
			if lt, err = LinkType(intf.LinkType); err != nil {
				return nil, 0, 0, err
			}
			r.ngLink = append(r.ngLink, lt)
		}
	} else {
		data, ci, err = r.pcap.ZeroCopyReadPacketData()
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, 0, 0, io.EOF
		}
		return nil, 0, 0, &TruncatedError{Frames: r.n, Err: err}
	}
	r.n++
	return data, lt, ci.Timestamp.UnixNano(), nil
}

// Close closes the file Open opened.
func (r *Reader) Close() error {
	if r.closer != nil {
		return r.closer.Close()
	}
	return nil
}

// Writer writes a pcap file with nanosecond timestamps.
type Writer struct {
	w   *pcapgo.Writer
	buf *bufio.Writer
}

// NewWriter writes the file header for frames of link type lt.
func NewWriter(out io.Writer, lt packet.LinkType, snaplen uint32) (*Writer, error) {
	if snaplen == 0 {
		snaplen = 262144
	}
	buf := bufio.NewWriterSize(out, 1<<16)
	w := pcapgo.NewWriterNanos(buf)
	if err := w.WriteFileHeader(snaplen, PcapLinkType(lt)); err != nil {
		return nil, err
	}
	return &Writer{w: w, buf: buf}, nil
}

// Write appends one frame, truncated to the snap length by the caller.
func (w *Writer) Write(frame []byte, ts int64, origLen int) error {
	ci := gopacket.CaptureInfo{Timestamp: timeFromNanos(ts), CaptureLength: len(frame), Length: origLen}
	if ci.Length < ci.CaptureLength {
		ci.Length = ci.CaptureLength
	}
	return w.w.WritePacket(ci, frame)
}

// Flush writes buffered frames out.
func (w *Writer) Flush() error { return w.buf.Flush() }
