package main

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// dashboardPath is the Grafana dashboard the Helm chart ships.
const dashboardPath = "../../helm/featured/dashboards/featured.json"

// dashboardExprs returns the PromQL of every panel target of the dashboard
// at path, rows' nested panels included, keyed "panel title/refId".
func dashboardExprs(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		Title   string `json:"title"`
		Targets []struct {
			RefID string `json:"refId"`
			Expr  string `json:"expr"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"`
	}
	var d struct {
		Panels []json.RawMessage `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	out := map[string]string{}
	var walk func([]json.RawMessage)
	walk = func(ps []json.RawMessage) {
		for _, raw := range ps {
			var p panel
			if err := json.Unmarshal(raw, &p); err != nil {
				t.Fatalf("%s: panel: %v", path, err)
			}
			for _, tg := range p.Targets {
				out[p.Title+"/"+tg.RefID] = tg.Expr
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

var (
	promString   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	promRange    = regexp.MustCompile(`\[[^\]]*\]`)
	promGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)`)
	promSelector = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?(\s*\()?`)
	promMatcher  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
)

// promKeywords are the words of PromQL that look like metric names.
var promKeywords = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true}

// promRefs parses what the dashboard's PromQL reads: the metric names, the
// label names each selector matches on, and the labels of by/without/on
// clauses. It knows the subset of PromQL the dashboard uses (selectors,
// functions, aggregations, arithmetic), which is all this check needs.
func promRefs(expr string) (metrics map[string][]string, grouping []string) {
	metrics = map[string][]string{}
	// Label values and ranges hold no names; grouping clauses hold labels.
	e := promString.ReplaceAllString(expr, `""`)
	e = promRange.ReplaceAllString(e, "")
	for _, m := range promGrouping.FindAllStringSubmatch(e, -1) {
		for _, l := range strings.Split(m[1], ",") {
			if l = strings.TrimSpace(l); l != "" {
				grouping = append(grouping, l)
			}
		}
	}
	e = promGrouping.ReplaceAllString(e, "")
	for _, m := range promSelector.FindAllStringSubmatch(e, -1) {
		name, matchers, call := m[1], m[2], m[3]
		if call != "" || promKeywords[name] || (name[0] >= '0' && name[0] <= '9') {
			continue // a function or aggregation, a keyword
		}
		labels := metrics[name]
		for _, lm := range promMatcher.FindAllStringSubmatch(matchers, -1) {
			labels = append(labels, lm[1])
		}
		metrics[name] = labels
	}
	return metrics, grouping
}

func TestPromRefs(t *testing.T) {
	f := func(expr string, wantMetrics map[string][]string, wantGrouping []string) {
		t.Helper()
		m, g := promRefs(expr)
		if len(m) != len(wantMetrics) || !slices.Equal(g, wantGrouping) {
			t.Fatalf("promRefs(%q) = %v, %v; want %v, %v", expr, m, g, wantMetrics, wantGrouping)
		}
		for k, v := range wantMetrics {
			if !slices.Equal(m[k], v) {
				t.Fatalf("promRefs(%q)[%s] = %v, want %v", expr, k, m[k], v)
			}
		}
	}
	f(`histogram_quantile(0.99, sum by (le, http_route) (rate(http_server_request_duration_seconds_bucket[$__rate_interval])))`,
		map[string][]string{"http_server_request_duration_seconds_bucket": nil}, []string{"le", "http_route"})
	f(`sum(rate(a_total{code=~"5..", x="y{z}"}[5m])) / sum(rate(a_total[5m])) and on(job) b`,
		map[string][]string{"a_total": {"code", "x"}, "b": nil}, []string{"job"})
	f(`featured_store_queue_depth`, map[string][]string{"featured_store_queue_depth": nil}, nil)
}

// checkDashboard fails for every dashboard query that reads a metric the
// scrape lacks, matches on a label none of its series has, or groups by a
// label none of the query's metrics has: the dashboard cannot drift from
// the metrics.
func checkDashboard(t *testing.T, samples map[string]float64) {
	t.Helper()
	labels := map[string]map[string]bool{} // metric -> its label names
	for k := range samples {
		name, rest, _ := strings.Cut(k, "{")
		if labels[name] == nil {
			labels[name] = map[string]bool{}
		}
		for _, m := range promMatcher.FindAllStringSubmatch(promString.ReplaceAllString(rest, `""`), -1) {
			labels[name][m[1]] = true
		}
	}
	exprs := dashboardExprs(t, dashboardPath)
	if len(exprs) < 20 {
		t.Fatalf("%s: %d queries; want the dashboard's panels", dashboardPath, len(exprs))
	}
	for where, expr := range exprs {
		metrics, grouping := promRefs(expr)
		if len(metrics) == 0 {
			t.Errorf("%s: %q reads no metric", where, expr)
		}
		known := map[string]bool{"le": true}
		for name, matchers := range metrics {
			have, ok := labels[name]
			if !ok {
				t.Errorf("%s: %s is not in /metrics (%q)", where, name, expr)
				continue
			}
			for l := range have {
				known[l] = true
			}
			for _, l := range matchers {
				if !have[l] {
					t.Errorf("%s: %s has no label %s (%q)", where, name, l, expr)
				}
			}
		}
		for _, l := range grouping {
			if !known[l] {
				t.Errorf("%s: grouped by %s, which none of %v has (%q)", where, l, metrics, expr)
			}
		}
	}
}
