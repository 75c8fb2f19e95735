package main

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// The feast-benchmarks workload (feast-dev/feast-benchmarks), kept as it is:
// int64 join key "entity" over a keyspace of 10,000; 25 feature views
// feature_view_0..24 of 10 int64 features each (view v holds
// feature_{10v}..feature_{10v+9}), TTL 1 day; feature services
// feature_service_0..4 naming the first 50/100/150/200/250 features (the
// first 5/10/15/20/25 views); requests name a feature service and a column of
// random entity keys drawn uniformly from [0, keyspace).
//
// One deliberate difference in the data, not the requests: feast-benchmarks
// fills its Parquet file with 10,000 rows of random keys (so about a third of
// the keyspace is missing and answers NOT_FOUND), and random values. Here
// every entity in the keyspace has exactly one row, and each value is a
// formula of (entity, feature), Value. So every lookup finds every value, the
// most expensive case for every system, and the loader of each system and
// the verifier compute the same numbers without sharing a file.
const (
	// Keyspace is the number of entities, 0..Keyspace-1.
	Keyspace = 10_000
	// Views is the number of feature views.
	Views = 25
	// FeaturesPerView is the number of int64 features of a view.
	FeaturesPerView = 10
	// MaxFeatures is Views*FeaturesPerView.
	MaxFeatures = Views * FeaturesPerView
	// EntityKey is the join key (and the entity's name).
	EntityKey = "entity"
	// SourceName is the push source featured reads the workload from.
	SourceName = "generated"
	// TimeField is the event-time field of a loaded row (epoch ms).
	TimeField = "event_timestamp"
)

// Value is the value of feature f (0..249) of entity e: the same formula in
// the loaders of featured and Redis, in scripts/bench_feast_data.py for Feast,
// and in the verifier. It is in [1, 10007].
func Value(entity int64, feature int) int64 {
	return 1 + (entity*7919+int64(feature)*104729)%10007
}

// FeatureName is "feature_<f>".
func FeatureName(f int) string { return "feature_" + strconv.Itoa(f) }

// ViewName is "feature_view_<v>".
func ViewName(v int) string { return "feature_view_" + strconv.Itoa(v) }

// ServiceName names the feature service of the first n features: n must be
// 50, 100, 150, 200 or 250.
func ServiceName(n int) string { return "feature_service_" + strconv.Itoa(n/50-1) }

// Workload is one lookup shape: Entities keys per request and the feature
// service of the first Features features.
type Workload struct {
	// Entities is the number of entity rows per request: 1, 10, 50, 100 in
	// feast-benchmarks. The default is 1.
	Entities int
	// Features is the number of features (the service of the first
	// Features): 50, 100, 150, 200 or 250. The default is 50.
	Features int
	// Unique is how many distinct requests are built before the run and then
	// sent in turn (feast-benchmarks' UNIQUE_REQUESTS_NUM). The default is
	// 1000.
	Unique int
	// Seed seeds the entity keys. The default is 1.
	Seed uint64
	// PushEvents is the number of events in one push (push target only).
	// The default is 100.
	PushEvents int
	// Keyspace is the number of entities keys are drawn from, 0..Keyspace-1.
	// The default is the workload's 10,000; tests load fewer.
	Keyspace int
}

// EnsureDefaults sets every zero field to its default.
func (w *Workload) EnsureDefaults() {
	if w.Entities == 0 {
		w.Entities = 1
	}
	if w.Features == 0 {
		w.Features = 50
	}
	if w.Unique == 0 {
		w.Unique = 1000
	}
	if w.Seed == 0 {
		w.Seed = 1
	}
	if w.PushEvents == 0 {
		w.PushEvents = 100
	}
	if w.Keyspace == 0 {
		w.Keyspace = Keyspace
	}
}

// Validate reports the first field out of range, by its flag name.
func (w *Workload) Validate() error {
	switch {
	case w.Entities < 1 || w.Entities > 10_000:
		return fmt.Errorf("loadtest: -entities: %d is not in [1, 10000]", w.Entities)
	case w.Keyspace < 1 || w.Keyspace > 1_000_000:
		return fmt.Errorf("loadtest: -keyspace: %d is not in [1, 1000000]", w.Keyspace)
	case w.Features < 50 || w.Features > MaxFeatures || w.Features%50 != 0:
		return fmt.Errorf("loadtest: -features: %d is not 50, 100, 150, 200 or 250", w.Features)
	case w.Unique < 1:
		return fmt.Errorf("loadtest: -unique: %d is not positive", w.Unique)
	case w.PushEvents < 1 || w.PushEvents > 10_000:
		return fmt.Errorf("loadtest: -push-events: %d is not in [1, 10000]", w.PushEvents)
	}
	return nil
}

// Name is "<entities>x<features>", e.g. "1x50".
func (w Workload) Name() string { return fmt.Sprintf("%dx%d", w.Entities, w.Features) }

// Keys returns the entity keys of every request: Unique rows of Entities
// keys, uniform in [0, w.Keyspace), the same for every target and run with
// the same seed.
func (w Workload) Keys() [][]int64 {
	r := rand.New(rand.NewPCG(w.Seed, 0x6665617475726564))
	out := make([][]int64, w.Unique)
	for i := range out {
		row := make([]int64, w.Entities)
		for j := range row {
			row[j] = r.Int64N(int64(w.Keyspace))
		}
		out[i] = row
	}
	return out
}

