package export

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/featured-dev/featured/offline/internal/codec"
)

// TestColumnParallelWriter writes the same batches of every flat type
// (with nulls, and a required column) through the column-parallel writer
// and through pqarrow.FileWriter: both files must read back to the same
// schema (the stored Arrow schema included), row groups and values.
func TestColumnParallelWriter(t *testing.T) {
	md := arrow.NewMetadata([]string{"k"}, []string{"v"})
	sc := arrow.NewSchema([]arrow.Field{
		{Name: "b", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
		{Name: "i8", Type: arrow.PrimitiveTypes.Int8, Nullable: true},
		{Name: "i16", Type: arrow.PrimitiveTypes.Int16, Nullable: true},
		{Name: "i32", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
		{Name: "i64", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "required", Type: arrow.PrimitiveTypes.Int64},
		{Name: "u8", Type: arrow.PrimitiveTypes.Uint8, Nullable: true},
		{Name: "u16", Type: arrow.PrimitiveTypes.Uint16, Nullable: true},
		{Name: "u32", Type: arrow.PrimitiveTypes.Uint32, Nullable: true},
		{Name: "u64", Type: arrow.PrimitiveTypes.Uint64, Nullable: true},
		{Name: "f32", Type: arrow.PrimitiveTypes.Float32, Nullable: true},
		{Name: "f64", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "ls", Type: arrow.BinaryTypes.LargeString, Nullable: true},
		{Name: "bin", Type: arrow.BinaryTypes.Binary, Nullable: true},
		{Name: "lbin", Type: arrow.BinaryTypes.LargeBinary, Nullable: true},
		{Name: "d32", Type: arrow.FixedWidthTypes.Date32, Nullable: true},
		{Name: "ts_ms", Type: codec.TimestampMS, Nullable: true},
		{Name: "ts_us", Type: &arrow.TimestampType{Unit: arrow.Microsecond}, Nullable: true},
	}, &md)
	if !flatSchema(sc) {
		t.Fatal("flatSchema: false for a flat schema")
	}
	if flatSchema(arrow.NewSchema([]arrow.Field{{Name: "l", Type: arrow.ListOf(arrow.PrimitiveTypes.Int64)}}, nil)) {
		t.Fatal("flatSchema: true for a list column")
	}
	rng := rand.New(rand.NewPCG(3, 4))
	var recs []arrow.RecordBatch
	for _, n := range []int{1000, 1, 70_000} {
		b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
		for i := 0; i < n; i++ {
			for c, f := range sc.Fields() {
				fb := b.Field(c)
				if f.Nullable && rng.IntN(5) == 0 {
					fb.AppendNull()
					continue
				}
				v := rng.Int64()
				switch fb := fb.(type) {
				case *array.BooleanBuilder:
					fb.Append(v&1 == 1)
				case *array.Int8Builder:
					fb.Append(int8(v))
				case *array.Int16Builder:
					fb.Append(int16(v))
				case *array.Int32Builder:
					fb.Append(int32(v))
				case *array.Int64Builder:
					fb.Append(v)
				case *array.Uint8Builder:
					fb.Append(uint8(v))
				case *array.Uint16Builder:
					fb.Append(uint16(v))
				case *array.Uint32Builder:
					fb.Append(uint32(v))
				case *array.Uint64Builder:
					fb.Append(uint64(v))
				case *array.Float32Builder:
					fb.Append(float32(v) / 7)
				case *array.Float64Builder:
					fb.Append(float64(v) / 7)
				case *array.StringBuilder:
					fb.Append(fmt.Sprint(v % 1000))
				case *array.LargeStringBuilder:
					fb.Append(fmt.Sprint(v))
				case *array.BinaryBuilder:
					fb.Append([]byte(fmt.Sprint(v % 97)))
				case *array.Date32Builder:
					fb.Append(arrow.Date32(v % 100_000))
				case *array.TimestampBuilder:
					fb.Append(arrow.Timestamp(v % 4_000_000_000_000))
				default:
					t.Fatalf("no generator for %T", fb)
				}
			}
		}
		recs = append(recs, b.NewRecordBatch())
		b.Release()
	}
	defer func() {
		for _, r := range recs {
			r.Release()
		}
	}()
	for _, tc := range []struct {
		maxRows int64
		groups  int
		dict    bool
	}{{1 << 20, 3, false}, {50_000, 4, false}, {1 << 20, 3, true}} {
		t.Run(fmt.Sprintf("max-row-group-%d-dictionary-%v", tc.maxRows, tc.dict), func(t *testing.T) {
			props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Snappy),
				parquet.WithDictionaryDefault(tc.dict), parquet.WithMaxRowGroupLength(tc.maxRows),
				parquet.WithDataPageSize(4<<10))
			compareWriters(t, sc, recs, props, tc.groups)
		})
	}
}

func compareWriters(t *testing.T, sc *arrow.Schema, recs []arrow.RecordBatch, props *parquet.WriterProperties, groups int) {
	dir := t.TempDir()
	arrProps := pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema())
	write := func(name string, parallel bool) string {
		path := filepath.Join(dir, name)
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		var w parquetWriter
		if parallel {
			w, err = newColumnParallelWriter(sc, f, props, arrProps)
		} else {
			w, err = pqarrow.NewFileWriter(sc, f, props, arrProps)
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if err := w.Write(r); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return path
	}
	got, want := readTable(t, write("parallel.parquet", true), groups), readTable(t, write("serial.parquet", false), groups)
	defer got.Release()
	defer want.Release()
	if !got.Schema().Equal(want.Schema()) || !got.Schema().Metadata().Equal(want.Schema().Metadata()) {
		t.Fatalf("schema:\n%s\nwant\n%s", got.Schema(), want.Schema())
	}
	if got.NumRows() != 71_001 || got.NumRows() != want.NumRows() {
		t.Fatalf("%d rows, want %d", got.NumRows(), want.NumRows())
	}
	for c := 0; c < int(got.NumCols()); c++ {
		if !array.ChunkedEqual(got.Column(c).Data(), want.Column(c).Data()) {
			t.Errorf("column %s differs", sc.Field(c).Name)
		}
	}
}

func readTable(t *testing.T, path string, groups int) arrow.Table {
	t.Helper()
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	if n := pf.NumRowGroups(); n != groups {
		t.Fatalf("%s: %d row groups, want %d", path, n, groups)
	}
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 1 << 16}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}
