package tap_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/sluice-project/sluice/internal/testnet"
	"github.com/sluice-project/sluice/tap"
)

func TestCreateCopiesAndDisappears(t *testing.T) {
	testnet.RequireForTest(t)
	pair, err := testnet.NewPair(testnet.PairOptions{Prefix: "tap", MTU: 1500})
	if err != nil {
		t.Fatal(err)
	}
	defer pair.Close()
	ctx := context.Background()
	// conf.all.rp_filter=1 makes sluice pick loose mode on the TAP.
	if _, err := pair.B.Run(ctx, "sysctl", "-q", "-w", "net.ipv4.conf.all.rp_filter=1"); err != nil {
		t.Fatal(err)
	}
	var dev *tap.Device
	var rp, gen string
	err = pair.B.Do(func() error {
		var err error
		if dev, err = tap.Create(tap.Config{Like: testnet.BIfName}); err != nil {
			return err
		}
		b, _ := os.ReadFile("/proc/sys/net/ipv4/conf/sluice0/rp_filter")
		rp = strings.TrimSpace(string(b))
		b, _ = os.ReadFile("/proc/sys/net/ipv6/conf/sluice0/addr_gen_mode")
		gen = strings.TrimSpace(string(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if rp != "2" || gen != "1" {
		t.Errorf("rp_filter %q addr_gen_mode %q, want 2 and 1", rp, gen)
	}
	out, err := pair.B.Run(ctx, "ip", "-o", "link", "show", "sluice0")
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	if !strings.Contains(s, pair.BMAC.String()) || !strings.Contains(s, "mtu 1500") || !strings.Contains(s, "NOARP") || !strings.Contains(s, ",UP") {
		t.Errorf("sluice0 not configured like %s: %s", testnet.BIfName, s)
	}
	if dev.Index() <= 0 {
		t.Errorf("index %d", dev.Index())
	}
	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}
	if out, err := pair.B.Run(ctx, "ip", "link", "show", "sluice0"); err == nil {
		t.Errorf("sluice0 still exists after Close: %s", out)
	}
}
