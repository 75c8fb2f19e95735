package offline

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/aggregate/aggregatetest"
)

// TestSkew is the skew test: random streams (every operator,
// several windows, late events within and beyond a view's TTL) go through
// the real ingest and store on an injected clock; online answers are
// recorded at many instants; an export of the same (entity, instant) pairs
// must give every value bit for bit, with the same status. It runs with the
// log's rows in the WAL only, in Parquet files after many segment
// rotations, and through spill buckets.
func TestSkew(t *testing.T) {
	cases := []struct {
		name   string
		log    Options
		memory int64
	}{
		{name: "wal", log: Options{}},
		{name: "parquet", log: Options{SegmentBytes: 4096, RowGroupRows: 50}},
		{name: "spill", log: Options{SegmentBytes: 8192}, memory: 1},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			r := newRig(t, dir, 1_800_000_000_000, tc.log)
			defer r.close()
			samples := r.streamTo(t, uint64(100+i), 12, 120)
			spine := filepath.Join(dir, "spine.parquet")
			writeSpine(t, spine, samples)
			var m memSink
			st, err := r.x.Export(context.Background(), spine, "", Request{
				Features: allRefs(r.reg), Statuses: true, FullNames: true, MemoryBytes: tc.memory,
			}, &m)
			if err != nil {
				t.Fatal(err)
			}
			if st.Rows != int64(len(samples)) {
				t.Fatalf("exported %d rows, want %d", st.Rows, len(samples))
			}
			if tc.memory == 1 && st.Buckets < 2 {
				t.Fatalf("spill case ran in %d bucket", st.Buckets)
			}
			t.Logf("%d samples, %d log rows (%d events rejected), %d buckets", len(samples), st.LogRows, r.rejected, st.Buckets)
			if r.rejected > len(samples)/20 {
				t.Fatalf("%d events rejected: the stream does not exercise the views", r.rejected)
			}
			if tc.log.RowGroupRows > 0 {
				files, err := listLogFiles(r.log.dir, "tx")
				if err != nil || len(files) < 3 {
					t.Fatalf("%d Parquet log files (%v), want several", len(files), err)
				}
			}
			compare(t, &m, samples, true)
			if tc.name != "wal" {
				return
			}
			// The control: event-time mode must differ somewhere, since
			// late events arrived after instants that they precede.
			var ev memSink
			if _, err := r.x.Export(context.Background(), spine, "", Request{
				Features: allRefs(r.reg), Statuses: true, FullNames: true, Mode: ModeEvent,
			}, &ev); err != nil {
				t.Fatal(err)
			}
			if !differs(t, &ev, &m) {
				t.Fatal("event-time export equals the served export: the stream has no late arrivals to tell them apart")
			}
		})
	}
}

// differs reports whether two exports of one spine differ in any feature
// column.
func differs(t *testing.T, a, b *memSink) bool {
	t.Helper()
	for _, f := range a.schema.Fields() {
		if f.Name == "user_id" || f.Name == "event_timestamp" || f.Name == "label" {
			continue
		}
		va, vb := a.column(t, f.Name, 0), b.column(t, f.Name, 0)
		for i := range va {
			if !aggregatetest.Equal(aggregate.Result{Value: va[i]}, aggregate.Result{Value: vb[i]}, 0) {
				return true
			}
		}
	}
	return false
}

// TestVerifySkew samples the store's answers (one Read in two) while a
// random stream is ingested, and verify-skew recomputes them offline: 100%
// match. A tampered sample is reported as a mismatch naming the feature.
func TestVerifySkew(t *testing.T) {
	dir := t.TempDir()
	r := newRig(t, dir, 1_800_000_000_000, Options{})
	r.close()
	r.sampler, r.sampleEvery = NewSampler(0), 2
	r.open()
	defer r.close()
	r.streamTo(t, 31, 6, 60)
	samples := r.sampler.Samples()
	rep, err := r.x.VerifySkew(context.Background(), samples, "")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Values < 1000 || rep.MatchRate != 100 || len(rep.Mismatches) != 0 {
		t.Fatalf("%d samples, %d values, %.3f%%, mismatches %+v", rep.Samples, rep.Values, rep.MatchRate, rep.Mismatches[:min(5, len(rep.Mismatches))])
	}
	// Tamper with one present count.
	for i := range samples {
		if res := samples[i].Results[0]; res.Status == aggregate.StatusPresent && res.Value.Kind == aggregate.KindInt64 {
			samples[i].Results = append([]aggregate.Result(nil), samples[i].Results...)
			samples[i].Results[0].Value.I++
			rep, err := r.x.VerifySkew(context.Background(), samples, "")
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Mismatches) != 1 || rep.MatchRate >= 100 {
				t.Fatalf("tampered sample: %.3f%%, %+v", rep.MatchRate, rep.Mismatches)
			}
			t.Logf("reported: %+v", rep.Mismatches[0])
			return
		}
	}
	t.Fatal("no present int64 first feature to tamper with")
}
