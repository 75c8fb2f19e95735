package export

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/featurestore"
	"github.com/featured-dev/featured/internal/partition"
	"github.com/featured-dev/featured/offline/eventlog"
	"github.com/featured-dev/featured/offline/internal/codec"
	"github.com/featured-dev/featured/registry"
)

var (
	benchSpineRows = flag.Int("bench.spine", 1_000_000, "spine rows of BenchmarkExport")
	benchEntities  = flag.Int("bench.entities", 10_000, "entities of BenchmarkExport")
	benchEvents    = flag.Int("bench.events", 100, "logged events per entity of BenchmarkExport")
)

const benchDefs = `
entities:
  - {name: user, join_key: user_id, type: string}
sources:
  - {name: tx, kind: push, entity_key: user_id, event_time: ts, fields: {amount: float64, items: int64}}
feature_views:
  - name: b
    entity: user
    source: tx
    ttl: 30d
    features:
      - {name: sum_items_1h, aggregation: sum, field: items, window: 1h}
      - {name: sum_items_1d, aggregation: sum, field: items, window: 1d, hop: 5m}
      - {name: sum_items_7d, aggregation: sum, field: items, window: 7d}
      - {name: cnt_1h, aggregation: count, window: 1h}
      - {name: cnt_1d, aggregation: count, window: 1d}
      - {name: last_amount, aggregation: last, field: amount}
      - {name: min_items_1d, aggregation: min, field: items, window: 1d}
      - {name: max_items_1d, aggregation: max, field: items, window: 1d}
      - {name: avg_amount_1d, aggregation: avg, field: amount, window: 1d}
      - {name: cnt_items_life, aggregation: count, field: items}
`

