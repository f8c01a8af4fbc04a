package cli

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-project/sluice/daemon"
	"github.com/sluice-project/sluice/internal/testnet"
)

// TestRunFailsOpenOnSIGKILL starts `sluice run` as its own process in a
// server namespace, in each mode, checks that it filters, kills it with
// SIGKILL and checks that the kernel detached the XDP program and removed
// the TAP, so the service answers straight through the interface, as
// without sluice.
func TestRunFailsOpenOnSIGKILL(t *testing.T) {
	testnet.RequireForTest(t)
	const udpDrop = "*raw\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p udp -m udp --dport 9999 -j DROP\n"
	for _, tc := range []struct {
		mode, rules string
		tap         bool // frames go through the userspace tier and the TAP
	}{
		{"afxdp", udpDrop + "COMMIT\n", true},
		{"xdp", udpDrop + "COMMIT\n", false},
		// A recent rule the HTTP segments reach: the combined tier.
		{"auto", udpDrop + "-A PREROUTING -p tcp -m tcp --dport 80 -m recent --name web --set\nCOMMIT\n", true},
	} {
		t.Run(tc.mode, func(t *testing.T) { runFailsOpen(t, tc.mode, tc.rules, tc.tap) })
	}
}

func runFailsOpen(t *testing.T, mode, rules string, tap bool) {
	topo, err := testnet.NewTopology(testnet.TopologyOptions{Prefix: "failopen"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { topo.Close() })
	srv, err := testnet.ServeHTTP(topo.Server, netip.AddrPortFrom(topo.ServerAddr, 80))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	url := "http://" + topo.ServerAddr.String() + "/"
	requests := func(n int) testnet.ClientStats {
		c, err := testnet.StartClient(topo.Sender, testnet.ClientOptions{URL: url, Workers: 1, MaxRequests: uint64(n), MaxDuration: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(12 * time.Second); c.Stats().Requests < n && time.Now().Before(deadline); {
			time.Sleep(20 * time.Millisecond)
		}
		return c.Stop()
	}

	dir := t.TempDir()
	rulesPath := filepath.Join(dir, "rules")
	writeFileForTest(t, rulesPath, []byte(rules))
	ctl := filepath.Join(dir, "ctl.sock")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", topo.Server.Name, os.Args[0],
		"run", "--iface", topo.ServerIf, "--mode", mode, "--rules", rulesPath, "--control", ctl, "--lock-dir", dir)
	cmd.Env = append(os.Environ(), "SLUICE_TEST_AS_MAIN=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	for deadline := time.Now().Add(20 * time.Second); ; {
		if _, err = daemon.ReadControl(ctl); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sluice run did not come up: %v\n%s", err, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	link := func() string {
		out, err := topo.Server.Run(ctx, "ip", "-d", "link", "show", topo.ServerIf)
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	if !strings.Contains(link(), "xdp") {
		t.Fatalf("no XDP program on %s while sluice runs:\n%s", topo.ServerIf, link())
	}
	if cs := requests(5); cs.Succeeded != 5 {
		t.Fatalf("through sluice: %d of 5 requests succeeded", cs.Succeeded)
	}
	st, _ := daemon.ReadControl(ctl)
	switch {
	case st == nil:
		t.Fatal("no stats from the control socket")
	case tap && st.Totals().Reinjected == 0:
		t.Fatal("sluice re-injected nothing")
	case !tap && (st.XDPMode == "" || st.Report == nil || st.Report.Packets == 0):
		t.Fatalf("the XDP tier judged nothing: %+v", st)
	}

	// A crash: no signal handler runs, nothing is cleaned up by sluice.
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	killed = true
	for deadline := time.Now().Add(10 * time.Second); strings.Contains(link(), "xdp"); {
		if time.Now().After(deadline) {
			t.Fatalf("XDP still attached 10s after SIGKILL:\n%s", link())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if out, err := topo.Server.Run(ctx, "ip", "link", "show", "sluice0"); err == nil {
		t.Fatalf("the TAP outlived the process:\n%s", out)
	}
	if cs := requests(5); cs.Succeeded != 5 {
		t.Fatalf("after SIGKILL: %d of 5 requests succeeded", cs.Succeeded)
	}
}
