package tap

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Config describes the TAP device.
type Config struct {
	// Name of the device (default DefaultName).
	Name string
	// Like is the filtered interface: the TAP takes its MAC address and
	// MTU, and the sysctls copied from it (see the package comment).
	Like string
}

// Device is an open TAP device.
type Device struct {
	fd      int
	name    string
	ifindex int
}

// Create creates the TAP (IFF_TAP|IFF_NO_PI), gives it the MAC and MTU
// of cfg.Like, sets the sysctls re-injection needs and brings it up. It
// must run in the network namespace of cfg.Like (on a thread switched
// into it when that is not the process's namespace).
func Create(cfg Config) (_ *Device, err error) {
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	if len(cfg.Name) >= unix.IFNAMSIZ {
		return nil, fmt.Errorf("tap: name %q is longer than %d characters", cfg.Name, unix.IFNAMSIZ-1)
	}
	like, err := net.InterfaceByName(cfg.Like)
	if err != nil {
		return nil, fmt.Errorf("tap: interface to copy: %w", err)
	}
	if len(like.HardwareAddr) != 6 {
		return nil, fmt.Errorf("tap: %s has no Ethernet address", cfg.Like)
	}
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("tap: open /dev/net/tun: %w", err)
	}
	d := &Device{fd: fd, name: cfg.Name}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	ifr, err := unix.NewIfreq(cfg.Name)
	if err != nil {
		return nil, fmt.Errorf("tap: %w", err)
	}
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		if errors.Is(err, unix.EBUSY) {
			return nil, fmt.Errorf("tap: %s exists and is in use (another sluice daemon?): %w", cfg.Name, err)
		}
		return nil, fmt.Errorf("tap: create %s: %w", cfg.Name, err)
	}
	d.name = ifr.Name()
	ctl, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("tap: control socket: %w", err)
	}
	defer unix.Close(ctl)
	if err := setHardwareAddr(ctl, d.name, like.HardwareAddr); err != nil {
		return nil, fmt.Errorf("tap: set %s address to %s: %w", d.name, like.HardwareAddr, err)
	}
	ifr, _ = unix.NewIfreq(d.name)
	ifr.SetUint32(uint32(like.MTU))
	if err := unix.IoctlIfreq(ctl, unix.SIOCSIFMTU, ifr); err != nil {
		return nil, fmt.Errorf("tap: set %s MTU to %d: %w", d.name, like.MTU, err)
	}
	if err := d.sysctls(cfg.Like); err != nil {
		return nil, err
	}
	ifr, _ = unix.NewIfreq(d.name)
	if err := unix.IoctlIfreq(ctl, unix.SIOCGIFFLAGS, ifr); err != nil {
		return nil, fmt.Errorf("tap: get %s flags: %w", d.name, err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP | unix.IFF_NOARP)
	if err := unix.IoctlIfreq(ctl, unix.SIOCSIFFLAGS, ifr); err != nil {
		return nil, fmt.Errorf("tap: bring %s up: %w", d.name, err)
	}
	ifr, _ = unix.NewIfreq(d.name)
	if err := unix.IoctlIfreq(ctl, unix.SIOCGIFINDEX, ifr); err != nil {
		return nil, fmt.Errorf("tap: index of %s: %w", d.name, err)
	}
	d.ifindex = int(ifr.Uint32())
	return d, nil
}

// sysctls applies the settings described in the package comment. The
// IPv6 ones go first: addr_gen_mode must be set before the device is up.
func (d *Device) sysctls(like string) error {
	all, err := readSysctl("net/ipv4/conf/all/rp_filter")
	if err != nil {
		return err
	}
	rp := "0"
	if all != "0" {
		rp = "2"
	}
	set := [][2]string{
		{"net/ipv6/conf/" + d.name + "/addr_gen_mode", "1"},
		{"net/ipv6/conf/" + d.name + "/accept_ra", "0"},
		{"net/ipv6/conf/" + d.name + "/autoconf", "0"},
		{"net/ipv6/conf/" + d.name + "/dad_transmits", "0"},
		{"net/ipv6/conf/" + d.name + "/router_solicitations", "0"},
		{"net/ipv6/conf/" + d.name + "/disable_ipv6", "0"},
		{"net/ipv4/conf/" + d.name + "/rp_filter", rp},
	}
	for _, key := range []string{"accept_local", "forwarding"} {
		v, err := readSysctl("net/ipv4/conf/" + like + "/" + key)
		if err != nil {
			return err
		}
		set = append(set, [2]string{"net/ipv4/conf/" + d.name + "/" + key, v})
	}
	for _, kv := range set {
		if strings.HasPrefix(kv[0], "net/ipv6/") {
			if _, err := os.Stat("/proc/sys/" + kv[0]); errors.Is(err, os.ErrNotExist) {
				continue // IPv6 not built or disabled at boot
			}
		}
		if err := os.WriteFile("/proc/sys/"+kv[0], []byte(kv[1]), 0); err != nil {
			return fmt.Errorf("tap: sysctl %s=%s: %w", strings.ReplaceAll(kv[0], "/", "."), kv[1], err)
		}
	}
	return nil
}

func readSysctl(key string) (string, error) {
	b, err := os.ReadFile("/proc/sys/" + key)
	if err != nil {
		return "", fmt.Errorf("tap: sysctl %s: %w", strings.ReplaceAll(key, "/", "."), err)
	}
	return strings.TrimSpace(string(b)), nil
}

// Name is the device's name.
func (d *Device) Name() string { return d.name }

// Index is the device's interface index.
func (d *Device) Index() int { return d.ifindex }

// Write hands one Ethernet frame to the kernel's receive path as if it had
// arrived on the TAP. It does not allocate.
func (d *Device) Write(frame []byte) error {
	for {
		_, err := unix.Write(d.fd, frame)
		if err != unix.EINTR {
			return err
		}
	}
}

// Close closes the device's descriptor; the kernel then deletes it.
func (d *Device) Close() error {
	if d.fd < 0 {
		return nil
	}
	err := unix.Close(d.fd)
	d.fd = -1
	return err
}

// String is for logs.
func (d *Device) String() string { return d.name + "#" + strconv.Itoa(d.ifindex) }
