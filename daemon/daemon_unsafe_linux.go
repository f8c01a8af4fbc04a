package daemon

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// ethtoolChannelsT is struct ethtool_channels.
type ethtoolChannelsT struct {
	cmd                                         uint32
	maxRx, maxTx, maxOther, maxCombined         uint32
	rxCount, txCount, otherCount, combinedCount uint32
}

type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [16]byte
}

func ethtoolChannels(iface string) (ethtoolChannelsT, error) {
	ch := ethtoolChannelsT{cmd: unix.ETHTOOL_GCHANNELS}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return ch, err
	}
	defer unix.Close(fd)
	var r ifreqData
	copy(r.name[:], iface)
	r.data = unsafe.Pointer(&ch)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&r)))
	if errno != 0 {
		return ch, errno
	}
	return ch, nil
}
