// Package xdp holds the eBPF programs sluice attaches to an interface,
// generated in Go with cilium/ebpf's asm package: no clang, no C, no
// object files to ship.
//
// The redirect program steers the frames sluice filters (IPv4 and IPv6)
// into the AF_XDP sockets of the receive queues sluice serves, and passes
// everything else to the kernel untouched: ARP, LLDP, VLAN-tagged frames
// and every other non-IP ethertype, plus IPv6 neighbour discovery. Those
// must arrive on the real interface: the neighbour cache, ARP replies and
// router discovery are per interface, and a frame re-injected through
// sluice's TAP device would teach the kernel that the neighbour lives
// behind the TAP.
package xdp

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

// XDP actions (enum xdp_action).
const (
	ActionAborted  = 0
	ActionDrop     = 1
	ActionPass     = 2
	ActionTX       = 3
	ActionRedirect = 4
)

// Offsets in struct xdp_md, the program's context.
const (
	redirMdData         = 0
	redirMdDataEnd      = 4
	redirMdRxQueueIndex = 16
)

// Frame offsets and values the program tests.
const (
	redirEthHdrLen      = 14
	redirEthTypeOff     = 12
	redirIpv6NextHdrOff = redirEthHdrLen + 6  // ip6_hdr.nexthdr
	redirIcmp6TypeOff   = redirEthHdrLen + 40 // first byte after a bare IPv6 header
	redirProtoICMPv6    = 58
	redirNdFirstType    = 133 // router solicitation
	redirNdLastType     = 137 // redirect
)

// RedirectOptions configures the generated program.
type RedirectOptions struct {
	// Queues is the XSKMAP's size: the highest receive queue index served
	// plus one. Frames on queues at or beyond it are passed.
	Queues int
	// Fallback is the action for a redirectable frame on a queue with no
	// socket in the map (the low bits of bpf_redirect_map's flags). The
	// daemon uses ActionPass, so that queues sluice does not serve, and
	// every queue while sockets are being set up, behave as without
	// sluice. Tests use ActionDrop to see which frames the program tried
	// to redirect.
	Fallback uint32
}

// RedirectInstructions returns the program, commented. The map reference
// is the symbol "xsks", bound by NewRedirect.
func RedirectInstructions(fallback uint32) asm.Instructions {
	// Ethertypes as the program reads them: a 16-bit load on a
	// little-endian machine sees the bytes swapped. BPF runs in the
	// host's byte order, and every Linux machine with AF_XDP zero-copy
	// drivers that sluice targets is little-endian; a big-endian host
	// would need the unswapped values.
	const (
		ethIPv4 = 0x0008 // htons(ETH_P_IP)
		ethIPv6 = 0xdd86 // htons(ETH_P_IPV6)
	)
	return asm.Instructions{
		// r6 = ctx; r2 = ctx->data; r3 = ctx->data_end.
		asm.Mov.Reg(asm.R6, asm.R1).WithSymbol("sluice_redirect").
			WithSource(asm.Comment("r6 = ctx, kept for rx_queue_index")),
		asm.LoadMem(asm.R2, asm.R1, redirMdData, asm.Word).WithSource(asm.Comment("r2 = ctx->data")),
		asm.LoadMem(asm.R3, asm.R1, redirMdDataEnd, asm.Word).WithSource(asm.Comment("r3 = ctx->data_end")),

		// A frame shorter than an Ethernet header is not ours to judge.
		asm.Mov.Reg(asm.R4, asm.R2).WithSource(asm.Comment("bounds check: 14 bytes of Ethernet header")),
		asm.Add.Imm(asm.R4, redirEthHdrLen),
		asm.JGT.Reg(asm.R4, asm.R3, "pass"),

		// Dispatch on the ethertype: IPv4 always goes to sluice, IPv6
		// unless it is neighbour discovery, anything else (ARP, LLDP,
		// 802.1Q/802.1ad tags, ...) to the kernel.
		asm.LoadMem(asm.R5, asm.R2, redirEthTypeOff, asm.Half).WithSource(asm.Comment("r5 = ethertype (network order)")),
		asm.JEq.Imm(asm.R5, ethIPv4, "redirect").WithSource(asm.Comment("IPv4: redirect")),
		asm.JNE.Imm(asm.R5, ethIPv6, "pass").WithSource(asm.Comment("not IPv6 either (ARP, LLDP, VLAN...): pass")),

		// IPv6: ICMPv6 right after the fixed header, of a neighbour
		// discovery type (RS, RA, NS, NA, redirect), passes. ND with
		// extension headers in front is not valid ND (RFC 4861 wants
		// hop limit 255 and no fragmentation) and goes to sluice like
		// any other packet; so do frames too short to tell.
		asm.Mov.Reg(asm.R4, asm.R2).WithSource(asm.Comment("IPv6: bounds check up to the ICMPv6 type byte")),
		asm.Add.Imm(asm.R4, redirIcmp6TypeOff+1),
		asm.JGT.Reg(asm.R4, asm.R3, "redirect"),
		asm.LoadMem(asm.R5, asm.R2, redirIpv6NextHdrOff, asm.Byte).WithSource(asm.Comment("r5 = ip6->nexthdr")),
		asm.JNE.Imm(asm.R5, redirProtoICMPv6, "redirect").WithSource(asm.Comment("not ICMPv6 (or extension headers): redirect")),
		asm.LoadMem(asm.R5, asm.R2, redirIcmp6TypeOff, asm.Byte).WithSource(asm.Comment("r5 = icmp6->type")),
		asm.JLT.Imm(asm.R5, redirNdFirstType, "redirect").WithSource(asm.Comment("below router solicitation: redirect")),
		asm.JGT.Imm(asm.R5, redirNdLastType, "redirect").WithSource(asm.Comment("above redirect message: redirect")),
		asm.Ja.Label("pass").WithSource(asm.Comment("neighbour discovery (types 133-137): pass")),

		// return bpf_redirect_map(&xsks, ctx->rx_queue_index, fallback):
		// the socket bound to this queue, or the fallback action when
		// the queue has none.
		asm.LoadMem(asm.R2, asm.R6, redirMdRxQueueIndex, asm.Word).WithSymbol("redirect").
			WithSource(asm.Comment("redirect: r2 = ctx->rx_queue_index")),
		asm.LoadMapPtr(asm.R1, 0).WithReference("xsks").WithSource(asm.Comment("r1 = &xsks")),
		asm.Mov.Imm(asm.R3, int32(fallback)).WithSource(asm.Comment("r3 = flags: the action when the queue has no socket")),
		asm.FnRedirectMap.Call(),
		asm.Return(),

		asm.Mov.Imm(asm.R0, ActionPass).WithSymbol("pass").WithSource(asm.Comment("pass: XDP_PASS, the kernel's own path")),
		asm.Return(),
	}
}

