package testnet

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

// Names and addresses of a Topology. Each lives in a private namespace.
const (
	// SenderIfName is the sender's end of the veth (attacker and
	// legitimate client), ServerIfName the protected server's end.
	SenderIfName = "sl-tx"
	ServerIfName = "sl-rx"
)

// Topology addresses (RFC 5737 documentation space, in no blocklist or
// bogon set of the example ruleset, and outside its allow-list).
var (
	SenderMAC  = net.HardwareAddr{0x02, 0x00, 0x5e, 0x00, 0x01, 0x0a}
	ServerMAC  = net.HardwareAddr{0x02, 0x00, 0x5e, 0x00, 0x01, 0x0b}
	ClientAddr = netip.MustParsePrefix("198.51.100.2/24")
	ServerAddr = netip.MustParsePrefix("198.51.100.1/24")
)

// TopologyOptions configures NewTopology.
type TopologyOptions struct {
	// Prefix is added to the namespaces' names for humans.
	Prefix string
	// ThreadedNAPI makes the server veth's receive processing run in a
	// kernel thread instead of the generator's softirq context, so the
	// receiver does not run on the generator's CPU by construction (as
	// when the attack comes from another machine).
	ThreadedNAPI bool
}

// Topology is a sender namespace (the attacker and the legitimate
// client) joined by one veth to a server namespace (the protected host).
// Unlike Pair, both ends have addresses and routes, so TCP works between
// them; the flood generator only ever transmits on a Topology's sender
// veth, towards the server's address and MAC.
type Topology struct {
	Sender, Server         *NS
	SenderIf, ServerIf     string
	SenderIndex            int
	ServerIndex            int
	SenderMAC, ServerMAC   net.HardwareAddr
	ClientAddr, ServerAddr netip.Addr

	mu     sync.Mutex
	closed bool
	floods []*Flood
}

// liveTopologies holds the topologies this process created and has not
// closed: the generator refuses any other.
var liveTopologies sync.Map // *Topology -> struct{}

// NewTopology creates the namespaces and the veth. The server's veth has
// GRO (and so NAPI) enabled, which veth needs to accept XDP frames from
// its peer. On error everything created is removed.
func NewTopology(opts TopologyOptions) (t *Topology, err error) {
	prefix := opts.Prefix
	if prefix != "" {
		prefix += "-"
	}
	t = &Topology{SenderIf: SenderIfName, ServerIf: ServerIfName, SenderMAC: SenderMAC, ServerMAC: ServerMAC,
		ClientAddr: ClientAddr.Addr(), ServerAddr: ServerAddr.Addr()}
	defer func() {
		if err != nil {
			t.Close()
			t = nil
		}
	}()
	if t.Sender, err = NewNS(prefix + "tx"); err != nil {
		return nil, err
	}
	if t.Server, err = NewNS(prefix + "rx"); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	steps := []struct {
		ns   *NS
		args []string
	}{
		{t.Sender, []string{"sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"}},
		{t.Server, []string{"sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1",
			"net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0"}},
		{t.Sender, []string{"ip", "link", "add", SenderIfName, "address", SenderMAC.String(), "type", "veth",
			"peer", "name", ServerIfName, "address", ServerMAC.String(), "netns", t.Server.Name}},
		{t.Sender, []string{"ip", "addr", "add", ClientAddr.String(), "dev", SenderIfName}},
		{t.Server, []string{"ip", "addr", "add", ServerAddr.String(), "dev", ServerIfName}},
		// Permanent neighbours: no ARP, which a flood could starve.
		{t.Sender, []string{"ip", "neigh", "replace", ServerAddr.Addr().String(), "lladdr", ServerMAC.String(), "dev", SenderIfName, "nud", "permanent"}},
		{t.Server, []string{"ip", "neigh", "replace", ClientAddr.Addr().String(), "lladdr", SenderMAC.String(), "dev", ServerIfName, "nud", "permanent"}},
		{t.Sender, []string{"ip", "link", "set", SenderIfName, "up"}},
		{t.Server, []string{"ip", "link", "set", ServerIfName, "up"}},
	}
	for _, s := range steps {
		if _, err := s.ns.Run(ctx, s.args[0], s.args[1:]...); err != nil {
			return nil, fmt.Errorf("testnet: configure topology: %w", err)
		}
	}
	if t.SenderIndex, err = ifIndex(t.Sender, SenderIfName); err != nil {
		return nil, err
	}
	if t.ServerIndex, err = ifIndex(t.Server, ServerIfName); err != nil {
		return nil, err
	}
	// The legitimate client's TCP segments must carry full checksums for
	// the userspace tier (see DisableTxChecksum).
	if err = t.Sender.Do(func() error { return DisableTxChecksum(SenderIfName) }); err != nil {
		return nil, err
	}
	if err = t.Server.Do(func() error { return setGRO(ServerIfName, true) }); err != nil {
		return nil, fmt.Errorf("testnet: enable GRO (veth NAPI) on %s: %w", ServerIfName, err)
	}
	if opts.ThreadedNAPI {
		if _, err = t.Server.Run(ctx, "sh", "-c", "echo 1 > /sys/class/net/"+ServerIfName+"/threaded"); err != nil {
			return nil, fmt.Errorf("testnet: threaded NAPI on %s: %w", ServerIfName, err)
		}
	}
	if err = t.waitUp(ctx); err != nil {
		return nil, err
	}
	liveTopologies.Store(t, struct{}{})
	return t, nil
}

