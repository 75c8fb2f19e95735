package main

import (
	"fmt"
	"io"
	"time"
)

// Options configures one run. The zero value (plus Target and Addr) is
// usable: EnsureDefaults fills in every unset field.
type Options struct {
	// Label names the system under test in results and reports, e.g.
	// "featured-grpc" or "feast". The default is Target.
	Label string
	// Target is how requests are sent: one of targets (target.go).
	Target string
	// Addr is the system's host:port, or a comma-separated list of them:
	// the nodes of one system (a featured cluster), over which the
	// connections are spread in turn. Each node is verified before the run.
	Addr string
	// Workload is the lookup shape (or push batch size).
	Workload Workload
	// Rate is the offered load in requests per second. Positive: open loop,
	// requests are scheduled at exact times 1/Rate apart and latency is
	// measured from the scheduled time, so a stalled server is charged for
	// every request it delayed (no coordinated omission). Zero: closed loop,
	// each connection sends its next request when the last one is answered,
	// which finds the maximum throughput.
	Rate float64
	// Connections is the number of connections (one worker goroutine
	// each; for gRPC, concurrent calls over GRPCConns connections). The
	// default is 16.
	Connections int
	// GRPCConns is the number of gRPC client connections the workers share.
	// The default is 2 (at most Connections).
	GRPCConns int
	// Warmup runs the load without recording it before the measured
	// Duration. The default is 2s; negative means none.
	Warmup time.Duration
	// Duration is the measured time. The default is 10s.
	Duration time.Duration
	// Drain bounds, in open loop, how long after the end requests that
	// were scheduled inside the run may still be sent; the rest count as
	// Unsent (the server could not keep up). The default is 2s.
	Drain time.Duration
	// Timeout is the per-request deadline (and the dial timeout). The
	// default is 10s.
	Timeout time.Duration
	// NoVerify skips checking one answer in full before the run.
	NoVerify bool
	// ServerPIDs are processes whose CPU time is measured over the run
	// (from /proc); empty: not measured.
	ServerPIDs []int
	// Progress, when set, receives a progress line every ProgressEvery.
	Progress io.Writer
	// ProgressEvery is the progress interval. The default is 1s.
	ProgressEvery time.Duration
	// Phase and Rep are copied into the result for reports ("max",
	// "latency", "sweep"; repetition number).
	Phase string
	Rep   int
}

// EnsureDefaults sets every zero field to its default.
func (o *Options) EnsureDefaults() {
	o.Workload.EnsureDefaults()
	if o.Label == "" {
		o.Label = o.Target
	}
	if o.Connections == 0 {
		o.Connections = 16
	}
	if o.GRPCConns == 0 {
		o.GRPCConns = min(2, o.Connections)
	}
	switch {
	case o.Warmup == 0:
		o.Warmup = 2 * time.Second
	case o.Warmup < 0:
		o.Warmup = 0
	}
	if o.Duration == 0 {
		o.Duration = 10 * time.Second
	}
	if o.Drain == 0 {
		o.Drain = 2 * time.Second
	}
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	if o.ProgressEvery == 0 {
		o.ProgressEvery = time.Second
	}
}

// Validate reports the first field out of range, by its flag name.
func (o *Options) Validate() error {
	switch {
	case len(splitAddrs(o.Addr)) == 0:
		return fmt.Errorf("loadtest: -addr: missing")
	case len(splitAddrs(o.Addr)) > o.Connections:
		return fmt.Errorf("loadtest: -addr: %d addresses for %d connections; want at least one connection each", len(splitAddrs(o.Addr)), o.Connections)
	case o.Rate < 0:
		return fmt.Errorf("loadtest: -rate: %g is negative", o.Rate)
	case o.Rate > 1e6:
		return fmt.Errorf("loadtest: -rate: %g is over 1e6 req/s", o.Rate)
	case o.Connections < 1 || o.Connections > 4096:
		return fmt.Errorf("loadtest: -conns: %d is not in [1, 4096]", o.Connections)
	case o.GRPCConns < 1 || o.GRPCConns > o.Connections:
		return fmt.Errorf("loadtest: -grpc-conns: %d is not in [1, -conns]", o.GRPCConns)
	case o.Duration <= 0:
		return fmt.Errorf("loadtest: -duration: %v is not positive", o.Duration)
	case o.Drain < 0:
		return fmt.Errorf("loadtest: -drain: %v is negative", o.Drain)
	case o.Timeout <= 0:
		return fmt.Errorf("loadtest: -timeout: %v is not positive", o.Timeout)
	case o.ProgressEvery <= 0:
		return fmt.Errorf("loadtest: -progress: %v is not positive", o.ProgressEvery)
	}
	for _, t := range targets {
		if o.Target == t {
			return o.Workload.Validate()
		}
	}
	return fmt.Errorf("loadtest: -target: %q is not one of %v", o.Target, targets)
}

// Mode is "open" for a positive Rate, else "closed".
func (o *Options) Mode() string {
	if o.Rate > 0 {
		return "open"
	}
	return "closed"
}
