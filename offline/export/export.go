package export

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/parquet/file"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/featurestore"
	"github.com/featured-dev/featured/internal/keyenc"
	"github.com/featured-dev/featured/offline/eventlog"
	"github.com/featured-dev/featured/offline/internal/codec"
	"github.com/featured-dev/featured/registry"
)

// Mode is how an export decides which logged events a spine row (entity, T)
// sees.
type Mode string

const (
	// ModeServed (the default) answers exactly what online serving answered
	// at T: the events of the entity that were committed to the online store
	// at or before T (the log's commit time), folded in the order the store
	// folded them, into the view versions the store folded them into. An
	// event with event time <= T that arrived after T is not in the answer,
	// as it was not online; one stamped after T but already ingested is.
	ModeServed Mode = "served"
	// ModeEvent answers as if every event had arrived at its event time:
	// the events with event time <= T (Feast's event_timestamp <= T), folded
	// in event-time order (log order on ties), with no admission check. For
	// history replayed after the fact, where arrival says nothing.
	ModeEvent Mode = "event"
)

// Request is one export.
type Request struct {
	// Features are references ("view:feature", "view@v2:feature"); or
	// Service names a feature service. Exactly one of them.
	Features []string
	Service  string
	// Mode is ModeServed when empty.
	Mode Mode
	// TimeColumn is the spine's time column; DefaultTimeColumn when empty.
	TimeColumn string
	// Statuses adds a "<name>__status" string column per feature: PRESENT,
	// NULL_VALUE or NOT_FOUND.
	Statuses bool
	// FullNames names feature columns "view__feature" (Feast's
	// full_feature_names) instead of "feature"; a pinned reference keeps
	// its pin, "view@v2__feature", as lookups name it
	// (registry.Resolved.FullName), so two versions of one feature can be
	// exported side by side.
	FullNames bool
	// MemoryBytes bounds the export's working set (spine keys, the log rows
	// of one bucket, results); larger inputs are partitioned by entity hash
	// into spill files. The default value is DefaultMemoryBytes.
	MemoryBytes int64
	// TempDir holds spill files. The default is os.TempDir().
	TempDir string
	// Tracer, when set, gets a span for the export and its phases (see
	// Tracer). Nil: no spans.
	Tracer Tracer
}

// DefaultMemoryBytes is an export's working-set budget when the Request
// gives none: Request.MemoryBytes's default (512 MiB).
const DefaultMemoryBytes = 512 << 20

// Stats reports an export.
type Stats struct {
	Rows      int64 `json:"rows"`
	Features  int   `json:"features"`
	LogRows   int64 `json:"log_rows"`
	Buckets   int   `json:"buckets"`
	SpillUsed bool  `json:"spilled"`
	// SpilledBytes is what the spill files held at the end (the spine's
	// copy, log rows and results by bucket); 0 in memory.
	SpilledBytes int64 `json:"spilled_bytes"`
}

// dirBytes is the total size of the files in dir.
func dirBytes(dir string) int64 {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var n int64
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && !fi.IsDir() {
			n += fi.Size()
		}
	}
	return n
}

// Sink receives the export: the schema once, then record batches in spine
// order.
type Sink interface {
	Begin(schema *arrow.Schema) error
	Write(rec arrow.RecordBatch) error
}

// Exporter runs point-in-time exports over an eventlog.Log with a Registry's view
// definitions. It is safe for concurrent use.
type Exporter struct {
	reg *registry.Registry
	log *eventlog.Log
}

// NewExporter returns an Exporter.
func NewExporter(reg *registry.Registry, log *eventlog.Log) *Exporter {
	return &Exporter{reg: reg, log: log}
}

// Registry returns the registry whose definitions the exporter reads.
func (x *Exporter) Registry() *registry.Registry { return x.reg }

// column is one output feature column.
type column struct {
	name   string
	kind   aggregate.Kind // result kind
	elem   aggregate.Kind // list element kind
	status bool
}

// exportView is one view version an export reads, with the features it
// needs and where they go.
type exportView struct {
	view     *registry.View
	vk       int64
	features []int // feature indexes
	cols     []int // output column of each, within the group
}