func (t *Topology) waitUp(ctx context.Context) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		a, err := t.Sender.Run(ctx, "cat", "/sys/class/net/"+SenderIfName+"/operstate")
		if err != nil {
			return err
		}
		b, err := t.Server.Run(ctx, "cat", "/sys/class/net/"+ServerIfName+"/operstate")
		if err != nil {
			return err
		}
		if string(a) == "up\n" && string(b) == "up\n" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("testnet: topology veth not up after 10s (%q, %q)", a, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Close stops the topology's floods and removes both namespaces, the
// veth and with them anything attached to it (XDP programs, qdiscs,
// rules, sets). It is safe to call more than once.
func (t *Topology) Close() error {
	t.mu.Lock()
	t.closed = true
	floods := t.floods
	t.floods = nil
	t.mu.Unlock()
	liveTopologies.Delete(t)
	var errs []error
	for _, f := range floods {
		errs = append(errs, f.Close())
	}
	if t.Sender != nil {
		errs = append(errs, t.Sender.Close())
		t.Sender = nil
	}
	if t.Server != nil {
		errs = append(errs, t.Server.Close())
		t.Server = nil
	}
	return errors.Join(errs...)
}

// owned reports whether t is a live topology of this process whose
// sender veth still has the index and MAC it was created with.
func (t *Topology) owned() error {
	if t == nil {
		return errors.New("testnet: no topology")
	}
	if _, ok := liveTopologies.Load(t); !ok {
		return errors.New("testnet: refusing to transmit: the topology was not created by NewTopology in this process, or is closed")
	}
	t.mu.Lock()
	closed := t.closed
	t.mu.Unlock()
	if closed || t.Sender == nil {
		return errors.New("testnet: refusing to transmit: topology closed")
	}
	return t.Sender.Do(func() error {
		ifc, err := net.InterfaceByIndex(t.SenderIndex)
		if err != nil {
			return fmt.Errorf("testnet: refusing to transmit: sender interface %d: %w", t.SenderIndex, err)
		}
		if ifc.Name != SenderIfName || ifc.HardwareAddr.String() != SenderMAC.String() {
			return fmt.Errorf("testnet: refusing to transmit on %s (%s): not the topology's sender veth", ifc.Name, ifc.HardwareAddr)
		}
		return nil
	})
}

// IfStats are an interface's packet counters.
type IfStats struct{ RxPackets, RxDropped, TxPackets, TxDropped uint64 }

// ServerStats reads the server veth's counters.
func (t *Topology) ServerStats() (IfStats, error) {
	s, err := linkStats(t.Server, ServerIfName)
	return IfStats{s.rxPackets, s.rxDropped, s.txPackets, s.txDropped}, err
}

// SenderStats reads the sender veth's counters.
func (t *Topology) SenderStats() (IfStats, error) {
	s, err := linkStats(t.Sender, SenderIfName)
	return IfStats{s.rxPackets, s.rxDropped, s.txPackets, s.txDropped}, err
}

// FloodOptions configures a Flood.
type FloodOptions struct {
	// Kind picks the templates (default FloodMix); Frames, when set,
	// replaces them (each must be an IPv4 frame of at least 54 bytes; its
	// MACs are overwritten with the topology's).
	Kind   FloodKind
	Frames [][]byte
	// Templates is how many distinct frames to build (default 64).
	Templates int
	// Seed seeds the template builder.
	Seed uint64
	// RandomSource makes the XDP program write a fresh pseudo-random
	// source address into every frame it sends, within SourcePrefix
	// (default: any address; invalid prefix = 0.0.0.0/0), keeping the IP
	// and TCP checksums valid. Without it every template keeps its own
	// source.
	RandomSource bool
	SourcePrefix netip.Prefix
	// Batch is how many frames the first BPF_PROG_RUN call of a worker
	// sends (default 65536); later calls are sized to last about 50ms.
	// Templates rotate between calls.
	Batch uint32
	// Workers is how many threads call BPF_PROG_RUN (default 2). With
	// one, the server's receive processing runs inline after each batch
	// on the generator's CPU, so the offered rate is what the receiver
	// can take; with two, the generator can offer more than the server's
	// ring takes, and the excess shows in its rx_dropped.
	Workers int
	// CallDuration is how long one BPF_PROG_RUN call should last (default
	// 150ms). Each call also costs a fixed ~25ms of mostly sleeping
	// setup and teardown here; longer calls waste less of it, shorter
	// ones meet the duration bound more closely.
	CallDuration time.Duration
}

// Flood transmits frames out of a topology's sender veth with XDP live
// frames: an XDP program returning XDP_TX is run by BPF_PROG_RUN with
// BPF_F_TEST_XDP_LIVE_FRAMES in the sender namespace, so each repetition
// is a real frame redirected out of the veth, arriving at the server's
// end as if from the wire.
type Flood struct {
	topo    *Topology
	frames  [][]byte
	batch   uint32
	workers int
	callDur time.Duration
	prog    *ebpf.Program
	sent    atomic.Uint64
	mu      sync.Mutex // one Run at a time
	closed  atomic.Bool
}

// Safety bounds of a single Run.
const (
	// MaxFloodPackets and MaxFloodDuration cap every Run whatever it
	// asks.
	MaxFloodPackets  = 2_000_000_000
	MaxFloodDuration = 10 * time.Minute
)

// NewFlood loads the generator program for the topology's sender veth.
func (t *Topology) NewFlood(opts FloodOptions) (*Flood, error) {
	if err := t.owned(); err != nil {
		return nil, err
	}
	frames := opts.Frames
	if frames == nil {
		kind := opts.Kind
		if kind == "" {
			kind = FloodMix
		}
		n := opts.Templates
		if n <= 0 {
			n = 64
		}
		var err error
		if frames, err = FloodFrames(kind, t.SenderMAC, t.ServerMAC, t.ServerAddr, n, opts.Seed); err != nil {
			return nil, err
		}
	}
	if len(frames) == 0 {
		return nil, errors.New("testnet: flood without frames")
	}
	own := make([][]byte, len(frames))
	for i, f := range frames {
		if len(f) < 54 || len(f) > 3000 {
			return nil, fmt.Errorf("testnet: flood frame %d has %d bytes (want 54..3000)", i, len(f))
		}
		f = append([]byte(nil), f...)
		copy(f[0:6], t.ServerMAC)
		copy(f[6:12], t.SenderMAC)
		own[i] = f
	}
	batch := opts.Batch
	if batch == 0 {
		batch = 1 << 16
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = 2
	}
	callDur := opts.CallDuration
	if callDur <= 0 {
		callDur = defaultCallDuration
	}
	prefix := opts.SourcePrefix
	if !prefix.IsValid() || !prefix.Addr().Is4() {
		prefix = netip.MustParsePrefix("0.0.0.0/0")
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "sluice_gen",
		Type:         ebpf.XDP,
		License:      "GPL",
		Instructions: genProgram(opts.RandomSource, prefix.Masked()),
	})
	if err != nil {
		return nil, fmt.Errorf("testnet: load generator XDP program: %w", err)
	}
	f := &Flood{topo: t, frames: own, batch: batch, workers: workers, callDur: callDur, prog: prog}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		prog.Close()
		return nil, errors.New("testnet: topology closed")
	}
	t.floods = append(t.floods, f)
	return f, nil
}

