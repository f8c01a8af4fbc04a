package testnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"
)

// HTTPServer is a small HTTP server listening inside a namespace: the
// legitimate service a flood tries to take down.
type HTTPServer struct {
	Addr netip.AddrPort
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

// ServeHTTP starts an HTTP server on addr inside ns. It answers every
// request with a short body.
func ServeHTTP(ns *NS, addr netip.AddrPort) (*HTTPServer, error) {
	var ln net.Listener
	if err := ns.Do(func() error {
		var err error
		ln, err = net.Listen("tcp4", addr.String())
		return err
	}); err != nil {
		return nil, fmt.Errorf("testnet: listen on %v in %s: %w", addr, ns.Name, err)
	}
	body := []byte("sluice test service: ok\n")
	s := &HTTPServer{
		Addr: addr,
		ln:   ln,
		done: make(chan struct{}),
		srv: &http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", strconv.Itoa(len(body)))
				w.Write(body)
			}),
			ReadHeaderTimeout: 5 * time.Second,
			ErrorLog:          nil,
		},
	}
	go func() {
		defer close(s.done)
		s.srv.Serve(ln)
	}()
	return s, nil
}

// Close stops the server.
func (s *HTTPServer) Close() error {
	err := s.srv.Close()
	<-s.done
	return err
}

// ClientOptions configures a legitimate client.
type ClientOptions struct {
	// URL to GET, e.g. http://198.51.100.1/.
	URL string
	// Timeout of one request, connection included (default 1s).
	Timeout time.Duration
	// Interval between the starts of one worker's requests (default
	// 20ms); a request that takes longer delays the next.
	Interval time.Duration
	// Workers issuing requests concurrently (default 2).
	Workers int
	// MaxRequests and MaxDuration bound the client (defaults 1e6 and 1
	// minute); it stops at the first reached, or at Stop.
	MaxRequests uint64
	MaxDuration time.Duration
	// KeepAlive reuses connections; by default every request opens a
	// new one, so the TCP handshake is measured under attack too.
	KeepAlive bool
}

// Result is one request's outcome.
type Result struct {
	At      time.Time
	OK      bool
	Latency time.Duration
}

// Client issues requests from a namespace and records every outcome.
type Client struct {
	mu      sync.Mutex
	results []Result
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// StartClient starts a client in ns. Its sockets are created inside ns.
func StartClient(ns *NS, opts ClientOptions) (*Client, error) {
	if opts.URL == "" {
		return nil, errors.New("testnet: client without URL")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = time.Second
	}
	if opts.Interval <= 0 {
		opts.Interval = 20 * time.Millisecond
	}
	if opts.Workers <= 0 {
		opts.Workers = 2
	}
	if opts.MaxRequests == 0 {
		opts.MaxRequests = 1_000_000
	}
	if opts.MaxDuration <= 0 {
		opts.MaxDuration = time.Minute
	}
	dialer := &net.Dialer{Timeout: opts.Timeout}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := ns.Do(func() error {
				var err error
				c, err = dialer.DialContext(ctx, network, addr)
				return err
			})
			return c, err
		},
		DisableKeepAlives: !opts.KeepAlive,
		Proxy:             nil,
	}
	hc := &http.Client{Transport: tr, Timeout: opts.Timeout}
	ctx, cancel := context.WithTimeout(context.Background(), opts.MaxDuration)
	c := &Client{cancel: cancel}
	var issued sync.Mutex
	var n uint64
	take := func() bool {
		issued.Lock()
		defer issued.Unlock()
		if n >= opts.MaxRequests {
			return false
		}
		n++
		return true
	}
	for w := 0; w < opts.Workers; w++ {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			defer tr.CloseIdleConnections()
			// Spread the workers over the interval.
			next := time.Now().Add(opts.Interval * time.Duration(w) / time.Duration(opts.Workers))
			for {
				if d := time.Until(next); d > 0 {
					select {
					case <-ctx.Done():
						return
					case <-time.After(d):
					}
				}
				if ctx.Err() != nil || !take() {
					return
				}
				next = next.Add(opts.Interval)
				if now := time.Now(); next.Before(now) {
					next = now
				}
				start := time.Now()
				ok := get(ctx, hc, opts.URL)
				if ctx.Err() != nil && !ok {
					return // stopped mid-request: not a failure of the service
				}
				c.mu.Lock()
				c.results = append(c.results, Result{At: start, OK: ok, Latency: time.Since(start)})
				c.mu.Unlock()
			}
		}()
	}
	return c, nil
}

func get(ctx context.Context, hc *http.Client, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return err == nil && resp.StatusCode == http.StatusOK
}

// Mark returns a position in the results, for StatsSince.
func (c *Client) Mark() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.results)
}

// StatsSince summarizes the results recorded after mark.
func (c *Client) StatsSince(mark int) ClientStats {
	c.mu.Lock()
	rs := slices.Clone(c.results[min(mark, len(c.results)):])
	c.mu.Unlock()
	return Summarize(rs)
}

// Stats summarizes every result so far.
func (c *Client) Stats() ClientStats { return c.StatsSince(0) }

// Stop stops the client, waits for its requests to end and returns its
// statistics.
func (c *Client) Stop() ClientStats {
	c.cancel()
	c.wg.Wait()
	return c.Stats()
}

// ClientStats summarize requests. Latency percentiles are over
// successful requests only; a failed request counts against the success
// rate.
type ClientStats struct {
	Requests  int           `json:"requests"`
	Succeeded int           `json:"succeeded"`
	P50       time.Duration `json:"p50_ns"`
	P99       time.Duration `json:"p99_ns"`
	Max       time.Duration `json:"max_ns"`
}

// SuccessRate is Succeeded/Requests, or 1 with no requests.
func (s ClientStats) SuccessRate() float64 {
	if s.Requests == 0 {
		return 1
	}
	return float64(s.Succeeded) / float64(s.Requests)
}

// Summarize computes statistics over results.
func Summarize(rs []Result) ClientStats {
	st := ClientStats{Requests: len(rs)}
	var lat []time.Duration
	for _, r := range rs {
		if r.OK {
			st.Succeeded++
			lat = append(lat, r.Latency)
		}
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		st.P50 = Percentile(lat, 50)
		st.P99 = Percentile(lat, 99)
		st.Max = lat[len(lat)-1]
	}
	return st
}

// Percentile returns the p-th percentile (nearest rank) of sorted.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p/100*float64(len(sorted))+0.999999) - 1
	return sorted[max(0, min(rank, len(sorted)-1))]
}