// group is the views of one key: one join key, or the tuple of join keys of
// a compound view (a spine row gives it one column per join key).
type group struct {
	joinKeys []string
	keyKinds []aggregate.Kind
	views    []*exportView
	sources  map[string]bool
	cols     []column
	colBase  int // first output feature column of the group
}

// plan resolves the request into groups of views by join key.
func (x *Exporter) plan(req *Request) ([]*group, []column, error) {
	snap := x.reg.Snapshot()
	var res []registry.Resolved
	var err error
	switch {
	case req.Service != "" && len(req.Features) > 0:
		return nil, nil, badInput("give features or a feature service, not both")
	case req.Service != "":
		res, err = snap.ResolveService(req.Service)
	case len(req.Features) == 0:
		return nil, nil, badInput("no features: give feature references or a feature service")
	default:
		res, err = snap.Resolve(req.Features)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrBadInput, err)
	}
	byKey := map[string]*group{}
	kinds := map[string]aggregate.Kind{} // join key -> its type, across groups
	var groups []*group
	seen := map[string]string{}
	for _, r := range res {
		v := r.View
		id := strings.Join(v.JoinKeys(), "\x00")
		g := byKey[id]
		if g == nil {
			g = &group{joinKeys: v.JoinKeys(), keyKinds: v.KeyKinds(), sources: map[string]bool{}}
			byKey[id] = g
			groups = append(groups, g)
		}
		for _, e := range v.Entities {
			if k, ok := kinds[e.JoinKey]; ok && k != e.Type {
				return nil, nil, badInput("join key %q has two types", e.JoinKey)
			}
			kinds[e.JoinKey] = e.Type
		}
		name := r.Name
		if req.FullNames {
			name = r.FullName()
		}
		if prev, dup := seen[name]; dup {
			return nil, nil, badInput("output column %q named twice (%s and %s); use full names", name, prev, r.Ref)
		}
		seen[name] = r.Ref
		vk := eventlog.ViewKeyInt(featurestore.ViewKey{ID: v.ID, Version: uint32(v.Version)})
		var ev *exportView
		for _, e := range g.views {
			if e.vk == vk {
				ev = e
			}
		}
		if ev == nil {
			ev = &exportView{view: v, vk: vk}
			g.views = append(g.views, ev)
			g.sources[v.Source.Name] = true
		}
		sp := v.Layout.Specs()[r.Feature]
		ev.features = append(ev.features, r.Feature)
		ev.cols = append(ev.cols, len(g.cols))
		g.cols = append(g.cols, column{name: name, kind: sp.Op.ResultKind(sp.FieldKind), elem: sp.FieldKind, status: req.Statuses})
	}
	// Output columns are grouped by join key; within a group in request order.
	var all []column
	for _, g := range groups {
		g.colBase = len(all)
		all = append(all, g.cols...)
	}
	return groups, all, nil
}

// Export computes the training set of the spine at spinePath (format
// "parquet" or "csv"; "" guesses from the extension) and writes it to sink:
// the spine's columns, then one column per feature (and its status when
// asked), one row per spine row, in spine order.
func (x *Exporter) Export(ctx context.Context, spinePath, format string, req Request, sink Sink) (Stats, error) {
	if format == "" {
		var err error
		if format, err = spineFormat(spinePath); err != nil {
			return Stats{}, err
		}
	}
	src := &spineSource{path: spinePath, format: format, size: -1}
	if fi, err := os.Stat(spinePath); err == nil {
		src.size = fi.Size()
	}
	return x.export(ctx, src, req, sink)
}

// ExportCSV is Export of a CSV spine read from r as it arrives, not stored
// first: an export that fits in memory keeps the spine's batches for its
// output anyway, and one that spills copies the spine into its spill
// directory while its first pass reads it, for its second pass. sizeBytes
// is the spine's size (an HTTP body's Content-Length), which sizes the
// export's buckets as a file's size does. An error reading r is returned
// wrapped (not as ErrBadInput), so the caller can tell a body that broke
// off or came too slowly from a spine that does not parse.
func (x *Exporter) ExportCSV(ctx context.Context, r io.Reader, sizeBytes int64, req Request, sink Sink) (Stats, error) {
	return x.export(ctx, &spineSource{format: "csv", stream: r, size: sizeBytes}, req, sink)
}

