package serving_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/aggregate/aggregatetest"
	featuredv1 "github.com/featured-dev/featured/api/featured/v1"
	"github.com/featured-dev/featured/featurestore"
	"github.com/featured-dev/featured/ingest"
	"github.com/featured-dev/featured/offline"
	"github.com/featured-dev/featured/offline/eventlog"
	"github.com/featured-dev/featured/offline/export"
	"github.com/featured-dev/featured/registry"
	"github.com/featured-dev/featured/serving"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// now is the fixed clock of every part of a harness.
var now = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)

var nowMillis = now.UnixMilli()

const definitions = `
entities:
  - {name: user, join_key: user_id, type: string}
  - {name: merchant, join_key: merchant_id, type: int64}
sources:
  - name: transactions
    kind: push
    entity_key: user_id
    event_time: ts
    fields: {amount: float64, merchant: string, items: int64}
  - name: merchant_events
    kind: push
    entity_key: merchant_id
    event_time: ts
    fields: {amount: float64}
feature_views:
  - name: user_spend
    entity: user
    source: transactions
    ttl: 8d
    features:
      - {name: spend_7d, aggregation: sum, field: amount, window: 7d, hop: 1h}
      - {name: txn_count_1h, aggregation: count, window: 1h, hop: 1m}
      - {name: avg_amount_24h, aggregation: avg, field: amount, window: 24h}
      - {name: last_merchant, aggregation: last, field: merchant}
      - {name: max_items_1h, aggregation: max, field: items, window: 1h}
      - {name: last_3_merchants, aggregation: last_k, field: merchant, k: 3}
  - name: merchant_stats
    entity: merchant
    source: merchant_events
    ttl: 1d
    features:
      - {name: volume_1d, aggregation: sum, field: amount, window: 1d}
feature_services:
  - name: fraud_model_v1
    features: [user_spend:spend_7d, user_spend:txn_count_1h]
`

// harness is a real featured stack: registry and Pebble store on
// t.TempDir(), the pusher, the Server over HTTP and gRPC on 127.0.0.1:0.
type harness struct {
	t     testing.TB
	reg   *registry.Registry
	store *featurestore.Store
	srv   *serving.Server
	url   string
	conn  *grpc.ClientConn
	// grpcAddr is the gRPC listener's address; stopGRPC stops its server
	// (as a killed node's), idempotent, and startGRPC serves it again on
	// the same address (a restarted node's).
	grpcAddr  string
	stopGRPC  func()
	startGRPC func()

	serving  featuredv1.ServingServiceClient
	ingest   featuredv1.IngestServiceClient
	registry featuredv1.RegistryServiceClient

	// breakBackfill, when set on a harness with an offline log, is asked
	// before each backfill: an error fails that view version's backfill
	// as an unreadable log would. Set it before the requests it concerns.
	breakBackfill func(v *registry.View) error

	// pushed holds every accepted event by source and entity key (its
	// string form), in arrival order, for aggregatetest.Reference.
	mu     sync.Mutex
	pushed map[string][]aggregatetest.Event
}

// harnessPartitions is the store's partition count in the harness: 2 for
// the tests; the benchmarks are also run with 16, the default, to measure
// what many partitions cost (docs/benchmarks.md).
var harnessPartitions = flag.Int("partitions", 2, "partitions of the harness's store")

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newHarness(t testing.TB, opts serving.Options) *harness {
	t.Helper()
	return newHarnessLog(t, opts, false)
}

