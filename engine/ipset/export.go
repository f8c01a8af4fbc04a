package ipset

import "github.com/sluice-project/sluice/packet"

// Accessors for code that compiles sets into other forms (xdp/sets.go
// turns IPv4 sets into BPF maps). They expose what a lookup depends on,
// never the element extensions' mutable state.

// HasTimeouts reports whether the set was created with the timeout
// extension: its elements can expire, so its answer depends on time.
func (s *Set) HasTimeouts() bool { return s.withTimeout }

// HasCounters reports whether the set was created with the counters
// extension: matching bumps element counters.
func (s *Set) HasCounters() bool { return s.withCounters }

// Netmask returns a hash:ip set's netmask (the host length when unset):
// the set is keyed by the address under this mask.
func (s *Set) Netmask() uint8 { return s.netmask }

// Prefix4 is one IPv4 element of a hash:net or hash:ip set: Addr is the
// numeric (host order) address, already masked to Len bits.
type Prefix4 struct {
	Addr    uint32
	Len     uint8
	Nomatch bool
}

// Prefixes4 lists the elements of an IPv4 hash:net or hash:ip set in
// insertion order (no two are equal: Parse refuses duplicates). For
// hash:ip, Len is the netmask and Addr the stored key, which a lookup
// compares with the packet's address under the netmask. Other sets return nil.
func (s *Set) Prefixes4() []Prefix4 {
	if s.family != packet.FamilyIPv4 || (s.typ != typeHashNet && s.typ != typeHashIP) {
		return nil
	}
	out := make([]Prefix4, 0, len(s.elems))
	for i := range s.elems {
		e := &s.elems[i]
		if s.typ == typeHashIP {
			out = append(out, Prefix4{Addr: v4(e.ip1), Len: s.netmask})
			continue
		}
		out = append(out, Prefix4{Addr: v4(e.ip1) & mask4(e.cidr), Len: e.cidr, Nomatch: e.nomatch})
	}
	return out
}

// Ports lists the ports of a bitmap:port set, ascending; nil for other
// types.
func (s *Set) Ports() []uint16 {
	if s.typ != typeBitmapPort {
		return nil
	}
	var out []uint16
	for i, idx := range s.bitmap {
		if idx >= 0 {
			out = append(out, s.firstPort+uint16(i))
		}
	}
	return out
}

// MaxElem returns the set's maxelem: no reload of the same set can hold
// more elements, so maps sized by it can be updated in place.
func (s *Set) MaxElem() uint32 { return s.maxelem }

// IPPortKeys4 lists the lookup keys of an IPv4 hash:ip,port set in
// insertion order: the address in the top 32 bits, then the protocol and
// the port, as a lookup builds them from a packet (IPPortKey4); nil for
// other sets.
func (s *Set) IPPortKeys4() []uint64 {
	if s.family != packet.FamilyIPv4 || s.typ != typeHashIPPort {
		return nil
	}
	out := make([]uint64, 0, len(s.elems))
	for i := range s.elems {
		e := &s.elems[i]
		out = append(out, IPPortKey4(v4(e.ip1), e.proto, e.port))
	}
	return out
}

// IPPortKey4 is the hash:ip,port key of address ip (numeric), protocol
// proto and port (for ICMP, type<<8 | code; 0 for protocols without
// ports).
func IPPortKey4(ip uint32, proto uint8, port uint16) uint64 { return key4(ip, proto, port, 0) }