func (x *Exporter) export(ctx context.Context, src *spineSource, req Request, sink Sink) (st Stats, err error) {
	ctx, end := startSpan(ctx, req.Tracer, SpanExport)
	defer func() { end(err) }()
	if req.Mode == "" {
		req.Mode = ModeServed
	}
	if req.Mode != ModeServed && req.Mode != ModeEvent {
		return st, badInput("mode %q: want served or event", req.Mode)
	}
	if req.TimeColumn == "" {
		req.TimeColumn = DefaultTimeColumn
	}
	if req.MemoryBytes <= 0 {
		req.MemoryBytes = DefaultMemoryBytes
	}
	format := src.format
	groups, cols, err := x.plan(&req)
	if err != nil {
		return st, err
	}
	st.Features = len(cols)
	keys := map[string]aggregate.Kind{}
	for _, g := range groups {
		for i, jk := range g.joinKeys {
			keys[jk] = g.keyKinds[i]
		}
	}

	// Buckets: partition spine keys and log rows by entity hash so that one
	// bucket's rows fit in MemoryBytes.
	nb := 1
	var rowsHint int64 // the spine's rows, from its metadata or a guess
	if size := src.size; size >= 0 {
		rows, logBytes := spineRows(src.path, format, size), x.logBytes(groups)
		rowsHint = rows
		est := size*4 + logBytes*8 + rows*int64(len(cols))*12
		nb = int(min(256, max(1, (est+req.MemoryBytes-1)/req.MemoryBytes)))
		if nb > 1 {
			// Spilling: buckets are joined spillJoins at a time.
			nb = int(min(256, (spillJoins*est+req.MemoryBytes-1)/req.MemoryBytes))
		}
		// The join numbers a bucket's spine entries and log rows with
		// int32s; a log row takes more than 4 bytes of Parquet.
		nb = max(nb, int(rows/maxBucketRows)+1, int(logBytes/4/maxBucketRows)+1)
	}
	st.Buckets = nb
	st.SpillUsed = nb > 1
	var tmp string
	if nb > 1 {
		if tmp, err = os.MkdirTemp(req.TempDir, "featured-export-"); err != nil {
			return st, fmt.Errorf("offline: spill dir: %w", err)
		}
		defer func() {
			st.SpilledBytes = dirBytes(tmp)
			os.RemoveAll(tmp)
		}()
		if src.stream != nil {
			f, err := src.spool(filepath.Join(tmp, "spine.csv"))
			if err != nil {
				return st, err
			}
			defer f.Close()
		}
	}
	sr, err := src.open(keys, req.TimeColumn)
	if err != nil {
		return st, err
	}
	outSchema, err := outputSchema(sr.schema(), cols)
	if src.stream != nil && err == nil {
		src.pending = sr
	} else {
		sr.close()
	}
	if err != nil {
		return st, err
	}
	if nb == 1 {
		return st, x.exportInMemory(ctx, src, keys, &req, groups, outSchema, sink, &st, int(min(rowsHint, 1<<26)))
	}

	// Pass 1 over the spine: (row, key, T) per group into buckets; the
	// first group's log is split into the same buckets meanwhile.
	spines := make([]*buckets, len(groups))
	for gi := range groups {
		spines[gi] = newBuckets(filepath.Join(tmp, fmt.Sprintf("spine-%d", gi)), nb)
	}
	logs0 := newBuckets(filepath.Join(tmp, "log-0"), nb)
	defer logs0.remove()
	var logs0Rows int64
	var logs0Err error
	var logs0Done sync.WaitGroup
	logCtx, cancelLog := context.WithCancel(ctx)
	defer cancelLog()
	logs0Done.Go(func() {
		lctx, endScan := startSpan(logCtx, req.Tracer, SpanLogScan)
		logs0Rows, logs0Err = x.splitLog(lctx, groups[0], logs0, nil)
		endScan(logs0Err)
	})
	_, endSpine := startSpan(ctx, req.Tracer, SpanSpineRead)
	rows, err := x.splitSpine(src, keys, req.TimeColumn, groups, spines)
	endSpine(err)
	if err != nil {
		cancelLog()
	}
	logs0Done.Wait()
	if err != nil {
		return st, err
	}
	st.Rows = rows

	// Per group: the log rows into the same buckets, then each bucket's
	// results, sorted by spine row, into a run.
	results := make([]resultSource, len(groups))
	for gi, g := range groups {
		logs, n, err := logs0, logs0Rows, logs0Err
		if gi > 0 {
			logs = newBuckets(filepath.Join(tmp, fmt.Sprintf("log-%d", gi)), nb)
			lctx, endScan := startSpan(ctx, req.Tracer, SpanLogScan)
			n, err = x.splitLog(lctx, g, logs, nil)
			endScan(err)
		}
		if err != nil {
			return st, err
		}
		st.LogRows += n
		runs := newBuckets(filepath.Join(tmp, fmt.Sprintf("res-%d", gi)), nb)
		jctx, endJoin := startSpan(ctx, req.Tracer, SpanJoin)
		err = x.joinBuckets(jctx, g, &req, spines[gi], logs, runs)
		endJoin(err)
		if err != nil {
			return st, err
		}
		logs.remove()
		spines[gi].remove()
		m, err := newRunMerger(runs, g.cols)
		if err != nil {
			return st, err
		}
		results[gi] = m
	}

	// Pass 2 over the spine: pass-through columns plus the results, merged
	// back into spine order.
	wctx, endWrite := startSpan(ctx, req.Tracer, SpanWrite)
	defer func() { endWrite(err) }()
	if err := sink.Begin(outSchema); err != nil {
		return st, err
	}
	if src.stream != nil {
		// Read to its end by pass 1; its copy is the file for pass 2.
		src = &spineSource{path: filepath.Join(tmp, "spine.csv"), format: format}
	}
	sr, err = src.open(keys, req.TimeColumn)
	if err != nil {
		return st, err
	}
	defer sr.close()
	return st, x.assemble(wctx, sr, outSchema, results, sink)
}

