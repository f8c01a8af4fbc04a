package testnet

import (
	"errors"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// captureOn runs send and returns the IPv4 frames the server veth
// received meanwhile.
func captureOn(t *testing.T, topo *Topology, send func()) [][]byte {
	t.Helper()
	fd := -1
	if err := topo.Server.Do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, int(htons(unix.ETH_P_IP)))
		if err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: topo.ServerIndex})
	}); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	send()
	var out [][]byte
	deadline := time.Now().Add(time.Second)
	buf := make([]byte, 4096)
	for time.Now().Before(deadline) {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if errors.Is(err, unix.EAGAIN) {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, append([]byte(nil), buf[:n]...))
	}
	return out
}
