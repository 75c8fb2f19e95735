package export

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/internal/keyenc"
	"github.com/featured-dev/featured/offline/internal/codec"
)

// ErrBadInput is matched (errors.Is) by every error caused by the export's
// input rather than by featured: a spine that cannot be read or lacks a
// column, a column of the wrong type, a bad feature reference. The HTTP
// endpoint answers 400 for it.
var ErrBadInput = errors.New("offline: bad export input")

func badInput(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrBadInput}, args...)...)
}

// DefaultTimeColumn is the spine's time column unless told otherwise, as in
// Feast's get_historical_features.
const DefaultTimeColumn = "event_timestamp"

const spineBatchRows = 64 << 10

// spineReader reads a spine in record batches. Its schema is the output's
// leading (pass-through) columns.
type spineReader interface {
	schema() *arrow.Schema
	// next returns the next batch (the caller releases it), or io.EOF.
	next() (arrow.RecordBatch, error)
	close()
}

// spineFormat returns "parquet" or "csv" from a file name's extension.
func spineFormat(path string) (string, error) {
	switch strings.ToLower(path[strings.LastIndexByte(path, '.')+1:]) {
	case "parquet", "pq":
		return "parquet", nil
	case "csv":
		return "csv", nil
	}
	return "", badInput("spine %s: want a .parquet or .csv file", path)
}

// spineSource is where an export reads its spine: a file, read as often
// as the export needs, or a CSV stream, read once. A stream's first open
// is the schema check's; the reader it opened is handed to the export's
// first pass (pending). A spilling export needs a second pass: it spools
// the stream into a file as pass 1 reads it (spool) and reads that file
// in pass 2.
type spineSource struct {
	path    string
	format  string
	stream  io.Reader // a CSV stream, or nil
	size    int64     // bytes, -1 when unknown
	opened  bool      // the stream was opened
	pending spineReader
}

// open returns a reader of the spine, checked as checkSpine does.
func (s *spineSource) open(keys map[string]aggregate.Kind, timeCol string) (spineReader, error) {
	if s.stream == nil {
		return openSpine(s.path, s.format, keys, timeCol)
	}
	if sr := s.pending; sr != nil {
		s.pending = nil
		return sr, nil
	}
	if s.opened {
		return nil, errors.New("offline: export: a streamed spine opened twice")
	}
	s.opened = true
	sr, err := newCSVSpine(s.stream, nil, "stream", keys, timeCol)
	if err != nil {
		return nil, err
	}
	return checkSpine(sr, keys, timeCol)
}

// spool makes the stream's bytes, as they are read, go to a file at path
// too, which becomes the source once the stream is read; call it before
// the first open.
func (s *spineSource) spool(path string) (*os.File, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("offline: spool spine: %w", err)
	}
	s.stream = io.TeeReader(s.stream, f)
	return f, nil
}

// openSpine opens a spine and checks that it has the key columns (with the
// kinds given) and the time column.
func openSpine(path, format string, keys map[string]aggregate.Kind, timeCol string) (spineReader, error) {
	var sr spineReader
	var err error
	switch format {
	case "parquet":
		sr, err = openParquetSpine(path)
	case "csv":
		sr, err = openCSVSpine(path, keys, timeCol)
	default:
		return nil, badInput("spine format %q: want parquet or csv", format)
	}
	if err != nil {
		return nil, err
	}
	return checkSpine(sr, keys, timeCol)
}

// checkSpine checks that sr has the key columns (with the kinds given) and
// the time column, closing it if not.
func checkSpine(sr spineReader, keys map[string]aggregate.Kind, timeCol string) (spineReader, error) {
	sc := sr.schema()
	check := func(name, want string, ok func(arrow.DataType) bool) error {
		idx := sc.FieldIndices(name)
		if len(idx) == 0 {
			return badInput("spine: no column %q (columns: %s)", name, columnList(sc))
		}
		if len(idx) > 1 {
			return badInput("spine: column %q appears %d times", name, len(idx))
		}
		if t := sc.Field(idx[0]).Type; !ok(t) {
			return badInput("spine: column %q is %s, want %s", name, t, want)
		}
		return nil
	}
	for name, k := range keys {
		want, ok := "a string column", isStringType
		if k == aggregate.KindInt64 {
			want, ok = "an integer column", isIntType
		}
		if err := check(name, want, ok); err != nil {
			sr.close()
			return nil, err
		}
	}
	if err := check(timeCol, "a timestamp or int64 epoch-milliseconds column", isTimeType); err != nil {
		sr.close()
		return nil, err
	}
	return sr, nil
}

