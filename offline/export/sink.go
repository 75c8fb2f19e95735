package export

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// ParquetFile is a Sink that writes a Parquet file atomically: into a
// temporary file beside path, fsynced and renamed to path by Commit. Until
// Commit nothing exists at path, so a failed export never leaves a file that
// looks complete.
type ParquetFile struct {
	path string
	tmp  *os.File
	w    parquetWriter
}

// parquetWriter is pqarrow.FileWriter or, for flat schemas, a
// columnParallelWriter.
type parquetWriter interface {
	Write(rec arrow.RecordBatch) error
	Close() error
}

// NewParquetFile returns a sink for path.
func NewParquetFile(path string) *ParquetFile { return &ParquetFile{path: path} }

// Begin creates the temporary file and writes nothing yet.
func (p *ParquetFile) Begin(sc *arrow.Schema) error {
	f, err := os.CreateTemp(filepath.Dir(p.path), "."+filepath.Base(p.path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("offline: create output: %w", err)
	}
	p.tmp = f
	// Feature values are mostly distinct: dictionary encoding costs more
	// than it saves here. Pages of 64 KiB rather than 1 MiB: a column
	// writer's buffers grow to a page, and at 1 MiB every column of every
	// row group grew (and the GC reclaimed) its own, a third of an export's
	// allocations.
	props := parquet.NewWriterProperties(
		parquet.WithCompression(compress.Codecs.Snappy),
		parquet.WithDictionaryDefault(false),
		parquet.WithMaxRowGroupLength(128<<10),
		parquet.WithDataPageSize(64<<10),
	)
	arrProps := pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema())
	if flatSchema(sc) {
		p.w, err = newColumnParallelWriter(sc, syncCloser{f}, props, arrProps)
	} else {
		p.w, err = pqarrow.NewFileWriter(sc, syncCloser{f}, props, arrProps)
	}
	if err != nil {
		p.Abort()
		return fmt.Errorf("offline: create output: %w", err)
	}
	return nil
}

// Write writes one record batch.
func (p *ParquetFile) Write(rec arrow.RecordBatch) error {
	if err := p.w.Write(rec); err != nil {
		return fmt.Errorf("offline: write output: %w", err)
	}
	return nil
}

// Commit finishes the file and renames it into place.
func (p *ParquetFile) Commit() error {
	if p.w == nil {
		return fmt.Errorf("offline: commit output: nothing written")
	}
	err := p.w.Close()
	p.w = nil
	if err != nil {
		os.Remove(p.tmp.Name())
		return fmt.Errorf("offline: close output: %w", err)
	}
	if err := os.Rename(p.tmp.Name(), p.path); err != nil {
		os.Remove(p.tmp.Name())
		return fmt.Errorf("offline: %w", err)
	}
	return syncDir(filepath.Dir(p.path))
}

// Abort removes the temporary file. It is safe after Commit (a no-op).
func (p *ParquetFile) Abort() {
	if p.w != nil {
		p.w.Close()
		p.w = nil
	}
	if p.tmp != nil {
		p.tmp.Close()
		os.Remove(p.tmp.Name())
	}
}

// IPCStream is a Sink writing an Arrow IPC stream to w; Close writes the
// end-of-stream marker, whose absence tells a reader the stream is cut.
type IPCStream struct {
	w  io.Writer
	iw *ipc.Writer
}

// NewIPCStream returns a sink writing to w.
func NewIPCStream(w io.Writer) *IPCStream { return &IPCStream{w: w} }

func (s *IPCStream) Begin(sc *arrow.Schema) error {
	s.iw = ipc.NewWriter(s.w, ipc.WithSchema(sc))
	return nil
}

func (s *IPCStream) Write(rec arrow.RecordBatch) error { return s.iw.Write(rec) }

// Close ends the stream.
func (s *IPCStream) Close() error {
	if s.iw == nil {
		return nil
	}
	return s.iw.Close()
}

// ExportFile runs an export into a Parquet file at out, atomically.
func (x *Exporter) ExportFile(ctx context.Context, spinePath, format string, req Request, out string) (Stats, error) {
	sink := NewParquetFile(out)
	st, err := x.Export(ctx, spinePath, format, req, sink)
	if err != nil {
		sink.Abort()
		return st, err
	}
	if err := sink.Commit(); err != nil {
		return st, err
	}
	return st, nil
}

// syncCloser fsyncs a file before closing it (the Parquet writer closes its
// sink when it writes the footer). The log's converter has its own: the
// two packages share no file handling.
type syncCloser struct{ *os.File }

func (s syncCloser) Close() error {
	if err := s.File.Sync(); err != nil {
		s.File.Close()
		return err
	}
	return s.File.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("export: sync dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("export: sync dir %s: %w", dir, err)
	}
	return nil
}
