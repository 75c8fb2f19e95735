package offline

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/featurestore"
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
	// full_feature_names) instead of "feature".
	FullNames bool
	// MemoryBytes bounds the export's working set (spine keys, the log rows
	// of one bucket, results); larger inputs are partitioned by entity hash
	// into spill files. The default value is 512 MiB.
	MemoryBytes int64
	// TempDir holds spill files. The default is os.TempDir().
	TempDir string
}

// Stats reports an export.
type Stats struct {
	Rows      int64 `json:"rows"`
	Features  int   `json:"features"`
	LogRows   int64 `json:"log_rows"`
	Buckets   int   `json:"buckets"`
	SpillUsed bool  `json:"spilled"`
}

// Sink receives the export: the schema once, then record batches in spine
// order.
type Sink interface {
	Begin(schema *arrow.Schema) error
	Write(rec arrow.RecordBatch) error
}

// Exporter runs point-in-time exports over a Log with a Registry's view
// definitions. It is safe for concurrent use.
type Exporter struct {
	reg *registry.Registry
	log *Log
}

// NewExporter returns an Exporter.
func NewExporter(reg *registry.Registry, log *Log) *Exporter { return &Exporter{reg: reg, log: log} }

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
	// fieldMap maps the view's Source.Fields to the fields of rows of
	// schema mapped; scratch receives them.
	mapped   *schema
	fieldMap []int
	identity bool
	scratch  []aggregate.Value
}

// group is the views of one entity join key.
type group struct {
	joinKey string
	keyKind aggregate.Kind
	views   []*exportView
	sources map[string]bool
	cols    []column
	colBase int // first output feature column of the group
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
	var groups []*group
	seen := map[string]string{}
	type placed struct {
		g   *group
		col int
	}
	var order []placed
	for _, r := range res {
		v := r.View
		g := byKey[v.Entity.JoinKey]
		if g == nil {
			g = &group{joinKey: v.Entity.JoinKey, keyKind: v.Entity.Type, sources: map[string]bool{}}
			byKey[v.Entity.JoinKey] = g
			groups = append(groups, g)
		}
		if g.keyKind != v.Entity.Type {
			return nil, nil, badInput("join key %q has two types", v.Entity.JoinKey)
		}
		name := r.Name
		if req.FullNames {
			name = v.Name + "__" + r.Name
		}
		if prev, dup := seen[name]; dup {
			return nil, nil, badInput("output column %q named twice (%s and %s); use full names", name, prev, r.Ref)
		}
		seen[name] = r.Ref
		vk := viewKeyInt(featurestore.ViewKey{ID: v.ID, Version: uint32(v.Version)})
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
		order = append(order, placed{g, len(g.cols) - 1})
	}
	// Output columns are grouped by join key; within a group in request order.
	var all []column
	for _, g := range groups {
		g.colBase = len(all)
		all = append(all, g.cols...)
	}
	_ = order
	return groups, all, nil
}

