package offline

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/aggregate/aggregatetest"
	"github.com/featured-dev/featured/featurestore"
	"github.com/featured-dev/featured/ingest"
	"github.com/featured-dev/featured/internal/keyenc"
	"github.com/featured-dev/featured/internal/partition"
	"github.com/featured-dev/featured/internal/testdefs"
	"github.com/featured-dev/featured/offline/eventlog"
	"github.com/featured-dev/featured/offline/export"
	"github.com/featured-dev/featured/offline/internal/codec"
	"github.com/featured-dev/featured/offline/skew"
	"github.com/featured-dev/featured/registry"
)

// testDefs has every operator over several windows (the shared view of
// internal/testdefs) and a second view, "short", of one push source;
// "short" has a TTL shorter than the stream's late events, so the per-view
// admission matters.
var testDefs = testdefs.Doc([]string{testdefs.Source("tx", "push", "")}, []string{testdefs.View("spend", "tx", "2d"), `  - name: short
    entity: user
    source: tx
    ttl: 90m
    features:
      - {name: cnt_30m, aggregation: count, window: 30m}
      - {name: sum_amount_1h, aggregation: sum, field: amount, window: 1h, hop: 5m}
      - {name: last_merchant, aggregation: last, field: merchant}
`})

var testFieldNames = testdefs.FieldNames // sorted, the source's order

// rig is a real registry, store, ingest and offline log on a temp dir, all
// on one injected clock.
type rig struct {
	t      testing.TB
	dir    string
	clock  atomic.Int64 // millis
	reg    *registry.Registry
	log    *eventlog.Log
	store  *featurestore.Store
	pusher *ingest.Pusher
	x      *export.Exporter
	logOpt eventlog.Options
	shards int
	// rejected counts events no view admitted (too late for every TTL).
	rejected int
	// sampler records one store Read in sampleEvery when set before open.
	sampler     *skew.Sampler
	sampleEvery int
}

func (r *rig) now() time.Time { return time.UnixMilli(r.clock.Load()) }

func newRig(t testing.TB, dir string, startMillis int64, logOpts eventlog.Options) *rig {
	t.Helper()
	r := &rig{t: t, dir: dir, logOpt: logOpts, shards: 2}
	r.clock.Store(startMillis)
	var err error
	r.reg, err = registry.OpenWithOptions(filepath.Join(dir, "registry.json"), registry.Options{Now: r.now})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.reg.Snapshot().Views()) == 0 {
		defs, err := registry.ParseYAML([]byte(testDefs))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.reg.Apply(defs); err != nil {
			t.Fatal(err)
		}
	}
	r.open()
	return r
}