// maxBucketRows bounds the spine entries and log rows of one join.
const maxBucketRows = 1 << 30

// spineRows is the spine's row count from a Parquet spine's metadata, or a
// guess from a CSV spine's size (a short line a row).
func spineRows(path, format string, size int64) int64 {
	if format == "parquet" {
		if pf, err := file.OpenParquetFile(path, false); err == nil {
			defer pf.Close()
			return pf.NumRows()
		}
	}
	return size / 16
}

// exportInMemory is an export whose working set fits in memory: the spine
// is read once (its batches kept for the output), each group's log rows
// are loaded column-wise and joined over the CPUs into result columns
// indexed by spine row, and the output batches share their memory.
func (x *Exporter) exportInMemory(ctx context.Context, src *spineSource, keys map[string]aggregate.Kind, req *Request, groups []*group, outSchema *arrow.Schema, sink Sink, st *Stats, hint int) error {
	sets := make([]*spineSet, len(groups))
	ents := make([]*entityIndex, len(groups))
	for gi := range groups {
		sets[gi], ents[gi] = newSpineSet(hint), newEntityIndex()
	}
	// The spine and the groups' logs are read at the same time; the logs'
	// entities are bound to the spine's when both are in.
	tables := make([]*logTable, len(groups))
	logErrs := make([]error, len(groups))
	logCtx, cancelLogs := context.WithCancel(ctx)
	defer cancelLogs()
	var logWG sync.WaitGroup
	logWG.Go(func() {
		lctx, endScan := startSpan(logCtx, req.Tracer, SpanLogScan)
		var err error
		defer func() { endScan(err) }()
		for gi, g := range groups {
			if tables[gi], logErrs[gi] = x.loadLogTable(lctx, g); logErrs[gi] != nil {
				err = logErrs[gi]
				return
			}
		}
	})
	_, endSpine := startSpan(ctx, req.Tracer, SpanSpineRead)
	recs, rows, err := x.readSpine(src, keys, req.TimeColumn, groups, true, func(gi int, key []byte, row, t int64) {
		sets[gi].add(ents[gi].add(key), row, t)
	})
	endSpine(err)
	if err != nil {
		cancelLogs() // the spine's error is the one to report
	}
	logWG.Wait()
	defer func() {
		for _, r := range recs {
			r.Release()
		}
	}()
	if err != nil {
		return err
	}
	if err := errors.Join(logErrs...); err != nil {
		return err
	}
	st.Rows = rows
	_, endJoin := startSpan(ctx, req.Tracer, SpanJoin)
	results := make([]resultSource, len(groups))
	for gi, g := range groups {
		// Binding the log to the spine's entities, grouping the spine by
		// entity and zeroing the results are independent passes.
		lt, sp := tables[gi], sets[gi]
		var kept int64
		var bindWG sync.WaitGroup
		bindWG.Go(func() { kept = lt.bind(ents[gi]) })
		sp.group(sp.ent, ents[gi].len())
		res := newResults(g.cols, int(rows))
		bindWG.Wait()
		st.LogRows += kept
		x.join(g, req.Mode, sp, lt, ents[gi].len(), res)
		results[gi] = res
		sets[gi], tables[gi] = nil, nil
	}
	endJoin(nil)
	if err := ctx.Err(); err != nil {
		return err
	}
	wctx, endWrite := startSpan(ctx, req.Tracer, SpanWrite)
	err = sink.Begin(outSchema)
	if err == nil {
		ms := &memSpine{recs: recs}
		recs = nil // ms releases them
		defer ms.close()
		err = x.assemble(wctx, ms, outSchema, results, sink)
	}
	endWrite(err)
	return err
}

