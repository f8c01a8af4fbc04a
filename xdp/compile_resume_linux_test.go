//go:build linux

package xdp

import (
	"bytes"
	"strings"
	"testing"

	"github.com/sluice-project/sluice/examples"
	"github.com/sluice-project/sluice/internal/testnet"
	"github.com/sluice-project/sluice/packet"
	"github.com/sluice-project/sluice/rules"
)

// diffResume is diffBoth for an IPv4 ruleset with fallback sites of any
// kind. It returns the number of frames that fell back.
func diffResume(t *testing.T, rs4 *rules.Ruleset, opts CompileOptions, frames [][]byte) (*Spec, int) {
	t.Helper()
	spec, bySite := diffBoth(t, rs4, nil, opts, frames, anySite)
	n := 0
	for _, c := range bySite {
		n += c
	}
	return spec, n
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
