package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// The report: result files of the suites in, docs/benchmarks-compare.md
// and its chart out. Every number quoted is the median over repetitions
// (each quantile separately); ratios are of medians. Systems are named by
// their result label; labels starting with "featured" are featured, the
// others its peers; "generator-baseline" is the trivial server.

// labelOrder orders the systems in tables; other labels follow by name.
var labelOrder = []string{
	"featured-grpc", "featured-http", "featured-native", "featured-window-grpc", "featured-window-http",
	"feast", "redis-hmget", "redis-hgetall",
}

const baselineLabel = "generator-baseline"

func reportCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "directory of result files (*.json)")
	out := fs.String("out", "docs/benchmarks-compare.md", "the Markdown report")
	chart := fs.String("chart", "docs/benchmarks-compare.svg", "the latency-vs-load chart (SVG)")
	meta := fs.String("meta", "", "a text file quoted under 'How it was measured' (versions, commands)")
	notes := fs.String("notes", "", "a Markdown file inserted under 'Where featured's time goes' (optional)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("report: -dir: missing")
	}
	results, err := readResults(*dir)
	if err != nil {
		return err
	}
	var metaText string
	if *meta != "" {
		b, err := os.ReadFile(*meta)
		if err != nil {
			return err
		}
		metaText = string(b)
	}
	var notesText string
	if *notes != "" {
		b, err := os.ReadFile(*notes)
		if err != nil {
			return err
		}
		notesText = string(b)
	}
	profiles, err := readProfiles(*dir)
	if err != nil {
		return err
	}
	rel, err := filepath.Rel(filepath.Dir(*out), *chart)
	if err != nil {
		rel = *chart
	}
	r := newReport(results)
	svg := r.chart("1x50")
	if err := os.WriteFile(*chart, []byte(svg), 0o644); err != nil {
		return err
	}
	md := r.markdown(filepath.ToSlash(rel), metaText, notesText, profiles)
	if err := os.WriteFile(*out, []byte(md), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s and %s from %d results\n", *out, *chart, len(results))
	return nil
}

