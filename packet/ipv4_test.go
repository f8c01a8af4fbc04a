package packet

import (
	"math/rand/v2"
	"testing"
)

// onesSum16ForTest is RFC 1071's sum one 16-bit word at a time.
func onesSum16ForTest(b []byte, initial uint32) uint16 {
	s := initial
	for len(b) >= 2 {
		s += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// TestOnesSumWords: the 32-bit-word sum equals the 16-bit-word one for
// every length up to 64 bytes, random and extreme (all 0x00, all 0xff)
// contents and initial values.
func TestOnesSumWords(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for n := 0; n <= 64; n++ {
		for round := range 200 {
			b := make([]byte, n)
			switch round {
			case 0:
			case 1:
				for i := range b {
					b[i] = 0xff
				}
			default:
				for i := range b {
					b[i] = byte(rng.Uint32())
				}
			}
			initial := []uint32{0, 0xffff, 0x1ffff, rng.Uint32() & 0x3ffff}[round%4]
			if got, want := onesSum(b, initial), onesSum16ForTest(b, initial); got != want {
				t.Fatalf("% x initial %#x: %#04x, want %#04x", b, initial, got, want)
			}
		}
	}
}
