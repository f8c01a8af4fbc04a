//go:build linux

package xdp

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/sluice-project/sluice/engine/ipset"
	"github.com/sluice-project/sluice/internal/testnet"
	"github.com/sluice-project/sluice/packet"
	"github.com/sluice-project/sluice/rules"
)

const synthSets = `create nets hash:net family inet
add nets 10.0.0.0/8
add nets 10.1.0.0/16 nomatch
add nets 10.1.2.0/24
add nets 192.168.1.0/25
add nets 192.168.1.7 nomatch
add nets 0.0.0.0/1 nomatch
create hosts hash:ip family inet
add hosts 10.0.0.1
add hosts 192.168.1.50
add hosts 203.0.113.9
create slash24 hash:ip family inet netmask 24
add slash24 10.9.0.0
add slash24 192.168.1.0
create ports bitmap:port range 0-65535
add ports 22
add ports 53
add ports 1000-2000
create six hash:net family inet6
add six 2001:db8::/32
create timed hash:ip family inet timeout 600
add timed 10.0.0.1
`

const synthSetRules = `*raw
:PREROUTING ACCEPT [0:0]
:S - [0:0]
-A PREROUTING -m set --match-set nets src
-A PREROUTING -m set --match-set nets dst --return-nomatch
-A PREROUTING -m set ! --match-set nets src
-A PREROUTING -m set ! --match-set nets dst --return-nomatch
-A PREROUTING -m set --match-set hosts src
-A PREROUTING -m set ! --match-set hosts dst
-A PREROUTING -m set --match-set slash24 src
-A PREROUTING -m set --match-set slash24 dst
-A PREROUTING -m set --match-set ports dst
-A PREROUTING -m set ! --match-set ports src
-A PREROUTING -p udp -m set --match-set ports src,dst
-A PREROUTING -m set --match-set six src
-A PREROUTING -m set ! --match-set six dst
-A PREROUTING -m set --match-set hosts src -m set --match-set ports dst -j S
-A PREROUTING -m set --match-set nets dst -j DROP
-A S -m set --match-set slash24 dst -j RETURN
-A S -m set ! --match-set nets src --return-nomatch -j ACCEPT
COMMIT
`

func parseSets(t *testing.T, text string) *ipset.Registry {
	t.Helper()
	reg, err := ipset.Parse("synth", strings.NewReader(text), 0)
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// TestCompileDiffSets checks hash:ip (with and without netmask), hash:net
// (nomatch, --return-nomatch, `!`, a /32 exception splitting a /24 block),
// bitmap:port and a set of the other family against the engine on the
// synthetic frames: compiled into comparisons (small sets), then with
// every set in a map.
func TestCompileDiffSets(t *testing.T) {
	testnet.RequireForTest(t)
	reg := parseSets(t, synthSets)
	rs, err := rules.Parse(strings.NewReader(synthSetRules), rules.Options{Family: packet.FamilyIPv4, File: "sets", Sets: reg})
	if err != nil {
		t.Fatal(err)
	}
	frames := synthFrames(20000, 2)
	opts := CompileOptions{InIface: "eth0", LocalAddrs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}}
	for _, tc := range []struct {
		name      string
		inlineMax int
		maps      int
	}{
		{"inline", inlineSetMax, 1}, // ports has 1003 elements
		{"maps", 0, 4},              // six is never tested on IPv4
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func(old int) { inlineSetMax = old }(inlineSetMax)
			inlineSetMax = tc.inlineMax
			spec := diff(t, rs, opts, frames, inputSites...)
			if len(spec.Sets) != tc.maps {
				t.Fatalf("%d set maps, want %d", len(spec.Sets), tc.maps)
			}
		})
	}
}

// TestCompileSetFallbacks checks that sets XDP cannot answer exactly
// stay fallback sites.
func TestCompileSetFallbacks(t *testing.T) {
	reg := parseSets(t, synthSets)
	text := "*raw\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -m set --match-set timed src\nCOMMIT\n"
	rs, err := rules.Parse(strings.NewReader(text), rules.Options{Family: packet.FamilyIPv4, File: "sets", Sets: reg})
	if err != nil {
		t.Fatal(err)
	}
	spec, err := Compile(rs, nil, CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(spec.Fallback); n != 2 || !strings.Contains(spec.Fallback[n-1].Reason, "timeouts") || spec.Rules[0].Mode != "fallback" {
		t.Fatalf("fallback sites %+v", spec.Fallback)
	}
}
