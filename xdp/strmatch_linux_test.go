//go:build linux

package xdp

import (
	"bytes"
	"fmt"
	"math/rand"
	"net/netip"
	"strings"
	"testing"

	"github.com/sluice-project/sluice/engine"
	"github.com/sluice-project/sluice/examples"
	"github.com/sluice-project/sluice/internal/testnet"
	"github.com/sluice-project/sluice/packet"
	"github.com/sluice-project/sluice/rules"
)

// strCase is one string match of the differential rulesets.
type strCase struct {
	opt      string // the options after -m string, as iptables-save has them
	pattern  []byte // the configured pattern
	from, to int
	icase    bool
}

// strCases covers both algorithms, hex strings, --icase with ASCII and
// Latin-1 letters (0xFF, whose upper case 0xDF is not its own; 0xBF,
// which 0xDF folds to; 0xE9/0xC9), windows clamped by --to and by the
// datagram, a one-byte window, from == to, the default window from 0 and
// a 128-byte pattern, plain and inverted.
var strCases = []strCase{
	{`--string "abc" --algo bm --from 30 --to 60`, []byte("abc"), 30, 60, false},
	{`! --string "abc" --algo kmp --from 30 --to 60`, []byte("abc"), 30, 60, false},
	{`--hex-string "|00ff41|" --algo bm --from 25 --to 40`, []byte{0, 0xff, 'A'}, 25, 40, false},
	{`--string "GeT /X" --algo bm --from 20 --to 100 --icase`, []byte("GeT /X"), 20, 100, true},
	{`--string "GeT /X" --algo kmp --from 20 --to 100 --icase`, []byte("GeT /X"), 20, 100, true},
	{`--hex-string "|ff|b" --algo kmp --from 21 --to 50 --icase`, []byte{0xff, 'b'}, 21, 50, true},
	{`--hex-string "|bf|c" --algo kmp --from 21 --to 50 --icase`, []byte{0xbf, 'c'}, 21, 50, true},
	{`! --hex-string "|e9|" --algo bm --from 22 --to 90 --icase`, []byte{0xe9}, 22, 90, true},
	{`--string "abc" --algo bm`, []byte("abc"), 0, 65535, false},
	{`--string "q" --algo kmp --from 40 --to 41`, []byte("q"), 40, 41, false},
	{`--string "a" --algo bm --from 50 --to 50`, []byte("a"), 50, 50, false},
	{`--string "` + strings.Repeat("0123456789abcdef", 8) + `" --algo kmp --from 20 --to 400`, []byte(strings.Repeat("0123456789abcdef", 8)), 20, 400, false},
	{`! --string "zz" --algo bm --from 20 --icase`, []byte("zz"), 20, 65535, true},
}

// strRules builds a ruleset counting every case in raw PREROUTING, and
// again in a user chain entered from two call sites (whose search
// callbacks the inlined copies share).
func strRules(cases []strCase) string {
	var b strings.Builder
	b.WriteString("*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:S - [0:0]\n")
	for _, c := range cases {
		fmt.Fprintf(&b, "-A PREROUTING -m string %s\n", c.opt)
	}
	b.WriteString("-A PREROUTING -p 253 -j S\n-A PREROUTING -p udp -j S\n")
	for _, c := range cases {
		fmt.Fprintf(&b, "-A S -m string %s\n", c.opt)
	}
	b.WriteString("-A S -m string --string \"DROPME\" --algo kmp --from 20 -j DROP\nCOMMIT\n")
	return b.String()
}

var (
	strSrc4, strDst4 = netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("192.168.1.1")
	strSrc6, strDst6 = netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
)

// strFrame is an IPv4 datagram of l3len bytes (protocol 253) filled with
// fill, with the byte strings of at written at their L3 offsets (from 20
// on: the header is the builder's); bytes past l3len are cut.
func strFrame(l3len int, fill byte, at map[int][]byte, opts ...packet.BuildOpt) []byte {
	if l3len < 20 {
		l3len = 20
	}
	l4 := bytes.Repeat([]byte{fill}, l3len-20)
	for off, s := range at {
		for i, c := range s {
			if o := off + i - 20; o >= 0 && o < len(l4) {
				l4[o] = c
			}
		}
	}
	return packet.BuildIPv4(strSrc4, strDst4, 253, l4, opts...)
}

