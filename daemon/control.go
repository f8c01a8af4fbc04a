package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Control serves Stats as JSON on a unix socket: each connection receives
// one JSON document, then the server closes it.
type Control struct {
	ln   net.Listener
	path string
	done chan struct{}
}

// ServeControl listens on path (mode 0600, its directory created 0700)
// and serves stats() to every connection until Close. A stale socket
// file left by a dead daemon is replaced; a live one is an error.
func ServeControl(path string, stats func() *Stats) (*Control, error) {
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
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			json.NewEncoder(conn).Encode(stats())
			conn.Close()
		}
	}()
	return c, nil
}

// Close stops serving and removes the socket file.
func (c *Control) Close() error {
	err := c.ln.Close()
	<-c.done
	os.Remove(c.path)
	return err
}

// ReadControl fetches Stats from a daemon's control socket.
func ReadControl(path string) (*Stats, error) {
	conn, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("control: %w (is sluice run serving %s?)", err, path)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	var s Stats
	if err := json.NewDecoder(conn).Decode(&s); err != nil {
		return nil, fmt.Errorf("control: read %s: %w", path, err)
	}
	return &s, nil
}
