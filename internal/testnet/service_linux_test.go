package testnet

import (
	"net/netip"
	"testing"
	"time"
)

func TestServicePairAllSucceedWithoutFlood(t *testing.T) {
	topo := newTopologyForTest(t, TopologyOptions{Prefix: "ts"})
	srv, err := ServeHTTP(topo.Server, netip.AddrPortFrom(topo.ServerAddr, 80))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c, err := StartClient(topo.Sender, ClientOptions{URL: "http://" + srv.Addr.String() + "/",
		Interval: 10 * time.Millisecond, MaxRequests: 100, MaxDuration: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for c.Mark() < 100 && time.Since(start) < 5*time.Second {
		time.Sleep(20 * time.Millisecond)
	}
	st := c.Stop()
	t.Logf("%+v", st)
	if st.Requests != 100 {
		t.Errorf("%d requests, want the bound of 100", st.Requests)
	}
	if st.SuccessRate() != 1 {
		t.Errorf("success rate %.3f without any flood", st.SuccessRate())
	}
	if st.P50 <= 0 || st.P99 < st.P50 || st.P99 > time.Second {
		t.Errorf("implausible latencies %+v", st)
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i))
	}
	if p := Percentile(d, 50); p != 50 {
		t.Errorf("p50 = %d", p)
	}
	if p := Percentile(d, 99); p != 99 {
		t.Errorf("p99 = %d", p)
	}
	if p := Percentile(d[:1], 99); p != 1 {
		t.Errorf("p99 of one = %d", p)
	}
}