func (r *rig) open() {
	t := r.t
	t.Helper()
	lo := r.logOpt
	lo.Now = r.now
	var err error
	r.log, err = eventlog.Open(filepath.Join(r.dir, "offline"), lo)
	if err != nil {
		t.Fatal(err)
	}
	so := featurestore.Options{
		Partitions: r.shards, CommitInterval: time.Millisecond, GCInterval: -1, EventLog: r.log, Now: r.now,
		ReadSampleEvery: r.sampleEvery,
	}
	if r.sampler != nil {
		so.ReadSampler = r.sampler.Record
	}
	r.store, err = featurestore.Open(filepath.Join(r.dir, "store"), so)
	if err != nil {
		t.Fatal(err)
	}
	r.pusher, err = ingest.NewPusher(r.reg, r.store, ingest.Options{Now: r.now, MaxFutureSkew: 15 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	r.x = export.NewExporter(r.reg, r.log)
}

func (r *rig) close() {
	if r.store != nil {
		if err := r.store.Close(); err != nil {
			r.t.Error(err)
		}
		r.store = nil
	}
	if r.log != nil {
		if err := r.log.Close(); err != nil {
			r.t.Error(err)
		}
		r.log = nil
	}
}

// sample is one online answer: every feature of one view version for one
// entity at one instant.
type sample struct {
	user    string
	at      int64
	view    *registry.View
	results []aggregate.Result
}

// lookup reads every feature of v for user through the store, as serving
// does, at the clock.
func (r *rig) lookup(v *registry.View, user string) sample {
	r.t.Helper()
	ent, _ := keyenc.AppendEntity(nil, aggregate.Value{Kind: aggregate.KindString, S: user})
	feats := make([]int, len(v.Features))
	for i := range feats {
		feats[i] = i
	}
	out := make([]aggregate.Result, len(feats))
	at := r.clock.Load()
	if err := r.store.Read(featurestore.ViewKey{ID: v.ID, Version: uint32(v.Version)}, v.Layout, partition.Of(ent, r.store.Partitions()), ent, feats, at, out); err != nil {
		r.t.Fatal(err)
	}
	return sample{user: user, at: at, view: v, results: out}
}

func eventMap(user string, ev aggregatetest.Event) map[string]aggregate.Value {
	m := map[string]aggregate.Value{
		"user_id": {Kind: aggregate.KindString, S: user},
		"ts":      {Kind: aggregate.KindInt64, I: ev.Millis},
	}
	for f, v := range ev.Fields {
		if v.Kind != aggregate.KindNull {
			m[testFieldNames[f]] = v
		}
	}
	return m
}

// streamTo pushes random streams of users through the real ingest in small
// batches, the clock following the events (late ones arrive late), and
// records online answers of every view for a few users between batches.
// It returns the answers.
func (r *rig) streamTo(t testing.TB, seed uint64, users, events int) []sample {
	t.Helper()
	start := r.clock.Load()
	streams := map[string][]aggregatetest.Event{}
	var names []string
	for i := 0; i < users; i++ {
		u := fmt.Sprintf("user-%03d", i)
		names = append(names, u)
		streams[u] = aggregatetest.Stream(seed+uint64(i), aggregatetest.StreamOptions{
			Events:        events,
			Fields:        []aggregate.Kind{aggregate.KindFloat64, aggregate.KindBool, aggregate.KindInt64, aggregate.KindString},
			StartMillis:   start,
			MeanGapMillis: 20 * 60_000,
			MaxLateMillis: 3 * 3600_000, // later than "short"'s TTL sometimes
			GapFraction:   -1,
			Cardinality:   6,
		})
	}
	// Arrival order: merge the streams by each stream's running maximum
	// (the "wall clock" at which its event arrives), ties by user.
	type arrival struct {
		at   int64
		user string
		ev   aggregatetest.Event
	}
	var all []arrival
	for _, u := range names {
		var hi int64
		for _, ev := range streams[u] {
			hi = max(hi, ev.Millis)
			all = append(all, arrival{at: hi, user: u, ev: ev})
		}
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].at < all[j].at })
	rng := rand.New(rand.NewPCG(seed, 99))
	views := r.reg.Snapshot().Views()
	var samples []sample
	ctx := context.Background()
	for i := 0; i < len(all); {
		n := 1 + rng.IntN(8)
		batch := all[i:min(i+n, len(all))]
		i += len(batch)
		// The clock moves to the batch's arrival time (never back), plus up
		// to two minutes.
		r.clock.Store(max(r.clock.Load()+1, batch[len(batch)-1].at+int64(rng.IntN(120_000))))
		var evs []map[string]aggregate.Value
		for _, a := range batch {
			evs = append(evs, eventMap(a.user, a.ev))
		}
		res, err := r.pusher.PushValues(ctx, "tx", evs, ingest.PushOptions{})
		if err != nil {
			t.Fatal(err)
		}
		r.rejected += len(res.Rejected)
		// Answers at this instant and at a later one before the next batch
		// arrives (no ingest between).
		next := r.clock.Load() + 1
		if i < len(all) {
			next = max(next, all[i].at)
		}
		for k := 0; k < 2; k++ {
			for _, v := range views {
				samples = append(samples, r.lookup(v, names[rng.IntN(len(names))]))
			}
			samples = append(samples, r.lookup(views[0], "nobody"))
			if gap := next - r.clock.Load(); gap > 1 {
				r.clock.Add(1 + rng.Int64N(gap-1))
			}
		}
		// Ingest after a read happens at a later millisecond: the log
		// stamps visibility in milliseconds.
		r.clock.Add(1)
	}
	return samples
}

