package eventlog

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/offline/internal/codec"
)

// Log file columns, in this order. The source's fields are the children of the struct
// column "fields", so no field name can collide with these.
const (
	// ColStorePartition is the store partition whose writer logged the
	// row (its WAL, and its LSN sequence). Files written before the
	// partition layout name it ColShard.
	ColStorePartition = "partition"
	ColShard          = "shard"
	ColLSN            = "lsn"
	ColIngest         = "ingest_time"
	ColCommit         = "commit_time"
	ColEvent          = "event_time"
	ColEntity         = "entity"
	ColPartition      = "kafka_partition"
	ColOffset         = "kafka_offset"
	ColViews          = "views"
	ColFields         = "fields"

	metaSource  = "featured.source"
	metaKeyKind = "featured.key_kind"
	// metaKeyKinds lists a compound key's part kinds ("2,1"); files of
	// one-part keys have only metaKeyKind.
	metaKeyKinds = "featured.key_kinds"
	metaFormat   = "featured.offline_log"
)

// walShardDir is the WAL directory of store partition shard: wal/p-NNNN
// (wal/shard-NNN before the partition layout; featured migrate-store
// renames them with the store, see RenameLegacyWALs).
func walShardDir(dir string, shard int) string {
	return filepath.Join(dir, walDir, fmt.Sprintf("p-%04d", shard))
}

