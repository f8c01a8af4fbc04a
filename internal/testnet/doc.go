// Package testnet builds private network namespaces for tests and for the
// kernel oracle, so that real packets can be pushed through the real Linux
// receive path and netfilter without any risk to the machine running them.
//
// Why namespaces and not the host: the oracle must load an operator's whole
// ruleset (which may DROP everything) and send arbitrary, even hostile,
// frames. Inside a namespace pair joined by a veth the rules, sets, routes
// and sysctls are private, nothing leaves, and deleting the namespaces
// removes every trace. The root namespace is never touched: links are
// created directly inside our namespaces (`ip -n A link add ... peer ...
// netns B`) and every iptables or ipset command runs under `ip netns exec`.
//
// Every name carries the prefix sluice-<pid>-<n>, so SweepStale can remove
// what a crashed or killed test left behind, without touching namespaces
// of a process that is still running.
package testnet
