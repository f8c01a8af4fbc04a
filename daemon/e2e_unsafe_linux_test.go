package daemon

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// disableTxChecksum turns off TX checksum offload on iface (ethtool -K
// iface tx off, through the legacy ETHTOOL_STXCSUM ioctl), in the
// calling thread's namespace.
//
// Why the test needs it: a veth hands locally generated TCP segments to
// its peer with CHECKSUM_PARTIAL, the checksum field holding only the
// pseudo-header sum, and the receiving kernel trusts the skb's flag. AF_XDP
// sees the bytes, not the flag, so a frame re-injected through the TAP
// arrives with CHECKSUM_NONE and fails software verification. Frames from
// a real NIC always carry complete checksums on the wire.
func disableTxChecksum(iface string) error {
	const ethtoolSTXCSUM = 0x17
	v := struct{ cmd, data uint32 }{cmd: ethtoolSTXCSUM}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var r ifreqData
	copy(r.name[:], iface)
	r.data = unsafe.Pointer(&v)
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&r))); errno != 0 {
		return errno
	}
	return nil
}
