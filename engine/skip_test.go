package engine_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/sluice-project/sluice/engine"
	"github.com/sluice-project/sluice/internal/benchmix"
	"github.com/sluice-project/sluice/packet"
)

// portRules exercises the skip tables' port classes: ranges, single
// ports, inverted ports, multiport in each direction and inverted, tcp
// flags with ports, rules whose later matches test ports, and rules with
// no port test between them.
const portRules = `*raw
:PREROUTING ACCEPT [0:0]
:T - [0:0]
:U - [0:0]
-A PREROUTING -p tcp -j T
-A PREROUTING -p udp -j U
-A PREROUTING -p udp -m multiport --ports 0:19,8080 -j DROP
-A PREROUTING -p tcp -m multiport ! --dports 1:1023 -m length --length 0:100
-A T -p tcp -m tcp --sport 1024:65535 --dport 22 --tcp-flags SYN,ACK SYN
-A T -p tcp -m tcp ! --dport 80:443 -m tcp --sport 53
-A T -p tcp -m tcp --dport 443 ! --sport 0:1023 -j ACCEPT
-A T -p tcp -m multiport --sports 22,80,443 -m multiport --dports 1024:65535 -j ACCEPT
-A T -p tcp -m tcp --tcp-flags FIN,SYN,RST,PSH,ACK,URG NONE -j DROP
-A T -p tcp -m tcp --dport 65535 -j DROP
-A T -p tcp -m tcp --tcp-option 2 --dport 8080
-A T -m ttl --ttl-lt 64 -j RETURN
-A T -p tcp -m tcp --dport 22 -j ACCEPT
-A U -p udp -m udp --sport 53 --dport 1024:65535 -j ACCEPT
-A U -p udp -m udp ! --sport 123 --dport 123
-A U -p udp -m multiport --dports 53,123,27015 -j ACCEPT
-A U -p udp -m multiport ! --sports 19,1900:1910 -m length --length 0:200 -j DROP
-A U -p udp -m udp --dport 0 -j DROP
-A U -p udp -m udp --sport 65535 --dport 65535 -j DROP
-A U -j DROP
COMMIT
`

// TestSkipPortClassesExact: with port classes, every packet of random
// traffic gets the verdict, deciding rule and counters it gets without
// skip tables. With over 255 port bounds the tables keep flag classes
// only, and a class settles the first matches that test flags alone.
func TestSkipPortClassesExact(t *testing.T) {
	var many strings.Builder
	for port := 30000; port < 30300; port++ {
		fmt.Fprintf(&many, "-A U -p udp -m udp --dport %d -j ACCEPT\n-A T -p tcp -m tcp --dport %d -j ACCEPT\n", port, port)
	}
	flagsOnly := strings.Replace(portRules, "-A U -j DROP\n", many.String()+"-A U -j DROP\n", 1)
	for _, tc := range []struct {
		name, rules string
		minHit      int
	}{
		{"port classes", portRules, 15},
		{"flag classes only", flagsOnly, 15},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pkts := benchmix.Decode(packet.LinkEthernet, randomTraffic(3, 30000))
			fast := compileFiles(t, "ports.rules", []byte(tc.rules), "none", nil, 0)
			slow := compileFiles(t, "ports.rules", []byte(tc.rules), "none", nil, 0)
			engine.DisableSkip(slow)
			hit := rulesHitForTest(checkSameAsSlowForTest(t, fast, slow, pkts, 0, 1000))
			if hit < tc.minHit {
				t.Errorf("only %d rules matched anything", hit)
			}
		})
	}
}