// Export computes the training set of the spine at spinePath (format
// "parquet" or "csv"; "" guesses from the extension) and writes it to sink:
// the spine's columns, then one column per feature (and its status when
// asked), one row per spine row, in spine order.
func (x *Exporter) Export(ctx context.Context, spinePath, format string, req Request, sink Sink) (Stats, error) {
	var st Stats
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
		req.MemoryBytes = 512 << 20
	}
	if format == "" {
		var err error
		if format, err = spineFormat(spinePath); err != nil {
			return st, err
		}
	}
	groups, cols, err := x.plan(&req)
	if err != nil {
		return st, err
	}
	st.Features = len(cols)
	keys := map[string]aggregate.Kind{}
	for _, g := range groups {
		keys[g.joinKey] = g.keyKind
	}
	sr, err := openSpine(spinePath, format, keys, req.TimeColumn)
	if err != nil {
		return st, err
	}
	sc := sr.schema()
	outSchema, err := outputSchema(sc, cols)
	sr.close()
	if err != nil {
		return st, err
	}

	// Buckets: partition spine keys and log rows by entity hash so that one
	// bucket's rows fit in MemoryBytes.
	nb := 1
	if fi, err := os.Stat(spinePath); err == nil {
		est := fi.Size()*4 + x.logBytes(groups)*8
		nb = int(min(256, max(1, (est+req.MemoryBytes-1)/req.MemoryBytes)))
	}
	st.Buckets = nb
	st.SpillUsed = nb > 1
	tmp, err := os.MkdirTemp(req.TempDir, "featured-export-")
	if err != nil {
		return st, fmt.Errorf("offline: spill dir: %w", err)
	}
	defer os.RemoveAll(tmp)

	// Pass 1 over the spine: (row, key, T) per group into buckets.
	spines := make([]*buckets, len(groups))
	for gi := range groups {
		spines[gi] = newBuckets(filepath.Join(tmp, fmt.Sprintf("spine-%d", gi)), nb)
	}
	rows, err := x.splitSpine(spinePath, format, keys, req.TimeColumn, groups, spines)
	if err != nil {
		return st, err
	}
	st.Rows = rows

	// Per group: the log rows into the same buckets, then each bucket's
	// results, sorted by spine row, into a run.
	results := make([]resultSource, len(groups))
	for gi, g := range groups {
		if nb == 1 {
			// Everything fits: no spill encoding, results addressed by row.
			entries := spines[gi].entries
			byKey, n, err := x.loadLog(ctx, g, entries)
			if err != nil {
				return st, err
			}
			st.LogRows += n
			dr, err := x.computeDirect(g, &req, entries, byKey, rows)
			if err != nil {
				return st, err
			}
			results[gi] = dr
			continue
		}
		logs := newBuckets(filepath.Join(tmp, fmt.Sprintf("log-%d", gi)), nb)
		n, err := x.splitLog(ctx, g, logs, nil)
		if err != nil {
			return st, err
		}
		st.LogRows += n
		runs := newBuckets(filepath.Join(tmp, fmt.Sprintf("res-%d", gi)), nb)
		for b := 0; b < nb; b++ {
			if err := ctx.Err(); err != nil {
				return st, err
			}
			if err := x.joinBucket(g, &req, spines[gi], logs, b, runs); err != nil {
				return st, err
			}
		}
		logs.remove()
		spines[gi].remove()
		m, err := newRunMerger(runs, len(g.cols))
		if err != nil {
			return st, err
		}
		results[gi] = m
	}

	// Pass 2 over the spine: pass-through columns plus the results, merged
	// back into spine order.
	if err := sink.Begin(outSchema); err != nil {
		return st, err
	}
	return st, x.assemble(ctx, spinePath, format, keys, req.TimeColumn, outSchema, groups, results, sink)
}

