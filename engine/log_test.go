package engine

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/sluice-project/sluice/packet"
	"github.com/sluice-project/sluice/rules"
)

func TestLogLines(t *testing.T) {
	const text = "*raw\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p tcp -j LOG --log-prefix \"syn: \"\nCOMMIT\n"
	rs, err := rules.Parse(strings.NewReader(text), rules.Options{Family: packet.FamilyIPv4, File: "log.rules"})
	if err != nil {
		t.Fatal(err)
	}
	pr, err := Compile(Config{Rules4: rs, InIface: "eth0"}, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	w := pr.NewWorker()
	var lines []string
	w.SetLogSink(func(level int, line []byte) { lines = append(lines, string(line)) })
	f := packet.BuildIPv4(netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.2"), packet.ProtoTCP,
		packet.BuildTCP(40000, 443, packet.TCPSyn, nil), packet.WithTTL(57), packet.WithID(7), packet.WithDontFragment())
	var p packet.Packet
	var d packet.Decoder
	d.Decode(f, &p)
	for i := 0; i < 100; i++ {
		w.Process(&p, 1e9+int64(i))
	}
	if len(lines) != logBurst {
		t.Fatalf("%d lines in a burst of 100 packets, want the limiter's %d", len(lines), logBurst)
	}
	want := "syn: IN=eth0 OUT= MAC=02:00:00:00:00:02:02:00:00:00:00:01:08:00 SRC=192.0.2.1 DST=198.51.100.2 LEN=40 TOS=0x00 PREC=0x00 TTL=57 ID=7 DF PROTO=TCP SPT=40000 DPT=443 WINDOW=65535 RES=0x00 SYN URGP=0"
	if lines[0] != want {
		t.Errorf("got  %q\nwant %q", lines[0], want)
	}
	if w.LogSuppressed() != 90 {
		t.Errorf("suppressed %d, want 90", w.LogSuppressed())
	}
	// Counting does not depend on logging.
	if got := pr.Report(w).Tables[0].Chains[0].Rules[0].Packets; got != 100 {
		t.Errorf("LOG rule counted %d, want 100", got)
	}
}
