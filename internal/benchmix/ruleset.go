package benchmix

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluice-project/sluice/engine/ipset"
	"github.com/sluice-project/sluice/packet"
	"github.com/sluice-project/sluice/rules"
)

// Ruleset parses an IPv4 rules file and its sets file at load time now,
// with HZ 250, as the benchmarks compile them.
func Ruleset(tb testing.TB, rulesName string, rulesText []byte, setsName string, setsText []byte, now int64) (*rules.Ruleset, *ipset.Registry) {
	tb.Helper()
	sets, err := ipset.Parse(setsName, bytes.NewReader(setsText), now)
	if err != nil {
		tb.Fatal(err)
	}
	rs, err := rules.Parse(bytes.NewReader(rulesText), rules.Options{Family: packet.FamilyIPv4, File: rulesName, Sets: sets, HZ: 250})
	if err != nil {
		tb.Fatal(err)
	}
	return rs, sets
}

// ReferenceFiles reads the reference ruleset and its sets
// (reference.rules and reference.ipset) from dir: the engine's testdata
// directory, as the calling test's package sees it.
func ReferenceFiles(tb testing.TB, dir string) (rulesText, setsText []byte) {
	tb.Helper()
	rulesText, err := os.ReadFile(filepath.Join(dir, "reference.rules"))
	if err != nil {
		tb.Fatal(err)
	}
	setsText, err = os.ReadFile(filepath.Join(dir, "reference.ipset"))
	if err != nil {
		tb.Fatal(err)
	}
	return rulesText, setsText
}
