//go:build linux

package xdp

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/sluice-project/sluice/engine"
	"github.com/sluice-project/sluice/engine/jiffies"
	"github.com/sluice-project/sluice/internal/difftest"
	"github.com/sluice-project/sluice/internal/testnet"
	"github.com/sluice-project/sluice/oracle"
)

var (
	flagGenSeed       = flag.Int64("gen.seed", 0, "run TestCombinedGenerated for this seed only")
	flagGenSeeds      = flag.Int("gen.seeds", 60, "number of seeds TestCombinedGenerated runs (seeds 1..N)")
	flagGenMatchSeeds = flag.Int("gen.matchseeds", 30, "number of seeds TestCombinedGeneratedMatches runs (seeds 1..N)")
	flagGenSetSeeds   = flag.Int("gen.setseeds", 30, "number of seeds TestCombinedGeneratedSets runs (seeds 1..N)")
)

// TestCombinedGenerated runs the kernel differential's random rulesets,
// sets and frames (internal/difftest: every match, target and chain shape
// the generator knows, both families, malformed and truncated frames) in
// the combined tier, against the engine alone, frame by frame. The
// engine's side of those cases is checked against the kernel by
// TestDifferential, so together they hold the program to the kernel too.
func TestCombinedGenerated(t *testing.T) {
	combinedGeneratedForTest(t, *flagGenSeeds, genRules)
}

// TestCombinedGeneratedMatches does the same with the byte-match
// differential's cases (difftest.GenerateMatchCase): random u32
// expressions, classic BPF programs and string searches, whose XDP
// translations (u32 tests, TranslateCBPF, the string scanner) must give
// the engine's answer on every frame.
func TestCombinedGeneratedMatches(t *testing.T) {
	combinedGeneratedForTest(t, *flagGenMatchSeeds, genMatches)
}

// TestCombinedGeneratedSets does the same with the set differential's
// cases (difftest.GenerateSetsCase): random hash:net, hash:ip netmask,
// hash:net,port, hash:ip,port,ip, bitmap:ip and list:set contents, which
// the XDP tier holds in its own maps and tables.
func TestCombinedGeneratedSets(t *testing.T) {
	combinedGeneratedForTest(t, *flagGenSetSeeds, genSets)
}

// The generators of internal/difftest the combined tier runs.
const (
	genRules   = iota // GenerateCase
	genMatches        // GenerateMatchCase
	genSets           // GenerateSetsCase
)

func combinedGeneratedForTest(t *testing.T, n int, kind int) {
	testnet.RequireForTest(t)
	seeds := []int64{*flagGenSeed}
	if *flagGenSeed == 0 {
		seeds = seeds[:0]
		for s := int64(1); s <= int64(n); s++ {
			seeds = append(seeds, s)
		}
	}
	const hz = jiffies.DefaultHZ
	cfg := engine.Config{HZ: hz, InIface: testnet.BIfName,
		LocalAddrs: []netip.Addr{testnet.BIPv4.Addr(), testnet.BIPv6.Addr()}, LocalNets: []netip.Prefix{testnet.BIPv4}}
	ran, tooLarge := 0, 0
	for _, seed := range seeds {
		ps, frames, times := generatedCaseForTest(t, seed, kind)
		load := times[0]
		if _, err := Compile(ps.R4, ps.R6, CompileOptions{InIface: cfg.InIface, LocalAddrs: cfg.LocalAddrs,
			RateLimits: RateLimitsAuto, XSKQueues: 1}); errors.Is(err, ErrTooLarge) {
			tooLarge++
			continue
		}
		env := combinedEnv{rs4: ps.R4, rs6: ps.R6, cfg: cfg,
			newState: func() *engine.State { return engine.NewState(ps.Sets, hz) }}
		ran++
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
			diffCombinedWith(t, env, frames, times, load)
		})
	}
	t.Logf("%d seeds in the combined tier, %d too large for one program", ran, tooLarge)
	if ran == 0 {
		t.Fatal("no generated case compiled")
	}
}

// TestCombinedVerifierGivesUp: generated case 861 holds a rule (two string
// searches after a negated address and protocol) on which the verifier
// gives up, the program being too large for it to verify. The combined
// tier leaves that rule to userspace (LoadDemoting), as the daemon does,
// and every verdict and counter is still the engine's.
func TestCombinedVerifierGivesUp(t *testing.T) {
	testnet.RequireForTest(t)
	const hz = jiffies.DefaultHZ
	ps, frames, times := generatedCaseForTest(t, 861, genRules)
	cfg := engine.Config{HZ: hz, InIface: testnet.BIfName, LocalAddrs: []netip.Addr{testnet.BIPv4.Addr(), testnet.BIPv6.Addr()}, LocalNets: []netip.Prefix{testnet.BIPv4}}
	spec, _ := diffCombinedWith(t, combinedEnv{rs4: ps.R4, rs6: ps.R6, cfg: cfg,
		newState: func() *engine.State { return engine.NewState(ps.Sets, hz) }}, frames, times, times[0])
	demoted := 0
	for _, fs := range spec.Fallback {
		if strings.Contains(fs.Reason, "verifier gave up") {
			demoted++
		}
	}
	if demoted == 0 {
		t.Fatal("no rule was left to userspace: the case no longer makes the verifier give up")
	}
}

// TestCBPFVerifiesWithoutDemotion: byte-match case 20 (twenty-odd classic
// BPF, u32 and string rules in a row) made the verifier give up until
// the translated classic programs stopped refining the parsed length's
// stack slot (cbGen.read): each program's bounds checks split the paths
// leaving it by what they had learnt of the length, which multiplied the
// verifier's work rule after rule. It now loads whole, no rule left to
// userspace.
func TestCBPFVerifiesWithoutDemotion(t *testing.T) {
	testnet.RequireForTest(t)
	ps, _, _ := generatedCaseForTest(t, 20, genMatches)
	spec, err := Compile(ps.R4, ps.R6, CompileOptions{InIface: testnet.BIfName, XSKQueues: 1})
	if err != nil {
		t.Fatal(err)
	}
	f, err := spec.Load()
	if err != nil {
		t.Fatalf("the verifier refused the program: %v", err)
	}
	f.Close()
}

// generatedCaseForTest is a kernel differential's case seed (kind says
// which generator): its rulesets and sets parsed at its first frame's
// time, and its timed frames.
func generatedCaseForTest(t *testing.T, seed int64, kind int) (*difftest.Parsed, [][]byte, []int64) {
	t.Helper()
	var c difftest.Case
	var gen []oracle.Frame
	switch kind {
	case genMatches:
		gen = difftest.GenerateMatchFrames(seed, 400, seed%3 != 1, seed%3 != 0)
		c = difftest.GenerateMatchCase(seed, gen)
	case genSets:
		c, gen = difftest.GenerateSetsCase(seed, 400)
	default:
		c = difftest.GenerateCase(seed)
		gen = difftest.GenerateFrames(seed, 400, len(c.Rules4) > 0, len(c.Rules6) > 0)
	}
	frames := make([][]byte, len(gen))
	times := make([]int64, len(gen))
	for i, f := range gen {
		frames[i], times[i] = f.Data, f.Time
	}
	ps, err := difftest.Parse(c, jiffies.DefaultHZ, times[0])
	if err != nil {
		t.Fatalf("seed %d: %v", seed, err)
	}
	return ps, frames, times
}
