package testnet

import (
	"context"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"

	"github.com/sluice-project/sluice/packet"
)

func newTopologyForTest(t *testing.T, opts TopologyOptions) *Topology {
	t.Helper()
	RequireForTest(t)
	if opts.Prefix == "" {
		opts.Prefix = "tg"
	}
	topo, err := NewTopology(opts)
	if err != nil {
		t.Fatalf("NewTopology: %v", err)
	}
	t.Cleanup(func() {
		if err := topo.Close(); err != nil {
			t.Errorf("Topology.Close: %v", err)
		}
	})
	return topo
}

// attachXDPDrop attaches an XDP program returning XDP_DROP to the server
// veth; it goes away with the namespace.
func attachXDPDrop(t *testing.T, topo *Topology) {
	t.Helper()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 1), asm.Return()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prog.Close() })
	var l link.Link
	if err := topo.Server.Do(func() error {
		var err error
		l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: topo.ServerIndex})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
}

func TestFloodFramesAreValid(t *testing.T) {
	for _, k := range FloodKinds {
		frames, err := FloodFrames(k, SenderMAC, ServerMAC, ServerAddr.Addr(), 16, 1)
		if err != nil {
			t.Fatal(err)
		}
		for i, f := range frames {
			var p packet.Packet
			var d packet.Decoder
			d.Decode(f, &p)
			if p.Malformed != 0 {
				t.Errorf("%s frame %d: malformed %v", k, i, p.Malformed)
			}
		}
	}
}

func TestGeneratorDeliversWithinBounds(t *testing.T) {
	topo := newTopologyForTest(t, TopologyOptions{})
	attachXDPDrop(t, topo)
	f, err := topo.NewFlood(FloodOptions{Kind: FloodMix, RandomSource: true, Batch: 4096})
	if err != nil {
		t.Fatal(err)
	}
	before, err := topo.ServerStats()
	if err != nil {
		t.Fatal(err)
	}
	const want = 200_017 // not a multiple of the kernel's batch size
	start := time.Now()
	sent, err := f.Run(context.Background(), want, 5*time.Second)
	el := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	// Frames the server's ring had no room for are counted in its
	// rx_dropped: each frame sent is counted exactly once, once the
	// server's NAPI has drained its ring (polled for up to 3 s: under load
	// 200 ms was not always enough).
	var after IfStats
	var got uint64
	for deadline := time.Now().Add(3 * time.Second); ; {
		if after, err = topo.ServerStats(); err != nil {
			t.Fatal(err)
		}
		got = after.RxPackets - before.RxPackets + after.RxDropped - before.RxDropped
		if got >= want || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("sent %d in %v (%.2f Mpps), server rx %d + rx_dropped %d", sent, el, float64(sent)/el.Seconds()/1e6,
		after.RxPackets-before.RxPackets, after.RxDropped-before.RxDropped)
	if sent != want {
		t.Errorf("sent %d, want exactly %d", sent, want)
	}
	if got != want {
		t.Errorf("server received %d of %d frames", got, want)
	}
	// The duration bound stops it too.
	start = time.Now()
	sent, err = f.Run(context.Background(), MaxFloodPackets, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("a 300ms run took %v", el)
	}
	t.Logf("300ms run sent %d", sent)
	// A cancelled context stops it at once.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if sent, _ := f.Run(ctx, 1000, time.Second); sent != 0 {
		t.Errorf("cancelled run sent %d", sent)
	}
	if _, err := f.Run(context.Background(), 0, time.Second); err == nil {
		t.Error("unbounded run accepted")
	}
}

func TestGeneratorRandomSourcesKeepChecksums(t *testing.T) {
	topo := newTopologyForTest(t, TopologyOptions{})
	// Capture what arrives on the server with an AF_PACKET socket.
	f, err := topo.NewFlood(FloodOptions{Kind: FloodSYN, Templates: 1, RandomSource: true,
		SourcePrefix: netip.MustParsePrefix("203.0.113.0/24"), Batch: 1})
	if err != nil {
		t.Fatal(err)
	}
	frames := captureOn(t, topo, func() {
		if _, err := f.Run(context.Background(), 32, time.Second); err != nil {
			t.Error(err)
		}
	})
	if len(frames) < 16 {
		t.Fatalf("captured %d frames", len(frames))
	}
	srcs := map[netip.Addr]bool{}
	for _, fr := range frames {
		var p packet.Packet
		var d packet.Decoder
		d.Decode(fr, &p)
		if p.Malformed != 0 {
			t.Fatalf("malformed %v", p.Malformed)
		}
		ip := fr[14:34]
		if sum16(ip) != 0xffff {
			t.Errorf("bad IP checksum in % x", ip)
		}
		src := netip.AddrFrom4([4]byte(ip[12:16]))
		if !netip.MustParsePrefix("203.0.113.0/24").Contains(src) {
			t.Errorf("source %v outside the prefix", src)
		}
		srcs[src] = true
		// TCP checksum with the pseudo header.
		tcp := fr[34:]
		var ph []byte
		ph = append(ph, ip[12:20]...)
		ph = append(ph, 0, 6)
		ph = binary.BigEndian.AppendUint16(ph, uint16(len(tcp)))
		if sum16(append(ph, tcp...)) != 0xffff {
			t.Errorf("bad TCP checksum from %v", src)
		}
	}
	if len(srcs) < len(frames)/2 {
		t.Errorf("only %d distinct sources in %d frames", len(srcs), len(frames))
	}
}

func sum16(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

func TestGeneratorRefusesForeignTopology(t *testing.T) {
	topo := newTopologyForTest(t, TopologyOptions{})
	fake := &Topology{Sender: topo.Sender, SenderIndex: topo.SenderIndex}
	if _, err := fake.NewFlood(FloodOptions{}); err == nil {
		t.Error("flood on a topology not made by NewTopology")
	}
	f, err := topo.NewFlood(FloodOptions{})
	if err != nil {
		t.Fatal(err)
	}
	topo.Close()
	if _, err := f.Run(context.Background(), 10, time.Second); err == nil {
		t.Error("flood ran on a closed topology")
	}
}
