package daemon

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/sluice-project/sluice/pcapio"
)

// Controlled is what the control socket drives; *Daemon is one.
type Controlled interface {
	Stats() *Stats
	Reload() error
	StartCapture(CaptureRequest) (*captureSession, error)
	EndCapture(*captureSession)
}

// request is one control command, a JSON line:
// {"cmd":"stats"}, {"cmd":"reload"} or {"cmd":"capture","capture":{...}}.
type request struct {
	Cmd     string          `json:"cmd"`
	Capture *CaptureRequest `json:"capture,omitempty"`
}

// reloadReply answers a reload.
type reloadReply struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// Control serves a daemon on a unix socket. Only root can reach it: the
// socket is mode 0600 in a 0700 directory.
type Control struct {
	ln   net.Listener
	path string
	done chan struct{}
}

// ServeControl listens on path (mode 0600, its directory created 0700)
// until Close. A stale socket file left by a dead daemon is replaced; a
// live one is an error.
func ServeControl(path string, d Controlled) (*Control, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("control: %s is served by a running daemon", path)
	}
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control: %w", err)
	}
	c := &Control{ln: ln, path: path, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				time.Sleep(10 * time.Millisecond)
				continue
			}
			go serveConn(conn, d)
		}
	}()
	return c, nil
}

func serveConn(conn net.Conn, d Controlled) {
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(conn)
	var req request
	if err := json.NewDecoder(br).Decode(&req); err != nil {
		return
	}
	conn.SetReadDeadline(time.Time{})
	switch req.Cmd {
	case "stats":
		conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		json.NewEncoder(conn).Encode(d.Stats())
	case "reload":
		var r reloadReply
		if err := d.Reload(); err != nil {
			r.Error = err.Error()
		} else {
			r.OK = true
		}
		conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		json.NewEncoder(conn).Encode(r)
	case "capture":
		if req.Capture == nil {
			req.Capture = &CaptureRequest{}
		}
		streamCapture(conn, br, d, *req.Capture)
	}
}

// streamCapture writes a pcap stream of the selected frames until Count
// frames were sent or the client goes away. An error before the stream
// starts is sent as a JSON line instead of the pcap header.
func streamCapture(conn net.Conn, br *bufio.Reader, d Controlled, req CaptureRequest) {
	c, err := d.StartCapture(req)
	if err != nil {
		json.NewEncoder(conn).Encode(reloadReply{Error: err.Error()})
		return
	}
	defer d.EndCapture(c)
	gone := make(chan struct{})
	go func() { io.Copy(io.Discard, br); close(gone) }()
	w, err := pcapio.NewWriter(conn, linkType, uint32(c.req.Snaplen))
	if err != nil {
		return
	}
	flush := time.NewTicker(200 * time.Millisecond)
	defer flush.Stop()
	sent := 0
	for c.req.Count == 0 || sent < c.req.Count {
		select {
		case f := <-c.ch:
			if w.Write(f.data, f.ts, f.origLen) != nil {
				return
			}
			sent++
		case <-flush.C:
			if w.Flush() != nil {
				return
			}
		case <-gone:
			return
		}
	}
	w.Flush()
}

// Close stops serving and removes the socket file.
func (c *Control) Close() error {
	err := c.ln.Close()
	<-c.done
	os.Remove(c.path)
	return err
}

func dialControl(path string, req request) (net.Conn, error) {
	conn, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("control: %w (is sluice run serving %s?)", err, path)
	}
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		conn.Close()
		return nil, fmt.Errorf("control: %w", err)
	}
	return conn, nil
}

// ReadControl fetches Stats from a daemon's control socket.
func ReadControl(path string) (*Stats, error) {
	conn, err := dialControl(path, request{Cmd: "stats"})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	var s Stats
	if err := json.NewDecoder(conn).Decode(&s); err != nil {
		return nil, fmt.Errorf("control: read %s: %w", path, err)
	}
	return &s, nil
}

// RequestReload asks a daemon to reload; the error is the daemon's (with
// file:line:col for a bad rules file), and then its ruleset is unchanged.
func RequestReload(path string) error {
	conn, err := dialControl(path, request{Cmd: "reload"})
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Minute))
	var r reloadReply
	if err := json.NewDecoder(conn).Decode(&r); err != nil {
		return fmt.Errorf("control: read %s: %w", path, err)
	}
	if !r.OK {
		return errors.New(r.Error)
	}
	return nil
}

// Capture asks a daemon for a pcap stream and copies it to w until the
// daemon ends it (Count reached) or stop is closed.
func Capture(path string, req CaptureRequest, w io.Writer, stop <-chan struct{}) error {
	conn, err := dialControl(path, request{Cmd: "capture", Capture: &req})
	if err != nil {
		return err
	}
	defer conn.Close()
	go func() {
		<-stop
		conn.Close()
	}()
	br := bufio.NewReader(conn)
	if b, err := br.Peek(1); err == nil && b[0] == '{' {
		var r reloadReply
		json.NewDecoder(br).Decode(&r)
		return errors.New(r.Error)
	}
	_, err = io.Copy(w, br)
	select {
	case <-stop:
		return nil
	default:
	}
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// StatsFunc serves counters only: reload and capture are refused.
type StatsFunc func() *Stats

func (f StatsFunc) Stats() *Stats { return f() }

func (StatsFunc) Reload() error { return errors.New("control: this server does not reload") }

func (StatsFunc) StartCapture(CaptureRequest) (*captureSession, error) {
	return nil, errors.New("control: this server does not capture")
}

func (StatsFunc) EndCapture(*captureSession) {}
