package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// Run executes one run: build the target's requests, dial, verify one
// answer, warm up, measure, drain, and summarize. It returns when the run
// is over or ctx is cancelled (then with what was measured so far and
// ctx's error).
func Run(ctx context.Context, o Options) (*Result, error) {
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	addrs := splitAddrs(o.Addr)
	var t target
	var err error
	if len(addrs) > 1 {
		t, err = newSpreadTarget(o.Target, addrs, o.Workload, o.Timeout, o.GRPCConns, time.Now())
	} else {
		t, err = newTarget(o.Target, o.Addr, o.Workload, o.Timeout, o.GRPCConns, time.Now())
	}
	if err != nil {
		return nil, err
	}
	defer t.close()

	conns := make([]conn, o.Connections)
	defer func() {
		for _, c := range conns {
			if c != nil {
				_ = c.close()
			}
		}
	}()
	for i := range conns {
		if conns[i], err = t.dial(); err != nil {
			return nil, fmt.Errorf("loadtest: dial %s: %w", o.Addr, err)
		}
	}
	if !o.NoVerify {
		// The first len(addrs) connections reach each node once (spreadTarget):
		// every node must answer the same request with the right values.
		for i, a := range addrs {
			if err := conns[i].verify(0); err != nil {
				return nil, fmt.Errorf("loadtest: %s at %s: first answer: %w", o.Target, a, err)
			}
		}
	}

	if o.Rate > 0 {
		// The pacer holds a thread (and, while it sleeps in the kernel, a P)
		// of its own; give the workers the machine's cores besides it.
		prev := runtime.GOMAXPROCS(runtime.NumCPU() + 1)
		defer runtime.GOMAXPROCS(prev)
	}

	r := &run{o: o, t: t, workers: make([]*worker, o.Connections), pacerLag: newHist()}
	for i := range r.workers {
		r.workers[i] = newWorker()
	}
	r.start = time.Now().Add(5 * time.Millisecond)
	r.mstart = r.start.Add(o.Warmup)
	r.end = r.mstart.Add(o.Duration)
	res := r.newResult()

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var ch chan token
	if o.Rate > 0 {
		ch = make(chan token, 1<<16)
		wg.Go(func() { r.pace(runCtx, ch) })
	}
	var workersWG sync.WaitGroup
	for i := range r.workers {
		workersWG.Go(func() {
			if ch != nil {
				r.openWorker(runCtx, r.workers[i], &conns[i], ch)
			} else {
				r.closedWorker(runCtx, r.workers[i], &conns[i])
			}
		})
	}
	// The CPU meter snapshots at the measurement's start and end; the
	// progress printer ticks until the workers are done.
	done := make(chan struct{})
	cpu := make(chan cpuSpan, 1)
	wg.Go(func() { cpu <- r.meterCPU(runCtx, done) })
	if o.Progress != nil {
		wg.Go(func() { r.progress(done) })
	}
	workersWG.Wait()
	close(done)
	cancel()
	wg.Wait()
	r.finish(res, <-cpu)
	return res, ctx.Err()
}

// token is one scheduled request of the open loop.
type token struct {
	at time.Time
	i  int
}

type run struct {
	o        Options
	t        target
	workers  []*worker
	next     atomic.Int64   // closed loop: next request index
	pacerLag *hdr.Histogram // owned by the pacer until Run's end

	start, mstart, end time.Time
}

// worker is one connection's goroutine state. mu guards everything; the
// worker takes it once per request and the progress printer once a second.
type worker struct {
	mu sync.Mutex
	// measured part of the run
	hist, lag                 *hdr.Histogram
	ok, errs, unsent, n, evts int64
	errSamples                []string
	// since the last progress line (all phases)
	iv                 *hdr.Histogram
	ivOK, ivErrs, ivN  int64
	ivEvents, ivUnsent int64
}

func newWorker() *worker {
	return &worker{hist: newHist(), lag: newHist(), iv: newHist()}
}

const maxErrSamples = 5

func (w *worker) add(measured bool, lat, lag time.Duration, n, events int, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.ivErrs++
		if measured {
			w.errs++
			w.addSampleLocked(err)
		}
		return
	}
	record(w.iv, lat)
	w.ivOK++
	w.ivN += int64(n)
	w.ivEvents += int64(events)
	if measured {
		record(w.hist, lat)
		if lag >= 0 {
			record(w.lag, lag)
		}
		w.ok++
		w.n += int64(n)
		w.evts += int64(events)
	}
}

func (w *worker) addSampleLocked(err error) {
	msg := err.Error()
	for _, s := range w.errSamples {
		if s == msg {
			return
		}
	}
	if len(w.errSamples) < maxErrSamples {
		w.errSamples = append(w.errSamples, msg)
	}
}

func (w *worker) addUnsent(measured bool) {
	w.mu.Lock()
	w.ivUnsent++
	if measured {
		w.unsent++
	}
	w.mu.Unlock()
}

// pace sends a token at each scheduled time from start (the warm-up
// included) until end, then closes ch. Times are computed from the token's
// index, never from the previous wake-up, so lateness never accumulates;
// when the workers fall behind, tokens wait in ch (and their latency, counted
// from the scheduled time, includes the wait).
func (r *run) pace(ctx context.Context, ch chan<- token) {
	lockPacer()
	defer close(ch)
	interval := float64(time.Second) / r.o.Rate
	for k := 0; ; k++ {
		at := r.start.Add(time.Duration(math.Round(float64(k) * interval)))
		if !at.Before(r.end) {
			return
		}
		sleepUntil(at)
		if !at.Before(r.mstart) {
			record(r.pacerLag, time.Since(at))
		}
		select {
		case ch <- token{at: at, i: k}:
		case <-ctx.Done():
			return
		}
	}
}

