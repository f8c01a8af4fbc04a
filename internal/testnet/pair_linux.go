package testnet

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Fixed names and addresses inside the pair. Each lives in a private
// namespace, so they never collide with anything.
const (
	// AIfName and BIfName are the two ends of the veth.
	AIfName = "sl-a"
	BIfName = "sl-b"
	// DefaultMTU lets any IP datagram (up to 65535 bytes) through the veth
	// in one frame; veth's maximum MTU is ETH_MAX_MTU.
	DefaultMTU = 65535
	// routeTable is the policy-routing table holding the AnyIP routes.
	routeTable = "100"
	// barrierEtherType is IEEE 802 "local experimental 1": no protocol
	// handler in the kernel takes it, so barrier frames never reach IP or
	// netfilter.
	barrierEtherType = 0x88B5
)

// Addresses and MACs configured on the pair.
var (
	AMAC  = net.HardwareAddr{0x02, 0x00, 0x5e, 0x00, 0x00, 0x0a}
	BMAC  = net.HardwareAddr{0x02, 0x00, 0x5e, 0x00, 0x00, 0x0b}
	BIPv4 = netip.MustParsePrefix("192.0.2.1/24")
	BIPv6 = netip.MustParsePrefix("2001:db8::1/64")
)

// PairOptions configures NewPair. The zero value is the oracle's setup.
type PairOptions struct {
	// Prefix is added to both namespaces' names for humans.
	Prefix string
	// MTU of both veth ends; 0 means DefaultMTU.
	MTU int
	// BIfName names B's end of the veth; empty means BIfName. Naming it
	// as the operator's interface (eth0, say) lets rules with -i match.
	BIfName string
}

// Pair is two namespaces joined by a veth. A is a silent transmitter: no
// addresses and IPv6 disabled, so it emits no ARP, ND, MLD or router
// solicitation and the only frames arriving at B are the ones a Sender
// writes. B is a "host" on which every destination is local (AnyIP), so
// that every packet that survives routing reaches INPUT.
type Pair struct {
	A, B           *NS
	AIf, BIf       string
	AMAC, BMAC     net.HardwareAddr
	AIndex, BIndex int

	barrierTx *Sender
	barrierRx int // AF_PACKET socket in B receiving barrierEtherType
}

