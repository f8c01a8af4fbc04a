package testnet

import (
	"fmt"
	"strings"
)

// CommandError is a command that failed, with what it printed on stderr.
type CommandError struct {
	Args   []string
	Stderr string
	Err    error
}

func (e *CommandError) Error() string {
	msg := fmt.Sprintf("testnet: %s: %v", strings.Join(e.Args, " "), e.Err)
	if e.Stderr != "" {
		msg += ": " + e.Stderr
	}
	return msg
}

func (e *CommandError) Unwrap() error { return e.Err }

// Counters are the numbers that say whether every frame sent from A was
// handed to B's network stack.
type Counters struct {
	// ATxPackets counts frames the veth handed to B's backlog; veth
	// reports the same number as B's rx_packets.
	ATxPackets uint64
	// ATxDropped counts frames veth could not queue to B (backlog full,
	// or too long for B's MTU): they never reached B's IP layer. Sender
	// gets ENOBUFS for each and resends it (Sender.Requeued).
	ATxDropped uint64
	// BRxPackets and BRxDropped are B's veth receive counters. The
	// kernel adds to rx_dropped frames nobody handles (unknown ethertype),
	// so it is informational only.
	BRxPackets uint64
	BRxDropped uint64
	// SoftnetDropped sums column 2 of /proc/net/softnet_stat over all
	// CPUs: frames dropped because a backlog queue exceeded
	// net.core.netdev_max_backlog. It is machine-wide.
	SoftnetDropped uint64
}

// LostFramesError says that frames sent from A did not all reach B's IP
// layer: a caller comparing counters must not trust this run.
type LostFramesError struct {
	Sent, Received        uint64
	VethDropped, Requeued uint64
	// SoftnetDropped is machine-wide, so it may include other traffic.
	SoftnetDropped uint64
}

func (e *LostFramesError) Error() string {
	return fmt.Sprintf("testnet: %d frames sent but B received %d (veth tx drops %d of which %d were resent, softnet backlog drops %d machine-wide): frames were lost before B's IP layer; send more slowly or raise net.core.netdev_max_backlog",
		e.Sent, e.Received, e.VethDropped, e.Requeued, e.SoftnetDropped)
}

// CheckDelivered compares counters taken before and after sending sent
// frames (barrier frames included), of which requeued were refused once
// with ENOBUFS and sent again (Sender.Requeued), and returns a
// *LostFramesError unless B received every frame exactly once.
//
// B's rx_dropped is deliberately not part of the check: the kernel counts
// there frames it received but had no protocol handler for (an unknown
// ethertype), which did reach B's stack.
func CheckDelivered(before, after Counters, sent, requeued uint64) error {
	recv := after.BRxPackets - before.BRxPackets
	vdrop := after.ATxDropped - before.ATxDropped
	if recv == sent && vdrop == requeued {
		return nil
	}
	return &LostFramesError{Sent: sent, Received: recv, VethDropped: vdrop, Requeued: requeued, SoftnetDropped: after.SoftnetDropped - before.SoftnetDropped}
}
