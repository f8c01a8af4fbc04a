package engine

import (
	"strconv"

	"github.com/sluice-project/sluice/packet"
	"github.com/sluice-project/sluice/rules"
)

// LogSink receives LOG and NFLOG target lines, formatted like the kernel's
// nf_log_syslog lines ("<prefix>IN=eth0 OUT= MAC=... SRC=... DST=...
// LEN=... TOS=0x.. PREC=0x.. TTL=.. ID=.. PROTO=TCP SPT=.. DPT=.. ..."), so
// existing log parsers keep working. The line is only valid during the
// call.
type LogSink func(level int, line []byte)

// logLimiter keeps logging from becoming the bottleneck during a flood,
// as the kernel's net_ratelimit does: a burst of 10 lines, then 2 per
// second (in packet-clock nanoseconds).
type logLimiter struct {
	tokens int64
	last   int64
}

const (
	logBurst    = 10
	logInterval = 5e8 // one token per half second
)

func (l *logLimiter) allow(now int64) bool {
	if l.last == 0 {
		l.last, l.tokens = now, logBurst
	}
	if d := now - l.last; d > 0 {
		l.tokens += d / logInterval
		l.last += (d / logInterval) * logInterval
		if l.tokens > logBurst {
			l.tokens = logBurst
		}
	}
	if l.tokens <= 0 {
		return false
	}
	l.tokens--
	return true
}

// SetLogSink makes LOG and NFLOG rules write lines to sink (rate-limited).
// Without a sink they only count, as in replay.
func (w *Worker) SetLogSink(sink LogSink) { w.logSink = sink }

// LogSuppressed is how many log lines the rate limit dropped.
func (w *Worker) LogSuppressed() uint64 { return w.logDropped.Load() }

