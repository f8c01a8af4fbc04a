package testnet

import (
	"os"
	"os/exec"
	"testing"
)

// requiredTools are the binaries every privileged test needs.
var requiredTools = []string{"ip", "iptables-legacy-restore", "iptables-legacy-save", "ip6tables-legacy-restore", "ip6tables-legacy-save", "ipset"}

// missingPrivileges says why privileged tests cannot run here, or "" when
// they can.
func missingPrivileges() string {
	if !supported {
		return "network namespaces need Linux"
	}
	if os.Geteuid() != 0 {
		return "not root: network namespaces, veths and iptables need root"
	}
	for _, tool := range requiredTools {
		if _, err := exec.LookPath(tool); err != nil {
			return tool + " not found in PATH (apt-get install iproute2 iptables ipset)"
		}
	}
	return ""
}

// RequireForTest skips t when the machine cannot run privileged network
// tests (not Linux, not root, or ip/iptables-legacy/ipset missing). When
// the environment says CI=true it fails t instead: CI is set up to run
// them, and a silent skip there would hide that the kernel is no longer
// being checked.
func RequireForTest(t testing.TB) {
	t.Helper()
	reason := missingPrivileges()
	if reason == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("privileged network test cannot run with CI=true: %s", reason)
	}
	t.Skipf("skipping privileged network test: %s", reason)
}
