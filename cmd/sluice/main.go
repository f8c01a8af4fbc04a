// Command sluice runs iptables and ipset anti-DDoS rules, with the kernel's
// exact semantics, in front of the Linux network stack. See README.md.
package main

import (
	"os"

	"github.com/sluice-project/sluice/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
