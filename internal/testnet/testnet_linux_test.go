package testnet

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

func newPairForTest(t *testing.T) *Pair {
	t.Helper()
	RequireForTest(t)
	p, err := NewPair(PairOptions{Prefix: "t"})
	if err != nil {
		t.Fatalf("NewPair: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Pair.Close: %v", err)
		}
	})
	return p
}

// ethFrameForTest is a minimal frame to B of the given ethertype.
func ethFrameForTest(p *Pair, etherType uint16, size int) []byte {
	f := make([]byte, size)
	copy(f[0:6], p.BMAC)
	copy(f[6:12], p.AMAC)
	binary.BigEndian.PutUint16(f[12:14], etherType)
	return f
}

func TestPairIsQuietAndConfigured(t *testing.T) {
	p := newPairForTest(t)
	before, err := p.Counters()
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	after, err := p.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if after.BRxPackets != before.BRxPackets {
		t.Errorf("B received %d frames that nobody sent: A is not silent", after.BRxPackets-before.BRxPackets)
	}
	out, err := p.B.Run(context.Background(), "ip", "-6", "route", "show", "table", "all")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "local default dev lo table 100") && !strings.Contains(string(out), "local ::/0 dev lo table 100") {
		t.Errorf("B lacks the IPv6 AnyIP route:\n%s", out)
	}
	for _, name := range []string{p.A.Name, p.B.Name} {
		if !strings.HasPrefix(name, "sluice-") {
			t.Errorf("namespace %q lacks the sluice- prefix", name)
		}
	}
}

func TestDoSwitchesBack(t *testing.T) {
	p := newPairForTest(t)
	self, err := os.Readlink("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	var inside string
	if err := p.B.Do(func() error {
		inside, err = os.Readlink("/proc/thread-self/ns/net")
		_, ierr := net.InterfaceByName(BIfName)
		return errors.Join(err, ierr)
	}); err != nil {
		t.Fatal(err)
	}
	if inside == self {
		t.Errorf("Do ran in the caller's namespace %s", self)
	}
	wantErr := errors.New("from f")
	if err := p.A.Do(func() error { return wantErr }); !errors.Is(err, wantErr) {
		t.Errorf("Do returned %v, want f's error", err)
	}
}

func TestSendDelivered(t *testing.T) {
	p := newPairForTest(t)
	s, err := p.NewSender()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tests := []struct {
		name   string
		frames int
		size   int
	}{
		{"small", 100, 60},
		{"jumbo", 10, 14 + 65535},
		{"burst", 20000, 60},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frame := ethFrameForTest(p, 0x88B6, tt.size)
			before, err := p.Counters()
			if err != nil {
				t.Fatal(err)
			}
			requeued0 := s.Requeued
			start := time.Now()
			err = Pinned(func() error {
				for i := 0; i < tt.frames; i++ {
					if err := s.Send(frame); err != nil {
						return err
					}
				}
				return p.Barrier(context.Background())
			})
			if err != nil {
				t.Fatal(err)
			}
			elapsed := time.Since(start)
			after, err := p.Counters()
			if err != nil {
				t.Fatal(err)
			}
			if err := CheckDelivered(before, after, uint64(tt.frames)+1, s.Requeued-requeued0); err != nil {
				t.Fatal(err)
			}
			got := after.BRxPackets - before.BRxPackets
			if got != uint64(tt.frames)+1 {
				t.Fatalf("B received %d frames, want %d", got, tt.frames+1)
			}
			t.Logf("%d frames of %d bytes in %v (%.0f/s), requeued %d, veth drops %d, softnet drops %d",
				tt.frames, tt.size, elapsed, float64(tt.frames)/elapsed.Seconds(), s.Requeued,
				after.ATxDropped-before.ATxDropped, after.SoftnetDropped-before.SoftnetDropped)
		})
	}
}

func TestSendTooLong(t *testing.T) {
	p := newPairForTest(t)
	s, err := p.NewSender()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Send(ethFrameForTest(p, 0x88B6, 14+DefaultMTU+100)); err == nil {
		t.Fatal("a frame beyond the MTU was sent without error")
	}
	if err := s.Send([]byte{1, 2, 3}); err == nil {
		t.Fatal("a 3-byte frame was accepted")
	}
}

func TestSweepStale(t *testing.T) {
	RequireForTest(t)
	// A pid beyond pid_max cannot be alive.
	stale := &NS{Name: "sluice-4999999-1-sweeptest"}
	if err := runHost(context.Background(), "ip", "netns", "add", stale.Name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stale.Close() })
	live, err := NewNS("sweeptest")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { live.Close() })
	deleted, err := SweepStale()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, d := range deleted {
		if d == live.Name {
			t.Errorf("SweepStale deleted %s, whose creator (this process) is alive", d)
		}
		found = found || d == stale.Name
	}
	if !found {
		t.Errorf("SweepStale did not delete %s (deleted %v)", stale.Name, deleted)
	}
	if _, err := os.Stat(netnsDir + "/" + live.Name); err != nil {
		t.Errorf("live namespace gone: %v", err)
	}
}