// strVariants returns the pattern and, under --icase, a variant with
// every byte replaced by another byte the kernel's toupper folds the
// same way (when there is one).
func strVariants(c strCase) [][]byte {
	out := [][]byte{c.pattern}
	if c.icase {
		alt := append([]byte(nil), c.pattern...)
		for i, p := range alt {
			for b := 0; b < 256; b++ {
				if byte(b) != p && kernelToUpper(byte(b)) == kernelToUpper(p) {
					alt[i] = byte(b)
					break
				}
			}
		}
		out = append(out, alt)
		// A byte that looks like a case variant but does not fold the
		// same way: 0xDF for 0xFF (toupper(0xDF) is 0xBF).
		if bytes.IndexByte(c.pattern, 0xff) >= 0 {
			out = append(out, bytes.ReplaceAll(c.pattern, []byte{0xff}, []byte{0xdf}))
		}
	}
	return out
}

// strEdgeFrames places each case's pattern (and its case variants) at
// the window's edges: starting at from-1, from, from+1, ending at to-1,
// to, to+1, in datagrams whose length cuts the window or the pattern,
// shorter than from, with the pattern past the IPv4 total length (in the
// Ethernet trailer, or behind a shortened length field), and in frames
// truncated below their total length.
func strEdgeFrames(cases []strCase) [][]byte {
	var frames [][]byte
	for _, c := range cases {
		n := len(c.pattern)
		to := min(c.to, 600)
		offs := []int{c.from - 1, c.from, c.from + 1, to - n - 1, to - n, to - n + 1, to - 1, 20, 21}
		for _, pat := range strVariants(c) {
			for _, o := range offs {
				if o < 20 {
					continue
				}
				for _, l := range []int{o + n - 1, o + n, o + n + 1, to - 1, to, to + 1, c.from, c.from - 1, 700} {
					if l < 20 || l > 1400 {
						continue
					}
					frames = append(frames, strFrame(l, 'x', map[int][]byte{o: pat}))
				}
				full := o + n + 10
				// pattern only in the trailer / behind the length field
				frames = append(frames,
					strFrame(o, 'x', nil, packet.WithTrailer(append(append([]byte(nil), pat...), 0, 0, 0))),
					strFrame(full, 'x', map[int][]byte{o: pat}, packet.WithLengthField(o+n-1)),
					strFrame(full, 'x', map[int][]byte{o: pat}, packet.WithLengthField(o+n)))
				// truncated: the total length says more than the frame holds
				fr := strFrame(full, 'x', map[int][]byte{o: pat})
				frames = append(frames, fr[:len(fr)-5])
				// two occurrences: one before from, one inside
				frames = append(frames, strFrame(to+5, 'x', map[int][]byte{max(20, c.from-n): pat, o: pat}))
			}
		}
	}
	// tiny datagrams and headers only
	for l := 20; l < 45; l++ {
		frames = append(frames, strFrame(l, 'a', nil), strFrame(l, 'q', nil))
	}
	return frames
}

