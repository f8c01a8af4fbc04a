package clib

import "testing"

func TestStrtoll(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
	}{
		{"42", 42}, {"  \t+7x", 7}, {"-0", 0}, {"-12", -12}, {"", 0}, {"abc", 0},
		{"9223372036854775807", 1<<63 - 1}, {"9223372036854775808", 1<<63 - 1},
		{"-9223372036854775808", -1 << 63}, {"-99999999999999999999", -1 << 63},
		{"4294967297/s", 4294967297},
	} {
		if got := Strtoll(tt.in); got != tt.want {
			t.Errorf("Strtoll(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
	if got := Atoi("4294967297"); got != 1 {
		t.Errorf("Atoi wraps to a C int: got %d, want 1", got)
	}
}

func TestEqualFoldASCII(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want bool
	}{{"SEC", "sec", true}, {"Minute", "mINUTE", true}, {"k", "\u212a", false}, {"ab", "abc", false}} {
		if got := EqualFoldASCII(tt.a, tt.b); got != tt.want {
			t.Errorf("EqualFoldASCII(%q, %q) = %v", tt.a, tt.b, got)
		}
	}
}
