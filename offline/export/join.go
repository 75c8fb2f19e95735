package export

import (
	"cmp"
	"math"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/offline/eventlog"
	"github.com/featured-dev/featured/offline/internal/codec"
)

// results are a group's feature values for a run of entries (the spine's
// rows, or one bucket's entries). They are stored by slot, the order in
// which the join computes them (entity by entity, each by instant), so the
// join writes memory in sequence, and the values of one slot side by side;
// pos maps an entry to its slot, for readers in spine order. Per slot and
// column: a status, and the bits of a number or bool; strings and lists
// (rare) are Values in a column of their own. Workers write disjoint slots
// concurrently.
type results struct {
	cols   []column
	pos    []int32             // entry -> slot
	status []aggregate.Status  // slot*len(cols) + col
	bits   []int64             // slot*len(cols) + col: int64 and bool values, float64 bits
	vals   [][]aggregate.Value // per column, by slot: string and list columns only
}

func newResults(cols []column, n int) *results {
	r := &results{cols: cols, status: make([]aggregate.Status, n*len(cols)), bits: make([]int64, n*len(cols)),
		vals: make([][]aggregate.Value, len(cols)), pos: make([]int32, n)}
	for i := range r.pos {
		r.pos[i] = int32(i) // until a join orders the slots
	}
	for i, c := range cols {
		if c.kind == aggregate.KindString || c.kind == aggregate.KindList {
			r.vals[i] = make([]aggregate.Value, n)
		}
	}
	return r
}

// set stores res as column col of a slot. A value of another kind than the
// column's is stored as null (the output's builders did the same).
func (r *results) set(slot, col int, res *aggregate.Result) {
	i := slot*len(r.cols) + col
	kind := r.cols[col].kind
	st := res.Status
	v := &res.Value
	if st == aggregate.StatusPresent && v.Kind != kind {
		st = aggregate.StatusNull
	}
	r.status[i] = st
	switch {
	case kind == aggregate.KindString || kind == aggregate.KindList:
		if st == aggregate.StatusPresent {
			r.vals[col][slot] = *v
		} else {
			r.vals[col][slot] = aggregate.Value{}
		}
	case st != aggregate.StatusPresent:
		r.bits[i] = 0
	case kind == aggregate.KindFloat64:
		r.bits[i] = int64(math.Float64bits(v.F))
	default:
		r.bits[i] = v.I
	}
}

// get returns column col of an entry.
func (r *results) get(entry, col int) aggregate.Result {
	slot := int(r.pos[entry])
	i := slot*len(r.cols) + col
	res := aggregate.Result{Status: r.status[i]}
	if res.Status != aggregate.StatusPresent {
		return res
	}
	switch kind := r.cols[col].kind; kind {
	case aggregate.KindFloat64:
		res.Value = aggregate.Value{Kind: kind, F: math.Float64frombits(uint64(r.bits[i]))}
	case aggregate.KindString, aggregate.KindList:
		res.Value = r.vals[col][slot]
	default:
		res.Value = aggregate.Value{Kind: kind, I: r.bits[i]}
	}
	return res
}

