package auth

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// limitConfig is an entry's rate, burst and concurrency.
type limitConfig struct {
	rate        float64
	burst       int
	concurrency int
}

// normal fills the default burst: the rate rounded up, at least 1.
func (c limitConfig) normal() limitConfig {
	if c.rate > 0 && c.burst == 0 {
		c.burst = max(1, int(math.Ceil(c.rate)))
	}
	return c
}

// limits is one caller's token bucket and in-flight count. A bucket of our
// own: golang.org/x/time/rate is not among the module's dependencies, and
// this needs only Allow.
type limits struct {
	cfg      limitConfig
	now      func() time.Time
	inFlight atomic.Int64
	mu       struct {
		sync.Mutex
		tokens float64
		last   time.Time
	}
}

func newLimits(c limitConfig, now func() time.Time) *limits {
	l := &limits{cfg: c.normal(), now: now}
	l.mu.tokens = float64(l.cfg.burst)
	l.mu.last = now()
	return l
}

func (l *limits) acquire(name string) (func(), time.Duration, error) {
	if l.cfg.rate > 0 {
		if wait := l.take(); wait > 0 {
			return nil, wait, fmt.Errorf("%w: token %q is over its rate of %g requests/s (burst %d)", ErrRateLimited, name, l.cfg.rate, l.cfg.burst)
		}
	}
	if l.cfg.concurrency > 0 {
		if l.inFlight.Add(1) > int64(l.cfg.concurrency) {
			l.inFlight.Add(-1)
			return nil, time.Second, fmt.Errorf("%w: token %q has %d requests in flight, its concurrency limit", ErrRateLimited, name, l.cfg.concurrency)
		}
		return func() { l.inFlight.Add(-1) }, 0, nil
	}
	return func() {}, 0, nil
}

// take takes one token from the bucket, returning 0, or how long until one
// is there.
func (l *limits) take() time.Duration {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if el := now.Sub(l.mu.last); el > 0 {
		l.mu.tokens = min(float64(l.cfg.burst), l.mu.tokens+el.Seconds()*l.cfg.rate)
		l.mu.last = now
	}
	if l.mu.tokens >= 1 {
		l.mu.tokens--
		return 0
	}
	return time.Duration((1 - l.mu.tokens) / l.cfg.rate * float64(time.Second))
}
