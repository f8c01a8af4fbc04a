package difftest

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/sluice-project/sluice/engine/cbpf"
	"github.com/sluice-project/sluice/engine/jiffies"
	"github.com/sluice-project/sluice/internal/testnet"
)

var (
	flagMatchSeeds  = flag.Int("match.seeds", 40, "number of seeds TestMatchDifferential runs (seeds 1..N)")
	flagMatchSeed   = flag.Int64("match.seed", 0, "run TestMatchDifferential for this seed only")
	flagMatchFrames = flag.Int("match.frames", 300, "frames per seed of TestMatchDifferential")
	flagBPFPrograms = flag.Int("bpf.programs", 400, "random programs TestBPFCheckerAgreesWithKernel loads")
)

// TestMatchGeneratedParse checks, without root, that sluice accepts every
// byte-match ruleset the generator writes (all of them load in the
// kernel) and that the generator is deterministic.
func TestMatchGeneratedParse(t *testing.T) {
	for seed := int64(1); seed <= 300; seed++ {
		frames := GenerateMatchFrames(seed, 100, true, true)
		c := GenerateMatchCase(seed, frames)
		if again := GenerateMatchCase(seed, GenerateMatchFrames(seed, 100, true, true)); string(again.Rules4) != string(c.Rules4) || string(again.Rules6) != string(c.Rules6) {
			t.Fatalf("seed %d: rules differ between two runs", seed)
		}
		if _, err := Parse(c, jiffies.DefaultHZ, FrameStart); err != nil {
			t.Errorf("seed %d: %v\n%s%s", seed, err, c.Rules4, c.Rules6)
		}
	}
}

// TestMatchDifferential runs seeded rulesets of random u32, bpf and string
// matches over frames with small-alphabet payloads through the kernel and
// the engine, and requires equal counters on every rule.
func TestMatchDifferential(t *testing.T) {
	testnet.RequireForTest(t)
	var seeds []int64
	if *flagMatchSeed != 0 {
		seeds = []int64{*flagMatchSeed}
	} else {
		for s := int64(1); s <= int64(*flagMatchSeeds); s++ {
			seeds = append(seeds, s)
		}
	}
	h := hz(t)
	start := time.Now()
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
			v4, v6 := seed%3 != 1, seed%3 != 0
			frames := GenerateMatchFrames(seed, *flagMatchFrames, v4, v6)
			c := GenerateMatchCase(seed, frames)
			d, err := compareKernel(c, frames, h)
			if err != nil {
				t.Fatalf("seed %d: %v\nrules.v4:\n%s\nrules.v6:\n%s", seed, err, c.Rules4, c.Rules6)
			}
			if msg := mismatch(t, d, c, frames, h, fmt.Sprintf("match%d", seed), fmt.Sprintf("-run TestMatchDifferential -match.seed %d", seed)); msg != "" {
				t.Errorf("%s\nrules.v4:\n%s\nrules.v6:\n%s", msg, c.Rules4, c.Rules6)
			}
		})
	}
	t.Logf("%d seeds x %d frames in %v", len(seeds), *flagMatchFrames, time.Since(start).Round(time.Millisecond))
}