func readResults(dir string) ([]*Result, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("report: no result files in %s", dir)
	}
	sort.Strings(paths)
	out := make([]*Result, 0, len(paths))
	for _, p := range paths {
		r, err := ReadResult(p)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// report indexes results by (label, workload, phase).
type report struct {
	all       []*Result
	labels    []string
	workloads []string
	by        map[[3]string][]*Result
}

func newReport(results []*Result) *report {
	r := &report{all: results, by: map[[3]string][]*Result{}}
	seenL, seenW := map[string]bool{}, map[string]bool{}
	for _, res := range results {
		k := [3]string{res.Label, res.Workload.Name, res.Phase}
		r.by[k] = append(r.by[k], res)
		if !seenL[res.Label] {
			seenL[res.Label] = true
			r.labels = append(r.labels, res.Label)
		}
		if res.Target != TargetPush && res.Label != baselineLabel && !seenW[res.Workload.Name] {
			seenW[res.Workload.Name] = true
			r.workloads = append(r.workloads, res.Workload.Name)
		}
	}
	rank := func(l string) int {
		if i := slices.Index(labelOrder, l); i >= 0 {
			return i
		}
		return len(labelOrder)
	}
	sort.SliceStable(r.labels, func(i, j int) bool {
		if ri, rj := rank(r.labels[i]), rank(r.labels[j]); ri != rj {
			return ri < rj
		}
		return r.labels[i] < r.labels[j]
	})
	sort.SliceStable(r.workloads, func(i, j int) bool {
		ei, fi := splitWorkload(r.workloads[i])
		ej, fj := splitWorkload(r.workloads[j])
		if fi != fj {
			return fi < fj
		}
		return ei < ej
	})
	return r
}

func splitWorkload(name string) (entities, features int) {
	fmt.Sscanf(name, "%dx%d", &entities, &features)
	return
}

func isFeatured(label string) bool { return strings.HasPrefix(label, "featured") }

// stat is the medians of one (label, workload, phase) group.
type stat struct {
	n                     int
	rps, rate             float64
	p50, p90, p99, p999   float64 // µs
	max                   float64 // µs
	errors, unsent        int64
	clientCores, clientUS float64
	serverCores, serverUS float64
	lagP99, pacerP99      float64
	events                float64
}

func (r *report) stat(label, workload, phase string) (stat, bool) {
	rs := r.by[[3]string{label, workload, phase}]
	if len(rs) == 0 {
		return stat{}, false
	}
	med := func(f func(*Result) float64) float64 {
		v := make([]float64, len(rs))
		for i, x := range rs {
			v[i] = f(x)
		}
		return median(v)
	}
	s := stat{
		n:           len(rs),
		rps:         med(func(x *Result) float64 { return x.ThroughputRPS }),
		rate:        med(func(x *Result) float64 { return x.OfferedRPS }),
		p50:         med(func(x *Result) float64 { return x.Latency.P50 }),
		p90:         med(func(x *Result) float64 { return x.Latency.P90 }),
		p99:         med(func(x *Result) float64 { return x.Latency.P99 }),
		p999:        med(func(x *Result) float64 { return x.Latency.P999 }),
		max:         med(func(x *Result) float64 { return x.Latency.Max }),
		clientCores: med(func(x *Result) float64 { return x.ClientCPU.Cores }),
		clientUS:    med(func(x *Result) float64 { return x.ClientCPU.USPerRequest }),
		events:      med(func(x *Result) float64 { return x.EventsPerS }),
	}
	s.serverCores = med(func(x *Result) float64 {
		if x.ServerCPU == nil {
			return 0
		}
		return x.ServerCPU.Cores
	})
	s.serverUS = med(func(x *Result) float64 {
		if x.ServerCPU == nil {
			return 0
		}
		return x.ServerCPU.USPerRequest
	})
	s.lagP99 = med(func(x *Result) float64 {
		if x.SendLag == nil {
			return 0
		}
		return x.SendLag.P99
	})
	s.pacerP99 = med(func(x *Result) float64 {
		if x.PacerLag == nil {
			return 0
		}
		return x.PacerLag.P99
	})
	for _, x := range rs {
		s.errors += x.Errors
		s.unsent += x.Unsent
	}
	return s, true
}

// median of v (the mean of the two middle values for an even count).
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func fmtMS(us float64) string {
	ms := us / 1e3
	switch {
	case ms == 0:
		return "–"
	case ms < 1:
		return fmt.Sprintf("%.3f", ms)
	case ms < 100:
		return fmt.Sprintf("%.2f", ms)
	}
	return fmt.Sprintf("%.0f", ms)
}

func fmtInt(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func fmtRatio(v float64) string {
	switch {
	case v == 0:
		return "–"
	case v >= 10:
		return fmt.Sprintf("%.0fx", v)
	}
	return fmt.Sprintf("%.2fx", v)
}

// profile is the top of one `go tool pprof -top` listing written by
// bench-compare.sh (profile-<name>.top.txt).
type profile struct {
	name string
	top  string
}

// profileRows is how many functions of each profile the report quotes.
const profileRows = 15

func readProfiles(dir string) ([]profile, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "profile-*.top.txt"))
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	var out []profile
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		name := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(p), "profile-"), ".top.txt")
		out = append(out, profile{name: name, top: topRows(string(b), profileRows)})
	}
	return out, nil
}

// topRows keeps the summary lines and the first n function rows of a
// pprof -top listing.
func topRows(listing string, n int) string {
	var keep []string
	rows := -1
	for _, l := range strings.Split(listing, "\n") {
		switch {
		case strings.HasPrefix(l, "Duration:"), strings.HasPrefix(l, "Showing nodes"):
			keep = append(keep, l)
		case strings.Contains(l, "flat%"):
			keep = append(keep, l)
			rows = 0
		case rows >= 0 && rows < n && strings.TrimSpace(l) != "":
			keep = append(keep, l)
			rows++
		}
	}
	return strings.Join(keep, "\n")
}

