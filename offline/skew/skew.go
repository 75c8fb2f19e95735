package skew

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/featurestore"
	"github.com/featured-dev/featured/internal/keyenc"
	"github.com/featured-dev/featured/offline/eventlog"
	"github.com/featured-dev/featured/offline/export"
	"github.com/featured-dev/featured/offline/internal/codec"
	"github.com/featured-dev/featured/registry"
)

// Sample is one answer the store gave: features of one view version for one
// entity as of AtMillis.
type Sample struct {
	View     featurestore.ViewKey
	Entity   []byte // keyenc
	AtMillis int64
	Features []int
	Results  []aggregate.Result
}

// Sampler keeps the latest samples of the store's answers in a ring; its
// Record is featurestore.Options.ReadSampler. Safe for concurrent use.
type Sampler struct {
	mu    sync.Mutex
	ring  []Sample
	next  int
	total uint64
}

// NewSampler returns a sampler that keeps the last size samples (default
// 10000 when size <= 0).
func NewSampler(size int) *Sampler {
	if size <= 0 {
		size = 10000
	}
	return &Sampler{ring: make([]Sample, 0, size)}
}

// Record copies one answer into the ring.
func (s *Sampler) Record(vk featurestore.ViewKey, entity []byte, features []int, atMillis int64, out []aggregate.Result) {
	smp := Sample{
		View: vk, Entity: append([]byte(nil), entity...), AtMillis: atMillis,
		Features: append([]int(nil), features...), Results: make([]aggregate.Result, len(out)),
	}
	for i, r := range out {
		smp.Results[i] = r
		if r.Value.Kind == aggregate.KindList {
			smp.Results[i].Value.L = append([]aggregate.Value(nil), r.Value.L...)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total++
	if len(s.ring) < cap(s.ring) {
		s.ring = append(s.ring, smp)
		return
	}
	s.ring[s.next] = smp
	s.next = (s.next + 1) % len(s.ring)
}

// Samples returns a copy of the samples held.
func (s *Sampler) Samples() []Sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Sample(nil), s.ring...)
}

// Report is verify-skew's answer: Verify's result.
type Report struct {
	Samples   int     `json:"samples"`
	Values    int     `json:"values"`
	Matches   int     `json:"matches"`
	MatchRate float64 `json:"match_rate_percent"`
	// ResolvedSameMillis counts the samples that differ from served mode at
	// their instant T but were read in a millisecond in which a commit of
	// their entity landed, and match in full the state before that
	// millisecond's commits (see Verify). Their values count in Matches.
	ResolvedSameMillis int        `json:"resolved_same_ms"`
	Skipped            int        `json:"skipped"` // samples of view versions no longer in the registry
	Mismatches         []Mismatch `json:"mismatches"`
}

// Mismatch is one value that online and offline disagree on.
type Mismatch struct {
	Feature  string `json:"feature"`
	Entity   string `json:"entity"`
	AtMillis int64  `json:"at_ms"`
	Online   string `json:"online"`
	Offline  string `json:"offline"`
}

func describe(r aggregate.Result) string {
	if r.Status != aggregate.StatusPresent {
		return export.StatusName(r.Status)
	}
	return fmt.Sprintf("%s %v", export.StatusName(r.Status), valueString(r.Value))
}

func valueString(v aggregate.Value) any {
	switch v.Kind {
	case aggregate.KindInt64:
		return v.I
	case aggregate.KindFloat64:
		return fmt.Sprintf("%v (bits %016x)", v.F, mathBits(v.F))
	case aggregate.KindString:
		return fmt.Sprintf("%q", v.S)
	case aggregate.KindBool:
		return v.I != 0
	case aggregate.KindList:
		var out []any
		for _, e := range v.L {
			out = append(out, valueString(e))
		}
		return out
	}
	return nil
}

