package testnet

import "net"

// RewriteDstMAC returns a copy of the Ethernet frame with its destination
// MAC replaced, typically by B's, so that B receives it as PACKET_HOST.
// The input is not modified; frames shorter than 6 bytes are returned as
// copies unchanged.
func RewriteDstMAC(frame []byte, mac net.HardwareAddr) []byte {
	out := append([]byte(nil), frame...)
	if len(out) >= 6 && len(mac) == 6 {
		copy(out[:6], mac)
	}
	return out
}
