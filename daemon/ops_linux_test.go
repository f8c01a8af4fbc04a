package daemon

import (
	"context"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sluice-project/sluice/engine"
	"github.com/sluice-project/sluice/packet"
	"github.com/sluice-project/sluice/rules"
)

// sendForTest writes frames from the client namespace onto its veth.
func (tp *topo) sendForTest(t *testing.T, frames [][]byte) {
	t.Helper()
	err := tp.c.Do(func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		ifc, err := net.InterfaceByName(clIf)
		if err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifc.Index}); err != nil {
			return err
		}
		for _, f := range frames {
			if _, err := unix.Write(fd, f); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (tp *topo) udpFramesForTest(n int, dport uint16) [][]byte {
	mac := []packet.BuildOpt{packet.WithSrcMAC([6]byte(tp.clMAC)), packet.WithDstMAC([6]byte(tp.svMAC))}
	var out [][]byte
	for i := 0; i < n; i++ {
		out = append(out, packet.BuildIPv4(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), svAddr, packet.ProtoUDP,
			packet.BuildUDP(uint16(2000+i), dport, []byte("capture me")), mac...))
	}
	return out
}

func waitForTest(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReloadAndCapture drives a live daemon through its control socket:
// `sluice capture --dropped` and `--rule` output that tcpdump reads, a
// reload that changes the verdict, and a broken reload that changes
// nothing.
func TestReloadAndCapture(t *testing.T) {
	tp := newTopo(t)
	var text atomic.Value
	text.Store(sluiceRules)
	st := engine.NewState(nil, 250)
	compile := func() (*engine.Program, error) {
		rs, err := rules.Parse(strings.NewReader(text.Load().(string)), rules.Options{Family: packet.FamilyIPv4, File: "e2e.rules", HZ: 250})
		if err != nil {
			return nil, err
		}
		return engine.Compile(engine.Config{Rules4: rs, HZ: 250, InIface: svIf, LocalAddrs: []netip.Addr{svAddr}}, st, Monotonic())
	}
	pr, err := compile()
	if err != nil {
		t.Fatal(err)
	}
	var d *Daemon
	err = tp.s.Do(func() error {
		var err error
		d, err = Start(Config{Iface: svIf, Program: pr, LockDir: tp.lockDir, Logf: t.Logf, Reload: compile})
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

	// Capture ten dropped frames while a flood to port 9999 arrives.
	out := tp.captureForTest(t, ctlPath, CaptureRequest{Dropped: true, Count: 10}, tp.udpFramesForTest(50, 9999),
		func() bool { return d.capture.Load() != nil })
	if n := strings.Count(out, ".9999: UDP"); n != 10 {
		t.Fatalf("tcpdump read %d frames to port 9999, want 10:\n%s", n, out)
	}
	// By rule: the frames the UDP rule decided, not those the policy
	// accepted (judged in the same batches).
	out = tp.captureForTest(t, ctlPath, CaptureRequest{Rule: "filter:INPUT:1", Count: 3},
		append(tp.udpFramesForTest(10, 5353), tp.udpFramesForTest(20, 9999)...), func() bool { return d.capture.Load() != nil })
	if n := strings.Count(out, ".9999: UDP"); n != 3 || strings.Contains(out, ".5353") {
		t.Fatalf("--rule filter:INPUT:1: tcpdump read %d frames to port 9999, want 3 and none to 5353:\n%s", n, out)
	}

	// Reload without the UDP rule: the same traffic is now accepted.
	text.Store(strings.Replace(sluiceRules, "-A INPUT -p udp -m udp --dport 9999 -j DROP\n", "", 1))
	if err := RequestReload(ctlPath); err != nil {
		t.Fatalf("reload: %v", err)
	}
	before := d.Stats().Totals()
	tp.sendForTest(t, tp.udpFramesForTest(20, 9999))
	waitForTest(t, "20 frames judged", func() bool { return d.Stats().Totals().RX >= before.RX+20 })
	after := d.Stats().Totals()
	if after.Accepted-before.Accepted != 20 || after.Dropped != before.Dropped {
		t.Errorf("after reload: accepted +%d dropped +%d, want +20 and +0", after.Accepted-before.Accepted, after.Dropped-before.Dropped)
	}
	if s := d.Stats(); s.Reloads != 1 || len(s.Report.Tables[0].Chains[0].Rules) != 1 {
		t.Errorf("after reload: %d reloads, %d INPUT rules", s.Reloads, len(s.Report.Tables[0].Chains[0].Rules))
	}

	// A broken file: the error names the position and nothing changes.
	running := d.Program()
	text.Store(sluiceRules + "*raw\n-A PREROUTING -m nosuchmatch -j DROP\nCOMMIT\n")
	err = RequestReload(ctlPath)
	if err == nil || !strings.Contains(err.Error(), "e2e.rules:") {
		t.Fatalf("broken reload: %v, want a file:line:col error", err)
	}
	if d.Program() != running || d.Stats().ReloadFailures != 1 {
		t.Fatal("a failed reload changed the running program")
	}
}

// captureForTest runs `sluice capture` through the control socket at
// ctlPath with req while frames arrive (once started says the capture
// runs), waits for it to end, and returns what tcpdump reads in the
// pcap; started must turn false again when the session ends.
func (tp *topo) captureForTest(t *testing.T, ctlPath string, req CaptureRequest, frames [][]byte, started func() bool) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.pcap")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	stop := make(chan struct{})
	go func() { done <- Capture(ctlPath, req, f, stop) }()
	waitForTest(t, "the capture to start", started)
	tp.sendForTest(t, frames)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		close(stop)
		t.Fatal("capture did not end")
	}
	f.Close()
	out, err := exec.CommandContext(context.Background(), "tcpdump", "-nn", "-r", p).CombinedOutput()
	if err != nil {
		t.Fatalf("tcpdump -r: %v\n%s", err, out)
	}
	waitForTest(t, "the capture to end", func() bool { return !started() })
	return string(out)
}