// RenameLegacyWALs renames the WAL directories of the layout before
// partitions, wal/shard-NNN, to wal/p-NNNN under the log directory dir, so
// that partition i continues old shard i's log (featurestore.MigrateStore
// carries shard i's log position into partition i). It is idempotent: a
// directory already renamed is skipped. It returns the old shard numbers
// it found.
func RenameLegacyWALs(dir string) ([]int, error) {
	names, err := os.ReadDir(filepath.Join(dir, walDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("offline: %w", err)
	}
	var shards []int
	for _, e := range names {
		var n int
		if _, err := fmt.Sscanf(e.Name(), "shard-%03d", &n); err != nil || !e.IsDir() || e.Name() != fmt.Sprintf("shard-%03d", n) {
			continue
		}
		to := walShardDir(dir, n)
		if _, err := os.Stat(to); err == nil {
			return nil, fmt.Errorf("offline: rename %s: %s exists", e.Name(), to)
		}
		if err := os.Rename(filepath.Join(dir, walDir, e.Name()), to); err != nil {
			return nil, fmt.Errorf("offline: %w", err)
		}
		shards = append(shards, n)
	}
	return shards, nil
}

func logArrowSchema(s *Schema) *arrow.Schema {
	// A compound key (or none) is stored as its encoded bytes: decode them
	// with keyenc.DecodeKey and the schema's KeyKinds.
	kk := s.KeyKind()
	key := codec.ArrowType(kk, 0)
	if kk != aggregate.KindInt64 && kk != aggregate.KindString {
		key = arrow.BinaryTypes.Binary
	}
	fields := []arrow.Field{
		{Name: ColStorePartition, Type: arrow.PrimitiveTypes.Int32},
		{Name: ColLSN, Type: arrow.PrimitiveTypes.Int64},
		{Name: ColIngest, Type: codec.TimestampMS},
		{Name: ColCommit, Type: codec.TimestampMS},
		{Name: ColEvent, Type: codec.TimestampMS},
		{Name: ColEntity, Type: key},
		{Name: ColPartition, Type: arrow.PrimitiveTypes.Int32, Nullable: true},
		{Name: ColOffset, Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: ColViews, Type: arrow.ListOf(arrow.PrimitiveTypes.Int64)},
	}
	if len(s.names) > 0 {
		var children []arrow.Field
		for i, n := range s.names {
			children = append(children, arrow.Field{Name: n, Type: codec.ArrowType(s.kinds[i], 0), Nullable: true})
		}
		fields = append(fields, arrow.Field{Name: ColFields, Type: arrow.StructOf(children...)})
	}
	keys := []string{metaFormat, metaSource, metaKeyKind}
	vals := []string{"1", s.source, strconv.Itoa(int(kk))}
	if len(s.keyKinds) > 1 {
		parts := make([]string, len(s.keyKinds))
		for i, k := range s.keyKinds {
			parts[i] = strconv.Itoa(int(k))
		}
		keys, vals = append(keys, metaKeyKinds), append(vals, strings.Join(parts, ","))
	}
	md := arrow.NewMetadata(keys, vals)
	return arrow.NewSchema(fields, &md)
}

// appendLogRow appends r to a builder of logArrowSchema(r.schema).
func appendLogRow(b *array.RecordBuilder, r *Row) {
	b.Field(0).(*array.Int32Builder).Append(r.shard)
	b.Field(1).(*array.Int64Builder).Append(r.lsn)
	b.Field(2).(*array.TimestampBuilder).Append(arrow.Timestamp(r.ingestMillis))
	b.Field(3).(*array.TimestampBuilder).Append(arrow.Timestamp(r.commitMillis))
	b.Field(4).(*array.TimestampBuilder).Append(arrow.Timestamp(r.eventMillis))
	switch eb := b.Field(5).(type) {
	case *array.Int64Builder:
		eb.Append(int64(binary.BigEndian.Uint64(r.entity) ^ (1 << 63)))
	case *array.StringBuilder:
		eb.Append(string(r.entity))
	case *array.BinaryBuilder:
		eb.Append(r.entity)
	}
	if r.hasPos {
		b.Field(6).(*array.Int32Builder).Append(r.partition)
		b.Field(7).(*array.Int64Builder).Append(r.offset)
	} else {
		b.Field(6).AppendNull()
		b.Field(7).AppendNull()
	}
	lb := b.Field(8).(*array.ListBuilder)
	lb.Append(true)
	vb := lb.ValueBuilder().(*array.Int64Builder)
	for _, v := range r.views {
		vb.Append(v)
	}
	if len(r.schema.names) > 0 {
		sb := b.Field(9).(*array.StructBuilder)
		sb.Append(true)
		for i := range r.schema.names {
			codec.AppendArrow(sb.FieldBuilder(i), r.fields[i])
		}
	}
}

// syncCloser fsyncs a file before closing it (the Parquet writer closes its
// sink when it writes the footer).
type syncCloser struct{ vfs.File }

func (s syncCloser) Close() error {
	if err := s.File.Sync(); err != nil {
		s.File.Close()
		return err
	}
	return s.File.Close()
}

func writerProps(rowGroupRows int) *parquet.WriterProperties {
	return parquet.NewWriterProperties(
		parquet.WithCompression(compress.Codecs.Snappy),
		parquet.WithMaxRowGroupLength(int64(rowGroupRows)),
	)
}

// logFileWriter writes one group (source schema, day) of a segment.
type logFileWriter struct {
	final string
	tmp   string
	w     *pqarrow.FileWriter
	b     *array.RecordBuilder
	n     int
}

func (g *logFileWriter) flush() error {
	if g.n == 0 {
		return nil
	}
	rec := g.b.NewRecordBatch()
	defer rec.Release()
	g.n = 0
	return g.w.Write(rec)
}

// FileWriter writes a log file of one source schema directly, for tools and
// benchmarks that make a log without a store; the converter writes its own
// (to a temporary name, renamed once complete).
type FileWriter struct {
	g   logFileWriter
	max int
}

// CreateFile creates a log file at path for rows of schema s, in row groups
// of rowGroupRows. The name must follow File's pattern for scans to find it.
func CreateFile(path string, s *Schema, rowGroupRows int) (*FileWriter, error) {
	f, err := vfs.Default.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return nil, fmt.Errorf("eventlog: create %s: %w", path, err)
	}
	sc := logArrowSchema(s)
	w, err := pqarrow.NewFileWriter(sc, syncCloser{f}, writerProps(rowGroupRows), pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("eventlog: create %s: %w", path, err)
	}
	return &FileWriter{g: logFileWriter{final: path, w: w, b: array.NewRecordBuilder(memory.DefaultAllocator, sc)}, max: rowGroupRows}, nil
}

