package offline

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/featured-dev/featured/aggregate"
)

// Log file columns. The source's fields are the children of the struct
// column "fields", so no field name can collide with these.
const (
	colShard     = "shard"
	colLSN       = "lsn"
	colIngest    = "ingest_time"
	colCommit    = "commit_time"
	colEvent     = "event_time"
	colEntity    = "entity"
	colPartition = "kafka_partition"
	colOffset    = "kafka_offset"
	colViews     = "views"
	colFields    = "fields"

	metaSource  = "featured.source"
	metaKeyKind = "featured.key_kind"
	metaFormat  = "featured.offline_log"
)

var tsMillis = &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}

// arrowType is the Arrow type of a value kind (lists are last_k results).
func arrowType(k, elem aggregate.Kind) arrow.DataType {
	switch k {
	case aggregate.KindInt64:
		return arrow.PrimitiveTypes.Int64
	case aggregate.KindFloat64:
		return arrow.PrimitiveTypes.Float64
	case aggregate.KindString:
		return arrow.BinaryTypes.String
	case aggregate.KindBool:
		return arrow.FixedWidthTypes.Boolean
	case aggregate.KindList:
		return arrow.ListOf(arrowType(elem, aggregate.KindNull))
	}
	return arrow.Null
}

func logArrowSchema(s *schema) *arrow.Schema {
	key := arrowType(s.keyKind, 0)
	if s.keyKind != aggregate.KindInt64 && s.keyKind != aggregate.KindString {
		key = arrow.BinaryTypes.Binary
	}
	fields := []arrow.Field{
		{Name: colShard, Type: arrow.PrimitiveTypes.Int32},
		{Name: colLSN, Type: arrow.PrimitiveTypes.Int64},
		{Name: colIngest, Type: tsMillis},
		{Name: colCommit, Type: tsMillis},
		{Name: colEvent, Type: tsMillis},
		{Name: colEntity, Type: key},
		{Name: colPartition, Type: arrow.PrimitiveTypes.Int32, Nullable: true},
		{Name: colOffset, Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: colViews, Type: arrow.ListOf(arrow.PrimitiveTypes.Int64)},
	}
	if len(s.names) > 0 {
		var children []arrow.Field
		for i, n := range s.names {
			children = append(children, arrow.Field{Name: n, Type: arrowType(s.kinds[i], 0), Nullable: true})
		}
		fields = append(fields, arrow.Field{Name: colFields, Type: arrow.StructOf(children...)})
	}
	md := arrow.NewMetadata(
		[]string{metaFormat, metaSource, metaKeyKind},
		[]string{"1", s.source, strconv.Itoa(int(s.keyKind))},
	)
	return arrow.NewSchema(fields, &md)
}

// appendValueTo appends v to b (an Arrow builder of v's declared kind); a
// value of another kind is null.
func appendValueTo(b array.Builder, v aggregate.Value) {
	switch b := b.(type) {
	case *array.Int64Builder:
		if v.Kind == aggregate.KindInt64 {
			b.Append(v.I)
			return
		}
	case *array.Float64Builder:
		if v.Kind == aggregate.KindFloat64 {
			b.Append(v.F)
			return
		}
	case *array.StringBuilder:
		if v.Kind == aggregate.KindString {
			b.Append(v.S)
			return
		}
	case *array.BooleanBuilder:
		if v.Kind == aggregate.KindBool {
			b.Append(v.I != 0)
			return
		}
	case *array.ListBuilder:
		if v.Kind == aggregate.KindList {
			b.Append(true)
			for _, e := range v.L {
				appendValueTo(b.ValueBuilder(), e)
			}
			return
		}
	}
	b.AppendNull()
}

// appendLogRow appends r to a builder of logArrowSchema(r.schema).
func appendLogRow(b *array.RecordBuilder, r *row) {
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
			appendValueTo(sb.FieldBuilder(i), r.fields[i])
		}
	}
}

