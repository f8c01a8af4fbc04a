//go:build linux

package xdp

import (
	"bytes"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/sluice-project/sluice/engine"
	"github.com/sluice-project/sluice/examples"
	"github.com/sluice-project/sluice/internal/testnet"
	"github.com/sluice-project/sluice/packet"
	"github.com/sluice-project/sluice/rules"
)

// diffResume runs every frame through a reference engine and through the
// program; a frame the program hands over at a fallback site goes to a
// second engine with ProcessFrom at that site. Every verdict must be the
// reference's, and the program's counters plus the second engine's must
// equal the reference's, counter for counter. It returns the number of
// frames that fell back.
func diffResume(t *testing.T, rs4 *rules.Ruleset, opts CompileOptions, frames [][]byte) (*Spec, int) {
	t.Helper()
	spec, err := Compile(rs4, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	f, err := spec.Load()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg := engine.Config{Rules4: rs4, InIface: opts.InIface, LocalAddrs: opts.LocalAddrs}
	ref, err := engine.Compile(cfg, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	user, err := engine.Compile(cfg, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	sites, err := spec.ResumeSites(user)
	if err != nil {
		t.Fatal(err)
	}
	wr, wu := ref.NewWorker(), user.NewWorker()
	dec := packet.Decoder{}
	if opts.LocalMAC != nil {
		dec.HasLocalMAC = true
		copy(dec.LocalMAC[:], opts.LocalMAC)
	}
	var p packet.Packet
	out := make([]byte, 4096)
	bad, fallbacks := 0, 0
	bySite := map[string]int{}
	var prevFB uint64
	for i, fr := range frames {
		if len(fr) < packet.EthernetMinSize {
			continue
		}
		now := int64(i) * 1e6
		dec.Decode(fr, &p)
		v := wr.Process(&p, now)
		ro := &ebpf.RunOptions{Data: fr, DataOut: out}
		ret, err := f.Program.Run(ro)
		if err != nil {
			t.Fatal(err)
		}
		cur, err := f.ReadCounters()
		if err != nil {
			t.Fatal(err)
		}
		var got engine.Verdict
		if cur[StatFallback] != prevFB {
			prevFB = cur[StatFallback]
			fallbacks++
			site, ok := SiteFromMeta(ro.DataOut)
			if ret != xdpPass || !ok || len(ro.DataOut) != len(fr)+4 || site >= len(sites) {
				t.Fatalf("frame %d: fallback returned %d with %d bytes out", i, ret, len(ro.DataOut))
			}
			bySite[spec.Fallback[site].Reason]++
			dec.Decode(ro.DataOut[4:], &p)
			got = wu.ProcessFrom(&p, now, sites[site])
		} else {
			got = map[uint32]engine.Verdict{xdpPass: engine.Accept, xdpDrop: engine.Drop}[ret]
			if v == engine.Hotdrop || v == engine.Malformed {
				got = v // both drops; the statistics below tell them apart
			}
			if v == engine.NotFiltered && ret == xdpPass {
				got = v
			}
		}
		if got != v {
			if bad++; bad <= 10 {
				t.Errorf("frame %d: engine %v, program+resume %v\n% x", i, v, got, fr)
			}
		}
	}
	cur, err := f.ReadCounters()
	if err != nil {
		t.Fatal(err)
	}
	sum := user.Report(wu)
	AddReport(sum, spec.Report(cur, rs4, nil))
	compareReports(t, ref.Report(wr), sum)
	t.Logf("%d frames, %d fell back: %v", len(frames), fallbacks, bySite)
	return spec, fallbacks
}

// exampleFull is the whole built-in example with its sets.
func exampleFull(t testing.TB) *rules.Ruleset {
	t.Helper()
	rs, err := rules.Parse(bytes.NewReader(examples.Rules4), rules.Options{Family: packet.FamilyIPv4, File: "example", Sets: exampleSets(t)})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// TestResumeExample runs the FULL example (sets in XDP; string, bpf,
// limit, hashlimit and recent resumed in userspace) over its capture.
func TestResumeExample(t *testing.T) {
	testnet.RequireForTest(t)
	spec, n := diffResume(t, exampleFull(t), CompileOptions{InIface: "eth0"}, exampleFrames(t))
	if n == 0 {
		t.Fatal("nothing fell back")
	}
	t.Logf("full example: %d instructions, %d fallback sites", spec.Instructions(), len(spec.Fallback))
}

// TestResumeSynthetic resumes at the sites before INPUT (fragments, IP
// options) and at VLAN stacks, with jumps pending, on the synthetic
// frames, with a limit rule deep in a user chain making a site with a
// stack.
func TestResumeSynthetic(t *testing.T) {
	testnet.RequireForTest(t)
	text := strings.Replace(synthRules, "-A C -m pkttype --pkt-type broadcast -j DROP",
		"-A C -m limit --limit 100/sec --limit-burst 5 -j RETURN\n-A C -m pkttype --pkt-type broadcast -j DROP", 1)
	text = strings.Replace(text, "-A B -j RETURN", "-A B -m limit --limit 50/sec -j DROP\n-A B -j RETURN", 1)
	rs := parse4(t, text)
	_, n := diffResume(t, rs, CompileOptions{InIface: "eth0"}, synthFrames(20000, 3))
	if n == 0 {
		t.Fatal("nothing fell back")
	}
}

// TestResumeXSKRedirect compiles the full example with an XSKMAP: with
// no socket in the map, bpf_redirect_map falls back to XDP_PASS, and the
// frame still carries its site in the metadata (what an AF_XDP socket
// would receive in front of the frame), so resuming gives the engine's
// counters, as without the map.
func TestResumeXSKRedirect(t *testing.T) {
	testnet.RequireForTest(t)
	spec, n := diffResume(t, exampleFull(t), CompileOptions{InIface: "eth0", XSKQueues: 4}, exampleFrames(t)[:5000])
	if spec.XSKs == nil || n == 0 {
		t.Fatalf("XSKs %v, %d fell back", spec.XSKs, n)
	}
}