// Verify recomputes samples offline with x, in served mode through the same
// export path users run, and compares every sampled value bit for bit with
// what the store answered.
//
// The log stamps visibility in milliseconds, so a read made in the
// millisecond T in which a commit of its entity landed may have run before
// that commit, while served mode at T includes it. A sample that differs at
// T gets a second chance when the log holds a row of its entity and its
// view's source whose visibility (its commit time, made monotone along the
// log as the export makes it) is exactly T: it is recomputed at T-1, which
// sees every commit before millisecond T and none in it, and counts as
// matching if all its values match there (Report.ResolvedSameMillis).
// Otherwise, and for every other sample, the mismatches at T are reported.
// The second pass is one export per view version of only those samples.
//
// Known limits, which leave such a sample reported: a read between two
// commits of millisecond T saw a state that is neither T's nor the one
// before T's commits (the export cannot cut visibility inside a
// millisecond); and the second pass reads at T-1, not T, which gives
// another answer only on an edge: the tail of a window or the TTL ending
// exactly at T, or an event stamped T or later starting a tile at T. Nor
// does a read in the millisecond a backfill switched its view version get
// a second chance.
func Verify(ctx context.Context, x *export.Exporter, samples []Sample, tempDir string) (Report, error) {
	rep := Report{Samples: len(samples), Mismatches: []Mismatch{}}
	byView := map[featurestore.ViewKey][]int{}
	for i, s := range samples {
		byView[s.View] = append(byView[s.View], i)
	}
	views := map[featurestore.ViewKey]*registry.View{}
	for _, v := range x.Registry().Snapshot().Views() {
		views[featurestore.ViewKey{ID: v.ID, Version: uint32(v.Version)}] = v
	}
	keys := make([]featurestore.ViewKey, 0, len(byView))
	for vk := range byView {
		keys = append(keys, vk)
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i].ID < keys[j].ID || (keys[i].ID == keys[j].ID && keys[i].Version < keys[j].Version)
	})
	dir, err := os.MkdirTemp(tempDir, "featured-skew-")
	if err != nil {
		return rep, err
	}
	defer os.RemoveAll(dir)

	// Every sample at its instant T.
	misses := make([][]Mismatch, len(samples)) // by sample: its mismatches at T
	var differ []int
	for _, vk := range keys {
		v := views[vk]
		idx := byView[vk]
		if v == nil {
			rep.Skipped += len(idx)
			continue
		}
		m, err := recompute(ctx, x, dir, v, samples, idx, 0)
		if err != nil {
			return rep, err
		}
		for row, si := range idx {
			mm := compareSample(v, &samples[si], m, row)
			rep.Values += len(samples[si].Features)
			rep.Matches += len(samples[si].Features) - len(mm)
			if len(mm) > 0 {
				misses[si] = mm
				differ = append(differ, si)
			}
		}
	}

	// The samples that differ and were read in the millisecond of a commit
	// of their entity, at T-1.
	if len(differ) > 0 {
		amb, err := sameMillisCommits(ctx, x.Log(), samples, differ, views)
		if err != nil {
			return rep, err
		}
		ambByView := map[featurestore.ViewKey][]int{}
		for _, si := range amb {
			ambByView[samples[si].View] = append(ambByView[samples[si].View], si)
		}
		for _, vk := range keys {
			idx := ambByView[vk]
			if len(idx) == 0 {
				continue
			}
			v := views[vk]
			m, err := recompute(ctx, x, dir, v, samples, idx, -1)
			if err != nil {
				return rep, err
			}
			for row, si := range idx {
				if len(compareSample(v, &samples[si], m, row)) == 0 {
					rep.Matches += len(misses[si])
					rep.ResolvedSameMillis++
					misses[si] = nil
				}
			}
		}
	}
	for _, vk := range keys {
		for _, si := range byView[vk] {
			rep.Mismatches = append(rep.Mismatches, misses[si]...)
		}
	}
	rep.MatchRate = 100
	if rep.Values > 0 {
		rep.MatchRate = 100 * float64(rep.Matches) / float64(rep.Values)
	}
	return rep, nil
}

