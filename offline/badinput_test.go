package offline

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/featured-dev/featured/offline/eventlog"
	"github.com/featured-dev/featured/offline/export"
	"github.com/featured-dev/featured/offline/internal/codec"
)

// writeParquet writes one record of the given columns.
func writeParquet(t *testing.T, path string, fields []arrow.Field, fill func(b *array.RecordBuilder)) {
	t.Helper()
	sc := arrow.NewSchema(fields, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	defer b.Release()
	fill(b)
	rec := b.NewRecordBatch()
	defer rec.Release()
	s := export.NewParquetFile(path)
	if err := s.Begin(sc); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
}

// TestExportBadInput: every bad input is an export.ErrBadInput naming what is
// wrong, and leaves nothing at the output path (nor a temporary file).
func TestExportBadInput(t *testing.T) {
	dir := t.TempDir()
	r := newRig(t, dir, 1_800_000_000_000, eventlog.Options{})
	defer r.close()
	r.streamTo(t, 3, 2, 10)
	in := filepath.Join(dir, "in")
	os.Mkdir(in, 0o755)
	file := func(name, content string) string {
		p := filepath.Join(in, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	strKey := arrow.Field{Name: "user_id", Type: arrow.BinaryTypes.String}
	ts := arrow.Field{Name: "event_timestamp", Type: codec.TimestampMS}
	intKey := filepath.Join(in, "intkey.parquet")
	writeParquet(t, intKey, []arrow.Field{{Name: "user_id", Type: arrow.PrimitiveTypes.Int64}, ts}, func(b *array.RecordBuilder) {
		b.Field(0).(*array.Int64Builder).Append(1)
		b.Field(1).(*array.TimestampBuilder).Append(1)
	})
	strTime := filepath.Join(in, "strtime.parquet")
	writeParquet(t, strTime, []arrow.Field{strKey, {Name: "event_timestamp", Type: arrow.BinaryTypes.String}}, func(b *array.RecordBuilder) {
		b.Field(0).(*array.StringBuilder).Append("u")
		b.Field(1).(*array.StringBuilder).Append("yesterday")
	})
	nullKey := filepath.Join(in, "nullkey.parquet")
	writeParquet(t, nullKey, []arrow.Field{{Name: "user_id", Type: arrow.BinaryTypes.String, Nullable: true}, ts}, func(b *array.RecordBuilder) {
		b.Field(0).AppendNull()
		b.Field(1).(*array.TimestampBuilder).Append(1)
	})
	good := file("good.csv", "user_id,event_timestamp\nuser-000,1800000000000\n")
	cases := []struct {
		name  string
		spine string
		req   export.Request
		want  string
	}{
		{"no key column", file("nokey.csv", "user,event_timestamp\nu,1\n"), export.Request{Features: []string{"spend:cnt_1h"}}, `no column "user_id"`},
		{"no time column", file("notime.csv", "user_id,ts\nu,1\n"), export.Request{Features: []string{"spend:cnt_1h"}}, `no column "event_timestamp"`},
		{"bad csv time", file("badtime.csv", "user_id,event_timestamp\nu,soon\n"), export.Request{Features: []string{"spend:cnt_1h"}}, `line 2, column "event_timestamp"`},
		{"int key for a string entity", intKey, export.Request{Features: []string{"spend:cnt_1h"}}, `column "user_id" is int64, want a string column`},
		{"string time column", strTime, export.Request{Features: []string{"spend:cnt_1h"}}, `column "event_timestamp" is utf8`},
		{"null key", nullKey, export.Request{Features: []string{"spend:cnt_1h"}}, `spine row 0: "user_id" is null`},
		{"unknown feature", good, export.Request{Features: []string{"spend:nope"}}, `nope`},
		{"unknown view", good, export.Request{Features: []string{"nope:cnt_1h"}}, `nope`},
		{"unknown version", good, export.Request{Features: []string{"spend@v9:cnt_1h"}}, `v9`},
		{"unknown service", good, export.Request{Service: "nope"}, `nope`},
		{"no features", good, export.Request{}, `no features`},
		{"bad mode", good, export.Request{Features: []string{"spend:cnt_1h"}, Mode: "later"}, `mode "later"`},
		{"duplicate names", good, export.Request{Features: []string{"spend:last_merchant", "short:last_merchant"}}, `named twice`},
		{"unreadable parquet", file("junk.parquet", "PAR1 this is not parquet"), export.Request{Features: []string{"spend:cnt_1h"}}, `not a readable Parquet file`},
		{"missing file", filepath.Join(in, "missing.csv"), export.Request{Features: []string{"spend:cnt_1h"}}, `missing.csv`},
		{"unknown extension", file("spine.txt", "x"), export.Request{Features: []string{"spend:cnt_1h"}}, `.parquet or .csv`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			outDir := t.TempDir()
			out := filepath.Join(outDir, "train.parquet")
			_, err := r.x.ExportFile(context.Background(), tc.spine, "", tc.req, out)
			if !errors.Is(err, export.ErrBadInput) {
				t.Fatalf("err = %v, want export.ErrBadInput", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to say %q", err, tc.want)
			}
			if ents, _ := os.ReadDir(outDir); len(ents) != 0 {
				t.Fatalf("left %v in the output dir", ents[0].Name())
			}
		})
	}
}
