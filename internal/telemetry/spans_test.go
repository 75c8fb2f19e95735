package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/featured-dev/featured/featurestore"
	"github.com/featured-dev/featured/ingest"
	"github.com/featured-dev/featured/internal/kafkatest"
	"github.com/featured-dev/featured/internal/telemetry"
	"github.com/featured-dev/featured/internal/testdefs"
	"github.com/featured-dev/featured/offline/eventlog"
	"github.com/featured-dev/featured/offline/export"
	"github.com/featured-dev/featured/registry"
)

// spanRig is a registry with a push source, a Kafka source on topic and a
// view over each, a store logging to an offline log, and a Telemetry
// recording spans in memory.
type spanRig struct {
	reg   *registry.Registry
	log   *eventlog.Log
	store *featurestore.Store
	tel   *telemetry.Telemetry
	exp   *tracetest.InMemoryExporter
}

func newSpanRig(t *testing.T, ratio float64, topic string) *spanRig {
	t.Helper()
	dir := t.TempDir()
	r := &spanRig{exp: tracetest.NewInMemoryExporter()}
	var err error
	if r.tel, err = telemetry.New(context.Background(), telemetry.Options{TraceSampleRatio: ratio, SpanExporter: r.exp}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.tel.Shutdown(context.Background()) })
	if r.reg, err = registry.Open(filepath.Join(dir, "registry.json")); err != nil {
		t.Fatal(err)
	}
	d, err := registry.ParseYAML([]byte(testdefs.Doc(
		[]string{testdefs.Source("tx", "push", ""), testdefs.Source("tx_kafka", "kafka", topic)},
		[]string{testdefs.View("v", "tx", "2d"), testdefs.View("vk", "tx_kafka", "2d")})))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.reg.Apply(d); err != nil {
		t.Fatal(err)
	}
	if r.log, err = eventlog.Open(filepath.Join(dir, "offline"), eventlog.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.log.Close() })
	if r.store, err = featurestore.Open(filepath.Join(dir, "store"), featurestore.Options{Partitions: 2, CommitInterval: time.Millisecond, GCInterval: -1, EventLog: r.log}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.store.Close() })
	return r
}

