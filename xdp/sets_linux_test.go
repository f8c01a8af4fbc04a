//go:build linux

package xdp

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/sluice-project/sluice/engine"
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
	// The set's site is the only one (VLAN stacks have none since the
	// program parses any depth).
	if n := len(spec.Fallback); n != 1 || !strings.Contains(spec.Fallback[n-1].Reason, "timeouts") || spec.Rules[0].Mode != "fallback" {
		t.Fatalf("fallback sites %+v", spec.Fallback)
	}
}

// ipPortSetsForTest builds hash:ip,port sets over the synthetic frames'
// addresses: svc and svcdst (too large to inline: maps) and small
// (inlined), with TCP, UDP, SCTP, UDP-Lite, ICMP type/code and port-less
// protocols.
func ipPortSetsForTest() string {
	var b strings.Builder
	elems := []string{"tcp:22", "tcp:80", "tcp:443", "udp:53", "udp:123", "udp:0", "sctp:80", "sctp:443",
		"udplite:443", "udplite:80", "icmp:8/0", "icmp:0/0", "icmp:3/1", "icmp:11/0", "gre:0", "esp:0", "33:0", "2:0"}
	b.WriteString("create svc hash:ip,port family inet\n")
	for _, ip := range []string{"10.0.0.1", "10.9.0.7", "8.8.8.8", "192.0.2.1"} {
		for _, e := range elems {
			fmt.Fprintf(&b, "add svc %s,%s\n", ip, e)
		}
	}
	b.WriteString("create svcdst hash:ip,port family inet\n")
	for _, ip := range []string{"192.168.1.7", "192.168.1.50", "10.0.0.1"} {
		for _, e := range elems {
			fmt.Fprintf(&b, "add svcdst %s,%s\n", ip, e)
		}
	}
	b.WriteString("create small hash:ip,port family inet\nadd small 10.1.2.3,tcp:8080\nadd small 203.0.113.9,udp:53\nadd small 10.0.0.250,icmp:8/0\n")
	return b.String()
}

const ipPortRules = `*raw
:PREROUTING ACCEPT [0:0]
-A PREROUTING -m set --match-set svc src,dst
-A PREROUTING -m set --match-set svc src,src
-A PREROUTING -m set ! --match-set svcdst dst,dst
-A PREROUTING -m set --match-set svcdst dst,src
-A PREROUTING -m set --match-set small src,dst
-A PREROUTING -m set --match-set svc src
-A PREROUTING -m set --match-set small src,dst -j DROP
-A PREROUTING -m set --match-set svc src,dst -j ACCEPT
COMMIT
`

// TestCompileDiffIPPort checks hash:ip,port (a map, and inlined) against
// the engine: ip_set_get_ip4_port's protocols and minimum header
// lengths, ICMP type/code, port-less protocols, fragments, both
// directions, `!`, and a rule with too few directions.
func TestCompileDiffIPPort(t *testing.T) {
	testnet.RequireForTest(t)
	reg := parseSets(t, ipPortSetsForTest())
	rs, err := rules.Parse(strings.NewReader(ipPortRules), rules.Options{Family: packet.FamilyIPv4, File: "ipport", Sets: reg})
	if err != nil {
		t.Fatal(err)
	}
	frames := synthFrames(20000, 5)
	for _, proto := range []uint8{132, 136, 33, 47} {
		for _, n := range []int{3, 4, 7, 8, 11, 12, 19, 20} {
			l4 := make([]byte, n)
			copy(l4, []byte{0, 80, 1, 187})
			for _, src := range []string{"10.0.0.1", "10.9.0.7"} {
				frames = append(frames, packet.BuildIPv4(netip.MustParseAddr(src), netip.MustParseAddr("192.168.1.7"), proto, l4))
			}
		}
	}
	spec := diff(t, rs, CompileOptions{InIface: "eth0", LocalAddrs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}}, frames, inputSites...)
	if len(spec.Sets) != 2 {
		t.Fatalf("%d set maps, want 2 (small is inlined)", len(spec.Sets))
	}
	for _, ri := range spec.Rules {
		if ri.Mode != "xdp" {
			t.Errorf("line %d: %s (%s)", ri.Rule.Line, ri.Mode, ri.Reason)
		}
	}
	// The test means something only if the matches hit: count them with
	// the engine (diff proved the program's counters equal).
	pr, err := engine.Compile(engine.Config{Rules4: rs, InIface: "eth0"}, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	w := pr.NewWorker()
	var p packet.Packet
	for i, fr := range frames {
		(&packet.Decoder{}).Decode(fr, &p)
		w.Process(&p, int64(i))
	}
	for _, r := range pr.Report(w).Tables[0].Chains[0].Rules {
		t.Logf("line %d: %d packets: %s", r.Line, r.Packets, r.Text)
		if r.Packets == 0 && !strings.HasSuffix(r.Text, "svc src") { // too few directions: never tested
			t.Errorf("line %d never matched: %s", r.Line, r.Text)
		}
	}
}
