package export

import (
	"bytes"
	"encoding/csv"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/internal/keyenc"
	"github.com/featured-dev/featured/offline/internal/codec"
)

const maxFuzzSpine = 64 << 10

// spineRow is what an export takes from one spine row: the entity key's
// keyenc bytes and the instant.
type spineRow struct {
	key string
	t   int64
}

// fuzzReadSpine reads a spine the way an export does (readSpine, one group
// keyed on joinKey). Every error must be an ErrBadInput.
func fuzzReadSpine(t *testing.T, path, format, joinKey string, kind aggregate.Kind, timeCol string) ([]spineRow, bool) {
	t.Helper()
	keys := map[string]aggregate.Kind{joinKey: kind}
	var rows []spineRow
	recs, n, err := (&Exporter{}).readSpine(&spineSource{path: path, format: format, size: -1}, keys, timeCol, []*group{{joinKeys: []string{joinKey}, keyKinds: []aggregate.Kind{kind}}}, true,
		func(_ int, key []byte, row, ms int64) {
			if row != int64(len(rows)) {
				t.Fatalf("row %d after %d rows", row, len(rows))
			}
			rows = append(rows, spineRow{string(key), ms})
		})
	for _, r := range recs {
		r.Release()
	}
	if err != nil {
		if !errors.Is(err, ErrBadInput) {
			t.Fatalf("spine error is not an ErrBadInput: %v", err)
		}
		return nil, false
	}
	if n != int64(len(rows)) {
		t.Fatalf("readSpine counted %d rows, saw %d", n, len(rows))
	}
	return rows, true
}

// FuzzSpineCSV feeds arbitrary bytes to the CSV spine reader, with a string
// and an int64 join key. What it accepts must agree, row by row, with
// encoding/csv and the documented cell rules (keys as written, integer keys
// trimmed, times by parseTime).
func FuzzSpineCSV(f *testing.F) {
	for _, s := range []string{
		"user_id,event_timestamp,label\nu1,2026-11-24T10:00:00Z,1\nu2,1764000000000,0\n",
		" user_id , event_timestamp \n 42 ,2026-11-24 10:00:00.5\n-7,2026-11-24\n",
		"user_id,event_timestamp\n\"u,1\",\"2026-11-24T10:00:00+01:00\"\n\"\x00\xff\",0\n",
		"user_id,event_timestamp\n,1\n",
		"user_id,event_timestamp\nu1,\n",
		"user_id,user_id,event_timestamp\nu,u,1\n",
		"event_timestamp\n1\n",
		"user_id,event_timestamp\nu1,1,extra\n",
		"user_id,event_timestamp\n9223372036854775808,1\n",
		"user_id,event_timestamp\n\"unterminated,1\n",
		"\xef\xbb\xbfuser_id,event_timestamp\nu,1\n",
		"",
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	path := filepath.Join(dir, "spine.csv")
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxFuzzSpine {
			return
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, kind := range []aggregate.Kind{aggregate.KindString, aggregate.KindInt64} {
			rows, ok := fuzzReadSpine(t, path, "csv", "user_id", kind, DefaultTimeColumn)
			if !ok {
				continue
			}
			want := csvReference(t, data, kind)
			if len(want) != len(rows) {
				t.Fatalf("%q (%s key): %d rows, encoding/csv reads %d", data, kind, len(rows), len(want))
			}
			for i := range rows {
				if rows[i] != want[i] {
					t.Fatalf("%q (%s key): row %d is %+v, want %+v", data, kind, i, rows[i], want[i])
				}
			}
		}
	})
}

// csvReference computes an accepted CSV spine's rows independently of the
// spine reader.
func csvReference(t *testing.T, data []byte, kind aggregate.Kind) []spineRow {
	recs, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	if err != nil || len(recs) == 0 {
		t.Fatalf("%q: the spine reader accepted what encoding/csv rejects: %v", data, err)
	}
	kc, tc := -1, -1
	for i, h := range recs[0] {
		switch strings.TrimSpace(h) {
		case "user_id":
			kc = i
		case DefaultTimeColumn:
			tc = i
		}
	}
	var out []spineRow
	for _, rec := range recs[1:] {
		var v aggregate.Value
		if kind == aggregate.KindInt64 {
			n, err := strconv.ParseInt(strings.TrimSpace(rec[kc]), 10, 64)
			if err != nil {
				t.Fatalf("%q: key %q accepted as an integer", data, rec[kc])
			}
			v = aggregate.Value{Kind: aggregate.KindInt64, I: n}
		} else {
			v = aggregate.Value{Kind: aggregate.KindString, S: rec[kc]}
		}
		key, err := keyenc.AppendEntity(nil, v)
		if err != nil {
			t.Fatal(err)
		}
		ms, err := parseTime(rec[tc])
		if err != nil {
			t.Fatalf("%q: time %q accepted, parseTime says %v", data, rec[tc], err)
		}
		out = append(out, spineRow{string(key), ms})
	}
	return out
}

