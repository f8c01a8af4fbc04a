package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sluice-project/sluice/engine"
	"github.com/sluice-project/sluice/internal/testnet"
	"github.com/sluice-project/sluice/packet"
	"github.com/sluice-project/sluice/rules"
)

// The multi-queue topology: like newTopo, but the veth has two TX and two
// RX queues on each side, so the daemon runs two workers on sv0.
//
// veth hands a frame to the peer's RX queue numbered like the sending
// skb's TX queue (veth_xmit: skb_get_queue_mapping). An AF_PACKET socket
// with PACKET_QDISC_BYPASS picks its TX queue in packet_pick_tx_queue,
// which records smp_processor_id() % real_num_tx_queues in the skb and
// lets skb_tx_hash use it (veth has no ndo_select_queue and no XPS map
// by default). Without the bypass the frame goes through dev_queue_xmit,
// where skb_tx_hash hashes the flow instead, so every frame of one flow
// would take the same queue whatever the CPU. The test therefore sends
// with the bypass from a thread pinned to one CPU, then to another.
const (
	mqClIf, mqSvIf = "mqc0", "mqs0"
	mqQueues       = 2
)

// mqRules: recent lists and hashlimit buckets that both workers must
// share.
//
//   - a UDP frame to port 9000 puts its source in the recent list mqr
//     (non-terminal);
//   - a UDP frame to port 9001 from a source in mqr is dropped;
//   - every UDP source gets 10 frames (burst), refilled at 1/hour;
//   - the rest of UDP is dropped.
const mqRules = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p udp -m udp --dport 9001 -m recent --rcheck --name mqr -j DROP
-A INPUT -p udp -m udp --dport 9000 -m recent --set --name mqr
-A INPUT -p udp -m hashlimit --hashlimit-upto 1/hour --hashlimit-burst 10 --hashlimit-mode srcip --hashlimit-name mq -j ACCEPT
-A INPUT -p udp -j DROP
COMMIT
`

// mqKernelRules, in the server's own iptables, keep the accepted UDP
// frames re-injected by sluice from drawing ICMP port unreachables (and
// the ARP that would precede them) back onto sv0.
const mqKernelRules = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p udp -j DROP
COMMIT
`

func newMQTopo(t *testing.T) *topo {
	t.Helper()
	tp := buildTopo(t, topoOptions{prefix: "mq", clIf: mqClIf, svIf: mqSvIf, queues: mqQueues, kernelRules: mqKernelRules})
	for _, x := range []struct {
		ns  *testnet.NS
		ifn string
	}{{tp.c, mqClIf}, {tp.s, mqSvIf}} {
		out, err := x.ns.Run(context.Background(), "ls", "/sys/class/net/"+x.ifn+"/queues/")
		if err != nil {
			t.Fatal(err)
		}
		qs := strings.Fields(string(out))
		t.Logf("%s queues: %v", x.ifn, qs)
		if len(qs) != 2*mqQueues {
			t.Fatalf("%s has queues %v, want %d rx and %d tx", x.ifn, qs, mqQueues, mqQueues)
		}
	}
	return tp
}

// mqSocket opens an AF_PACKET socket on mqc0 in the client namespace with
// PACKET_QDISC_BYPASS, so that its TX queue follows the sending CPU.
func (tp *topo) mqSocket(t *testing.T) int {
	t.Helper()
	var fd int
	err := tp.c.Do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
			unix.Close(fd)
			return fmt.Errorf("PACKET_QDISC_BYPASS: %w", err)
		}
		ifc, err := net.InterfaceByName(mqClIf)
		if err != nil {
			unix.Close(fd)
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifc.Index}); err != nil {
			unix.Close(fd)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// sendOnCPU writes frames to fd from a thread pinned to cpu. The thread
// stays locked and so is destroyed when the goroutine ends, its affinity
// with it.
func sendOnCPU(fd, cpu int, frames [][]byte) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		var set unix.CPUSet
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			done <- fmt.Errorf("pin to CPU %d: %w", cpu, err)
			return
		}
		for _, f := range frames {
			for {
				_, err := unix.Write(fd, f)
				if err == nil {
					break
				}
				if errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
					time.Sleep(50 * time.Microsecond)
					continue
				}
				done <- err
				return
			}
		}
		done <- nil
	}()
	return <-done
}

