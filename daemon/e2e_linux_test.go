package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sluice-project/sluice/engine"
	"github.com/sluice-project/sluice/internal/testnet"
	"github.com/sluice-project/sluice/packet"
	"github.com/sluice-project/sluice/rules"
)

// The e2e topology: a client namespace and a server namespace joined by
// a veth, cl0 (10.77.0.1) in the client, sv0 (10.77.0.2) in the server.
const (
	clIf, svIf = "cl0", "sv0"
	httpPort   = 8080
)

var (
	clAddr = netip.MustParseAddr("10.77.0.1")
	svAddr = netip.MustParseAddr("10.77.0.2")
)

// sluiceRules drops UDP to port 9999 and SYNs from a spoofed /24.
const sluiceRules = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p udp -m udp --dport 9999 -j DROP
-A INPUT -s 203.0.113.0/24 -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -j DROP
COMMIT
`

// kernelRules only count, in the server's own iptables: what of the
// flood the server's kernel saw, and on which interface the legitimate
// traffic arrived.
const kernelRules = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p udp -m udp --dport 9999
-A INPUT -s 203.0.113.0/24 -p tcp
-A INPUT -i sluice0 -p tcp -m tcp --dport 8080
-A INPUT -i sv0 -p tcp -m tcp --dport 8080
COMMIT
`

type topo struct {
	c, s         *testnet.NS
	clMAC, svMAC net.HardwareAddr
	lockDir      string
}

func newTopo(t *testing.T) *topo {
	t.Helper()
	return buildTopo(t, topoOptions{prefix: "e2e", clIf: clIf, svIf: svIf, kernelRules: kernelRules})
}

// topoOptions vary the e2e topology: interface names, RX/TX queues of
// each veth end (0: the default, one), the server's own iptables rules.
type topoOptions struct {
	prefix, clIf, svIf string
	queues             int
	kernelRules        string
}

