// Package difftest is sluice's differential test suite against the real
// kernel: seeded generators of iptables-save rulesets, ipset sets and
// hostile Ethernet frames, and a harness that runs the same frames through
// the kernel oracle (package oracle, which needs root) and through the
// engine, configured exactly as `sluice verify` configures it, and
// compares every rule and policy counter with report.Compare.
//
// The generators are deterministic functions of a seed, so a failing seed
// is a complete reproduction: `go test ./internal/difftest -run
// TestDifferential -seed N` reruns it, and a mismatch also writes a pcap,
// the rules and the sets where `sluice verify` can replay them.
//
// Rate matches (limit, hashlimit, recent) are generated with slow rates
// (per hour or per day) and long windows, so that their outcome depends on
// the order of packets and not on the wall clock: the engine sees the
// frames' timestamps, the kernel its own jiffies.
//
// The hand-written cases in testdata/quirks pin kernel behaviours that a
// random search is unlikely to hit; see testdata/quirks/README.md.
package difftest