// newHarnessLog is newHarness, with an offline log under the store when
// withLog is set, and opts.Backfill (unless set) wired to offline.Backfill
// over them, as featured serve wires them.
func newHarnessLog(t testing.TB, opts serving.Options, withLog bool) *harness {
	t.Helper()
	dir := t.TempDir()
	clock := func() time.Time { return now }
	reg, err := registry.OpenWithOptions(filepath.Join(dir, "registry.json"), registry.Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	parts := *harnessPartitions
	if opts.Placement != nil {
		parts = opts.Placement.Partitions() // a node's store is partitioned as the cluster
	}
	sopts := featurestore.Options{Partitions: parts, CacheBytes: 8 << 20, GCInterval: -1, Now: clock, Logger: discard()}
	var olog *eventlog.Log
	if withLog {
		olog, err = eventlog.Open(filepath.Join(dir, "offline"), eventlog.Options{Retention: -1, Now: clock, Logger: discard()})
		if err != nil {
			t.Fatal(err)
		}
		sopts.EventLog = olog
	}
	store, err := featurestore.Open(filepath.Join(dir, "data"), sopts)
	if err != nil {
		t.Fatal(err)
	}
	var h *harness
	if withLog && opts.Backfill == nil {
		opts.Backfill = func(ctx context.Context, v *registry.View) (int, error) {
			if h.breakBackfill != nil {
				if err := h.breakBackfill(v); err != nil {
					return 0, err
				}
			}
			return offline.Backfill(ctx, store, olog, v)
		}
	}
	if withLog && opts.Offline.Export == nil && opts.Offline.Backfill == nil && opts.Offline.VerifySkew == nil {
		// The offline routes as featured serve mounts them (without a
		// sampler: verify-skew answers that sampling is off).
		x := export.NewExporter(reg, olog)
		opts.Offline = serving.OfflineRoutes{
			Export:     offline.ExportHandler(x, offline.HandlerOptions{TempDir: dir}),
			Backfill:   offline.BackfillHandler(x, store, offline.HandlerOptions{}),
			VerifySkew: offline.VerifySkewHandler(x, nil, offline.HandlerOptions{TempDir: dir}),
		}
	}
	if withLog && opts.OfflineLog == nil {
		opts.OfflineLog = olog
	}
	iopts := ingest.Options{Now: clock, Logger: discard()}
	if opts.Disk != nil {
		iopts.Writable = opts.Disk.Check // as featured serve wires it
	}
	pusher, err := ingest.NewPusher(reg, store, iopts)
	if err != nil {
		t.Fatal(err)
	}
	opts.Now = clock
	srv, err := serving.New(reg, store, pusher, opts)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.HTTPHandler()) // 127.0.0.1:0

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var gmu sync.Mutex // guards gs
	gs := grpc.NewServer(srv.GRPCServerOptions()...)
	srv.RegisterGRPC(gs)
	var wg sync.WaitGroup
	wg.Go(func() { _ = gs.Serve(lis) })
	stopGRPC := func() {
		gmu.Lock()
		defer gmu.Unlock()
		gs.Stop()
	}
	startGRPC := func() {
		gmu.Lock()
		defer gmu.Unlock()
		l, err := net.Listen("tcp", lis.Addr().String())
		if err != nil {
			t.Fatalf("listen again on %s: %v", lis.Addr(), err)
		}
		gs = grpc.NewServer(srv.GRPCServerOptions()...)
		srv.RegisterGRPC(gs)
		g := gs
		wg.Go(func() { _ = g.Serve(l) })
	}
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Shutdown reverses startup: listeners, then the store, then the
		// registry.
		conn.Close()
		stopGRPC()
		wg.Wait()
		hs.Close()
		if err := srv.Close(); err != nil {
			t.Errorf("close server: %v", err)
		}
		if err := store.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
		if olog != nil {
			if err := olog.Close(); err != nil {
				t.Errorf("close offline log: %v", err)
			}
		}
		if err := reg.Close(); err != nil {
			t.Errorf("close registry: %v", err)
		}
	})
	h = &harness{
		t: t, reg: reg, store: store, srv: srv, url: hs.URL, conn: conn,
		grpcAddr: lis.Addr().String(), stopGRPC: stopGRPC, startGRPC: startGRPC,
		serving:  featuredv1.NewServingServiceClient(conn),
		ingest:   featuredv1.NewIngestServiceClient(conn),
		registry: featuredv1.NewRegistryServiceClient(conn),
		pushed:   map[string][]aggregatetest.Event{},
	}
	srv.SetReady(true)
	return h
}

// do sends an HTTP request and returns the status and body.
func (h *harness) do(method, path, contentType string, body []byte) (int, []byte) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.url+path, bytes.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp.StatusCode, out
}

func (h *harness) post(path string, body any) (int, []byte) {
	h.t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		h.t.Fatal(err)
	}
	return h.do("POST", path, "application/json", b)
}

