package telemetry

import (
	"context"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/featured-dev/featured/offline"
)

// exportInstruments are the offline run metrics (export, backfill,
// verify-skew), fed by offline.HandlerOptions.Done.
type exportInstruments struct {
	runs      metric.Int64Counter
	rows      metric.Int64Counter
	spilled   metric.Int64Counter
	spilledBy metric.Int64Counter
	duration  metric.Float64Histogram
	matchRate metric.Float64Gauge

	mu   sync.Mutex
	sets map[[2]string]attribute.Set
}

func (e *exportInstruments) init(m metric.Meter) error {
	var errs [6]error
	e.runs, errs[0] = m.Int64Counter("featured.offline.runs", metric.WithUnit("{run}"),
		metric.WithDescription("Offline runs by kind (export, backfill, verify_skew) and result (ok, error)."))
	e.rows, errs[1] = m.Int64Counter("featured.offline.rows", metric.WithUnit("{row}"),
		metric.WithDescription("What offline runs produced: export rows, backfilled entities, verify-skew values compared."))
	e.spilled, errs[2] = m.Int64Counter("featured.offline.spilled_runs", metric.WithUnit("{run}"),
		metric.WithDescription("Exports that spilled to disk."))
	e.spilledBy, errs[5] = m.Int64Counter("featured.offline.spilled", metric.WithUnit("By"),
		metric.WithDescription("Bytes exports wrote to spill files (the spine's copy, log rows and results by bucket)."))
	e.duration, errs[3] = m.Float64Histogram("featured.offline.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of offline runs."),
		metric.WithExplicitBucketBoundaries(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600))
	e.matchRate, errs[4] = m.Float64Gauge("featured.offline.skew.match_rate", metric.WithUnit("%"),
		metric.WithDescription("The last verify-skew's match rate, online against offline values."))
	e.sets = make(map[[2]string]attribute.Set)
	return joinErrs(errs[:])
}

func (e *exportInstruments) set(kind, result string) attribute.Set {
	e.mu.Lock()
	defer e.mu.Unlock()
	k := [2]string{kind, result}
	s, ok := e.sets[k]
	if !ok {
		s = attribute.NewSet(attribute.String("kind", kind), attribute.String("result", result))
		e.sets[k] = s
	}
	return s
}

// OfflineDone is offline.HandlerOptions.Done.
func (t *Telemetry) OfflineDone(j offline.Job) {
	ctx := context.Background()
	e := &t.export
	result := "ok"
	if j.Err != nil {
		result = "error"
	}
	set := metric.WithAttributeSet(e.set(j.Kind, result))
	e.runs.Add(ctx, 1, set)
	e.rows.Add(ctx, j.Rows, set)
	e.duration.Record(ctx, j.Took.Seconds(), set)
	if j.Spilled {
		e.spilled.Add(ctx, 1, set)
		e.spilledBy.Add(ctx, j.SpilledBytes, set)
	}
	if j.Kind == "verify_skew" && j.Err == nil {
		e.matchRate.Record(ctx, j.MatchRate)
	}
}