// FeastBody is Feast's /get-online-features request for keys, as
// feast-benchmarks' request generator writes it (json.dumps of
// {"feature_service": ..., "entities": {"entity": [...]}}).
func (w Workload) FeastBody(keys []int64) []byte {
	var b strings.Builder
	b.WriteString(`{"feature_service": "`)
	b.WriteString(ServiceName(w.Features))
	b.WriteString(`", "entities": {"entity": [`)
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.FormatInt(k, 10))
	}
	b.WriteString(`]}}`)
	return []byte(b.String())
}

// Definitions returns featured's definitions of the workload. variant is
// "last" (each feature the last value of its field over the lifetime: what
// Feast's materialized rows are) or "window" (each feature the sum of its
// field over a 1-day window: the same values, since every entity has one
// event, read through the window engine's tiles).
func Definitions(variant string) (string, error) {
	var feature func(f int) string
	switch variant {
	case "last":
		feature = func(f int) string {
			return fmt.Sprintf("{name: feature_%d, aggregation: last, field: feature_%d}", f, f)
		}
	case "window":
		feature = func(f int) string {
			return fmt.Sprintf("{name: feature_%d, aggregation: sum, field: feature_%d, window: 1d}", f, f)
		}
	default:
		return "", fmt.Errorf("loadtest: definitions: variant %q is not last or window", variant)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# The feast-benchmarks workload (%s values), written by `go run ./loadtest defs -variant %s`.\n", variant, variant)
	fmt.Fprintf(&b, "entities:\n  - {name: %s, join_key: %s, type: int64}\n", EntityKey, EntityKey)
	fmt.Fprintf(&b, "sources:\n  - name: %s\n    kind: push\n    format: json\n    entity_key: %s\n    event_time: %s\n    fields: {",
		SourceName, EntityKey, TimeField)
	for f := range MaxFeatures {
		if f > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "feature_%d: int64", f)
	}
	b.WriteString("}\n")
	b.WriteString(ingestSourceDefinitions)
	b.WriteString("feature_views:\n")
	for v := range Views {
		fmt.Fprintf(&b, "  - name: %s\n    entity: %s\n    source: %s\n    ttl: 1d\n    features:\n", ViewName(v), EntityKey, SourceName)
		for j := range FeaturesPerView {
			fmt.Fprintf(&b, "      - %s\n", feature(v*FeaturesPerView+j))
		}
	}
	b.WriteString(ingestViewDefinitions)
	b.WriteString("feature_services:\n")
	for s := range 5 {
		fmt.Fprintf(&b, "  - name: feature_service_%d\n    features: [", s)
		for f := 0; f < 50*(s+1); f++ {
			if f > 0 {
				b.WriteString(", ")
			}
			b.WriteString(ViewName(f/FeaturesPerView) + ":" + FeatureName(f))
		}
		b.WriteString("]\n")
	}
	return b.String(), nil
}

// The ingest workload: a push source of card-like events into one view with
// three windows (count over 1h, sum over 24h, max over 7d), the shape of
// docs/design.md's example. Push bodies are built by PushBodies.
const (
	IngestSource = "ingest_events"
	IngestView   = "ingest_view"
)

const ingestSourceDefinitions = `  # the ingest workload (loadtest run -target push)
  - name: ` + IngestSource + `
    kind: push
    format: json
    entity_key: entity
    event_time: ts
    fields: {amount: int64}
`

const ingestViewDefinitions = `  - name: ` + IngestView + `
    entity: entity
    source: ` + IngestSource + `
    ttl: 8d
    features:
      - {name: txn_count_1h, aggregation: count, window: 1h, hop: 1m}
      - {name: amount_sum_24h, aggregation: sum, field: amount, window: 24h}
      - {name: amount_max_7d, aggregation: max, field: amount, window: 7d, hop: 1h}
`

// PushBodies builds n bodies of POST /v1/push, each with events events of
// the ingest source: random entities of the keyspace, amounts in [1, 1000],
// event times spread over the minute before now (valid for the whole run:
// inside every window and the TTL, never in the future).
func PushBodies(n, events, keyspace int, seed uint64, now time.Time) [][]byte {
	r := rand.New(rand.NewPCG(seed, 0x696e67657374))
	base := now.Add(-time.Minute).UnixMilli()
	out := make([][]byte, n)
	var b []byte
	for i := range out {
		b = append(b[:0], `{"source":"`+IngestSource+`","events":[`...)
		for j := range events {
			if j > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"entity":`...)
			b = strconv.AppendInt(b, r.Int64N(int64(keyspace)), 10)
			b = append(b, `,"ts":`...)
			b = strconv.AppendInt(b, base+r.Int64N(60_000), 10)
			b = append(b, `,"amount":`...)
			b = strconv.AppendInt(b, 1+r.Int64N(1000), 10)
			b = append(b, '}')
		}
		b = append(b, "]}"...)
		out[i] = append([]byte(nil), b...)
	}
	return out
}
