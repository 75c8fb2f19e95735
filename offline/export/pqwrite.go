package export

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/metadata"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// columnParallelWriter writes a Parquet file of a flat schema (every column
// a primitive, string or binary leaf) with the columns of each row group
// encoded and compressed on all CPUs at once. pqarrow.FileWriter encodes
// them one after another, which made writing the output half of an
// export's time. Each record batch becomes one buffered row group; each
// column's pages, flushed by its own goroutine, go to that column's
// in-memory buffer, and closing the row group copies them to the file in
// column order. The file is the one pqarrow.FileWriter writes, Arrow
// schema (ARROW:schema) included.
type columnParallelWriter struct {
	wr       *file.Writer
	schema   *arrow.Schema
	nullable []bool
	arrProps pqarrow.ArrowWriterProperties
}

// flatSchema reports whether every field of sc is one Parquet leaf that
// WriteArrowToColumn writes as is.
func flatSchema(sc *arrow.Schema) bool {
	for _, f := range sc.Fields() {
		switch f.Type.ID() {
		case arrow.BOOL, arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64,
			arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64,
			arrow.FLOAT32, arrow.FLOAT64, arrow.STRING, arrow.LARGE_STRING,
			arrow.BINARY, arrow.LARGE_BINARY, arrow.DATE32, arrow.TIMESTAMP:
		default:
			return false
		}
	}
	return true
}

func newColumnParallelWriter(sc *arrow.Schema, w io.Writer, props *parquet.WriterProperties, arrProps pqarrow.ArrowWriterProperties) (*columnParallelWriter, error) {
	pqschema, err := pqarrow.ToParquet(sc, props, arrProps)
	if err != nil {
		return nil, err
	}
	if pqschema.NumColumns() != sc.NumFields() {
		return nil, fmt.Errorf("offline: internal error: %d Parquet leaves for %d flat fields", pqschema.NumColumns(), sc.NumFields())
	}
	meta := make(metadata.KeyValueMetadata, 0)
	md := sc.Metadata()
	for i := 0; i < md.Len(); i++ {
		meta.Append(md.Keys()[i], md.Values()[i])
	}
	// As pqarrow.WithStoreSchema: the Arrow schema as an IPC stream with no
	// batches, so readers get back the exact Arrow types (a flat schema
	// needs none of pqarrow's list renaming).
	var buf bytes.Buffer
	iw := ipc.NewWriter(&buf, ipc.WithSchema(sc), ipc.WithAllocator(memory.DefaultAllocator))
	if err := iw.Close(); err != nil {
		return nil, err
	}
	meta.Append("ARROW:schema", base64.StdEncoding.EncodeToString(buf.Bytes()))
	wr, err := file.NewParquetWriterWithError(w, pqschema.Root(), file.WithWriterProps(props), file.WithWriteMetadata(meta))
	if err != nil {
		return nil, err
	}
	p := &columnParallelWriter{wr: wr, schema: sc, arrProps: arrProps}
	for _, f := range sc.Fields() {
		p.nullable = append(p.nullable, f.Nullable)
	}
	return p, nil
}

// pageFlusher is the column writers' method that encodes and compresses
// the page being built (every typed column chunk writer has it).
type pageFlusher interface{ FlushBufferedDataPages() error }

// Write writes rec as one row group, or several of at most the writer
// properties' MaxRowGroupLength rows.
func (p *columnParallelWriter) Write(rec arrow.RecordBatch) error {
	if !rec.Schema().Equal(p.schema) {
		return fmt.Errorf("offline: internal error: record schema %s, writer's %s", rec.Schema(), p.schema)
	}
	maxRows := p.wr.Properties().MaxRowGroupLength()
	if rec.NumRows() <= maxRows {
		return p.writeRowGroup(rec)
	}
	for off := int64(0); off < rec.NumRows(); off += maxRows {
		part := rec.NewSlice(off, min(off+maxRows, rec.NumRows()))
		err := p.writeRowGroup(part)
		part.Release()
		if err != nil {
			return err
		}
	}
	return nil
}

func (p *columnParallelWriter) writeRowGroup(rec arrow.RecordBatch) error {
	rgw, err := p.wr.AppendBufferedRowGroupChecked()
	if err != nil {
		return err
	}
	ncols := int(rec.NumCols())
	errs := make([]error, ncols)
	var next int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), ncols) {
		wg.Go(func() {
			ctx := pqarrow.NewArrowWriteContext(context.Background(), &p.arrProps)
			var def []int16
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= ncols {
					return
				}
				errs[i] = p.writeColumn(ctx, rgw, i, rec.Column(i), &def)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return rgw.Close()
}

// writeColumn encodes column i of a row group and flushes its pages to the
// column's buffer.
func (p *columnParallelWriter) writeColumn(ctx context.Context, rgw file.BufferedRowGroupWriter, i int, arr arrow.Array, def *[]int16) error {
	cw, err := rgw.Column(i)
	if err != nil {
		return err
	}
	var levels []int16
	if p.nullable[i] {
		levels = (*def)[:0]
		for j := 0; j < arr.Len(); j++ {
			if arr.IsValid(j) {
				levels = append(levels, 1)
			} else {
				levels = append(levels, 0)
			}
		}
		*def = levels
	}
	if err := pqarrow.WriteArrowToColumn(ctx, cw, arr, levels, nil, p.nullable[i]); err != nil {
		return fmt.Errorf("offline: write column %q: %w", p.schema.Field(i).Name, err)
	}
	// A dictionary-encoded column's dictionary page must precede its data
	// pages, and is written when the row group closes: its data pages wait
	// for it.
	if f, ok := cw.(pageFlusher); ok && !cw.Properties().DictionaryEnabledFor(cw.Descr().Path()) {
		return f.FlushBufferedDataPages()
	}
	return nil
}

// Close writes the footer and closes the sink.
func (p *columnParallelWriter) Close() error { return p.wr.Close() }
