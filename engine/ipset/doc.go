// Package ipset holds an operator's ipset sets and answers iptables'
// `-m set --match-set NAME DIRS` the way the kernel does.
//
// Operators protect hosts with sets they already maintain with `ipset
// restore`; sluice must reach the same verdict on every packet, or the
// per-rule counters it reports stop agreeing with iptables' own. So the
// matching here is a transcription of the kernel's behaviour, quirks
// included, not of the ipset(8) prose:
//
//   - net/netfilter/xt_set.c: inversion is applied to ip_set_test's result,
//     so a family or dimension mismatch (which tests false) matches under `!`.
//   - net/netfilter/ipset/ip_set_core.c (ip_set_test,
//     ip_set_match_extensions): the family and dimension checks,
//     --return-nomatch turning a plain hit into a miss and a nomatch hit into
//     a hit, timeouts, counter update before the --packets/--bytes compare.
//   - net/netfilter/ipset/ip_set_hash_gen.h (mtype_test, mtype_test_cidrs):
//     a net type tests every present prefix length from most to least
//     specific; the first entry found that passes its extensions decides,
//     so an expired or counter-failing /24 falls through to a /16, and a
//     nomatch /24 hides a /16.
//   - net/netfilter/ipset/ip_set_getport.c: how proto and port come out of
//     a packet (non-first IPv4 fragments fail, IPv6 non-first fragments
//     are protocol 44 port 0, ICMP type/code is the port, truncated
//     transport headers fail).
//   - ip_set_hash_ip.c, ip_set_hash_net.c, ip_set_hash_ipport.c,
//     ip_set_hash_netport.c, ip_set_hash_ipportip.c, ip_set_bitmap_ip.c,
//     ip_set_bitmap_port.c, ip_set_list_set.c: each type's kadt/uadt.
//
// hash:net keeps that walk (netParent chains each element to the next
// shorter present prefix containing it) but takes it only when an entry
// could fail its extensions: with no --packets/--bytes compare and no
// element expired yet, the first entry tried always decides, so Match is
// one longest-prefix-match lookup returning the element index and its
// nomatch flag (counters sets still bump the element's counters). IPv4
// sets use lpm4, a DIR-24-8 (DIR-16-8-8, DIR-8-8-8-8 for smaller sets)
// with popcount-compressed lower levels; IPv6 sets use bart. A rule's
// match is prepared once as a Matcher, and GroupMatchers lets the IPv4
// hash:net sets a ruleset tests on the same address (an allow list, a
// blocklist, bogons) share one lookup per packet in a table over the union
// of their prefixes (group.go).
//
// The text format is `ipset save`'s, read as ipset(8)'s restore reads it,
// and written back byte-for-byte as `ipset save` prints it, so a set file
// round-trips and can be loaded into a kernel to verify sluice against it.
package ipset
