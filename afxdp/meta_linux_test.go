package afxdp_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf/link"

	"github.com/sluice-project/sluice/afxdp"
	"github.com/sluice-project/sluice/internal/testnet"
	"github.com/sluice-project/sluice/packet"
	"github.com/sluice-project/sluice/rules"
	"github.com/sluice-project/sluice/xdp"
)

// metaRules has two fallback sites, one per destination port, and an
// XDP-only drop: the compiled program redirects frames to port 1 and
// port 2 at different sites, each with its site in the metadata.
const metaRules = `*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -p udp -m udp --dport 3 -j DROP
-A PREROUTING -p udp -m udp --dport 1 -m limit --limit 5/sec -j ACCEPT
-A PREROUTING -p udp -m udp --dport 2 -m recent --name meta --set -j DROP
COMMIT
`

// TestMetadataOnVeth checks, on this kernel, where the XDP metadata of a
// frame redirected to an AF_XDP socket lands: the compiled filter (with
// an XSKMAP) writes each frame's fallback site with bpf_xdp_adjust_meta,
// and Socket.Meta must read that exact site in front of every frame,
// frame by frame (the sites alternate, so stale bytes from a chunk's
// previous frame would show). Both veth's native XDP and generic (skb)
// XDP, each with a copy-mode socket.
func TestMetadataOnVeth(t *testing.T) {
	testnet.RequireForTest(t)
	for _, m := range []struct {
		name  string
		flags link.XDPAttachFlags
	}{{"driver", link.XDPDriverMode}, {"generic", link.XDPGenericMode}} {
		t.Run(m.name, func(t *testing.T) { metadataOnVeth(t, m.flags) })
	}
}

func metadataOnVeth(t *testing.T, flags link.XDPAttachFlags) {
	pair, err := testnet.NewPair(testnet.PairOptions{Prefix: "xskmeta", MTU: 1500})
	if err != nil {
		t.Fatal(err)
	}
	defer pair.Close()
	rs, err := rules.Parse(strings.NewReader(metaRules), rules.Options{Family: packet.FamilyIPv4, File: "meta.rules"})
	if err != nil {
		t.Fatal(err)
	}
	spec, err := xdp.Compile(rs, nil, xdp.CompileOptions{InIface: testnet.BIfName, XSKQueues: 1})
	if err != nil {
		t.Fatal(err)
	}
	// The site each port falls back at.
	want := map[uint16]int{}
	for i, fs := range spec.Fallback {
		if fs.Rule != nil && strings.Contains(fs.Rule.Text, "--dport 1 ") {
			want[1] = i
		}
		if fs.Rule != nil && strings.Contains(fs.Rule.Text, "--dport 2 ") {
			want[2] = i
		}
	}
	if len(want) != 2 || want[1] == want[2] {
		t.Fatalf("sites %v of %+v", want, spec.Fallback)
	}
	f, err := spec.Load()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var sock *afxdp.Socket
	// Frames of 2048-byte chunks, in copy mode (veth has no zero-copy).
	const frameSize = 2048
	err = pair.B.Do(func() error {
		var err error
		if sock, err = afxdp.Open(afxdp.Config{Ifindex: pair.BIndex, Queue: 0, FrameSize: frameSize, NumFrames: 256,
			FillSize: 128, CompletionSize: 128, RXSize: 128}); err != nil {
			return err
		}
		if err := f.XSKs.Put(uint32(0), uint32(sock.FD())); err != nil {
			return err
		}
		l, err := link.AttachXDP(link.XDPOptions{Program: f.Program, Interface: pair.BIndex, Flags: flags})
		if err != nil {
			return err
		}
		t.Cleanup(func() { l.Close() })
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	t.Logf("zero-copy: %v", sock.ZeroCopy())

	snd, err := pair.NewSender()
	if err != nil {
		t.Fatal(err)
	}
	defer snd.Close()
	src, dst := netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("192.0.2.1")
	const n = 600 // more than the UMEM's 256 chunks: each is reused
	var frames [][]byte
	var ports []uint16
	for i := range n {
		port := uint16(1 + i%2)
		if i%7 == 3 {
			port = 3 // dropped in XDP: never reaches the socket
		}
		fr := packet.BuildIPv4(src, dst, packet.ProtoUDP, packet.BuildUDP(uint16(1000+i), port, []byte("payload EVIL?")),
			packet.WithSrcMAC([6]byte(pair.AMAC)), packet.WithDstMAC([6]byte(pair.BMAC)))
		frames, ports = append(frames, fr), append(ports, port)
	}
	var expect []int // indexes of the frames the socket must get
	for i, p := range ports {
		if p != 3 {
			expect = append(expect, i)
		}
	}
	descs := make([]afxdp.Desc, 64)
	got, sent := 0, 0
	offsets := map[uint64]int{}
	for deadline := time.Now().Add(10 * time.Second); got < len(expect) && time.Now().Before(deadline); {
		for end := min(sent+64, n); sent < end; sent++ {
			if err := snd.Send(frames[sent]); err != nil {
				t.Fatal(err)
			}
		}
		if !sock.Poll(100 * time.Millisecond) {
			continue
		}
		k := sock.Receive(descs)
		for _, d := range descs[:k] {
			i := expect[got]
			if fr := sock.Frame(d); string(fr) != string(frames[i]) {
				t.Fatalf("frame %d: got % x, want % x", i, fr, frames[i])
			}
			offsets[d.Addr%frameSize]++
			site, ok := xdp.SiteFromMeta(sock.Meta(d, 4))
			if !ok || site != want[ports[i]] {
				t.Fatalf("frame %d (port %d) at %#x: metadata says site %d (%v), want %d", i, ports[i], d.Addr, site, ok, want[ports[i]])
			}
			got++
		}
		sock.Recycle(descs[:k])
	}
	if got != len(expect) {
		t.Fatalf("received %d of %d frames", got, len(expect))
	}
	vals, err := f.ReadCounters()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d frames: %d redirected with their site in the metadata, %d dropped in XDP; data offsets in the chunk: %v",
		n, vals[xdp.StatFallback], vals[xdp.StatDropped], offsets)
	if vals[xdp.StatFallback] != uint64(len(expect)) || vals[xdp.StatDropped] != uint64(n-len(expect)) {
		t.Errorf("program counters: fallback %d dropped %d", vals[xdp.StatFallback], vals[xdp.StatDropped])
	}
	if sock.Meta(afxdp.Desc{Addr: 2}, 4) != nil {
		t.Error("Meta returned bytes outside the chunk")
	}
}
