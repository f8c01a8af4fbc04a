package xdp

import (
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/sluice-project/sluice/packet"
)

func TestRedirectInstructionsCommented(t *testing.T) {
	insns := RedirectInstructions(ActionPass)
	text := insns.String()
	for _, want := range []string{"ctx->rx_queue_index", "neighbour discovery", "ARP"} {
		if !strings.Contains(text, want) {
			t.Errorf("listing lacks %q:\n%s", want, text)
		}
	}
}

// TestRedirectVerdicts runs the program in the kernel (BPF_PROG_TEST_RUN)
// with the fallback set to XDP_DROP: with an empty XSKMAP, a frame the
// program tries to redirect comes back as XDP_DROP, a frame it passes as
// XDP_PASS.
func TestRedirectVerdicts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("loading BPF programs needs root")
	}
	r, err := NewRedirect(RedirectOptions{Queues: 4, Fallback: ActionDrop})
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skipf("cannot load XDP programs here: %v", err)
	}
	defer r.Close()

	v4a, v4b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	v6a, v6b := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	icmp6 := func(typ uint8) []byte { return []byte{typ, 0, 0, 0, 0, 0, 0, 0} }
	arp := make([]byte, 42)
	arp[12], arp[13] = 0x08, 0x06
	lldp := make([]byte, 60)
	lldp[12], lldp[13] = 0x88, 0xcc
	ipv6Trunc := packet.BuildIPv6(v6a, v6b, 58, icmp6(135))[:14+40]
	cases := []struct {
		name  string
		frame []byte
		want  uint32
	}{
		{"arp", arp, ActionPass},
		{"lldp", lldp, ActionPass},
		{"runt", make([]byte, 14)[:14], ActionPass},
		{"vlan-tagged ipv4", packet.BuildIPv4(v4a, v4b, packet.ProtoUDP, packet.BuildUDP(1, 9999, nil), packet.WithVLAN(5)), ActionPass},
		{"ipv4 udp", packet.BuildIPv4(v4a, v4b, packet.ProtoUDP, packet.BuildUDP(1, 9999, nil)), ActionDrop},
		{"ipv4 tcp syn", packet.BuildIPv4(v4a, v4b, packet.ProtoTCP, packet.BuildTCP(1, 80, packet.TCPSyn, nil)), ActionDrop},
		{"ipv4 icmp-type-135-lookalike", packet.BuildIPv4(v4a, v4b, 1, icmp6(135)), ActionDrop},
		{"ipv6 tcp", packet.BuildIPv6(v6a, v6b, packet.ProtoTCP, packet.BuildTCP(1, 80, packet.TCPSyn, nil)), ActionDrop},
		{"ipv6 echo request", packet.BuildIPv6(v6a, v6b, 58, icmp6(128)), ActionDrop},
		{"ipv6 router solicitation", packet.BuildIPv6(v6a, v6b, 58, icmp6(133)), ActionPass},
		{"ipv6 neighbour solicitation", packet.BuildIPv6(v6a, v6b, 58, icmp6(135)), ActionPass},
		{"ipv6 neighbour advertisement", packet.BuildIPv6(v6a, v6b, 58, icmp6(136)), ActionPass},
		{"ipv6 redirect", packet.BuildIPv6(v6a, v6b, 58, icmp6(137)), ActionPass},
		{"ipv6 mld report (143)", packet.BuildIPv6(v6a, v6b, 58, icmp6(143)), ActionDrop},
		{"ipv6 ns behind a destination options header", packet.BuildIPv6(v6a, v6b, 58, icmp6(135), packet.WithDestOpts(nil)), ActionDrop},
		{"ipv6 truncated before icmp type", ipv6Trunc, ActionDrop},
	}
	for _, c := range cases {
		ret, err := r.Program.Run(&ebpf.RunOptions{Data: c.frame})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if ret != c.want {
			t.Errorf("%s: verdict %d, want %d", c.name, ret, c.want)
		}
	}
}
