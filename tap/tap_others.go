//go:build !linux

package tap

import "errors"

// Config describes the TAP device (see the Linux version).
type Config struct {
	Name string
	Like string
}

// Device is a TAP device; off Linux none can be created.
type Device struct{}

// Create fails off Linux.
func Create(cfg Config) (*Device, error) { return nil, errors.New("tap: TAP re-injection needs Linux") }

func (d *Device) Name() string             { return "" }
func (d *Device) Index() int               { return 0 }
func (d *Device) Write(frame []byte) error { return errors.New("tap: unsupported") }
func (d *Device) Close() error             { return nil }
func (d *Device) String() string           { return "" }