// recompute exports every feature of view v for the samples idx, each at
// its AtMillis plus shiftMillis, in served mode; row i of the result is
// sample idx[i].
func recompute(ctx context.Context, x *export.Exporter, dir string, v *registry.View, samples []Sample, idx []int, shiftMillis int64) (*collectSink, error) {
	name := fmt.Sprintf("spine-%d-%d", v.ID, v.Version)
	if shiftMillis != 0 {
		name += fmt.Sprintf("-shift%d", shiftMillis)
	}
	spine := filepath.Join(dir, name+".parquet")
	if err := writeSampleSpine(spine, v, samples, idx, shiftMillis); err != nil {
		return nil, err
	}
	var refs []string
	for _, f := range v.Features {
		refs = append(refs, fmt.Sprintf("%s@v%d:%s", v.Name, v.Version, f.Name))
	}
	m := &collectSink{}
	if _, err := x.Export(ctx, spine, "parquet", export.Request{Features: refs, Statuses: true, FullNames: true, TimeColumn: "t", TempDir: dir}, m); err != nil {
		return nil, err
	}
	return m, nil
}

// compareSample compares sample s with row of export m and returns the
// values that differ.
func compareSample(v *registry.View, s *Sample, m *collectSink, row int) []Mismatch {
	var out []Mismatch
	for k, f := range s.Features {
		ref := fmt.Sprintf("%s@v%d:%s", v.Name, v.Version, v.Features[f].Name)
		// The column of the pinned ref the export was asked for (exportView).
		name := registry.Resolved{Ref: ref, Name: v.Features[f].Name, View: v}.FullName()
		off := aggregate.Result{Value: m.value(name, row), Status: statusOf(m.value(name+"__status", row).S)}
		on := s.Results[k]
		if on.Status != aggregate.StatusPresent {
			on.Value = aggregate.Value{}
		}
		if off.Status == on.Status && sameValue(off.Value, on.Value) {
			continue
		}
		out = append(out, Mismatch{
			Feature: ref, Entity: entityString(v, s.Entity),
			AtMillis: s.AtMillis, Online: describe(on), Offline: describe(off),
		})
	}
	return out
}

