package cli

import (
	"bytes"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/sluice-project/sluice/daemon"
)

func TestParseQueues(t *testing.T) {
	for in, want := range map[string][]int{"all": nil, "0": {0}, "0,3": {0, 3}, "3, 1,3": {3, 1}} {
		got, err := parseQueues(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("parseQueues(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"x", "-1", "1,,2", "5000"} {
		if _, err := parseQueues(bad); err == nil {
			t.Errorf("parseQueues(%q) accepted", bad)
		}
	}
}

func TestRunFlagErrors(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Main([]string{"run"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "--iface is required") {
		t.Errorf("run without --iface: %d %q", code, errb.String())
	}
	errb.Reset()
	if code := Main([]string{"run", "--iface", "lo", "--mode", "tc"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "want afxdp, xdp or auto") {
		t.Errorf("run --mode tc: %d %q", code, errb.String())
	}
}

func TestStatsFromControlSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "eth0.sock")
	st := &daemon.Stats{Iface: "eth0", TAP: "sluice0", XDPMode: "driver",
		Queues: []daemon.QueueStats{{Queue: 0, RX: 10, Accepted: 7, Dropped: 3, Reinjected: 7}, {Queue: 3, RX: 5, Dropped: 5}}}
	ctl, err := daemon.ServeControl(path, daemon.StatsFunc(func() *daemon.Stats { return st }))
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	if _, err := daemon.ServeControl(path, daemon.StatsFunc(func() *daemon.Stats { return st })); err == nil {
		t.Error("a second server on a live control socket was allowed")
	}
	var out, errb bytes.Buffer
	if code := Main([]string{"stats", "--control", path}, &out, &errb); code != 0 {
		t.Fatalf("stats: %d %s", code, errb.String())
	}
	for _, want := range []string{"interface eth0, XDP driver mode, re-injecting through sluice0", "total", "fill-empty"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("stats output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if code := Main([]string{"stats", "--control", path, "--json"}, &out, &errb); code != 0 || !strings.Contains(out.String(), `"dropped": 5`) {
		t.Errorf("stats --json: %d %s", code, out.String())
	}
}
