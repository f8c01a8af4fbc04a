package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-project/sluice/engine"
	"github.com/sluice-project/sluice/engine/ipset"
	"github.com/sluice-project/sluice/packet"
	"github.com/sluice-project/sluice/rules"
	"github.com/sluice-project/sluice/xdp"
)

// TestReloadAuto reloads the combined tier (--mode auto) again and again
// while legitimate UDP arrives, half of it judged in XDP (to 5353) and
// half resumed in userspace at a fallback site (to 7777, the CHK recent
// match): every datagram reaches the server's kernel exactly once. The
// new rules take effect (a DROP of port 6666 added by a reload), and a
// broken file changes nothing.
func TestReloadAuto(t *testing.T) {
	tp := newTopo(t)
	ctx := context.Background()
	for _, r := range [][]string{
		{"-A", "INPUT", "-i", "sluice0", "-p", "udp", "-m", "udp", "--dport", "7777"},
		{"-A", "INPUT", "-i", "sv0", "-p", "udp", "-m", "udp", "--dport", "5353"},
		{"-A", "INPUT", "-p", "udp", "-m", "udp", "--dport", "6666"},
	} {
		if _, err := tp.s.Run(ctx, "iptables-legacy", append([]string{"-w", "10"}, r...)...); err != nil {
			t.Fatal(err)
		}
	}
	const (
		k7777 = "-i sluice0 -p udp -m udp --dport 7777"
		k5353 = "-i sv0 -p udp -m udp --dport 5353"
		k6666 = "-p udp -m udp --dport 6666"
	)
	with6666 := strings.Replace(autoRules, "-A INPUT -p udp -m udp --dport 9999 -j DROP\n",
		"-A INPUT -p udp -m udp --dport 6666 -j DROP\n-A INPUT -p udp -m udp --dport 9999 -j DROP\n", 1)
	var text atomic.Value
	text.Store(autoRules)
	st := engine.NewState(nil, 250)
	reload := func() (*Reloaded, error) {
		rs, err := rules.Parse(strings.NewReader(text.Load().(string)), rules.Options{Family: packet.FamilyIPv4, File: "auto.rules", HZ: 250})
		if err != nil {
			return nil, err
		}
		pr, err := engine.Compile(engine.Config{Rules4: rs, HZ: 250, InIface: svIf, LocalAddrs: []netip.Addr{svAddr}}, st, Monotonic())
		if err != nil {
			return nil, err
		}
		return &Reloaded{Program: pr, Rules4: rs}, nil
	}
	r0, err := reload()
	if err != nil {
		t.Fatal(err)
	}
	var d *Daemon
	err = tp.s.Do(func() error {
		var err error
		d, err = Start(Config{Iface: svIf, Program: r0.Program, LockDir: tp.lockDir, Logf: t.Logf,
			XDP: &XDPConfig{Rules4: r0.Rules4, LocalAddrs: []netip.Addr{svAddr}, Reload: reload}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Stop()

	// A broken file: the error names the position, nothing changes.
	spec0, pr0 := d.XDPSpec(), d.Program()
	text.Store(autoRules + "*raw\n-A PREROUTING -m nosuchmatch -j DROP\nCOMMIT\n")
	if err := d.Reload(); err == nil || !strings.Contains(err.Error(), "auto.rules:") {
		t.Fatalf("broken reload: %v, want a file:line:col error", err)
	}
	if d.XDPSpec() != spec0 || d.Program() != pr0 || d.Stats().ReloadFailures != 1 {
		t.Fatal("a failed reload changed the running programs")
	}

	// Legitimate traffic under reloads.
	mac := []packet.BuildOpt{packet.WithSrcMAC([6]byte(tp.clMAC)), packet.WithDstMAC([6]byte(tp.svMAC))}
	const nEach = 20000
	var frames [][]byte
	for i := range nEach {
		src := netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})
		frames = append(frames,
			packet.BuildIPv4(src, svAddr, packet.ProtoUDP, packet.BuildUDP(uint16(2000+i%50000), 7777, []byte("a good datagram")), mac...),
			packet.BuildIPv4(src, svAddr, packet.ProtoUDP, packet.BuildUDP(uint16(2000+i%50000), 5353, []byte("q")), mac...))
	}
	// judged survives the XDP counters' reset at each reload.
	var jmu sync.Mutex
	var jbase, jlast uint64
	judged := func() uint64 {
		jmu.Lock()
		defer jmu.Unlock()
		var x uint64
		if v, err := d.XDPCounters(); err == nil && len(v) > xdp.StatFallback {
			x = v[xdp.StatPackets] - v[xdp.StatFallback]
		}
		if x < jlast {
			jbase += jlast
		}
		jlast = x
		return jbase + x + d.Judged()
	}
	before := tp.kernelCounters(t)
	sent := make(chan error, 1)
	go func() {
		_, err := tp.send(frames, judged)
		sent <- err
	}()
	reloads := 0
	for done := false; !done; {
		select {
		case err := <-sent:
			if err != nil {
				t.Fatal(err)
			}
			done = true
		case <-time.After(2 * time.Millisecond):
			if reloads%2 == 0 {
				text.Store(with6666)
			} else {
				text.Store(autoRules)
			}
			if err := d.Reload(); err != nil {
				t.Fatalf("reload %d: %v", reloads+1, err)
			}
			reloads++
		}
	}
	want := func(k string, n uint64) func(map[string]uint64) bool {
		return func(m map[string]uint64) bool { return m[k]-before[k] == n }
	}
	var after map[string]uint64
	waitForTest(t, "every legitimate datagram in the kernel", func() bool {
		after = tp.kernelCounters(t)
		return want(k7777, nEach)(after) && want(k5353, nEach)(after)
	})
	tot := d.Stats().Totals()
	t.Logf("%d reloads under traffic; kernel saw %d via the TAP, %d via sv0; resumed %d, no site %d, lost %d",
		reloads, after[k7777]-before[k7777], after[k5353]-before[k5353], tot.Resumed, tot.NoSite, tot.Lost())
	if reloads < 3 {
		t.Errorf("only %d reloads happened under traffic", reloads)
	}
	if tot.NoSite != 0 {
		t.Errorf("%d frames came without a valid site of their generation", tot.NoSite)
	}
	// Stay a while: no duplicate arrives late.
	time.Sleep(200 * time.Millisecond)
	if after = tp.kernelCounters(t); !want(k7777, nEach)(after) || !want(k5353, nEach)(after) {
		t.Errorf("kernel saw %d and %d, want %d each", after[k7777]-before[k7777], after[k5353]-before[k5353], nEach)
	}

	// The new rules take effect: 6666 dropped in XDP after the reload
	// that adds the rule, accepted before it.
	text.Store(autoRules)
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	six := make([][]byte, 50)
	for i := range six {
		six[i] = packet.BuildIPv4(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), svAddr, packet.ProtoUDP, packet.BuildUDP(uint16(3000+i), 6666, []byte("x")), mac...)
	}
	b6 := tp.kernelCounters(t)[k6666]
	tp.sendForTest(t, six)
	waitForTest(t, "6666 accepted without the rule", func() bool { return tp.kernelCounters(t)[k6666]-b6 == 50 })
	text.Store(with6666)
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	b6 = tp.kernelCounters(t)[k6666]
	tp.sendForTest(t, six)
	waitForTest(t, "the new rule to drop 6666", func() bool { return ruleCounter(d.Report(), "filter", "INPUT", 1) == 50 })
	time.Sleep(100 * time.Millisecond)
	if n := tp.kernelCounters(t)[k6666] - b6; n != 0 {
		t.Errorf("the kernel saw %d datagrams to 6666 after the reload that drops them", n)
	}
	if s := d.Stats(); s.Reloads != uint64(reloads+2) || s.ReloadFailures != 1 {
		t.Errorf("stats: %d reloads, %d failures", s.Reloads, s.ReloadFailures)
	}
}

// TestCaptureXDP captures in --mode xdp through the control socket:
// `sluice capture --dropped` and `--rule` give pcaps tcpdump reads with
// the frames the compiled program dropped; then a reload through the
// control socket replaces the program, and a broken one changes nothing.
func TestCaptureXDP(t *testing.T) {
	tp := newTopo(t)
	reg, err := ipset.Parse("e2e.ipset", strings.NewReader(xdpSets), 0)
	if err != nil {
		t.Fatal(err)
	}
	var text atomic.Value
	text.Store(xdpRules)
	reload := func() (*Reloaded, error) {
		rs, err := rules.Parse(strings.NewReader(text.Load().(string)), rules.Options{Family: packet.FamilyIPv4, File: "e2e.rules", HZ: 250, Sets: reg})
		if err != nil {
			return nil, err
		}
		return &Reloaded{Rules4: rs}, nil
	}
	var d *XDPDaemon
	err = tp.s.Do(func() error {
		var err error
		d, err = StartXDP(XDPConfig{Iface: svIf, Rules4: parseXDPRules(t, xdpRules), LocalAddrs: []netip.Addr{svAddr}, LockDir: tp.lockDir, Logf: t.Logf, Reload: reload})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	ctlPath := filepath.Join(t.TempDir(), "ctl.sock")
	ctl, err := ServeControl(ctlPath, d)
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	capture := func(req CaptureRequest, frames [][]byte) string {
		t.Helper()
		return tp.captureForTest(t, ctlPath, req, frames, func() bool {
			d.capture.mu.Lock()
			defer d.capture.mu.Unlock()
			return d.capture.session != nil
		})
	}
	accepted := tp.udpFramesForTest(20, 5353)
	out := capture(CaptureRequest{Dropped: true, Count: 10}, append(accepted, tp.udpFramesForTest(50, 9999)...))
	if n := strings.Count(out, ".9999: UDP"); n != 10 || strings.Contains(out, ".5353") {
		t.Fatalf("--dropped: tcpdump read %d frames to port 9999, want 10 and none to 5353:\n%s", n, out)
	}
	out = capture(CaptureRequest{Accepted: true, Count: 5}, append(tp.udpFramesForTest(20, 9999), accepted...))
	if n := strings.Count(out, " > 10.77.0.2.5353: "); n != 5 || strings.Contains(out, ".9999") {
		t.Fatalf("--accepted: tcpdump read %d frames to port 5353, want 5 and none to 9999:\n%s", n, out)
	}
	out = capture(CaptureRequest{Rule: "raw:PREROUTING:1", Count: 3}, append(accepted, tp.udpFramesForTest(10, 9999)...))
	if n := strings.Count(out, ".9999: UDP"); n != 3 {
		t.Fatalf("--rule raw:PREROUTING:1: tcpdump read %d frames to port 9999, want 3:\n%s", n, out)
	}

	// Reload through the control socket: without the UDP rule, the
	// kernel sees the datagrams to 9999.
	text.Store(strings.Replace(xdpRules, "-A PREROUTING -p udp -m udp --dport 9999 -j DROP\n", "", 1))
	if err := RequestReload(ctlPath); err != nil {
		t.Fatalf("reload: %v", err)
	}
	before := tp.kernelCounters(t)[kUDP]
	tp.sendForTest(t, tp.udpFramesForTest(20, 9999))
	waitForTest(t, "20 datagrams in the kernel", func() bool { return tp.kernelCounters(t)[kUDP]-before == 20 })
	spec := d.Spec()
	text.Store(xdpRules + "*raw\n-A PREROUTING -m nosuchmatch -j DROP\nCOMMIT\n")
	err = RequestReload(ctlPath)
	if err == nil || !strings.Contains(err.Error(), "e2e.rules:") {
		t.Fatalf("broken reload: %v, want a file:line:col error", err)
	}
	if d.Spec() != spec {
		t.Fatal("a failed reload replaced the program")
	}
	if s := d.Stats(); s.Reloads != 1 || s.ReloadFailures != 1 {
		t.Errorf("stats: %d reloads, %d failures", s.Reloads, s.ReloadFailures)
	}
}

// TestReloadSetsInPlace reloads --mode xdp with only a set's contents
// changed: the running program's maps are updated (same filter, same
// generation, counters restarted), and the new entry drops at once;
// changing a rule still replaces the program.
func TestReloadSetsInPlace(t *testing.T) {
	tp := newTopo(t)
	const ruleText = "*raw\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p udp -m set --match-set block src -j DROP\nCOMMIT\n"
	setsWith := func(extra string) string {
		var b strings.Builder
		b.WriteString("create block hash:net family inet\n")
		for i := range 40 { // more than the compiler inlines: a map
			fmt.Fprintf(&b, "add block 100.%d.0.0/16\n", 64+i)
		}
		b.WriteString(extra)
		return b.String()
	}
	var rulesNow, setsNow atomic.Value
	rulesNow.Store(ruleText)
	setsNow.Store(setsWith(""))
	reload := func() (*Reloaded, error) {
		reg, err := ipset.Parse("block.ipset", strings.NewReader(setsNow.Load().(string)), 0)
		if err != nil {
			return nil, err
		}
		rs, err := rules.Parse(strings.NewReader(rulesNow.Load().(string)), rules.Options{Family: packet.FamilyIPv4, File: "block.rules", HZ: 250, Sets: reg})
		if err != nil {
			return nil, err
		}
		return &Reloaded{Rules4: rs}, nil
	}
	r0, err := reload()
	if err != nil {
		t.Fatal(err)
	}
	var d *XDPDaemon
	err = tp.s.Do(func() error {
		var err error
		d, err = StartXDP(XDPConfig{Iface: svIf, Rules4: r0.Rules4, LocalAddrs: []netip.Addr{svAddr}, LockDir: tp.lockDir, Logf: t.Logf, Reload: reload})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	mac := []packet.BuildOpt{packet.WithSrcMAC([6]byte(tp.clMAC)), packet.WithDstMAC([6]byte(tp.svMAC))}
	frames := make([][]byte, 50)
	for i := range frames {
		frames[i] = packet.BuildIPv4(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), svAddr, packet.ProtoUDP, packet.BuildUDP(uint16(3000+i), 4444, []byte("x")), mac...)
	}
	seen := func() uint64 {
		v, err := d.Counters()
		if err != nil {
			return 0
		}
		return v[xdp.StatPackets]
	}
	tp.sendForTest(t, frames)
	waitForTest(t, "the program to see the frames", func() bool { return seen() >= 50 })
	if n := ruleCounter(d.Report(), "raw", "PREROUTING", 1); n != 0 {
		t.Fatalf("dropped %d before the source is in the set", n)
	}

	tg0 := d.tier.Load()
	setsNow.Store(setsWith("add block 198.51.100.0/24\n"))
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	tg1 := d.tier.Load()
	if tg1.filter != tg0.filter || tg1.gen != tg0.gen {
		t.Fatalf("a sets-only reload replaced the program (generation %d -> %d)", tg0.gen, tg1.gen)
	}
	if n := seen(); n != 0 {
		t.Errorf("counters after the reload: %d packets, want 0", n)
	}
	tp.sendForTest(t, frames)
	waitForTest(t, "the updated set to drop the source", func() bool { return ruleCounter(d.Report(), "raw", "PREROUTING", 1) == 50 })

	rulesNow.Store(strings.Replace(ruleText, "COMMIT", "-A PREROUTING -p udp -m udp --dport 9 -j DROP\nCOMMIT", 1))
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	if tg2 := d.tier.Load(); tg2.filter == tg1.filter || tg2.gen != tg1.gen+1 {
		t.Fatalf("a rule change did not replace the program (generation %d -> %d)", tg1.gen, tg2.gen)
	}
	if s := d.Stats(); s.Reloads != 2 || s.ReloadFailures != 0 {
		t.Errorf("stats: %d reloads, %d failures", s.Reloads, s.ReloadFailures)
	}
}
