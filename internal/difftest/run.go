package difftest

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/sluice-project/sluice/engine"
	"github.com/sluice-project/sluice/engine/ipset"
	"github.com/sluice-project/sluice/internal/testnet"
	"github.com/sluice-project/sluice/oracle"
	"github.com/sluice-project/sluice/packet"
	"github.com/sluice-project/sluice/pcapio"
	"github.com/sluice-project/sluice/report"
	"github.com/sluice-project/sluice/rules"
)

// Parsed is a case parsed by sluice's parsers at a load time.
type Parsed struct {
	R4, R6 *rules.Ruleset
	Sets   *ipset.Registry
}

// Parse parses the case's sets and rules as `sluice verify` does.
func Parse(c Case, hz uint64, now int64) (*Parsed, error) {
	ps := &Parsed{}
	var resolver rules.SetResolver
	if len(c.Sets) > 0 {
		reg, err := ipset.Parse("sets", bytes.NewReader(c.Sets), now)
		if err != nil {
			return nil, err
		}
		ps.Sets, resolver = reg, reg
	}
	var err error
	if len(c.Rules4) > 0 {
		if ps.R4, err = rules.Parse(bytes.NewReader(c.Rules4), rules.Options{Family: packet.FamilyIPv4, File: "rules.v4", Sets: resolver, HZ: hz}); err != nil {
			return nil, err
		}
	}
	if len(c.Rules6) > 0 {
		if ps.R6, err = rules.Parse(bytes.NewReader(c.Rules6), rules.Options{Family: packet.FamilyIPv6, File: "rules.v6", Sets: resolver, HZ: hz}); err != nil {
			return nil, err
		}
	}
	return ps, nil
}

// RunEngine runs the frames through the engine configured like the
// oracle's host: input interface testnet.BIfName, local addresses
// testnet.BIPv4 and testnet.BIPv6, the first frame's time as load time.
func RunEngine(c Case, frames []oracle.Frame, hz uint64) (rep *report.Report, err error) {
	frame := -1
	defer func() {
		if x := recover(); x != nil {
			rep, err = nil, fmt.Errorf("engine panic on frame %d: %v", frame, x)
		}
	}()
	now := int64(0)
	if len(frames) > 0 {
		now = frames[0].Time
	}
	ps, err := Parse(c, hz, now)
	if err != nil {
		return nil, err
	}
	st := engine.NewState(ps.Sets, hz)
	pr, err := engine.Compile(engine.Config{Rules4: ps.R4, Rules6: ps.R6, HZ: hz, InIface: testnet.BIfName,
		LocalAddrs: []netip.Addr{testnet.BIPv4.Addr(), testnet.BIPv6.Addr()}, LocalNets: []netip.Prefix{testnet.BIPv4}}, st, now)
	if err != nil {
		return nil, err
	}
	w := pr.NewWorker()
	var p packet.Packet
	var dec packet.Decoder
	for i, f := range frames {
		frame = i
		dec.Link = packet.LinkEthernet
		dec.Decode(f.Data, &p)
		w.Process(&p, f.Time)
	}
	return pr.Report(w), nil
}

// FormatDiff renders the differing rows and the structural problems.
func FormatDiff(d *report.Diff) string {
	var b strings.Builder
	for _, p := range d.Problems {
		fmt.Fprintf(&b, "problem: %s\n", p)
	}
	for _, r := range d.Mismatches() {
		idx := fmt.Sprint(r.Index)
		if r.Index < 0 {
			idx = "policy"
		}
		fmt.Fprintf(&b, "%s %s %s #%s line %d: kernel %d pkts %d bytes, sluice %d pkts %d bytes: %s\n",
			r.Family, r.Table, r.Chain, idx, r.Line, r.KernelPackets, r.KernelBytes, r.SluicePackets, r.SluiceBytes, r.Text)
	}
	return b.String()
}

// WriteRepro writes what reproduces a run into dir: frames.pcap,
// rules.v4 and/or rules.v6, sets, frames.hex and diff.txt. It returns the
// `sluice verify` command line that replays it.
func WriteRepro(dir string, c Case, frames []oracle.Frame, diff string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	f, err := os.Create(filepath.Join(dir, "frames.pcap"))
	if err != nil {
		return "", err
	}
	w, err := pcapio.NewWriter(f, packet.LinkEthernet, 0)
	if err != nil {
		f.Close()
		return "", err
	}
	for _, fr := range frames {
		if err := w.Write(fr.Data, fr.Time, len(fr.Data)); err != nil {
			f.Close()
			return "", err
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	cmd := "sluice verify"
	write := func(name string, data []byte, flag string) error {
		if len(data) == 0 {
			return nil
		}
		if flag != "" {
			cmd += " " + flag + " " + filepath.Join(dir, name)
		}
		return os.WriteFile(filepath.Join(dir, name), data, 0o644)
	}
	if err := write("rules.v4", c.Rules4, "--rules"); err != nil {
		return "", err
	}
	if err := write("rules.v6", c.Rules6, "--rules6"); err != nil {
		return "", err
	}
	if err := write("sets", c.Sets, "--sets"); err != nil {
		return "", err
	}
	if err := write("frames.hex", []byte(FramesHex(frames)), ""); err != nil {
		return "", err
	}
	cmd += " --pace off " + filepath.Join(dir, "frames.pcap")
	if err := write("diff.txt", []byte(diff+"\nreplay: "+cmd+"\n"), ""); err != nil {
		return "", err
	}
	return cmd, nil
}

// FramesHex renders frames one per line as hex (the quirk cases' format).
func FramesHex(frames []oracle.Frame) string {
	var b strings.Builder
	for _, f := range frames {
		b.WriteString(hex.EncodeToString(f.Data))
		b.WriteByte('\n')
	}
	return b.String()
}

// ParseFramesHex reads a frames.hex file: one frame per line in hex,
// blank lines and lines starting with # ignored; whitespace inside a line
// is allowed. Frames are FrameGap apart from FrameStart.
func ParseFramesHex(text string) ([]oracle.Frame, error) {
	var out []oracle.Frame
	for i, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || l[0] == '#' {
			continue
		}
		l = strings.Join(strings.Fields(l), "")
		b, err := hex.DecodeString(l)
		if err != nil {
			return nil, fmt.Errorf("line %d: %v", i+1, err)
		}
		out = append(out, oracle.Frame{Data: b, Time: FrameStart + int64(len(out))*FrameGap})
	}
	return out, nil
}
