package report

import "fmt"

// Row is one counter compared: a rule, or a built-in chain's policy
// (Index -1).
type Row struct {
	Family, Table, Chain string
	Index                int // rule position in the chain, -1 for the policy
	Line                 int
	Text                 string
	KernelPackets        uint64
	KernelBytes          uint64
	SluicePackets        uint64
	SluiceBytes          uint64
	Equal                bool
}

// Diff is the rule-by-rule comparison of two reports.
type Diff struct {
	Equal bool
	Rows  []Row
	// Problems are structural differences: a table or chain on one side
	// only, or chains with different numbers of rules.
	Problems []string
}

// Compare matches kernel counters (from iptables-save -c) against
// sluice's, chain by chain by name and rule by rule by position: both
// sides keep the rules in chain order, and comma lists in -s/-d expand the
// same way on both. Chain order may differ (iptables-save sorts user
// chains), so chains are paired by name.
func Compare(kernel, sluice *Report) *Diff {
	d := &Diff{Equal: true}
	seen := map[string]bool{}
	for _, kt := range kernel.Tables {
		st := sluice.Find(kt.Family, kt.Table)
		if st == nil {
			d.problem("table %s %s is in the kernel but not in sluice", kt.Family, kt.Table)
			continue
		}
		seen[kt.Family+"/"+kt.Table] = true
		for _, kc := range kt.Chains {
			sc := st.Chain(kc.Name)
			if sc == nil {
				d.problem("chain %s in %s %s is in the kernel but not in sluice", kc.Name, kt.Family, kt.Table)
				continue
			}
			if kc.Policy != "-" {
				d.add(Row{Family: kt.Family, Table: kt.Table, Chain: kc.Name, Index: -1, Text: "policy " + kc.Policy,
					KernelPackets: kc.PolicyPackets, KernelBytes: kc.PolicyBytes,
					SluicePackets: sc.PolicyPackets, SluiceBytes: sc.PolicyBytes})
			}
			if len(kc.Rules) != len(sc.Rules) {
				d.problem("chain %s in %s %s has %d rules in the kernel and %d in sluice", kc.Name, kt.Family, kt.Table, len(kc.Rules), len(sc.Rules))
			}
			for i := 0; i < len(kc.Rules) && i < len(sc.Rules); i++ {
				kr, sr := kc.Rules[i], sc.Rules[i]
				text := sr.Text
				if text == "" {
					text = kr.Text
				}
				d.add(Row{Family: kt.Family, Table: kt.Table, Chain: kc.Name, Index: i, Line: sr.Line, Text: text,
					KernelPackets: kr.Packets, KernelBytes: kr.Bytes, SluicePackets: sr.Packets, SluiceBytes: sr.Bytes})
			}
		}
	}
	for _, st := range sluice.Tables {
		if !seen[st.Family+"/"+st.Table] {
			d.problem("table %s %s is in sluice but not in the kernel", st.Family, st.Table)
		}
	}
	return d
}

func (d *Diff) add(r Row) {
	r.Equal = r.KernelPackets == r.SluicePackets && r.KernelBytes == r.SluiceBytes
	if !r.Equal {
		d.Equal = false
	}
	d.Rows = append(d.Rows, r)
}

func (d *Diff) problem(format string, args ...any) {
	d.Equal = false
	d.Problems = append(d.Problems, fmt.Sprintf(format, args...))
}

// Mismatches returns the rows that differ.
func (d *Diff) Mismatches() []Row {
	var out []Row
	for _, r := range d.Rows {
		if !r.Equal {
			out = append(out, r)
		}
	}
	return out
}
