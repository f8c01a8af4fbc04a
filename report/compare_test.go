package report

import "testing"

func reportForTest(policy, rule0, rule1 uint64) *Report {
	return &Report{Tables: []Table{{Family: "ipv4", Table: "raw", Chains: []Chain{
		{Name: "PREROUTING", Policy: "ACCEPT", PolicyPackets: policy, PolicyBytes: policy * 40,
			Rules: []Rule{{Line: 3, Packets: rule0, Bytes: rule0 * 40}, {Line: 4, Packets: rule1, Bytes: rule1 * 40}}},
		{Name: "USER", Policy: "-", Rules: []Rule{}},
	}}}}
}

func TestCompare(t *testing.T) {
	tests := []struct {
		name       string
		kernel     *Report
		sluice     *Report
		equal      bool
		mismatches int
		problems   int
	}{
		{"equal", reportForTest(1, 2, 3), reportForTest(1, 2, 3), true, 0, 0},
		{"one rule differs", reportForTest(1, 2, 3), reportForTest(1, 2, 4), false, 1, 0},
		{"policy differs", reportForTest(1, 2, 3), reportForTest(0, 2, 3), false, 1, 0},
		{"table missing in sluice", reportForTest(1, 2, 3), &Report{}, false, 0, 1},
		{"table missing in kernel", &Report{}, reportForTest(1, 2, 3), false, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Compare(tt.kernel, tt.sluice)
			if d.Equal != tt.equal || len(d.Mismatches()) != tt.mismatches || len(d.Problems) != tt.problems {
				t.Errorf("equal %v, %d mismatches, problems %q", d.Equal, len(d.Mismatches()), d.Problems)
			}
		})
	}
}

// Chains pair by name: iptables-save sorts user chains, sluice keeps file order.
func TestCompareChainOrder(t *testing.T) {
	k := reportForTest(1, 2, 3)
	s := reportForTest(1, 2, 3)
	s.Tables[0].Chains[0], s.Tables[0].Chains[1] = s.Tables[0].Chains[1], s.Tables[0].Chains[0]
	if d := Compare(k, s); !d.Equal {
		t.Errorf("chain order mattered: %+v", d)
	}
}

func TestCompareRuleCount(t *testing.T) {
	k := reportForTest(1, 2, 3)
	s := reportForTest(1, 2, 3)
	s.Tables[0].Chains[0].Rules = s.Tables[0].Chains[0].Rules[:1]
	if d := Compare(k, s); d.Equal || len(d.Problems) != 1 {
		t.Errorf("missing rule not reported: %+v", d)
	}
}