func columnList(sc *arrow.Schema) string {
	var names []string
	for _, f := range sc.Fields() {
		names = append(names, f.Name)
	}
	return strings.Join(names, ", ")
}

func isStringType(t arrow.DataType) bool {
	return t.ID() == arrow.STRING || t.ID() == arrow.LARGE_STRING
}

func isIntType(t arrow.DataType) bool {
	switch t.ID() {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64, arrow.UINT8, arrow.UINT16, arrow.UINT32:
		return true
	}
	return false
}

func isTimeType(t arrow.DataType) bool {
	return t.ID() == arrow.TIMESTAMP || t.ID() == arrow.INT64 || t.ID() == arrow.DATE32
}

// keyValueAt returns row i of a key column as a key part (its keyenc bytes
// are keyenc.AppendKey's); ok is false for a null.
func keyValueAt(a arrow.Array, i int) (aggregate.Value, bool, error) {
	if a.IsNull(i) {
		return aggregate.Value{}, false, nil
	}
	var v aggregate.Value
	switch a := a.(type) {
	case *array.String:
		v = aggregate.Value{Kind: aggregate.KindString, S: a.Value(i)}
	case *array.LargeString:
		v = aggregate.Value{Kind: aggregate.KindString, S: a.Value(i)}
	case *array.Int64:
		v = aggregate.Value{Kind: aggregate.KindInt64, I: a.Value(i)}
	case *array.Int32:
		v = aggregate.Value{Kind: aggregate.KindInt64, I: int64(a.Value(i))}
	case *array.Int16:
		v = aggregate.Value{Kind: aggregate.KindInt64, I: int64(a.Value(i))}
	case *array.Int8:
		v = aggregate.Value{Kind: aggregate.KindInt64, I: int64(a.Value(i))}
	case *array.Uint32:
		v = aggregate.Value{Kind: aggregate.KindInt64, I: int64(a.Value(i))}
	case *array.Uint16:
		v = aggregate.Value{Kind: aggregate.KindInt64, I: int64(a.Value(i))}
	case *array.Uint8:
		v = aggregate.Value{Kind: aggregate.KindInt64, I: int64(a.Value(i))}
	default:
		return aggregate.Value{}, false, badInput("key column of type %s", a.DataType())
	}
	if v.Kind == aggregate.KindString {
		if err := keyenc.Check(v.S); err != nil {
			return v, true, err
		}
	}
	return v, true, nil
}

// millisAt returns row i of a time column in epoch milliseconds (finer
// units are floored to the millisecond); ok is false for a null.
func millisAt(a arrow.Array, i int) (int64, bool) {
	if a.IsNull(i) {
		return 0, false
	}
	switch a := a.(type) {
	case *array.Int64:
		return a.Value(i), true
	case *array.Date32:
		return int64(a.Value(i)) * 86_400_000, true
	case *array.Timestamp:
		v := int64(a.Value(i))
		switch a.DataType().(*arrow.TimestampType).Unit {
		case arrow.Second:
			return v * 1000, true
		case arrow.Millisecond:
			return v, true
		case arrow.Microsecond:
			return floorDiv(v, 1000), true
		default:
			return floorDiv(v, 1_000_000), true
		}
	}
	return 0, false
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// parquetSpine reads a Parquet spine.
type parquetSpine struct {
	pf *file.Reader
	rr pqarrow.RecordReader
	sc *arrow.Schema
}

func openParquetSpine(path string) (*parquetSpine, error) {
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		return nil, badInput("spine %s: not a readable Parquet file: %v", path, err)
	}
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: spineBatchRows}, memory.DefaultAllocator)
	if err != nil {
		pf.Close()
		return nil, badInput("spine %s: %v", path, err)
	}
	rr, err := fr.GetRecordReader(context.Background(), nil, nil)
	if err != nil {
		pf.Close()
		return nil, badInput("spine %s: %v", path, err)
	}
	sc := rr.Schema()
	return &parquetSpine{pf: pf, rr: rr, sc: sc}, nil
}

func (p *parquetSpine) schema() *arrow.Schema { return p.sc }

func (p *parquetSpine) next() (arrow.RecordBatch, error) {
	if p.rr.Next() {
		rec := p.rr.RecordBatch()
		rec.Retain()
		return rec, nil
	}
	if err := p.rr.Err(); err != nil && !errors.Is(err, io.EOF) {
		return nil, badInput("spine: %v", err)
	}
	return nil, io.EOF
}

