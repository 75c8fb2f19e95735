package main

import (
	"bytes"
	"context"
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	f := func(in []float64, want float64) {
		t.Helper()
		if got := median(in); got != want {
			t.Errorf("median(%v) = %v, want %v", in, got, want)
		}
	}
	f(nil, 0)
	f([]float64{3}, 3)
	f([]float64{9, 1, 5}, 5)
	f([]float64{4, 1, 3, 2}, 2.5)
	in := []float64{3, 1, 2}
	median(in)
	if !slices.Equal(in, []float64{3, 1, 2}) {
		t.Errorf("median reordered its input: %v", in)
	}
}

func TestLatencyRate(t *testing.T) {
	f := func(want, max, expect float64) {
		t.Helper()
		if got := latencyRate(want, max); got != expect {
			t.Errorf("latencyRate(%v, %v) = %v, want %v", want, max, got, expect)
		}
	}
	f(5000, 40000, 5000) // fast system: the workload's rate
	f(5000, 248, 120)    // slow system: half its max, two significant digits
	f(200, 9000, 200)
	f(200, 1.5, 1)
}

// A suite per system against two local servers (a fast one labelled as
// featured, a slow one as a peer), then the report: the files each phase
// writes, the tables, ratios and goals, and a chart that is valid SVG with
// one line per swept system.
func TestSuiteAndReport(t *testing.T) {
	_, fast := newArrivals(t, 0)
	_, slow := newArrivals(t, 2*time.Millisecond)
	dir := t.TempDir()
	for _, sys := range []struct{ label, addr string }{{"featured-http", fast}, {"feast", slow}} {
		s := suiteOptions{
			base: Options{Label: sys.label, Target: TargetTrivial, Addr: sys.addr, Connections: 2,
				Warmup: 50 * time.Millisecond, Duration: 200 * time.Millisecond, NoVerify: true, Workload: Workload{Unique: 10}},
			workloads:  []Workload{{Entities: 1, Features: 50}},
			reps:       3,
			rates:      map[string]float64{"1x50": 400},
			sweep:      map[string]bool{"1x50": true},
			sweepRates: []float64{100, 300, 3000},
			sweepDur:   200 * time.Millisecond,
			out:        dir,
		}
		if err := runSuite(context.Background(), s, io.Discard); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"featured-http__1x50__max__r1", "featured-http__1x50__latency__r3", "feast__1x50__max__r2",
		"featured-http__1x50__sweep__0000100", "feast__1x50__sweep__0000300"} {
		if _, err := os.Stat(filepath.Join(dir, name+".json")); err != nil {
			t.Errorf("suite wrote no %s.json: %v", name, err)
		}
	}
	// The slow peer (2 ms per request, 2 connections: under 1000 req/s)
	// cannot sustain 3000 req/s: its sweep stops there.
	if _, err := os.Stat(filepath.Join(dir, "feast__1x50__sweep__0003000.json")); err != nil {
		t.Errorf("the slow peer's sweep lacks its saturated point: %v", err)
	}

	out, chart := filepath.Join(dir, "report.md"), filepath.Join(dir, "chart.svg")
	meta := filepath.Join(dir, "meta.txt")
	if err := os.WriteFile(meta, []byte("go version go1.26.8\nfeast 0.67.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	notes := filepath.Join(dir, "notes.md")
	if err := os.WriteFile(notes, []byte("The decoder is cheap; the reads are not.\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var top strings.Builder
	top.WriteString("File: featured\nDuration: 5s, Total samples = 4s (80%)\nShowing nodes accounting for 3s, 75% of 4s total\n")
	top.WriteString("      flat  flat%   sum%        cum   cum%\n")
	for i := range 30 {
		top.WriteString("     0.10s  2.50%  2.50%      0.10s  2.50%  pkg.func" + strconv.Itoa(i) + "\n")
	}
	if err := os.WriteFile(filepath.Join(dir, "profile-http-1x50.top.txt"), []byte(top.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout bytes.Buffer
	if err := reportCmd([]string{"-dir", dir, "-out", out, "-chart", chart, "-meta", meta, "-notes", notes}, &stdout, io.Discard); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"## The issue's goals", "max throughput >= 10x Feast's, 1x50 (featured-http)",
		"## 1x50: 1 entity x 50 features (feature_service_0)", "| featured-http |", "| feast |",
		"Ratios, featured over peer", "![p99 latency against offered load, 1 entity x 50 features](chart.svg)",
		"## The load generator is not the bottleneck", "## How it was measured", "feast 0.67.0",
		"## Where featured's time goes", "The decoder is cheap", "CPU profile of featured, http-1x50", "pkg.func14\n",
	} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(string(md), "pkg.func15") {
		t.Errorf("report quotes more than %d profile rows", profileRows)
	}
	svg, err := os.ReadFile(chart)
	if err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(bytes.NewReader(svg))
	polylines := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("chart is not well-formed XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "polyline" {
			polylines++
		}
	}
	if polylines != 2 {
		t.Errorf("chart has %d lines, want 2 (one per swept system)", polylines)
	}
}