// memSpine replays spine batches kept in memory.
type memSpine struct {
	recs []arrow.RecordBatch
}

func (m *memSpine) next() (arrow.RecordBatch, error) {
	if len(m.recs) == 0 {
		return nil, io.EOF
	}
	r := m.recs[0]
	m.recs = m.recs[1:]
	return r, nil
}

func (m *memSpine) close() {
	for _, r := range m.recs {
		r.Release()
	}
	m.recs = nil
}

// logBytes estimates the log's size for the groups' sources.
func (x *Exporter) logBytes(groups []*group) int64 {
	sources := map[string]bool{}
	for _, g := range groups {
		for src := range g.sources {
			sources[src] = true
		}
	}
	return x.log.Bytes(sources)
}

func outputSchema(spine *arrow.Schema, cols []column) (*arrow.Schema, error) {
	fields := append([]arrow.Field(nil), spine.Fields()...)
	names := map[string]bool{}
	for _, f := range fields {
		names[f.Name] = true
	}
	for _, c := range cols {
		add := func(name string, t arrow.DataType) error {
			if names[name] {
				return badInput("feature column %q collides with a spine column of that name", name)
			}
			names[name] = true
			fields = append(fields, arrow.Field{Name: name, Type: t, Nullable: true})
			return nil
		}
		if err := add(c.name, codec.ArrowType(c.kind, c.elem)); err != nil {
			return nil, err
		}
		if c.status {
			if err := add(c.name+"__status", arrow.BinaryTypes.String); err != nil {
				return nil, err
			}
		}
	}
	md := spine.Metadata()
	return arrow.NewSchema(fields, &md), nil
}

