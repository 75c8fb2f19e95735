package main

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// quantileBounds is the range a quantile q (in [0, 100]) of sorted may
// report: between the values at nearest rank ceil(q*n) and the rank before
// it (quantile definitions differ by one rank: HdrHistogram rounds the rank,
// nearest-rank takes its ceiling).
func quantileBounds(sorted []int64, q float64) (lo, hi int64) {
	rank := max(int(math.Ceil(q/100*float64(len(sorted)))), 1)
	return sorted[max(rank-2, 0)], sorted[rank-1]
}

func TestHistogramQuantiles(t *testing.T) {
	gens := []struct {
		name string
		gen  func(r *rand.Rand, i int) int64 // nanoseconds
		n    int
	}{
		{"uniform 1..100000 µs in order", func(_ *rand.Rand, i int) int64 { return int64(i+1) * 1000 }, 100_000},
		{"exponential mean 300 µs", func(r *rand.Rand, _ int) int64 { return int64(r.ExpFloat64() * 300e3) }, 200_000},
		{"bimodal 80 µs and 40 ms", func(r *rand.Rand, _ int) int64 {
			if r.IntN(100) < 2 {
				return 40e6 + r.Int64N(1e6)
			}
			return 80e3 + r.Int64N(20e3)
		}, 100_000},
		{"heavy tail lognormal", func(r *rand.Rand, _ int) int64 { return int64(math.Exp(r.NormFloat64()*1.5) * 200e3) }, 100_000},
	}
	for _, g := range gens {
		t.Run(g.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(7, 11))
			h := newHist()
			vals := make([]int64, g.n)
			for i := range vals {
				vals[i] = g.gen(r, i)
				record(h, time.Duration(vals[i]))
			}
			slices.Sort(vals)
			got := summarize(h)
			check := func(name string, gotUS float64, lo, hi int64) {
				t.Helper()
				// 3 significant digits: within 0.1% of a recorded value (plus
				// the summary's rounding to 1 ns).
				l, h := float64(lo)/1e3*0.999-0.001, float64(hi)/1e3*1.001+0.001
				if gotUS < l || gotUS > h {
					t.Errorf("%s = %.3f µs, want within 0.1%% of [%.3f, %.3f] µs", name, gotUS, float64(lo)/1e3, float64(hi)/1e3)
				}
			}
			for _, q := range []struct {
				name string
				q    float64
				got  float64
			}{{"p50", 50, got.P50}, {"p90", 90, got.P90}, {"p99", 99, got.P99}, {"p99.9", 99.9, got.P999}} {
				lo, hi := quantileBounds(vals, q.q)
				check(q.name, q.got, lo, hi)
			}
			check("max", got.Max, vals[len(vals)-1], vals[len(vals)-1])
			check("min", got.Min, vals[0], vals[0])
			if got.Count != int64(g.n) {
				t.Errorf("count = %d, want %d", got.Count, g.n)
			}
		})
	}
}

// Per-worker histograms merged give the quantiles of the whole.
func TestHistogramMerge(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 5))
	whole := newHist()
	parts := []*hdr.Histogram{newHist(), newHist(), newHist(), newHist()}
	for i := range 50_000 {
		v := time.Duration(r.ExpFloat64() * 1e6)
		record(whole, v)
		record(parts[i%len(parts)], v)
	}
	merged := newHist()
	for _, p := range parts {
		merged.Merge(p)
	}
	if a, b := summarize(whole), summarize(merged); a != b {
		t.Errorf("merged %+v, whole %+v", b, a)
	}
}

func TestHistogramClamps(t *testing.T) {
	h := newHist()
	record(h, -time.Millisecond)
	record(h, 10*time.Minute) // past histMax
	got := summarize(h)
	if got.Count != 2 {
		t.Fatalf("count = %d, want 2 (out-of-range values are clamped, not dropped)", got.Count)
	}
	if got.Min != 0 {
		t.Errorf("min = %v µs, want 0", got.Min)
	}
	if want := float64(histMax) / 1e3; math.Abs(got.Max-want) > want*0.001 {
		t.Errorf("max = %v µs, want about %v", got.Max, want)
	}
	if empty := summarize(newHist()); empty != (Latency{}) {
		t.Errorf("empty histogram summary = %+v, want zero", empty)
	}
}