func (h *harness) apply(defs string) {
	h.t.Helper()
	// On the registry: both transports have their own tests, and
	// TestLimits' body limit (which bounds gRPC messages too) is smaller
	// than the definitions.
	d, err := registry.ParseYAML([]byte(defs))
	if err != nil {
		h.t.Fatalf("apply: %v", err)
	}
	if _, err := h.reg.Apply(d); err != nil {
		h.t.Fatalf("apply: %v", err)
	}
}

// event is one test event of the transactions source (or merchant_events,
// with only amount).
type event struct {
	key      any // string user or int64 merchant
	ms       int64
	amount   *float64
	items    *int64
	merchant *string
	rfc3339  bool // send the time as an RFC 3339 string
}

func f64(v float64) *float64 { return &v }
func i64(v int64) *int64     { return &v }
func str(v string) *string   { return &v }

func (e event) json(source string) map[string]any {
	m := map[string]any{}
	if source == "transactions" {
		m["user_id"] = e.key
	} else {
		m["merchant_id"] = e.key
	}
	if e.rfc3339 {
		m["ts"] = time.UnixMilli(e.ms).UTC().Format(time.RFC3339Nano)
	} else {
		m["ts"] = e.ms
	}
	if e.amount != nil {
		m["amount"] = *e.amount
	}
	if e.items != nil {
		m["items"] = *e.items
	}
	if e.merchant != nil {
		m["merchant"] = *e.merchant
	}
	return m
}

// record converts e to the source's field order.
func (h *harness) record(source string, e event) aggregatetest.Event {
	src, ok := h.reg.Snapshot().Source(source)
	if !ok {
		h.t.Fatalf("no source %s", source)
	}
	fields := make([]aggregate.Value, len(src.Fields))
	set := func(name string, v aggregate.Value) {
		if i := src.FieldIndex(name); i >= 0 {
			fields[i] = v
		}
	}
	if e.amount != nil {
		set("amount", aggregate.Value{Kind: aggregate.KindFloat64, F: *e.amount})
	}
	if e.items != nil {
		set("items", aggregate.Value{Kind: aggregate.KindInt64, I: *e.items})
	}
	if e.merchant != nil {
		set("merchant", aggregate.Value{Kind: aggregate.KindString, S: *e.merchant})
	}
	return aggregatetest.Event{Millis: e.ms, Fields: fields}
}

func keyString(k any) string { return fmt.Sprint(k) }

// push sends events over HTTP, requires every one accepted, and records
// them.
func (h *harness) push(source string, events ...event) {
	h.t.Helper()
	js := make([]map[string]any, len(events))
	for i, e := range events {
		js[i] = e.json(source)
	}
	st, body := h.post("/v1/push", map[string]any{"source": source, "events": js})
	if st != http.StatusOK {
		h.t.Fatalf("push: %d %s", st, body)
	}
	var res struct {
		Accepted int `json:"accepted"`
		Rejected []struct {
			Index  int    `json:"index"`
			Reason string `json:"reason"`
		} `json:"rejected"`
	}
	if err := json.Unmarshal(body, &res); err != nil {
		h.t.Fatal(err)
	}
	if res.Accepted != len(events) || len(res.Rejected) != 0 {
		h.t.Fatalf("push: accepted %d of %d: %s", res.Accepted, len(events), body)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range events {
		k := source + "/" + keyString(e.key)
		h.pushed[k] = append(h.pushed[k], h.record(source, e))
	}
}

// want computes ref of entity key as of now with aggregatetest.Reference
// over every event pushed to the view's source since the version was
// applied (since is the index into the pushed events at apply time).
func (h *harness) want(ref string, key any, since int) aggregate.Result {
	h.t.Helper()
	rs, err := h.reg.Snapshot().Resolve([]string{ref})
	if err != nil {
		h.t.Fatal(err)
	}
	v := rs[0].View
	h.mu.Lock()
	events := h.pushed[v.Source.Name+"/"+keyString(key)]
	h.mu.Unlock()
	if since > len(events) {
		since = len(events)
	}
	return aggregatetest.Reference(v.Layout.Specs(), v.TTL.Milliseconds(), events[since:], rs[0].Feature, nowMillis)
}

// pushedCount returns how many events of source's entity key were pushed.
func (h *harness) pushedCount(source string, key any) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.pushed[source+"/"+keyString(key)])
}
