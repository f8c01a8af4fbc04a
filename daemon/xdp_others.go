//go:build !linux

package daemon

import (
	"errors"
	"net/netip"

	"github.com/sluice-project/sluice/engine/hashlimit"
	"github.com/sluice-project/sluice/report"
	"github.com/sluice-project/sluice/rules"
)

// XDPConfig configures the XDP tier (see the Linux version).
type XDPConfig struct {
	Iface           string
	InIface         string
	Rules4, Rules6  *rules.Ruleset
	LocalAddrs      []netip.Addr
	LockDir         string
	Logf            func(format string, args ...any)
	Reload          func() (*Reloaded, error)
	RateLimitsInXDP bool
	HZ              uint64
}

// ErrFallbackSites is wrapped by StartXDP when the ruleset needs the
// userspace tier somewhere.
var ErrFallbackSites = errors.New("the ruleset has fallback sites and no userspace tier is running")

// XDPDaemon is the XDP tier; it runs on Linux only.
type XDPDaemon struct{}

// StartXDP fails off Linux.
func StartXDP(cfg XDPConfig) (*XDPDaemon, error) { return nil, errors.New("daemon: XDP needs Linux") }

func (d *XDPDaemon) Stats() *Stats          { return &Stats{} }
func (d *XDPDaemon) Report() *report.Report { return &report.Report{} }

func (d *XDPDaemon) HashlimitStats() []hashlimit.TableStats { return nil }
func (d *XDPDaemon) Stop() error                            { return nil }
func (d *XDPDaemon) Abandon()                               {}
func (d *XDPDaemon) Reload() error                          { return errors.New("daemon: XDP needs Linux") }
func (d *XDPDaemon) StartCapture(CaptureRequest) (*captureSession, error) {
	return nil, errors.New("daemon: XDP needs Linux")
}
func (d *XDPDaemon) EndCapture(*captureSession) {}
