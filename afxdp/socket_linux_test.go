package afxdp_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/sluice-project/sluice/afxdp"
	"github.com/sluice-project/sluice/internal/testnet"
	"github.com/sluice-project/sluice/packet"
	"github.com/sluice-project/sluice/xdp"
)

// TestReceiveOnVeth attaches the redirect program to B's end of a veth,
// binds a socket to its queue 0, sends IPv4 frames and an ARP-like frame
// from A, and checks the socket gets exactly the IPv4 frames, intact.
func TestReceiveOnVeth(t *testing.T) {
	testnet.RequireForTest(t)
	pair, err := testnet.NewPair(testnet.PairOptions{Prefix: "xsk", MTU: 1500})
	if err != nil {
		t.Fatal(err)
	}
	defer pair.Close()

	var sock *afxdp.Socket
	var red *xdp.Redirect
	err = pair.B.Do(func() error {
		var err error
		if red, err = xdp.NewRedirect(xdp.RedirectOptions{Queues: 1, Fallback: xdp.ActionPass}); err != nil {
			return err
		}
		l, mode, err := red.Attach(pair.BIndex)
		if err != nil {
			return err
		}
		t.Cleanup(func() { l.Close() })
		t.Logf("XDP attached in %s mode", mode)
		if sock, err = afxdp.Open(afxdp.Config{Ifindex: pair.BIndex, Queue: 0, FrameSize: 2048, NumFrames: 256, FillSize: 128, CompletionSize: 128, RXSize: 128}); err != nil {
			return err
		}
		return red.SetSocket(0, sock.FD())
	})
	if err != nil {
		t.Fatal(err)
	}
	defer red.Close()
	defer sock.Close()
	t.Logf("zero-copy: %v", sock.ZeroCopy())

	snd, err := pair.NewSender()
	if err != nil {
		t.Fatal(err)
	}
	defer snd.Close()
	src, dst := netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("192.0.2.1")
	const n = 1000 // more than the rings hold: frames must be recycled
	var frames [][]byte
	for i := range n {
		f := packet.BuildIPv4(src, dst, packet.ProtoUDP, packet.BuildUDP(uint16(1000+i), 9999, []byte("payload")),
			packet.WithSrcMAC([6]byte(pair.AMAC)), packet.WithDstMAC([6]byte(pair.BMAC)))
		frames = append(frames, f)
	}
	other := make([]byte, 60)
	copy(other, pair.BMAC)
	other[12], other[13] = 0x88, 0xb6 // not IP: must be passed to the kernel

	descs := make([]afxdp.Desc, 64)
	got := 0
	deadline := time.Now().Add(10 * time.Second)
	sent := 0
	for got < n && time.Now().Before(deadline) {
		// Send in bursts the rings can hold, then drain.
		for end := min(sent+64, n); sent < end; sent++ {
			if err := snd.Send(frames[sent]); err != nil {
				t.Fatal(err)
			}
			if err := snd.Send(other); err != nil {
				t.Fatal(err)
			}
		}
		if !sock.Poll(100 * time.Millisecond) {
			continue
		}
		k := sock.Receive(descs)
		for _, d := range descs[:k] {
			f := sock.Frame(d)
			if string(f) != string(frames[got]) {
				t.Fatalf("frame %d: got % x, want % x", got, f, frames[got])
			}
			got++
		}
		sock.Recycle(descs[:k])
	}
	if got != n {
		t.Fatalf("received %d of %d frames", got, n)
	}
	st, err := sock.Stats()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stats %+v", st)
	if st.RxDropped != 0 || st.RxRingFull != 0 {
		t.Errorf("unexpected drops: %+v", st)
	}
}
