package engine_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/sluice-project/sluice/engine"
	"github.com/sluice-project/sluice/internal/benchmix"
	"github.com/sluice-project/sluice/packet"
)

// prefilterRules puts the prefilter's tests in every position it takes
// them from and many it must not: after set tests (inverted, with
// --return-nomatch, in a set whose elements time out during the run),
// after transport matches (packets with truncated transport headers and
// fragments must not have those bits), after a tcp option test or a
// stateful match (no bit), in a user chain, and address tests: -s and -d
// prefixes (inverted, and one with a non-contiguous mask, which takes no
// part) and iprange, and port filters: hash:ip,port (an inverted test
// gives none) and bitmap:port, exact without timeouts (inverted too), a
// superset with an element that expires.
const prefilterRules = `*raw
:PREROUTING ACCEPT [0:0]
:CHK - [0:0]
-A PREROUTING -m set --match-set allow src -j ACCEPT
-A PREROUTING -p tcp -m tcp ! --dport 22 -m set ! --match-set deny src -j DROP
-A PREROUTING -m set ! --match-set deny src -m ttl --ttl-gt 3 -j CHK
-A PREROUTING -m set --match-set deny src --return-nomatch -j DROP
-A PREROUTING -m ttl --ttl-eq 64 -m pkttype --pkt-type broadcast -j DROP
-A PREROUTING -m pkttype ! --pkt-type unicast -m length ! --length 100:200 -j DROP
-A PREROUTING -p tcp -m tcp --syn -m length --length 0:60 -j DROP
-A PREROUTING -p tcp -m tcp --dport 80 -m ttl --ttl-lt 30 -j DROP
-A PREROUTING -p tcp -m tcp --tcp-option 2 -m length --length 44 -j DROP
-A PREROUTING -p udp -m udp --sport 53 -m length --length 512:65535 -j DROP
-A PREROUTING -p udp -m multiport --dports 53,123 -m ttl --ttl-eq 1 -j DROP
-A PREROUTING -p icmp -m icmp --icmp-type 8 -m length --length 1000:65535 -j DROP
-A PREROUTING -m iprange --src-range 198.18.0.0-198.19.255.255 -m ttl ! --ttl-eq 5 -m set --match-set tmo src -j DROP
-A PREROUTING -m hashlimit --hashlimit-upto 1/hour --hashlimit-mode srcip --hashlimit-name h -m ttl --ttl-lt 10 -j ACCEPT
-A PREROUTING -m length --length 0:40 -j DROP
-A PREROUTING -f -m ttl --ttl-gt 200 -j DROP
-A PREROUTING -s 198.18.0.0/15 -m ttl --ttl-lt 100 -j DROP
-A PREROUTING ! -s 0.0.0.0/1 -d 198.51.100.10/32 -m length --length 1300:65535 -j DROP
-A PREROUTING -s 10.0.0.0/255.0.255.0 -j DROP
-A PREROUTING -m iprange ! --dst-range 198.51.100.0-198.51.100.9 -m pkttype --pkt-type multicast -j DROP
-A PREROUTING -s 127.0.0.0/8 -j DROP
-A PREROUTING -m set --match-set ipp src,dst -j DROP
-A PREROUTING -m set --match-set ipp src,src -m ttl --ttl-gt 10 -j DROP
-A PREROUTING -m set ! --match-set ipp src,dst -m length --length 0:50 -j DROP
-A PREROUTING -p tcp -m tcp --syn -m set ! --match-set svc dst -j DROP
-A PREROUTING -m set --match-set svc src -m ttl --ttl-lt 50 -j DROP
-A PREROUTING -m set ! --match-set svct dst -m length --length 0:80 -j DROP
-A PREROUTING -m set --match-set svct dst -m pkttype --pkt-type broadcast -j DROP
-A PREROUTING -j CHK
-A CHK -m set --match-set tmo src -m ttl --ttl-lt 128 -j RETURN
-A CHK -m set ! --match-set allow src -m length --length 300:700 -j DROP
-A CHK -m set ! --match-set tmo src -m ttl --ttl-gt 100 -j DROP
COMMIT
`

const prefilterSets = `create allow hash:net family inet
add allow 198.51.100.0/24
add allow 198.51.100.2 nomatch
create deny hash:net family inet
add deny 0.0.0.0/1
add deny 10.0.0.0/8 nomatch
add deny 127.0.0.0/8
create tmo hash:net family inet timeout 5
add tmo 198.18.0.0/15 timeout 1
add tmo 0.0.0.0/2 timeout 5
add tmo 10.0.0.0/8 timeout 1 nomatch
add tmo 203.0.113.0/24 timeout 0
create ipp hash:ip,port family inet
add ipp 198.18.0.1,tcp:80
add ipp 203.0.113.66,udp:53
add ipp 127.0.0.1,tcp:22
add ipp 10.0.0.1,udp:0
create svc bitmap:port range 0-1024
add svc 22
add svc 53
add svc 80
create svct bitmap:port range 0-65535 timeout 5
add svct 443 timeout 1
add svct 80
`

// TestPrefilterExact: the prefilter (with the skip tables) changes no
// verdict and no counter on random traffic, over 4 s of packet time in
// which the set group's timeouts expire. With 31 rules, a rule's bit is
// its position; with 40 more in front (bits for the first 63 rules with
// tests, none for the last 8), the bits map to positions.
func TestPrefilterExact(t *testing.T) {
	var pad strings.Builder
	for n := 1; n <= 40; n++ {
		fmt.Fprintf(&pad, "-A PREROUTING -p udp -m udp --dport 6000 -m ttl --ttl-eq %d -j DROP\n", n)
	}
	many := strings.Replace(prefilterRules, ":CHK - [0:0]\n", ":CHK - [0:0]\n"+pad.String(), 1)
	for _, tc := range []struct {
		name       string
		rules      string
		bits, cond int
	}{
		{"direct", prefilterRules, 28, 7},
		{"mapped", many, 63, 40 + 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fast := compileFiles(t, "prefilter.rules", []byte(tc.rules), "prefilter.ipset", []byte(prefilterSets), 0)
			slow := compileFiles(t, "prefilter.rules", []byte(tc.rules), "prefilter.ipset", []byte(prefilterSets), 0)
			engine.DisableSkip(slow)
			if n, cond := engine.PrefilterRules(fast); n != tc.bits || cond != tc.cond {
				t.Errorf("%d rules with a prefilter bit, %d of them conditional; want %d and %d", n, cond, tc.bits, tc.cond)
			}
			// 100 µs apart: 4 s in all.
			rep := checkSameAsSlowForTest(t, fast, slow, benchmix.Decode(packet.LinkEthernet, randomTraffic(7, 40000)), 0, 100_000)
			if hit := rulesHitForTest(rep); hit < 15 {
				t.Errorf("only %d rules matched anything: the traffic does not exercise the ruleset", hit)
			}
		})
	}
}
