package featurestore

import (
	"context"
	"flag"
	"fmt"
	"testing"
	"time"

	"github.com/featured-dev/featured/aggregate"
)

// benchSpecs is the README's example view (spend sum/count/avg over 1h, 24h
// and 7d with default hops, and the last merchant): ten features.
func benchLayout(b *testing.B) *aggregate.Layout {
	b.Helper()
	var specs []aggregate.Spec
	for _, w := range []int64{hour, day, 7 * day} {
		h := aggregate.DefaultHopMillis(w)
		specs = append(specs,
			aggregate.Spec{Op: aggregate.OpSum, Field: 0, FieldKind: aggregate.KindFloat64, WindowMillis: w, HopMillis: h},
			aggregate.Spec{Op: aggregate.OpCount, Field: -1, WindowMillis: w, HopMillis: h},
			aggregate.Spec{Op: aggregate.OpAvg, Field: 0, FieldKind: aggregate.KindFloat64, WindowMillis: w, HopMillis: h},
		)
	}
	specs = append(specs, aggregate.Spec{Op: aggregate.OpLast, Field: 1, FieldKind: aggregate.KindString})
	l, err := aggregate.NewLayout(specs, 8*day)
	if err != nil {
		b.Fatal(err)
	}
	return l
}

// BenchmarkRead is one online lookup of ten features of one entity through
// the store: a Pebble Get, a decode and ten window reads. Each entity has a
// week of activity, an event every 20 minutes.
// benchPartitions is the store's partition count in the benchmarks: 2,
// the shard count of the layout before partitions on the 2-core machine
// the benchmarks run on, or 16, the default (docs/benchmarks.md compares).
var benchPartitions = flag.Int("partitions", 2, "partitions of the benchmarks' store")

func BenchmarkRead(b *testing.B) {
	now := int64(1_790_000_000_000)
	l := benchLayout(b)
	s, err := Open(b.TempDir(), Options{Partitions: *benchPartitions, Now: func() time.Time { return time.UnixMilli(now) }, GCInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	vk := ViewKey{ID: 1, Version: 1}
	const entities = 1000
	var ws []Write
	for e := 0; e < entities; e++ {
		for ts := now - 7*day; ts <= now; ts += 20 * 60_000 {
			ws = append(ws, Write{Entity: []byte(fmt.Sprintf("user-%05d", e)), EventMillis: ts + int64(e),
				Fields:  []aggregate.Value{{Kind: aggregate.KindFloat64, F: 12.5}, {Kind: aggregate.KindString, S: "shop"}},
				Targets: []Target{{Key: vk, Layout: l}}})
		}
	}
	if err := s.Enqueue(context.Background(), placed(ws, s.Partitions()), nil); err != nil {
		b.Fatal(err)
	}
	if err := s.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	keys := make([][]byte, entities)
	for e := range keys {
		keys[e] = []byte(fmt.Sprintf("user-%05d", e))
	}
	features := allFeatures(len(l.Specs()))
	out := make([]aggregate.Result, len(features))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if err := s.Read(vk, l, partOf(keys[i%entities], s.Partitions()), keys[i%entities], features, now, out); err != nil {
			b.Fatal(err)
		}
	}
	if out[1].Status != aggregate.StatusPresent {
		b.Fatalf("count status %v", out[1].Status)
	}
}

// BenchmarkEnqueue is Kafka-style ingest into the store: events of 10,000
// entities, in time order, folded into the ten-feature view and committed in
// batches (the store's default commit policy).
func BenchmarkEnqueue(b *testing.B) {
	now := int64(1_790_000_000_000)
	l := benchLayout(b)
	s, err := Open(b.TempDir(), Options{Partitions: *benchPartitions, Now: func() time.Time { return time.UnixMilli(now) }, GCInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	vk := ViewKey{ID: 1, Version: 1}
	const entities = 10000
	keys := make([][]byte, entities)
	for e := range keys {
		keys[e] = []byte(fmt.Sprintf("user-%05d", e))
	}
	fields := []aggregate.Value{{Kind: aggregate.KindFloat64, F: 12.5}, {Kind: aggregate.KindString, S: "shop"}}
	const batch = 4096
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for b.Loop() {
		ws := make([]Write, batch)
		for i := range ws {
			ws[i] = Write{Entity: keys[(n+i)%entities], EventMillis: now - 7*day + int64(n+i)*60%(7*day), Fields: fields,
				Targets: []Target{{Key: vk, Layout: l}}}
		}
		n += batch
		if err := s.Enqueue(context.Background(), placed(ws, s.Partitions()), nil); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}
