// Package xdp holds sluice's eBPF XDP programs, generated in Go with
// cilium/ebpf's asm package: no clang, no C, no object files to ship.
//
// Two programs live here:
//
//   - The redirect program (redirect.go) steers the frames sluice filters
//     into the AF_XDP sockets of the receive queues sluice serves and
//     passes everything else (ARP, LLDP, VLAN-tagged frames, IPv6
//     neighbour discovery) to the kernel untouched.
//
//   - The compiled filter (compile*.go): Compile turns an iptables
//     ruleset into one XDP program with the kernel's semantics, per-rule
//     counters included. It parses Ethernet, VLAN tags and the IPv4
//     header exactly as packet.Decoder does (checksum, IHL and total
//     length checks count as malformed and drop), or the IPv6 header
//     (version, the address checks of ip6_rcv_core, payload length, the
//     hop-by-hop options as ip6_parse_tlv validates them, jumbo payload
//     included, in a bpf_loop callback: hopopts.go) and its
//     extension-header chain as ipv6_find_hdr walks it (hop-by-hop,
//     routing, fragment, destination options, AH, NEXTHDR_NONE,
//     non-first fragments; a bpf_loop callback per header, no limit on
//     their number; a chain that cannot be walked hotdrops at the first
//     rule with -p), then runs raw
//     PREROUTING, mangle PREROUTING, the routing decision of
//     engine/input.go, mangle INPUT and filter INPUT as straight-line code:
//     every rule is a block of compares carrying the rule's text as a
//     comment, user chains are inlined at each call site (-j returns to
//     the next rule, -g to the caller's return point, RETURN in a built-in
//     chain or off the end of a chain reached by -g applies the policy, as
//     ipt_do_table's underflow does). Counters live in a per-CPU array
//     (4096 to an element, up to 8 elements), numbered like
//     engine/program.go's slots, so Spec.Report gives the report the
//     engine gives for the same packets.
//
// Large rulesets need no tail calls: the program is straight-line code,
// and every slot load unlinks the register from its stack slot (ld), so
// the paths reaching a rule carry the same facts and the verifier prunes
// them. A flat ruleset of 2,300 rules (52k instructions) verifies in a
// few seconds (TestCompileThousandsOfRules); the limit is the counter
// map's 32,768 counters, about 16,000 rules.
//
// -m string runs in the program (strmatch.go): a bpf_loop callback per
// rule searches the window skb_find_text searches, [from, min(to, L3
// length)), with the pattern wholly inside it, --icase through the
// kernel's Latin-1 toupper, both algorithms (they find the leftmost
// occurrence); ts_bm with --icase and a pattern whose skip table can jump
// over an occurrence (0xDF/0xFF) stays a fallback site.
//
// -m bpf runs in the program (cbpf.go): the classic program translated to
// eBPF, reading the datagram directly where the verifier can bound the
// access, and with bpf_xdp_load_bytes (Linux 5.18) where it cannot (a
// network header behind a deep VLAN stack, large offsets). The parsing has
// checked that the datagram lies in the frame, so it always completes
// there: it is never a fallback site.
//
// What the program cannot evaluate (sets with timeouts or counters and
// the set types not compiled, that string quirk, limit, hashlimit, recent, tcp
// --tcp-option, sets in IPv6 rulesets, and IPv4 fragments reaching INPUT,
// which the kernel reassembles first) is a fallback site; VLAN tag stacks
// of any depth are parsed in the program (vlan.go). The program writes the site's
// index into the XDP metadata area and, compiled with XSKQueues, redirects
// the frame through its XSKMAP to the AF_XDP socket of its RX queue, where
// the engine resumes the traversal at the site (Spec.Fallback says where,
// with the jump return points pending; engine.Worker.ProcessFrom). Without
// XSKQueues, or when the frame has no room for metadata, it returns
// XDP_PASS. Nothing is approximated: `sluice run --mode xdp` refuses a
// ruleset with fallback sites.
//
// limit and hashlimit (IPv4 tables, rev 3) can also run in the program,
// with the kernel's arithmetic, spin-locked buckets in BPF maps and the
// engine's GC schedule (CompileOptions.RateLimits = RateLimitsXDP; see
// ratelimit.go). The XDP tier running alone (sluice run --mode xdp, and
// auto when nothing else needs userspace) compiles them so: no frame is
// ever resumed in userspace, so the maps are their only state. In the
// combined tier (RateLimitsAuto) a limit rule or hashlimit table runs in
// the program only when no fallback site reaches it (reach.go), so that
// userspace, resuming frames, never evaluates it: a rule's state lives in
// one tier. The others stay fallback sites, their reason naming the site
// that reaches them. A reload that replaces the program carries unchanged tables
// and buckets over (LoadCarrying); one that changes only set contents
// updates the set maps in place (sets_update.go).
//
// The differential tests (compile_linux_test.go) run the built-in
// example's capture and synthetic frames through the loaded program with
// BPF_PROG_TEST_RUN and through engine.Worker, and require the same
// action, statistic and counter changes for every frame.
package xdp
