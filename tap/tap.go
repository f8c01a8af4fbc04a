// Package tap creates the TAP device through which sluice re-injects the
// frames it accepts into the kernel's receive path.
//
// # Re-injection
//
// A frame written to the TAP enters netif_rx as if it had arrived on the
// TAP: eth_type_trans, ip_rcv/ipv6_rcv, PREROUTING, routing, INPUT, the
// socket. So the kernel's own iptables, conntrack and TCP stack see
// every accepted packet, with one difference: the input interface is the
// TAP (sluice0), not the interface the packet came in on. What that takes:
//
//   - The TAP carries the filtered interface's MAC address. eth_type_trans
//     compares the destination MAC with the receiving device's address; any
//     other address would make unicast frames PACKET_OTHERHOST, which
//     ip_rcv and ipv6_rcv discard. Two devices sharing a MAC is harmless
//     here: the TAP never transmits (it has no address and no route, and
//     ARP is off on it, IFF_NOARP).
//   - The TAP needs no IP address. Linux is a weak-host stack: the local
//     routing table holds every local address for every input device, so a
//     packet to the filtered interface's address arriving on the TAP is
//     delivered locally. Replies are routed by destination as always and
//     leave through the original interface (the neighbour entry is learnt
//     there too, because ARP and IPv6 neighbour discovery never go through
//     sluice: the XDP program passes them to the original interface).
//   - net.ipv4.conf.<tap>.rp_filter: reverse-path filtering checks that
//     the route back to the source leaves through the input device; for
//     re-injected packets it never does (it leaves through the original
//     interface), so strict mode (1) drops everything. The kernel uses
//     max(conf.all, conf.<tap>), so sluice writes 0 when conf.all is 0 and
//     2 (loose: the source must be routable through some interface) when
//     conf.all is 1 or 2. Loose mode still drops sources with no route at
//     all, like strict mode would on the original interface.
//   - net.ipv4.conf.<tap>.accept_local and .forwarding are copied from the
//     original interface, so local-source and forwarding decisions stay
//     those of the original interface.
//   - IPv6 stays enabled on the TAP (ipv6_rcv drops every packet on a
//     device with disable_ipv6=1), but with addr_gen_mode=1 (no link-local
//     address), accept_ra=0, autoconf=0, dad_transmits=0 and
//     router_solicitations=0, so it sends nothing and learns nothing.
//
// Limits of re-injection, which the operator must know:
//   - iptables rules naming the original interface with -i no longer match
//     re-injected packets: write them for the TAP (or without -i).
//   - Link-local destinations (fe80::/10, 169.254/16 in strict setups) and
//     multicast groups are scoped to the interface that joined them; such
//     packets re-injected on the TAP are not delivered. The XDP program
//     passes neighbour discovery; other link-scoped traffic (DHCPv6, mDNS,
//     OSPF...) should be kept off the redirected queues or passed too.
//   - Packet sockets (tcpdump, DHCP clients) on the original interface do
//     not see redirected frames: XDP runs before them. They see them on the
//     TAP instead.
//
// The TAP is not persistent: the kernel deletes it when its last file
// descriptor closes, so it disappears with the process however that ends.
package tap

// DefaultName is the TAP device's default name.
const DefaultName = "sluice0"
