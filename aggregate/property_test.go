package aggregate_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/aggregate/aggregatetest"
)

const (
	second = int64(1000)
	minute = 60 * second
	hour   = 60 * minute
	day    = 24 * hour
)

// TestMatchesReference folds seeded random streams (every operator over
// every field kind, windows with several hops, lifetime features, late
// events, duplicate timestamps, nulls, gaps past the TTL) through a Layout,
// with encode/decode round trips and prunes mixed in, and compares every
// feature with the brute-force reference at many read times at or after the
// latest event.
func TestMatchesReference(t *testing.T) {
	const ttl = 8 * day
	seeds := 40
	if testing.Short() {
		seeds = 15
	}
	for seed := uint64(1); seed <= uint64(seeds); seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			opts := aggregatetest.StreamOptions{Events: 250}
			if seed%4 == 0 {
				opts.MeanGapMillis = 30 * second // dense: many events per tile
				opts.MaxLateMillis = 20 * minute
			}
			if seed%5 == 0 {
				opts.Cardinality = 400 // count_distinct past its bounds
			}
			opts.EnsureDefaults()
			specs := aggregatetest.RandomSpecs(seed, opts.Fields, ttl)
			l, err := aggregate.NewLayout(specs, ttl)
			if err != nil {
				t.Fatal(err)
			}
			events := aggregatetest.Stream(seed, opts)
			rng := rand.New(rand.NewPCG(seed, 7))
			s := l.NewState()
			scratch := l.NewState()
			var latest int64
			var buf []byte
			for i, e := range events {
				l.Fold(s, e.Millis, e.Fields)
				if i == 0 || e.Millis > latest {
					latest = e.Millis
				}
				if rng.IntN(8) == 0 {
					buf = l.AppendEncode(buf[:0], s)
					if err := l.Decode(s, buf); err != nil {
						t.Fatalf("event %d: decode: %v", i, err)
					}
					if again := l.AppendEncode(nil, s); !bytes.Equal(again, buf) {
						t.Fatalf("event %d: decode then encode changed the bytes", i)
					}
				}
				if rng.IntN(6) == 0 {
					// Every later read is at or after latest.
					l.Prune(s, latest-rng.Int64N(2*day))
				}
				if rng.IntN(10) == 0 || i == len(events)-1 {
					checkReads(t, l, s, scratch, events[:i+1], latest, rng)
				}
			}
		})
	}
}

func checkReads(t *testing.T, l *aggregate.Layout, s, scratch *aggregate.State, events []aggregatetest.Event, latest int64, rng *rand.Rand) {
	t.Helper()
	specs := l.Specs()
	ttl := l.TTLMillis()
	times := []int64{
		latest,
		latest + 1,
		latest + rng.Int64N(2*day),
		(latest/hour + 1) * hour,             // next hour edge
		(latest/(5*minute) + 1) * 5 * minute, // next 5-minute edge
		latest + ttl,                         // last moment the state is visible
		latest + ttl + 1,                     // expired
	}
	for range 4 {
		// A window's tail exactly on an event: T = event time + W.
		e := events[rng.IntN(len(events))]
		if w := specs[rng.IntN(len(specs))].WindowMillis; e.Millis+w >= latest {
			times = append(times, e.Millis+w)
		}
	}
	enc := l.AppendEncode(nil, s)
	all := make([]int, len(specs))
	for i := range all {
		all[i] = i
	}
	out := make([]aggregate.Result, len(specs))
	for _, at := range times {
		if err := l.ReadEncoded(scratch, enc, all, at, out); err != nil {
			t.Fatalf("ReadEncoded: %v", err)
		}
		for f := range specs {
			got := l.Read(s, f, at)
			want := aggregatetest.Reference(specs, ttl, events, f, at)
			if !aggregatetest.Equal(got, want, 1e-9) {
				t.Fatalf("feature %d %+v at %d (latest %d, %d events):\n got %+v\nwant %+v", f, specs[f], at, latest, len(events), got, want)
			}
			if !aggregatetest.Equal(out[f], got, 0) {
				t.Fatalf("feature %d %+v at %d: ReadEncoded %+v, Read %+v", f, specs[f], at, out[f], got)
			}
		}
	}
}

// TestSameTilesSameBits folds one stream twice, once straight and once with
// encode/decode round trips and prunes in between: every read at or after
// the last prune horizon is identical bit for bit, floats included, which
// is what lets the offline exporter match online serving exactly.
func TestSameTilesSameBits(t *testing.T) {
	const ttl = 8 * day
	for seed := uint64(100); seed < 110; seed++ {
		opts := aggregatetest.StreamOptions{Events: 400, MeanGapMillis: 2 * minute}
		opts.EnsureDefaults()
		specs := aggregatetest.RandomSpecs(seed, opts.Fields, ttl)
		l, err := aggregate.NewLayout(specs, ttl)
		if err != nil {
			t.Fatal(err)
		}
		straight, bumpy := l.NewState(), l.NewState()
		rng := rand.New(rand.NewPCG(seed, 3))
		var latest int64
		for i, e := range aggregatetest.Stream(seed, opts) {
			l.Fold(straight, e.Millis, e.Fields)
			l.Fold(bumpy, e.Millis, e.Fields)
			if i == 0 || e.Millis > latest {
				latest = e.Millis
			}
			if rng.IntN(3) == 0 {
				if err := l.Decode(bumpy, l.AppendEncode(nil, bumpy)); err != nil {
					t.Fatal(err)
				}
			}
			if rng.IntN(5) == 0 {
				l.Prune(bumpy, latest)
			}
		}
		for f := range specs {
			for _, at := range []int64{latest, latest + hour, latest + day} {
				a, b := l.Read(straight, f, at), l.Read(bumpy, f, at)
				if !aggregatetest.Equal(a, b, 0) {
					t.Fatalf("seed %d feature %d %+v at %d: straight %+v, with round trips and prunes %+v", seed, f, specs[f], at, a, b)
				}
			}
		}
	}
}