func (r *report) markdown(chartLink, meta, notes string, profiles []profile) string {
	var b strings.Builder
	b.WriteString("# featured vs Feast vs Redis, side by side\n\n")
	b.WriteString("Written by `make bench-compare` (`scripts/bench-compare.sh`, `go run ./loadtest report`); do not edit by hand.\n")
	b.WriteString("Every system ran on the same 2-core machine, one at a time, driven by the same load generator\n")
	b.WriteString("(`loadtest/`) with the same settings and the same pre-built requests: the feast-benchmarks workload\n")
	b.WriteString("(10k int64 entities, 25 views of 10 int64 features, feature services of 50..250 features, Feast's\n")
	b.WriteString("`/get-online-features` body). Every value served was checked against the generator's formula before\n")
	b.WriteString("each system was measured. Numbers are medians of the repetitions; read the ratios, not the absolute\n")
	b.WriteString("times: the machine is shared, and the generator shares its 2 cores.\n\n")
	b.WriteString("- **max req/s**: closed loop, each connection sends when its last answer arrives.\n")
	b.WriteString("- **p50/p99/p99.9/max**: open loop at the stated rate, latency counted from each request's scheduled\n")
	b.WriteString("  send time (no coordinated omission). A system too slow for the workload's rate is measured at half\n")
	b.WriteString("  its own max instead, and the row says so: its latencies are then not comparable with the others'.\n")
	b.WriteString("- **server CPU µs/req**: CPU time of the server's processes over the closed-loop run, per request.\n\n")

	r.goals(&b)
	for _, w := range r.workloads {
		r.workloadSection(&b, w)
	}
	if chartLink != "" {
		fmt.Fprintf(&b, "## Latency against offered load (1x50)\n\n![p99 latency against offered load, 1 entity x 50 features](%s)\n\n", chartLink)
		b.WriteString("p99 in ms (log scale) at each offered rate, open loop, one 2 s run per point; each line stops at the\n")
		b.WriteString("first rate its system could not sustain (under 90% answered, or requests left unsent).\n\n")
	}
	r.ingestSection(&b)
	if notes != "" || len(profiles) > 0 {
		b.WriteString("## Where featured's time goes\n\n")
		if notes != "" {
			b.WriteString(strings.TrimRight(notes, "\n"))
			b.WriteString("\n\n")
		}
		for _, p := range profiles {
			fmt.Fprintf(&b, "<details><summary>CPU profile of featured, %s, closed loop (top %d functions by own time)</summary>\n\n```\n%s\n```\n\n</details>\n\n",
				p.name, profileRows, p.top)
		}
	}
	r.generatorSection(&b)
	if meta != "" {
		b.WriteString("## How it was measured\n\n```\n")
		b.WriteString(strings.TrimRight(meta, "\n"))
		b.WriteString("\n```\n")
	}
	return b.String()
}

func (r *report) goals(b *strings.Builder) {
	b.WriteString("## The issue's goals\n\n| goal | measured | met |\n| --- | --- | --- |\n")
	yes := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "**no**"
	}
	for _, l := range []string{"featured-http", "featured-grpc"} {
		s, ok := r.stat(l, "1x50", "latency")
		if !ok {
			continue
		}
		fmt.Fprintf(b, "| 1x50 p99 < 1 ms at 5k req/s (%s) | p99 %s ms at %s req/s | %s |\n",
			l, fmtMS(s.p99), fmtInt(s.rate), yes(s.p99 < 1000 && s.rate >= 5000 && s.unsent == 0))
	}
	feast, okF := r.stat("feast", "1x50", "max")
	redis, okR := r.stat("redis-hmget", "1x50", "max")
	for _, l := range []string{"featured-http", "featured-grpc"} {
		s, ok := r.stat(l, "1x50", "max")
		if !ok {
			continue
		}
		if okF && feast.rps > 0 {
			ratio := s.rps / feast.rps
			fmt.Fprintf(b, "| max throughput >= 10x Feast's, 1x50 (%s) | %s vs %s req/s = %s | %s |\n",
				l, fmtInt(s.rps), fmtInt(feast.rps), fmtRatio(ratio), yes(ratio >= 10))
		}
		if okR && redis.rps > 0 {
			ratio := s.rps / redis.rps
			fmt.Fprintf(b, "| max throughput >= 70%% of raw Redis HMGET's, 1x50 (%s) | %s vs %s req/s = %.0f%% | %s |\n",
				l, fmtInt(s.rps), fmtInt(redis.rps), 100*ratio, yes(ratio >= 0.7))
		}
	}
	for _, l := range []string{"featured-http", "featured-grpc"} {
		s, ok := r.stat(l, "100x50", "latency")
		if !ok {
			continue
		}
		fmt.Fprintf(b, "| 100x50 p99 < 5 ms (%s) | p99 %s ms at %s req/s | %s |\n",
			l, fmtMS(s.p99), fmtInt(s.rate), yes(s.p99 < 5000 && s.unsent == 0))
	}
	b.WriteString("\n")
}

