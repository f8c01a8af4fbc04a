package cli

import (
	"errors"
	"fmt"
	"io"

	"github.com/sluice-project/sluice/daemon"
)

func init() {
	register(command{name: "reload", summary: "make a running daemon re-read its rules and sets files", run: runReload})
}

func runReload(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("reload", "reload --control PATH", stderr)
	control := fs.String("control", "", "the daemon's control socket (sluice run --control)")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if *control == "" {
		fs.Usage()
		return &exitError{code: 2, err: errors.New("--control is required")}
	}
	if err := daemon.RequestReload(*control); err != nil {
		return fmt.Errorf("%w (the running ruleset is unchanged)", err)
	}
	fmt.Fprintln(stdout, "reloaded")
	return nil
}
