package engine

import (
	"net/netip"
	"sync"
	"testing"

	"github.com/sluice-project/sluice/packet"
)

// Report reads a worker's counters while the worker judges packets, from
// another goroutine, as the daemon's metrics scrape does: every read sees
// whole packets (a rule's count never exceeds the packets counted, and
// counts never go back), and the last read is exact. Run with -race, it
// also checks the counters are only touched under the worker's lock.
func TestReportWhileProcessing(t *testing.T) {
	const text = "*raw\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p udp -m udp --dport 53 -j DROP\n-A PREROUTING -p udp\nCOMMIT\n"
	pr, err := compileTextForTest(t, NewState(nil, 250), text, 0)
	if err != nil {
		t.Fatal(err)
	}
	w := pr.NewWorker()
	var d packet.Decoder
	pkts := make([]packet.Packet, 2)
	for i, port := range []uint16{53, 80} {
		d.Decode(packet.BuildIPv4(netip.MustParseAddr("192.0.2.9"), netip.MustParseAddr("198.51.100.1"), packet.ProtoUDP, packet.BuildUDP(1, port, nil)), &pkts[i])
	}
	const rounds = 2000
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		ptrs := []*packet.Packet{&pkts[0], &pkts[1], &pkts[1]}
		nows := make([]int64, len(ptrs))
		out := make([]Verdict, len(ptrs))
		for i := 0; i < rounds; i++ {
			if i%2 == 0 {
				w.ProcessBatch(ptrs, nows, out, nil)
				continue
			}
			for _, p := range ptrs {
				w.Process(p, 0)
			}
		}
	}()
	finished := waitChan(&wg)
	var last uint64
	for done := false; !done; {
		select {
		case <-finished:
			done = true
		default:
		}
		rep := pr.Report(w)
		rules := rep.Tables[0].Chains[0].Rules
		if rep.Packets < last || rep.Packets != rep.Dropped+rep.Accepted {
			t.Fatalf("report went back or split a packet: %+v", rep)
		}
		if rules[0].Packets != rep.Dropped || rules[1].Packets != rep.Accepted {
			t.Fatalf("rule counts %d, %d against verdicts drop %d accept %d", rules[0].Packets, rules[1].Packets, rep.Dropped, rep.Accepted)
		}
		last = rep.Packets
	}
	rep := pr.Report(w)
	if rep.Packets != 3*rounds || rep.Dropped != rounds || rep.Tables[0].Chains[0].Rules[1].Bytes != 2*rounds*28 {
		t.Errorf("final report: %d packets, %d dropped, rule 2 %d bytes; want %d, %d, %d",
			rep.Packets, rep.Dropped, rep.Tables[0].Chains[0].Rules[1].Bytes, 3*rounds, rounds, 2*rounds*28)
	}
}

// waitChan is a channel closed when wg is done.
func waitChan(wg *sync.WaitGroup) <-chan struct{} {
	c := make(chan struct{})
	go func() { wg.Wait(); close(c) }()
	return c
}