// perQueueRX returns each queue's RX counter, by queue id.
func perQueueRX(st *Stats) map[int]uint64 {
	m := map[int]uint64{}
	for _, q := range st.Queues {
		m[q.Queue] = q.RX
	}
	return m
}

// waitJudged waits until the daemon's workers have taken n frames in
// total (bounded).
func waitJudged(t *testing.T, d *Daemon, n uint64) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); d.Judged() < n; {
		if time.Now().After(deadline) {
			t.Fatalf("the workers took %d frames, want %d: %+v", d.Judged(), n, d.Stats().Queues)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestMultiQueueSharedState(t *testing.T) {
	tp := newMQTopo(t)
	var allowed unix.CPUSet
	if err := unix.SchedGetaffinity(0, &allowed); err != nil {
		t.Fatal(err)
	}
	var cpus []int
	for c := 0; c < 1024 && len(cpus) < mqQueues; c++ {
		if allowed.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	if len(cpus) < mqQueues {
		t.Skipf("need %d CPUs to spread one source over %d queues, have %v", mqQueues, mqQueues, cpus)
	}

	rs, err := rules.Parse(strings.NewReader(mqRules), rules.Options{Family: packet.FamilyIPv4, File: "mq.rules", HZ: 250})
	if err != nil {
		t.Fatal(err)
	}
	pr, err := engine.Compile(engine.Config{Rules4: rs, HZ: 250, InIface: mqSvIf, LocalAddrs: []netip.Addr{svAddr}}, nil, Monotonic())
	if err != nil {
		t.Fatal(err)
	}
	var d *Daemon
	err = tp.s.Do(func() error {
		var err error
		d, err = Start(Config{Iface: mqSvIf, TAP: "sluicemq0", Program: pr, LockDir: tp.lockDir, Logf: t.Logf})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	st := d.Stats()
	if len(st.Queues) != mqQueues {
		t.Fatalf("daemon serves %d queue(s) %+v, want %d", len(st.Queues), st.Queues, mqQueues)
	}
	t.Logf("daemon: xdp mode %s, queues %d", st.XDPMode, len(st.Queues))

	fd := tp.mqSocket(t)
	mac := []packet.BuildOpt{packet.WithSrcMAC([6]byte(tp.clMAC)), packet.WithDstMAC([6]byte(tp.svMAC))}
	udp := func(src netip.Addr, sport, dport uint16) []byte {
		return packet.BuildIPv4(src, svAddr, packet.ProtoUDP, packet.BuildUDP(sport, dport, make([]byte, 18)), mac...)
	}

	// sendPhase sends frames pinned to cpu, waits for the workers to take
	// them, and returns on which queues they arrived.
	var judged uint64
	sendPhase := func(name string, cpu int, frames [][]byte) map[int]uint64 {
		t.Helper()
		before := perQueueRX(d.Stats())
		if err := sendOnCPU(fd, cpu, frames); err != nil {
			t.Fatalf("%s: send: %v", name, err)
		}
		judged += uint64(len(frames))
		waitJudged(t, d, judged)
		after := perQueueRX(d.Stats())
		delta := map[int]uint64{}
		for q, n := range after {
			if n != before[q] {
				delta[q] = n - before[q]
			}
		}
		t.Logf("%s: %d frames sent on CPU %d arrived on queues %v", name, len(frames), cpu, delta)
		return delta
	}
	// onlyQueue returns the one queue a phase's frames all arrived on.
	onlyQueue := func(name string, delta map[int]uint64) int {
		t.Helper()
		if len(delta) != 1 {
			t.Fatalf("%s: frames spread over queues %v, want one queue", name, delta)
		}
		for q := range delta {
			return q
		}
		return -1
	}

	// Hashlimit: 200 frames of one source, half pinned to each CPU, so
	// half on each queue. The source ports vary, the source address does
	// not (--hashlimit-mode srcip).
	const total, burst = 200, 10
	hlSrc := netip.MustParseAddr("198.51.100.7")
	var halves [2][][]byte
	for i := range total {
		halves[i*2/total] = append(halves[i*2/total], udp(hlSrc, uint16(20000+i), 7000))
	}
	qA := onlyQueue("hashlimit, first half", sendPhase("hashlimit, first half", cpus[0], halves[0]))
	qB := onlyQueue("hashlimit, second half", sendPhase("hashlimit, second half", cpus[1], halves[1]))
	if qA == qB {
		t.Fatalf("both halves arrived on queue %d", qA)
	}

	// Recent: one source is put in the list by a frame on one queue, and
	// its frames on the other queue must find it there.
	rcSrc := netip.MustParseAddr("198.51.100.8")
	const checks = 5
	qSet := onlyQueue("recent --set", sendPhase("recent --set", cpus[0], [][]byte{udp(rcSrc, 30000, 9000)}))
	var rc [][]byte
	for i := range checks {
		rc = append(rc, udp(rcSrc, uint16(30001+i), 9001))
	}
	qCheck := onlyQueue("recent --rcheck", sendPhase("recent --rcheck", cpus[1], rc))
	if qSet == qCheck {
		t.Fatalf("recent: --set and --rcheck frames both arrived on queue %d", qSet)
	}

	st = d.Stats()
	tot := st.Totals()
	for _, q := range st.Queues {
		t.Logf("queue %d: rx %d accepted %d dropped %d malformed %d reinjected %d lost %d",
			q.Queue, q.RX, q.Accepted, q.Dropped, q.Malformed, q.Reinjected, q.Lost())
	}
	if n := uint64(0); tot.Lost() != n || tot.Malformed != n || tot.TAPErrors != n {
		t.Errorf("lost %d, malformed %d, TAP errors %d; want none", tot.Lost(), tot.Malformed, tot.TAPErrors)
	}
	// hashlimit: burst of the 200 accepted, all from the first queue's
	// half; recent: the --set frame is accepted (hashlimit, its source's
	// own bucket), the --rcheck frames dropped.
	wantAccepted := uint64(burst + 1)
	wantDropped := uint64(total - burst + checks)
	if tot.RX != judged || tot.Accepted != wantAccepted || tot.Dropped != wantDropped {
		t.Errorf("totals: rx %d accepted %d dropped %d, want rx %d accepted %d dropped %d (a worker with its own bucket or list lets more through)",
			tot.RX, tot.Accepted, tot.Dropped, judged, wantAccepted, wantDropped)
	}
	for _, q := range st.Queues {
		switch q.Queue {
		case qA:
			// The first half: burst accepted, the rest dropped; plus the
			// recent --set frame when it took the same queue.
			want := uint64(burst)
			if qSet == qA {
				want++
			}
			if q.Accepted != want {
				t.Errorf("queue %d (first half) accepted %d, want %d", q.Queue, q.Accepted, want)
			}
		case qB:
			// The second half finds the shared bucket empty.
			want := uint64(0)
			if qSet == qB {
				want++
			}
			if q.Accepted != want {
				t.Errorf("queue %d (second half) accepted %d, want %d: its worker does not share the bucket", q.Queue, q.Accepted, want)
			}
		}
	}

	// sluice's rule counters match.
	want := map[string]uint64{
		"--rcheck":       checks,
		"--set":          1,
		"hashlimit":      burst + 1,
		"-p udp -j DROP": total - burst,
	}
	got := map[string]uint64{}
	for _, tb := range st.Report.Tables {
		for _, c := range tb.Chains {
			for _, r := range c.Rules {
				for k := range want {
					if strings.Contains(r.Text, k) {
						got[k] += r.Packets
					}
				}
			}
		}
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("rule %q counted %d packets, want %d", k, got[k], n)
		}
	}
	t.Logf("rule counters: %v", got)
}