func (r *run) openWorker(ctx context.Context, w *worker, c *conn, ch <-chan token) {
	deadline := r.end.Add(r.o.Drain)
	for tok := range ch {
		measured := !tok.at.Before(r.mstart)
		sent := time.Now()
		if ctx.Err() != nil || sent.After(deadline) {
			w.addUnsent(measured)
			continue
		}
		if *c == nil && !r.redial(w, c, measured) {
			continue
		}
		n, events, err := (*c).do(tok.i)
		doneAt := time.Now()
		w.add(measured, doneAt.Sub(tok.at), sent.Sub(tok.at), n, events, realErr(err))
		if err != nil {
			r.drop(c)
		}
	}
}

func (r *run) closedWorker(ctx context.Context, w *worker, c *conn) {
	time.Sleep(time.Until(r.start)) // all workers start together
	for ctx.Err() == nil {
		start := time.Now()
		if !start.Before(r.end) {
			return
		}
		measured := !start.Before(r.mstart)
		if *c == nil && !r.redial(w, c, measured) {
			continue
		}
		i := int(r.next.Add(1) - 1)
		n, events, err := (*c).do(i)
		w.add(measured, time.Since(start), -1, n, events, realErr(err))
		if err != nil {
			r.drop(c)
		}
	}
}

// realErr drops errConnClosed: the answer was complete, only the
// connection must be replaced.
func realErr(err error) error {
	if errors.Is(err, errConnClosed) {
		return nil
	}
	return err
}

// drop closes a connection after an error (its stream state is unknown);
// the next request redials.
func (r *run) drop(c *conn) {
	_ = (*c).close()
	*c = nil
}

// redial opens a new connection, counting a failure as an error of the
// request that needed it (and pausing briefly, so that a server that is down
// is not hammered with dials).
func (r *run) redial(w *worker, c *conn, measured bool) bool {
	nc, err := r.t.dial()
	if err != nil {
		w.add(measured, 0, -1, 0, 0, fmt.Errorf("dial: %w", err))
		time.Sleep(50 * time.Millisecond)
		return false
	}
	*c = nc
	return true
}

type cpuSpan struct {
	self, server float64
	serverErr    error
	wall         time.Duration
}

// meterCPU reads this process's and the servers' CPU time at mstart and at
// end (or when the run stops early).
func (r *run) meterCPU(ctx context.Context, done <-chan struct{}) cpuSpan {
	wait := func(t time.Time) bool {
		tm := time.NewTimer(time.Until(t))
		defer tm.Stop()
		select {
		case <-tm.C:
			return true
		case <-done:
			return false
		case <-ctx.Done():
			return false
		}
	}
	if !wait(r.mstart) {
		return cpuSpan{}
	}
	t0, s0 := time.Now(), selfCPU()
	var p0 float64
	var perr error
	if len(r.o.ServerPIDs) > 0 {
		p0, perr = procCPU(r.o.ServerPIDs)
	}
	wait(r.end)
	span := cpuSpan{self: selfCPU() - s0, wall: time.Since(t0)}
	if len(r.o.ServerPIDs) > 0 && perr == nil {
		var p1 float64
		p1, perr = procCPU(r.o.ServerPIDs)
		span.server = p1 - p0
	}
	span.serverErr = perr
	return span
}

// progress prints one line per interval: the phase, completed requests per
// second, latency quantiles of the interval, errors and payload rate.
func (r *run) progress(done <-chan struct{}) {
	tick := time.NewTicker(r.o.ProgressEvery)
	defer tick.Stop()
	last := time.Now()
	agg := newHist()
	for {
		select {
		case <-done:
			return
		case now := <-tick.C:
			agg.Reset()
			var ok, errs, n, events, unsent int64
			for _, w := range r.workers {
				w.mu.Lock()
				agg.Merge(w.iv)
				w.iv.Reset()
				ok, errs, n, events, unsent = ok+w.ivOK, errs+w.ivErrs, n+w.ivN, events+w.ivEvents, unsent+w.ivUnsent
				w.ivOK, w.ivErrs, w.ivN, w.ivEvents, w.ivUnsent = 0, 0, 0, 0, 0
				w.mu.Unlock()
			}
			secs := now.Sub(last).Seconds()
			last = now
			phase := "measure"
			switch {
			case now.Before(r.mstart):
				phase = "warmup"
			case now.After(r.end):
				phase = "drain"
			}
			l := summarize(agg)
			line := fmt.Sprintf("%6.1fs %-7s %8.0f req/s  p50 %s  p99 %s  max %s  errors %d  %.1f MB/s",
				now.Sub(r.start).Seconds(), phase, float64(ok)/secs, ms(l.P50), ms(l.P99), ms(l.Max), errs, float64(n)/secs/1e6)
			if events > 0 {
				line += fmt.Sprintf("  %.0f events/s", float64(events)/secs)
			}
			if unsent > 0 {
				line += fmt.Sprintf("  unsent %d", unsent)
			}
			fmt.Fprintln(r.o.Progress, line)
		}
	}
}

func ms(usec float64) string { return fmt.Sprintf("%.3fms", usec/1e3) }