// Redirect is the loaded program and its XSKMAP.
type Redirect struct {
	Program *ebpf.Program
	// XSKs maps a receive queue index to the AF_XDP socket serving it.
	XSKs *ebpf.Map
}

// NewRedirect loads the program and its map into the kernel.
func NewRedirect(opts RedirectOptions) (*Redirect, error) {
	if opts.Queues <= 0 {
		return nil, errors.New("xdp: the XSKMAP needs at least one queue")
	}
	m, err := ebpf.NewMap(&ebpf.MapSpec{
		Name:       "sluice_xsks",
		Type:       ebpf.XSKMap,
		KeySize:    4,
		ValueSize:  4,
		MaxEntries: uint32(opts.Queues),
	})
	if err != nil {
		return nil, fmt.Errorf("xdp: create XSKMAP: %w", err)
	}
	insns := RedirectInstructions(opts.Fallback)
	if err := insns.AssociateMap("xsks", m); err != nil {
		m.Close()
		return nil, fmt.Errorf("xdp: %w", err)
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "sluice_redirect",
		Type:         ebpf.XDP,
		License:      "Apache-2.0",
		Instructions: insns,
	})
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("xdp: load redirect program: %w", err)
	}
	return &Redirect{Program: prog, XSKs: m}, nil
}

// SetSocket puts the AF_XDP socket fd in charge of queue.
func (r *Redirect) SetSocket(queue int, fd int) error {
	if err := r.XSKs.Put(uint32(queue), uint32(fd)); err != nil {
		return fmt.Errorf("xdp: add socket for queue %d to the XSKMAP: %w", queue, err)
	}
	return nil
}

// AttachMode says how the program was attached.
type AttachMode string

const (
	AttachDriver  AttachMode = "driver"
	AttachGeneric AttachMode = "generic"
)

// Attach attaches the program to ifindex through a bpf_link: the link
// belongs to this process, so when the process exits or dies the kernel
// detaches the program and the interface works as without sluice (fail
// open). Native (driver) mode is tried first, then generic (SKB) mode. A
// second attach to an interface that already has an XDP program fails
// with EBUSY.
func (r *Redirect) Attach(ifindex int) (link.Link, AttachMode, error) {
	l, err := link.AttachXDP(link.XDPOptions{Program: r.Program, Interface: ifindex, Flags: link.XDPDriverMode})
	if err == nil {
		return l, AttachDriver, nil
	}
	l, err2 := link.AttachXDP(link.XDPOptions{Program: r.Program, Interface: ifindex, Flags: link.XDPGenericMode})
	if err2 == nil {
		return l, AttachGeneric, nil
	}
	return nil, "", fmt.Errorf("xdp: attach to interface %d: driver mode: %v; generic mode: %w", ifindex, err, err2)
}

// Close releases the program and the map (an attached link keeps its own
// reference to the program).
func (r *Redirect) Close() error {
	return errors.Join(r.Program.Close(), r.XSKs.Close())
}
