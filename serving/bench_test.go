package serving_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/featured-dev/featured/aggregate"
	featuredv1 "github.com/featured-dev/featured/api/featured/v1"
	"github.com/featured-dev/featured/internal/telemetry"
	"github.com/featured-dev/featured/serving"
)

// The benchmark workload follows feast-benchmarks: an int64 join key
// "entity", views feature_view_0..4 of 10 int64 features each
// (feature_0..feature_49), and batches of 1 x 10 (one view), 1 x 50 (five
// views) and 100 x 50 features. Features are `last` of an int64 field, like
// Feast's materialized latest values, so the numbers measure serving, not
// window arithmetic (featurestore and aggregate have their own benchmarks).

const benchEntities = 100

func benchDefinitions() string {
	var b strings.Builder
	b.WriteString("entities:\n  - {name: entity, join_key: entity, type: int64}\n")
	b.WriteString("sources:\n  - name: bench\n    kind: push\n    entity_key: entity\n    event_time: ts\n    fields: {")
	for i := 0; i < 50; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "f%d: int64", i)
	}
	b.WriteString("}\nfeature_views:\n")
	for v := 0; v < 5; v++ {
		fmt.Fprintf(&b, "  - name: feature_view_%d\n    entity: entity\n    source: bench\n    ttl: 1d\n    features:\n", v)
		for j := 0; j < 10; j++ {
			f := v*10 + j
			fmt.Fprintf(&b, "      - {name: feature_%d, aggregation: last, field: f%d}\n", f, f)
		}
	}
	return b.String()
}

func newBenchHarness(b *testing.B) *harness {
	b.Helper()
	return newBenchHarnessOpts(b, serving.Options{})
}

func newBenchHarnessOpts(b *testing.B, opts serving.Options) *harness {
	b.Helper()
	h := newHarness(b, opts)
	h.apply(benchDefinitions())
	events := make([]map[string]aggregate.Value, benchEntities)
	for e := range events {
		m := map[string]aggregate.Value{
			"entity": {Kind: aggregate.KindInt64, I: int64(e)},
			"ts":     {Kind: aggregate.KindInt64, I: nowMillis - minute},
		}
		for f := 0; f < 50; f++ {
			m[fmt.Sprintf("f%d", f)] = aggregate.Value{Kind: aggregate.KindInt64, I: int64(e*1000 + f)}
		}
		events[e] = m
	}
	resp, err := h.ingest.Push(context.Background(), pushRequest(events))
	if err != nil || resp.GetAccepted() != benchEntities {
		b.Fatalf("push: %v %v", resp, err)
	}
	return h
}

func pushRequest(events []map[string]aggregate.Value) *featuredv1.PushRequest {
	req := &featuredv1.PushRequest{Source: "bench"}
	for _, ev := range events {
		pe := &featuredv1.Event{Fields: map[string]*featuredv1.Value{}}
		for k, v := range ev {
			pe.Fields[k] = &featuredv1.Value{Kind: &featuredv1.Value_Int64Val{Int64Val: v.I}}
		}
		req.Events = append(req.Events, pe)
	}
	return req
}

type benchSize struct {
	name               string
	entities, features int
}

var benchSizes = []benchSize{{"1x10", 1, 10}, {"1x50", 1, 50}, {"100x50", 100, 50}}

func benchRefs(n int) []string {
	refs := make([]string, n)
	for i := range refs {
		refs[i] = fmt.Sprintf("feature_view_%d:feature_%d", i/10, i)
	}
	return refs
}

func benchKeys(n int) []int64 {
	keys := make([]int64, n)
	for i := range keys {
		keys[i] = int64(i)
	}
	return keys
}

func benchBody(b *testing.B, sz benchSize) []byte {
	b.Helper()
	body, err := json.Marshal(map[string]any{"features": benchRefs(sz.features), "entities": map[string]any{"entity": benchKeys(sz.entities)}})
	if err != nil {
		b.Fatal(err)
	}
	return body
}

// discardWriter is a ResponseWriter that keeps nothing but the byte count:
// the handler benchmarks measure the handler, not a recorder.
type discardWriter struct {
	h      http.Header
	status int
	n      int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(status int)      { w.status = status }
func (w *discardWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }

// nopBody is a reusable request body.
type nopBody struct{ bytes.Reader }

func (*nopBody) Close() error { return nil }

func benchHandler(b *testing.B, path string) {
	benchHandlerWith(b, path, serving.Options{})
}

func benchHandlerWith(b *testing.B, path string, opts serving.Options) {
	h := newBenchHarnessOpts(b, opts)
	handler := h.srv.HTTPHandler()
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			body := benchBody(b, sz)
			req := httptest.NewRequest("POST", path, nil)
			req.Header.Set("Content-Type", "application/json")
			rb := &nopBody{}
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			b.SetBytes(int64(sz.entities * sz.features))
			for b.Loop() {
				rb.Reset(body)
				req.Body = rb
				req.ContentLength = int64(len(body))
				w.status, w.n = 0, 0
				handler.ServeHTTP(w, req)
				if w.status != http.StatusOK {
					b.Fatalf("status %d", w.status)
				}
			}
			b.ReportMetric(float64(w.n), "resp-bytes")
		})
	}
}