// NewRow returns a row of schema s to fill and Append; its Fields are
// len(s.Names()) nulls.
func NewRow(s *Schema) *Row { return &Row{schema: s, fields: make([]aggregate.Value, len(s.names))} }

// Set sets the row's position, times, entity and views (kept, not copied);
// Fields() is filled in place.
func (r *Row) Set(shard int32, lsn, ingestMillis, commitMillis, eventMillis int64, entity []byte, views []int64) {
	r.shard, r.lsn, r.ingestMillis, r.commitMillis, r.eventMillis, r.entity, r.views = shard, lsn, ingestMillis, commitMillis, eventMillis, entity, views
}

// Append adds r, whose schema must be the file's.
func (w *FileWriter) Append(r *Row) error {
	appendLogRow(w.g.b, r)
	w.g.n++
	if w.g.n >= w.max {
		return w.g.flush()
	}
	return nil
}

// Close writes the last row group and the footer, and fsyncs the file.
func (w *FileWriter) Close() error {
	defer w.g.b.Release()
	if err := w.g.flush(); err != nil {
		w.g.w.Close()
		return err
	}
	return w.g.w.Close()
}

// convert is the converter goroutine: it turns sealed WAL segments into
// Parquet files and applies retention. Segments of a shard held by
// HoldConversion wait, in order, until it is released.
func (l *Log) convert() {
	defer close(l.donec)
	tick := time.NewTicker(time.Hour)
	defer tick.Stop()
	failed := map[int]bool{}
	deferred := map[int][]uint64{}
	run := func(j convJob) {
		if failed[j.shard] {
			return // keep log order: later segments wait for the next Open too
		}
		err := l.convertSegment(j.shard, j.seg)
		if errors.Is(err, ErrCorrupt) {
			// A damaged sealed segment is set aside (damage.go) and the
			// later ones go on.
			qerr := l.quarantineSealed(j.shard, j.seg, err)
			if qerr == nil {
				return
			}
			err = errors.Join(err, qerr)
		}
		if err != nil {
			failed[j.shard] = true
			l.opts.Logger.Error("offline: convert WAL segment to Parquet; it stays in the WAL and is retried on the next open",
				"shard", j.shard, "segment", j.seg, "err", err)
			l.convMu.Lock()
			l.convErr = err
			l.convMu.Unlock()
			return
		}
		l.retain()
	}
	// release converts the deferred segments of the shards no longer held.
	release := func() {
		for shard, segs := range deferred {
			if l.isHeld(shard) {
				continue
			}
			delete(deferred, shard)
			for _, seg := range segs {
				run(convJob{shard: shard, seg: seg})
			}
		}
	}
	l.retain()
	for {
		select {
		case <-l.stopc:
			return
		case j := <-l.jobs:
			if l.isHeld(j.shard) || len(deferred[j.shard]) > 0 {
				deferred[j.shard] = append(deferred[j.shard], j.seg)
				release()
				continue
			}
			run(j)
		case <-l.wake:
			release()
		case <-tick.C:
			l.retain()
		}
	}
}

func (l *Log) isHeld(shard int) bool {
	l.held.Lock()
	defer l.held.Unlock()
	return l.held.n[shard] > 0
}

// HoldConversion keeps shard's WAL segments from being converted to Parquet
// (and so deleted) until release is called: a backfill holds it from its
// scan's start to its tail's end, so that the tail, read from a ShardCursor,
// is still in the WAL. Segments sealed meanwhile are converted after the
// release, in order. release is idempotent; HoldConversion may be called
// from any goroutine.
func (l *Log) HoldConversion(shard int) (release func()) {
	l.held.Lock()
	l.held.n[shard]++
	l.held.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			l.held.Lock()
			l.held.n[shard]--
			l.held.Unlock()
			select {
			case l.wake <- struct{}{}:
			default:
			}
		})
	}
}

