package offline

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/ingest"
	"github.com/featured-dev/featured/offline/eventlog"
	"github.com/featured-dev/featured/offline/export"
	"github.com/featured-dev/featured/registry"
)

const twoKeyDefs = `
entities:
  - {name: user, join_key: user_id, type: string}
  - {name: store, join_key: store_id, type: int64}
sources:
  - {name: tx, kind: push, entity_key: user_id, event_time: ts, fields: {amount: float64}}
  - {name: visits, kind: push, entity_key: store_id, event_time: ts, fields: {dur: int64}}
feature_views:
  - name: u
    entity: user
    source: tx
    ttl: 30d
    features:
      - {name: tx_count, aggregation: count}
      - {name: tx_sum, aggregation: sum, field: amount}
  - name: s
    entity: store
    source: visits
    ttl: 30d
    features:
      - {name: visit_count, aggregation: count}
      - {name: dur_max, aggregation: max, field: dur}
`

// TestExportTwoEntityKeys exports views of a string-keyed and an int64-keyed
// entity in one request (two groups, two sources, spine rows whose two keys
// are unrelated), in memory and through spill buckets, into memory and
// through the Parquet file writer, against values computed by hand.
func TestExportTwoEntityKeys(t *testing.T) {
	dir := t.TempDir()
	const start = int64(1_800_000_000_000)
	reg, err := registry.Open(filepath.Join(dir, "registry.json"))
	if err != nil {
		t.Fatal(err)
	}
	defs, err := registry.ParseYAML([]byte(twoKeyDefs))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Apply(defs); err != nil {
		t.Fatal(err)
	}
	if err := reg.Close(); err != nil {
		t.Fatal(err)
	}
	r := newRig(t, dir, start+3_600_000, eventlog.Options{SegmentBytes: 4096, RowGroupRows: 7})
	defer r.close()
	// Event i (0..29) of user u<i%3> and of store 100+i%4, a minute apart;
	// user amount i, store duration 10*i.
	ctx := context.Background()
	for i := int64(0); i < 30; i++ {
		ts := aggregate.Value{Kind: aggregate.KindInt64, I: start + i*60_000}
		if _, err := r.pusher.PushValues(ctx, "tx", []map[string]aggregate.Value{{
			"user_id": {Kind: aggregate.KindString, S: fmt.Sprintf("u%d", i%3)}, "ts": ts,
			"amount": {Kind: aggregate.KindFloat64, F: float64(i)},
		}}, ingest.PushOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := r.pusher.PushValues(ctx, "visits", []map[string]aggregate.Value{{
			"store_id": {Kind: aggregate.KindInt64, I: 100 + i%4}, "ts": ts,
			"dur": {Kind: aggregate.KindInt64, I: 10 * i},
		}}, ingest.PushOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.store.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// The spine: every (user, store) pair at a few instants, one before
	// any event and one for an unknown store.
	type row struct {
		user  string
		store int64
		t     int64
	}
	var rows []row
	for _, at := range []int64{-1, 0, 7, 15, 29, 40} {
		for u := 0; u < 3; u++ {
			for s := int64(100); s < 105; s++ {
				rows = append(rows, row{fmt.Sprintf("u%d", u), s, start + at*60_000 + 30_000})
			}
		}
	}
	sc := arrow.NewSchema([]arrow.Field{
		{Name: "store_id", Type: arrow.PrimitiveTypes.Int32},
		{Name: "user_id", Type: arrow.BinaryTypes.String},
		{Name: "event_timestamp", Type: arrow.PrimitiveTypes.Int64},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	for _, rw := range rows {
		b.Field(0).(*array.Int32Builder).Append(int32(rw.store))
		b.Field(1).(*array.StringBuilder).Append(rw.user)
		b.Field(2).(*array.Int64Builder).Append(rw.t)
	}
	rec := b.NewRecordBatch()
	b.Release()
	spine := filepath.Join(dir, "spine.parquet")
	sink := export.NewParquetFile(spine)
	if err := sink.Begin(sc); err != nil {
		t.Fatal(err)
	}
	if err := sink.Write(rec); err != nil {
		t.Fatal(err)
	}
	rec.Release()
	if err := sink.Commit(); err != nil {
		t.Fatal(err)
	}

	// Expected, by event time (export.ModeEvent: every event with time <= T).
	want := func(rw row) (txCount int64, txSum float64, visits int64, durMax aggregate.Value) {
		for i := int64(0); i < 30; i++ {
			if start+i*60_000 > rw.t {
				break
			}
			if fmt.Sprintf("u%d", i%3) == rw.user {
				txCount++
				txSum += float64(i)
			}
			if 100+i%4 == rw.store {
				visits++
				durMax = aggregate.Value{Kind: aggregate.KindInt64, I: 10 * i}
			}
		}
		return
	}
	req := export.Request{Features: []string{"s:visit_count", "u:tx_count", "s:dur_max", "u:tx_sum"}, Mode: export.ModeEvent, Statuses: true}
	check := func(t *testing.T, m *memSink) {
		t.Helper()
		names := []string{"store_id", "user_id", "event_timestamp", "visit_count", "visit_count__status", "dur_max", "dur_max__status", "tx_count", "tx_count__status", "tx_sum", "tx_sum__status"}
		if len(m.schema.Fields()) != len(names) {
			t.Fatalf("schema %s, want columns %v", m.schema, names)
		}
		for i, n := range names {
			if m.schema.Field(i).Name != n {
				t.Fatalf("column %d is %q, want %q (schema %s)", i, m.schema.Field(i).Name, n, m.schema)
			}
		}
		visits, durMax := m.column(t, "visit_count", 0), m.column(t, "dur_max", 0)
		txCount, txSum := m.column(t, "tx_count", 0), m.column(t, "tx_sum", 0)
		vStatus := m.column(t, "visit_count__status", 0)
		if len(visits) != len(rows) {
			t.Fatalf("%d rows, want %d", len(visits), len(rows))
		}
		for i, rw := range rows {
			wc, ws, wv, wd := want(rw)
			gotStatus := vStatus[i].S
			if wv == 0 {
				// No event of the store yet: no state.
				if gotStatus != "NOT_FOUND" || visits[i].Kind != aggregate.KindNull {
					t.Errorf("row %d %+v: visit_count %+v %s, want NOT_FOUND", i, rw, visits[i], gotStatus)
				}
			} else if visits[i].I != wv || durMax[i].Kind != wd.Kind || durMax[i].I != wd.I || gotStatus != "PRESENT" {
				t.Errorf("row %d %+v: visits %+v dur_max %+v (%s), want %d %+v", i, rw, visits[i], durMax[i], gotStatus, wv, wd)
			}
			if wc == 0 {
				if txCount[i].Kind != aggregate.KindNull {
					t.Errorf("row %d %+v: tx_count %+v, want null", i, rw, txCount[i])
				}
			} else if txCount[i].I != wc || txSum[i].F != ws {
				t.Errorf("row %d %+v: tx_count %+v tx_sum %+v, want %d %v", i, rw, txCount[i], txSum[i], wc, ws)
			}
		}
	}
	for _, mem := range []int64{0, 1} {
		t.Run(fmt.Sprintf("memory=%d", mem), func(t *testing.T) {
			rq := req
			rq.MemoryBytes = mem
			var m memSink
			st, err := r.x.Export(ctx, spine, "", rq, &m)
			if err != nil {
				t.Fatal(err)
			}
			if (mem == 1) != st.SpillUsed {
				t.Fatalf("memory %d: spilled %v (%d buckets)", mem, st.SpillUsed, st.Buckets)
			}
			check(t, &m)
			// The same through the Parquet writer, read back.
			out := filepath.Join(dir, fmt.Sprintf("out-%d.parquet", mem))
			if _, err := r.x.ExportFile(ctx, spine, "", rq, out); err != nil {
				t.Fatal(err)
			}
			check(t, readParquet(t, out))
		})
	}
}

// readParquet reads a Parquet file into a memSink.
func readParquet(t *testing.T, path string) *memSink {
	t.Helper()
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 1 << 16}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	rr, err := fr.GetRecordReader(context.Background(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rr.Release()
	m := &memSink{schema: rr.Schema()}
	for rr.Next() {
		m.Write(rr.RecordBatch())
	}
	if err := rr.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}