func (p *parquetSpine) close() {
	p.rr.Release()
	p.pf.Close()
}

// csvSpine reads a CSV spine with a header row. The key columns become
// string or int64 columns (by the entity's key type), the time column a
// timestamp[ms, UTC] (RFC 3339, "2006-01-02 15:04:05[.000]" taken as UTC, or
// integer epoch milliseconds), and every other column passes through as a
// string (empty cells are null).
type csvSpine struct {
	f     io.Closer // nil for a stream
	r     *csv.Reader
	sc    *arrow.Schema
	kinds []aggregate.Kind // per column: KindInt64 key, KindNull time (marker -1), KindString otherwise
	isT   []bool
	line  int
}

func openCSVSpine(path string, keys map[string]aggregate.Kind, timeCol string) (*csvSpine, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, badInput("spine %s: %v", path, err)
	}
	s, err := newCSVSpine(f, f, path, keys, timeCol)
	if err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

// csvReadErr is a CSV spine's error: the spine's fault (400) when the CSV
// does not parse, else the error of reading it (a body cut by its size
// limit or its deadline, for the HTTP handler to tell apart), wrapped.
func csvReadErr(err error, format string, args ...any) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) || errors.Is(err, io.EOF) {
		return badInput(format+": %v", append(args, err)...)
	}
	return fmt.Errorf("offline: "+format+": %w", append(args, err)...)
}

// newCSVSpine reads a CSV spine's header from r; c (when not nil) is
// closed with the spine.
func newCSVSpine(r io.Reader, c io.Closer, name string, keys map[string]aggregate.Kind, timeCol string) (*csvSpine, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	head, err := cr.Read()
	if err != nil {
		return nil, csvReadErr(err, "spine %s: no CSV header", name)
	}
	s := &csvSpine{f: c, r: cr, line: 1}
	var fields []arrow.Field
	for _, h := range head {
		h = strings.TrimSpace(h)
		var t arrow.DataType = arrow.BinaryTypes.String
		kind := aggregate.KindString
		isT := false
		if k, ok := keys[h]; ok && k == aggregate.KindInt64 {
			t, kind = arrow.PrimitiveTypes.Int64, aggregate.KindInt64
		}
		if h == timeCol {
			t, isT = codec.TimestampMS, true
		}
		fields = append(fields, arrow.Field{Name: h, Type: t, Nullable: true})
		s.kinds = append(s.kinds, kind)
		s.isT = append(s.isT, isT)
	}
	s.sc = arrow.NewSchema(fields, nil)
	return s, nil
}

func (s *csvSpine) schema() *arrow.Schema { return s.sc }

func (s *csvSpine) next() (arrow.RecordBatch, error) {
	b := array.NewRecordBuilder(memory.DefaultAllocator, s.sc)
	defer b.Release()
	n := 0
	for n < spineBatchRows {
		rec, err := s.r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		s.line++
		if err != nil {
			return nil, csvReadErr(err, "spine line %d", s.line)
		}
		for c, cell := range rec {
			name := s.sc.Field(c).Name
			switch {
			case cell == "":
				b.Field(c).AppendNull()
			case s.isT[c]:
				ms, err := parseTime(cell)
				if err != nil {
					return nil, badInput("spine line %d, column %q: %v", s.line, name, err)
				}
				b.Field(c).(*array.TimestampBuilder).Append(arrow.Timestamp(ms))
			case s.kinds[c] == aggregate.KindInt64:
				v, err := strconv.ParseInt(strings.TrimSpace(cell), 10, 64)
				if err != nil {
					return nil, badInput("spine line %d, column %q: %q is not an integer", s.line, name, cell)
				}
				b.Field(c).(*array.Int64Builder).Append(v)
			default:
				b.Field(c).(*array.StringBuilder).Append(cell)
			}
		}
		n++
	}
	if n == 0 {
		return nil, io.EOF
	}
	return b.NewRecordBatch(), nil
}

func (s *csvSpine) close() {
	if s.f != nil {
		s.f.Close()
	}
}

// parseTime reads RFC 3339, "2006-01-02 15:04:05[.fff]" (UTC) or integer
// epoch milliseconds.
func parseTime(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		return ms, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999", time.DateOnly} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UnixMilli(), nil
		}
	}
	return 0, fmt.Errorf("%q is not RFC 3339, \"YYYY-MM-DD HH:MM:SS\" or epoch milliseconds", s)
}
