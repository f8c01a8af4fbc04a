package engine

import (
	"encoding/binary"
	"net/netip"

	"github.com/sluice-project/sluice/packet"
)

// ipv4OptionsPass reports whether a datagram's IPv4 options survive
// ip_rcv_options, which runs after the routing decision and before INPUT
// (net/ipv4/ip_input.c, ip_options_compile in net/ipv4/ip_options.c). The
// kernel drops the datagram when an option is malformed, when the options
// repeat one that may appear once, when a CIPSO option fails validation
// (no CIPSO DOI is configured on a stock host), and when a source-route
// option is present while accept_source_route is 0, the default. Unknown
// options are accepted on received packets.
func ipv4OptionsPass(opts []byte) bool {
	var rr, ts, srr, cipso bool
	for l := len(opts); l > 0; {
		o := opts[len(opts)-l:]
		switch o[0] {
		case 0: // IPOPT_END: the rest is padding
			return !srr && !cipso
		case 1: // IPOPT_NOOP
			l--
			continue
		}
		if l < 2 {
			return false // optlen would be read past the header
		}
		optlen := int(o[1])
		if optlen < 2 || optlen > l {
			return false
		}
		switch o[0] {
		case 131, 137: // LSRR, SSRR
			if optlen < 3 || o[2] < 4 || srr {
				return false
			}
			srr = true
		case 7: // RR
			if rr || optlen < 3 || o[2] < 4 {
				return false
			}
			if int(o[2]) <= optlen && int(o[2])+3 > optlen {
				return false
			}
			rr = true
		case 68: // TIMESTAMP
			if ts || optlen < 4 || o[2] < 5 {
				return false
			}
			if int(o[2]) <= optlen {
				if int(o[2])+3 > optlen {
					return false
				}
				switch o[3] & 0xF {
				case 1, 3: // TSANDADDR, PRESPEC
					if int(o[2])+7 > optlen {
						return false
					}
				}
			} else if o[3]>>4 == 15 {
				return false // overflow counter would wrap
			}
			ts = true
		case 148: // RA
			if optlen < 4 {
				return false
			}
		case 134: // CIPSO
			if cipso {
				return false
			}
			cipso = true
		}
		l -= optlen
	}
	return !srr && !cipso
}

// Received options are also written to. After the routing decision,
// ip_rcv_options -> ip_options_compile fills in what the options ask of
// each hop, in the datagram itself, so mangle and filter INPUT (and the
// u32, bpf and string matches there) see bytes that PREROUTING did not:
//
//   - record route with room: the address this host is reached at
//     (spec_dst) goes in the next slot, and the pointer moves on by 4;
//   - timestamp with room: flag 0 writes the time (milliseconds since
//     midnight UTC, inet_current_timestamp) and moves the pointer by 4;
//     flag 1 writes spec_dst and the time and moves it by 8; flag 3 (the
//     prespecified address) does the same, except when that address is
//     an ordinary unicast one, then nothing changes;
//   - a full timestamp option (other than flag 3): the overflow counter
//     (high nibble of the flags byte) goes up by one;
//   - after an end-of-list option, every byte is set to 0.
//
// The header checksum is not updated (only forwarding does that).
// spec_dst is fib_compute_spec_dst: the destination of a local unicast
// datagram, or for a broadcast or multicast one the address the route
// back to the source prefers, here the host's first IPv4 address.

// ipv4OptionsChanged reports whether rewriteIPv4Options may change a
// validated options area (ipv4OptionsPass); false means it will not. (A
// timestamp option with a prespecified address may be left alone.)
func ipv4OptionsChanged(opts []byte) bool {
	for l := len(opts); l > 0; {
		o := opts[len(opts)-l:]
		switch o[0] {
		case 0:
			for _, b := range o[1:] {
				if b != 0 {
					return true
				}
			}
			return false
		case 1:
			l--
			continue
		}
		optlen := int(o[1])
		switch o[0] {
		case 7:
			if int(o[2]) <= optlen {
				return true
			}
		case 68:
			if int(o[2]) <= optlen || o[3]&0xF != 3 {
				return true // a flag-3 option may still be left alone
			}
		}
		l -= optlen
	}
	return false
}

