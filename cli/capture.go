package cli

import (
	"errors"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/sluice-project/sluice/daemon"
)

func init() {
	register(command{name: "capture", summary: "write frames a running daemon drops or accepts as pcap (tcpdump -r)", run: runCapture})
}

// runCapture answers "tcpdump won't work anymore": the daemon copies the
// frames it judged, sampled at a bounded rate, into a pcap stream.
func runCapture(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("capture", "capture --control PATH [--dropped|--accepted|--rule [TABLE:]CHAIN:N] [--count N] [--snaplen N] [--rate N] -w FILE|-", stderr)
	control := fs.String("control", "", "the daemon's control socket (sluice run --control)")
	dropped := fs.Bool("dropped", false, "frames sluice dropped")
	accepted := fs.Bool("accepted", false, "frames sluice let through")
	rule := fs.String("rule", "", "frames whose ACCEPT or DROP came from this rule, [TABLE:]CHAIN:N")
	count := fs.Int("count", 0, "stop after N frames (default: until interrupted)")
	snaplen := fs.Int("snaplen", 262144, "bytes kept per frame")
	rate := fs.Int("rate", 10000, "at most this many frames per second are copied; the datapath never waits")
	out := fs.String("w", "", "pcap file to write, or - for standard output (required)")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if *control == "" || *out == "" {
		fs.Usage()
		return &exitError{code: 2, err: errors.New("--control and -w are required")}
	}
	if *rule != "" {
		if _, _, _, err := daemon.ParseRuleRef(*rule); err != nil {
			return &exitError{code: 2, err: err}
		}
	}
	w := stdout
	if *out != "-" {
		f, err := os.Create(*out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	stop := make(chan struct{})
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGPIPE)
	defer signal.Stop(sig)
	go func() {
		if _, ok := <-sig; ok {
			close(stop)
		}
	}()
	return daemon.Capture(*control, daemon.CaptureRequest{Dropped: *dropped, Accepted: *accepted, Rule: *rule,
		Count: *count, Snaplen: *snaplen, RatePerSec: *rate}, w, stop)
}
