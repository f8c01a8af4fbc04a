package daemon

import (
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/sluice-project/sluice/engine"
	"github.com/sluice-project/sluice/packet"
)

// CaptureRequest selects frames for `sluice capture`.
type CaptureRequest struct {
	Dropped  bool   `json:"dropped,omitempty"`  // frames sluice dropped (rules, hotdrops, malformed)
	Accepted bool   `json:"accepted,omitempty"` // frames sluice re-injected
	Rule     string `json:"rule,omitempty"`     // [TABLE:]CHAIN:N, the rule whose ACCEPT or DROP decided
	Count    int    `json:"count,omitempty"`    // stop after this many frames (0: until the client goes)
	Snaplen  int    `json:"snaplen,omitempty"`  // bytes kept per frame (default 262144)
	// RatePerSec bounds how many frames per second are copied, so a
	// capture during a flood never slows the datapath (default 10000).
	RatePerSec int `json:"rate_per_sec,omitempty"`
}

// ParseRuleRef parses [TABLE:]CHAIN:N.
func ParseRuleRef(s string) (table, chain string, n int, err error) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return "", "", 0, fmt.Errorf("rule %q: want [TABLE:]CHAIN:N", s)
	}
	n, err = strconv.Atoi(parts[len(parts)-1])
	if err != nil || n < 1 {
		return "", "", 0, fmt.Errorf("rule %q: N must be a rule position (1, 2, ...)", s)
	}
	if len(parts) == 3 {
		return parts[0], parts[1], n, nil
	}
	return "", parts[0], n, nil
}

// capturedFrame is one copied frame with its time.
type capturedFrame struct {
	data    []byte
	origLen int
	ts      int64
}

// captureSession is an active capture. Workers offer frames to it; it
// copies at most RatePerSec per second into a bounded channel and drops
// the rest, counting them, so the datapath never waits on a slow client.
type captureSession struct {
	req        CaptureRequest
	ruleTable  string
	ruleChain  string
	ruleN      int
	mu         sync.Mutex
	tokens     int
	last       int64
	ch         chan capturedFrame
	missed     uint64
	wallOffset int64 // adds to the monotonic packet clock to give wall time
}

func newCaptureSession(req CaptureRequest, wallOffset int64) (*captureSession, error) {
	if !req.Dropped && !req.Accepted && req.Rule == "" {
		req.Dropped, req.Accepted = true, true
	}
	if req.Snaplen <= 0 || req.Snaplen > 262144 {
		req.Snaplen = 262144
	}
	if req.RatePerSec <= 0 {
		req.RatePerSec = 10000
	}
	c := &captureSession{req: req, ch: make(chan capturedFrame, 1024), wallOffset: wallOffset}
	if req.Rule != "" {
		var err error
		if c.ruleTable, c.ruleChain, c.ruleN, err = ParseRuleRef(req.Rule); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// offer is called by a worker after judging a frame: v is its verdict,
// rule the deciding rule's index in pr (Worker.LastRuleIndex) for fam.
func (c *captureSession) offer(frame []byte, v engine.Verdict, pr *engine.Program, fam packet.Family, rule int32, now int64) {
	dropped := v == engine.Drop || v == engine.Hotdrop || v == engine.Malformed
	want := (dropped && c.req.Dropped) || (!dropped && c.req.Accepted)
	if c.ruleChain != "" {
		t, ch, n, ok := pr.RuleName(fam, rule)
		want = ok && ch == c.ruleChain && n == c.ruleN && (c.ruleTable == "" || t == c.ruleTable)
	}
	if !want {
		return
	}
	if !c.take(now) {
		return
	}
	n := min(len(frame), c.req.Snaplen)
	c.send(capturedFrame{data: append([]byte(nil), frame[:n]...), origLen: len(frame), ts: now + c.wallOffset})
}

// take spends one of the second's RatePerSec tokens, or counts a miss.
func (c *captureSession) take(now int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last == 0 || now-c.last >= 1e9 {
		c.tokens, c.last = c.req.RatePerSec, now
	}
	if c.tokens > 0 {
		c.tokens--
		return true
	}
	c.missed++
	return false
}

// send queues a frame for the client without ever waiting.
func (c *captureSession) send(cf capturedFrame) {
	select {
	case c.ch <- cf:
	default:
		c.mu.Lock()
		c.missed++
		c.mu.Unlock()
	}
}

// linkType is what captured frames are: the daemon filters Ethernet.
const linkType = packet.LinkEthernet