// readSpine reads the spine once, calling fn with (group, entity key, row,
// T) for every row and group; key is only valid during the call. With
// keep, it returns the spine's batches (the caller releases them). It
// returns the row count.
func (x *Exporter) readSpine(src *spineSource, keys map[string]aggregate.Kind, timeCol string, groups []*group, keep bool, fn func(gi int, key []byte, row, t int64)) (recs []arrow.RecordBatch, rows int64, err error) {
	sr, err := src.open(keys, timeCol)
	if err != nil {
		return nil, 0, err
	}
	defer sr.close()
	sc := sr.schema()
	tcol := sc.FieldIndices(timeCol)[0]
	kcols := make([][]int, len(groups))
	for gi, g := range groups {
		for _, jk := range g.joinKeys {
			kcols[gi] = append(kcols[gi], sc.FieldIndices(jk)[0])
		}
	}
	var rowIdx int64
	var key []byte
	var parts []aggregate.Value
	for {
		rec, err := sr.next()
		if errors.Is(err, io.EOF) {
			return recs, rowIdx, nil
		}
		if err != nil {
			return recs, 0, err
		}
		if keep {
			recs = append(recs, rec)
		}
		err = func() error {
			if !keep {
				defer rec.Release()
			}
			tc := rec.Column(tcol)
			n := int(rec.NumRows())
			for gi, g := range groups {
				for i := 0; i < n; i++ {
					row := rowIdx + int64(i)
					t, ok := millisAt(tc, i)
					if !ok {
						return badInput("spine row %d: %q is null", row, timeCol)
					}
					parts = parts[:0]
					for ki, c := range kcols[gi] {
						v, ok, err := keyValueAt(rec.Column(c), i)
						if err != nil {
							return badInput("spine row %d, column %q: %v", row, g.joinKeys[ki], err)
						}
						if !ok {
							return badInput("spine row %d: %q is null", row, g.joinKeys[ki])
						}
						parts = append(parts, v)
					}
					var err error
					if key, err = keyenc.AppendKey(key[:0], parts...); err != nil {
						return badInput("spine row %d: %v", row, err) // keyValueAt checked every part
					}
					fn(gi, key, row, t)
				}
			}
			rowIdx += int64(n)
			return nil
		}()
		if err != nil {
			return recs, 0, err
		}
	}
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func commitFloor(m *eventlog.Marker) int64 {
	if m == nil {
		return 0
	}
	return m.CommitMillis
}

// batchSource yields spine batches in order (a spineReader, or a spine
// kept in memory); next returns io.EOF at the end.
type batchSource interface {
	next() (arrow.RecordBatch, error)
}

// assemble writes the output batches: each spine batch of sr with the
// groups' feature columns of its rows beside it.
func (x *Exporter) assemble(ctx context.Context, sr batchSource, sc *arrow.Schema, results []resultSource, sink Sink) error {
	// A producer goroutine builds the output batches while this one writes
	// them (the Parquet encoder is the other half of the work).
	type batch struct {
		rec arrow.RecordBatch
		err error
	}
	batches := make(chan batch, 2)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(stop)
	wg.Go(func() {
		defer close(batches)
		send := func(b batch) bool {
			select {
			case batches <- b:
				return true
			case <-stop:
				if b.rec != nil {
					b.rec.Release()
				}
				return false
			}
		}
		var rowIdx int64
		for {
			if err := ctx.Err(); err != nil {
				send(batch{err: err})
				return
			}
			rec, err := sr.next()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				send(batch{err: err})
				return
			}
			n := int(rec.NumRows())
			arrs := make([]arrow.Array, 0, len(sc.Fields()))
			arrs = append(arrs, rec.Columns()...)
			var feats []arrow.Array
			for _, rs := range results {
				a, err := rs.arrays(rowIdx, n)
				feats = append(feats, a...)
				if err != nil {
					release(feats)
					rec.Release()
					send(batch{err: err})
					return
				}
			}
			arrs = append(arrs, feats...)
			out := array.NewRecordBatch(sc, arrs, int64(n))
			release(feats)
			rec.Release()
			rowIdx += int64(n)
			if !send(batch{rec: out}) {
				return
			}
		}
	})
	for bt := range batches {
		if bt.err != nil {
			return bt.err
		}
		err := sink.Write(bt.rec)
		bt.rec.Release()
		if err != nil {
			return err
		}
	}
	return nil
}

func release(arrs []arrow.Array) {
	for _, a := range arrs {
		a.Release()
	}
}

// StatusName is the text of a status in an export's "<feature>__status"
// columns: PRESENT, NULL_VALUE or NOT_FOUND.
func StatusName(s aggregate.Status) string {
	switch s {
	case aggregate.StatusPresent:
		return "PRESENT"
	case aggregate.StatusNull:
		return "NULL_VALUE"
	}
	return "NOT_FOUND"
}

// Log returns the log the exporter reads.
func (x *Exporter) Log() *eventlog.Log { return x.log }

// resultSource yields each group's feature columns in spine order.
type resultSource interface {
	// arrays returns the output arrays of spine rows [lo, lo+n), which
	// are asked for in order.
	arrays(lo int64, n int) ([]arrow.Array, error)
}

func (r *results) arrays(lo int64, n int) ([]arrow.Array, error) { return r.columns(int(lo), n), nil }
