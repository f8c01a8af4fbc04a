package inetaddr

import "testing"

func TestAton(t *testing.T) {
	tests := []struct {
		parts []uint64
		want  uint32
		ok    bool
	}{
		{[]uint64{1, 2, 3, 4}, 0x01020304, true},
		{[]uint64{1, 2, 3}, 0x01020003, true},
		{[]uint64{127, 1}, 0x7f000001, true},
		{[]uint64{65536}, 0x00010000, true},
		{[]uint64{1, 65536}, 0x01010000, true},
		{[]uint64{4294967295}, 0xffffffff, true},
		{[]uint64{4294967296}, 0, false},
		{[]uint64{256, 1}, 0, false},
		{[]uint64{1, 2, 3, 256}, 0, false},
		{[]uint64{1, 2, 65536}, 0, false},
		{nil, 0, false},
		{[]uint64{1, 2, 3, 4, 5}, 0, false},
	}
	for _, tt := range tests {
		if v, ok := Aton(tt.parts); v != tt.want || ok != tt.ok {
			t.Errorf("Aton(%v) = %#x, %v; want %#x, %v", tt.parts, v, ok, tt.want, tt.ok)
		}
	}
}
