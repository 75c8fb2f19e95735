package export

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/parquet/file"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/offline/eventlog"
)

// This file holds an export's working set in columns: the entities of the
// spine by ordinal, and the log rows of those entities with only what the
// join reads (no per-row structs, no pointers but for string fields), so
// that a million rows cost a few dozen allocations and nothing for the GC
// to scan.

// entityIndex numbers the distinct entity keys of a spine (or of one spill
// bucket of it) in order of first appearance.
type entityIndex struct {
	ord  map[string]int32
	keys []string
}

func newEntityIndex() *entityIndex { return &entityIndex{ord: map[string]int32{}} }

// add returns key's ordinal, numbering it if new.
func (x *entityIndex) add(key []byte) int32 {
	if o, ok := x.ord[string(key)]; ok {
		return o
	}
	return x.insert(string(key))
}

// addString is add for a key that may alias memory the caller reuses.
func (x *entityIndex) addString(key string) int32 {
	if o, ok := x.ord[key]; ok {
		return o
	}
	return x.insert(strings.Clone(key))
}

func (x *entityIndex) insert(k string) int32 {
	o := int32(len(x.keys))
	x.ord[k] = o
	x.keys = append(x.keys, k)
	return o
}

func (x *entityIndex) len() int { return len(x.keys) }

// appendIntKey appends the keyenc bytes of an int64 entity key.
func appendIntKey(dst []byte, v int64) []byte {
	return binary.BigEndian.AppendUint64(dst, uint64(v)^(1<<63))
}

// spineSet is the spine rows one join evaluates: per entry its entity
// ordinal, spine row and instant; its csr groups the entries by entity.
type spineSet struct {
	ent []int32
	row []int64
	t   []int64
	csr
}

func newSpineSet(capacity int) *spineSet {
	return &spineSet{ent: make([]int32, 0, capacity), row: make([]int64, 0, capacity), t: make([]int64, 0, capacity)}
}

func (s *spineSet) add(ent int32, row, t int64) {
	s.ent = append(s.ent, ent)
	s.row = append(s.row, row)
	s.t = append(s.t, t)
}

// csr groups item indexes by entity: the items of entity e are
// idx[start[e]:start[e+1]], in the order they were added.
type csr struct {
	start []int32
	idx   []int32
}

// group fills c from the entity of each item (items with a negative
// entity are left out).
func (c *csr) group(ents []int32, n int) {
	c.start = make([]int32, n+1)
	for _, e := range ents {
		if e >= 0 {
			c.start[e+1]++
		}
	}
	for e := 0; e < n; e++ {
		c.start[e+1] += c.start[e]
	}
	c.idx = make([]int32, c.start[n])
	fill := slices.Clone(c.start[:n])
	for i, e := range ents {
		if e >= 0 {
			c.idx[fill[e]] = int32(i)
			fill[e]++
		}
	}
}

func (c *csr) of(e int32) []int32 { return c.idx[c.start[e]:c.start[e+1]] }

// field is one source field a group's views read: the union of their
// Source.Fields, by name and kind.
type field struct {
	name string
	kind aggregate.Kind
}

// logTable is the log rows of a group's entities, in columns. A row's
// fields are nu slots (the group's field union): kind (KindNull when the
// row's schema lacks the field or has it with another kind, as the decoder
// would have made it) and bits (int64/bool, float64 bits, or for strings
// chunk<<32 | index into strs[chunk]).
type logTable struct {
	fields  []field
	schemas []*eventlog.Schema
	ent     []int32 // entity ordinal (-1: none, or not in the spine)
	sch     []uint16
	shard   []int32
	lsn     []int64
	ingest  []int64
	commit  []int64
	event   []int64
	folded  []uint64 // per row, words of bits: view i of the group was folded
	words   int
	kinds   []aggregate.Kind
	bits    []int64
	strs    [][]string
	mu      sync.Mutex // schemas, strs
	viewKey []int64    // the group's views, bit i of folded is viewKey[i]
	// markers are the group's views' backfill markers, by view and shard,
	// taken before the log is read; without any, ingest times go unread
	// (only a backfill's admission replay needs them).
	markers []map[int32][]eventlog.Marker
	ranges  []entRange // until bind: how rows number their entities
	byEnt   csr
}

