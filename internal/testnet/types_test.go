package testnet

import (
	"bytes"
	"errors"
	"net"
	"testing"
)

func TestRewriteDstMAC(t *testing.T) {
	mac := net.HardwareAddr{1, 2, 3, 4, 5, 6}
	tests := []struct {
		name  string
		frame []byte
		want  []byte
	}{
		{"full header", []byte{9, 9, 9, 9, 9, 9, 7, 7, 7, 7, 7, 7, 8, 0}, []byte{1, 2, 3, 4, 5, 6, 7, 7, 7, 7, 7, 7, 8, 0}},
		{"exactly six", []byte{9, 9, 9, 9, 9, 9}, []byte{1, 2, 3, 4, 5, 6}},
		{"too short", []byte{9, 9}, []byte{9, 9}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig := append([]byte(nil), tt.frame...)
			got := RewriteDstMAC(tt.frame, mac)
			if !bytes.Equal(got, tt.want) {
				t.Errorf("RewriteDstMAC = %x, want %x", got, tt.want)
			}
			if !bytes.Equal(tt.frame, orig) {
				t.Errorf("input modified: %x", tt.frame)
			}
		})
	}
}

func TestCheckDelivered(t *testing.T) {
	before := Counters{ATxPackets: 10, BRxPackets: 10}
	tests := []struct {
		name    string
		after   Counters
		sent    uint64
		requeue uint64
		wantErr bool
	}{
		{"all received", Counters{ATxPackets: 15, BRxPackets: 15}, 5, 0, false},
		{"no handler drops are not losses", Counters{ATxPackets: 15, BRxPackets: 15, BRxDropped: 5}, 5, 0, false},
		{"one missing", Counters{ATxPackets: 14, BRxPackets: 14, ATxDropped: 1}, 5, 0, true},
		{"dropped and resent", Counters{ATxPackets: 15, BRxPackets: 15, ATxDropped: 1}, 5, 1, false},
		{"extra frame from elsewhere", Counters{BRxPackets: 16}, 5, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckDelivered(before, tt.after, tt.sent, tt.requeue)
			var lost *LostFramesError
			if got := errors.As(err, &lost); got != tt.wantErr {
				t.Fatalf("CheckDelivered = %v, want error %v", err, tt.wantErr)
			}
		})
	}
}