func buildTopo(t *testing.T, o topoOptions) *topo {
	t.Helper()
	clIf, svIf := o.clIf, o.svIf
	testnet.RequireForTest(t)
	tp := &topo{lockDir: t.TempDir()}
	var err error
	if tp.c, err = testnet.NewNS(o.prefix + "-c"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tp.c.Close() })
	if tp.s, err = testnet.NewNS(o.prefix + "-s"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tp.s.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	steps := []struct {
		ns   *testnet.NS
		args []string
	}{
		{tp.c, []string{"sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"}},
		{tp.s, []string{"sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"}},
		{tp.c, vethArgs(clIf, svIf, o.queues, tp.s.Name)},
		{tp.c, []string{"ip", "addr", "add", clAddr.String() + "/24", "dev", clIf}},
		{tp.s, []string{"ip", "addr", "add", svAddr.String() + "/24", "dev", svIf}},
		{tp.c, []string{"ip", "link", "set", clIf, "up"}},
		{tp.s, []string{"ip", "link", "set", svIf, "up"}},
		// A default route, so that loose reverse-path filtering (and
		// replies to the spoofed flood, were any to get through) have a
		// route.
		{tp.s, []string{"ip", "route", "add", "default", "via", clAddr.String()}},
	}
	for _, st := range steps {
		if _, err := st.ns.Run(ctx, st.args[0], st.args[1:]...); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tp.s.RunInput(ctx, []byte(o.kernelRules), "iptables-legacy-restore", "--wait=10"); err != nil {
		t.Fatal(err)
	}
	for _, x := range []struct {
		ns  *testnet.NS
		ifn string
		mac *net.HardwareAddr
	}{{tp.c, clIf, &tp.clMAC}, {tp.s, svIf, &tp.svMAC}} {
		err := x.ns.Do(func() error {
			ifc, err := net.InterfaceByName(x.ifn)
			if err == nil {
				*x.mac = ifc.HardwareAddr
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := tp.c.Do(func() error { return testnet.DisableTxChecksum(clIf) }); err != nil {
		t.Fatalf("disable TX checksum offload on %s: %v", clIf, err)
	}
	// Wait until the veth is up on both sides.
	deadline := time.Now().Add(10 * time.Second)
	for {
		a, _ := tp.c.Run(ctx, "cat", "/sys/class/net/"+clIf+"/operstate")
		if strings.TrimSpace(string(a)) == "up" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("veth not up")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return tp
}

// vethArgs is `ip link add` for a veth pair, with queues RX and TX queues
// on each end when queues > 0.
func vethArgs(a, b string, queues int, peerNS string) []string {
	args := []string{"ip", "link", "add", a}
	q := []string{}
	if queues > 0 {
		n := strconv.Itoa(queues)
		q = []string{"numtxqueues", n, "numrxqueues", n}
	}
	args = append(args, q...)
	args = append(args, "type", "veth", "peer", "name", b)
	args = append(args, q...)
	return append(args, "netns", peerNS)
}

func (tp *topo) program(t *testing.T) *engine.Program {
	t.Helper()
	rs, err := rules.Parse(strings.NewReader(sluiceRules), rules.Options{Family: packet.FamilyIPv4, File: "e2e.rules", HZ: 250})
	if err != nil {
		t.Fatal(err)
	}
	pr, err := engine.Compile(engine.Config{Rules4: rs, HZ: 250, InIface: svIf, LocalAddrs: []netip.Addr{svAddr}}, nil, Monotonic())
	if err != nil {
		t.Fatal(err)
	}
	return pr
}

func (tp *topo) start(t *testing.T, pr *engine.Program) (*Daemon, error) {
	var d *Daemon
	err := tp.s.Do(func() error {
		var err error
		d, err = Start(Config{Iface: svIf, Program: pr, LockDir: tp.lockDir, Logf: t.Logf})
		return err
	})
	return d, err
}

// serveHTTP serves a fixed body on svAddr:8080 in the server namespace.
func (tp *topo) serveHTTP(t *testing.T) {
	var ln net.Listener
	err := tp.s.Do(func() error {
		var err error
		ln, err = net.Listen("tcp4", netip.AddrPortFrom(svAddr, httpPort).String())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello from behind sluice\n")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// client returns an HTTP client whose connections are made in the client
// namespace, one TCP connection per request (so every request is a SYN
// through sluice).
func (tp *topo) client() *http.Client {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := tp.c.Do(func() error {
			var err error
			c, err = (&net.Dialer{Timeout: 3 * time.Second}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true}}
}

func get(c *http.Client) error {
	resp, err := c.Get(fmt.Sprintf("http://%s:%d/", svAddr, httpPort))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 || string(body) != "hello from behind sluice\n" {
		return fmt.Errorf("status %d body %q", resp.StatusCode, body)
	}
	return nil
}

var counterLine = regexp.MustCompile(`^\[(\d+):(\d+)\] -A INPUT (.*)$`)

// kernelCounters reads the server's INPUT rule packet counters by rule
// text.
func (tp *topo) kernelCounters(t *testing.T) map[string]uint64 {
	t.Helper()
	out, err := tp.s.Run(context.Background(), "iptables-legacy-save", "-c", "-t", "filter")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]uint64{}
	for _, line := range strings.Split(string(out), "\n") {
		if sm := counterLine.FindStringSubmatch(line); sm != nil {
			n, _ := strconv.ParseUint(sm[1], 10, 64)
			m[sm[3]] = n
		}
	}
	return m
}

const (
	kUDP      = "-p udp -m udp --dport 9999"
	kSpoofed  = "-s 203.0.113.0/24 -p tcp"
	kViaTAP   = "-i sluice0 -p tcp -m tcp --dport 8080"
	kViaVeth  = "-i sv0 -p tcp -m tcp --dport 8080"
	floodEach = 20000
)

// flood sends floodEach spoofed UDP datagrams to port 9999 and
// floodEach spoofed SYNs to port 8080 from the client namespace through
// an AF_PACKET socket, and returns how long sending took.
//
// With pace, the sender waits whenever more than window frames are in
// flight (sent but not yet judged by sluice): on a shared two-core test
// machine an unpaced sender starves the worker, and the kernel then drops
// frames for an empty fill ring (counted as lost, not as dropped by a rule).
func (tp *topo) flood(t *testing.T, judged func() uint64) (time.Duration, error) {
	mac := []packet.BuildOpt{packet.WithSrcMAC([6]byte(tp.clMAC)), packet.WithDstMAC([6]byte(tp.svMAC))}
	frames := make([][]byte, 0, 2*floodEach)
	for i := range floodEach {
		udpSrc := netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})
		synSrc := netip.AddrFrom4([4]byte{203, 0, 113, byte(i)})
		frames = append(frames,
			packet.BuildIPv4(udpSrc, svAddr, packet.ProtoUDP, packet.BuildUDP(uint16(1024+i%60000), 9999, make([]byte, 18)), mac...),
			packet.BuildIPv4(synSrc, svAddr, packet.ProtoTCP, packet.BuildTCP(uint16(1024+i%60000), httpPort, packet.TCPSyn, nil), mac...))
	}
	return tp.send(frames, judged)
}

// send writes frames from the client namespace through an AF_PACKET
// socket on cl0, paced by judged (see flood) when not nil.
func (tp *topo) send(frames [][]byte, judged func() uint64) (time.Duration, error) {
	var fd int
	err := tp.c.Do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		ifc, err := net.InterfaceByName(clIf)
		if err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifc.Index})
	})
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	const window = 1024
	var base uint64
	if judged != nil {
		base = judged()
	}
	start := time.Now()
	for i, f := range frames {
		if judged != nil && i%128 == 0 {
			for wait := time.Now(); uint64(i)+base > judged()+window && time.Since(wait) < time.Second; {
				time.Sleep(20 * time.Microsecond)
			}
		}
		for {
			_, err := unix.Write(fd, f)
			if err == nil {
				break
			}
			if errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				time.Sleep(50 * time.Microsecond)
				continue
			}
			return 0, err
		}
	}
	return time.Since(start), nil
}

func TestEndToEnd(t *testing.T) {
	tp := newTopo(t)
	tp.serveHTTP(t)
	cl := tp.client()
	// Without sluice the service works and traffic arrives on sv0.
	if err := get(cl); err != nil {
		t.Fatalf("before sluice: %v", err)
	}
	pr := tp.program(t)
	d, err := tp.start(t, pr)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Stop()

	// A second daemon on the same interface is refused clearly.
	if d2, err := tp.start(t, tp.program(t)); err == nil {
		d2.Stop()
		t.Fatal("second daemon started")
	} else if !strings.Contains(err.Error(), "another sluice daemon is running on sv0") {
		t.Errorf("second daemon: %v", err)
	} else {
		t.Logf("second daemon refused: %v", err)
	}

	before := tp.kernelCounters(t)
	// The legitimate client makes requests while the flood runs.
	const requests = 50
	var wg sync.WaitGroup
	var failures []error
	var mu sync.Mutex
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
	floodStart := time.Now()
	sendTime, err := tp.flood(t, d.Judged)
	if err != nil {
		t.Fatal(err)
	}
	// Wait until sluice has judged the whole flood (bounded).
	const flood = 2 * floodEach
	var st *Stats
	var drainedAt time.Time
	for deadline := time.Now().Add(20 * time.Second); ; {
		st = d.Stats()
		tot := st.Totals()
		if tot.Dropped+tot.Lost() >= flood {
			drainedAt = time.Now()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sluice judged only part of the flood: %+v", tot)
		}
		time.Sleep(5 * time.Millisecond)
	}
	wg.Wait()
	st = d.Stats()
	tot := st.Totals()
	for _, f := range failures {
		t.Error(f)
	}
	elapsed := drainedAt.Sub(floodStart)
	t.Logf("flood: %d frames sent in %v (%.0f pps offered); sluice judged them within %v (%.0f pps); xdp mode %s, zero-copy %v",
		flood, sendTime, float64(flood)/sendTime.Seconds(), elapsed, float64(flood)/elapsed.Seconds(), st.XDPMode, st.Queues[0].ZeroCopy)
	t.Logf("totals: %+v", tot)
	if tot.Dropped+tot.Lost() != flood {
		t.Errorf("sluice dropped %d of %d flood frames by rule and lost %d (xsk %+v)", tot.Dropped, flood, tot.Lost(), tot.XSK)
	}
	if tot.Lost() > flood/100 {
		t.Errorf("lost %d frames to overload despite pacing (xsk %+v)", tot.Lost(), tot.XSK)
	}
	if tot.Reinjected == 0 || tot.TAPErrors != 0 || tot.Accepted != tot.Reinjected {
		t.Errorf("re-injection: %+v", tot)
	}
	// sluice's own rule counters account for the flood.
	var udpRule, synRule uint64
	for _, tb := range st.Report.Tables {
		for _, c := range tb.Chains {
			for _, r := range c.Rules {
				switch {
				case strings.Contains(r.Text, "--dport 9999"):
					udpRule = r.Packets
				case strings.Contains(r.Text, "203.0.113.0/24"):
					synRule = r.Packets
				}
			}
		}
	}
	if udpRule+synRule != tot.Dropped || udpRule > floodEach || synRule > floodEach {
		t.Errorf("sluice rule counters: udp %d syn %d, want %d each", udpRule, synRule, floodEach)
	}
	after := tp.kernelCounters(t)
	if n := after[kUDP] - before[kUDP]; n != 0 {
		t.Errorf("the server's kernel saw %d flood UDP datagrams", n)
	}
	if n := after[kSpoofed] - before[kSpoofed]; n != 0 {
		t.Errorf("the server's kernel saw %d spoofed SYNs", n)
	}
	viaTAP := after[kViaTAP] - before[kViaTAP]
	viaVeth := after[kViaVeth] - before[kViaVeth]
	t.Logf("server kernel: %d HTTP packets re-injected via sluice0, %d straight from sv0", viaTAP, viaVeth)
	if viaTAP == 0 || viaVeth != 0 {
		t.Errorf("legitimate traffic: %d packets via sluice0, %d via sv0; want all via sluice0", viaTAP, viaVeth)
	}

	// The control socket serves the same counters, mode 0600.
	ctlPath := filepath.Join(tp.lockDir, "sv0.sock")
	ctl, err := ServeControl(ctlPath, d)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(ctlPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("control socket mode: %v %v", fi.Mode(), err)
	}
	cst, err := ReadControl(ctlPath)
	if err != nil {
		t.Fatal(err)
	}
	if ct := cst.Totals(); ct.Dropped != tot.Dropped || cst.Report == nil || len(cst.Report.Tables) == 0 || cst.Iface != svIf || cst.TAP != "sluice0" {
		t.Errorf("control socket served %+v", cst)
	}
	ctl.Close()

	// Zero allocations per packet: judge and re-inject an accepted and a
	// dropped frame on a spare queue object sharing the TAP.
	q := &queue{d: d, tap: d.tap, dec: d.queues[0].dec}
	qw := pr.NewWorker()
	acc := packet.BuildIPv4(clAddr, svAddr, packet.ProtoUDP, packet.BuildUDP(5000, 7, []byte("x")),
		packet.WithSrcMAC([6]byte(tp.clMAC)), packet.WithDstMAC([6]byte(tp.svMAC)))
	drop := packet.BuildIPv4(clAddr, svAddr, packet.ProtoUDP, packet.BuildUDP(5000, 9999, []byte("x")),
		packet.WithSrcMAC([6]byte(tp.clMAC)), packet.WithDstMAC([6]byte(tp.svMAC)))
	var p packet.Packet
	if n := testing.AllocsPerRun(200, func() {
		q.handle(qw, acc, nil, Monotonic(), &p)
		q.handle(qw, drop, nil, Monotonic(), &p)
	}); n != 0 {
		t.Errorf("%v allocations per accepted+dropped pair", n)
	}
	if q.reinjected.Load() == 0 || q.dropped.Load() == 0 || q.tapErrors.Load() != 0 {
		t.Errorf("spare queue: reinjected %d dropped %d tap errors %d", q.reinjected.Load(), q.dropped.Load(), q.tapErrors.Load())
	}

	// Crash: every descriptor closed with no orderly teardown, as when
	// the process is killed. The kernel detaches XDP and deletes the TAP.
	d.Abandon()
	out, err := tp.s.Run(context.Background(), "ip", "link", "show", svIf)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(out, []byte("xdp")) {
		t.Errorf("XDP still attached after the daemon died: %s", out)
	}
	if out, err := tp.s.Run(context.Background(), "ip", "link", "show", "sluice0"); err == nil {
		t.Errorf("sluice0 survived the daemon: %s", out)
	}
	mid := tp.kernelCounters(t)
	for i := range 5 {
		if err := get(cl); err != nil {
			t.Fatalf("after the daemon died, request %d: %v", i, err)
		}
	}
	end := tp.kernelCounters(t)
	if end[kViaVeth] == mid[kViaVeth] {
		t.Error("after the daemon died, no traffic arrived on sv0")
	}
	// And a new daemon can take over (the lock died with the old one).
	d3, err := tp.start(t, tp.program(t))
	if err != nil {
		t.Fatalf("restart after crash: %v", err)
	}
	if err := get(cl); err != nil {
		t.Errorf("with the restarted daemon: %v", err)
	}
	if err := d3.Stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
}
