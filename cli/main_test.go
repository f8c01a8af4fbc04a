package cli

import (
	"os"
	"testing"
)

// TestMain lets tests run this test binary as the sluice command itself
// (SLUICE_TEST_AS_MAIN=1), so a test can start `sluice run` as a separate
// process and kill it with SIGKILL, as a crash would.
func TestMain(m *testing.M) {
	if os.Getenv("SLUICE_TEST_AS_MAIN") == "1" {
		os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}