// convertSegment writes the rows of a sealed segment as Parquet, one file
// per (source schema, UTC day of ingest time), named by shard and first LSN
// so that converting again (after a crash between rename and delete)
// rewrites the same files rather than adding rows. Files appear by rename
// of a complete, fsynced file; the segment is deleted after.
func (l *Log) convertSegment(shard int, seg uint64) error {
	fs := l.opts.FS
	walPath := filepath.Join(walShardDir(l.dir, shard), segName(seg))
	groups := map[string]*logFileWriter{}
	var order []*logFileWriter
	defer func() {
		for _, g := range order {
			g.b.Release()
			if g.w != nil {
				g.w.Close()
			}
			fs.Remove(g.tmp)
		}
	}()
	props := writerProps(l.opts.RowGroupRows)
	_, err := readFrames(fs, walPath, -1, false, func(fr *walFrame) error {
		return fr.rows(shard, func(r *Row) error {
			day := time.UnixMilli(r.ingestMillis).UTC().Format(time.DateOnly)
			key := strconv.FormatUint(r.schema.fp, 16) + "/" + day
			g := groups[key]
			if g == nil {
				src := r.schema.source
				if src == "" {
					src = "_unknown"
				}
				dir := filepath.Join(l.dir, src, day)
				if err := fs.MkdirAll(dir, 0o755); err != nil {
					return err
				}
				g = &logFileWriter{final: filepath.Join(dir, fmt.Sprintf("s%03d-%020d.parquet", shard, r.lsn))}
				g.tmp = g.final + ".tmp"
				sc := logArrowSchema(r.schema)
				g.b = array.NewRecordBuilder(memory.DefaultAllocator, sc)
				f, err := fs.Create(g.tmp, vfs.WriteCategoryUnspecified)
				if err != nil {
					return err
				}
				g.w, err = pqarrow.NewFileWriter(sc, syncCloser{f}, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
				if err != nil {
					f.Close()
					return err
				}
				groups[key] = g
				order = append(order, g)
			}
			appendLogRow(g.b, r)
			g.n++
			if g.n >= l.opts.RowGroupRows {
				return g.flush()
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	dirs := map[string]bool{}
	for _, g := range order {
		if err := g.flush(); err != nil {
			return err
		}
		err := g.w.Close()
		g.w = nil
		if err != nil {
			return err
		}
		dirs[filepath.Dir(g.final)] = true
	}
	l.files.Lock()
	defer l.files.Unlock()
	for _, g := range order {
		if err := fs.Rename(g.tmp, g.final); err != nil {
			return err
		}
	}
	for d := range dirs {
		if err := syncDir(fs, d); err != nil {
			return err
		}
		if err := syncDir(fs, filepath.Dir(d)); err != nil {
			return err
		}
	}
	if err := fs.Remove(walPath); err != nil {
		return err
	}
	return syncDir(fs, filepath.Dir(walPath))
}

// retain deletes day directories older than the retention.
func (l *Log) retain() {
	if l.opts.Retention < 0 {
		return
	}
	cut := l.opts.Now().Add(-l.opts.Retention).UTC().Format(time.DateOnly)
	fs := l.opts.FS
	srcs, err := listDirs(fs, l.dir)
	if err != nil {
		return
	}
	l.files.Lock()
	defer l.files.Unlock()
	for _, s := range srcs {
		if s == walDir {
			continue
		}
		days, err := listDirs(fs, filepath.Join(l.dir, s))
		if err != nil {
			continue
		}
		for _, d := range days {
			if d < cut {
				if err := fs.RemoveAll(filepath.Join(l.dir, s, d)); err != nil {
					l.opts.Logger.Warn("offline: retention", "dir", d, "err", err)
				}
			}
		}
	}
}

// File is one Parquet file of the log: <dir>/<source>/<yyyy-mm-dd>/
// sNNN-<first LSN>.parquet.
type File struct {
	Path  string
	Shard int
	LSN   int64 // the first row's
}

// ListFiles returns the Parquet files of source in the log under dir, by
// shard and first LSN. Temporary files of an interrupted conversion are
// skipped. Unless the caller holds off the converter and retention (as the
// Scan methods do), a file listed may be gone when it is opened.
func ListFiles(dir, source string) ([]File, error) {
	return listFiles(vfs.Default, dir, source)
}

func listFiles(fs vfs.FS, dir, source string) ([]File, error) {
	days, err := listDirs(fs, filepath.Join(dir, source))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("offline: %w", err)
	}
	var out []File
	for _, d := range days {
		names, err := fs.List(filepath.Join(dir, source, d))
		if err != nil {
			return nil, fmt.Errorf("offline: %w", err)
		}
		sort.Strings(names)
		for _, name := range names {
			var shard int
			var lsn int64
			if _, err := fmt.Sscanf(name, "s%03d-%020d.parquet", &shard, &lsn); err != nil || !strings.HasSuffix(name, ".parquet") {
				continue
			}
			out = append(out, File{Path: filepath.Join(dir, source, d, name), Shard: shard, LSN: lsn})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Shard != out[j].Shard {
			return out[i].Shard < out[j].Shard
		}
		return out[i].LSN < out[j].LSN
	})
	return out, nil
}

// OpenFile opens a log file for reading in batches of 64k rows and
// returns its source schema; the caller closes pf. For readers that decode
// the columns (Col*) themselves.
func OpenFile(path string) (pf *file.Reader, fr *pqarrow.FileReader, s *Schema, err error) {
	return openFile(vfs.Default, path)
}

// fileSource is a vfs.File as Parquet reads it: ReadAt, Seek, Close.
type fileSource struct {
	*io.SectionReader
	f vfs.File
}

func (s fileSource) Close() error { return s.f.Close() }

func openFile(fs vfs.FS, path string) (pf *file.Reader, fr *pqarrow.FileReader, s *Schema, err error) {
	f, err := fs.Open(path)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("offline: open %s: %w", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, nil, fmt.Errorf("offline: open %s: %w", path, err)
	}
	pf, err = file.NewParquetReader(fileSource{io.NewSectionReader(f, 0, st.Size()), f})
	if err != nil {
		f.Close()
		return nil, nil, nil, fmt.Errorf("offline: open %s: %w", path, err)
	}
	fail := func(err error) (*file.Reader, *pqarrow.FileReader, *Schema, error) {
		pf.Close()
		return nil, nil, nil, err
	}
	fr, err = pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 64 << 10}, memory.DefaultAllocator)
	if err != nil {
		return fail(fmt.Errorf("offline: read %s: %w", path, err))
	}
	sc, err := fr.Schema()
	if err != nil {
		return fail(fmt.Errorf("offline: read %s: %w", path, err))
	}
	if s, err = schemaFromArrow(sc); err != nil {
		return fail(fmt.Errorf("offline: %s: %w", path, err))
	}
	return pf, fr, s, nil
}

// readLogFile calls fn for each row of a log file (r is reused).
func readLogFile(ctx context.Context, fs vfs.FS, path string, fn func(r *Row) error) error {
	pf, fr, s, err := openFile(fs, path)
	if err != nil {
		return err
	}
	defer pf.Close()
	rr, err := fr.GetRecordReader(ctx, nil, nil)
	if err != nil {
		return fmt.Errorf("offline: read %s: %w", path, err)
	}
	defer rr.Release()
	r := Row{schema: s, fields: make([]aggregate.Value, len(s.names))}
	for rr.Next() {
		rec := rr.RecordBatch()
		if err := recordRows(rec, &r, fn); err != nil {
			return err
		}
	}
	if err := rr.Err(); err != nil {
		return fmt.Errorf("offline: read %s: %w", path, err)
	}
	return nil
}

func schemaFromArrow(sc *arrow.Schema) (*Schema, error) {
	md := sc.Metadata()
	if md.FindKey(metaFormat) < 0 {
		return nil, corruptf("not a featured offline log file (no %s metadata)", metaFormat)
	}
	src := md.Values()[md.FindKey(metaSource)]
	kk, _ := strconv.Atoi(md.Values()[md.FindKey(metaKeyKind)])
	var keyKinds []aggregate.Kind
	if i := md.FindKey(metaKeyKinds); i >= 0 {
		for _, p := range strings.Split(md.Values()[i], ",") {
			k, err := strconv.Atoi(p)
			if err != nil {
				return nil, corruptf("%s metadata %q", metaKeyKinds, md.Values()[i])
			}
			keyKinds = append(keyKinds, aggregate.Kind(k))
		}
	} else if aggregate.Kind(kk) != aggregate.KindNull {
		keyKinds = []aggregate.Kind{aggregate.Kind(kk)}
	}
	var names []string
	var kinds []aggregate.Kind
	if idx := sc.FieldIndices(ColFields); len(idx) == 1 {
		st := sc.Field(idx[0]).Type.(*arrow.StructType)
		for _, f := range st.Fields() {
			names = append(names, f.Name)
			kinds = append(kinds, kindOfArrow(f.Type))
		}
	}
	return NewSchema(src, keyKinds, names, kinds), nil
}

func kindOfArrow(t arrow.DataType) aggregate.Kind {
	switch t.ID() {
	case arrow.INT64:
		return aggregate.KindInt64
	case arrow.FLOAT64:
		return aggregate.KindFloat64
	case arrow.STRING, arrow.LARGE_STRING:
		return aggregate.KindString
	case arrow.BOOL:
		return aggregate.KindBool
	}
	return aggregate.KindNull
}

// recordRows decodes the rows of one record batch of a log file.
func recordRows(rec arrow.RecordBatch, r *Row, fn func(r *Row) error) error {
	shard := rec.Column(0).(*array.Int32)
	lsn := rec.Column(1).(*array.Int64)
	ing := rec.Column(2).(*array.Timestamp)
	com := rec.Column(3).(*array.Timestamp)
	ev := rec.Column(4).(*array.Timestamp)
	ent := rec.Column(5)
	part := rec.Column(6).(*array.Int32)
	off := rec.Column(7).(*array.Int64)
	views := rec.Column(8).(*array.List)
	vvals := views.ListValues().(*array.Int64)
	var fields *array.Struct
	if rec.NumCols() > 9 {
		fields = rec.Column(9).(*array.Struct)
	}
	for i := 0; i < int(rec.NumRows()); i++ {
		r.shard = shard.Value(i)
		r.lsn = lsn.Value(i)
		r.ingestMillis = int64(ing.Value(i))
		r.commitMillis = int64(com.Value(i))
		r.eventMillis = int64(ev.Value(i))
		switch e := ent.(type) {
		case *array.Int64:
			r.entity = binary.BigEndian.AppendUint64(r.entity[:0], uint64(e.Value(i))^(1<<63))
		case *array.String:
			r.entity = append(r.entity[:0], e.Value(i)...)
		case *array.Binary:
			r.entity = append(r.entity[:0], e.Value(i)...)
		}
		r.hasPos = part.IsValid(i)
		if r.hasPos {
			r.partition, r.offset = part.Value(i), off.Value(i)
		}
		r.views = r.views[:0]
		s, e := views.ValueOffsets(i)
		for j := s; j < e; j++ {
			r.views = append(r.views, vvals.Value(int(j)))
		}
		if fields != nil {
			for f := range r.fields {
				r.fields[f] = codec.ValueAt(fields.Field(f), i)
			}
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

// listDirs returns the names of the directories in dir, sorted.
func listDirs(fs vfs.FS, dir string) ([]string, error) {
	names, err := fs.List(dir)
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	out := names[:0]
	for _, name := range names {
		if fi, err := fs.Stat(filepath.Join(dir, name)); err == nil && fi.IsDir() {
			out = append(out, name)
		}
	}
	return out, nil
}
