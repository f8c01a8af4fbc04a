package tap

import (
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ifreqHW is struct ifreq with ifr_hwaddr, which x/sys/unix's Ifreq does
// not expose.
type ifreqHW struct {
	name   [unix.IFNAMSIZ]byte
	family uint16
	data   [14]byte
	_      [8]byte
}

func setHardwareAddr(ctl int, name string, mac net.HardwareAddr) error {
	var r ifreqHW
	copy(r.name[:], name)
	r.family = unix.ARPHRD_ETHER
	copy(r.data[:], mac)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(ctl), unix.SIOCSIFHWADDR, uintptr(unsafe.Pointer(&r)))
	if errno != 0 {
		return errno
	}
	return nil
}