// rewriteIPv4Options applies ip_options_compile's receive-side writes to
// a validated options area of a datagram to dst, at Unix time unixNano.
func (pr *Program) rewriteIPv4Options(opts []byte, dst [4]byte, unixNano int64) {
	put := func(b []byte, v [4]byte) { copy(b[:4], v[:]) }
	var ms [4]byte
	binary.BigEndian.PutUint32(ms[:], msecsSinceMidnight(unixNano))
	for l := len(opts); l > 0; {
		o := opts[len(opts)-l:]
		switch o[0] {
		case 0:
			clear(o[1:])
			return
		case 1:
			l--
			continue
		}
		optlen := int(o[1])
		switch o[0] {
		case 7: // record route
			if int(o[2]) <= optlen {
				put(o[o[2]-1:], pr.specDst(dst))
				o[2] += 4
			}
		case 68: // timestamp
			if int(o[2]) > optlen {
				if o[3]&0xF != 3 {
					o[3] = o[3]&0xF | (o[3]>>4+1)<<4
				}
				break
			}
			switch ptr := int(o[2]); o[3] & 0xF {
			case 0:
				put(o[ptr-1:], ms)
				o[2] += 4
			case 1:
				put(o[ptr-1:], pr.specDst(dst))
				put(o[ptr+3:], ms)
				o[2] += 8
			case 3:
				if pr.plainUnicast([4]byte(o[ptr-1 : ptr+3])) {
					break
				}
				put(o[ptr+3:], ms)
				o[2] += 8
			}
		}
		l -= optlen
	}
}

// specDst is fib_compute_spec_dst for a datagram to dst that reaches
// INPUT.
func (pr *Program) specDst(dst [4]byte) [4]byte {
	if !pr.broadcastOrMulticast(dst) {
		return dst
	}
	for _, a := range pr.localAddrs {
		if a.Is4() {
			return a.As4()
		}
	}
	return [4]byte{}
}

// broadcastOrMulticast reports whether the route to dst (which reaches
// INPUT) is a broadcast or multicast one: the limited broadcast, 0.0.0.0,
// a multicast group, or a local subnet's broadcast address.
func (pr *Program) broadcastOrMulticast(dst [4]byte) bool {
	if dst == [4]byte{255, 255, 255, 255} || dst == [4]byte{} || dst[0] >= 224 && dst[0] <= 239 {
		return true
	}
	d := binary.BigEndian.Uint32(dst[:])
	for _, n := range pr.localNets {
		// fib_add_ifaddr adds a broadcast route for prefixes under /31.
		if n.Addr().Is4() && n.Bits() < 31 {
			b := n.Addr().As4()
			if binary.BigEndian.Uint32(b[:])|^uint32(0)>>n.Bits() == d {
				return true
			}
		}
	}
	return false
}

// plainUnicast is inet_addr_type(a) == RTN_UNICAST as far as sluice knows
// the local routing table: not one of the host's addresses, not loopback,
// not 0.0.0.0, the limited broadcast, a multicast group or a local
// subnet's broadcast address.
func (pr *Program) plainUnicast(a [4]byte) bool {
	if a[0] == 127 || pr.broadcastOrMulticast(a) {
		return false
	}
	return !pr.isLocal(netip.AddrFrom4(a))
}

// msecsSinceMidnight is inet_current_timestamp's value.
func msecsSinceMidnight(unixNano int64) uint32 {
	const day = int64(24 * 3600 * 1e9)
	t := unixNano % day
	if t < 0 {
		t += day
	}
	return uint32(t / 1e6)
}

// inputOptions returns the datagram INPUT sees: p itself, or when
// ip_options_compile writes to its options, a copy so rewritten (the
// frame itself is left alone: an accepted one goes back to the kernel,
// which writes to it then). A reassembled datagram is the worker's own
// and is rewritten in place.
func (w *Worker) inputOptions(p *packet.Packet, now int64) *packet.Packet {
	ihl := int(p.L3[0]&0x0f) * 4
	if ihl <= 20 || ihl > len(p.L3) || !ipv4OptionsChanged(p.L3[20:ihl]) {
		return p
	}
	if p != &w.dgram {
		w.optBuf = append(w.optBuf[:0], p.L3...)
		w.optPkt = *p
		w.optPkt.L3 = w.optBuf
		p = &w.optPkt
	}
	w.pr.rewriteIPv4Options(p.L3[20:ihl], p.Dst.As4(), now+w.pr.wallOffset)
	return p
}