// columns returns the output arrays (each feature, then its status when
// asked) of entries [lo, lo+n).
func (r *results) columns(lo, n int) []arrow.Array {
	w := len(r.cols)
	// Transpose in one pass over the slots (each slot's values share a
	// cache line or two; a pass per column would miss on every one of them
	// again), into column-major buffers the arrays then share.
	statuses := make([]aggregate.Status, n*w)
	bits := make([]int64, n*w)
	for j, s := range r.pos[lo : lo+n] {
		src := int(s) * w
		for col := 0; col < w; col++ {
			statuses[col*n+j] = r.status[src+col]
			bits[col*n+j] = r.bits[src+col]
		}
	}
	slots := r.pos[lo : lo+n]
	var out []arrow.Array
	for col, c := range r.cols {
		status := statuses[col*n : (col+1)*n]
		valid, nulls := validity(status)
		switch c.kind {
		case aggregate.KindInt64, aggregate.KindFloat64:
			vals := bits[col*n : (col+1)*n]
			data := array.NewData(codec.ArrowType(c.kind, c.elem), n, []*memory.Buffer{valid, memory.NewBufferBytes(arrow.Int64Traits.CastToBytes(vals))}, nil, nulls, 0)
			out = append(out, array.MakeFromData(data))
			data.Release()
		case aggregate.KindBool:
			vals := make([]byte, bitutil.BytesForBits(int64(n)))
			for j, b := range bits[col*n : (col+1)*n] {
				if b != 0 {
					bitutil.SetBit(vals, j)
				}
			}
			data := array.NewData(arrow.FixedWidthTypes.Boolean, n, []*memory.Buffer{valid, memory.NewBufferBytes(vals)}, nil, nulls, 0)
			out = append(out, array.MakeFromData(data))
			data.Release()
		default:
			b := array.NewBuilder(memory.DefaultAllocator, codec.ArrowType(c.kind, c.elem))
			b.Reserve(n)
			for j, st := range status {
				if st == aggregate.StatusPresent {
					codec.AppendArrow(b, r.vals[col][slots[j]])
				} else {
					b.AppendNull()
				}
			}
			out = append(out, b.NewArray())
			b.Release()
		}
		if c.status {
			b := array.NewStringBuilder(memory.DefaultAllocator)
			b.Reserve(n)
			for _, st := range status {
				b.Append(StatusName(st))
			}
			out = append(out, b.NewArray())
			b.Release()
		}
	}
	return out
}

// validity is the Arrow validity bitmap of statuses (valid when present),
// nil when every value is.
func validity(status []aggregate.Status) (*memory.Buffer, int) {
	nulls := 0
	for _, st := range status {
		if st != aggregate.StatusPresent {
			nulls++
		}
	}
	if nulls == 0 {
		return nil, 0
	}
	bm := make([]byte, bitutil.BytesForBits(int64(len(status))))
	for j, st := range status {
		if st == aggregate.StatusPresent {
			bitutil.SetBit(bm, j)
		}
	}
	return memory.NewBufferBytes(bm), nulls
}

// join evaluates every entry of sp (whose entities are numbered 0..nents-1
// and grouped) over the log rows lt of group g into res. Entities are split
// over the CPUs, each worker with its own states.
func (x *Exporter) join(g *group, mode Mode, sp *spineSet, lt *logTable, nents int, res *results) {
	// Entity ranges of about equal work (entries and log rows), taken in
	// turn by the workers, so none waits on another's tail.
	p := min(runtime.GOMAXPROCS(0), 8)
	weight := func(e int) int { return int(sp.start[e] + lt.byEnt.start[e]) }
	total := weight(nents)
	chunks := min(nents, 16*p)
	var bounds []int
	for c, e := 0, 0; c < chunks; c++ {
		bounds = append(bounds, e)
		target := total * (c + 1) / chunks
		for e < nents && weight(e) < target {
			e++
		}
	}
	bounds = append(bounds, nents)
	var next atomic.Int32
	var wg sync.WaitGroup
	for range min(p, chunks) {
		j := x.newJoiner(g, mode, sp, lt, res)
		wg.Go(func() {
			for c := int(next.Add(1)) - 1; c+1 < len(bounds); c = int(next.Add(1)) - 1 {
				for e := bounds[c]; e < bounds[c+1]; e++ {
					j.entity(int32(e))
				}
			}
		})
	}
	wg.Wait()
}

