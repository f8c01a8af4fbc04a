package pcapio

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/sluice-project/sluice/packet"
)

func framesForTest() [][]byte {
	return [][]byte{{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x08, 0x00, 0x45}, bytes.Repeat([]byte{0xAB}, 60)}
}

// captureForTest writes framesForTest as a capture of link type lt.
func captureForTest(tb testing.TB, lt packet.LinkType) *bytes.Buffer {
	tb.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, lt, 0)
	if err != nil {
		tb.Fatal(err)
	}
	for i, f := range framesForTest() {
		if err := w.Write(f, int64(1767225600e9+i*1500), len(f)); err != nil {
			tb.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	return &buf
}

func TestPcapRoundTrip(t *testing.T) {
	for _, lt := range []packet.LinkType{packet.LinkEthernet, packet.LinkRawIP, packet.LinkLinuxSLL, packet.LinkLinuxSLL2} {
		buf := captureForTest(t, lt)
		r, err := NewReader(buf)
		if err != nil {
			t.Fatal(err)
		}
		for i, want := range framesForTest() {
			got, glt, ts, err := r.Next()
			if err != nil {
				t.Fatalf("link %d frame %d: %v", lt, i, err)
			}
			if !bytes.Equal(got, want) || glt != lt || ts != int64(1767225600e9+i*1500) {
				t.Errorf("link %d frame %d: got %x lt %d ts %d", lt, i, got, glt, ts)
			}
		}
		if _, _, _, err := r.Next(); err != io.EOF {
			t.Errorf("after the last frame: %v, want io.EOF", err)
		}
	}
}

func TestPcapngRead(t *testing.T) {
	var buf bytes.Buffer
	w, err := pcapgo.NewNgWriter(&buf, layers.LinkTypeRaw)
	if err != nil {
		t.Fatal(err)
	}
	f := []byte{0x45, 0, 0, 20}
	ci := gopacket.CaptureInfo{Timestamp: time.Unix(10, 5), CaptureLength: len(f), Length: len(f)}
	if err := w.WritePacket(ci, f); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	got, lt, ts, err := r.Next()
	if err != nil || lt != packet.LinkRawIP || !bytes.Equal(got, f) || ts != 10e9+5 {
		t.Fatalf("got %x lt %d ts %d err %v", got, lt, ts, err)
	}
}

// A capture cut in the middle of a record yields the frames before the
// damage, then a *TruncatedError.
func TestTruncatedCapture(t *testing.T) {
	var buf bytes.Buffer
	w, _ := NewWriter(&buf, packet.LinkEthernet, 0)
	for _, f := range framesForTest() {
		w.Write(f, 0, len(f))
	}
	w.Flush()
	cut := buf.Bytes()[:buf.Len()-10]
	r, err := NewReader(bytes.NewReader(cut))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := r.Next(); err != nil {
		t.Fatalf("first frame: %v", err)
	}
	_, _, _, err = r.Next()
	var te *TruncatedError
	if !errors.As(err, &te) || te.Frames != 1 {
		t.Fatalf("got %v, want a TruncatedError after 1 frame", err)
	}
}

func TestUnsupportedLinkType(t *testing.T) {
	var buf bytes.Buffer
	w := pcapgo.NewWriter(&buf)
	w.WriteFileHeader(65535, layers.LinkTypeIEEE802_11)
	if _, err := NewReader(&buf); err == nil {
		t.Fatal("802.11 capture accepted")
	}
}

// FuzzReader: whatever the bytes, NewReader and Next return frames or an
// error and never panic, and a reader that returned an error keeps
// returning one (replay stops at the damage and reports it).
func FuzzReader(f *testing.F) {
	for _, lt := range []packet.LinkType{packet.LinkEthernet, packet.LinkRawIP, packet.LinkLinuxSLL2} {
		buf := captureForTest(f, lt)
		f.Add(buf.Bytes())
		f.Add(buf.Bytes()[:buf.Len()-7])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewReader(bytes.NewReader(data))
		if err != nil {
			return
		}
		for i := 0; i < 1000; i++ {
			fr, _, _, err := r.Next()
			if err != nil {
				if _, _, _, err2 := r.Next(); err2 == nil {
					t.Fatalf("Next after %v returned a frame", err)
				}
				return
			}
			_ = fr
		}
	})
}