// strRandomFrames are datagrams over a small alphabet (the cases' letters
// in both cases, the Latin-1 bytes whose case folding is irregular),
// with occasional planted patterns, in UDP, TCP and protocol 253.
func strRandomFrames(cases []strCase, n int, seed int64) [][]byte {
	rng := rand.New(rand.NewSource(seed))
	alpha := []byte{'a', 'A', 'b', 'B', 'c', 'C', 'q', 'z', 'Z', 0, 0xff, 0xdf, 0xbf, 0xe9, 0xc9, 'x'}
	var frames [][]byte
	for len(frames) < n {
		l := 20 + rng.Intn(200)
		if rng.Intn(10) == 0 {
			l = 20 + rng.Intn(1400)
		}
		pay := make([]byte, l-20)
		for i := range pay {
			pay[i] = alpha[rng.Intn(len(alpha))]
		}
		for k := rng.Intn(3); k > 0; k-- {
			c := cases[rng.Intn(len(cases))]
			v := strVariants(c)
			p := v[rng.Intn(len(v))]
			if len(pay) > len(p) {
				copy(pay[rng.Intn(len(pay)-len(p)+1):], p)
			}
		}
		if rng.Intn(20) == 0 {
			copy(pay[rng.Intn(max(1, len(pay)-6)):], "DROPME")
		}
		var fr []byte
		switch rng.Intn(3) {
		case 0:
			fr = packet.BuildIPv4(strSrc4, strDst4, 253, pay)
		case 1:
			fr = packet.BuildIPv4(strSrc4, strDst4, packet.ProtoUDP, packet.BuildUDP(1000, 53, pay))
		default:
			fr = packet.BuildIPv4(strSrc4, strDst4, packet.ProtoTCP, packet.BuildTCP(1000, 80, packet.TCPAck, pay))
		}
		if rng.Intn(30) == 0 {
			fr = fr[:len(fr)-1-rng.Intn(10)]
		}
		frames = append(frames, fr)
	}
	return frames
}