func (x *Exporter) newLogTable(g *group) *logTable {
	t := &logTable{words: (len(g.views) + 63) / 64}
	for _, ev := range g.views {
		t.markers = append(t.markers, x.log.Markers(ev.vk))
	}
	seen := map[field]bool{}
	for _, ev := range g.views {
		t.viewKey = append(t.viewKey, ev.vk)
		for _, f := range ev.view.Source.Fields {
			k := field{f.Name, f.Kind}
			if !seen[k] {
				seen[k] = true
				t.fields = append(t.fields, k)
			}
		}
	}
	return t
}

func (t *logTable) len() int { return len(t.ent) }

// schemaID registers s and returns its number.
func (t *logTable) schemaID(s *eventlog.Schema) (uint16, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, have := range t.schemas {
		if have == s || have.Fingerprint() == s.Fingerprint() {
			return uint16(i), nil
		}
	}
	if len(t.schemas) == math.MaxUint16 {
		return 0, fmt.Errorf("offline: an export reads at most %d source schemas", math.MaxUint16)
	}
	t.schemas = append(t.schemas, s)
	return uint16(len(t.schemas) - 1), nil
}

// newChunk reserves a list of strings for one writer, returning its number.
func (t *logTable) newChunk() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.strs = append(t.strs, nil)
	return len(t.strs) - 1
}

// grow makes room for n more rows and returns the first new one.
func (t *logTable) grow(n int) int {
	base := len(t.ent)
	t.ent = slices.Grow(t.ent, n)[:base+n]
	t.sch = slices.Grow(t.sch, n)[:base+n]
	t.shard = slices.Grow(t.shard, n)[:base+n]
	t.lsn = slices.Grow(t.lsn, n)[:base+n]
	t.ingest = slices.Grow(t.ingest, n)[:base+n]
	t.commit = slices.Grow(t.commit, n)[:base+n]
	t.event = slices.Grow(t.event, n)[:base+n]
	t.folded = slices.Grow(t.folded, n*t.words)[:(base+n)*t.words]
	nu := len(t.fields)
	t.kinds = slices.Grow(t.kinds, n*nu)[:(base+n)*nu]
	t.bits = slices.Grow(t.bits, n*nu)[:(base+n)*nu]
	return base
}

// setFolded marks the group's views among vks at row i.
func (t *logTable) setFolded(i int, vks []int64) {
	w := t.folded[i*t.words : (i+1)*t.words]
	clear(w)
	for _, v := range vks {
		for b, vk := range t.viewKey {
			if v == vk {
				w[b/64] |= 1 << (b % 64)
			}
		}
	}
}

func (t *logTable) isFolded(i, view int) bool {
	return t.folded[i*t.words+view/64]&(1<<(view%64)) != 0
}

// fieldMap maps the group's fields to the fields of schema s (-1: absent).
func (t *logTable) fieldMap(s *eventlog.Schema) []int {
	m := make([]int, len(t.fields))
	for u, f := range t.fields {
		m[u] = s.Field(f.name, f.kind)
	}
	return m
}

// appendRow adds one decoded row (WAL and spill rows) of entity ent; fmap
// is t.fieldMap(r.Schema()).
func (t *logTable) appendRow(r *eventlog.Row, ent int32, chunk int, fmap []int) error {
	sid, err := t.schemaID(r.Schema())
	if err != nil {
		return err
	}
	i := t.grow(1)
	t.ent[i], t.sch[i], t.shard[i], t.lsn[i] = ent, sid, r.Shard(), r.LSN()
	t.ingest[i], t.commit[i], t.event[i] = r.IngestMillis(), r.CommitMillis(), r.EventMillis()
	t.setFolded(i, r.Views())
	nu := len(t.fields)
	for u, j := range fmap {
		v := aggregate.Value{}
		if j >= 0 {
			v = r.Fields()[j]
		}
		t.kinds[i*nu+u] = v.Kind
		switch v.Kind {
		case aggregate.KindFloat64:
			t.bits[i*nu+u] = int64(math.Float64bits(v.F))
		case aggregate.KindString:
			t.bits[i*nu+u] = int64(chunk)<<32 | int64(len(t.strs[chunk]))
			t.strs[chunk] = append(t.strs[chunk], v.S)
		default:
			t.bits[i*nu+u] = v.I
		}
	}
	return nil
}