// writeSpine writes samples' (user, at) as a Parquet spine with a label.
func writeSpine(t testing.TB, path string, samples []sample) {
	t.Helper()
	sc := arrow.NewSchema([]arrow.Field{
		{Name: "user_id", Type: arrow.BinaryTypes.String},
		{Name: "event_timestamp", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}},
		{Name: "label", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	defer b.Release()
	for i, s := range samples {
		b.Field(0).(*array.StringBuilder).Append(s.user)
		b.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(s.at * 1000))
		if i%7 == 3 {
			b.Field(2).AppendNull()
		} else {
			b.Field(2).(*array.Int64Builder).Append(int64(i))
		}
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	sink := export.NewParquetFile(path)
	if err := sink.Begin(sc); err != nil {
		t.Fatal(err)
	}
	if err := sink.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := sink.Commit(); err != nil {
		t.Fatal(err)
	}
}

// memSink collects an export's batches.
type memSink struct {
	schema *arrow.Schema
	recs   []arrow.RecordBatch
}

func (m *memSink) Begin(sc *arrow.Schema) error { m.schema = sc; return nil }
func (m *memSink) Write(rec arrow.RecordBatch) error {
	rec.Retain()
	m.recs = append(m.recs, rec)
	return nil
}

// column returns the values of the named column over all batches, as
// Results (null: not present).
func (m *memSink) column(t testing.TB, name string, kind aggregate.Kind) []aggregate.Value {
	t.Helper()
	idx := m.schema.FieldIndices(name)
	if len(idx) != 1 {
		t.Fatalf("no column %q in %s", name, m.schema)
	}
	var out []aggregate.Value
	for _, rec := range m.recs {
		a := rec.Column(idx[0])
		for i := 0; i < a.Len(); i++ {
			out = append(out, arrowValue(a, i))
		}
	}
	return out
}

func arrowValue(a arrow.Array, i int) aggregate.Value {
	if a.IsNull(i) {
		return aggregate.Value{}
	}
	if l, ok := a.(*array.List); ok {
		s, e := l.ValueOffsets(i)
		v := aggregate.Value{Kind: aggregate.KindList, L: []aggregate.Value{}}
		for j := s; j < e; j++ {
			v.L = append(v.L, codec.ValueAt(l.ListValues(), int(j)))
		}
		return v
	}
	return codec.ValueAt(a, i)
}

// compare checks every exported value against the online answers, bit for
// bit: value (or null) and status.
func compare(t testing.TB, m *memSink, samples []sample, fullNames bool) {
	t.Helper()
	mismatches := 0
	for _, v := range uniqueViews(samples) {
		for fi, f := range v.Features {
			name := f.Name
			if fullNames {
				// allRefs pins every reference, and a pinned full name
				// keeps its pin, as lookups name it.
				name = fmt.Sprintf("%s@v%d__%s", v.Name, v.Version, f.Name)
			}
			vals := m.column(t, name, 0)
			stats := m.column(t, name+"__status", 0)
			for i, s := range samples {
				if s.view != v {
					continue
				}
				want := s.results[fi]
				got := aggregate.Result{Value: vals[i], Status: statusOf(stats[i].S)}
				wantV := want.Value
				if want.Status != aggregate.StatusPresent {
					wantV = aggregate.Value{}
				}
				if got.Status != want.Status || !aggregatetest.Equal(aggregate.Result{Value: got.Value}, aggregate.Result{Value: wantV}, 0) {
					mismatches++
					if mismatches <= 10 {
						t.Errorf("row %d %s@%d %s: export %+v %v, online %+v %v", i, s.user, s.at, name, got.Value, got.Status, wantV, want.Status)
					}
				}
			}
		}
	}
	if mismatches > 0 {
		t.Fatalf("%d mismatches", mismatches)
	}
}

func uniqueViews(samples []sample) []*registry.View {
	var out []*registry.View
	seen := map[*registry.View]bool{}
	for _, s := range samples {
		if !seen[s.view] {
			seen[s.view] = true
			out = append(out, s.view)
		}
	}
	return out
}

func allRefs(reg *registry.Registry) []string {
	var refs []string
	for _, v := range reg.Snapshot().Views() {
		for _, f := range v.Features {
			refs = append(refs, fmt.Sprintf("%s@v%d:%s", v.Name, v.Version, f.Name))
		}
	}
	return refs
}

// statusOf reads a "__status" column's text (export.StatusName) back.
func statusOf(s string) aggregate.Status {
	for _, st := range []aggregate.Status{aggregate.StatusPresent, aggregate.StatusNull, aggregate.StatusNotFound} {
		if export.StatusName(st) == s {
			return st
		}
	}
	return aggregate.StatusNotFound
}