// TestStringDiff runs the edge and random frames through the program and
// the engine: same verdicts, same counters for every rule.
func TestStringDiff(t *testing.T) {
	testnet.RequireForTest(t)
	rs := parse4(t, strRules(strCases))
	frames := append(strEdgeFrames(strCases), strRandomFrames(strCases, 4000, 1)...)
	spec, _ := diffBoth(t, rs, nil, CompileOptions{InIface: "eth0"}, frames)
	for _, ri := range spec.Rules {
		if ri.Mode != "xdp" {
			t.Errorf("line %d: %s (%s)", ri.Rule.Line, ri.Mode, ri.Reason)
		}
	}
	t.Logf("%d frames, %d instructions", len(frames), spec.Instructions())
	// Every case must both match and miss some frame, or the frames do
	// not exercise it.
	pr, err := engine.Compile(engine.Config{Rules4: rs, InIface: "eth0"}, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	w := pr.NewWorker()
	var p packet.Packet
	dec := packet.Decoder{}
	valid := 0
	for i, fr := range frames {
		dec.Decode(fr, &p)
		if w.Process(&p, int64(i)) != engine.Malformed {
			valid++
		}
	}
	for _, c := range pr.Report(w).Tables[0].Chains[0].Rules[:len(strCases)] {
		never := strings.Contains(c.Text, "--from 50 --to 50")
		if (c.Packets == 0 && !never) || (never && c.Packets != 0) || c.Packets == uint64(valid) {
			t.Errorf("line %d matched %d of %d frames: %s", c.Line, c.Packets, valid, c.Text)
		}
	}
}

// TestStringDiffIPv6 runs string matches in an IPv6 ruleset (the window
// ends at payload length + 40).
func TestStringDiffIPv6(t *testing.T) {
	testnet.RequireForTest(t)
	rs6 := parse6(t, strRules(strCases))
	rng := rand.New(rand.NewSource(3))
	var frames [][]byte
	for _, fr := range append(strEdgeFrames(strCases), strRandomFrames(strCases, 1500, 2)...) {
		// Re-wrap the IPv4 payload (from L3 offset 20) after a 40-byte
		// IPv6 header, sometimes with trailing bytes past the payload
		// length, sometimes truncated.
		if len(fr) < 34 {
			continue
		}
		ip := fr[14:]
		tl := int(ip[2])<<8 | int(ip[3])
		if tl > len(ip) {
			tl = len(ip)
		}
		if tl < 20 {
			continue
		}
		var opts []packet.BuildOpt
		if rng.Intn(8) == 0 {
			opts = append(opts, packet.WithTrailer([]byte("abcGET /X")))
		}
		f6 := packet.BuildIPv6(strSrc6, strDst6, 253, ip[20:tl], opts...)
		if rng.Intn(20) == 0 {
			f6 = f6[:len(f6)-1]
		}
		frames = append(frames, f6)
	}
	spec, _ := diffBoth(t, nil, rs6, CompileOptions{InIface: "eth0"}, frames, wholeSites...)
	t.Logf("%d frames, %d instructions", len(frames), spec.Instructions())
}

// TestStringQuirkFallback: ts_bm with --icase and a pattern whose skip
// table can jump over a hit stays a fallback site, resumed in userspace
// (where the kernel's algorithm runs); the same pattern with kmp, or
// without --icase, runs in XDP.
func TestStringQuirkFallback(t *testing.T) {
	testnet.RequireForTest(t)
	rs := parse4(t, `*raw
:PREROUTING ACCEPT [0:0]
-A PREROUTING -m string --hex-string "|df|a" --algo kmp --icase
-A PREROUTING -m string --hex-string "|df|a" --algo bm
-A PREROUTING -m string --hex-string "|e9|a" --algo bm --icase
-A PREROUTING -m string --hex-string "|df|a" --algo bm --icase -j DROP
COMMIT
`)
	frames := [][]byte{
		strFrame(60, 'x', map[int][]byte{30: {0xdf, 0xdf, 'a'}}), // the kernel's BM misses this one
		strFrame(60, 'x', map[int][]byte{30: {0xdf, 'a'}}),
		strFrame(60, 'x', map[int][]byte{30: {0xdf, 'A'}}),
		strFrame(60, 'x', map[int][]byte{30: {0xff, 'a'}}),
		strFrame(60, 'x', map[int][]byte{30: {0xc9, 'a'}}),
		strFrame(60, 'x', map[int][]byte{30: {0xe9, 'A'}}),
		strFrame(60, 'x', nil),
	}
	frames = append(frames, strRandomFrames(strCases, 500, 5)...)
	spec, bySite := diffBoth(t, rs, nil, CompileOptions{InIface: "eth0"}, frames, StringQuirkReason)
	modes := []string{}
	for _, ri := range spec.Rules {
		modes = append(modes, ri.Mode)
	}
	if want := []string{"xdp", "xdp", "xdp", "fallback"}; fmt.Sprint(modes) != fmt.Sprint(want) {
		t.Fatalf("modes %v, want %v", modes, want)
	}
	// 0xFF folds to 0xDF: quirky too.
	q := parse4(t, "*raw\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -m string --hex-string \"|ff|a\" --algo bm --icase\nCOMMIT\n")
	if spec, err := Compile(q, nil, CompileOptions{}); err != nil {
		t.Fatal(err)
	} else if ri := spec.Rules[0]; ri.Mode != "fallback" || ri.Reason != StringQuirkReason {
		t.Fatalf("|ff|a bm --icase: %s (%s)", ri.Mode, ri.Reason)
	}
	if bySite[StringQuirkReason] == 0 {
		t.Fatal("no frame fell back at the quirky rule")
	}
}

// TestStringCompile checks the generated code carries the rule text, that
// the example's string rules run in XDP and what they cost.
func TestStringCompile(t *testing.T) {
	reg := exampleSets(t)
	rs, err := rules.Parse(bytes.NewReader(examples.Rules4), rules.Options{Family: packet.FamilyIPv4, File: "example", Sets: reg})
	if err != nil {
		t.Fatal(err)
	}
	spec, err := Compile(rs, nil, CompileOptions{InIface: "eth0"})
	if err != nil {
		t.Fatal(err)
	}
	for _, ri := range spec.Rules {
		if strings.Contains(ri.Rule.Text, "-m string") && ri.Mode != "xdp" {
			t.Errorf("line %d: %s (%s)", ri.Rule.Line, ri.Mode, ri.Reason)
		}
	}
	for _, fs := range spec.Fallback {
		if fs.Rule != nil && strings.Contains(fs.Rule.Text, "-m string") {
			t.Errorf("fallback site at line %d: %s", fs.Rule.Line, fs.Reason)
		}
	}
	var main, cb int
	callbacks := 0
	inCB := false
	for _, ins := range spec.Program.Instructions {
		if strings.HasPrefix(ins.Symbol(), "str_cb_") {
			inCB = true
			callbacks++
		}
		if src := ins.Source(); src != nil && strings.Contains(src.String(), "-m string --string \"GET /xmlrpc.php\"") {
			main++
		}
		if src := ins.Source(); inCB && src != nil && strings.Contains(src.String(), "string search callback for --string \"GET /xmlrpc.php\"") {
			cb++
		}
	}
	if callbacks != 2 || main != 2 || cb != 1 {
		t.Fatalf("%d callbacks, rule comments %d in the program and %d in callbacks", callbacks, main, cb)
	}
	// Instruction counts: the program with and without the string rules.
	text := string(examples.Rules4)
	var keep []string
	for _, l := range strings.Split(text, "\n") {
		if !strings.Contains(l, "-m string") {
			keep = append(keep, l)
		}
	}
	rs2, err := rules.Parse(strings.NewReader(strings.Join(keep, "\n")), rules.Options{Family: packet.FamilyIPv4, File: "example", Sets: reg})
	if err != nil {
		t.Fatal(err)
	}
	spec2, err := Compile(rs2, nil, CompileOptions{InIface: "eth0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("example: %d instructions, %d without its two string rules", spec.Instructions(), spec2.Instructions())
	// The largest configuration: a 128-byte pattern with --icase.
	big := parse4(t, "*raw\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -m string --string \""+strings.Repeat("Ab", 64)+"\" --algo kmp --icase\nCOMMIT\n")
	if spec3, err := Compile(big, nil, CompileOptions{}); err != nil {
		t.Fatal(err)
	} else {
		t.Logf("a 128-byte --icase pattern: %d instructions", spec3.Instructions())
		var cbLen int
		for i, ins := range spec3.Program.Instructions {
			if strings.HasPrefix(ins.Symbol(), "str_cb_") {
				cbLen = len(spec3.Program.Instructions) - i
			}
		}
		t.Logf("its callback: %d instructions", cbLen)
	}
}

// exampleWithStrings is the built-in example without the rules that fall
// back or keep state (bpf, limit, hashlimit, recent), its string rules
// kept.
func exampleWithStrings(t testing.TB) *rules.Ruleset {
	t.Helper()
	var keep []string
	for _, l := range strings.Split(string(examples.Rules4), "\n") {
		if strings.Contains(l, "-m bpf") || strings.Contains(l, "limit") || strings.Contains(l, "-m recent") {
			continue
		}
		keep = append(keep, l)
	}
	rs, err := rules.Parse(strings.NewReader(strings.Join(keep, "\n")), rules.Options{Family: packet.FamilyIPv4, File: t.Name(), Sets: exampleSets(t)})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// exampleStringFrames are DNS queries (ANY and A) and HTTP requests (to
// /xmlrpc.php and elsewhere) at the edges of the example's windows.
func exampleStringFrames() [][]byte {
	src := netip.MustParseAddr("203.0.113.7")
	dst := netip.MustParseAddr("192.168.1.1")
	var frames [][]byte
	dnsQuery := func(qtype byte, pad int) []byte {
		// header, padding labels, root, qtype, class IN
		q := []byte{0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0}
		for i := 0; i < pad; i++ {
			q = append(q, 1, 'a')
		}
		return append(q, 0, 0, qtype, 0, 1)
	}
	for pad := 0; pad < 140; pad++ {
		for _, qt := range []byte{1, 0xff} {
			frames = append(frames, packet.BuildIPv4(src, dst, packet.ProtoUDP, packet.BuildUDP(4000, 53, dnsQuery(qt, pad))))
		}
	}
	for pad := 0; pad < 180; pad += 3 {
		for _, path := range []string{"GET /xmlrpc.php", "GET /index.php", "get /xmlrpc.php", "POST /xmlrpc.php"} {
			pay := append(bytes.Repeat([]byte{' '}, pad), path+" HTTP/1.1\r\nHost: x\r\n\r\n"...)
			frames = append(frames, packet.BuildIPv4(src, dst, packet.ProtoTCP, packet.BuildTCP(4000, 80, packet.TCPAck|packet.TCPPsh, pay)))
		}
	}
	return frames
}

// TestStringDiffExample: the example with its string rules, on the
// example's capture and on DNS and HTTP frames around the windows.
func TestStringDiffExample(t *testing.T) {
	testnet.RequireForTest(t)
	rs := exampleWithStrings(t)
	frames := append(exampleFrames(t), exampleStringFrames()...)
	spec := diff(t, rs, CompileOptions{InIface: "eth0"}, frames, inputSites...)
	t.Logf("example with string rules: %d instructions", spec.Instructions())
	// With the capture block the program's frame is the whole stack:
	// the callbacks must not add to it.
	spec, err := Compile(rs, nil, CompileOptions{InIface: "eth0", Capture: true, XSKQueues: 2})
	if err != nil {
		t.Fatal(err)
	}
	f, err := spec.Load()
	if err != nil {
		t.Fatalf("with capture: %v", err)
	}
	f.Close()
}

// TestStringWorstCase logs the kernel's time per packet for frames whose
// whole window the search scans: a miss over a 1400-byte datagram, the
// same with a text made of near-misses (every candidate compares all but
// the last pattern byte), and a hit at the last candidate.
func TestStringWorstCase(t *testing.T) {
	testnet.RequireForTest(t)
	pat := "aaaaaaaaaaaaaaab"
	rs := parse4(t, "*raw\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -m string --string \"GET /xmlrpc.php\" --algo kmp -j DROP\n"+
		"-A PREROUTING -m string --string \""+pat+"\" --algo bm --from 20 -j DROP\nCOMMIT\n")
	spec, err := Compile(rs, nil, CompileOptions{InIface: "eth0"})
	if err != nil {
		t.Fatal(err)
	}
	f, err := spec.Load()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	base := parse4(t, "*raw\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p tcp -j DROP\nCOMMIT\n")
	bspec, err := Compile(base, nil, CompileOptions{InIface: "eth0"})
	if err != nil {
		t.Fatal(err)
	}
	bf, err := bspec.Load()
	if err != nil {
		t.Fatal(err)
	}
	defer bf.Close()
	const l3 = 1400
	for _, tc := range []struct {
		name string
		fr   []byte
		want uint32
	}{
		{"1400-byte miss, 'x' filler", strFrame(l3, 'x', nil), xdpPass},
		{"1400-byte miss, near misses", strFrame(l3, 'a', nil), xdpPass},
		{"1400-byte hit at the last candidate", strFrame(l3, 'a', map[int][]byte{l3 - len(pat): []byte(pat)}), xdpDrop},
		{"100-byte miss", strFrame(100, 'x', nil), xdpPass},
	} {
		ret, d, err := f.Program.Benchmark(tc.fr, 20000, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, bd, err := bf.Program.Benchmark(tc.fr, 20000, nil)
		if err != nil {
			t.Fatal(err)
		}
		if ret != tc.want {
			t.Errorf("%s: returned %d, want %d", tc.name, ret, tc.want)
		}
		t.Logf("%s: %v per packet (two string rules, whole windows); %v without them", tc.name, d, bd)
	}
}

// BenchmarkStringExample runs the example with its string rules (and
// without them, for comparison) over DNS queries and HTTP requests that
// reach the string rules, with BPF_PROG_TEST_RUN's repeat.
func BenchmarkStringExample(b *testing.B) {
	testnet.RequireForTest(b)
	frames := exampleStringFrames()
	sample := [][]byte{frames[2*60+1], frames[2*130], frames[len(frames)-4], frames[len(frames)-3]}
	for _, tc := range []struct {
		name string
		rs   *rules.Ruleset
	}{{"with-string", exampleWithStrings(b)}, {"subset", exampleSubset(b)}} {
		b.Run(tc.name, func(b *testing.B) {
			f := loadForTest(b, tc.rs, nil, CompileOptions{InIface: "eth0"})
			benchRunForTest(b, f.Program, sample, 10000)
		})
	}
}
