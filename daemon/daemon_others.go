//go:build !linux

package daemon

import (
	"errors"

	"github.com/sluice-project/sluice/afxdp"
	"github.com/sluice-project/sluice/engine"
	"github.com/sluice-project/sluice/engine/hashlimit"
	"github.com/sluice-project/sluice/report"
)

// Config configures a Daemon (see the Linux version).
type Config struct {
	Iface   string
	Queues  []int
	TAP     string
	Program *engine.Program
	LockDir string
	Socket  afxdp.Config
	Batch   int
	Logf    func(format string, args ...any)
	Reload  func() (*engine.Program, error)
	LogSink engine.LogSink
	XDP     *XDPConfig
}

// Daemon is the userspace tier; it runs on Linux only.
type Daemon struct{}

// Start fails off Linux.
func Start(cfg Config) (*Daemon, error) { return nil, errors.New("daemon: AF_XDP needs Linux") }

func (d *Daemon) Stats() *Stats             { return &Stats{} }
func (d *Daemon) Report() *report.Report    { return &report.Report{} }
func (d *Daemon) Workers() []*engine.Worker { return nil }

func (d *Daemon) HashlimitStats(st *engine.State) []hashlimit.TableStats { return st.HashlimitStats() }
func (d *Daemon) Stop() error                                            { return nil }
func (d *Daemon) Abandon()                                               {}
func (d *Daemon) Reload() error                                          { return errors.New("daemon: AF_XDP needs Linux") }
func (d *Daemon) Program() *engine.Program                               { return nil }
func (d *Daemon) StartCapture(CaptureRequest) (*captureSession, error) {
	return nil, errors.New("daemon: AF_XDP needs Linux")
}
func (d *Daemon) EndCapture(*captureSession) {}