// logBytes estimates the log's size for the groups' sources.
func (x *Exporter) logBytes(groups []*group) int64 {
	var n int64
	for _, g := range groups {
		for src := range g.sources {
			filepath.Walk(filepath.Join(x.log.dir, src), func(_ string, fi os.FileInfo, err error) error {
				if err == nil && !fi.IsDir() {
					n += fi.Size()
				}
				return nil
			})
		}
	}
	filepath.Walk(filepath.Join(x.log.dir, walDir), func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return nil
	})
	return n
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
		if err := add(c.name, arrowType(c.kind, c.elem)); err != nil {
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

// splitSpine reads the spine once, writing (row, key, T) of every row to
// each group's buckets. It returns the row count.
func (x *Exporter) splitSpine(path, format string, keys map[string]aggregate.Kind, timeCol string, groups []*group, spines []*buckets) (int64, error) {
	sr, err := openSpine(path, format, keys, timeCol)
	if err != nil {
		return 0, err
	}
	defer sr.close()
	sc := sr.schema()
	tcol := sc.FieldIndices(timeCol)[0]
	kcols := make([]int, len(groups))
	for gi, g := range groups {
		kcols[gi] = sc.FieldIndices(g.joinKey)[0]
	}
	var rowIdx int64
	var key, buf []byte
	for {
		rec, err := sr.next()
		if errors.Is(err, io.EOF) {
			return rowIdx, nil
		}
		if err != nil {
			return 0, err
		}
		tc := rec.Column(tcol)
		for i := 0; i < int(rec.NumRows()); i++ {
			t, ok := millisAt(tc, i)
			if !ok {
				rec.Release()
				return 0, badInput("spine row %d: %q is null", rowIdx, timeCol)
			}
			for gi, g := range groups {
				var ok bool
				key, ok, err = keyAt(key[:0], rec.Column(kcols[gi]), i)
				if err != nil {
					rec.Release()
					return 0, badInput("spine row %d, column %q: %v", rowIdx, g.joinKey, err)
				}
				if !ok {
					rec.Release()
					return 0, badInput("spine row %d: %q is null", rowIdx, g.joinKey)
				}
				if sb := spines[gi]; sb.n == 1 {
					// One bucket: keep the entries decoded.
					if sb.entries == nil {
						sb.entries = map[string][]spineEntry{}
					}
					sb.entries[string(key)] = append(sb.entries[string(key)], spineEntry{row: rowIdx, t: t})
					continue
				}
				buf = binary.AppendUvarint(buf[:0], uint64(rowIdx))
				buf = binary.AppendUvarint(buf, uint64(len(key)))
				buf = append(buf, key...)
				buf = binary.AppendVarint(buf, t)
				if err := spines[gi].add(bucketOf(key, spines[gi].n), buf); err != nil {
					rec.Release()
					return 0, err
				}
			}
			rowIdx++
		}
		rec.Release()
	}
}

// bucketOf is the bucket of an encoded entity key (FNV-1a, like the
// store's shard hash but mixed, so buckets do not align with shards).
func bucketOf(key []byte, n int) int {
	if n == 1 {
		return 0
	}
	h := uint64(14695981039346656037)
	for _, c := range key {
		h ^= uint64(c)
		h *= 1099511628211
	}
	h ^= h >> 29
	return int(h % uint64(n))
}

// splitLog scans the log rows of the group's sources into buckets, keeping
// only keys in keyset when it is not nil.
func (x *Exporter) splitLog(ctx context.Context, g *group, logs *buckets, keyset map[string]bool) (int64, error) {
	var n int64
	var buf []byte
	schemas := map[uint64]int{}
	err := x.log.scan(ctx, g.sources, func(r *row) error {
		if keyset != nil && !keyset[string(r.entity)] {
			return nil
		}
		id, ok := schemas[r.schema.fp]
		if !ok {
			id = len(logs.schemas)
			schemas[r.schema.fp] = id
			logs.schemas = append(logs.schemas, r.schema)
		}
		buf = binary.AppendUvarint(buf[:0], uint64(id))
		buf = binary.AppendVarint(buf, int64(r.shard))
		buf = binary.AppendVarint(buf, r.lsn)
		buf = binary.AppendVarint(buf, r.commitMillis)
		buf = appendRowBody(buf, r.ingestMillis, r.eventMillis, r.entity, nil, r.views, r.fields, len(r.schema.names))
		n++
		return logs.add(bucketOf(r.entity, logs.n), buf)
	})
	return n, err
}

// spineEntry is one spine row of a group.
type spineEntry struct {
	row int64
	t   int64
}

// event is one log row ready to fold.
type event struct {
	vis    int64 // the row is visible to reads at T >= vis
	shard  int32
	lsn    int64
	r      *row
	folded bool
}

// joinBucket computes every result of bucket b of group g and adds them,
// sorted by spine row, to run b.
func (x *Exporter) joinBucket(g *group, req *Request, spines, logs *buckets, b int, runs *buckets) error {
	entries := map[string][]spineEntry{}
	err := spines.each(b, func(rec []byte) error {
		d := decoder{b: rec}
		idx := int64(d.uvarint())
		key := d.bytes()
		t := d.varint()
		if d.err != nil {
			return corruptf("spill: spine entry")
		}
		entries[string(key)] = append(entries[string(key)], spineEntry{row: idx, t: t})
		return nil
	})
	if err != nil {
		return err
	}
	byKey := map[string][]*row{}
	err = logs.each(b, func(rec []byte) error {
		d := decoder{b: rec}
		id := d.uvarint()
		if d.err != nil || id >= uint64(len(logs.schemas)) {
			return corruptf("spill: log row schema")
		}
		r := &row{schema: logs.schemas[id]}
		r.shard = int32(d.varint())
		r.lsn = d.varint()
		r.commitMillis = d.varint()
		d.rowBody(r)
		if d.err != nil {
			return corruptf("spill: log row")
		}
		if _, ok := entries[string(r.entity)]; ok {
			byKey[string(r.entity)] = append(byKey[string(r.entity)], r)
		}
		return nil
	})
	if err != nil {
		return err
	}
	type result struct {
		row      int64
		off, end int
	}
	var results []result
	out, err := x.compute(g, req, entries, byKey, nil, func(row int64, off, end int) {
		results = append(results, result{row: row, off: off, end: end})
	})
	if err != nil {
		return err
	}
	sort.Slice(results, func(i, j int) bool { return results[i].row < results[j].row })
	for _, r := range results {
		if err := runs.add(b, out[r.off:r.end]); err != nil {
			return err
		}
	}
	return nil
}

// compute evaluates every spine entry of one bucket (entries by entity key,
// with the entity's log rows in byKey), appending one result record per
// spine row to out (uvarint row, then per column status byte and value)
// and reporting where it is.
func (x *Exporter) compute(g *group, req *Request, entries map[string][]spineEntry, byKey map[string][]*row, out []byte, emit func(row int64, off, end int)) ([]byte, error) {
	return x.computeKeys(g, g.views, req, sortedKeys(entries), entries, byKey, out, emit)
}

func sortedKeys(entries map[string][]spineEntry) []string {
	keys := make([]string, 0, len(entries))
	for k := range entries {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// computeDirect is compute for a single bucket, split over the CPUs by
// entity (each worker with its own states and view scratch); the results are
// addressed by spine row.
func (x *Exporter) computeDirect(g *group, req *Request, entries map[string][]spineEntry, byKey map[string][]*row, rows int64) (*directResults, error) {
	keys := sortedKeys(entries)
	p := min(runtime.GOMAXPROCS(0), 8)
	if len(keys) < 4*p {
		p = 1
	}
	dr := &directResults{offs: make([]int64, rows), outs: make([][]byte, p), ncols: len(g.cols)}
	errs := make([]error, p)
	var wg sync.WaitGroup
	for w := 0; w < p; w++ {
		part := keys[w*len(keys)/p : (w+1)*len(keys)/p]
		views := make([]*exportView, len(g.views))
		for i, ev := range g.views {
			c := *ev
			c.mapped, c.fieldMap, c.scratch, c.identity = nil, nil, nil, false
			views[i] = &c
		}
		wg.Go(func() {
			tag := int64(w) << 40
			dr.outs[w], errs[w] = x.computeKeys(g, views, req, part, entries, byKey, nil, func(row int64, off, _ int) {
				dr.offs[row] = tag | int64(off)
			})
		})
	}
	wg.Wait()
	return dr, errors.Join(errs...)
}

// computeKeys is compute over the entities keys, with views (g.views or
// copies of them: their field mapping scratch is per goroutine).
func (x *Exporter) computeKeys(g *group, views []*exportView, req *Request, keys []string, entries map[string][]spineEntry, byKey map[string][]*row, out []byte, emit func(row int64, off, end int)) ([]byte, error) {
	ncols := len(g.cols)
	states := make([]*aggregate.State, len(views))
	markers := make([]map[int32][]marker, len(views))
	for i, ev := range views {
		states[i] = ev.view.Layout.NewState()
		markers[i] = x.log.markersOf(ev.vk)
	}
	var flat []aggregate.Result
	var events []event
	for _, key := range keys {
		es := entries[key]
		slices.SortStableFunc(es, func(a, b spineEntry) int { return cmpInt(a.t, b.t) })
		rows := byKey[key]
		slices.SortFunc(rows, func(a, b *row) int { return cmpInt(a.lsn, b.lsn) })
		rows = dedupRows(rows)
		flat = slices.Grow(flat[:0], len(es)*ncols)[:len(es)*ncols]
		for vi, ev := range views {
			lay := ev.view.Layout
			st := states[vi]
			// Backfills of the view split the entity's instants into phases:
			// before a backfill's switch the online state was the live one,
			// from it on the rebuilt one.
			var ms []marker
			if req.Mode == ModeServed && len(rows) > 0 {
				ms = markers[vi][rows[0].shard]
			}
			start := 0
			for phase := 0; phase <= len(ms); phase++ {
				end := len(es)
				if phase < len(ms) {
					c := ms[phase].CommitMillis
					end = start + sort.Search(len(es)-start, func(i int) bool { return es[start+i].t >= c })
				}
				var m *marker
				if phase > 0 {
					m = &ms[phase-1]
				}
				if end == start {
					continue
				}
				events = x.eventsFor(events[:0], ev, rows, req.Mode, m)
				st.Reset()
				j := 0
				for ei := start; ei < end; ei++ {
					e := es[ei]
					for j < len(events) && events[j].vis <= e.t {
						if events[j].folded {
							lay.Fold(st, events[j].r.eventMillis, ev.fieldsOf(events[j].r))
						}
						j++
					}
					rs := flat[ei*ncols : (ei+1)*ncols]
					for fi, f := range ev.features {
						rs[ev.cols[fi]] = lay.Read(st, f, e.t)
					}
				}
				start = end
			}
		}
		for ei, e := range es {
			start := len(out)
			out = binary.AppendUvarint(out, uint64(e.row))
			for _, r := range flat[ei*ncols : (ei+1)*ncols] {
				out = append(out, byte(r.Status))
				out = appendValue(out, r.Value)
			}
			emit(e.row, start, len(out))
		}
	}
	return out, nil
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

// dedupRows drops repeated LSNs from rows sorted by LSN (an entity's rows
// all live in one shard).
func dedupRows(rows []*row) []*row {
	if len(rows) < 2 {
		return rows
	}
	out := rows[:1]
	for _, r := range rows[1:] {
		if r.lsn != out[len(out)-1].lsn {
			out = append(out, r)
		}
	}
	return out
}

// eventsFor selects and orders the rows of one entity that a view sees.
// In served mode a row is visible from its commit (the running maximum of
// commit times along the log, so visibility follows log order) and is
// folded if the store folded it into the view; after a backfill m, the rows
// before m.LSN are folded if the view admits them, visible at the switch.
func (x *Exporter) eventsFor(dst []event, ev *exportView, rows []*row, mode Mode, m *marker) []event {
	src := ev.view.Source.Name
	var vis int64
	first := true
	for _, r := range rows {
		if first || r.commitMillis > vis {
			vis = r.commitMillis
			first = false
		}
		if r.schema.source != src {
			continue
		}
		switch {
		case mode == ModeEvent:
			dst = append(dst, event{vis: r.eventMillis, shard: r.shard, lsn: r.lsn, r: r, folded: true})
		case m != nil && r.lsn < m.LSN:
			dst = append(dst, event{vis: m.CommitMillis, shard: r.shard, lsn: r.lsn, r: r, folded: admits(ev.view, r)})
		default:
			dst = append(dst, event{vis: max(vis, commitFloor(m)), shard: r.shard, lsn: r.lsn, r: r, folded: r.folded(ev.vk)})
		}
	}
	if mode == ModeEvent {
		slices.SortStableFunc(dst, func(a, b event) int { return cmpInt(a.vis, b.vis) })
	}
	return dst
}

func commitFloor(m *marker) int64 {
	if m == nil {
		return 0
	}
	return m.CommitMillis
}

// fieldsOf maps a row's fields (its schema's order) to the view's
// Source.Fields order, by name and kind: a field the row's schema lacks, or
// has with another kind, is null, as the decoder would have made it.
func (ev *exportView) fieldsOf(r *row) []aggregate.Value {
	if ev.mapped != r.schema {
		ev.mapped = r.schema
		ev.fieldMap = ev.fieldMap[:0]
		ev.identity = len(r.schema.names) == len(ev.view.Source.Fields)
		for i, f := range ev.view.Source.Fields {
			j := r.schema.field(f.Name, f.Kind)
			ev.fieldMap = append(ev.fieldMap, j)
			ev.identity = ev.identity && j == i
		}
		ev.scratch = make([]aggregate.Value, len(ev.view.Source.Fields))
	}
	if ev.identity {
		return r.fields // the row's schema is the view's source as it reads it
	}
	for i, j := range ev.fieldMap {
		if j < 0 {
			ev.scratch[i] = aggregate.Value{}
		} else {
			ev.scratch[i] = r.fields[j]
		}
	}
	return ev.scratch
}

// assemble reads the spine again and writes the output batches.
func (x *Exporter) assemble(ctx context.Context, path, format string, keys map[string]aggregate.Kind, timeCol string, sc *arrow.Schema, groups []*group, merges []resultSource, sink Sink) error {
	sr, err := openSpine(path, format, keys, timeCol)
	if err != nil {
		return err
	}
	defer sr.close()
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
		nspine := len(sr.schema().Fields())
		b := array.NewRecordBuilder(memory.DefaultAllocator, arrow.NewSchema(sc.Fields()[nspine:], nil))
		defer b.Release()
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
			for i := 0; i < n; i++ {
				c := 0
				for gi, g := range groups {
					vals, err := merges[gi].next(rowIdx)
					if err != nil {
						rec.Release()
						send(batch{err: err})
						return
					}
					for k, col := range g.cols {
						r := vals[k]
						if r.Status == aggregate.StatusPresent {
							appendValueTo(b.Field(c), r.Value)
						} else {
							b.Field(c).AppendNull()
						}
						c++
						if col.status {
							b.Field(c).(*array.StringBuilder).Append(statusName(r.Status))
							c++
						}
					}
				}
				rowIdx++
			}
			// The feature columns are built; the spine's pass through as is.
			feats := b.NewRecordBatch()
			arrs := make([]arrow.Array, 0, len(sc.Fields()))
			arrs = append(arrs, rec.Columns()...)
			arrs = append(arrs, feats.Columns()...)
			out := array.NewRecordBatch(sc, arrs, int64(n))
			feats.Release()
			rec.Release()
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

func statusName(s aggregate.Status) string {
	switch s {
	case aggregate.StatusPresent:
		return "PRESENT"
	case aggregate.StatusNull:
		return "NULL_VALUE"
	}
	return "NOT_FOUND"
}

// Log returns the log the exporter reads.
func (x *Exporter) Log() *Log { return x.log }

// resultSource yields each group's results in spine order.
type resultSource interface {
	next(row int64) ([]aggregate.Result, error)
}

// directResults are one bucket's results addressed by spine row.
type directResults struct {
	outs  [][]byte // per worker
	offs  []int64  // worker<<40 | offset
	ncols int
	vals  []aggregate.Result
}

func (d *directResults) next(row int64) ([]aggregate.Result, error) {
	if d.vals == nil {
		d.vals = make([]aggregate.Result, d.ncols)
	}
	o := d.offs[row]
	dec := decoder{b: d.outs[o>>40][o&(1<<40-1):]}
	if got := int64(dec.uvarint()); got != row {
		return nil, fmt.Errorf("offline: internal error: result of row %d found for row %d", got, row)
	}
	for i := range d.vals {
		d.vals[i].Status = aggregate.Status(dec.byte1())
		d.vals[i].Value = dec.value(0)
	}
	if dec.err != nil {
		return nil, corruptf("result of row %d", row)
	}
	return d.vals, nil
}

// loadLog reads the group's log rows of the entities in entries into memory,
// by entity key (the rows slab-allocated, so a large log costs few
// allocations).
func (x *Exporter) loadLog(ctx context.Context, g *group, entries map[string][]spineEntry) (map[string][]*row, int64, error) {
	byKey := map[string][]*row{}
	var n int64
	var slab []row
	var vals []aggregate.Value
	var bytesSlab []byte
	var viewSlab []int64
	err := x.log.scan(ctx, g.sources, func(r *row) error {
		if _, ok := entries[string(r.entity)]; !ok {
			return nil
		}
		n++
		if len(slab) == cap(slab) {
			slab = make([]row, 0, 4096)
		}
		slab = append(slab, row{})
		c := &slab[len(slab)-1]
		*c = *r
		nf := len(r.fields)
		if cap(vals)-len(vals) < nf {
			vals = make([]aggregate.Value, 0, max(nf, 16384))
		}
		c.fields = append(vals[len(vals):len(vals)], r.fields...)
		vals = vals[:len(vals)+nf]
		need := len(r.entity) + 8*len(r.views)
		if cap(bytesSlab)-len(bytesSlab) < need {
			bytesSlab = make([]byte, 0, max(need, 1<<16))
		}
		c.entity = append(bytesSlab[len(bytesSlab):len(bytesSlab)], r.entity...)
		bytesSlab = bytesSlab[:len(bytesSlab)+len(r.entity)]
		if cap(viewSlab)-len(viewSlab) < len(r.views) {
			viewSlab = make([]int64, 0, max(len(r.views), 1<<14))
		}
		c.views = append(viewSlab[len(viewSlab):len(viewSlab)], r.views...)
		viewSlab = viewSlab[:len(viewSlab)+len(r.views)]
		key := string(c.entity)
		byKey[key] = append(byKey[key], c)
		return nil
	})
	return byKey, n, err
}