// joiner evaluates entities one at a time; one per goroutine.
type joiner struct {
	g       *group
	mode    Mode
	sp      *spineSet
	lt      *logTable
	res     *results
	states  []*aggregate.State
	fields  [][]int             // per view: the group field of each of its Source.Fields
	source  [][]bool            // per view, per schema: rows of the schema are the view's source
	keyOK   [][]bool            // per view, per schema: and of its entity key kind
	scratch [][]aggregate.Value // per view: the fields of the event folded
	// The entity being evaluated, copied out of the spine set and the log
	// table (whose rows of one entity are scattered) into contiguous
	// memory: its entries by instant, its rows by LSN with their fields.
	entries []instant
	rows    []entityRow
	kinds   []aggregate.Kind // len(lt.fields) per row
	bits    []int64
	events  []joinEvent
}

// instant is one spine entry of the entity being evaluated.
type instant struct {
	t     int64
	entry int32
}

// entityRow is one log row of the entity being evaluated.
type entityRow struct {
	lsn, commit, ingest, event int64
	row                        int32 // in the log table
	sch                        uint16
}

// joinEvent is one log row as a view sees it: visible to reads at T >= vis,
// folded or not; row indexes joiner.rows.
type joinEvent struct {
	vis    int64
	row    int32
	folded bool
}

func (x *Exporter) newJoiner(g *group, mode Mode, sp *spineSet, lt *logTable, res *results) *joiner {
	j := &joiner{g: g, mode: mode, sp: sp, lt: lt, res: res}
	for _, ev := range g.views {
		j.states = append(j.states, ev.view.Layout.NewState())
		fm := make([]int, len(ev.view.Source.Fields))
		for i, f := range ev.view.Source.Fields {
			fm[i] = slices.Index(lt.fields, field{f.Name, f.Kind})
		}
		j.fields = append(j.fields, fm)
		j.scratch = append(j.scratch, make([]aggregate.Value, len(fm)))
		src := make([]bool, len(lt.schemas))
		key := make([]bool, len(lt.schemas))
		for si, s := range lt.schemas {
			src[si] = s.Source() == ev.view.Source.Name
			key[si] = src[si] && slices.Equal(s.KeyKinds(), ev.view.KeyKinds())
		}
		j.source = append(j.source, src)
		j.keyOK = append(j.keyOK, key)
	}
	return j
}

// entity evaluates the entries of entity e: its entries sorted by instant
// (spine order on ties), its log rows by LSN (a repeated LSN dropped), one
// incremental fold per view and phase (a backfill of the view splits the
// entity's instants at its switch: the live state before, the rebuilt one
// from it on).
func (j *joiner) entity(e int32) {
	sp, lt := j.sp, j.lt
	es := sp.of(e)
	base := int(sp.start[e]) // the slot of es[0]
	j.entries = j.entries[:0]
	for _, ei := range es {
		j.entries = append(j.entries, instant{t: sp.t[ei], entry: ei})
	}
	// Entries were added in spine order: by entry on ties is stable.
	slices.SortFunc(j.entries, func(a, b instant) int {
		if c := cmpInt(a.t, b.t); c != 0 {
			return c
		}
		return cmp.Compare(a.entry, b.entry)
	})
	for k := range j.entries {
		es[k] = j.entries[k].entry
		j.res.pos[es[k]] = int32(base + k)
	}
	rows := lt.byEnt.of(e)
	if !slices.IsSortedFunc(rows, func(a, b int32) int { return cmpInt(lt.lsn[a], lt.lsn[b]) }) {
		slices.SortStableFunc(rows, func(a, b int32) int { return cmpInt(lt.lsn[a], lt.lsn[b]) })
	}
	nu := len(lt.fields)
	var read aggregate.Result
	j.rows, j.kinds, j.bits = j.rows[:0], j.kinds[:0], j.bits[:0]
	for _, r := range rows {
		if n := len(j.rows); n > 0 && j.rows[n-1].lsn == lt.lsn[r] {
			continue
		}
		j.rows = append(j.rows, entityRow{lsn: lt.lsn[r], commit: lt.commit[r], ingest: lt.ingest[r], event: lt.event[r], row: r, sch: lt.sch[r]})
		for u := int(r) * nu; u < int(r+1)*nu; u++ { // a few fields: no memmove call
			j.kinds = append(j.kinds, lt.kinds[u])
			j.bits = append(j.bits, lt.bits[u])
		}
	}
	for vi, ev := range j.g.views {
		lay := ev.view.Layout
		st := j.states[vi]
		var ms []eventlog.Marker
		if j.mode == ModeServed && len(j.rows) > 0 {
			ms = lt.markers[vi][lt.shard[j.rows[0].row]]
		}
		start := 0
		for phase := 0; phase <= len(ms); phase++ {
			end := len(j.entries)
			if phase < len(ms) {
				c := ms[phase].CommitMillis
				end = start + sort.Search(len(j.entries)-start, func(i int) bool { return j.entries[start+i].t >= c })
			}
			var m *eventlog.Marker
			if phase > 0 {
				m = &ms[phase-1]
			}
			if end == start {
				continue
			}
			j.eventsFor(vi, m)
			st.Reset()
			next := 0 // the first event not folded yet
			for k := start; k < end; k++ {
				t := j.entries[k].t
				for next < len(j.events) && j.events[next].vis <= t {
					if ev := &j.events[next]; ev.folded {
						lay.Fold(st, j.rows[ev.row].event, j.fieldsOf(vi, int(ev.row)))
					}
					next++
				}
				for fi, f := range ev.features {
					lay.ReadTo(st, f, t, &read)
					j.res.set(base+k, ev.cols[fi], &read)
				}
			}
			start = end
		}
	}
}