// FuzzSpineParquet feeds arbitrary bytes to the Parquet spine reader (the
// seeds are valid spines of several column types). What it accepts must
// re-encode: its batches written back to Parquet read as the same rows.
func FuzzSpineParquet(f *testing.F) {
	dir := f.TempDir()
	for i, seed := range parquetSeeds() {
		p := filepath.Join(dir, "seed"+strconv.Itoa(i)+".parquet")
		writeSpineParquet(f, p, seed.sc, seed.fill)
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("PAR1PAR1"))
	f.Add([]byte("PAR1\x00\x00\x00\x00\x08\x00\x00\x00PAR1"))
	f.Add([]byte{})
	path := filepath.Join(dir, "spine.parquet")
	again := filepath.Join(dir, "again.parquet")
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxFuzzSpine {
			return
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, kind := range []aggregate.Kind{aggregate.KindString, aggregate.KindInt64} {
			rows, ok := fuzzReadSpine(t, path, "parquet", "user_id", kind, DefaultTimeColumn)
			if !ok {
				continue
			}
			sr, err := openSpine(path, "parquet", map[string]aggregate.Kind{"user_id": kind}, DefaultTimeColumn)
			if err != nil {
				t.Fatalf("second open: %v", err)
			}
			var recs []arrow.RecordBatch
			for {
				rec, err := sr.next()
				if err != nil {
					break
				}
				recs = append(recs, rec)
			}
			sc := sr.schema()
			sr.close()
			s := NewParquetFile(again)
			err = s.Begin(sc)
			for _, rec := range recs {
				if err == nil {
					err = s.Write(rec)
				}
				rec.Release()
			}
			if err == nil {
				err = s.Commit()
			}
			if err != nil {
				t.Fatalf("accepted spine does not write back: %v", err)
			}
			back, ok := fuzzReadSpine(t, again, "parquet", "user_id", kind, DefaultTimeColumn)
			if !ok {
				t.Fatalf("accepted spine, written back, is rejected")
			}
			if len(back) != len(rows) {
				t.Fatalf("written back: %d rows, was %d", len(back), len(rows))
			}
			for i := range rows {
				if rows[i] != back[i] {
					t.Fatalf("written back: row %d is %+v, was %+v", i, back[i], rows[i])
				}
			}
		}
	})
}

type parquetSeed struct {
	sc   *arrow.Schema
	fill func(b *array.RecordBuilder)
}

func parquetSeeds() []parquetSeed {
	str := arrow.BinaryTypes.String
	us := &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}
	return []parquetSeed{
		{arrow.NewSchema([]arrow.Field{{Name: "user_id", Type: str, Nullable: true}, {Name: DefaultTimeColumn, Type: codec.TimestampMS, Nullable: true}, {Name: "label", Type: arrow.PrimitiveTypes.Float64}}, nil),
			func(b *array.RecordBuilder) {
				b.Field(0).(*array.StringBuilder).AppendValues([]string{"u1", "u2", "\x00"}, nil)
				b.Field(1).(*array.TimestampBuilder).AppendValues([]arrow.Timestamp{1_764_000_000_000, -1, 0}, nil)
				b.Field(2).(*array.Float64Builder).AppendValues([]float64{1, 0, 0.5}, nil)
			}},
		{arrow.NewSchema([]arrow.Field{{Name: "user_id", Type: arrow.PrimitiveTypes.Int32, Nullable: true}, {Name: DefaultTimeColumn, Type: us, Nullable: true}}, nil),
			func(b *array.RecordBuilder) {
				b.Field(0).(*array.Int32Builder).AppendValues([]int32{1, -1, 1 << 30}, nil)
				b.Field(1).(*array.TimestampBuilder).AppendValues([]arrow.Timestamp{1_764_000_000_000_123, -1, 7}, nil)
			}},
		{arrow.NewSchema([]arrow.Field{{Name: "user_id", Type: arrow.PrimitiveTypes.Int64, Nullable: true}, {Name: DefaultTimeColumn, Type: arrow.PrimitiveTypes.Int64, Nullable: true}}, nil),
			func(b *array.RecordBuilder) {
				b.Field(0).(*array.Int64Builder).AppendValues([]int64{-1 << 63, 0}, nil)
				b.Field(1).(*array.Int64Builder).AppendValues([]int64{0, 1<<63 - 1}, nil)
			}},
		{arrow.NewSchema([]arrow.Field{{Name: "user_id", Type: str, Nullable: true}, {Name: DefaultTimeColumn, Type: arrow.FixedWidthTypes.Date32, Nullable: true}}, nil),
			func(b *array.RecordBuilder) {
				b.Field(0).(*array.StringBuilder).AppendValues([]string{"a", ""}, []bool{true, false})
				b.Field(1).(*array.Date32Builder).AppendValues([]arrow.Date32{20000, 0}, nil)
			}},
	}
}

func writeSpineParquet(tb testing.TB, path string, sc *arrow.Schema, fill func(b *array.RecordBuilder)) {
	tb.Helper()
	b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	defer b.Release()
	fill(b)
	rec := b.NewRecordBatch()
	defer rec.Release()
	s := NewParquetFile(path)
	if err := s.Begin(sc); err != nil {
		tb.Fatal(err)
	}
	if err := s.Write(rec); err != nil {
		tb.Fatal(err)
	}
	if err := s.Commit(); err != nil {
		tb.Fatal(err)
	}
}
