//go:build linux

package xdp

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"

	"github.com/sluice-project/sluice/rules"
)

// Filter is a loaded compiled program with its counters.
type Filter struct {
	Program  *ebpf.Program
	Counters *ebpf.Map
	// XSKs is the XSKMAP (CompileOptions.XSKQueues): put each queue's
	// AF_XDP socket at its queue index.
	XSKs *ebpf.Map
	spec *Spec
	sets []*ebpf.Map // every map the filter owns, for Close
	// setMaps holds, per Spec.Sets entry, its map and its leaf map (nil
	// but for hash:net), for UpdateSets.
	setMaps [][2]*ebpf.Map
	rl      *rateMaps // ratelimit_linux.go
}

// Load creates the counter map and loads the program. When the verifier
// refuses the program, the error names the rule whose code it stopped in
// and wraps the *ebpf.VerifierError, whose log it quotes.
func (s *Spec) Load() (*Filter, error) { return s.load(nil, nil) }

// load is Load with maps replacing the program's own (LoadShared), and
// the rate-limit state of prev carried over (LoadCarrying).
func (s *Spec) load(repl map[string]*ebpf.Map, prev *Filter) (*Filter, error) {
	cs := &ebpf.CollectionSpec{
		Maps:     map[string]*ebpf.MapSpec{"counters": s.Counters.Copy()},
		Programs: map[string]*ebpf.ProgramSpec{"filter": s.Program.Copy()},
	}
	for _, sm := range s.Sets {
		cs.Maps[sm.Ref] = sm.Map.Copy()
		if sm.Leaf != nil {
			cs.Maps[sm.LeafRef] = sm.Leaf.Copy()
		}
	}
	if s.XSKs != nil {
		cs.Maps["xsks"] = s.XSKs.Copy()
	}
	s.captureMaps(cs)
	s.rateLimitMaps(cs)
	coll, err := ebpf.NewCollectionWithOptions(cs, ebpf.CollectionOptions{MapReplacements: repl})
	if err != nil {
		return nil, s.explain(err)
	}
	f := &Filter{Program: coll.Programs["filter"], Counters: coll.Maps["counters"], spec: s}
	for _, sm := range s.Sets {
		f.sets = append(f.sets, coll.Maps[sm.Ref])
		f.setMaps = append(f.setMaps, [2]*ebpf.Map{coll.Maps[sm.Ref], coll.Maps[sm.LeafRef]})
		if sm.Leaf != nil {
			f.sets = append(f.sets, coll.Maps[sm.LeafRef])
		}
	}
	if s.XSKs != nil {
		f.XSKs = coll.Maps["xsks"]
		f.sets = append(f.sets, f.XSKs)
	}
	f.sets = append(f.sets, s.capturedMaps(coll)...)
	if err := f.rateLimitLoaded(coll, prev); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

var insnLine = regexp.MustCompile(`(?m)^(\d+): \(`)

// verifierAt returns the instruction the verifier's log ends in, or -1.
func verifierAt(ve *ebpf.VerifierError) int {
	for i := len(ve.Log) - 1; i >= 0; i-- {
		if m := insnLine.FindStringSubmatch(ve.Log[i]); m != nil {
			at, _ := strconv.Atoi(m[1])
			return at
		}
	}
	return -1
}

// maxDemotions bounds LoadDemoting's compilations.
const maxDemotions = 16

// LoadDemoting compiles a program with a userspace tier to resume in
// (compile is given the rules to leave there so far) and loads it with
// load. When the verifier gives up because the program is too large for
// it to verify (it explores at most a million instructions, and rules
// whose checks branch much, several string searches say, multiply its
// paths), the rule it gave up in becomes a fallback site and the program
// is compiled again, up to maxDemotions times; the rules left in
// userspace come back with the reason. Any other error is returned as is.
func LoadDemoting(compile func(userspace map[*rules.Rule]string) (*Spec, error), load func(*Spec) (*Filter, error)) (*Spec, *Filter, map[*rules.Rule]string, error) {
	userspace := map[*rules.Rule]string{}
	for n := 0; ; n++ {
		spec, err := compile(userspace)
		if err != nil {
			return nil, nil, userspace, err
		}
		f, err := load(spec)
		if err == nil {
			return spec, f, userspace, nil
		}
		var ve *ebpf.VerifierError
		if n == maxDemotions || spec.XSKs == nil || !errors.As(err, &ve) || !strings.Contains(strings.Join(ve.Log, "\n"), "program is too large") {
			return nil, nil, userspace, err
		}
		ri := spec.RuleAt(verifierAt(ve))
		if ri == nil || userspace[ri.Rule] != "" {
			return nil, nil, userspace, err
		}
		userspace[ri.Rule] = "the verifier gave up on the program in this rule (too large for it to verify), so it runs in userspace"
	}
}

// explain names the rule the verifier was in when it gave up.
func (s *Spec) explain(err error) error {
	var ve *ebpf.VerifierError
	if !errors.As(err, &ve) {
		return fmt.Errorf("xdp: loading the program: %w", err)
	}
	where := "outside any rule (packet parsing or exits)"
	at := verifierAt(ve)
	if at >= 0 {
		if ri := s.RuleAt(at); ri != nil {
			where = fmt.Sprintf("in %s %s %s line %d: %s", ri.Family, ri.Table, ri.Chain, ri.Rule.Line, ri.Rule.Text)
		}
	}
	tail := ve.Log
	if len(tail) > 12 {
		tail = tail[len(tail)-12:]
	}
	return fmt.Errorf("xdp: the verifier refused the program at instruction %d, %s (%d instructions); log ends:\n\t%s\n%w",
		at, where, s.Instructions(), strings.Join(tail, "\n\t"), err)
}

// ReadCounters returns the counters (NumCounters of them, every element
// of the counter map in order) summed over CPUs.
func (f *Filter) ReadCounters() ([]uint64, error) {
	per := int(f.spec.Counters.ValueSize / 8)
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, err
	}
	vals := make([][]uint64, ncpu)
	for i := range vals {
		vals[i] = make([]uint64, per)
	}
	sum := make([]uint64, f.spec.NumCounters())
	for e := range int(f.spec.Counters.MaxEntries) {
		if err := f.Counters.Lookup(uint32(e), vals); err != nil {
			return nil, err
		}
		for _, c := range vals {
			for i, v := range c {
				sum[e*per+i] += v
			}
		}
	}
	return sum, nil
}

// Close releases the program and the map.
func (f *Filter) Close() error {
	errs := []error{f.Program.Close(), f.Counters.Close()}
	for _, m := range f.sets {
		errs = append(errs, m.Close())
	}
	return errors.Join(errs...)
}
