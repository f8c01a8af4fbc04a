package oldtmp

import (
	"bufio"
	"io"
	"strconv"
	"strings"

	"github.com/sluice-project/sluice/packet"
)

func itoa(v uint64) string { return strconv.FormatUint(v, 10) }

// Save writes every set in `ipset save` format, in file order, with
// element timeouts as they were at load time, so the output reloads into
// a kernel with `ipset restore` to the same state.
func (r *Registry) Save(w io.Writer) error { return r.SaveAt(w, r.loaded) }

// SaveAt is Save with timeouts counted down to now: like `ipset save`, it
// prints remaining seconds and leaves out elements that have timed out.
func (r *Registry) SaveAt(w io.Writer, now int64) error {
	bw := bufio.NewWriter(w)
	for _, s := range r.order {
		bw.WriteString("create " + s.name + " " + s.Type())
		for _, o := range s.opts {
			bw.WriteString(" " + o)
		}
		bw.WriteByte('\n')
		for i := range s.elems {
			e := &s.elems[i]
			if s.withTimeout && e.expires != 0 && now > e.expires {
				continue
			}
			var b strings.Builder
			b.WriteString("add " + s.name + " " + s.formatElem(e))
			if s.withTimeout {
				left := uint64(0)
				if e.expires != 0 {
					left = uint64((e.expires - now + 1e9 - 1) / 1e9)
					if now == r.loaded {
						left = uint64(e.timeout)
					}
				}
				b.WriteString(" timeout " + itoa(left))
			}
			if e.nomatch {
				b.WriteString(" nomatch")
			}
			if s.withCounters {
				b.WriteString(" packets " + itoa(e.packets.Load()) + " bytes " + itoa(e.bytes.Load()))
			}
			if e.comment != "" {
				b.WriteString(` comment "` + e.comment + `"`)
			}
			for _, x := range e.skb {
				b.WriteString(" " + x)
			}
			b.WriteByte('\n')
			bw.WriteString(b.String())
		}
	}
	return bw.Flush()
}

// formatElem prints an element as ipset's print functions do: hosts of a
// net type without their /32 or /128, protocol and ICMP names.
func (s *Set) formatElem(e *elem) string {
	switch s.typ {
	case typeListSet:
		return e.member.name
	case typeBitmapPort:
		return itoa(uint64(e.port))
	case typeBitmapIP, typeHashIP:
		return e.ip1.String()
	}
	var b strings.Builder
	b.WriteString(e.ip1.String())
	if (s.typ == typeHashNet || s.typ == typeHashNetPort) && int(e.cidr) != e.ip1.BitLen() {
		b.WriteString("/" + itoa(uint64(e.cidr)))
	}
	if s.typ == typeHashNet {
		return b.String()
	}
	b.WriteString("," + protoString(e.proto) + ":")
	if e.proto == packet.ProtoICMP || e.proto == packet.ProtoICMPv6 {
		b.WriteString(icmpString(e.proto, e.port))
	} else {
		b.WriteString(itoa(uint64(e.port)))
	}
	if s.typ == typeHashIPPortIP {
		b.WriteString("," + e.ip2.String())
	}
	return b.String()
}