func (r *report) workloadSection(b *strings.Builder, w string) {
	e, f := splitWorkload(w)
	fmt.Fprintf(b, "## %s: %d entit%s x %d features (%s)\n\n", w, e, map[bool]string{true: "y", false: "ies"}[e == 1], f, ServiceName(f))
	b.WriteString("| system | max req/s | server CPU µs/req | latency at req/s | p50 ms | p99 ms | p99.9 ms | max ms | errors |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	rateOf := map[string]float64{}
	want := 0.0
	for _, l := range r.labels {
		mx, okM := r.stat(l, w, "max")
		lat, okL := r.stat(l, w, "latency")
		if !okM && !okL {
			continue
		}
		rate := fmtInt(lat.rate)
		rateOf[l] = lat.rate
		want = max(want, lat.rate)
		row := fmt.Sprintf("| %s | %s | %s | %s | %s | %s | %s | %s | %d |\n", l, fmtInt(mx.rps), fmtUS(mx.serverUS), rate,
			fmtMS(lat.p50), fmtMS(lat.p99), fmtMS(lat.p999), fmtMS(lat.max), mx.errors+lat.errors+lat.unsent)
		b.WriteString(row)
	}
	b.WriteString("\n")
	var slower []string
	for _, l := range r.labels {
		if rt, ok := rateOf[l]; ok && rt < want {
			slower = append(slower, fmt.Sprintf("%s at %s req/s", l, fmtInt(rt)))
		}
	}
	if len(slower) > 0 {
		fmt.Fprintf(b, "Latency measured at a lower rate than the others' %s req/s (half the system's max): %s.\n\n",
			fmtInt(want), strings.Join(slower, ", "))
	}
	// Ratios: featured over each peer.
	var feat, peers []string
	for _, l := range r.labels {
		if _, ok := r.stat(l, w, "max"); !ok {
			continue
		}
		if isFeatured(l) {
			feat = append(feat, l)
		} else if l != baselineLabel {
			peers = append(peers, l)
		}
	}
	if len(feat) == 0 || len(peers) == 0 {
		return
	}
	b.WriteString("Ratios, featured over peer: max throughput (higher is better) / p99 latency, peer's over featured's (higher is better; only where both ran at the same rate).\n\n| featured | ")
	b.WriteString(strings.Join(peers, " | "))
	b.WriteString(" |\n| --- |")
	b.WriteString(strings.Repeat(" ---: |", len(peers)))
	b.WriteString("\n")
	for _, fl := range feat {
		fm, _ := r.stat(fl, w, "max")
		flat, okFL := r.stat(fl, w, "latency")
		fmt.Fprintf(b, "| %s |", fl)
		for _, p := range peers {
			pm, _ := r.stat(p, w, "max")
			plat, okPL := r.stat(p, w, "latency")
			cell := "–"
			if pm.rps > 0 {
				cell = fmtRatio(fm.rps / pm.rps)
			}
			if okFL && okPL && flat.rate == plat.rate && flat.p99 > 0 {
				cell += " / " + fmtRatio(plat.p99/flat.p99)
			}
			fmt.Fprintf(b, " %s |", cell)
		}
		b.WriteString("\n")
	}
	b.WriteString("\n")
}

func fmtUS(v float64) string {
	if v == 0 {
		return "–"
	}
	if v < 100 {
		return fmt.Sprintf("%.1f", v)
	}
	return fmtInt(v)
}

func (r *report) ingestSection(b *strings.Builder) {
	var rows []string
	for _, l := range r.labels {
		for _, res := range r.all {
			if res.Label != l || res.Target != TargetPush || res.Rep != 1 {
				continue
			}
			s, _ := r.stat(l, res.Workload.Name, "max")
			rows = append(rows, fmt.Sprintf("| %s | %d | %d | %s | %s | %s | %s | %s | %d |\n", l, res.Workload.PushEvents, res.Connections,
				fmtInt(s.events), fmtInt(s.rps), fmtMS(s.p50), fmtMS(s.p99), fmtUS(s.serverUS/float64(max(res.Workload.PushEvents, 1))), s.errors))
		}
	}
	if len(rows) == 0 {
		return
	}
	b.WriteString("## Ingest: push into a view with three windows\n\n")
	b.WriteString("`POST /v1/push` of pre-built bodies (random entities, event times within the last minute) into `" + IngestView + "`:\n")
	b.WriteString("count over 1h (1m hop), sum over 24h, max over 7d (1h hop). Closed loop; each push is durable (synced) when answered.\n\n")
	b.WriteString("| system | events/push | conns | events/s | pushes/s | push p50 ms | push p99 ms | server CPU µs/event | errors |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, row := range rows {
		b.WriteString(row)
	}
	b.WriteString("\n")
}

func (r *report) generatorSection(b *strings.Builder) {
	b.WriteString("## The load generator is not the bottleneck\n\n")
	if s, ok := r.stat(baselineLabel, "1x50", "max"); ok {
		fmt.Fprintf(b, "Against a trivial HTTP server that answers a fixed 1x50 Feast response (`loadtest trivial`), the generator\n"+
			"drove %s req/s closed loop using %.2f cores (%.1f µs of CPU per request), while the trivial server used %.2f.\n",
			fmtInt(s.rps), s.clientCores, s.clientUS, s.serverCores)
		if lat, ok := r.stat(baselineLabel, "1x50", "latency"); ok {
			fmt.Fprintf(b, "Open loop at %s req/s against it: p50 %s ms, p99 %s ms; requests left the generator late by p99 %s ms\n"+
				"(pacer lateness alone: p99 %s ms).\n",
				fmtInt(lat.rate), fmtMS(lat.p50), fmtMS(lat.p99), fmtMS(lat.lagP99), fmtMS(lat.pacerP99))
		}
		b.WriteString("\n")
	}
	b.WriteString("In the measured runs (1x50, medians): the generator's and the server's CPU in the closed loop; in the open loop,\n")
	b.WriteString("how late requests were sent (send lag: the pacer's lateness plus waiting for a free connection while all\n")
	b.WriteString("are busy with slower answers, which is the server's queueing) and the pacer's lateness alone:\n\n")
	b.WriteString("| system | req/s | generator cores | generator µs/req | server cores | server µs/req | send lag p99 ms | pacer lag p99 ms |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, l := range r.labels {
		if l == baselineLabel {
			continue
		}
		s, ok := r.stat(l, "1x50", "max")
		if !ok {
			continue
		}
		lat, _ := r.stat(l, "1x50", "latency")
		fmt.Fprintf(b, "| %s | %s | %.2f | %.1f | %.2f | %s | %s | %s |\n", l, fmtInt(s.rps), s.clientCores, s.clientUS, s.serverCores,
			fmtUS(s.serverUS), fmtMS(lat.lagP99), fmtMS(lat.pacerP99))
	}
	b.WriteString("\n")
}
