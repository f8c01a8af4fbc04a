package daemon

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sluice-project/sluice/engine"
	"github.com/sluice-project/sluice/packet"
	"github.com/sluice-project/sluice/report"
	"github.com/sluice-project/sluice/rules"
	"github.com/sluice-project/sluice/xdp"
)

// autoRules mixes rules the XDP program runs (the UDP and spoofed-SYN
// drops) with recent matches it cannot run: UDP to 7777 falls back in
// the user chain CHK (a site with a jump pending), and every TCP
// segment to 8080 but the spoofed SYNs falls back at rule 5. What
// follows a site (the string matches, CHK's end, rule 3's ACCEPT, the
// policy) runs in userspace for those frames.
const autoRules = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:CHK - [0:0]
-A INPUT -p udp -m udp --dport 9999 -j DROP
-A INPUT -p udp -m udp --dport 7777 -j CHK
-A INPUT -p udp -m udp --dport 7777 -j ACCEPT
-A INPUT -s 203.0.113.0/24 -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -j DROP
-A INPUT -p tcp -m tcp --dport 8080 -m recent --name web --set
-A INPUT -p tcp -m tcp --dport 8080 -m string --string "X-Attack" --algo bm -j DROP
-A CHK -m recent --name chk --set
-A CHK -m string --string "EVIL" --algo bm -j DROP
COMMIT
`

func autoProgram(t *testing.T) (*rules.Ruleset, *engine.Program) {
	t.Helper()
	rs, err := rules.Parse(strings.NewReader(autoRules), rules.Options{Family: packet.FamilyIPv4, File: "auto.rules", HZ: 250})
	if err != nil {
		t.Fatal(err)
	}
	pr, err := engine.Compile(engine.Config{Rules4: rs, HZ: 250, InIface: svIf, LocalAddrs: []netip.Addr{svAddr}}, nil, Monotonic())
	if err != nil {
		t.Fatal(err)
	}
	return rs, pr
}

// egressCapture records every frame cl0 transmits (the flood, the HTTP
// client's segments, ARP): exactly what arrives on sv0.
type egressCapture struct {
	fd     int
	mu     sync.Mutex
	frames [][]byte
	done   chan struct{}
	stop   chan struct{}
}

func (tp *topo) captureEgress(t *testing.T) *egressCapture {
	t.Helper()
	c := &egressCapture{done: make(chan struct{}), stop: make(chan struct{})}
	proto := int(htons16(unix.ETH_P_ALL))
	err := tp.c.Do(func() error {
		var err error
		if c.fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto); err != nil {
			return err
		}
		ifc, err := net.InterfaceByName(clIf)
		if err != nil {
			return err
		}
		if err := unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 256<<20); err != nil {
			return err
		}
		if err := unix.SetsockoptTimeval(c.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 50000}); err != nil {
			return err
		}
		return unix.Bind(c.fd, &unix.SockaddrLinklayer{Protocol: uint16(proto), Ifindex: ifc.Index})
	})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(c.done)
		buf := make([]byte, 65536)
		for {
			select {
			case <-c.stop:
				return
			default:
			}
			n, from, err := unix.Recvfrom(c.fd, buf, 0)
			if err != nil {
				continue
			}
			if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
				c.mu.Lock()
				c.frames = append(c.frames, bytes.Clone(buf[:n]))
				c.mu.Unlock()
			}
		}
	}()
	return c
}

// finish stops the capture and returns its frames; it fails the test
// when the socket dropped any.
func (c *egressCapture) finish(t *testing.T) [][]byte {
	t.Helper()
	close(c.stop)
	<-c.done
	st, err := unix.GetsockoptTpacketStats(c.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	unix.Close(c.fd)
	if err != nil {
		t.Fatal(err)
	}
	if st.Drops != 0 {
		t.Fatalf("the egress capture dropped %d frames", st.Drops)
	}
	return c.frames
}

func htons16(v uint16) uint16 { return v<<8 | v>>8 }

// compareRuleCounters requires every rule and policy counter of got to
// equal want's.
func compareRuleCounters(t *testing.T, want, got *report.Report) {
	t.Helper()
	for _, wt := range want.Tables {
		gt := got.Find(wt.Family, wt.Table)
		if gt == nil {
			t.Errorf("no %s %s table", wt.Family, wt.Table)
			continue
		}
		for _, wc := range wt.Chains {
			gc := gt.Chain(wc.Name)
			if gc == nil || len(gc.Rules) != len(wc.Rules) {
				t.Errorf("%s %s: chain %s missing or different", wt.Family, wt.Table, wc.Name)
				continue
			}
			if gc.PolicyPackets != wc.PolicyPackets || gc.PolicyBytes != wc.PolicyBytes {
				t.Errorf("%s %s policy: %d packets %d bytes, want %d %d", wt.Table, wc.Name, gc.PolicyPackets, gc.PolicyBytes, wc.PolicyPackets, wc.PolicyBytes)
			}
			for i, wr := range wc.Rules {
				gr := gc.Rules[i]
				if gr.Packets != wr.Packets || gr.Bytes != wr.Bytes {
					t.Errorf("%s %s line %d %s: %d packets %d bytes, want %d %d", wt.Table, wc.Name, wr.Line, wr.Text, gr.Packets, gr.Bytes, wr.Packets, wr.Bytes)
				}
			}
		}
	}
}

// TestEndToEndAuto runs the combined tier (--mode auto) on the server's
// veth: the compiled XDP program drops the UDP and spoofed-SYN flood
// itself; the UDP to 7777 and the HTTP segments reach recent matches it
// cannot run and go to the AF_XDP socket with their fallback site in the
// metadata, where the worker resumes each at its site (accepted ones
// re-injected through the TAP). Every request succeeds, the kernel sees
// none of the dropped frames, and the daemon's report (program counters
// plus worker counters) equals, rule for rule, what one engine gives for
// every frame cl0 sent. After Abandon the interface works without
// sluice.
func TestEndToEndAuto(t *testing.T) {
	tp := newTopo(t)
	tp.serveHTTP(t)
	cl := tp.client()
	ctx := context.Background()
	kernelExtra := [][]string{
		{"-A", "INPUT", "-i", "sluice0", "-p", "udp", "-m", "udp", "--dport", "7777"},
		{"-A", "INPUT", "-p", "udp", "-m", "udp", "--dport", "7777", "-m", "string", "--string", "EVIL", "--algo", "bm"},
	}
	for _, r := range kernelExtra {
		if _, err := tp.s.Run(ctx, "iptables-legacy", append([]string{"-w", "10"}, r...)...); err != nil {
			t.Fatal(err)
		}
	}
	const (
		kUDP7777TAP = "-i sluice0 -p udp -m udp --dport 7777"
		kEvil       = `-p udp -m udp --dport 7777 -m string --string "EVIL" --algo bm --to 65535`
	)
	rs, pr := autoProgram(t)
	var d *Daemon
	err := tp.s.Do(func() error {
		var err error
		d, err = Start(Config{Iface: svIf, Program: pr, LockDir: tp.lockDir, Logf: t.Logf,
			XDP: &XDPConfig{Rules4: rs, LocalAddrs: []netip.Addr{svAddr}}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	spec := d.XDPSpec()
	t.Logf("%d instructions, %d fallback sites:%s", spec.Instructions(), len(spec.Fallback), DescribeSites(spec.Fallback))
	if err := d.Reload(); err == nil || !strings.Contains(err.Error(), "not configured") {
		t.Errorf("reload in the combined tier without XDPConfig.Reload: %v", err)
	}

	capt := tp.captureEgress(t)
	time.Sleep(100 * time.Millisecond)
	before := tp.kernelCounters(t)
	rep0 := d.Report()

	// The flood: UDP to 9999 and spoofed SYNs (dropped in XDP), UDP to
	// 7777, half of it carrying "EVIL" (resumed in userspace: dropped in
	// CHK, or accepted by rule 3), UDP to 5353 (accepted in XDP) and TCP
	// segments to 8080 carrying "X-Attack" (resumed, dropped by rule 5).
	const nEach, n7777, nOther = 10000, 8000, 1000
	mac := []packet.BuildOpt{packet.WithSrcMAC([6]byte(tp.clMAC)), packet.WithDstMAC([6]byte(tp.svMAC))}
	var frames [][]byte
	for i := range nEach {
		frames = append(frames,
			packet.BuildIPv4(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), svAddr, packet.ProtoUDP, packet.BuildUDP(uint16(1024+i), 9999, make([]byte, 18)), mac...),
			packet.BuildIPv4(netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}), svAddr, packet.ProtoTCP, packet.BuildTCP(uint16(1024+i), httpPort, packet.TCPSyn, nil), mac...))
		if i < n7777 {
			payload := []byte(fmt.Sprintf("good datagram %d", i))
			if i%2 == 0 {
				payload = []byte(fmt.Sprintf("an EVIL datagram %d", i))
			}
			frames = append(frames, packet.BuildIPv4(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), svAddr, packet.ProtoUDP, packet.BuildUDP(uint16(2000+i), 7777, payload), mac...))
		}
		if i < nOther {
			// Accepted by the policy in XDP: straight to the kernel.
			frames = append(frames, packet.BuildIPv4(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), svAddr, packet.ProtoUDP, packet.BuildUDP(uint16(3000+i), 5353, []byte("q")), mac...))
			// Resumed at rule 5 and dropped there.
			frames = append(frames, packet.BuildIPv4(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), svAddr, packet.ProtoTCP,
				packet.BuildTCP(uint16(4000+i), httpPort, packet.TCPAck, []byte("GET / HTTP/1.1\r\nX-Attack: 1\r\n\r\n")), mac...))
		}
	}
	xdpCounters := func() []uint64 {
		v, err := d.XDPCounters()
		if err != nil || len(v) < xdp.NumStats {
			return make([]uint64, xdp.NumStats)
		}
		return v
	}
	// Judged: the frames the program finished plus those workers took.
	judged := func() uint64 {
		v := xdpCounters()
		return v[xdp.StatPackets] - v[xdp.StatFallback] + d.Judged()
	}
	const requests = 40
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range requests {
			if err := get(cl); err != nil {
				mu.Lock()
				failures = append(failures, fmt.Errorf("request %d: %w", i, err))
				mu.Unlock()
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	start := time.Now()
	sendTime, err := tp.send(frames, judged)
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	// Wait until the workers have taken every frame the program handed
	// over, and the counters have settled.
	var st *Stats
	for deadline, last := time.Now().Add(20*time.Second), uint64(0); ; {
		v := xdpCounters()
		st = d.Stats()
		tot := st.Totals()
		if v[xdp.StatFallback] == tot.RX+tot.Lost() && v[xdp.StatPackets] == last {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the flood did not settle: program %v, queues %+v", v[:xdp.NumStats], tot)
		}
		last = v[xdp.StatPackets]
		time.Sleep(50 * time.Millisecond)
	}
	elapsed := time.Since(start)
	rep1 := d.Report()
	after := tp.kernelCounters(t)
	time.Sleep(100 * time.Millisecond)
	sent := capt.finish(t)
	for _, f := range failures {
		t.Error(f)
	}
	v := xdpCounters()
	tot := st.Totals()
	t.Logf("%d flood frames sent in %v, settled in %v; program: %d frames, %d dropped, %d accepted, %d handed over; queues: %d taken, %d resumed, %d without site, %d dropped, %d re-injected, %d lost; xdp mode %s",
		len(frames), sendTime, elapsed, v[xdp.StatPackets], v[xdp.StatDropped], v[xdp.StatAccepted], v[xdp.StatFallback],
		tot.RX, tot.Resumed, tot.NoSite, tot.Dropped, tot.Reinjected, tot.Lost(), st.XDPMode)
	if tot.Lost() != 0 || tot.NoSite != 0 || tot.Resumed != tot.RX || tot.TAPErrors != 0 || tot.Accepted != tot.Reinjected {
		t.Errorf("queues: %+v", tot)
	}
	if got := v[xdp.StatAccepted]; got < nOther {
		t.Errorf("program accepted %d frames, want at least the %d to 5353", got, nOther)
	}
	if got := v[xdp.StatDropped]; got < 2*nEach {
		t.Errorf("program dropped %d frames, want at least the %d of the UDP and SYN flood", got, 2*nEach)
	}
	if tot.RX < n7777+nOther+requests {
		t.Errorf("only %d frames resumed in userspace, want the %d UDP to 7777, the %d X-Attack segments and the HTTP ones", tot.RX, n7777, nOther)
	}

	// What one engine gives for exactly the frames cl0 sent.
	_, ref := autoProgram(t)
	w := ref.NewWorker()
	dec := packet.Decoder{Link: packet.LinkEthernet, LocalMAC: [6]byte(tp.svMAC), HasLocalMAC: true}
	var p packet.Packet
	now := Monotonic()
	for _, f := range sent {
		dec.Decode(f, &p)
		w.Process(&p, now)
	}
	want := ref.Report(w)
	got := deltaReport(rep0, rep1)
	compareRuleCounters(t, want, got)
	t.Logf("%d frames captured on cl0; engine: %d dropped %d accepted %d not filtered; sluice: %d dropped %d accepted %d not filtered",
		len(sent), want.Dropped, want.Accepted, want.NotFiltered, got.Dropped, got.Accepted, got.NotFiltered)
	if got.Dropped != want.Dropped {
		t.Errorf("sluice dropped %d frames, the engine %d", got.Dropped, want.Dropped)
	}
	for _, r := range want.Tables[0].Chains {
		for _, rr := range r.Rules {
			t.Logf("  %s line %d %-70s %d packets", r.Name, rr.Line, rr.Text, rr.Packets)
		}
	}

	// The server's kernel saw none of the dropped frames; the accepted
	// UDP to 7777 and every HTTP segment came through the TAP.
	if n := after[kUDP] - before[kUDP]; n != 0 {
		t.Errorf("the server's kernel saw %d flood UDP datagrams", n)
	}
	if n := after[kSpoofed] - before[kSpoofed]; n != 0 {
		t.Errorf("the server's kernel saw %d spoofed SYNs", n)
	}
	if n := after[kEvil] - before[kEvil]; n != 0 {
		t.Errorf("the server's kernel saw %d EVIL datagrams", n)
	}
	if n := after[kUDP7777TAP] - before[kUDP7777TAP]; n != n7777/2 {
		t.Errorf("the server's kernel saw %d good datagrams to 7777 through the TAP, want %d", n, n7777/2)
	}
	viaTAP, viaVeth := after[kViaTAP]-before[kViaTAP], after[kViaVeth]-before[kViaVeth]
	t.Logf("server kernel: %d HTTP packets via sluice0, %d via sv0", viaTAP, viaVeth)
	if viaTAP == 0 || viaVeth != 0 {
		t.Errorf("HTTP: %d packets via sluice0, %d via sv0; want all resumed and re-injected", viaTAP, viaVeth)
	}
	// The control socket serves the combined report.
	if cst := d.Stats(); cst.Report == nil || cst.XDPMode != "compiled-"+string(d.mode) || cst.Report.Dropped < got.Dropped {
		t.Errorf("stats: mode %q report %+v", cst.XDPMode, cst.Report)
	}

	// Resuming allocates nothing either: an EVIL datagram resumed in
	// CHK (dropped) and a good one (accepted, re-injected).
	chk := -1
	for i, fs := range spec.Fallback {
		if fs.Rule != nil && fs.Chain == "CHK" {
			chk = i
		}
	}
	if chk < 0 {
		t.Fatal("no site in CHK")
	}
	q := &queue{d: d, tap: d.tap, dec: d.queues[0].dec}
	qw := pr.NewWorker()
	sites := d.tier.Load().sites
	evil := packet.BuildIPv4(clAddr, svAddr, packet.ProtoUDP, packet.BuildUDP(5000, 7777, []byte("EVIL")), mac...)
	good := packet.BuildIPv4(clAddr, svAddr, packet.ProtoUDP, packet.BuildUDP(5000, 7777, []byte("good")), mac...)
	if n := testing.AllocsPerRun(200, func() {
		q.handle(qw, evil, &sites[chk], Monotonic(), &p)
		q.handle(qw, good, &sites[chk], Monotonic(), &p)
	}); n != 0 {
		t.Errorf("%v allocations per resumed pair", n)
	}
	if q.reinjected.Load() == 0 || q.dropped.Load() == 0 {
		t.Errorf("spare queue: reinjected %d dropped %d", q.reinjected.Load(), q.dropped.Load())
	}

	d.Abandon()
	out, err := tp.s.Run(ctx, "ip", "link", "show", svIf)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(out, []byte("xdp")) {
		t.Errorf("XDP still attached after the daemon died: %s", out)
	}
	mid := tp.kernelCounters(t)
	for i := range 5 {
		if err := get(cl); err != nil {
			t.Fatalf("after the daemon died, request %d: %v", i, err)
		}
	}
	if end := tp.kernelCounters(t); end[kViaVeth] == mid[kViaVeth] {
		t.Error("after the daemon died, no traffic arrived on sv0")
	}
}

// deltaReport is b - a, rule for rule (same rulesets).
func deltaReport(a, b *report.Report) *report.Report {
	d := *b
	d.Packets -= a.Packets
	d.Accepted -= a.Accepted
	d.Dropped -= a.Dropped
	d.Malformed -= a.Malformed
	d.Hotdropped -= a.Hotdropped
	d.NotFiltered -= a.NotFiltered
	d.Tables = nil
	for ti, bt := range b.Tables {
		nt := bt
		nt.Chains = nil
		for ci, bc := range bt.Chains {
			ac := a.Tables[ti].Chains[ci]
			nc := bc
			nc.PolicyPackets -= ac.PolicyPackets
			nc.PolicyBytes -= ac.PolicyBytes
			nc.Rules = append([]report.Rule(nil), bc.Rules...)
			for ri := range nc.Rules {
				nc.Rules[ri].Packets -= ac.Rules[ri].Packets
				nc.Rules[ri].Bytes -= ac.Rules[ri].Bytes
			}
			nt.Chains = append(nt.Chains, nc)
		}
		d.Tables = append(d.Tables, nt)
	}
	return &d
}

// autoLimitRules has a limit rule that no fallback site reaches, before
// a recent rule (a site): in the combined tier with RateLimitsInXDP the
// limit runs in the program. It is in raw PREROUTING: in filter INPUT
// the sites before INPUT (IPv4 options, fragments) would reach it.
const autoLimitRules = `*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -p udp -m udp --dport 9999 -m limit --limit 1/hour --limit-burst 5 -j ACCEPT
-A PREROUTING -p udp -m udp --dport 9999 -j DROP
-A PREROUTING -p udp -m udp --dport 7777 -m recent --name r --set -j DROP
COMMIT
`

// TestAutoRateLimitsInXDP runs the combined tier with RateLimitsInXDP: the
// limit's burst passes and the rest of its flood is dropped by the
// program, none of it handed to userspace (whose counters for those
// rules stay zero), while frames for the recent rule still fall back and
// are counted there.
func TestAutoRateLimitsInXDP(t *testing.T) {
	tp := newTopo(t)
	rs, err := rules.Parse(strings.NewReader(autoLimitRules), rules.Options{Family: packet.FamilyIPv4, File: "limit.rules", HZ: 250})
	if err != nil {
		t.Fatal(err)
	}
	pr, err := engine.Compile(engine.Config{Rules4: rs, HZ: 250, InIface: svIf, LocalAddrs: []netip.Addr{svAddr}}, nil, Monotonic())
	if err != nil {
		t.Fatal(err)
	}
	var d *Daemon
	err = tp.s.Do(func() error {
		var err error
		d, err = Start(Config{Iface: svIf, Program: pr, LockDir: tp.lockDir, Logf: t.Logf,
			XDP: &XDPConfig{Rules4: rs, LocalAddrs: []netip.Addr{svAddr}, RateLimitsInXDP: true, HZ: 250}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	modes := map[int]string{}
	for _, r := range d.XDPSpec().Rules {
		modes[r.Rule.Line] = r.Mode
	}
	if modes[4] != "xdp" || modes[6] != "fallback" {
		t.Fatalf("rule modes %v: want the limit (line 4) in XDP and the recent rule (line 6) a fallback site", modes)
	}

	const nLimit, nRecent = 100, 50
	frames := append(tp.udpFramesForTest(nLimit, 9999), tp.udpFramesForTest(nRecent, 7777)...)
	tp.sendForTest(t, frames)
	userspace := func(line int) uint64 {
		ch := pr.Report(d.Workers()...).Find("ipv4", "raw").Chain("PREROUTING")
		for _, r := range ch.Rules {
			if r.Line == line {
				return r.Packets
			}
		}
		t.Fatalf("no rule at line %d", line)
		return 0
	}
	waitForTest(t, "the recent frames in userspace", func() bool { return userspace(6) == nRecent })
	rep := d.Report()
	got := map[int]uint64{}
	for _, r := range rep.Find("ipv4", "raw").Chain("PREROUTING").Rules {
		got[r.Line] = r.Packets
	}
	if got[4] != 5 || got[5] != nLimit-5 || got[6] != nRecent {
		t.Errorf("rule packets %v: want line 4: 5 (the burst), line 5: %d, line 6: %d", got, nLimit-5, nRecent)
	}
	if u4, u5 := userspace(4), userspace(5); u4 != 0 || u5 != 0 {
		t.Errorf("userspace evaluated the limit's frames: line 4 %d, line 5 %d packets", u4, u5)
	}
}
