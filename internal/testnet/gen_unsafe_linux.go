package testnet

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ethtoolValue is struct ethtool_value.
type ethtoolValue struct{ cmd, data uint32 }

// ifreqData is struct ifreq with ifr_data.
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data uintptr
	_    [16]byte
}

const (
	ethtoolSGRO    = 0x2c // ETHTOOL_SGRO
	ethtoolSTXCSUM = 0x17 // ETHTOOL_STXCSUM
)

// setGRO turns generic receive offload on or off for the named interface
// of the calling thread's namespace (what `ethtool -K dev gro on` does).
// On a veth, GRO on means NAPI, which the veth needs to take XDP frames
// redirected from its peer.
func setGRO(ifname string, on bool) error { return ethtoolSet(ifname, ethtoolSGRO, on) }

// DisableTxChecksum turns off TX checksum offload on the named interface
// of the calling thread's namespace (`ethtool -K dev tx off`).
//
// Tests of the userspace tier need it on the sending veth: a veth hands
// locally generated TCP segments to its peer with CHECKSUM_PARTIAL (the
// checksum field holds only the pseudo-header sum) and the receiving
// kernel trusts the skb's flag. AF_XDP sees the bytes, not the flag, so a
// frame re-injected through the TAP arrives with CHECKSUM_NONE and fails
// software verification. Frames from a real NIC carry complete checksums.
func DisableTxChecksum(ifname string) error { return ethtoolSet(ifname, ethtoolSTXCSUM, false) }

func ethtoolSet(ifname string, cmd uint32, on bool) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	v := &ethtoolValue{cmd: cmd}
	if on {
		v.data = 1
	}
	// ifr_data hides the pointer from the garbage collector: pin v.
	var pin runtime.Pinner
	pin.Pin(v)
	defer pin.Unpin()
	var ifr ifreqData
	copy(ifr.name[:], ifname)
	ifr.data = uintptr(unsafe.Pointer(v))
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	if errno != 0 {
		return fmt.Errorf("SIOCETHTOOL %#x %s: %w", cmd, ifname, errno)
	}
	return nil
}