// eventsFor selects and orders the entity's rows (j.rows) that view vi
// sees. In served mode a row is visible from its commit (the running
// maximum of commit times along the log, so visibility follows log order)
// and is folded if the store folded it into the view; after a backfill m,
// the rows before m.LSN are folded if the view admits them (its TTL at the
// row's ingest time), visible at the switch. In event mode a row is
// visible from its event time and always folded.
func (j *joiner) eventsFor(vi int, m *eventlog.Marker) {
	lt := j.lt
	src, keyOK := j.source[vi], j.keyOK[vi]
	ttl := j.g.views[vi].view.TTL.Milliseconds()
	j.events = j.events[:0]
	var vis int64
	for n := range j.rows {
		r := &j.rows[n]
		if n == 0 || r.commit > vis {
			vis = r.commit
		}
		if !src[r.sch] {
			continue
		}
		switch {
		case j.mode == ModeEvent:
			j.events = append(j.events, joinEvent{vis: r.event, row: int32(n), folded: true})
		case m != nil && r.lsn < m.LSN:
			admit := keyOK[r.sch] && r.event >= r.ingest-ttl
			j.events = append(j.events, joinEvent{vis: m.CommitMillis, row: int32(n), folded: admit})
		default:
			j.events = append(j.events, joinEvent{vis: max(vis, commitFloor(m)), row: int32(n), folded: lt.isFolded(int(r.row), vi)})
		}
	}
	if j.mode == ModeEvent {
		slices.SortStableFunc(j.events, func(a, b joinEvent) int { return cmpInt(a.vis, b.vis) })
	}
}

// fieldsOf returns the fields of the entity's row n in view vi's
// Source.Fields order.
func (j *joiner) fieldsOf(vi, n int) []aggregate.Value {
	out := j.scratch[vi]
	nu := len(j.lt.fields)
	for i, u := range j.fields[vi] {
		if u < 0 {
			out[i] = aggregate.Value{}
			continue
		}
		k, b := j.kinds[n*nu+u], j.bits[n*nu+u]
		switch k {
		case aggregate.KindNull:
			out[i] = aggregate.Value{}
		case aggregate.KindFloat64:
			out[i] = aggregate.Value{Kind: k, F: math.Float64frombits(uint64(b))}
		case aggregate.KindString:
			out[i] = aggregate.Value{Kind: k, S: j.lt.strs[b>>32][uint32(b)]}
		default:
			out[i] = aggregate.Value{Kind: k, I: b}
		}
	}
	return out
}