// BenchmarkFeastHandler calls the HTTP handler of /get-online-features
// directly, in process: decode, resolve (cached plan), Pebble reads, encode.
// SetBytes counts feature values, so MB/s reads as millions of values/s.
func BenchmarkFeastHandler(b *testing.B) { benchHandler(b, "/get-online-features") }

// BenchmarkNativeHandler is BenchmarkFeastHandler for /v1/features.
func BenchmarkNativeHandler(b *testing.B) { benchHandler(b, "/v1/features") }

// metricsOptions installs what featured serve installs to measure lookups:
// the HTTP metrics middleware and the lookup observer, over a real
// MeterProvider with the Prometheus exporter (tracing off, the default).
func metricsOptions(b *testing.B) serving.Options {
	b.Helper()
	tel, err := telemetry.New(context.Background(), telemetry.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { tel.Shutdown(context.Background()) })
	return serving.Options{Middleware: serving.Middleware{Metrics: tel.HTTPMiddleware}, Observer: tel.LookupObserver()}
}

// BenchmarkFeastHandlerMetrics is BenchmarkFeastHandler with metrics on:
// the pair measures what metrics cost a lookup (docs/benchmarks.md).
func BenchmarkFeastHandlerMetrics(b *testing.B) {
	benchHandlerWith(b, "/get-online-features", metricsOptions(b))
}

// BenchmarkNativeHandlerMetrics is BenchmarkNativeHandler with metrics on.
func BenchmarkNativeHandlerMetrics(b *testing.B) {
	benchHandlerWith(b, "/v1/features", metricsOptions(b))
}

// BenchmarkFeastLoopback sends /get-online-features over loopback HTTP/1.1
// with a keep-alive client; client and server share the 2 cores.
func BenchmarkFeastLoopback(b *testing.B) {
	benchFeastLoopback(b, newBenchHarness(b))
}

// BenchmarkFeastLoopbackMetrics is BenchmarkFeastLoopback with metrics on:
// its CPU profile gives metrics' share of a whole request's server CPU
// (docs/benchmarks.md).
func BenchmarkFeastLoopbackMetrics(b *testing.B) {
	benchFeastLoopback(b, newBenchHarnessOpts(b, metricsOptions(b)))
}

func benchFeastLoopback(b *testing.B, h *harness) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	defer client.CloseIdleConnections()
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			body := benchBody(b, sz)
			b.ReportAllocs()
			b.SetBytes(int64(sz.entities * sz.features))
			for b.Loop() {
				resp, err := client.Post(h.url+"/get-online-features", "application/json", bytes.NewReader(body))
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
		})
	}
}

// BenchmarkGRPCLoopback is the same lookup over loopback gRPC.
func BenchmarkGRPCLoopback(b *testing.B) {
	h := newBenchHarness(b)
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			keys := &featuredv1.RepeatedValue{}
			for _, k := range benchKeys(sz.entities) {
				keys.Val = append(keys.Val, &featuredv1.Value{Kind: &featuredv1.Value_Int64Val{Int64Val: k}})
			}
			req := &featuredv1.GetOnlineFeaturesRequest{
				Kind:     &featuredv1.GetOnlineFeaturesRequest_Features{Features: &featuredv1.FeatureList{Val: benchRefs(sz.features)}},
				Entities: map[string]*featuredv1.RepeatedValue{"entity": keys},
			}
			ctx := context.Background()
			b.ReportAllocs()
			b.SetBytes(int64(sz.entities * sz.features))
			for b.Loop() {
				if _, err := h.serving.GetOnlineFeatures(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestHandlerAllocs pins the hot path's allocations: a warm Feast lookup of
// one entity allocates a bounded number of times whatever the feature count
// (chi's request context and net/http's header handling, none per value).
func TestHandlerAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	h := newHarness(t, serving.Options{})
	h.apply(benchDefinitions())
	ev := map[string]aggregate.Value{"entity": {Kind: aggregate.KindInt64, I: 1}, "ts": {Kind: aggregate.KindInt64, I: nowMillis}}
	for f := 0; f < 50; f++ {
		ev[fmt.Sprintf("f%d", f)] = aggregate.Value{Kind: aggregate.KindInt64, I: int64(f)}
	}
	if _, err := h.ingest.Push(context.Background(), pushRequest([]map[string]aggregate.Value{ev})); err != nil {
		t.Fatal(err)
	}
	handler := h.srv.HTTPHandler()
	allocsFor := func(features int) float64 {
		body, _ := json.Marshal(map[string]any{"features": benchRefs(features), "entities": map[string]any{"entity": []int64{1}}})
		req := httptest.NewRequest("POST", "/get-online-features", nil)
		rb := &nopBody{}
		w := &discardWriter{h: http.Header{}}
		return testing.AllocsPerRun(50, func() {
			rb.Reset(body)
			req.Body = rb
			req.ContentLength = int64(len(body))
			handler.ServeHTTP(w, req)
			if w.status != http.StatusOK {
				t.Fatalf("status %d", w.status)
			}
		})
	}
	a10, a50 := allocsFor(10), allocsFor(50)
	t.Logf("allocations per lookup: 1x10 %.0f, 1x50 %.0f", a10, a50)
	if a50 > a10+5 {
		t.Errorf("1x50 allocates %.0f times, 1x10 %.0f: allocations grow with the feature count", a50, a10)
	}
}