// sameMillisCommits returns the samples of idx read in a millisecond in
// which a commit of their entity landed: the log holds a row of the entity
// and of the view's source visible from exactly the sample's AtMillis.
// Visibility is computed as served mode does it (the running maximum of
// commit times over the entity's rows of the source in LSN order, a
// repeated LSN dropped). One scan of the log, keeping only those entities.
func sameMillisCommits(ctx context.Context, log *eventlog.Log, samples []Sample, idx []int, views map[featurestore.ViewKey]*registry.View) ([]int, error) {
	type logRow struct{ lsn, commitMillis int64 }
	rows := map[string]map[string][]logRow{} // source -> entity -> its rows
	sources := map[string]bool{}
	for _, si := range idx {
		src := views[samples[si].View].Source.Name
		if rows[src] == nil {
			rows[src] = map[string][]logRow{}
		}
		rows[src][string(samples[si].Entity)] = nil
		sources[src] = true
	}
	err := log.Scan(ctx, sources, func(r *eventlog.Row) error {
		ents := rows[r.Schema().Source()]
		rs, ok := ents[string(r.Entity())]
		if !ok {
			return nil
		}
		ents[string(r.Entity())] = append(rs, logRow{lsn: r.LSN(), commitMillis: r.CommitMillis()})
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Per entity, the instants from which its rows are visible, ascending.
	visible := map[string]map[string][]int64{}
	for src, ents := range rows {
		visible[src] = map[string][]int64{}
		for ent, rs := range ents {
			slices.SortStableFunc(rs, func(a, b logRow) int { return cmp.Compare(a.lsn, b.lsn) })
			var vis []int64
			for n, r := range rs {
				if n > 0 && rs[n-1].lsn == r.lsn {
					continue
				}
				if len(vis) > 0 {
					r.commitMillis = max(r.commitMillis, vis[len(vis)-1])
				}
				vis = append(vis, r.commitMillis)
			}
			visible[src][ent] = vis
		}
	}
	var out []int
	for _, si := range idx {
		s := &samples[si]
		vis := visible[views[s.View].Source.Name][string(s.Entity)]
		if _, found := slices.BinarySearch(vis, s.AtMillis); found {
			out = append(out, si)
		}
	}
	return out, nil
}

func statusOf(s string) aggregate.Status {
	switch s {
	case "PRESENT":
		return aggregate.StatusPresent
	case "NULL_VALUE":
		return aggregate.StatusNull
	}
	return aggregate.StatusNotFound
}

// sameValue is bit-for-bit equality (NaN equals NaN with the same bits).
func sameValue(a, b aggregate.Value) bool {
	if a.Kind != b.Kind {
		return false
	}
	switch a.Kind {
	case aggregate.KindFloat64:
		return mathBits(a.F) == mathBits(b.F)
	case aggregate.KindString:
		return a.S == b.S
	case aggregate.KindList:
		if len(a.L) != len(b.L) {
			return false
		}
		for i := range a.L {
			if !sameValue(a.L[i], b.L[i]) {
				return false
			}
		}
		return true
	}
	return a.I == b.I
}

// entityString is how a mismatch names its entity: the key's value, or
// "join_key=value" per part, comma-separated, for a compound key.
func entityString(v *registry.View, b []byte) string {
	parts, err := keyenc.DecodeKey(nil, b, v.KeyKinds())
	if err != nil {
		return fmt.Sprintf("%x", b)
	}
	var sb strings.Builder
	for i, p := range parts {
		if len(parts) > 1 {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString(v.Entities[i].JoinKey + "=")
		}
		if p.Kind == aggregate.KindInt64 {
			sb.WriteString(strconv.FormatInt(p.I, 10))
		} else {
			sb.WriteString(p.S)
		}
	}
	return sb.String()
}

// writeSampleSpine writes the samples idx of view v as a spine: a column per
// join key of the view and "t", each sample's AtMillis plus shiftMillis.
func writeSampleSpine(path string, v *registry.View, samples []Sample, idx []int, shiftMillis int64) error {
	var fields []arrow.Field
	for _, e := range v.Entities {
		key := arrow.Field{Name: e.JoinKey, Type: arrow.BinaryTypes.String}
		if e.Type == aggregate.KindInt64 {
			key.Type = arrow.PrimitiveTypes.Int64
		}
		fields = append(fields, key)
	}
	tcol := len(fields)
	sc := arrow.NewSchema(append(fields, arrow.Field{Name: "t", Type: codec.TimestampMS}), nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	defer b.Release()
	kinds := v.KeyKinds()
	var parts []aggregate.Value
	for _, i := range idx {
		s := samples[i]
		var err error
		if parts, err = keyenc.DecodeKey(parts[:0], s.Entity, kinds); err != nil {
			return fmt.Errorf("sample of %s v%d: %w", v.Name, v.Version, err)
		}
		for k, p := range parts {
			switch kb := b.Field(k).(type) {
			case *array.Int64Builder:
				kb.Append(p.I)
			case *array.StringBuilder:
				kb.Append(p.S)
			}
		}
		b.Field(tcol).(*array.TimestampBuilder).Append(arrow.Timestamp(s.AtMillis + shiftMillis))
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	sink := export.NewParquetFile(path)
	if err := sink.Begin(sc); err != nil {
		return err
	}
	if err := sink.Write(rec); err != nil {
		sink.Abort()
		return err
	}
	return sink.Commit()
}

// collectSink keeps an export in memory.
type collectSink struct {
	schema *arrow.Schema
	recs   []arrow.RecordBatch
	starts []int
	n      int
}

func (c *collectSink) Begin(sc *arrow.Schema) error { c.schema = sc; return nil }

func (c *collectSink) Write(rec arrow.RecordBatch) error {
	rec.Retain()
	c.recs = append(c.recs, rec)
	c.starts = append(c.starts, c.n)
	c.n += int(rec.NumRows())
	return nil
}

// value returns row's value of the named column.
func (c *collectSink) value(name string, row int) aggregate.Value {
	col := c.schema.FieldIndices(name)[0]
	k := sort.Search(len(c.starts), func(i int) bool { return c.starts[i] > row }) - 1
	a := c.recs[k].Column(col)
	i := row - c.starts[k]
	if a.IsNull(i) {
		return aggregate.Value{}
	}
	if l, ok := a.(*array.List); ok {
		s, e := l.ValueOffsets(i)
		v := aggregate.Value{Kind: aggregate.KindList, L: []aggregate.Value{}}
		for j := s; j < e; j++ {
			v.L = append(v.L, codec.ValueAt(l.ListValues(), int(j)))
		}
		return v
	}
	return codec.ValueAt(a, i)
}

func mathBits(f float64) uint64 { return math.Float64bits(f) }