// genProgram returns the XDP generator: XDP_TX, after (with random) a
// new source address in every IPv4 frame, compensated in the IP ID (and
// in a SYN's unused acknowledgment number for TCP) so that the IP and
// TCP checksums stay valid. UDP templates carry no checksum.
func genProgram(random bool, prefix netip.Prefix) asm.Instructions {
	const xdpTX = 3
	if !random {
		return asm.Instructions{asm.Mov.Imm(asm.R0, xdpTX), asm.Return()}
	}
	// Addresses are loaded and stored as native (little-endian) words of
	// the big-endian bytes, so mask and base are converted the same way.
	a := prefix.Addr().As4()
	var m [4]byte
	binary.BigEndian.PutUint32(m[:], ^uint32(0)>>uint(prefix.Bits()))
	if prefix.Bits() == 32 {
		m = [4]byte{}
	}
	hostMask := int64(binary.LittleEndian.Uint32(m[:]))
	base := int64(binary.LittleEndian.Uint32(a[:]))
	return asm.Instructions{
		asm.LoadMem(asm.R6, asm.R1, 0, asm.Word), // data
		asm.LoadMem(asm.R7, asm.R1, 4, asm.Word), // data_end
		asm.Mov.Reg(asm.R2, asm.R6),
		asm.Add.Imm(asm.R2, 46),
		asm.JGT.Reg(asm.R2, asm.R7, "tx"),
		asm.LoadMem(asm.R2, asm.R6, 12, asm.Half),
		asm.JNE.Imm(asm.R2, 0x0008, "tx"), // ethertype 0x0800
		asm.LoadMem(asm.R2, asm.R6, 14, asm.Byte),
		asm.JNE.Imm(asm.R2, 0x45, "tx"), // IPv4, 20-byte header
		asm.FnGetPrandomU32.Call(),
		asm.LoadImm(asm.R2, hostMask, asm.DWord),
		asm.And.Reg(asm.R0, asm.R2),
		asm.LoadImm(asm.R2, base, asm.DWord),
		asm.Or.Reg(asm.R0, asm.R2),
		// R8 = old src words - new src words (ones' complement).
		asm.LoadMem(asm.R8, asm.R6, 26, asm.Half),
		asm.LoadMem(asm.R2, asm.R6, 28, asm.Half),
		asm.Add.Reg(asm.R8, asm.R2),
		asm.Mov.Reg(asm.R2, asm.R0),
		asm.And.Imm(asm.R2, 0xffff),
		asm.Xor.Imm(asm.R2, 0xffff),
		asm.Add.Reg(asm.R8, asm.R2),
		asm.Mov.Reg(asm.R2, asm.R0),
		asm.RSh.Imm(asm.R2, 16),
		asm.And.Imm(asm.R2, 0xffff),
		asm.Xor.Imm(asm.R2, 0xffff),
		asm.Add.Reg(asm.R8, asm.R2),
		asm.StoreMem(asm.R6, 26, asm.R0, asm.Word),
		// IP ID += R8.
		asm.LoadMem(asm.R2, asm.R6, 18, asm.Half),
		asm.Add.Reg(asm.R2, asm.R8),
		asm.Mov.Reg(asm.R3, asm.R2), asm.RSh.Imm(asm.R3, 16), asm.And.Imm(asm.R2, 0xffff), asm.Add.Reg(asm.R2, asm.R3),
		asm.Mov.Reg(asm.R3, asm.R2), asm.RSh.Imm(asm.R3, 16), asm.And.Imm(asm.R2, 0xffff), asm.Add.Reg(asm.R2, asm.R3),
		asm.StoreMem(asm.R6, 18, asm.R2, asm.Half),
		// TCP: acknowledgment number's first half += R8 (pseudo header).
		asm.LoadMem(asm.R2, asm.R6, 23, asm.Byte),
		asm.JNE.Imm(asm.R2, 6, "tx"),
		asm.LoadMem(asm.R2, asm.R6, 42, asm.Half),
		asm.Add.Reg(asm.R2, asm.R8),
		asm.Mov.Reg(asm.R3, asm.R2), asm.RSh.Imm(asm.R3, 16), asm.And.Imm(asm.R2, 0xffff), asm.Add.Reg(asm.R2, asm.R3),
		asm.Mov.Reg(asm.R3, asm.R2), asm.RSh.Imm(asm.R3, 16), asm.And.Imm(asm.R2, 0xffff), asm.Add.Reg(asm.R2, asm.R3),
		asm.StoreMem(asm.R6, 42, asm.R2, asm.Half),
		asm.Mov.Imm(asm.R0, xdpTX).WithSymbol("tx"),
		asm.Return(),
	}
}

