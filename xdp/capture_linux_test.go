package xdp

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/sluice-project/sluice/internal/testnet"
	"github.com/sluice-project/sluice/packet"
)

const captureRules = `*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -p udp -m udp --dport 9999 -j DROP
-A PREROUTING -p udp -m udp --dport 53 -j ACCEPT
COMMIT
`

// TestCaptureBlock runs a program compiled with Capture: nothing is
// copied while cap_ctl is zero; then the selected verdicts and rules are,
// with the deciding rule, the generation and the frame's bytes, at most
// RatePerCPU a second.
func TestCaptureBlock(t *testing.T) {
	testnet.RequireForTest(t)
	spec, err := Compile(parse4(t, captureRules), nil, CompileOptions{InIface: "eth0", Capture: true, Generation: 7})
	if err != nil {
		t.Fatal(err)
	}
	cm, err := NewCaptureMaps()
	if err != nil {
		t.Fatal(err)
	}
	defer cm.Close()
	f, err := spec.LoadShared(nil, cm)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rd, err := cm.Reader(0)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	src, dst := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("192.0.2.1")
	drop := packet.BuildIPv4(src, dst, packet.ProtoUDP, packet.BuildUDP(1, 9999, []byte("drop me")))
	acc := packet.BuildIPv4(src, dst, packet.ProtoUDP, packet.BuildUDP(1, 53, []byte("accept me")))
	pol := packet.BuildIPv4(src, dst, packet.ProtoUDP, packet.BuildUDP(1, 80, []byte("policy")))
	run := func(fr []byte, want uint32) {
		t.Helper()
		ret, err := f.Program.Run(&ebpf.RunOptions{Data: fr})
		if err != nil {
			t.Fatal(err)
		}
		if ret != want {
			t.Fatalf("action %d, want %d", ret, want)
		}
	}
	read := func() (CaptureRecord, []byte, bool) {
		t.Helper()
		rd.SetDeadline(time.Now().Add(200 * time.Millisecond))
		rec, err := rd.Read()
		if err != nil {
			return CaptureRecord{}, nil, false
		}
		if rec.LostSamples > 0 {
			t.Fatalf("lost %d samples", rec.LostSamples)
		}
		r, data, err := DecodeCaptureSample(rec.RawSample)
		if err != nil {
			t.Fatal(err)
		}
		return r, data, true
	}
	run(drop, xdpDrop)
	run(acc, xdpPass)
	if _, _, ok := read(); ok {
		t.Fatal("a record while no capture is active")
	}

	// --dropped
	if err := cm.Set(CaptureCtl{Mask: CtlDropped, RatePerCPU: 100, Snaplen: 1000}); err != nil {
		t.Fatal(err)
	}
	run(acc, xdpPass)
	run(drop, xdpDrop)
	r, data, ok := read()
	if !ok {
		t.Fatal("no record for a dropped frame")
	}
	if r.Verdict != CaptureDropped || r.Rule != 1 || r.Gen != 7 || int(r.OrigLen) != len(drop) || !bytes.Equal(data, drop) {
		t.Fatalf("record %+v, %d bytes", r, len(data))
	}
	if tb, ch, n, ok := spec.RulePosition(int(r.Rule) - 1); !ok || tb != "raw" || ch != "PREROUTING" || n != 1 {
		t.Fatalf("rule %d is %s %s %d", r.Rule, tb, ch, n)
	}
	if _, _, ok := read(); ok {
		t.Fatal("the accepted frame was copied under --dropped")
	}

	// --rule raw:PREROUTING:2, snap length 20: the ACCEPT rule's frames
	// only, the policy's not.
	ids := spec.RuleRef("raw", "PREROUTING", 2)
	if len(ids) != 1 {
		t.Fatalf("RuleRef: %v", ids)
	}
	if err := cm.Set(CaptureCtl{Mask: CtlDropped | CtlAccepted, RatePerCPU: 100, Snaplen: 20, Rules: [4]uint32{uint32(ids[0] + 1)}}); err != nil {
		t.Fatal(err)
	}
	run(pol, xdpPass)
	run(drop, xdpDrop)
	run(acc, xdpPass)
	r, data, ok = read()
	if !ok || r.Verdict != CaptureAccepted || r.Rule != uint32(ids[0]+1) || r.CapLen != 20 || !bytes.Equal(data, acc[:20]) || int(r.OrigLen) != len(acc) {
		t.Fatalf("rule capture: %v %+v", ok, r)
	}
	if _, _, ok := read(); ok {
		t.Fatal("a frame of another rule was copied")
	}

	// The rate bound: 3 tokens a second on this CPU.
	if err := cm.Set(CaptureCtl{Mask: CtlDropped, RatePerCPU: 3, Snaplen: 1000}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // a fresh second
	for range 10 {
		run(drop, xdpDrop)
	}
	got := 0
	for {
		if _, _, ok := read(); !ok {
			break
		}
		got++
	}
	missed, err := f.CaptureMissed()
	if err != nil {
		t.Fatal(err)
	}
	if got != 3 || missed != 7 {
		t.Fatalf("rate 3/s: %d copied, %d missed", got, missed)
	}
	// Counters are unaffected by the capture block.
	vals, err := f.ReadCounters()
	if err != nil {
		t.Fatal(err)
	}
	if vals[StatDropped] != 13 || vals[StatAccepted] != 4 {
		t.Fatalf("dropped %d accepted %d", vals[StatDropped], vals[StatAccepted])
	}
}

// TestCaptureDiffExample is the differential test of the example subset
// with the capture block compiled in (and inactive): same actions and
// counters as the engine.
func TestCaptureDiffExample(t *testing.T) {
	testnet.RequireForTest(t)
	spec := diff(t, exampleSubset(t), CompileOptions{InIface: "eth0", Capture: true}, exampleFrames(t), inputSites...)
	if spec.Capture == nil {
		t.Fatal("no capture spec")
	}
}
