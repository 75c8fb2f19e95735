package main

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// chart draws p99 latency against offered load for every system with sweep
// results of workload w: an SVG line chart, both axes log scale, written
// by hand (a few dozen lines beat a plotting dependency for one chart).

type point struct{ x, y float64 } // offered req/s, p99 ms

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f"}

func (r *report) chart(w string) string {
	type series struct {
		label string
		pts   []point
	}
	var all []series
	for _, l := range r.labels {
		rs := r.by[[3]string{l, w, "sweep"}]
		if len(rs) == 0 {
			continue
		}
		s := series{label: l}
		for _, x := range rs {
			s.pts = append(s.pts, point{x.OfferedRPS, math.Max(x.Latency.P99/1e3, 0.001)})
		}
		sort.Slice(s.pts, func(i, j int) bool { return s.pts[i].x < s.pts[j].x })
		all = append(all, s)
	}
	const (
		width, height          = 820, 460
		left, right, top, bott = 70, 200, 40, 55
	)
	pw, ph := float64(width-left-right), float64(height-top-bott)
	xmin, xmax, ymin, ymax := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, s := range all {
		for _, p := range s.pts {
			xmin, xmax = math.Min(xmin, p.x), math.Max(xmax, p.x)
			ymin, ymax = math.Min(ymin, p.y), math.Max(ymax, p.y)
		}
	}
	if len(all) == 0 {
		xmin, xmax, ymin, ymax = 100, 10000, 0.1, 10
	}
	ymin = math.Min(ymin, 1) // keep the 1 ms goal line in view
	lx0, lx1 := math.Floor(math.Log10(xmin)), math.Ceil(math.Log10(xmax))
	ly0, ly1 := math.Floor(math.Log10(ymin)), math.Ceil(math.Log10(ymax))
	if lx1 == lx0 {
		lx1++
	}
	if ly1 == ly0 {
		ly1++
	}
	px := func(x float64) float64 { return float64(left) + (math.Log10(x)-lx0)/(lx1-lx0)*pw }
	py := func(y float64) float64 { return float64(top) + ph - (math.Log10(y)-ly0)/(ly1-ly0)*ph }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="%d" y="22" font-size="14" font-weight="bold">p99 latency against offered load, %s (open loop, 2 cores)</text>`+"\n", left, w)
	// Grid and tick labels at 1, 2, 5 of each decade.
	for d := lx0; d <= lx1; d++ {
		for _, m := range []float64{1, 2, 5} {
			x := m * math.Pow(10, d)
			if math.Log10(x) > lx1+1e-9 {
				break
			}
			X := px(x)
			stroke := "#eee"
			if m == 1 {
				stroke = "#ccc"
			}
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%.1f" stroke="%s"/>`+"\n", X, top, X, float64(top)+ph, stroke)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", X, float64(top)+ph+16, shortNum(x))
		}
	}
	for d := ly0; d <= ly1; d++ {
		for _, m := range []float64{1, 2, 5} {
			y := m * math.Pow(10, d)
			if math.Log10(y) > ly1+1e-9 {
				break
			}
			Y := py(y)
			stroke := "#eee"
			if m == 1 {
				stroke = "#ccc"
			}
			fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>`+"\n", left, Y, float64(left)+pw, Y, stroke)
			fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, Y+4, shortNum(y))
		}
	}
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.0f" height="%.0f" fill="none" stroke="#333"/>`+"\n", left, top, pw, ph)
	fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">offered load, requests/s</text>`+"\n", float64(left)+pw/2, height-12)
	fmt.Fprintf(&b, `<text x="16" y="%.1f" text-anchor="middle" transform="rotate(-90 16 %.1f)">p99 latency, ms</text>`+"\n", float64(top)+ph/2, float64(top)+ph/2)
	// The goal: 1 ms.
	fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#555" stroke-dasharray="6 4"/>`+"\n", left, py(1), float64(left)+pw, py(1))
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end" fill="#555">goal: p99 1 ms</text>`+"\n", float64(left)+pw-4, py(1)-4)
	for i, s := range all {
		c := palette[i%len(palette)]
		pts := make([]string, len(s.pts))
		for j, p := range s.pts {
			pts[j] = fmt.Sprintf("%.1f,%.1f", px(p.x), py(p.y))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"><title>%s</title></polyline>`+"\n", c, strings.Join(pts, " "), s.label)
		for _, p := range s.pts {
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"><title>%s: %.0f req/s, p99 %.3f ms</title></circle>`+"\n", px(p.x), py(p.y), c, s.label, p.x, p.y)
		}
		ly := top + 10 + 20*i
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"/>`+"\n", width-right+15, ly, width-right+40, ly, c)
		fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`+"\n", width-right+46, ly+4, s.label)
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// shortNum writes 0.1, 2, 500, 1k, 20k.
func shortNum(v float64) string {
	switch {
	case v >= 1000:
		return fmt.Sprintf("%gk", v/1000)
	default:
		return fmt.Sprintf("%g", v)
	}
}