// syncCloser fsyncs a file before closing it (the Parquet writer closes its
// sink when it writes the footer).
type syncCloser struct{ *os.File }

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

// convert is the converter goroutine: it turns sealed WAL segments into
// Parquet files and applies retention.
func (l *Log) convert() {
	defer close(l.donec)
	tick := time.NewTicker(time.Hour)
	defer tick.Stop()
	failed := map[int]bool{}
	l.retain()
	for {
		select {
		case <-l.stopc:
			return
		case j := <-l.jobs:
			if failed[j.shard] {
				continue // keep log order: later segments wait for the next Open too
			}
			if err := l.convertSegment(j.shard, j.seg); err != nil {
				failed[j.shard] = true
				l.opts.Logger.Error("offline: convert WAL segment to Parquet; it stays in the WAL and is retried on the next open",
					"shard", j.shard, "segment", j.seg, "err", err)
				l.convMu.Lock()
				l.convErr = err
				l.convMu.Unlock()
				continue
			}
			l.retain()
		case <-tick.C:
			l.retain()
		}
	}
}

// convertSegment writes the rows of a sealed segment as Parquet, one file
// per (source schema, UTC day of ingest time), named by shard and first LSN
// so that converting again (after a crash between rename and delete)
// rewrites the same files rather than adding rows. Files appear by rename
// of a complete, fsynced file; the segment is deleted after.
func (l *Log) convertSegment(shard int, seg uint64) error {
	walPath := filepath.Join(l.dir, walDir, fmt.Sprintf("shard-%03d", shard), segName(seg))
	groups := map[string]*logFileWriter{}
	var order []*logFileWriter
	defer func() {
		for _, g := range order {
			g.b.Release()
			if g.w != nil {
				g.w.Close()
			}
			os.Remove(g.tmp)
		}
	}()
	props := writerProps(l.opts.RowGroupRows)
	err := readFrames(walPath, -1, func(fr *walFrame) error {
		return fr.rows(shard, func(r *row) error {
			day := time.UnixMilli(r.ingestMillis).UTC().Format(time.DateOnly)
			key := strconv.FormatUint(r.schema.fp, 16) + "/" + day
			g := groups[key]
			if g == nil {
				src := r.schema.source
				if src == "" {
					src = "_unknown"
				}
				dir := filepath.Join(l.dir, src, day)
				if err := os.MkdirAll(dir, 0o755); err != nil {
					return err
				}
				g = &logFileWriter{final: filepath.Join(dir, fmt.Sprintf("s%03d-%020d.parquet", shard, r.lsn))}
				g.tmp = g.final + ".tmp"
				sc := logArrowSchema(r.schema)
				g.b = array.NewRecordBuilder(memory.DefaultAllocator, sc)
				f, err := os.Create(g.tmp)
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
		if err := os.Rename(g.tmp, g.final); err != nil {
			return err
		}
	}
	for d := range dirs {
		if err := syncDir(d); err != nil {
			return err
		}
		if err := syncDir(filepath.Dir(d)); err != nil {
			return err
		}
	}
	if err := os.Remove(walPath); err != nil {
		return err
	}
	return syncDir(filepath.Dir(walPath))
}

// retain deletes day directories older than the retention.
func (l *Log) retain() {
	if l.opts.Retention < 0 {
		return
	}
	cut := l.opts.Now().Add(-l.opts.Retention).UTC().Format(time.DateOnly)
	srcs, err := os.ReadDir(l.dir)
	if err != nil {
		return
	}
	l.files.Lock()
	defer l.files.Unlock()
	for _, s := range srcs {
		if !s.IsDir() || s.Name() == walDir {
			continue
		}
		days, err := os.ReadDir(filepath.Join(l.dir, s.Name()))
		if err != nil {
			continue
		}
		for _, d := range days {
			if d.IsDir() && d.Name() < cut {
				if err := os.RemoveAll(filepath.Join(l.dir, s.Name(), d.Name())); err != nil {
					l.opts.Logger.Warn("offline: retention", "dir", d.Name(), "err", err)
				}
			}
		}
	}
}

// logFile is one Parquet file of the log.
type logFile struct {
	path  string
	shard int
	lsn   int64 // first LSN
}

// listLogFiles returns the Parquet files of source under dir, by shard and
// first LSN. Temporary files of an interrupted conversion are skipped.
func listLogFiles(dir, source string) ([]logFile, error) {
	days, err := os.ReadDir(filepath.Join(dir, source))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("offline: %w", err)
	}
	var out []logFile
	for _, d := range days {
		if !d.IsDir() {
			continue
		}
		ents, err := os.ReadDir(filepath.Join(dir, source, d.Name()))
		if err != nil {
			return nil, fmt.Errorf("offline: %w", err)
		}
		for _, e := range ents {
			var shard int
			var lsn int64
			if _, err := fmt.Sscanf(e.Name(), "s%03d-%020d.parquet", &shard, &lsn); err != nil || !strings.HasSuffix(e.Name(), ".parquet") {
				continue
			}
			out = append(out, logFile{path: filepath.Join(dir, source, d.Name(), e.Name()), shard: shard, lsn: lsn})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].shard != out[j].shard {
			return out[i].shard < out[j].shard
		}
		return out[i].lsn < out[j].lsn
	})
	return out, nil
}

// openLogFile opens a log file for reading in batches of 64k rows and
// returns its source schema; the caller closes pf.
func openLogFile(path string) (pf *file.Reader, fr *pqarrow.FileReader, s *schema, err error) {
	pf, err = file.OpenParquetFile(path, false)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("offline: open %s: %w", path, err)
	}
	fail := func(err error) (*file.Reader, *pqarrow.FileReader, *schema, error) {
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
func readLogFile(ctx context.Context, path string, fn func(r *row) error) error {
	pf, fr, s, err := openLogFile(path)
	if err != nil {
		return err
	}
	defer pf.Close()
	rr, err := fr.GetRecordReader(ctx, nil, nil)
	if err != nil {
		return fmt.Errorf("offline: read %s: %w", path, err)
	}
	defer rr.Release()
	r := row{schema: s, fields: make([]aggregate.Value, len(s.names))}
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

func schemaFromArrow(sc *arrow.Schema) (*schema, error) {
	md := sc.Metadata()
	if md.FindKey(metaFormat) < 0 {
		return nil, corruptf("not a featured offline log file (no %s metadata)", metaFormat)
	}
	src := md.Values()[md.FindKey(metaSource)]
	kk, _ := strconv.Atoi(md.Values()[md.FindKey(metaKeyKind)])
	var names []string
	var kinds []aggregate.Kind
	if idx := sc.FieldIndices(colFields); len(idx) == 1 {
		st := sc.Field(idx[0]).Type.(*arrow.StructType)
		for _, f := range st.Fields() {
			names = append(names, f.Name)
			kinds = append(kinds, kindOfArrow(f.Type))
		}
	}
	return newSchema(src, aggregate.Kind(kk), names, kinds), nil
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
func recordRows(rec arrow.RecordBatch, r *row, fn func(r *row) error) error {
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
				r.fields[f] = valueAt(fields.Field(f), i)
			}
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

// valueAt reads element i of a primitive Arrow array as a Value.
func valueAt(a arrow.Array, i int) aggregate.Value {
	if a.IsNull(i) {
		return aggregate.Value{}
	}
	switch a := a.(type) {
	case *array.Int64:
		return aggregate.Value{Kind: aggregate.KindInt64, I: a.Value(i)}
	case *array.Float64:
		return aggregate.Value{Kind: aggregate.KindFloat64, F: a.Value(i)}
	case *array.String:
		return aggregate.Value{Kind: aggregate.KindString, S: a.Value(i)}
	case *array.Boolean:
		v := aggregate.Value{Kind: aggregate.KindBool}
		if a.Value(i) {
			v.I = 1
		}
		return v
	}
	return aggregate.Value{}
}
