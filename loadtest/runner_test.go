package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// arrivals is a trivial server that records when each request arrived,
// after an optional per-request delay (a slow server).
type arrivals struct {
	mu    sync.Mutex
	times []time.Time
	delay time.Duration
	body  []byte
}

func (a *arrivals) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	_, _ = io.Copy(io.Discard, r.Body)
	a.mu.Lock()
	a.times = append(a.times, now)
	a.mu.Unlock()
	if a.delay > 0 {
		time.Sleep(a.delay) // the server under test is slow on purpose
	}
	_, _ = w.Write(a.body)
}

func newArrivals(t *testing.T, delay time.Duration) (*arrivals, string) {
	t.Helper()
	a := &arrivals{delay: delay, body: trivialResponse(1, 50)}
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	return a, strings.TrimPrefix(srv.URL, "http://")
}

// The open loop sends exactly rate x duration measured requests, at the
// scheduled pace: the server sees them spread over the run at 1/rate
// intervals, not in bursts.
func TestOpenLoopPacing(t *testing.T) {
	a, addr := newArrivals(t, 0)
	const rate = 400.0
	res, err := Run(context.Background(), Options{
		Target: TargetTrivial, Addr: addr, Rate: rate, Connections: 4, NoVerify: true,
		Warmup: -1, Duration: time.Second, Workload: Workload{Unique: 10},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 400 || res.Errors != 0 || res.Unsent != 0 {
		t.Fatalf("requests %d, errors %d, unsent %d; want 400, 0, 0 (%v)", res.Requests, res.Errors, res.Unsent, res.ErrorSamples)
	}
	if res.ThroughputRPS != rate {
		t.Errorf("throughput %v req/s, want %v", res.ThroughputRPS, rate)
	}
	a.mu.Lock()
	times := slices.Clone(a.times)
	a.mu.Unlock()
	if len(times) != 400 {
		t.Fatalf("server saw %d requests, want 400", len(times))
	}
	slices.SortFunc(times, func(x, y time.Time) int { return x.Compare(y) })
	span := times[len(times)-1].Sub(times[0])
	// 399 intervals of 2.5 ms: 997.5 ms. A generator that bunched its sends
	// (or ran closed loop) would finish far sooner; a stalled machine may
	// stretch the tail a little.
	if span < 900*time.Millisecond || span > 3*time.Second {
		t.Errorf("requests spread over %v, want about 1s", span)
	}
	// No burst: at 400 req/s a 50 ms window holds about 20 requests. A
	// closed loop would send all 400 within a few milliseconds; allow a
	// stall of a couple of hundred milliseconds on a busy test machine.
	most, j := 0, 0
	for i := range times {
		for times[i].Sub(times[j]) > 50*time.Millisecond {
			j++
		}
		most = max(most, i-j+1)
	}
	if most > 100 {
		t.Errorf("%d of 400 requests arrived within 50 ms: sends are bunched, not paced", most)
	}
	if res.SendLag == nil || res.SendLag.Count != 400 || res.PacerLag == nil || res.PacerLag.Count != 400 {
		t.Errorf("send lag %+v, pacer lag %+v, want 400 samples each", res.SendLag, res.PacerLag)
	}
}

// Coordinated omission: a server that takes 10 ms per request on one
// connection serves 100 req/s. Offered 200 req/s, requests queue, and an
// open loop must charge the queueing to the server: latency from the
// scheduled time grows to hundreds of milliseconds, where a closed loop
// (which only sends when the server is ready) reports about 10 ms.
func TestOpenLoopChargesQueueing(t *testing.T) {
	_, addr := newArrivals(t, 10*time.Millisecond)
	base := Options{Target: TargetTrivial, Addr: addr, Connections: 1, Warmup: -1, Duration: time.Second,
		Drain: 5 * time.Second, Workload: Workload{Unique: 10}}
	closed, err := Run(context.Background(), base)
	if err != nil {
		t.Fatal(err)
	}
	open := base
	open.Rate = 200
	opened, err := Run(context.Background(), open)
	if err != nil {
		t.Fatal(err)
	}
	if opened.Requests != 200 || opened.Unsent != 0 {
		t.Fatalf("open loop: %d requests, %d unsent; want 200, 0", opened.Requests, opened.Unsent)
	}
	// The last of 200 requests scheduled over 1 s is served after about 2 s:
	// it waited about 1 s.
	if opened.Latency.P99 < 300e3 {
		t.Errorf("open loop p99 %v µs: queueing not charged (closed loop p50 %v µs)", opened.Latency.P99, closed.Latency.P50)
	}
	if closed.Latency.P50 > 100e3 || closed.Latency.P50 < 10e3 {
		t.Errorf("closed loop p50 %v µs, want about 10 ms", closed.Latency.P50)
	}
	if opened.ThroughputRPS != 200 {
		t.Errorf("open loop throughput %v, want 200 (requests counted by scheduled time)", opened.ThroughputRPS)
	}
	if closed.ThroughputRPS > 110 {
		t.Errorf("closed loop throughput %v req/s, more than one 10 ms server can serve", closed.ThroughputRPS)
	}
}

// Requests left in the queue past the drain are counted as unsent, not
// silently dropped.
func TestOpenLoopCountsUnsent(t *testing.T) {
	_, addr := newArrivals(t, 20*time.Millisecond)
	res, err := Run(context.Background(), Options{Target: TargetTrivial, Addr: addr, Connections: 1, Rate: 500,
		Warmup: -1, Duration: 500 * time.Millisecond, Drain: 100 * time.Millisecond, Workload: Workload{Unique: 10}})
	if err != nil {
		t.Fatal(err)
	}
	// 250 scheduled; one 20 ms server answers about 30 in 600 ms.
	if res.Unsent == 0 || res.Requests+res.Unsent+res.Errors != 250 {
		t.Errorf("requests %d + unsent %d + errors %d, want 250 with some unsent", res.Requests, res.Unsent, res.Errors)
	}
}

func TestClosedLoopAndProgress(t *testing.T) {
	_, addr := newArrivals(t, 0)
	var progress bytes.Buffer
	res, err := Run(context.Background(), Options{Target: TargetTrivial, Addr: addr, Connections: 4,
		Warmup: 600 * time.Millisecond, Duration: 1200 * time.Millisecond, Progress: &progress,
		ProgressEvery: 250 * time.Millisecond, Workload: Workload{Unique: 10}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests == 0 || res.Errors != 0 || res.Mode != "closed" || res.SendLag != nil {
		t.Fatalf("result %+v", res)
	}
	want := float64(res.Requests) / 1.2
	if d := res.ThroughputRPS - want; d > 1 || d < -1 {
		t.Errorf("throughput %v, want requests/duration = %v", res.ThroughputRPS, want)
	}
	if res.ResponseBytes != res.Requests*int64(len(trivialResponse(1, 50))) {
		t.Errorf("response bytes %d, want %d per request", res.ResponseBytes, len(trivialResponse(1, 50)))
	}
	lines := strings.Split(strings.TrimSpace(progress.String()), "\n")
	if len(lines) < 4 || !strings.Contains(lines[0], "req/s") || !strings.Contains(lines[0], "warmup") ||
		!strings.Contains(progress.String(), " measure ") {
		t.Errorf("progress lines:\n%s", progress.String())
	}
	if res.ClientCPU.Seconds <= 0 {
		t.Errorf("client CPU %+v, want some", res.ClientCPU)
	}
}

func TestRunErrors(t *testing.T) {
	// A server that answers 500: every request is an error, with a sample.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "boom", http.StatusInternalServerError)
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	res, err := Run(context.Background(), Options{Target: TargetTrivial, Addr: addr, Connections: 2, Warmup: -1,
		Duration: 300 * time.Millisecond, NoVerify: true, Workload: Workload{Unique: 10}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors == 0 || res.Requests != 0 || len(res.ErrorSamples) == 0 || res.ErrorSamples[0] != "HTTP 500" {
		t.Errorf("errors %d, requests %d, samples %q", res.Errors, res.Requests, res.ErrorSamples)
	}
	// Verification refuses wrong values before the run.
	_, wrongAddr := newArrivals(t, 0) // answers value 1 everywhere
	_, err = Run(context.Background(), Options{Target: TargetFeastHTTP, Addr: wrongAddr, Warmup: -1, Duration: time.Second})
	if err == nil || !strings.Contains(err.Error(), "verify") {
		t.Errorf("run against wrong values: err = %v, want a verify error", err)
	}
	// Bad options name the flag.
	_, err = Run(context.Background(), Options{Target: "nope", Addr: addr})
	if err == nil || !strings.Contains(err.Error(), "-target") {
		t.Errorf("err = %v, want one naming -target", err)
	}
	_, err = Run(context.Background(), Options{Target: TargetGRPC, Addr: addr, Workload: Workload{Features: 70}})
	if err == nil || !strings.Contains(err.Error(), "-features") {
		t.Errorf("err = %v, want one naming -features", err)
	}
}

// The result file's shape: every documented key, nothing else, and it
// reads back.
func TestResultFileShape(t *testing.T) {
	_, addr := newArrivals(t, 0)
	res, err := Run(context.Background(), Options{Label: "trivial", Target: TargetTrivial, Addr: addr, Rate: 200,
		Connections: 2, Warmup: -1, Duration: 300 * time.Millisecond, Phase: "latency", Rep: 2,
		ServerPIDs: []int{os.Getpid()}, Workload: Workload{Unique: 10}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "sub", "r.json")
	if err := res.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	want := []string{"addr", "client_cpu", "connections", "duration_s", "errors", "host", "label", "latency_us", "mode",
		"offered_rps", "pacer_lag_us", "phase", "rep", "requests", "response_bytes", "send_lag_us", "server_cpu", "server_pids", "started",
		"target", "throughput_rps", "bytes_per_s", "unsent", "warmup_s", "workload"}
	slices.Sort(want)
	var got []string
	for k := range m {
		got = append(got, k)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("keys %v\nwant %v", got, want)
	}
	lat, _ := m["latency_us"].(map[string]any)
	for _, k := range []string{"count", "min", "mean", "p50", "p90", "p99", "p999", "max"} {
		if _, ok := lat[k]; !ok {
			t.Errorf("latency_us lacks %q: %v", k, lat)
		}
	}
	wl, _ := m["workload"].(map[string]any)
	if wl["name"] != "1x50" || wl["service"] != "feature_service_0" {
		t.Errorf("workload %v", wl)
	}
	back, err := ReadResult(path)
	if err != nil {
		t.Fatal(err)
	}
	if back.Requests != 60 || back.Latency != res.Latency || back.Mode != "open" || back.Rep != 2 {
		t.Errorf("read back %+v", back)
	}
	if back.ServerCPU == nil {
		t.Errorf("server CPU missing (pids %v, error %q)", back.ServerPID, back.CPUError)
	}
	// Unknown fields are refused.
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`{"label":"x","surprise":1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadResult(bad); err == nil {
		t.Error("ReadResult accepted an unknown field")
	}
}

func TestParseStatCPU(t *testing.T) {
	stat := "1234 (my (odd) cmd) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 100 1000 10"
	got, err := parseStatCPU(stat)
	if err != nil || got != 3.0 {
		t.Errorf("parseStatCPU = %v, %v; want 3.0 s (300 ticks)", got, err)
	}
	if _, err := parseStatCPU("garbage"); err == nil {
		t.Error("parseStatCPU accepted garbage")
	}
}
