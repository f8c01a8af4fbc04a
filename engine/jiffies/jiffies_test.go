package jiffies

import (
	"bytes"
	"compress/gzip"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestJiffies(t *testing.T) {
	tests := []struct {
		name string
		c    Clock
		now  int64
		want uint64
	}{
		{"zero", Clock{HZ: 250}, 0, 0},
		{"just below one tick", Clock{HZ: 250}, 3_999_999, 0},
		{"one tick", Clock{HZ: 250}, 4_000_000, 1},
		{"one second", Clock{HZ: 250}, 1e9, 250},
		{"default HZ", Clock{}, 1e9, 250},
		{"offset", Clock{HZ: 1000, Offset: 7}, 2e6, 9},
		{"HZ 300 exact 128-bit path", Clock{HZ: 300}, 1e9, 300},
		{"HZ 300 rounds down", Clock{HZ: 300}, 3_333_333, 0},
		{"HZ 300 one tick", Clock{HZ: 300}, 3_333_334, 1},
		// 2024-ish wall clock in ns must not overflow: 1.7e18 * 300 > 2^64.
		{"wall clock HZ 300", Clock{HZ: 300}, 1_700_000_000_000_000_000, 510_000_000_000},
		{"wall clock HZ 250", Clock{HZ: 250}, 1_700_000_000_000_000_000, 425_000_000_000},
		{"max int64 HZ 300", Clock{HZ: 300}, math.MaxInt64, 2767011611056},
		{"negative floors", Clock{HZ: 250, Offset: 10}, -1, 9},
		{"negative exact", Clock{HZ: 250, Offset: 10}, -4_000_000, 9},
		{"negative HZ 300", Clock{HZ: 300, Offset: 10}, -3_333_334, 8},
		{"min int64", Clock{HZ: 250, Offset: 2305843009214}, math.MinInt64, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.c.Jiffies(tt.now); got != tt.want {
				t.Fatalf("Jiffies(%d) = %d, want %d", tt.now, got, tt.want)
			}
		})
	}
}

func TestInitialJiffies(t *testing.T) {
	// -300*250 = -75000 as unsigned int, zero-extended.
	if got := InitialJiffies(250); got != 4294892296 {
		t.Fatalf("InitialJiffies(250) = %d", got)
	}
	if got := InitialJiffies(1000); got != 4294667296 {
		t.Fatalf("InitialJiffies(1000) = %d", got)
	}
}

func TestMsecsToJiffies(t *testing.T) {
	tests := []struct {
		m    uint32
		hz   uint64
		want uint64
	}{
		{0, 250, 0}, {1, 250, 1}, {4, 250, 1}, {5, 250, 2}, {1000, 250, 250},
		{10000, 250, 2500}, {1, 1000, 1}, {1, 100, 1}, {11, 100, 2},
		{math.MaxUint32, 250, 1073741824}, {10, 300, 3},
	}
	for _, tt := range tests {
		if got := MsecsToJiffies(tt.m, tt.hz); got != tt.want {
			t.Errorf("MsecsToJiffies(%d, %d) = %d, want %d", tt.m, tt.hz, got, tt.want)
		}
	}
}

func TestTimeAfter(t *testing.T) {
	tests := []struct {
		a, b    uint64
		after   bool
		afterEq bool
	}{
		{2, 1, true, true},
		{1, 1, false, true},
		{1, 2, false, false},
		{0, math.MaxUint64, true, true}, // wrapped: 0 is after -1
		{math.MaxUint64, 0, false, false},
	}
	for _, tt := range tests {
		if got := TimeAfter(tt.a, tt.b); got != tt.after {
			t.Errorf("TimeAfter(%d,%d) = %v", tt.a, tt.b, got)
		}
		if got := TimeAfterEq(tt.a, tt.b); got != tt.afterEq {
			t.Errorf("TimeAfterEq(%d,%d) = %v", tt.a, tt.b, got)
		}
	}
}