const (
	// liveBatch is the kernel's default live-frames batch size.
	liveBatch = 64
	// defaultCallDuration is how long one BPF_PROG_RUN call should last.
	defaultCallDuration = 150 * time.Millisecond
)

// xdpMd is struct xdp_md, the context BPF_PROG_RUN takes for XDP.
type xdpMd struct {
	Data, DataEnd, DataMeta, IngressIfindex, RxQueueIndex, EgressIfindex uint32
}

// Sent is the number of frames the flood has transmitted so far (over
// all its runs), readable while it runs.
func (f *Flood) Sent() uint64 { return f.sent.Load() }

// Run transmits until maxPackets frames were sent, maxDuration passed or
// ctx is done, whichever comes first, and returns how many frames this
// run sent. Both bounds are required (zero is refused) and are capped by
// MaxFloodPackets and MaxFloodDuration. The count is the number of
// repetitions the kernel was asked to run; frames the receiving veth had
// no room for are counted by the veth (rx_dropped), not here.
//
// Each BPF_PROG_RUN call costs a fixed setup and teardown of tens of
// milliseconds (a page pool per call), so calls are sized to last about
// CallDuration, and Workers threads (default 2) call in turn so that one's
// teardown can overlap another's sending. The duration bound is therefore
// met within about one call.
func (f *Flood) Run(ctx context.Context, maxPackets uint64, maxDuration time.Duration) (uint64, error) {
	if maxPackets == 0 || maxDuration <= 0 {
		return 0, errors.New("testnet: a flood needs both a packet bound and a duration bound")
	}
	maxPackets = min(maxPackets, MaxFloodPackets)
	maxDuration = min(maxDuration, MaxFloodDuration)
	if f.closed.Load() {
		return 0, errors.New("testnet: flood closed")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.topo.owned(); err != nil {
		return 0, err
	}
	deadline := time.Now().Add(maxDuration)
	var (
		reserved atomic.Uint64 // frames handed to calls so far
		sent     atomic.Uint64
		next     atomic.Uint64 // template rotation
		wg       sync.WaitGroup
		errMu    sync.Mutex
		firstErr error
	)
	// reserve claims up to n frames of the budget.
	reserve := func(n uint64) uint64 {
		for {
			r := reserved.Load()
			if r >= maxPackets {
				return 0
			}
			take := min(n, maxPackets-r)
			if reserved.CompareAndSwap(r, r+take) {
				return take
			}
		}
	}
	worker := func() {
		defer wg.Done()
		batch := uint64(f.batch)
		err := f.topo.Sender.Do(func() error {
			for {
				if ctx.Err() != nil || time.Now().After(deadline) || f.closed.Load() {
					return nil
				}
				// Do not start a call that would overrun the deadline by
				// more than its own length.
				// The kernel sends whole batches of BatchSize frames (it
				// rounds Repeat up), so ask for a multiple of it.
				n := reserve(max(liveBatch, batch/liveBatch*liveBatch))
				if n == 0 {
					return nil
				}
				bs := uint32(liveBatch)
				if n%liveBatch != 0 {
					// Only the budget's last call: small batches.
					bs = 1
				}
				frame := f.frames[next.Add(1)%uint64(len(f.frames))]
				start := time.Now()
				_, err := f.prog.Run(&ebpf.RunOptions{
					Data:      frame,
					Repeat:    uint32(n),
					Flags:     unix.BPF_F_TEST_XDP_LIVE_FRAMES,
					Context:   xdpMd{DataEnd: uint32(len(frame)), IngressIfindex: uint32(f.topo.SenderIndex)},
					BatchSize: bs,
				})
				if err != nil {
					return fmt.Errorf("testnet: XDP live-frames run on %s: %w", SenderIfName, err)
				}
				sent.Add(n)
				f.sent.Add(n)
				// Size the next call to about callDur, and no further
				// than the time left.
				el := time.Since(start)
				if el > 0 {
					rate := float64(n) / el.Seconds()
					target := min(f.callDur, time.Until(deadline))
					batch = uint64(max(1024, min(float64(1<<22), rate*target.Seconds())))
				}
			}
		})
		if err != nil {
			errMu.Lock()
			firstErr = errors.Join(firstErr, err)
			errMu.Unlock()
		}
	}
	workers := max(1, f.workers)
	wg.Add(workers)
	for i := 0; i < workers; i++ {
		go worker()
	}
	wg.Wait()
	return sent.Load(), firstErr
}

// Close unloads the program; a Run in progress stops after its current
// batch.
func (f *Flood) Close() error {
	if f.closed.Swap(true) {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.prog.Close()
}

// String describes the flood.
func (f *Flood) String() string {
	return "flood of " + strconv.Itoa(len(f.frames)) + " templates on " + SenderIfName
}
