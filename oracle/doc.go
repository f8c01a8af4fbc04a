// Package oracle runs the Linux kernel as the reference implementation of
// iptables: it loads an operator's iptables-save and ipset text into a
// private network namespace, sends frames into it and reads back the
// per-rule counters with iptables-save -c. sluice's engine is correct when
// its counters equal these, frame for frame; anything the engine models
// (defragmentation, martian filtering, VLAN and MAC handling) is checked
// against what this package observes, not against what we believe the
// kernel does.
//
// # Setup
//
// Run builds a testnet.Pair: namespace A holds a silent transmitter (no
// addresses, IPv6 disabled, so it emits nothing on its own), namespace B
// is the "host" with 192.0.2.1/24 and 2001:db8::1/64, rp_filter=0,
// accept_ra=0, DAD off, and AnyIP routes (local 0.0.0.0/0 and local ::/0)
// in a policy table used for packets arriving on B's veth, so every
// destination is local and a packet that survives routing reaches INPUT.
// B's own replies (RSTs, ICMP errors) find no route and are never sent, so
// nothing re-enters PREROUTING through lo. Sets are restored first, then
// rules, counters are zeroed, and frames are written by an AF_PACKET
// socket in A onto the veth. Sending is done from one thread pinned to one
// CPU, followed by a marker frame B receives on a packet socket: frames on
// one CPU's backlog are processed in order, each through IP and netfilter,
// so when the marker arrives every counter is final. The veth counters
// then prove that B received every frame (testnet.CheckDelivered); a lost
// frame fails the run instead of skewing it. Frames go through the veth
// synchronously in the sender's softirq: 20000 back-to-back frames (about
// 400k frames/s) were delivered without a single backlog drop, so no
// pacing is needed for correctness; a frame refused with ENOBUFS would be
// resent, since it was dropped before any hook.
//
// Report.Packets is the number of frames sent; Accepted, Dropped and the
// other totals are left zero because counters cannot tell them apart.
// OUTPUT and POSTROUTING counters are reported as read; sluice filters
// ingress only.
//
// # Kernel facts
//
// Each fact below is checked by a test in oracle_linux_test.go on every CI
// run (kernel 6.18, legacy x_tables, at the time of writing). Evidence is
// the counters of a match-everything rule placed first in raw PREROUTING
// ("raw") and in filter INPUT ("input").
//
// 1. Fragments (TestFactFragments; a UDP datagram of 108 bytes sent as two
// fragments of 64 and 44 payload bytes):
//
//	ruleset                                raw  input
//	IPv4, raw/filter rules only              2      1
//	IPv4, + raw -j CT --notrack              2      1
//	IPv4, + raw -j CT --zone 1               1      1
//	IPv4, + filter -m conntrack --ctstate    1      1
//	IPv6, raw/filter rules only              2      2
//	IPv6, + raw -j CT --notrack              2      2
//	IPv6, + raw -j CT --zone 1               1      1
//	IPv6, + filter -m conntrack --ctstate    1      1
//
// Without conntrack, raw PREROUTING sees every fragment. IPv4 then
// reassembles in ip_local_deliver, before LOCAL_IN, so INPUT sees one
// datagram; IPv6 reassembles in the fragment-header protocol handler,
// after LOCAL_IN, so INPUT sees each fragment. Any rule that takes a
// conntrack reference (nf_ct_netns_get: -m conntrack, -m state, -j CT
// with a zone/helper/timeout, NAT) registers nf_defrag at priority -400,
// before raw (-300), in that namespace, and then every table sees only
// the reassembled datagram. -j CT --notrack does not: xt_ct_tg_check
// returns before nf_ct_netns_get when XT_CT_NOTRACK is set
// (net/netfilter/xt_CT.c), so a ruleset whose only conntrack-looking rule
// is --notrack still sees fragments one by one.
//
// 2. Addresses (TestFactMartians; unicast frames to B's MAC). Every IPv4
// packet reaches raw PREROUTING: ip_rcv checks no addresses. These then
// never reach INPUT (dropped by ip_route_input as martians): source
// 0.0.0.0 (unless the destination is 255.255.255.255 or 0.0.0.0), source
// 127.0.0.1, source multicast 224.0.0.5, source 255.255.255.255, source
// equal to one of B's own addresses (towards 224.0.0.1 too: the multicast
// path validates every non-zero source), destination 127.0.0.1,
// destination 0.0.0.0 from any other source, and a multicast destination
// B has not joined (239.1.2.3). These do reach INPUT: source 0.1.2.3
// (0.0.0.0/8 other than 0.0.0.0 is valid unicast on current kernels),
// source or destination 240.0.0.1 (class E), destination 255.255.255.255,
// the subnet broadcast 192.0.2.255, 224.0.0.1 (all-hosts, always joined,
// from 0.0.0.0 too), and 0.0.0.0 -> 0.0.0.0 (ip_route_input_slow sends it
// to brd_input with the limited broadcast). The last two were found by the
// random differential suite (seeds 27, 36, 42, 44, 48, 59 of 80).
//
// IPv6 checks addresses in ip6_rcv_core, before PREROUTING. Never reaching
// raw PREROUTING: source ::1, destination ::1, source multicast ff02::1,
// destination interface-local multicast ff01::1, destination multicast
// scope 0 (ff00::1). Reaching PREROUTING but not INPUT: a multicast group
// B has not joined (ff05::1:3). Reaching INPUT: source :: and source
// fe80::1, source ::ffff:198.51.100.7 (v4-mapped is not filtered), and
// destination ff02::1 (all-nodes). Destination :: reaches INPUT here only
// because the AnyIP route makes it local; a host without such a route
// drops it in routing.
//
// A subtlety found on the way: the kernel adds an interface's link-local
// address and the local table's "multicast ff00::/8" route only after
// linkwatch reports the link operationally up, up to a second after `ip
// link set up`; before that, ff02::1 finds no route and is dropped after
// PREROUTING. testnet.NewPair waits for that route.
//
// 3. VLAN tags on B's veth with no VLAN device (TestFactLinkLayer), for
// IPv4 and IPv6 alike: a VID 100 tag never reaches PREROUTING (the core
// receive path, finding no VLAN device for a non-zero VID, marks the frame
// PACKET_OTHERHOST and ip_rcv/ipv6_rcv drop it); a VID 0 priority tag,
// with or without PCP bits, is stripped and the packet reaches PREROUTING
// and INPUT as if untagged; a VID 0 tag followed by a VID 100 tag is
// treated as VID 100 and never reaches PREROUTING.
//
// 4. Destination MAC (TestFactLinkLayer): a frame to another unicast MAC
// (PACKET_OTHERHOST) never reaches PREROUTING; frames to the broadcast MAC
// and to a multicast MAC (01:00:5e:00:00:01) carrying a unicast IP
// destination reach PREROUTING and INPUT (drop_unicast_in_l2_multicast is
// 0 by default).
package oracle
