package main

import (
	"math"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are recorded in nanoseconds into HDR histograms with 3
// significant digits: any quantile is within 0.1% of a recorded value, from
// 1 ns up to histMax. One histogram costs about 230 KB; each worker owns its
// own (no sharing on the hot path) and they are merged at the end.
const (
	histMin     = 1
	histMax     = int64(100 * time.Second)
	histSigFigs = 3
)

func newHist() *hdr.Histogram { return hdr.New(histMin, histMax, histSigFigs) }

// record adds one latency; values past histMax are clamped to it (and still
// show as the max), negative ones (a clock step) to zero.
func record(h *hdr.Histogram, d time.Duration) {
	v := int64(d)
	switch {
	case v < 0:
		v = 0
	case v > histMax:
		v = histMax
	}
	_ = h.RecordValue(v) // in range by construction
}

// Latency is a histogram's summary, in microseconds.
type Latency struct {
	Count int64   `json:"count"`
	Min   float64 `json:"min"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p999"`
	Max   float64 `json:"max"`
}

// summarize reads the quantiles of h. Each quantile is the highest value
// equivalent (within 0.1%) to the recorded value at that rank; Max is the
// largest recorded value to the same precision.
func summarize(h *hdr.Histogram) Latency {
	if h.TotalCount() == 0 {
		return Latency{}
	}
	q := h.ValueAtPercentiles([]float64{50, 90, 99, 99.9})
	return Latency{
		Count: h.TotalCount(),
		Min:   us(h.Min()),
		Mean:  round3(h.Mean() / 1e3),
		P50:   us(q[50]),
		P90:   us(q[90]),
		P99:   us(q[99]),
		P999:  us(q[99.9]),
		Max:   us(h.Max()),
	}
}

func us(ns int64) float64 { return round3(float64(ns) / 1e3) }

// round3 keeps three decimals (nanoseconds, in microseconds).
func round3(v float64) float64 { return math.Round(v*1e3) / 1e3 }
