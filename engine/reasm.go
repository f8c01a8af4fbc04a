package engine

import (
	"encoding/binary"

	"github.com/sluice-project/sluice/packet"
)

// IPv4 INPUT chains see datagrams, not fragments: ip_local_deliver
// reassembles before NF_INET_LOCAL_IN (net/ipv4/ip_fragment.c). The
// reassembler below reproduces what decides whether and when a datagram
// reaches INPUT, and with which length:
//   - fragments are keyed by (source, destination, id, protocol);
//   - a fragment lying wholly inside data already queued is a duplicate and
//     is dropped alone; one that partly overlaps kills the whole queue
//     (inet_frag_queue_insert's IPFRAG_DUP / IPFRAG_OVERLAP);
//   - non-last fragments are trimmed to a multiple of 8 bytes; an empty
//     one, or a last fragment contradicting the known length, kills the
//     queue;
//   - a datagram completes when the last fragment has arrived and the data
//     is contiguous from 0; it reaches INPUT once, with the first
//     fragment's header and length ihl + data, unless that exceeds 65535;
//   - a queue dies 30 s (ipfrag_time) after its first fragment.
//
// It runs only on the rare fragment path, so a map is acceptable here.
type reassembler struct {
	queues map[fragKey]*fragQueue
	buf    []byte
	// oldest is at most the creation time of every queue, so expire
	// need not scan the table before a queue can have timed out: under a
	// flood of fragments from fresh sources the table stays full, and
	// every new queue would otherwise cost a scan of maxQueues entries.
	oldest int64
}

type fragKey [11]byte // source, destination, id, protocol

type fragQueue struct {
	created int64
	length  int // q.len: end of data known so far
	lastIn  bool
	runs    []span // merged covered intervals, sorted
	head    []byte // first fragment's IP header
	data    []byte // payload, indexed by offset
}

type span struct{ lo, hi int }

const (
	fragTimeout = 30e9
	maxQueues   = 4096 // a bound on memory, like ipfrag_high_thresh
)

// add queues p, a fragment that reached the routing decision. When p
// completes a datagram, it decodes the datagram into out and returns true.
func (ra *reassembler) add(p *packet.Packet, now int64, out *packet.Packet) bool {
	if ra.queues == nil {
		ra.queues = map[fragKey]*fragQueue{}
	}
	var k fragKey
	s, d := p.Src.As4(), p.Dst.As4()
	copy(k[0:4], s[:])
	copy(k[4:8], d[:])
	copy(k[8:10], p.L3[4:6])
	k[10] = p.Proto
	q := ra.queues[k]
	if q != nil && now-q.created > fragTimeout {
		delete(ra.queues, k)
		q = nil
	}
	if q == nil {
		if len(ra.queues) >= maxQueues {
			ra.expire(now)
			if len(ra.queues) >= maxQueues {
				return false
			}
		}
		if len(ra.queues) == 0 || now < ra.oldest {
			ra.oldest = now
		}
		q = &fragQueue{created: now}
		ra.queues[k] = q
	}
	ihl := int(p.L3[0]&0x0f) * 4
	payload := p.L3[ihl:]
	off := int(p.FragOff)
	end := off + len(payload)
	if !p.MoreFrags {
		if end < q.length || (q.lastIn && end != q.length) {
			delete(ra.queues, k)
			return false
		}
		q.lastIn, q.length = true, end
	} else {
		end &^= 7
		if end > q.length {
			if q.lastIn {
				delete(ra.queues, k)
				return false
			}
			q.length = end
		}
	}
	if end == off {
		delete(ra.queues, k)
		return false
	}
	for _, r := range q.runs {
		if off >= r.lo && end <= r.hi {
			return false // duplicate: dropped alone
		}
		if off < r.hi && end > r.lo {
			delete(ra.queues, k) // overlap: the datagram is discarded
			return false
		}
	}
	q.insert(span{off, end})
	if len(q.data) < end {
		q.data = append(q.data, make([]byte, end-len(q.data))...)
	}
	copy(q.data[off:end], payload[:end-off])
	if off == 0 {
		q.head = append(q.head[:0], p.L3[:ihl]...)
	}
	if !q.lastIn || len(q.runs) != 1 || q.runs[0].lo != 0 || q.runs[0].hi != q.length || q.head == nil {
		return false
	}
	delete(ra.queues, k)
	total := len(q.head) + q.length
	if total > 65535 {
		return false
	}
	ra.buf = append(append(ra.buf[:0], q.head...), q.data[:q.length]...)
	binary.BigEndian.PutUint16(ra.buf[2:], uint16(total))
	binary.BigEndian.PutUint16(ra.buf[6:], 0)
	ra.buf[10], ra.buf[11] = 0, 0
	binary.BigEndian.PutUint16(ra.buf[10:], ipChecksum(ra.buf[:len(q.head)]))
	dec := packet.Decoder{Link: packet.LinkRawIP}
	dec.Decode(ra.buf, out)
	// The datagram arrived on the link of its fragments.
	out.HasMAC, out.SrcMAC, out.DstMAC, out.PktType = p.HasMAC, p.SrcMAC, p.DstMAC, p.PktType
	out.VLAN, out.NumVLANs = p.VLAN, p.NumVLANs
	return out.Malformed == packet.MalformedNone
}

func (q *fragQueue) insert(s span) {
	i := 0
	for i < len(q.runs) && q.runs[i].lo < s.lo {
		i++
	}
	q.runs = append(q.runs, span{})
	copy(q.runs[i+1:], q.runs[i:])
	q.runs[i] = s
	// Merge touching neighbours into runs, as the kernel's frag runs do.
	merged := q.runs[:1]
	for _, r := range q.runs[1:] {
		last := &merged[len(merged)-1]
		if r.lo <= last.hi {
			if r.hi > last.hi {
				last.hi = r.hi
			}
			continue
		}
		merged = append(merged, r)
	}
	q.runs = merged
}

func (ra *reassembler) expire(now int64) {
	if now-ra.oldest <= fragTimeout {
		return // no queue is older than oldest
	}
	oldest := now
	for k, q := range ra.queues {
		if now-q.created > fragTimeout {
			delete(ra.queues, k)
		} else if q.created < oldest {
			oldest = q.created
		}
	}
	ra.oldest = oldest
}

func ipChecksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(h[i])<<8 | uint32(h[i+1])
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}
