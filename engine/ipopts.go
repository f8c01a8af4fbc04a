package engine

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