// loadLogTable reads the log rows of g's sources: the Parquet files
// column-wise (only the columns the join reads), several at once, then the
// WAL rows not yet converted. Row order is the scan's (files by shard and
// LSN, then the WAL). Each file numbers its entities on its own, so the
// log can be read while the spine is; bind then maps them to the spine's.
func (x *Exporter) loadLogTable(ctx context.Context, g *group) (*logTable, error) {
	t := x.newLogTable(g)
	var wal *entityIndex
	fmaps := map[*eventlog.Schema][]int{}
	err := x.log.ScanFiles(ctx, g.sources, func(files []eventlog.File) error {
		return t.readFiles(ctx, files)
	}, func(r *eventlog.Row) error {
		if wal == nil {
			wal = newEntityIndex()
			t.ranges = append(t.ranges, entRange{lo: t.len(), ents: wal})
			t.newChunk()
		}
		fm := fmaps[r.Schema()]
		if fm == nil {
			fm = t.fieldMap(r.Schema())
			fmaps[r.Schema()] = fm
		}
		if err := t.appendRow(r, wal.add(r.Entity()), len(t.strs)-1, fm); err != nil {
			return err
		}
		t.ranges[len(t.ranges)-1].hi = t.len()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

func (t *logTable) needIngest() bool {
	for _, m := range t.markers {
		if len(m) > 0 {
			return true
		}
	}
	return false
}

// entRange is a range of rows whose entities are numbered by ents.
type entRange struct {
	lo, hi int
	ents   *entityIndex
}

// bind renumbers the rows' entities by the spine's index (-1 for an entity
// the spine lacks) and groups the rows by entity. It returns the rows kept.
func (t *logTable) bind(spine *entityIndex) int64 {
	var kept int64
	for _, r := range t.ranges {
		m := make([]int32, r.ents.len())
		for i, k := range r.ents.keys {
			m[i] = -1
			if o, ok := spine.ord[k]; ok {
				m[i] = o
			}
		}
		for i := r.lo; i < r.hi; i++ {
			if e := t.ent[i]; e >= 0 {
				t.ent[i] = m[e]
				if m[e] >= 0 {
					kept++
				}
			}
		}
	}
	t.ranges = nil
	t.byEnt.group(t.ent, spine.len())
	return kept
}

// readFiles reads log files into t, each into its own range of rows
// (sized from the files' metadata), GOMAXPROCS at a time.
func (t *logTable) readFiles(ctx context.Context, files []eventlog.File) error {
	type job struct {
		f    eventlog.File
		base int
		rows int
	}
	var jobs []job
	for _, f := range files {
		pf, err := file.OpenParquetFile(f.Path, false)
		if err != nil {
			return fmt.Errorf("offline: open %s: %w", f.Path, err)
		}
		rows := int(pf.NumRows())
		pf.Close()
		jobs = append(jobs, job{f: f, rows: rows})
	}
	total := 0
	for i := range jobs {
		jobs[i].base = total
		total += jobs[i].rows
	}
	base := t.grow(total)
	for i := base; i < base+total; i++ {
		t.ent[i] = -1
	}
	ranges := make([]entRange, len(jobs))
	var (
		next  int
		mu    sync.Mutex
		wg    sync.WaitGroup
		errs  = make([]error, len(jobs))
		procs = min(runtime.GOMAXPROCS(0), len(jobs))
	)
	for w := 0; w < procs; w++ {
		wg.Go(func() {
			for {
				mu.Lock()
				j := next
				next++
				mu.Unlock()
				if j >= len(jobs) || ctx.Err() != nil {
					return
				}
				lo := base + jobs[j].base
				ranges[j] = entRange{lo: lo, hi: lo + jobs[j].rows, ents: newEntityIndex()}
				errs[j] = t.readFile(ctx, jobs[j].f.Path, lo, jobs[j].rows, ranges[j].ents)
				if errs[j] != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	t.ranges = append(t.ranges, ranges...)
	if err := ctx.Err(); err != nil {
		return err
	}
	return errors.Join(errs...)
}

// readFile decodes one log file into rows [base, base+rows) of t, reading
// only the columns the join needs, numbering its entities in ents.
func (t *logTable) readFile(ctx context.Context, path string, base, rows int, ents *entityIndex) error {
	pf, fr, s, err := eventlog.OpenFile(path)
	if err != nil {
		return err
	}
	defer pf.Close()
	sid, err := t.schemaID(s)
	if err != nil {
		return err
	}
	fmap := t.fieldMap(s)
	// Leaves: every column but the Kafka position, and of the fields only
	// those some view reads.
	want := map[string]bool{}
	for _, j := range fmap {
		if j >= 0 {
			want[s.Names()[j]] = true
		}
	}
	psc := pf.MetaData().Schema
	var leaves []int
	for i := 0; i < psc.NumColumns(); i++ {
		p := psc.Column(i).ColumnPath()
		switch p[0] {
		case eventlog.ColPartition, eventlog.ColOffset:
			continue
		case eventlog.ColIngest:
			if !t.needIngest() {
				continue
			}
		case eventlog.ColFields:
			if len(p) < 2 || !want[p[1]] {
				continue
			}
		}
		leaves = append(leaves, i)
	}
	rr, err := fr.GetRecordReader(ctx, leaves, nil)
	if err != nil {
		return fmt.Errorf("offline: read %s: %w", path, err)
	}
	defer rr.Release()
	chunk := -1
	var strs []string // this file's string field values: strs[chunk] when done
	defer func() {
		if chunk >= 0 {
			t.mu.Lock()
			t.strs[chunk] = strs
			t.mu.Unlock()
		}
	}()
	nu := len(t.fields)
	i := base
	for rr.Next() {
		rec := rr.RecordBatch()
		if i+int(rec.NumRows()) > base+rows {
			return fmt.Errorf("%w: %s: more rows than its metadata says", eventlog.ErrCorrupt, path)
		}
		sc := rec.Schema()
		col := func(name string) arrow.Array { return rec.Column(sc.FieldIndices(name)[0]) }
		// Files written before the partition layout name the column "shard".
		shardCol := eventlog.ColStorePartition
		if len(sc.FieldIndices(shardCol)) == 0 {
			shardCol = eventlog.ColShard
		}
		shard := col(shardCol).(*array.Int32).Int32Values()
		lsn := col(eventlog.ColLSN).(*array.Int64).Int64Values()
		var ing []arrow.Timestamp
		if t.needIngest() {
			ing = col(eventlog.ColIngest).(*array.Timestamp).TimestampValues()
		}
		com := col(eventlog.ColCommit).(*array.Timestamp).TimestampValues()
		ev := col(eventlog.ColEvent).(*array.Timestamp).TimestampValues()
		views := col(eventlog.ColViews).(*array.List)
		vvals := views.ListValues().(*array.Int64).Int64Values()
		ent := col(eventlog.ColEntity)
		// The group's fields in this batch (nil: absent from the file).
		fcols := make([]arrow.Array, nu)
		if idx := sc.FieldIndices(eventlog.ColFields); len(idx) == 1 {
			st := rec.Column(idx[0]).(*array.Struct)
			stt := st.DataType().(*arrow.StructType)
			for u, j := range fmap {
				if j < 0 {
					continue
				}
				if k, ok := stt.FieldIdx(s.Names()[j]); ok {
					fcols[u] = st.Field(k)
				}
			}
		}
		var key []byte
		for r := 0; r < int(rec.NumRows()); r, i = r+1, i+1 {
			var e int32
			switch a := ent.(type) {
			case *array.String:
				e = ents.addString(a.Value(r))
			case *array.Int64:
				key = appendIntKey(key[:0], a.Value(r))
				e = ents.add(key)
			case *array.Binary:
				e = ents.add(a.Value(r))
			default:
				return fmt.Errorf("%w: %s: entity column of type %s", eventlog.ErrCorrupt, path, ent.DataType())
			}
			t.ent[i], t.sch[i], t.shard[i], t.lsn[i] = e, sid, shard[r], lsn[r]
			t.commit[i], t.event[i] = int64(com[r]), int64(ev[r])
			if ing != nil {
				t.ingest[i] = int64(ing[r])
			}
			s, e2 := views.ValueOffsets(r)
			t.setFolded(i, vvals[s:e2])
			for u, a := range fcols {
				slot := i*nu + u
				if a == nil || a.IsNull(r) {
					t.kinds[slot] = aggregate.KindNull
					continue
				}
				t.kinds[slot] = t.fields[u].kind
				switch a := a.(type) {
				case *array.Int64:
					t.bits[slot] = a.Value(r)
				case *array.Float64:
					t.bits[slot] = int64(math.Float64bits(a.Value(r)))
				case *array.Boolean:
					t.bits[slot] = 0
					if a.Value(r) {
						t.bits[slot] = 1
					}
				case *array.String:
					if chunk < 0 {
						chunk = t.newChunk()
					}
					t.bits[slot] = int64(chunk)<<32 | int64(len(strs))
					strs = append(strs, strings.Clone(a.Value(r)))
				default:
					t.kinds[slot] = aggregate.KindNull
				}
			}
		}
	}
	if err := rr.Err(); err != nil {
		return fmt.Errorf("offline: read %s: %w", path, err)
	}
	return nil
}
