package daemon

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sluice-project/sluice/engine/ipset"
	"github.com/sluice-project/sluice/packet"
	"github.com/sluice-project/sluice/report"
	"github.com/sluice-project/sluice/rules"
	"github.com/sluice-project/sluice/xdp"
)

// xdpRules is sluiceRules in raw PREROUTING (no INPUT chain: nothing
// needs reassembly), the spoofed /24 as a hash:net set.
const xdpRules = `*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -p udp -m udp --dport 9999 -j DROP
-A PREROUTING -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -m set --match-set spoofed src -j DROP
COMMIT
`

const xdpSets = `create spoofed hash:net family inet
add spoofed 203.0.113.0/24
add spoofed 203.0.113.128/25 nomatch
add spoofed 203.0.113.192/26
`

func parseXDPRules(t *testing.T, text string) *rules.Ruleset {
	t.Helper()
	reg, err := ipset.Parse("e2e.ipset", strings.NewReader(xdpSets), 0)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rules.Parse(strings.NewReader(text), rules.Options{Family: packet.FamilyIPv4, File: "e2e.rules", HZ: 250, Sets: reg})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func ruleCounter(rep *report.Report, table, chain string, n int) uint64 {
	t := rep.Find("ipv4", table)
	if t == nil {
		return 0
	}
	c := t.Chain(chain)
	if c == nil || n > len(c.Rules) {
		return 0
	}
	return c.Rules[n-1].Packets
}

// TestEndToEndXDP runs --mode xdp on the server's veth: the flood is
// dropped in XDP (the program's counters say so and the server's kernel
// never sees it), every legitimate request succeeds, and after Abandon
// (the process dying) the interface works without sluice.
func TestEndToEndXDP(t *testing.T) {
	tp := newTopo(t)
	tp.serveHTTP(t)
	// A ruleset with INPUT chains needs the userspace tier: refused.
	err := tp.s.Do(func() error {
		_, err := StartXDP(XDPConfig{Iface: svIf, Rules4: parseXDPRules(t, sluiceRules), LocalAddrs: []netip.Addr{svAddr}, LockDir: tp.lockDir})
		return err
	})
	if !errors.Is(err, ErrFallbackSites) {
		t.Fatalf("StartXDP with INPUT rules: %v", err)
	}
	t.Logf("refused as expected: %v", err)

	rs := parseXDPRules(t, xdpRules)
	var d *XDPDaemon
	err = tp.s.Do(func() error {
		var err error
		d, err = StartXDP(XDPConfig{Iface: svIf, Rules4: rs, LocalAddrs: []netip.Addr{svAddr}, LockDir: tp.lockDir, Logf: t.Logf})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	c := tp.client()
	const requests = 20
	for i := range requests {
		if err := get(c); err != nil {
			t.Fatalf("request %d through XDP: %v", i, err)
		}
	}
	before := tp.kernelCounters(t)
	judged := func() uint64 {
		v, err := d.Counters()
		if err != nil {
			return 0
		}
		return v[xdp.StatPackets]
	}
	took, err := tp.flood(t, judged)
	if err != nil {
		t.Fatal(err)
	}
	for i := range requests {
		if err := get(c); err != nil {
			t.Fatalf("request %d during/after the flood: %v", i, err)
		}
	}
	// SYNs from 203.0.113.128-191 are nomatch in the set: they pass.
	spoofDropped := uint64(floodEach / 256 * 192)
	for i := floodEach / 256 * 256; i < floodEach; i++ {
		if b := byte(i); b < 128 || b >= 192 {
			spoofDropped++
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	var rep *report.Report
	for {
		rep = d.Report()
		if ruleCounter(rep, "raw", "PREROUTING", 1) >= floodEach && ruleCounter(rep, "raw", "PREROUTING", 2) >= spoofDropped || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	after := tp.kernelCounters(t)
	t.Logf("flood of %d frames sent in %v; report: packets %d accepted %d dropped %d; rule 1 %d, rule 2 %d",
		2*floodEach, took, rep.Packets, rep.Accepted, rep.Dropped, ruleCounter(rep, "raw", "PREROUTING", 1), ruleCounter(rep, "raw", "PREROUTING", 2))
	if got := ruleCounter(rep, "raw", "PREROUTING", 1); got != floodEach {
		t.Errorf("UDP flood dropped in XDP: %d, want %d", got, floodEach)
	}
	if got := ruleCounter(rep, "raw", "PREROUTING", 2); got != spoofDropped {
		t.Errorf("spoofed SYNs dropped in XDP: %d, want %d", got, spoofDropped)
	}
	if n := after[kUDP] - before[kUDP]; n != 0 {
		t.Errorf("the server's kernel saw %d flood datagrams", n)
	}
	if n := after[kSpoofed] - before[kSpoofed]; n != uint64(floodEach)-spoofDropped {
		t.Errorf("the server's kernel saw %d spoofed SYNs, want the %d nomatch ones", n, uint64(floodEach)-spoofDropped)
	}
	if after[kViaVeth] == 0 {
		t.Errorf("legitimate traffic did not arrive on %s", svIf)
	}
	st := d.Stats()
	if st.Report == nil || st.Report.Packets != rep.Packets && st.Report.Packets < rep.Packets {
		t.Errorf("Stats report %+v", st.Report)
	}
	d.Abandon()
	for i := range requests {
		if err := get(c); err != nil {
			t.Fatalf("request %d after Abandon: %v", i, err)
		}
	}
	// Nothing is attached any more: a second instance can start.
	err = tp.s.Do(func() error {
		d2, err := StartXDP(XDPConfig{Iface: svIf, Rules4: rs, LocalAddrs: []netip.Addr{svAddr}, LockDir: tp.lockDir})
		if err == nil {
			d2.Stop()
		}
		return err
	})
	if err != nil {
		t.Fatalf("restart after Abandon: %v", err)
	}
}

// TestXDPRateLimits runs a hashlimit ruleset with the XDP tier alone:
// refused while limit and hashlimit are fallback sites, accepted with
// RateLimitsInXDP, and then one source's burst passes and the rest of
// its flood is dropped by the program's buckets.
func TestXDPRateLimits(t *testing.T) {
	tp := newTopo(t)
	const text = `*raw
:PREROUTING ACCEPT [0:0]
-A PREROUTING -p udp -m udp --dport 4444 -m hashlimit --hashlimit-above 1/sec --hashlimit-burst 5 --hashlimit-mode srcip --hashlimit-name per_src -j DROP
COMMIT
`
	rs, err := rules.Parse(strings.NewReader(text), rules.Options{Family: packet.FamilyIPv4, File: "rl.rules", HZ: 250})
	if err != nil {
		t.Fatal(err)
	}
	cfg := XDPConfig{Iface: svIf, Rules4: rs, LocalAddrs: []netip.Addr{svAddr}, LockDir: tp.lockDir, Logf: t.Logf, HZ: 250}
	err = tp.s.Do(func() error {
		d, err := StartXDP(cfg)
		if err == nil {
			d.Stop()
		}
		return err
	})
	if !errors.Is(err, ErrFallbackSites) {
		t.Fatalf("StartXDP with hashlimit in userspace: %v, want ErrFallbackSites", err)
	}
	cfg.RateLimitsInXDP = true
	var d *XDPDaemon
	if err := tp.s.Do(func() error { d, err = StartXDP(cfg); return err }); err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	mac := []packet.BuildOpt{packet.WithSrcMAC([6]byte(tp.clMAC)), packet.WithDstMAC([6]byte(tp.svMAC))}
	const n = 200
	frames := make([][]byte, n)
	for i := range frames {
		frames[i] = packet.BuildIPv4(netip.MustParseAddr("198.51.100.7"), svAddr, packet.ProtoUDP, packet.BuildUDP(uint16(3000+i), 4444, []byte("x")), mac...)
	}
	start := time.Now()
	tp.sendForTest(t, frames)
	sent := time.Since(start)
	waitForTest(t, "the program to judge the frames", func() bool {
		v, err := d.Counters()
		return err == nil && v[xdp.StatPackets] >= n
	})
	// Burst 5 passes; then one token a second refills.
	dropped := ruleCounter(d.Report(), "raw", "PREROUTING", 1)
	maxPass := uint64(5 + sent/time.Second + 1)
	t.Logf("%d frames in %v: %d dropped by the program's hashlimit", n, sent, dropped)
	if dropped > n-5 || dropped < n-maxPass {
		t.Errorf("dropped %d of %d, want between %d and %d", dropped, n, n-maxPass, n-5)
	}
	// The metrics read the table from the program's map: one source.
	if hs := d.HashlimitStats(); len(hs) != 1 || hs[0].Name != "per_src" || hs[0].Entries != 1 || hs[0].Max == 0 || hs[0].FullDrops != 0 {
		t.Errorf("hashlimit stats %+v, want per_src with 1 entry", hs)
	}

	// A reload that changes another rule replaces the program but keeps
	// the table: the source gets no fresh burst.
	changed := strings.Replace(text, "COMMIT", "-A PREROUTING -p udp -m udp --dport 9 -j DROP\nCOMMIT", 1)
	d.cfg.Reload = func() (*Reloaded, error) {
		rs, err := rules.Parse(strings.NewReader(changed), rules.Options{Family: packet.FamilyIPv4, File: "rl.rules", HZ: 250})
		return &Reloaded{Rules4: rs}, err
	}
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	tp.sendForTest(t, frames[:3])
	waitForTest(t, "the new program to judge 3 frames", func() bool {
		v, err := d.Counters()
		return err == nil && v[xdp.StatPackets] >= 3
	})
	if got := ruleCounter(d.Report(), "raw", "PREROUTING", 1); got < 2 {
		t.Errorf("after the reload the program dropped %d of 3 frames from the flooding source: its bucket was reset", got)
	}
}
