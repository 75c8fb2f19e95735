package aggregate_test

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/featured-dev/featured/aggregate"
)

// benchLayout is the view of the brief: sum, count and avg of amount over
// 1h, 24h and 7d with default hops, plus last merchant. Fields: 0 amount
// (float64), 1 merchant (string).
func benchLayout(tb testing.TB) *aggregate.Layout {
	tb.Helper()
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
		tb.Fatal(err)
	}
	return l
}

var merchants = func() (m []aggregate.Value) {
	for i := range 16 {
		m = append(m, vS(fmt.Sprintf("merchant-%d", i)))
	}
	return m
}()

// benchState is 7 days of activity, one event every gap, pruned at the end.
func benchState(tb testing.TB, l *aggregate.Layout, gap int64) (*aggregate.State, int64) {
	tb.Helper()
	s := l.NewState()
	const t0 = 100 * day
	at := int64(t0)
	for i := 0; at < t0+7*day; i++ {
		l.Fold(s, at, []aggregate.Value{vF(float64(i%97) + 0.25), merchants[i%len(merchants)]})
		at += gap
	}
	at -= gap
	l.Prune(s, at)
	return s, at
}

// loop runs body b.N times and reports, beside wall time, the CPU time of
// the benchmark's thread per op (cpu-ns/op), which the shared machine's
// other load does not inflate.
func loop(b *testing.B, body func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	n := 0
	start := threadCPUNanos()
	for b.Loop() {
		body()
		n++
	}
	if n > 0 {
		b.ReportMetric(float64(threadCPUNanos()-start)/float64(n), "cpu-ns/op")
	}
}

var activities = []struct {
	name string
	gap  int64
}{{"hourly", hour}, {"every5m", 5 * minute}, {"everyMinute", minute}}

// BenchmarkFold is the ingest cost of one event into a cached State: 10
// features, in-order events every 7s, pruned every hour.
func BenchmarkFold(b *testing.B) {
	l := benchLayout(b)
	s := l.NewState()
	at := int64(100 * day)
	fields := []aggregate.Value{vF(12.5), merchants[3]}
	for range 8 * 24 * 3600 / 7 { // warm: 8 days
		at += 7 * second
		l.Fold(s, at, fields)
		if at%hour < 7*second {
			l.Prune(s, at)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	loop(b, func() {
		at += 7 * second
		l.Fold(s, at, fields)
		if at%hour < 7*second {
			l.Prune(s, at)
		}
	})
}

// BenchmarkFoldRoundTrip is the ingest cost of one event when the State is
// not cached: Decode, Fold, Prune, AppendEncode.
func BenchmarkFoldRoundTrip(b *testing.B) {
	for _, a := range activities {
		b.Run(a.name, func(b *testing.B) {
			l := benchLayout(b)
			s, at := benchState(b, l, a.gap)
			buf := l.AppendEncode(nil, s)
			fields := []aggregate.Value{vF(12.5), merchants[3]}
			b.ReportAllocs()
			b.SetBytes(int64(len(buf)))
			loop(b, func() {
				if err := l.Decode(s, buf); err != nil {
					b.Fatal(err)
				}
				l.Fold(s, at, fields)
				l.Prune(s, at)
				buf = l.AppendEncode(buf[:0], s)
			})
		})
	}
}

// BenchmarkDecode decodes a State of 7 days of activity.
func BenchmarkDecode(b *testing.B) {
	for _, a := range activities {
		b.Run(a.name, func(b *testing.B) {
			l := benchLayout(b)
			s, _ := benchState(b, l, a.gap)
			data := l.AppendEncode(nil, s)
			dst := l.NewState()
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			loop(b, func() {
				if err := l.Decode(dst, data); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

// BenchmarkEncode encodes a State of 7 days of activity.
func BenchmarkEncode(b *testing.B) {
	for _, a := range activities {
		b.Run(a.name, func(b *testing.B) {
			l := benchLayout(b)
			s, _ := benchState(b, l, a.gap)
			buf := l.AppendEncode(nil, s)
			b.ReportAllocs()
			b.SetBytes(int64(len(buf)))
			loop(b, func() {
				buf = l.AppendEncode(buf[:0], s)
			})
		})
	}
}

// BenchmarkRead10 reads all 10 features from a decoded State.
func BenchmarkRead10(b *testing.B) {
	for _, a := range activities {
		b.Run(a.name, func(b *testing.B) {
			l := benchLayout(b)
			s, at := benchState(b, l, a.gap)
			b.ReportAllocs()
			loop(b, func() {
				for f := range 10 {
					_ = l.Read(s, f, at)
				}
			})
		})
	}
}

// BenchmarkLookup is the online lookup after the Pebble Get: from encoded
// bytes to results, for all 10 features (Decode + Read, and ReadEncoded)
// and for 2 of them (ReadEncoded decodes only those).
func BenchmarkLookup(b *testing.B) {
	for _, a := range activities {
		l := benchLayout(b)
		s, at := benchState(b, l, a.gap)
		data := l.AppendEncode(nil, s)
		all := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
		b.Run(a.name+"/DecodeRead10", func(b *testing.B) {
			dst := l.NewState()
			b.ReportAllocs()
			loop(b, func() {
				if err := l.Decode(dst, data); err != nil {
					b.Fatal(err)
				}
				for _, f := range all {
					_ = l.Read(dst, f, at)
				}
			})
		})
		for _, fs := range [][]int{all, {6, 9}} {
			b.Run(fmt.Sprintf("%s/ReadEncoded%d", a.name, len(fs)), func(b *testing.B) {
				dst := l.NewState()
				out := make([]aggregate.Result, len(fs))
				b.ReportAllocs()
				loop(b, func() {
					if err := l.ReadEncoded(dst, data, fs, at, out); err != nil {
						b.Fatal(err)
					}
				})
			})
		}
		// 90 minutes after the last write every window has lost its
		// oldest tile since the store pruned: ReadEncoded decodes tiles.
		b.Run(a.name+"/ReadEncoded10Later", func(b *testing.B) {
			dst := l.NewState()
			out := make([]aggregate.Result, len(all))
			b.ReportAllocs()
			loop(b, func() {
				if err := l.ReadEncoded(dst, data, all, at+90*minute, out); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}
