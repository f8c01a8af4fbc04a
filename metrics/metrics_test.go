package metrics

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/sluice-project/sluice/engine/hashlimit"
	"github.com/sluice-project/sluice/packet"
	"github.com/sluice-project/sluice/report"
)

// The endpoint is scraped through a real HTTP client over loopback, and
// every family of metric the issue asks for is there with its labels.
func TestScrape(t *testing.T) {
	rep := &report.Report{Packets: 10, Accepted: 4, Dropped: 5, Hotdropped: 1, Malformed: 1,
		MalformedBy: map[string]uint64{"ip_checksum": 1},
		Tables: []report.Table{{Family: "ipv4", Table: "raw", Chains: []report.Chain{{Name: "PREROUTING", Policy: "ACCEPT",
			PolicyPackets: 4, PolicyBytes: 160, Rules: []report.Rule{{Line: 7, Packets: 4, Bytes: 200, Comment: "dns amp"}}}}}}}
	src := Sources{
		Report: func() *report.Report { return rep },
		Queues: func() []QueueStats { return []QueueStats{{Iface: "eth0", Queue: 3, RX: 10, Dropped: 5}} },
		Hashlimit: func() []hashlimit.TableStats {
			return []hashlimit.TableStats{{Name: "syn", Family: packet.FamilyIPv4, Entries: 2, Max: 65536, FullDrops: 9}}
		},
		Reloads: func() (uint64, uint64) { return 2, 1 },
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: Handler(src)}
	go srv.Serve(ln)
	defer srv.Close()
	resp, err := http.Get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`sluice_rule_packets_total{chain="PREROUTING",comment="dns amp",family="ipv4",line="7",rule="1",table="raw"} 4`,
		`sluice_rule_bytes_total{chain="PREROUTING",comment="dns amp",family="ipv4",line="7",rule="1",table="raw"} 200`,
		`sluice_policy_packets_total{chain="PREROUTING",family="ipv4",policy="ACCEPT",table="raw"} 4`,
		`sluice_packets_total{verdict="hotdrop"} 1`,
		`sluice_malformed_packets_total{reason="ip_checksum"} 1`,
		`sluice_queue_packets_total{counter="dropped",iface="eth0",queue="3"} 5`,
		`sluice_hashlimit_table_full_drops_total{family="ipv4",name="syn"} 9`,
		`sluice_hashlimit_entries{family="ipv4",name="syn"} 2`,
		`sluice_reloads_total{result="failure"} 1`,
		`sluice_build_info{`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("scrape lacks %s\n%s", want, body)
		}
	}
}