// benchData writes a synthetic offline log (entities x events, in event-time
// order, ingest time = event time, unique times per entity, amount never
// null, items null one time in ten) and a spine whose instants fall after
// each entity's first event.
func benchData(b *testing.B, dir string) (reg *registry.Registry, log *eventlog.Log, spine string) {
	b.Helper()
	reg, err := registry.Open(filepath.Join(dir, "registry.json"))
	if err != nil {
		b.Fatal(err)
	}
	defs, _ := registry.ParseYAML([]byte(benchDefs))
	if _, err := reg.Apply(defs); err != nil {
		b.Fatal(err)
	}
	v, _ := reg.Snapshot().View("b", 0)
	vk := eventlog.ViewKeyInt(featurestore.ViewKey{ID: v.ID, Version: uint32(v.Version)})
	sc := eventlog.NewSchema("tx", []aggregate.Kind{aggregate.KindString}, []string{"amount", "items"}, []aggregate.Kind{aggregate.KindFloat64, aggregate.KindInt64})
	rng := rand.New(rand.NewPCG(1, 2))
	const start = int64(1_800_000_000_000)
	nE, nV := *benchEntities, *benchEvents
	type ev struct {
		ent   int
		t     int64
		items aggregate.Value
		amt   float64
	}
	evs := make([]ev, 0, nE*nV)
	first := make([]int64, nE)
	for e := 0; e < nE; e++ {
		t := start + int64(rng.IntN(600_000))
		for i := 0; i < nV; i++ {
			t += 60_000 + int64(rng.IntN(1_200_000))
			it := aggregate.Value{Kind: aggregate.KindInt64, I: int64(rng.IntN(100))}
			if rng.IntN(10) == 0 {
				it = aggregate.Value{}
			}
			evs = append(evs, ev{e, t, it, float64(rng.IntN(10000)) / 4})
			if i == 0 {
				first[e] = t
			}
		}
	}
	sort.Slice(evs, func(i, j int) bool { return evs[i].t < evs[j].t })
	log, err = eventlog.Open(filepath.Join(dir, "offline"), eventlog.Options{Retention: -1})
	if err != nil {
		b.Fatal(err)
	}
	// One file per shard, row groups of 64k.
	for shard := 0; shard < 2; shard++ {
		path := filepath.Join(dir, "offline", "tx", "2027-01-15", fmt.Sprintf("s%03d-%020d.parquet", shard, 0))
		os.MkdirAll(filepath.Dir(path), 0o755)
		w, err := eventlog.CreateFile(path, sc, 65536)
		if err != nil {
			b.Fatal(err)
		}
		var lsn int64
		var ent []byte
		r := eventlog.NewRow(sc)
		views := []int64{vk}
		for _, e := range evs {
			ent = fmt.Appendf(ent[:0], "u%05d", e.ent)
			if partition.Of(ent, 2) != shard {
				continue
			}
			r.Set(int32(shard), lsn, e.t, e.t, e.t, ent, views)
			lsn++
			r.Fields()[0] = aggregate.Value{Kind: aggregate.KindFloat64, F: e.amt}
			r.Fields()[1] = e.items
			if err := w.Append(r); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
	last := evs[len(evs)-1].t
	spine = filepath.Join(dir, "spine.parquet")
	ssc := arrow.NewSchema([]arrow.Field{
		{Name: "user_id", Type: arrow.BinaryTypes.String},
		{Name: "event_timestamp", Type: codec.TimestampMS},
		{Name: "label", Type: arrow.PrimitiveTypes.Int64},
	}, nil)
	sink := NewParquetFile(spine)
	if err := sink.Begin(ssc); err != nil {
		b.Fatal(err)
	}
	bld := array.NewRecordBuilder(memory.DefaultAllocator, ssc)
	for i := 0; i < *benchSpineRows; i++ {
		e := rng.IntN(nE)
		bld.Field(0).(*array.StringBuilder).Append(fmt.Sprintf("u%05d", e))
		bld.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(first[e] + rng.Int64N(last-first[e]+3_600_000)))
		bld.Field(2).(*array.Int64Builder).Append(int64(i % 2))
		if bld.Field(0).Len() == 1<<16 || i == *benchSpineRows-1 {
			rec := bld.NewRecordBatch()
			sink.Write(rec)
			rec.Release()
		}
	}
	if err := sink.Commit(); err != nil {
		b.Fatal(err)
	}
	return reg, log, spine
}

const duckScript = `
import sys, time, json, duckdb
spine, logs, out = sys.argv[1], sys.argv[2], sys.argv[3]
con = duckdb.connect()
con.execute("SET threads TO 2")
q = """
WITH s AS (SELECT row_number() OVER () - 1 AS rid, user_id, epoch_ms(event_timestamp) AS tms FROM read_parquet('%s')),
q AS (SELECT rid, user_id, tms, CAST(floor((tms - 86400000) / 300000) * 300000 AS BIGINT) - 1 AS tail FROM s),
l AS (SELECT entity AS user_id, epoch_ms(event_time) AS ems, fields.amount AS amount,
             sum(coalesce(fields.items, 0)) OVER (PARTITION BY entity ORDER BY event_time ROWS UNBOUNDED PRECEDING) AS cs
      FROM read_parquet('%s'))
SELECT q.rid, a.amount AS last_amount, coalesce(a.cs, 0) - coalesce(b.cs, 0) AS sum_items_1d
FROM q ASOF LEFT JOIN l a ON q.user_id = a.user_id AND q.tms >= a.ems
       ASOF LEFT JOIN l b ON q.user_id = b.user_id AND q.tail >= b.ems
ORDER BY q.rid
""" % (spine, logs)
t0 = time.time()
tbl = con.execute(q).to_arrow_table()
secs = time.time() - t0
import pyarrow.parquet as pq
pq.write_table(tbl, out)
print(json.dumps({"seconds": secs, "rows": tbl.num_rows}))
`

// BenchmarkExport is the benchmark: export rows/s for a spine of
// -bench.spine rows (default 1M) over the 10 features of view "b", read from
// a log of -bench.entities x -bench.events events; beside it, in the same
// run, DuckDB's ASOF JOIN over the same log files and spine for the windowed
// sum (sum_items_1d, with the 5m-hop sawtooth tail) and the last value
// (last_amount), checked equal to the export, value for value. Run by hand:
//
//	go test -run '^$' -bench BenchmarkExport -benchtime 1x ./offline/
func BenchmarkExport(b *testing.B) {
	dir := b.TempDir()
	t0 := time.Now()
	reg, log, spine := benchData(b, dir)
	defer log.Close()
	b.Logf("data: %d spine rows, %d log events, written in %s", *benchSpineRows, *benchEntities**benchEvents, time.Since(t0).Round(time.Millisecond))
	x := NewExporter(reg, log)
	var refs []string
	v, _ := reg.Snapshot().View("b", 0)
	for _, f := range v.Features {
		refs = append(refs, "b:"+f.Name)
	}
	out := filepath.Join(dir, "train.parquet")
	for _, bc := range []struct {
		name string
		mem  int64
		refs []string
	}{
		{"10-features", 8 << 30, refs},
		{"10-features-default-budget", 0, refs},
		{"10-features-spill-32MiB", 32 << 20, refs},
		{"2-features-as-duckdb", 8 << 30, []string{"b:last_amount", "b:sum_items_1d"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			var st Stats
			cpu0 := processCPU()
			for i := 0; i < b.N; i++ {
				var err error
				st, err = x.ExportFile(context.Background(), spine, "", Request{Features: bc.refs, MemoryBytes: bc.mem}, out)
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(st.Rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
			// CPU time of the whole process (every goroutine) per export:
			// the shared machine's other load inflates wall time, far less
			// this.
			b.ReportMetric((processCPU()-cpu0).Seconds()/float64(b.N), "cpu-s/op")
			b.ReportMetric(float64(st.Buckets), "buckets")
		})
	}

	if _, err := x.ExportFile(context.Background(), spine, "", Request{Features: refs}, out); err != nil {
		b.Fatal(err)
	}
	py, err := exec.LookPath(filepath.Join("..", ".cache", "venv", "bin", "python"))
	if err != nil {
		b.Skipf("no DuckDB venv (scripts/python-env.sh): %v", err)
	}
	duckOut := filepath.Join(dir, "duck.parquet")
	cmd := exec.Command(py, "-c", duckScript, spine, filepath.Join(dir, "offline", "tx", "*", "*.parquet"), duckOut)
	cmd.Stderr = os.Stderr
	res, err := cmd.Output()
	if err != nil {
		b.Fatalf("duckdb: %v", err)
	}
	var dr struct {
		Seconds float64 `json:"seconds"`
		Rows    int     `json:"rows"`
	}
	if err := json.Unmarshal(res, &dr); err != nil || dr.Rows != *benchSpineRows {
		b.Fatalf("duckdb answered %q (%v), want %d rows", res, err, *benchSpineRows)
	}
	b.Logf("duckdb ASOF JOIN (2 features): %d rows in %.3fs = %.0f rows/s", dr.Rows, dr.Seconds, float64(dr.Rows)/dr.Seconds)
	got, want := readColumns(b, out, "last_amount", "sum_items_1d"), readColumns(b, duckOut, "last_amount", "sum_items_1d")
	diff := 0
	for c := range got {
		for i := range got[c] {
			if got[c][i] != want[c][i] {
				if diff++; diff <= 5 {
					b.Errorf("row %d column %d: featured %v, duckdb %v", i, c, got[c][i], want[c][i])
				}
			}
		}
	}
	if diff > 0 {
		b.Fatalf("%d values differ", diff)
	}
	b.Logf("featured and DuckDB agree on all %d x 2 values", len(got[0]))
}

// readColumns reads columns of a Parquet file as comparable values.
func readColumns(b *testing.B, path string, names ...string) [][]any {
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		b.Fatal(err)
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 1 << 16}, memory.DefaultAllocator)
	if err != nil {
		b.Fatal(err)
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	defer tbl.Release()
	out := make([][]any, len(names))
	for c, name := range names {
		col := tbl.Column(tbl.Schema().FieldIndices(name)[0])
		for _, ch := range col.Data().Chunks() {
			for i := 0; i < ch.Len(); i++ {
				if ch.IsNull(i) {
					out[c] = append(out[c], nil)
					continue
				}
				switch a := ch.(type) {
				case *array.Int64:
					out[c] = append(out[c], a.Value(i))
				case *array.Float64:
					out[c] = append(out[c], a.Value(i))
				case *array.Decimal128:
					out[c] = append(out[c], int64(a.Value(i).LowBits()))
				default:
					out[c] = append(out[c], fmt.Sprint(a.ValueStr(i)))
				}
			}
		}
	}
	return out
}

// processCPU is the process's user and system CPU time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