// TestByteMatchArgsAgreeWithIptables: u32 expressions and string patterns
// from the byte-match generator, each with a few random edits (a character
// dropped, doubled or inserted from the grammar's alphabet, a number made
// huge, a list made too long), loaded alone by iptables-legacy-restore
// (libxt_u32 and libxt_string parse them, xt_u32 and xt_string check
// them) and parsed by sluice: both must accept or refuse alike.
func TestByteMatchArgsAgreeWithIptables(t *testing.T) {
	ns := nsForTest(t, "bytechk")
	ctx := context.Background()
	r := rand.New(rand.NewPCG(31, 32))
	g := &matchGen{r: r}
	var both, neither, bad int
	for i := 0; i < *flagBPFPrograms; i++ {
		var m string
		if i%2 == 0 {
			m = "-m u32 --u32 \"" + mutateText(r, g.u32(), "0123456789xX&<>@=:, \t-+&&") + "\""
		} else {
			s := g.str("")
			// Mutate the pattern, or the whole argument list.
			m = mutateText(r, s, "|0123456789abcdefABCDEFgx \t\\\"-")
		}
		text := fmt.Sprintf("*raw\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING %s\nCOMMIT\n", m)
		kerr := restore(ctx, ns, []byte(text), "iptables-legacy-restore")
		_, serr := Parse(Case{Rules4: []byte(text)}, jiffies.DefaultHZ, FrameStart)
		switch {
		case kerr == nil && serr == nil:
			both++
		case kerr != nil && serr != nil:
			neither++
		default:
			if bad++; bad <= 20 {
				t.Errorf("%s\niptables: %v\nsluice: %v", m, errLine(kerr), serr)
			}
		}
	}
	t.Logf("%d arguments: %d accepted by both, %d refused by both", *flagBPFPrograms, both, neither)
	if bad > 0 {
		t.Errorf("%d of %d: sluice and iptables disagree", bad, *flagBPFPrograms)
	}
}

// mutateText applies one to three random edits to s: a character
// deleted, doubled, or inserted from alphabet; a number replaced by a
// huge or negative one; a test or value list repeated past u32's limits.
func mutateText(r *rand.Rand, s, alphabet string) string {
	for k := 1 + r.IntN(3); k > 0 && len(s) > 0; k-- {
		i := r.IntN(len(s))
		switch r.IntN(7) {
		case 0:
			s = s[:i] + s[i+1:]
		case 1:
			s = s[:i] + s[i:i+1] + s[i:]
		case 2, 3:
			c := alphabet[r.IntN(len(alphabet))]
			s = s[:i] + string(c) + s[i:]
		case 4:
			j := i
			for j < len(s) && s[j] >= '0' && s[j] <= '9' {
				j++
			}
			big := []string{"4294967296", "0x100000000", "99999999999999999999", "-1", "0", "4294967295", "0xffffffff", "65536", "65535"}[r.IntN(9)]
			s = s[:i] + big + s[j:]
		case 5:
			// Eleven tests or values: one more than XT_U32_MAXSIZE+1 allows.
			if strings.Contains(s, "=") && !strings.Contains(s, "--") {
				parts := strings.SplitN(s, "=", 2)
				n := 9 + r.IntN(4)
				if r.IntN(2) == 0 {
					s = strings.Repeat(parts[0]+"="+parts[1]+"&&", n) + s
				} else {
					s = parts[0] + "=" + strings.Repeat(parts[1]+",", n) + parts[1]
				}
			}
		default:
			// Many location steps.
			if strings.Contains(s, "=") && !strings.Contains(s, "--") {
				parts := strings.SplitN(s, "=", 2)
				s = parts[0] + strings.Repeat("&0xff", 8+r.IntN(4)) + "=" + parts[1]
			}
		}
	}
	return s
}