func (w *Worker) log(r *rule, p *packet.Packet, now int64) {
	if !w.logLim.allow(now) {
		w.logDropped.Add(1)
		return
	}
	b := append(w.logBuf[:0], r.src.Target.LogPrefix...)
	b = append(b, "IN="...)
	b = appendCString(b, w.pr.inIface[:])
	b = append(b, " OUT= "...)
	if p.HasMAC {
		b = append(b, "MAC="...)
		b = appendMAC(b, p.DstMAC[:])
		b = append(b, ':')
		b = appendMAC(b, p.SrcMAC[:])
		if p.Family == packet.FamilyIPv4 {
			b = append(b, ":08:00 "...)
		} else {
			b = append(b, ":86:dd "...)
		}
	}
	b = append(b, "SRC="...)
	b = p.Src.AppendTo(b)
	b = append(b, " DST="...)
	b = p.Dst.AppendTo(b)
	b = append(b, " LEN="...)
	b = strconv.AppendInt(b, int64(p.Len), 10)
	if p.Family == packet.FamilyIPv4 {
		b = append(b, " TOS=0x"...)
		b = appendHex2(b, p.TOS&0x1e)
		b = append(b, " PREC=0x"...)
		b = appendHex2(b, p.TOS&0xe0)
		b = append(b, " TTL="...)
		b = strconv.AppendUint(b, uint64(p.TTL), 10)
		b = append(b, " ID="...)
		b = strconv.AppendUint(b, uint64(p.L3[4])<<8|uint64(p.L3[5]), 10)
		if p.L3[6]&0x40 != 0 {
			b = append(b, " DF"...)
		}
		if p.MoreFrags {
			b = append(b, " MF"...)
		}
		if p.FragOff != 0 {
			b = append(b, " FRAG:"...)
			b = strconv.AppendUint(b, uint64(p.FragOff/8), 10)
		}
	} else {
		b = append(b, " TC="...)
		b = strconv.AppendUint(b, uint64(p.TOS), 10)
		b = append(b, " HOPLIMIT="...)
		b = strconv.AppendUint(b, uint64(p.TTL), 10)
	}
	b = append(b, " PROTO="...)
	switch p.Proto {
	case packet.ProtoTCP:
		b = append(b, "TCP"...)
	case packet.ProtoUDP:
		b = append(b, "UDP"...)
	case packet.ProtoICMP:
		b = append(b, "ICMP"...)
	case packet.ProtoICMPv6:
		b = append(b, "ICMPv6"...)
	default:
		b = strconv.AppendUint(b, uint64(p.Proto), 10)
	}
	if p.FragOff == 0 {
		switch p.Proto {
		case packet.ProtoTCP, packet.ProtoUDP:
			if p.L4Len >= 4 {
				b = append(b, " SPT="...)
				b = strconv.AppendUint(b, uint64(p.SrcPort), 10)
				b = append(b, " DPT="...)
				b = strconv.AppendUint(b, uint64(p.DstPort), 10)
			}
			l4 := p.L3[p.L4Off:]
			if p.Proto == packet.ProtoUDP && p.L4Len >= 8 {
				b = append(b, " LEN="...)
				b = strconv.AppendUint(b, uint64(l4[4])<<8|uint64(l4[5]), 10)
			}
			if p.Proto == packet.ProtoTCP && p.L4Len >= 20 {
				b = append(b, " WINDOW="...)
				b = strconv.AppendUint(b, uint64(l4[14])<<8|uint64(l4[15]), 10)
				b = append(b, " RES=0x"...)
				b = appendHex2(b, l4[12]&0x0e)
				for _, f := range tcpFlagNames {
					if p.TCPFlags&f.bit != 0 {
						b = append(b, ' ')
						b = append(b, f.name...)
					}
				}
				b = append(b, " URGP="...)
				b = strconv.AppendUint(b, uint64(l4[18])<<8|uint64(l4[19]), 10)
			}
		case packet.ProtoICMP, packet.ProtoICMPv6:
			if p.L4Len >= 2 {
				b = append(b, " TYPE="...)
				b = strconv.AppendUint(b, uint64(p.ICMPType), 10)
				b = append(b, " CODE="...)
				b = strconv.AppendUint(b, uint64(p.ICMPCode), 10)
				echo := (p.Proto == packet.ProtoICMP && (p.ICMPType == 0 || p.ICMPType == 8)) ||
					(p.Proto == packet.ProtoICMPv6 && (p.ICMPType == 128 || p.ICMPType == 129))
				if echo && p.L4Len >= 8 {
					l4 := p.L3[p.L4Off:]
					b = append(b, " ID="...)
					b = strconv.AppendUint(b, uint64(l4[4])<<8|uint64(l4[5]), 10)
					b = append(b, " SEQ="...)
					b = strconv.AppendUint(b, uint64(l4[6])<<8|uint64(l4[7]), 10)
				}
			}
		}
	}
	w.logBuf = b
	w.logSink(r.src.Target.LogLevel, b)
}

var tcpFlagNames = []struct {
	bit  uint8
	name string
}{{packet.TCPCwr, "CWR"}, {packet.TCPEce, "ECE"}, {packet.TCPUrg, "URG"}, {packet.TCPAck, "ACK"},
	{packet.TCPPsh, "PSH"}, {packet.TCPRst, "RST"}, {packet.TCPSyn, "SYN"}, {packet.TCPFin, "FIN"}}

func appendCString(b, s []byte) []byte {
	for _, c := range s {
		if c == 0 {
			break
		}
		b = append(b, c)
	}
	return b
}

const hexDigits = "0123456789abcdef"

func appendHex2(b []byte, v uint8) []byte { return append(b, hexDigits[v>>4], hexDigits[v&15]) }

func appendMAC(b, m []byte) []byte {
	for i, c := range m {
		if i > 0 {
			b = append(b, ':')
		}
		b = appendHex2(b, c)
	}
	return b
}

func isLogTarget(k rules.TargetKind) bool { return k == rules.TargetLog || k == rules.TargetNFLog }
