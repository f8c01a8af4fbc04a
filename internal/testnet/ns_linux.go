package testnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

const supported = true

// netnsDir is where `ip netns` keeps its bind-mounted namespace handles.
const netnsDir = "/run/netns"

// nsSeq numbers the namespaces this process creates.
var nsSeq atomic.Uint64

// NS is a named network namespace created by NewNS, visible to
// `ip netns exec`.
type NS struct {
	Name string
}

// NewNS creates a fresh network namespace named sluice-<pid>-<n>-<prefix>
// with its loopback up. prefix (letters, digits, '-' and '_') only helps a
// human reading `ip netns list`; it may be empty.
func NewNS(prefix string) (*NS, error) {
	if !validPrefix.MatchString(prefix) {
		return nil, fmt.Errorf("testnet: namespace prefix %q: only letters, digits, '-' and '_' are allowed", prefix)
	}
	name := fmt.Sprintf("sluice-%d-%d", os.Getpid(), nsSeq.Add(1))
	if prefix != "" {
		name += "-" + prefix
	}
	if err := runHost(context.Background(), "ip", "netns", "add", name); err != nil {
		return nil, err
	}
	ns := &NS{Name: name}
	if _, err := ns.Run(context.Background(), "ip", "link", "set", "lo", "up"); err != nil {
		ns.Close()
		return nil, err
	}
	return ns, nil
}

var validPrefix = regexp.MustCompile(`^[A-Za-z0-9_-]{0,32}$`)

// Close deletes the namespace; veths with an end inside it go with it.
func (ns *NS) Close() error {
	return runHost(context.Background(), "ip", "netns", "del", ns.Name)
}

// Run runs a command inside the namespace via `ip netns exec` and returns
// its standard output. The error carries the command line and its stderr.
func (ns *NS) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	return ns.RunInput(ctx, nil, name, args...)
}

// RunInput is Run with stdin fed from input (for iptables-restore and
// ipset restore).
func (ns *NS) RunInput(ctx context.Context, input []byte, name string, args ...string) ([]byte, error) {
	full := append([]string{"netns", "exec", ns.Name, name}, args...)
	cmd := exec.CommandContext(ctx, "ip", full...)
	if input != nil {
		cmd.Stdin = bytes.NewReader(input)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), &CommandError{Args: append([]string{"ip"}, full...), Stderr: strings.TrimSpace(stderr.String()), Err: err}
	}
	return stdout.Bytes(), nil
}

func runHost(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return &CommandError{Args: append([]string{name}, args...), Stderr: strings.TrimSpace(stderr.String()), Err: err}
	}
	return nil
}

// Do runs f on an OS thread switched into the namespace, then switches the
// thread back. Sockets opened by f stay in the namespace for their whole
// life, whichever thread later uses them: a socket keeps the namespace it
// was created in, so Do is needed only to create them (and to read
// per-namespace files such as /proc/thread-self/net/dev).
//
// f runs on its own goroutine locked to its thread; if switching back
// fails the thread is left locked, so the Go runtime destroys it instead of
// reusing a thread stuck in the wrong namespace.
func (ns *NS) Do(f func() error) error {
	target, err := os.Open(netnsDir + "/" + ns.Name)
	if err != nil {
		return fmt.Errorf("testnet: open namespace %s: %w", ns.Name, err)
	}
	defer target.Close()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("testnet: open current namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("testnet: setns into %s: %w", ns.Name, err)
			return
		}
		ferr := f()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// Keep the thread locked: it dies with this goroutine.
			done <- errors.Join(ferr, fmt.Errorf("testnet: setns back from %s: %w", ns.Name, err))
			return
		}
		runtime.UnlockOSThread()
		done <- ferr
	}()
	return <-done
}

// staleName matches the namespaces NewNS creates and captures the pid.
var staleName = regexp.MustCompile(`^sluice-([0-9]+)-[0-9]+(-.*)?$`)

// SweepStale deletes sluice-<pid>-* namespaces whose creating process is
// dead, as left by a test binary that was killed before its cleanups ran.
// It returns the names it deleted.
func SweepStale() ([]string, error) {
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("testnet: list namespaces: %w", err)
	}
	var deleted []string
	var errs []error
	for _, e := range entries {
		m := staleName.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		pid, err := strconv.Atoi(m[1])
		if err != nil || pid <= 0 || pidAlive(pid) {
			continue
		}
		if err := (&NS{Name: e.Name()}).Close(); err != nil {
			errs = append(errs, err)
			continue
		}
		deleted = append(deleted, e.Name())
	}
	return deleted, errors.Join(errs...)
}

// pidAlive reports whether a process with the pid exists (EPERM means it
// exists but belongs to someone else).
func pidAlive(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}