// NewPair creates and configures a Pair. On error everything created so
// far is removed.
//
// B's AnyIP routes (`local 0.0.0.0/0` and `local ::/0`) live in a policy
// routing table consulted only for packets arriving on B's veth. Were they
// in the main local table, B's own replies (TCP RSTs, ICMP errors) would
// route to a local address too, loop through lo and be counted a second
// time in PREROUTING and INPUT. As they are, replies find no route and
// are never sent.
func NewPair(opts PairOptions) (p *Pair, err error) {
	mtu := opts.MTU
	if mtu == 0 {
		mtu = DefaultMTU
	}
	prefix := opts.Prefix
	if prefix != "" {
		prefix += "-"
	}
	bif := opts.BIfName
	if bif == "" {
		bif = BIfName
	}
	p = &Pair{AIf: AIfName, BIf: bif, AMAC: AMAC, BMAC: BMAC, barrierRx: -1}
	defer func() {
		if err != nil {
			p.Close()
			p = nil
		}
	}()
	if p.A, err = NewNS(prefix + "a"); err != nil {
		return nil, err
	}
	if p.B, err = NewNS(prefix + "b"); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mtuS := strconv.Itoa(mtu)
	steps := []struct {
		ns   *NS
		args []string
	}{
		// A: no IPv6 at all, so no link-local address, DAD, MLD or RS.
		{p.A, []string{"sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"}},
		// B: no router advertisements, no DAD, no reverse-path filter.
		{p.B, []string{"sysctl", "-q", "-w",
			"net.ipv6.conf.all.accept_ra=0", "net.ipv6.conf.default.accept_ra=0",
			"net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0",
			"net.ipv6.conf.default.dad_transmits=0",
			"net.ipv6.conf.default.router_solicitations=0",
			"net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0"}},
		{p.A, []string{"ip", "link", "add", AIfName, "address", AMAC.String(), "mtu", mtuS, "type", "veth",
			"peer", "name", p.BIf, "address", BMAC.String(), "mtu", mtuS, "netns", p.B.Name}},
		{p.A, []string{"ip", "link", "set", AIfName, "up"}},
		{p.B, []string{"sysctl", "-q", "-w", "net.ipv4.conf." + p.BIf + ".rp_filter=0"}},
		{p.B, []string{"ip", "addr", "add", BIPv4.String(), "dev", p.BIf}},
		{p.B, []string{"ip", "-6", "addr", "add", BIPv6.String(), "dev", p.BIf, "nodad"}},
		{p.B, []string{"ip", "link", "set", p.BIf, "up"}},
		{p.B, []string{"ip", "rule", "add", "pref", "100", "iif", p.BIf, "lookup", routeTable}},
		{p.B, []string{"ip", "route", "add", "local", "0.0.0.0/0", "dev", "lo", "table", routeTable}},
		{p.B, []string{"ip", "-6", "rule", "add", "pref", "100", "iif", p.BIf, "lookup", routeTable}},
		{p.B, []string{"ip", "-6", "route", "add", "local", "::/0", "dev", "lo", "table", routeTable}},
	}
	for _, s := range steps {
		if _, err := s.ns.Run(ctx, s.args[0], s.args[1:]...); err != nil {
			return nil, fmt.Errorf("testnet: configure pair: %w", err)
		}
	}
	if err := p.waitReady(ctx); err != nil {
		return nil, err
	}
	if p.AIndex, err = ifIndex(p.A, AIfName); err != nil {
		return nil, err
	}
	if p.BIndex, err = ifIndex(p.B, p.BIf); err != nil {
		return nil, err
	}
	if p.barrierTx, err = p.NewSender(); err != nil {
		return nil, err
	}
	err = p.B.Do(func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, int(htons(barrierEtherType)))
		if err != nil {
			return fmt.Errorf("testnet: barrier socket in %s: %w", p.B.Name, err)
		}
		p.barrierRx = fd
		sa := &unix.SockaddrLinklayer{Protocol: htons(barrierEtherType), Ifindex: p.BIndex}
		if err := unix.Bind(fd, sa); err != nil {
			return fmt.Errorf("testnet: bind barrier socket to %s: %w", p.BIf, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// waitReady waits until B's veth is operationally up and IPv6 has
// configured it. The kernel does that asynchronously: operstate is set by
// the linkwatch worker (up to a second after `ip link set up`), and only
// then does addrconf add the link-local address and the `multicast
// ff00::/8` route of the local table. Until that route exists, packets to
// ff02::1 find no route and never reach INPUT, so sending earlier would
// observe a kernel that no real host has.
func (p *Pair) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := p.B.Run(ctx, "ip", "-6", "route", "show", "table", "local", "dev", p.BIf)
		if err != nil {
			return fmt.Errorf("testnet: wait for %s: %w", p.BIf, err)
		}
		state, err := p.B.Run(ctx, "cat", "/sys/class/net/"+p.BIf+"/operstate")
		if err != nil {
			return fmt.Errorf("testnet: wait for %s: %w", p.BIf, err)
		}
		if strings.Contains(string(out), "multicast ff00::/8") && strings.TrimSpace(string(state)) == "up" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("testnet: %s in %s not configured after 10s (operstate %q, local IPv6 routes %q)",
				p.BIf, p.B.Name, strings.TrimSpace(string(state)), strings.TrimSpace(string(out)))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ifIndex(ns *NS, name string) (int, error) {
	var idx int
	err := ns.Do(func() error {
		ifc, err := net.InterfaceByName(name)
		if err != nil {
			return fmt.Errorf("testnet: interface %s in %s: %w", name, ns.Name, err)
		}
		idx = ifc.Index
		return nil
	})
	return idx, err
}

// Close removes both namespaces (and with them the veth).
func (p *Pair) Close() error {
	var errs []error
	if p.barrierTx != nil {
		errs = append(errs, p.barrierTx.Close())
		p.barrierTx = nil
	}
	if p.barrierRx >= 0 {
		unix.Close(p.barrierRx)
		p.barrierRx = -1
	}
	if p.A != nil {
		errs = append(errs, p.A.Close())
		p.A = nil
	}
	if p.B != nil {
		errs = append(errs, p.B.Close())
		p.B = nil
	}
	return errors.Join(errs...)
}

// Barrier sends a marker frame from A and waits until B's receive path
// has handed it to a packet socket. Frames sent earlier from the same CPU
// sit in front of it in that CPU's backlog and each is processed to its
// end (IP, netfilter, local delivery) before the next one is dequeued, so
// once the marker arrives they have all been through netfilter. Call it on
// the thread that sent, inside Pinned, so all frames share one backlog.
func (p *Pair) Barrier(ctx context.Context) error {
	var nonce [8]byte
	rand.Read(nonce[:])
	frame := make([]byte, 60)
	copy(frame[0:6], p.BMAC)
	copy(frame[6:12], p.AMAC)
	binary.BigEndian.PutUint16(frame[12:14], barrierEtherType)
	copy(frame[14:], nonce[:])
	if err := p.barrierTx.Send(frame); err != nil {
		return fmt.Errorf("testnet: send barrier: %w", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	buf := make([]byte, 128)
	for {
		n, _, err := unix.Recvfrom(p.barrierRx, buf, 0)
		if err == nil && n >= 22 && bytes.Equal(buf[14:22], nonce[:]) {
			return nil
		}
		if err != nil && !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("testnet: receive barrier: %w", err)
		}
		if err == nil {
			continue // an older barrier's marker
		}
		wait := time.Until(deadline)
		if wait <= 0 || ctx.Err() != nil {
			return fmt.Errorf("testnet: barrier frame did not reach %s within the deadline: frames sent before it may not have been processed", p.BIf)
		}
		wait = min(wait, 100*time.Millisecond)
		fds := []unix.PollFd{{Fd: int32(p.barrierRx), Events: unix.POLLIN}}
		unix.Poll(fds, int(wait/time.Millisecond)+1)
	}
}

// Counters reads the current counters.
func (p *Pair) Counters() (Counters, error) {
	var c Counters
	a, err := linkStats(p.A, AIfName)
	if err != nil {
		return c, err
	}
	b, err := linkStats(p.B, p.BIf)
	if err != nil {
		return c, err
	}
	c.ATxPackets, c.ATxDropped = a.txPackets, a.txDropped
	c.BRxPackets, c.BRxDropped = b.rxPackets, b.rxDropped
	c.SoftnetDropped, err = softnetDropped()
	return c, err
}

type ifStats struct{ rxPackets, rxDropped, txPackets, txDropped uint64 }

// linkStats reads /proc/thread-self/net/dev inside ns: /proc/net follows
// the process leader's namespace, thread-self the calling thread's.
func linkStats(ns *NS, ifname string) (ifStats, error) {
	var st ifStats
	err := ns.Do(func() error {
		data, err := os.ReadFile("/proc/thread-self/net/dev")
		if err != nil {
			return err
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			name, rest, ok := strings.Cut(sc.Text(), ":")
			if !ok || strings.TrimSpace(name) != ifname {
				continue
			}
			f := strings.Fields(rest)
			if len(f) < 12 {
				return fmt.Errorf("short line for %s: %q", ifname, sc.Text())
			}
			var v [4]uint64
			for i, col := range []int{1, 3, 9, 11} {
				if v[i], err = strconv.ParseUint(f[col], 10, 64); err != nil {
					return fmt.Errorf("column %d for %s: %w", col, ifname, err)
				}
			}
			st = ifStats{v[0], v[1], v[2], v[3]}
			return nil
		}
		return fmt.Errorf("interface %s not listed", ifname)
	})
	if err != nil {
		return st, fmt.Errorf("testnet: read %s statistics in %s: %w", ifname, ns.Name, err)
	}
	return st, nil
}

func softnetDropped() (uint64, error) {
	data, err := os.ReadFile("/proc/net/softnet_stat")
	if err != nil {
		return 0, fmt.Errorf("testnet: %w", err)
	}
	var sum uint64
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			return 0, fmt.Errorf("testnet: /proc/net/softnet_stat: short line %q", line)
		}
		v, err := strconv.ParseUint(f[1], 16, 32)
		if err != nil {
			return 0, fmt.Errorf("testnet: /proc/net/softnet_stat: %w", err)
		}
		sum += v
	}
	return sum, nil
}

// Pinned runs f on one OS thread bound to a single CPU. Frames sent from
// it all enter that CPU's backlog in order, which is what makes Barrier
// exact.
func Pinned(f func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var orig unix.CPUSet
	if err := unix.SchedGetaffinity(0, &orig); err != nil {
		return fmt.Errorf("testnet: get CPU affinity: %w", err)
	}
	cpu := -1
	for i := 0; i < 1024; i++ {
		if orig.IsSet(i) {
			cpu = i
			break
		}
	}
	if cpu < 0 {
		return errors.New("testnet: thread has an empty CPU affinity set")
	}
	var one unix.CPUSet
	one.Set(cpu)
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		return fmt.Errorf("testnet: pin thread to CPU %d: %w", cpu, err)
	}
	ferr := f()
	if err := unix.SchedSetaffinity(0, &orig); err != nil {
		// Leave the thread locked so the runtime does not reuse it pinned.
		runtime.LockOSThread()
		return errors.Join(ferr, fmt.Errorf("testnet: restore CPU affinity: %w", err))
	}
	return ferr
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
