//go:build !linux

package oracle

import (
	"context"
	"errors"

	"github.com/sluice-project/sluice/report"
)

var errNotLinux = errors.New("oracle: the kernel oracle needs Linux (network namespaces, iptables, ipset)")

// Run needs Linux; elsewhere it reports so.
func Run(ctx context.Context, spec Spec, frames []Frame, opt Options) (*report.Report, error) {
	return nil, errNotLinux
}

// Available says the oracle cannot run here.
func Available() error { return errNotLinux }
