package telemetry

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/featured-dev/featured/ingest"
	"github.com/featured-dev/featured/registry"
)

// ingestInstruments are the ingest histograms the ingest hooks feed.
type ingestInstruments struct {
	pushBatch metric.Int64Histogram
	latency   metric.Float64Histogram

	mu      sync.RWMutex
	sources map[string]metric.RecordOption
}

var latencyBuckets = []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600}

func (in *ingestInstruments) init(m metric.Meter) error {
	var errs [2]error
	in.pushBatch, errs[0] = m.Int64Histogram("featured.ingest.push.batch.size", metric.WithUnit("{event}"),
		metric.WithDescription("Events per push."), metric.WithExplicitBucketBoundaries(1, 10, 100, 500, 1000, 5000, 10000))
	in.latency, errs[1] = m.Float64Histogram("featured.ingest.latency", metric.WithUnit("s"),
		metric.WithDescription("End-to-end ingest latency: the newest event time of a batch to the batch handed to the store (pushes: visible; Kafka: visible within the commit interval)."),
		metric.WithExplicitBucketBoundaries(latencyBuckets...))
	in.sources = make(map[string]metric.RecordOption)
	return joinErrs(errs[:])
}

func (in *ingestInstruments) source(name string) metric.RecordOption {
	in.mu.RLock()
	o, ok := in.sources[name]
	in.mu.RUnlock()
	if ok {
		return o
	}
	o = metric.WithAttributeSet(attribute.NewSet(attribute.String("source", name)))
	in.mu.Lock()
	in.sources[name] = o
	in.mu.Unlock()
	return o
}

// PushBatch is ingest.Options.PushBatch.
func (t *Telemetry) PushBatch(source string, events int) {
	t.ingest.pushBatch.Record(context.Background(), int64(events), t.ingest.source(source))
}

// IngestApplied is ingest.Options.Applied.
func (t *Telemetry) IngestApplied(source string, _ int, newestEventMillis int64) {
	d := time.Since(time.UnixMilli(newestEventMillis)).Seconds()
	t.ingest.latency.Record(context.Background(), max(d, 0), t.ingest.source(source))
}

// ObserveIngest registers the observable instruments that read the ingest
// counters of pusher and, when not nil, kafka, and the freshness of every
// view version in reg, once per collection.
func (t *Telemetry) ObserveIngest(reg *registry.Registry, pusher *ingest.Pusher, kafka *ingest.Kafka) error {
	m := t.meter
	c := newCollector(m)
	events := c.counter("featured.ingest.events", "{event}", "Events by source and result: applied (folded online) or history (older than every view's TTL, logged offline only).")
	rejected := c.counter("featured.ingest.rejected", "{event}", "Events rejected, by source and reason.")
	dead := c.counter("featured.ingest.dead_letters", "{message}", "Messages written to a Kafka source's dead-letter topic.")
	freshness := c.floatGauge("featured.view.freshness", "s", "Now minus the newest event time applied to the view version's source.")
	offset := c.gauge("featured.kafka.offset.applied", "{offset}", "Next offset to read per partition (the applied offset plus one).")
	high := c.gauge("featured.kafka.high_watermark", "{offset}", "The partition's end offset as last seen.")
	lag := c.gauge("featured.kafka.lag", "{message}", "High watermark minus the next offset.")
	lagSeconds := c.floatGauge("featured.kafka.lag.seconds", "s", "While a partition lags: now minus the newest event time applied from its source; 0 when caught up.")
	resets := c.counter("featured.kafka.offset.resets", "{reset}", "Times a stored offset was past the partition's end (topic recreated or truncated).")
	skipped := c.counter("featured.kafka.offsets.skipped", "{offset}", "Offsets gone before they were read (retention, compaction).")
	rewinds := c.counter("featured.kafka.rewinds", "{rewind}", "Times a failed store commit made the partition read again from the committed offset.")
	if err := c.err(); err != nil {
		return err
	}
	_, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		now := time.Now()
		latest := map[string]int64{}
		stats := pusher.Stats()
		pushed := len(stats)
		if kafka != nil {
			stats = append(stats, kafka.Stats()...)
		}
		for i, s := range stats {
			src := attribute.String("source", s.Source)
			o.ObserveInt64(events, int64(s.Applied), metric.WithAttributes(src, attribute.String("result", "applied")))
			o.ObserveInt64(events, int64(s.History), metric.WithAttributes(src, attribute.String("result", "history")))
			for reason, n := range s.Rejected {
				o.ObserveInt64(rejected, int64(n), metric.WithAttributes(src, attribute.String("reason", reason)))
			}
			if i >= pushed {
				o.ObserveInt64(dead, int64(s.DeadLetters), metric.WithAttributes(src))
			}
			latest[s.Source] = max(latest[s.Source], s.LatestEventMillis)
		}
		for _, v := range reg.Snapshot().Views() {
			ms := latest[v.Source.Name]
			if ms == 0 {
				continue
			}
			o.ObserveFloat64(freshness, now.Sub(time.UnixMilli(ms)).Seconds(), metric.WithAttributes(
				attribute.String("view", v.Name), attribute.Int("view_version", v.Version), attribute.String("source", v.Source.Name)))
		}
		if kafka == nil {
			return nil
		}
		for _, cs := range kafka.Status() {
			for _, p := range cs.Partitions {
				a := metric.WithAttributes(attribute.String("source", p.Source), attribute.String("topic", p.Topic), attribute.String("partition", strconv.Itoa(p.Partition)))
				o.ObserveInt64(offset, p.NextOffset, a)
				o.ObserveInt64(high, p.HighWatermark, a)
				o.ObserveInt64(lag, p.Lag, a)
				ls := 0.0
				if ms := latest[p.Source]; p.Lag > 0 && ms > 0 {
					ls = max(now.Sub(time.UnixMilli(ms)).Seconds(), 0)
				}
				o.ObserveFloat64(lagSeconds, ls, a)
				o.ObserveInt64(resets, p.OffsetResets, a)
				o.ObserveInt64(skipped, p.Skipped, a)
				o.ObserveInt64(rewinds, p.Rewinds, a)
			}
		}
		return nil
	}, c.instruments...)
	if err != nil {
		return fmt.Errorf("telemetry: observe ingest: %w", err)
	}
	return nil
}