// TestBPFCheckerAgreesWithKernel loads random classic BPF programs, most
// with one rule of the kernel's checker broken on purpose, through
// iptables-legacy-restore (xt_bpf's checkentry runs bpf_check_classic) and
// through sluice's parser: both must accept or refuse alike. The one
// expected difference is a program the kernel accepts that reads skb
// metadata or link-layer bytes (ancillary loads, SKF_LL_OFF), which sluice
// refuses with an UnsupportedError rather than guess.
func TestBPFCheckerAgreesWithKernel(t *testing.T) {
	ns := nsForTest(t, "bpfchk")
	ctx := context.Background()
	r := rand.New(rand.NewPCG(21, 22))
	var accepted, refused, unsupported, bad int
	for i := 0; i < *flagBPFPrograms; i++ {
		prog := RandomBPF(r, i%4 == 0)
		if i%50 == 49 {
			// Too long for XT_BPF_MAX_NUM_INSTR.
			for len(prog) <= cbpf.MaxInstructions {
				prog = append([]cbpf.Instruction{{Op: 0x00, K: 1}}, prog...)
			}
		}
		text := fmt.Sprintf("*raw\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -m bpf --bytecode \"%s\"\nCOMMIT\n", cbpf.Format(prog))
		kerr := restore(ctx, ns, []byte(text), "iptables-legacy-restore")
		_, serr := Parse(Case{Rules4: []byte(text)}, jiffies.DefaultHZ, FrameStart)
		var ue *cbpf.UnsupportedError
		switch {
		case kerr == nil && serr == nil:
			accepted++
		case kerr != nil && serr != nil:
			refused++
		case kerr == nil && errors.As(serr, &ue):
			unsupported++
		default:
			if bad++; bad <= 20 {
				t.Errorf("program %d %s:\niptables: %v\nsluice: %v", i, cbpf.Format(prog), errLine(kerr), serr)
			}
		}
	}
	t.Logf("%d programs: %d accepted by both, %d refused by both, %d accepted by the kernel and refused by sluice as unsupported", *flagBPFPrograms, accepted, refused, unsupported)
	if bad > 0 {
		t.Errorf("%d of %d programs: sluice and the kernel disagree", bad, *flagBPFPrograms)
	}
}

// restore loads text with tool (iptables-legacy-restore or
// ip6tables-legacy-restore) in ns. A word starting "-h" (a mangled
// "--hex-string", say) makes it print its help and exit 0 having loaded
// nothing: that is a refusal.
func restore(ctx context.Context, ns *testnet.NS, text []byte, tool string) error {
	out, err := ns.RunInput(ctx, text, tool, "--wait=10")
	if err == nil && strings.Contains(string(out), "Usage:") {
		return fmt.Errorf("%s printed its help and loaded nothing", tool)
	}
	return err
}

// errLine shortens a tool's error for a test log.
func errLine(err error) string {
	if err == nil {
		return "accepted"
	}
	s := err.Error()
	if i := strings.Index(s, "restore"); i >= 0 && len(s) > 300 {
		s = s[:300]
	}
	return s
}

var flagSetSeeds = flag.Int("sets.seeds", 30, "number of seeds TestSetsDifferential runs (seeds 1..N)")

// TestSetsDifferential runs seeded random sets (GenerateSetsCase) and
// frames addressed inside them through the kernel and the engine, and
// requires equal counters on every rule.
func TestSetsDifferential(t *testing.T) {
	testnet.RequireForTest(t)
	h := hz(t)
	for seed := int64(1); seed <= int64(*flagSetSeeds); seed++ {
		if *flagMatchSeed != 0 && seed != *flagMatchSeed {
			continue
		}
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
			c, frames := GenerateSetsCase(seed, 300)
			if _, err := Parse(c, jiffies.DefaultHZ, FrameStart); err != nil {
				t.Fatalf("seed %d: sluice refuses the generated case: %v\n%s", seed, err, c.Sets)
			}
			d, err := compareKernel(c, frames, h)
			if err != nil {
				t.Fatalf("seed %d: %v\nsets:\n%s", seed, err, c.Sets)
			}
			if msg := mismatch(t, d, c, frames, h, fmt.Sprintf("sets%d", seed), fmt.Sprintf("-run TestSetsDifferential -match.seed %d", seed)); msg != "" {
				t.Errorf("%s\nsets:\n%s\nrules.v4:\n%s\nrules.v6:\n%s", msg, c.Sets, c.Rules4, c.Rules6)
			}
		})
	}
}

// nsForTest is a private network namespace for the test (root required:
// RequireForTest), removed when it ends.
func nsForTest(t *testing.T, name string) *testnet.NS {
	testnet.RequireForTest(t)
	ns, err := testnet.NewNS(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	return ns
}