func (r *spanRig) pusher(t *testing.T) *ingest.Pusher {
	t.Helper()
	p, err := ingest.NewPusher(r.reg, r.store, ingest.Options{Tracer: r.tel.IngestTracer()})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func event(user string, ms int64) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"user_id":%q,"ts":%d,"amount":1.5,"merchant":"m","items":2,"flag":true}`, user, ms))
}

// byName indexes spans by name; a name seen twice keeps every span.
func byName(spans tracetest.SpanStubs) map[string][]tracetest.SpanStub {
	m := map[string][]tracetest.SpanStub{}
	for _, s := range spans {
		m[s.Name] = append(m[s.Name], s)
	}
	return m
}

// checkChildren fails unless parent has exactly one span of each name in
// children, each of them a child of parent in parent's trace.
func checkChildren(t *testing.T, spans tracetest.SpanStubs, parent tracetest.SpanStub, children ...string) {
	t.Helper()
	got := map[string]int{}
	for _, s := range spans {
		if s.Parent.SpanID() == parent.SpanContext.SpanID() && s.SpanContext.TraceID() == parent.SpanContext.TraceID() {
			got[s.Name]++
		}
	}
	want := map[string]int{}
	for _, c := range children {
		want[c]++
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("children of %s: got %v, want %v", parent.Name, got, want)
	}
}

// TestPushSpans: a push is a span under the request's, with decode and
// write (fold and commit, synchronous) as its children.
func TestPushSpans(t *testing.T) {
	r := newSpanRig(t, 1, "unused")
	p := r.pusher(t)
	ctx, req := r.tel.Tracer().Start(context.Background(), "request")
	now := time.Now().UnixMilli()
	if _, err := p.PushJSON(ctx, "tx", []json.RawMessage{event("u1", now), event("u2", now)}, ingest.PushOptions{}); err != nil {
		t.Fatal(err)
	}
	req.End()
	spans := r.exp.GetSpans()
	m := byName(spans)
	if len(m[ingest.SpanPush]) != 1 || len(m["request"]) != 1 {
		t.Fatalf("spans %v, want one push under one request", m)
	}
	push := m[ingest.SpanPush][0]
	checkChildren(t, spans, m["request"][0], ingest.SpanPush)
	checkChildren(t, spans, push, ingest.SpanDecode, ingest.SpanWrite)

	// A push the source refuses ends its span with the error.
	r.exp.Reset()
	if _, err := p.PushJSON(context.Background(), "nope", []json.RawMessage{event("u1", now)}, ingest.PushOptions{}); err == nil {
		t.Fatal("push to an unknown source succeeded")
	}
	spans = r.exp.GetSpans()
	if len(spans) != 1 || spans[0].Name != ingest.SpanPush || spans[0].Status.Description == "" || len(spans[0].Events) == 0 {
		t.Errorf("failed push: spans %+v, want one push span with the error", spans)
	}
}

// TestKafkaBatchSpans: every applied batch is a root span with decode,
// dead_letter (a bad message is in it) and enqueue as children; the commit
// is the shard writers', not the batch's.
func TestKafkaBatchSpans(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.CreateTopic(t, brokers, "spans", 2) // the store's partition count
	kafkatest.CreateNamedTopic(t, brokers, topic+".dlq", 1)
	r := newSpanRig(t, 1, topic)
	k, err := ingest.NewKafka(r.reg, r.store, ingest.KafkaOptions{
		Options: ingest.Options{Tracer: r.tel.IngestTracer()},
		Brokers: brokers, RetryMin: 50 * time.Millisecond, RetryMax: time.Second, PartitionCheck: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- k.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("kafka run: %v", err)
		}
	}()
	now := time.Now().UnixMilli()
	kafkatest.Produce(t, brokers, topic, []*kgo.Record{
		{Key: []byte("u1"), Value: event("u1", now)},
		{Key: []byte("u2"), Value: []byte(`{"user_id":"u2","ts":"not a time"}`)},
		{Key: []byte("u3"), Value: event("u3", now)},
	})
	var spans tracetest.SpanStubs
	deadline := time.Now().Add(60 * time.Second)
	for {
		spans = r.exp.GetSpans()
		var events, dead int
		for _, s := range k.Stats() {
			events += int(s.Applied)
			dead += int(s.DeadLetters)
		}
		if events == 2 && dead == 1 && len(byName(spans)[ingest.SpanKafkaBatch]) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not applied in 60s: stats %+v, spans %v", k.Stats(), byName(spans))
		}
		time.Sleep(20 * time.Millisecond)
	}
	m := byName(spans)
	withDead := 0
	for _, b := range m[ingest.SpanKafkaBatch] {
		if b.Parent.IsValid() {
			t.Errorf("batch span has parent %v, want a root", b.Parent)
		}
		want := []string{ingest.SpanDecode, ingest.SpanEnqueue}
		for _, s := range spans {
			if s.Name == ingest.SpanDeadLetter && s.Parent.SpanID() == b.SpanContext.SpanID() {
				want = append(want, ingest.SpanDeadLetter)
				withDead++
			}
		}
		checkChildren(t, spans, b, want...)
	}
	if withDead != 1 {
		t.Errorf("%d batches published dead letters, want 1", withDead)
	}
}

// TestExportSpans: an export is a span under the request's with the
// phases as children, in memory and spilling.
func TestExportSpans(t *testing.T) {
	r := newSpanRig(t, 1, "unused")
	p := r.pusher(t)
	now := time.Now().UnixMilli()
	if _, err := p.PushJSON(context.Background(), "tx", []json.RawMessage{event("u1", now-2000), event("u2", now-1000)}, ingest.PushOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := r.store.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	spine := fmt.Sprintf("user_id,event_timestamp\nu1,%d\nu2,%d\nu3,%d\n", now, now, now)
	x := export.NewExporter(r.reg, r.log)
	for _, tc := range []struct {
		name        string
		memoryBytes int64
		spilled     bool
	}{{"memory", 0, false}, {"spill", 1, true}} {
		t.Run(tc.name, func(t *testing.T) {
			r.exp.Reset()
			ctx, req := r.tel.Tracer().Start(context.Background(), "request")
			var out bytes.Buffer
			st, err := x.ExportCSV(ctx, strings.NewReader(spine), int64(len(spine)),
				export.Request{Features: []string{"v:" + firstFeature(t, r.reg)}, MemoryBytes: tc.memoryBytes, TempDir: t.TempDir(), Tracer: r.tel.ExportTracer()},
				export.NewIPCStream(&out))
			req.End()
			if err != nil || st.Rows != 3 || st.SpillUsed != tc.spilled {
				t.Fatalf("export: %+v %v, want 3 rows, spilled %v", st, err, tc.spilled)
			}
			spans := r.exp.GetSpans()
			m := byName(spans)
			if len(m[export.SpanExport]) != 1 {
				t.Fatalf("spans %v, want one export", m)
			}
			checkChildren(t, spans, m["request"][0], export.SpanExport)
			checkChildren(t, spans, m[export.SpanExport][0], export.SpanSpineRead, export.SpanLogScan, export.SpanJoin, export.SpanWrite)
		})
	}
}

func firstFeature(t *testing.T, reg *registry.Registry) string {
	t.Helper()
	v, err := reg.Snapshot().View("v", 0)
	if err != nil {
		t.Fatal(err)
	}
	return v.Features[0].Name
}

// TestNoSpansWhenSamplingOff: without a sample ratio the hooks are nil and
// ingest and export record nothing; with one, a caller's unsampled trace
// stays unsampled through the hooks.
func TestNoSpansWhenSamplingOff(t *testing.T) {
	off := newSpanRig(t, 0, "unused")
	if off.tel.IngestTracer() != nil || off.tel.ExportTracer() != nil {
		t.Fatal("tracing off, but the ingest or export hook is set")
	}
	now := time.Now().UnixMilli()
	if _, err := off.pusher(t).PushJSON(context.Background(), "tx", []json.RawMessage{event("u1", now)}, ingest.PushOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := len(off.exp.GetSpans()); n != 0 {
		t.Errorf("tracing off: %d spans recorded", n)
	}

	on := newSpanRig(t, 1, "unused")
	unsampled := trace.ContextWithRemoteSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}, Remote: true,
	}))
	if _, err := on.pusher(t).PushJSON(unsampled, "tx", []json.RawMessage{event("u1", now)}, ingest.PushOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := on.store.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	spine := fmt.Sprintf("user_id,event_timestamp\nu1,%d\n", now)
	_, err := export.NewExporter(on.reg, on.log).ExportCSV(unsampled, strings.NewReader(spine), int64(len(spine)),
		export.Request{Features: []string{"v:" + firstFeature(t, on.reg)}, Tracer: on.tel.ExportTracer()}, export.NewIPCStream(io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(on.exp.GetSpans()); n != 0 {
		t.Errorf("unsampled caller: %d spans recorded", n)
	}
}