func TestParseConfigHZ(t *testing.T) {
	tests := []struct {
		name, in string
		want     uint64
		wantLine int // for errors
		wantErr  bool
	}{
		{"plain", "# comment\nCONFIG_HZ_250=y\nCONFIG_HZ=250\n", 250, 0, false},
		{"1000", "CONFIG_HZ=1000", 1000, 0, false},
		{"missing", "CONFIG_HZ_250=y\n", 0, 0, true},
		{"garbage", "x\nCONFIG_HZ=abc\n", 0, 2, true},
		{"zero", "CONFIG_HZ=0\n", 0, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseConfigHZ(strings.NewReader(tt.in))
			if tt.wantErr {
				var ce *ConfigError
				if !errors.As(err, &ce) {
					t.Fatalf("err = %v, want *ConfigError", err)
				}
				if ce.Line != tt.wantLine {
					t.Fatalf("line = %d, want %d", ce.Line, tt.wantLine)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

func TestDetectHZ(t *testing.T) {
	dir := t.TempDir()
	rel := filepath.Join(dir, "osrelease")
	if err := os.WriteFile(rel, []byte("6.1.0-test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// No config.gz, no /boot file: a typed error naming --hz.
	_, err := detectHZ(filepath.Join(dir, "config.gz"), rel, dir)
	var he *HZError
	if !errors.As(err, &he) || !strings.Contains(err.Error(), "--hz") || len(he.Tried) != 2 {
		t.Fatalf("err = %v", err)
	}
	// /boot/config-<release> is used when /proc/config.gz is absent.
	if err := os.WriteFile(filepath.Join(dir, "config-6.1.0-test"), []byte("CONFIG_HZ=300\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if hz, err := detectHZ(filepath.Join(dir, "config.gz"), rel, dir); err != nil || hz != 300 {
		t.Fatalf("boot config: %d, %v", hz, err)
	}
	// /proc/config.gz wins.
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte("CONFIG_HZ=1000\n"))
	zw.Close()
	gz := filepath.Join(dir, "config.gz")
	if err := os.WriteFile(gz, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if hz, err := detectHZ(gz, rel, dir); err != nil || hz != 1000 {
		t.Fatalf("config.gz: %d, %v", hz, err)
	}
}

func TestJiffiesAllocs(t *testing.T) {
	c := Clock{HZ: 300}
	var sink uint64
	if n := testing.AllocsPerRun(100, func() { sink += c.Jiffies(1_700_000_000_000_000_000) }); n != 0 {
		t.Fatalf("allocs = %v", n)
	}
}

func FuzzParseConfigHZ(f *testing.F) {
	f.Add("CONFIG_HZ=250\n")
	f.Add("CONFIG_HZ=\n")
	f.Add("CONFIG_HZ=99999999999999999999")
	f.Fuzz(func(t *testing.T, s string) {
		hz, err := ParseConfigHZ(strings.NewReader(s))
		if err == nil && (hz == 0 || hz > 100000) {
			t.Fatalf("accepted HZ %d", hz)
		}
	})
}

func BenchmarkJiffies(b *testing.B) {
	for _, hz := range []uint64{250, 300} {
		c := Clock{HZ: hz}
		b.Run(map[uint64]string{250: "hz250", 300: "hz300"}[hz], func(b *testing.B) {
			b.ReportAllocs()
			var sink uint64
			now := int64(1_700_000_000_000_000_000)
			for i := 0; i < b.N; i++ {
				sink += c.Jiffies(now + int64(i))
			}
			_ = sink
		})
	}
}

// TestTick: Tick's value is Jiffies', and its span, unless empty, holds
// now and maps to the same jiffy at both ends.
func TestTick(t *testing.T) {
	nows := []int64{0, 1, 3_999_999, 4_000_000, 1e9, -1, -4_000_000, math.MaxInt64, math.MaxInt64 - 1, math.MinInt64,
		1_700_000_000_000_000_000, 1_700_000_000_003_999_999}
	for i := int64(0); i < 2000; i++ {
		nows = append(nows, i*7_777_777, i*1_000_003+1_700_000_000_000_000_000)
	}
	for _, c := range []Clock{{HZ: 250}, {HZ: 100, Offset: 5}, {HZ: 1000}, {HZ: 300, Offset: 10}, {}} {
		for _, now := range nows {
			j, from, to := c.Tick(now)
			if j != c.Jiffies(now) {
				t.Fatalf("%+v Tick(%d) = %d, Jiffies %d", c, now, j, c.Jiffies(now))
			}
			if from == to && from == now {
				continue // no span
			}
			if j != c.Jiffies(now) || from > now || now >= to {
				t.Fatalf("%+v Tick(%d) = %d [%d, %d), Jiffies %d", c, now, j, from, to, c.Jiffies(now))
			}
			if c.Jiffies(from) != j || c.Jiffies(to-1) != j {
				t.Fatalf("%+v Tick(%d) = %d [%d, %d): ends map to %d and %d", c, now, j, from, to, c.Jiffies(from), c.Jiffies(to-1))
			}
		}
	}
}
