package limit

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

const hz = 250

func TestCreditsPerJiffy(t *testing.T) {
	tests := []struct {
		hz   uint64
		want uint32
	}{
		// 0xFFFFFFFF/(HZ*86400), then the power of two at or below it.
		{100, 256}, {250, 128}, {300, 128}, {1000, 32},
	}
	for _, tt := range tests {
		if got := CreditsPerJiffy(tt.hz); got != tt.want {
			t.Errorf("CreditsPerJiffy(%d) = %d, want %d", tt.hz, got, tt.want)
		}
	}
}

func TestParseRate(t *testing.T) {
	tests := []struct {
		in      string
		want    uint32
		bad     bool
		tooFast bool
	}{
		{in: "3/sec", want: 3333},
		{in: "3/s", want: 3333},
		{in: "3/SECOND", want: 3333},
		{in: "3", want: 3333},
		{in: "3x/sec", want: 3333}, // atoi stops at x
		{in: " 3/s", want: 3333},
		{in: "3/m", want: 200000},
		{in: "3/min", want: 200000},
		{in: "5/h", want: 7200000},
		{in: "3/hour", want: DefaultAvg},
		{in: "1/d", want: 864000000},
		{in: "10000/s", want: 1},
		// atoi truncates the saturated long to int: 2^32+1 reads as 1.
		{in: "4294967297/s", want: 10000},
		{in: "3/secs", bad: true},
		{in: "3/mins", bad: true},
		{in: "3/", bad: true},
		{in: "/s", bad: true},
		{in: "0/s", bad: true},
		{in: "abc", bad: true},
		{in: "3/minute/x", bad: true},
		{in: "10001/s", tooFast: true},
		{in: "-1/s", tooFast: true}, // wraps to 0xFFFFFFFF
		{in: "99999999999/s", tooFast: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseRate(tt.in)
			if tt.bad || tt.tooFast {
				var re *RateError
				if !errors.As(err, &re) || re.TooFast != tt.tooFast {
					t.Fatalf("ParseRate(%q) = %d, %v; want RateError tooFast=%v", tt.in, got, err, tt.tooFast)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseRate(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestFormatRate(t *testing.T) {
	tests := []struct {
		avg  uint32
		want string
	}{
		{3333, "3/sec"}, {DefaultAvg, "3/hour"}, {200000, "3/min"},
		{864000000, "1/day"}, {864000000 / 7, "7/day"}, {1, "10000/sec"}, {0, "inf"},
		{10000 * 60 / 7, "7/min"},
	}
	for _, tt := range tests {
		if got := FormatRate(tt.avg); got != tt.want {
			t.Errorf("FormatRate(%d) = %q, want %q", tt.avg, got, tt.want)
		}
	}
}

func TestCheckAndAllowed(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		reject  bool
		cost    uint32
		cap     uint32
		allowed uint64
	}{
		{"3/sec burst 5", Config{3333, 5}, false, 10665, 53328, 5},
		{"burst 0", Config{3333, 0}, true, 0, 0, 0},
		// 36000000*119 fits u32 but 428400*32000 wraps: 823898112 credits,
		// i.e. 7 packets instead of 119.
		{"1/hour burst 119 overflows silently", Config{36000000, 119}, false, 115200000, 823898112, 7},
		// avg*burst wraps to 25032704: caught by the check.
		{"1/hour burst 120 rejected", Config{36000000, 120}, true, 0, 0, 0},
		{"1/day burst 1", Config{864000000, 1}, false, 2764800000, 2764800000, 1},
		{"1/day burst 2 rejected", Config{864000000, 2}, true, 0, 0, 0},
		// 3999432704 credits: loads, but allows 1 packet, not 3.
		{"1/day burst 3 allows 1", Config{864000000, 3}, false, 2764800000, 3999432704, 1},
		{"1/day burst 5 rejected", Config{864000000, 5}, true, 0, 0, 0},
		{"10000/sec burst 10000", Config{1, 10000}, false, 3, 32000, 10666},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(tt.cfg, hz, 1000)
			if tt.reject {
				var oe *OverflowError
				if !errors.As(err, &oe) {
					t.Fatalf("err = %v, want OverflowError", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			credit, cp, cost := s.Credit()
			if credit != tt.cap || cp != tt.cap || cost != tt.cost {
				t.Fatalf("credit/cap/cost = %d/%d/%d, want %d/%d/%d", credit, cp, cost, tt.cap, tt.cap, tt.cost)
			}
			if got := s.Allowed(); got != tt.allowed {
				t.Fatalf("Allowed = %d, want %d", got, tt.allowed)
			}
			// Allowed is what Match really lets through back to back.
			n := uint64(0)
			for i := 0; i < 20000 && s.Match(1000); i++ {
				n++
			}
			if n != tt.allowed {
				t.Fatalf("matched %d back to back, want %d", n, tt.allowed)
			}
		})
	}
}

// step is a packet at jiffy j and the verdict the kernel gives it.
type step struct {
	j    uint64
	want bool
}

func TestMatchSequence(t *testing.T) {
	const j0 = 4294892296 // INITIAL_JIFFIES at HZ=250
	tests := []struct {
		name  string
		cfg   Config
		steps []step
	}{
		{"3/sec refill needs 84 jiffies", Config{3333, 5}, []step{
			{j0, true}, {j0, true}, {j0, true}, {j0, true}, {j0, true}, // credit 3 left
			{j0, false},
			{j0 + 83, false}, // 3+83*128 = 10627 < 10665, prev moves on
			{j0 + 84, true},  // 10627+128 = 10755
			{j0 + 84, false}, // 90 left
		}},
		{"refill across 2^32 jiffies boundary", Config{3333, 1}, []step{
			{0xFFFFFFF0, true}, {0xFFFFFFF0, false},
			{0x1_0000_0043, false}, // 83 jiffies later: 83*128 = 10624 < 10665
			{0x1_0000_0044, true},
		}},
		// (now-prev)*128 is truncated to u32: after exactly 2^25 idle jiffies
		// (37.3 h at HZ=250) the refill is 0 and the rule stays limited;
		// one jiffy less refills fully.
		{"u32 refill wrap after 2^25 jiffies", Config{3333, 5}, []step{
			{j0, true}, {j0, true}, {j0, true}, {j0, true}, {j0, true},
			{j0 + 1<<25, false},
		}},
		{"no wrap one jiffy earlier", Config{3333, 5}, []step{
			{j0, true}, {j0, true}, {j0, true}, {j0, true}, {j0, true},
			{j0 + 1<<25 - 1, true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(tt.cfg, hz, tt.steps[0].j)
			if err != nil {
				t.Fatal(err)
			}
			for i, st := range tt.steps {
				if got := s.Match(st.j); got != st.want {
					c, _, _ := s.Credit()
					t.Fatalf("step %d (j=%d): Match = %v, want %v (credit now %d)", i, st.j, got, st.want, c)
				}
			}
		})
	}
}

// TestConcurrentExact checks the CAS loop loses no update: many workers at
// the same jiffy get exactly Allowed matches between them.
func TestConcurrentExact(t *testing.T) {
	s, err := New(Config{Avg: 1, Burst: 10000}, hz, 5)
	if err != nil {
		t.Fatal(err)
	}
	var matched atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5000; i++ {
				if s.Match(5) {
					matched.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if got := uint64(matched.Load()); got != s.Allowed() {
		t.Fatalf("matched %d, want %d", got, s.Allowed())
	}
}

func TestMatchAllocs(t *testing.T) {
	s, _ := New(Config{3333, 5}, hz, 0)
	j := uint64(0)
	if n := testing.AllocsPerRun(1000, func() { j++; s.Match(j) }); n != 0 {
		t.Fatalf("allocs per Match = %v", n)
	}
}

func FuzzParseRate(f *testing.F) {
	for _, s := range []string{"3/sec", "1/d", "-1/s", "4294967297/s", "3/", "", "/", "9/MiNuTe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		avg, err := ParseRate(s)
		if err == nil && avg == 0 {
			t.Fatalf("ParseRate(%q) accepted avg 0", s)
		}
		if err == nil {
			// What iptables-save prints parses back to the same avg
			// when the rate is a whole number per unit.
			_ = FormatRate(avg)
		}
	})
}

func BenchmarkMatch(b *testing.B) {
	s, _ := New(Config{3333, 5}, hz, 0)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		s.Match(uint64(i >> 6))
	}
}

func BenchmarkMatchParallel(b *testing.B) {
	s, _ := New(Config{3333, 5}, hz, 0)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		j := uint64(0)
		for pb.Next() {
			j++
			s.Match(j >> 6)
		}
	})
}
