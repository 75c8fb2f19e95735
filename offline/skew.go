package offline

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/featurestore"
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

// SkewReport is verify-skew's answer.
type SkewReport struct {
	Samples    int        `json:"samples"`
	Values     int        `json:"values"`
	Matches    int        `json:"matches"`
	MatchRate  float64    `json:"match_rate_percent"`
	Skipped    int        `json:"skipped"` // samples of view versions no longer in the registry
	Mismatches []Mismatch `json:"mismatches"`
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
		return statusName(r.Status)
	}
	return fmt.Sprintf("%s %v", statusName(r.Status), valueString(r.Value))
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

// VerifySkew recomputes samples offline, in served mode through the same
// export path users run, and compares every sampled value bit for bit with
// what the store answered. A sample read in the same millisecond as a
// commit of its entity may legitimately differ (the log stamps visibility
// in milliseconds); such races are rare and reported like any mismatch.
func (x *Exporter) VerifySkew(ctx context.Context, samples []Sample, tempDir string) (SkewReport, error) {
	rep := SkewReport{Samples: len(samples), Mismatches: []Mismatch{}}
	byView := map[featurestore.ViewKey][]int{}
	for i, s := range samples {
		byView[s.View] = append(byView[s.View], i)
	}
	views := map[featurestore.ViewKey]*registry.View{}
	for _, v := range x.reg.Snapshot().Views() {
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
	for _, vk := range keys {
		v := views[vk]
		idx := byView[vk]
		if v == nil {
			rep.Skipped += len(idx)
			continue
		}
		spine := filepath.Join(dir, fmt.Sprintf("spine-%d-%d.parquet", vk.ID, vk.Version))
		if err := writeSampleSpine(spine, v, samples, idx); err != nil {
			return rep, err
		}
		var refs []string
		for _, f := range v.Features {
			refs = append(refs, fmt.Sprintf("%s@v%d:%s", v.Name, v.Version, f.Name))
		}
		var m collectSink
		if _, err := x.Export(ctx, spine, "parquet", Request{Features: refs, Statuses: true, FullNames: true, TimeColumn: "t"}, &m); err != nil {
			return rep, err
		}
		for row, si := range idx {
			s := samples[si]
			for k, f := range s.Features {
				name := v.Name + "__" + v.Features[f].Name
				off := aggregate.Result{Value: m.value(name, row), Status: statusOf(m.value(name+"__status", row).S)}
				on := s.Results[k]
				if on.Status != aggregate.StatusPresent {
					on.Value = aggregate.Value{}
				}
				rep.Values++
				if off.Status == on.Status && sameValue(off.Value, on.Value) {
					rep.Matches++
					continue
				}
				rep.Mismatches = append(rep.Mismatches, Mismatch{
					Feature: fmt.Sprintf("%s@v%d:%s", v.Name, v.Version, v.Features[f].Name), Entity: entityString(v.Entity.Type, s.Entity),
					AtMillis: s.AtMillis, Online: describe(on), Offline: describe(off),
				})
			}
		}
	}
	rep.MatchRate = 100
	if rep.Values > 0 {
		rep.MatchRate = 100 * float64(rep.Matches) / float64(rep.Values)
	}
	return rep, nil
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

func entityString(k aggregate.Kind, b []byte) string {
	if k == aggregate.KindInt64 && len(b) == 8 {
		return fmt.Sprint(int64(binary.BigEndian.Uint64(b) ^ (1 << 63)))
	}
	return string(b)
}

// writeSampleSpine writes the samples idx of view v as a spine: the view's
// join key and "t".
func writeSampleSpine(path string, v *registry.View, samples []Sample, idx []int) error {
	key := arrow.Field{Name: v.Entity.JoinKey, Type: arrow.BinaryTypes.String}
	if v.Entity.Type == aggregate.KindInt64 {
		key.Type = arrow.PrimitiveTypes.Int64
	}
	sc := arrow.NewSchema([]arrow.Field{key, {Name: "t", Type: tsMillis}}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	defer b.Release()
	for _, i := range idx {
		s := samples[i]
		switch kb := b.Field(0).(type) {
		case *array.Int64Builder:
			kb.Append(int64(binary.BigEndian.Uint64(s.Entity) ^ (1 << 63)))
		case *array.StringBuilder:
			kb.Append(string(s.Entity))
		}
		b.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(s.AtMillis))
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	sink := NewParquetFile(path)
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
			v.L = append(v.L, valueAt(l.ListValues(), int(j)))
		}
		return v
	}
	return valueAt(a, i)
}

func mathBits(f float64) uint64 { return math.Float64bits(f) }
