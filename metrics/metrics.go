// Package metrics serves sluice's counters to Prometheus. Nothing is
// pushed from the packet path: a scrape calls the daemon's snapshot
// functions, which read the workers' counters at that moment (between two
// of a worker's batches), so the hot path pays nothing for being observed.
package metrics

import (
	"net/http"
	"runtime/debug"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluice-project/sluice/engine/hashlimit"
	"github.com/sluice-project/sluice/report"
)

// QueueStats is one RX queue's counters in the live tiers.
type QueueStats struct {
	Iface       string
	Queue       int
	RX          uint64
	Accepted    uint64
	Dropped     uint64
	Reinjected  uint64
	RingFull    uint64
	FillEmpty   uint64
	RXDropped   uint64 // the kernel's AF_XDP rx_dropped
	InvalidDesc uint64
}

// Sources are the snapshot functions a scrape calls; any may be nil.
type Sources struct {
	Report    func() *report.Report
	Queues    func() []QueueStats
	Hashlimit func() []hashlimit.TableStats
	Reloads   func() (ok, failed uint64)
}

var (
	rulePackets = prometheus.NewDesc("sluice_rule_packets_total", "Packets matched by a rule, as iptables counts them.",
		[]string{"family", "table", "chain", "rule", "line", "comment"}, nil)
	ruleBytes = prometheus.NewDesc("sluice_rule_bytes_total", "Bytes (L3 length) matched by a rule, as iptables counts them.",
		[]string{"family", "table", "chain", "rule", "line", "comment"}, nil)
	policyPackets = prometheus.NewDesc("sluice_policy_packets_total", "Packets that reached a built-in chain's policy.",
		[]string{"family", "table", "chain", "policy"}, nil)
	policyBytes = prometheus.NewDesc("sluice_policy_bytes_total", "Bytes that reached a built-in chain's policy.",
		[]string{"family", "table", "chain", "policy"}, nil)
	packets = prometheus.NewDesc("sluice_packets_total", "Packets evaluated, by verdict.", []string{"verdict"}, nil)
	bad     = prometheus.NewDesc("sluice_malformed_packets_total", "Packets the kernel's receive path would discard before netfilter, by reason.",
		[]string{"reason"}, nil)
	queue = prometheus.NewDesc("sluice_queue_packets_total", "Per-RX-queue packet counters of the live tiers.",
		[]string{"iface", "queue", "counter"}, nil)
	hlEntries = prometheus.NewDesc("sluice_hashlimit_entries", "Entries in a hashlimit table.", []string{"name", "family"}, nil)
	hlMax     = prometheus.NewDesc("sluice_hashlimit_max_entries", "A hashlimit table's htable-max.", []string{"name", "family"}, nil)
	hlFull    = prometheus.NewDesc("sluice_hashlimit_table_full_drops_total", "Packets dropped because a hashlimit table was full (the kernel's behaviour).",
		[]string{"name", "family"}, nil)
	hlEvict = prometheus.NewDesc("sluice_hashlimit_evictions_total", "Entries evicted to make room (evict-oldest policy).", []string{"name", "family"}, nil)
	reloads = prometheus.NewDesc("sluice_reloads_total", "Ruleset reloads by result.", []string{"result"}, nil)
	build   = prometheus.NewDesc("sluice_build_info", "Build information.", []string{"version", "goversion"}, nil)
)

type collector struct{ src Sources }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{rulePackets, ruleBytes, policyPackets, policyBytes, packets, bad, queue,
		hlEntries, hlMax, hlFull, hlEvict, reloads, build} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	if c.src.Report != nil {
		if r := c.src.Report(); r != nil {
			for _, t := range r.Tables {
				for _, ch := range t.Chains {
					if ch.Policy != "-" {
						counter(policyPackets, ch.PolicyPackets, t.Family, t.Table, ch.Name, ch.Policy)
						counter(policyBytes, ch.PolicyBytes, t.Family, t.Table, ch.Name, ch.Policy)
					}
					for i, ru := range ch.Rules {
						n, line := strconv.Itoa(i+1), strconv.Itoa(ru.Line)
						counter(rulePackets, ru.Packets, t.Family, t.Table, ch.Name, n, line, ru.Comment)
						counter(ruleBytes, ru.Bytes, t.Family, t.Table, ch.Name, n, line, ru.Comment)
					}
				}
			}
			counter(packets, r.Accepted-r.NotFiltered, "accept")
			counter(packets, r.Dropped-r.Hotdropped, "drop")
			counter(packets, r.Hotdropped, "hotdrop")
			counter(packets, r.Malformed, "malformed")
			counter(packets, r.NotFiltered, "not_filtered")
			for reason, n := range r.MalformedBy {
				counter(bad, n, reason)
			}
		}
	}
	if c.src.Queues != nil {
		for _, q := range c.src.Queues() {
			qs := strconv.Itoa(q.Queue)
			for _, kv := range []struct {
				k string
				v uint64
			}{{"rx", q.RX}, {"accepted", q.Accepted}, {"dropped", q.Dropped}, {"reinjected", q.Reinjected},
				{"ring_full", q.RingFull}, {"fill_empty", q.FillEmpty}, {"kernel_rx_dropped", q.RXDropped}, {"invalid_desc", q.InvalidDesc}} {
				counter(queue, kv.v, q.Iface, qs, kv.k)
			}
		}
	}
	if c.src.Hashlimit != nil {
		for _, h := range c.src.Hashlimit() {
			f := h.Family.String()
			gauge(hlEntries, float64(h.Entries), h.Name, f)
			gauge(hlMax, float64(h.Max), h.Name, f)
			counter(hlFull, h.FullDrops, h.Name, f)
			counter(hlEvict, h.Evicts, h.Name, f)
		}
	}
	if c.src.Reloads != nil {
		ok, failed := c.src.Reloads()
		counter(reloads, ok, "success")
		counter(reloads, failed, "failure")
	}
	version, gover := "devel", "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		gover = bi.GoVersion
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
	}
	gauge(build, 1, version, gover)
}

// Handler serves the metrics of src in the Prometheus text format.
func Handler(src Sources) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{src})
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}
