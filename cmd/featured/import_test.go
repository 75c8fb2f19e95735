package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/featured-dev/featured/internal/kafkatest"
)

// feastPython returns the project venv's interpreter (scripts/python-env.sh),
// or $FEATURED_PYTHON. Without feast it skips, and fails under CI.
func feastPython(t *testing.T) string {
	t.Helper()
	p := os.Getenv("FEATURED_PYTHON")
	if p == "" {
		p, _ = filepath.Abs(filepath.Join("..", "..", ".cache", "venv", "bin", "python"))
	}
	if err := exec.Command(p, "-c", "import feast, pyarrow").Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no feast at %s (%v): run scripts/python-env.sh", p, err)
		}
		t.Skipf("no feast at %s (%v): run scripts/python-env.sh", p, err)
	}
	return p
}

// feastCmd runs Feast's CLI (python -m feast.cli.cli: the venv's bin/feast
// may name another checkout's interpreter) in the repo dir.
func feastCmd(py, dir string, args ...string) *exec.Cmd {
	cmd := exec.Command(py, append([]string{"-m", "feast.cli.cli"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "FEAST_USAGE=False", "PYTHONWARNINGS=ignore")
	return cmd
}

// driverRows are the driver_hourly_stats rows both stores get: Feast's by
// materializing them from the push source's parquet file, featured's
// through its push API into the imported push source. Driver 1001 has two
// rows, the later one is the answer; 1004's city is null; 1005's row is
// older than the view's TTL (1d).
func driverRows(now time.Time) []map[string]any {
	at := func(d time.Duration) string { return now.Add(-d).UTC().Format(time.RFC3339) }
	return []map[string]any{
		{"driver_id": 1001, "event_timestamp": at(3 * time.Hour), "conv_rate": 0.1, "acc_rate": 0.2, "avg_daily_trips": 3, "city": "Oslo"},
		{"driver_id": 1001, "event_timestamp": at(time.Hour), "conv_rate": 0.5, "acc_rate": 0.123456789, "avg_daily_trips": 12, "city": "Zürich"},
		{"driver_id": 1002, "event_timestamp": at(2 * time.Hour), "conv_rate": 0.25, "acc_rate": 1.0 / 3, "avg_daily_trips": 7, "city": "Lyon"},
		{"driver_id": 1003, "event_timestamp": at(30 * time.Minute), "conv_rate": 1e-7, "acc_rate": 12345.5, "avg_daily_trips": 0, "city": ""},
		{"driver_id": 1004, "event_timestamp": at(20 * time.Minute), "conv_rate": 0.75, "acc_rate": 0.5, "avg_daily_trips": 4, "city": nil},
		{"driver_id": 1005, "event_timestamp": at(50 * time.Hour), "conv_rate": 0.9, "acc_rate": 0.9, "avg_daily_trips": 9, "city": "Bergen"},
	}
}

// materializeScript writes the rows (argv[1], JSON) to the push source's
// parquet file and materializes driver_hourly_stats into the sqlite online
// store.
const materializeScript = `
import json, sys
from datetime import timedelta
import pandas as pd
from feast import FeatureStore
rows = json.loads(sys.argv[1])
df = pd.DataFrame(rows)
df["event_timestamp"] = pd.to_datetime(df["event_timestamp"], utc=True)
df["driver_id"] = df["driver_id"].astype("int64")
df["avg_daily_trips"] = df["avg_daily_trips"].astype("int64")
df.to_parquet("data/driver_stats.parquet")
store = FeatureStore(repo_path=".")
start = df["event_timestamp"].min() - timedelta(minutes=1)
end = df["event_timestamp"].max() + timedelta(minutes=1)
store.materialize(start_date=start.to_pydatetime(), end_date=end.to_pydatetime(), feature_views=["driver_hourly_stats"])
`

// TestImportFeast applies the Feast repo of testdata/feastrepo with the
// real `feast apply`, imports its registry with `featured import feast`,
// and has `featured plan` and `apply` take the document as is; the imported
// Kafka source and stream feature view aggregate Feast-shaped events. Then the
// side-by-side check: the same rows in Feast's sqlite online store
// (materialized) and in featured (pushed), the same /get-online-features
// requests to `feast serve` and to featured, the same response bodies but
// for the differences feastDifferences lists (README, Coming from Feast).
func TestImportFeast(t *testing.T) {
	py := feastPython(t)
	repo := t.TempDir()
	if err := os.CopyFS(repo, os.DirFS("testdata/feastrepo")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(repo, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	// The Kafka source reads a topic of this test's own.
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.CreateTopic(t, brokers, "driver_trips", 1)
	t.Cleanup(func() { kafkatest.DeleteTopic(t, brokers, topic+".dlq") })
	repoPy := filepath.Join(repo, "repo.py")
	src, err := os.ReadFile(repoPy)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(src, []byte(`topic="driver_trips",`)) {
		t.Fatal(`testdata/feastrepo/repo.py: no topic="driver_trips",`)
	}
	src = bytes.Replace(src, []byte(`topic="driver_trips",`), []byte(`topic="`+topic+`",`), 1)
	if err := os.WriteFile(repoPy, src, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := feastCmd(py, repo, "apply").CombinedOutput(); err != nil {
		t.Fatalf("feast apply: %v\n%s", err, out)
	}

	// The import, as a user runs it.
	defs := filepath.Join(t.TempDir(), "defs.yaml")
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"import", "feast", filepath.Join(repo, "data", "registry.db"), "-o", defs}, &stdout, &stderr); err != nil {
		t.Fatalf("import feast: %v\n%s", err, stderr.String())
	}
	doc, err := os.ReadFile(defs)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"on_demand_feature_view transformed_conv_rate: on-demand transforms",
		"feature_view driver_profile: its only source driver_profile_file is a batch source",
		`aggregation driver_trips:median_trip_km_3600s: function "median"`,
		"data_source val_to_add: request data",
	} {
		if !strings.Contains(stderr.String(), "not imported: "+want) {
			t.Errorf("stderr does not list %q:\n%s", want, stderr.String())
		}
		if !strings.Contains(string(doc), "#   "+want) {
			t.Errorf("the document does not list %q:\n%s", want, doc)
		}
	}
	if !strings.Contains(stderr.String(), "imported Feast project rides: 1 entities, 2 sources, 2 feature views, 2 feature services; 8 items not imported") {
		t.Errorf("summary line:\n%s", stderr.String())
	}
	for _, want := range []string{
		"  - {name: driver, join_key: driver_id, type: int64}",
		"  - name: driver_stats_push\n    kind: push\n",
		"    topic: \"" + topic + "\"\n",
		"fields: {acc_rate: float64, avg_daily_trips: int64, city: string, conv_rate: float64}",
		"{name: conv_rate, aggregation: last, field: conv_rate}",
		"{name: sum_trip_km_3600s, aggregation: sum, field: trip_km, window: 1h, hop: 1h}",
		"{name: count_trip_km_86400s, aggregation: count, field: trip_km, window: 1d, hop: 1h}",
		"{name: avg_trip_km_1h, aggregation: avg, field: trip_km, window: 1h, hop: 1h}",
		"{name: max_trip_km_604800s, aggregation: max, field: trip_km, window: 7d, hop: 1d}",
		"  - name: driver_model\n    features:\n      - driver_hourly_stats:conv_rate\n",
		"      - driver_trips:max_trip_km_604800s\n",
	} {
		if !strings.Contains(string(doc), want) {
			t.Errorf("the document lacks %q:\n%s", want, doc)
		}
	}

	// featured plan and apply take it as is.
	s := startServer(t, t.TempDir(), "--kafka-brokers", strings.Join(brokers, ","), "--partitions", "1") // the topic's count
	out, err := s.cli(t, "plan", "-f", defs)
	if err != nil {
		t.Fatalf("plan: %v\n%s", err, out)
	}
	for _, want := range []string{"driver_hourly_stats", "driver_trips", "driver_stats_push", "driver_trips_kafka", "driver_model"} {
		if !strings.Contains(out, want) {
			t.Errorf("plan does not mention %s:\n%s", want, out)
		}
	}
	if out, err := s.cli(t, "apply", "-f", defs); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}

	// The imported Kafka source and stream view ingest Feast-shaped JSON
	// events (the timestamp field as RFC 3339) and aggregate them as
	// windows: sum and mean over 1h, count over 1d, max over 7d.
	now := time.Now()
	trip := func(km float64, ago time.Duration) *kgo.Record {
		b, _ := json.Marshal(map[string]any{"driver_id": 1001, "trip_km": km, "event_timestamp": now.Add(-ago).UTC().Format(time.RFC3339)})
		return &kgo.Record{Key: []byte("1001"), Value: b}
	}
	kafkatest.Produce(t, brokers, topic, []*kgo.Record{trip(3.5, 10*time.Minute), trip(6.5, 40*time.Minute), trip(20, 3*time.Hour)})
	tripRefs := []string{"driver_trips:sum_trip_km_3600s", "driver_trips:count_trip_km_86400s", "driver_trips:avg_trip_km_1h", "driver_trips:max_trip_km_604800s"}
	wantTrips := []float64{10, 3, 5, 20}
	var got []float64
	var body []byte
	for deadline := time.Now().Add(30 * time.Second); !slices.Equal(got, wantTrips); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the stream view's aggregates: %s, want values %v after 30s\n%s", body, wantTrips, s.logs)
		}
		var code int
		code, body = s.post(t, "/v1/features", map[string]any{"features": tripRefs, "entities": map[string]any{"driver_id": []int{1001}}})
		var r struct{ Rows []struct{ Values []float64 } }
		if code == 200 && json.Unmarshal(body, &r) == nil && len(r.Rows) == 1 {
			got = r.Rows[0].Values
		}
	}

	// The same rows in both stores.
	rows := driverRows(now)
	rowsJSON, _ := json.Marshal(rows)
	mat := exec.Command(py, "-c", materializeScript, string(rowsJSON))
	mat.Dir = repo
	mat.Env = append(os.Environ(), "FEAST_USAGE=False", "PYTHONWARNINGS=ignore")
	if out, err := mat.CombinedOutput(); err != nil {
		t.Fatalf("feast materialize: %v\n%s", err, out)
	}
	if code, body := s.post(t, "/v1/push", map[string]any{"source": "driver_stats_push", "events": rows}); code != 200 {
		t.Fatalf("push: %d %s", code, body)
	}
	feast := startFeastServe(t, py, repo)

	// want is a piece of featured's body, so that two empty answers do
	// not pass for equal ones.
	want := map[string]string{
		"one entity":         `"values":["Zürich"],"statuses":["PRESENT"]`,
		"several rows":       `"values":[1e-7,0.5,0.25],"statuses":["PRESENT","PRESENT","PRESENT"]`,
		"missing entity":     `"statuses":["PRESENT","NOT_FOUND"]`,
		"null value":         `"values":[null],"statuses":["NULL_VALUE"]`,
		"older than ttl":     `"values":[null],"statuses":["NOT_FOUND"],"event_timestamps":["1970-01-01T00:00:00Z"]`,
		"full feature names": `"driver_hourly_stats__avg_daily_trips"`,
		"feature service":    `"values":[7,12]`,
	}
	requests := map[string]map[string]any{
		"one entity": {
			"features": []string{"driver_hourly_stats:conv_rate", "driver_hourly_stats:acc_rate", "driver_hourly_stats:avg_daily_trips", "driver_hourly_stats:city"},
			"entities": map[string]any{"driver_id": []int{1001}},
		},
		"several rows": {
			"features": []string{"driver_hourly_stats:city", "driver_hourly_stats:conv_rate"},
			"entities": map[string]any{"driver_id": []int{1003, 1001, 1002}},
		},
		"null value": {
			"features": []string{"driver_hourly_stats:city", "driver_hourly_stats:conv_rate"},
			"entities": map[string]any{"driver_id": []int{1004}},
		},
		"older than ttl": {
			"features": []string{"driver_hourly_stats:city", "driver_hourly_stats:conv_rate"},
			"entities": map[string]any{"driver_id": []int{1005}},
		},
		"missing entity": {
			"features": []string{"driver_hourly_stats:conv_rate", "driver_hourly_stats:city"},
			"entities": map[string]any{"driver_id": []int{1002, 9999}},
		},
		"full feature names": {
			"features":           []string{"driver_hourly_stats:acc_rate", "driver_hourly_stats:avg_daily_trips"},
			"entities":           map[string]any{"driver_id": []int{1001, 1003}},
			"full_feature_names": true,
		},
		"feature service": {
			"feature_service": "driver_activity",
			"entities":        map[string]any{"driver_id": []int{1002, 1001}},
		},
	}
	for name, req := range requests {
		t.Run(name, func(t *testing.T) {
			fcode, fbody := postJSON(t, feast+"/get-online-features", req)
			ocode, obody := postJSON(t, s.url+"/get-online-features", req)
			if fcode != 200 || ocode != 200 {
				t.Fatalf("status: feast %d %s, featured %d %s", fcode, fbody, ocode, obody)
			}
			if !strings.Contains(string(obody), want[name]) {
				t.Errorf("featured's body lacks %s: %s", want[name], obody)
			}
			var fv, ov any
			if err := json.Unmarshal(fbody, &fv); err != nil {
				t.Fatalf("feast's body %s: %v", fbody, err)
			}
			if err := json.Unmarshal(obody, &ov); err != nil {
				t.Fatalf("featured's body %s: %v", obody, err)
			}
			fv, ov = feastDifferences(t, fv, now.Add(-24*time.Hour)), feastDifferences(t, ov, now.Add(-24*time.Hour))
			if !reflect.DeepEqual(fv, ov) {
				t.Errorf("bodies differ\nfeast:    %s\nfeatured: %s", fbody, obody)
			}
		})
	}
}

// feastDifferences removes from a /get-online-features body what
// documentedly differs between Feast's feature server and featured, so
// that the rest compares field for field (README, Coming from Feast).
// expired is now minus driver_hourly_stats' TTL.
//
//  1. Column order. Feast groups a view's requested features in a Python
//     set (utils._group_feature_refs), so its columns come in an order that
//     changes from process to process; featured keeps the request's order.
//     The columns are compared by name: metadata.feature_names[i] names
//     results[i] in both.
//  2. Number text. Feast writes 1e-07 where featured writes 1e-7 (Python's
//     and Go's shortest float text); both parse to the same float64, and
//     the bodies are compared parsed.
//  3. A null value. Feast answers a null it materialized as PRESENT,
//     featured as NULL_VALUE; a null PRESENT becomes NULL_VALUE here.
//  4. The TTL. Feast's feature server (sqlite online store) serves what was
//     materialized however old; featured never serves a value older than
//     the view's TTL (NOT_FOUND, null, event time 0). A value older than
//     expired becomes that here.
func feastDifferences(t *testing.T, body any, expired time.Time) any {
	t.Helper()
	m, ok := body.(map[string]any)
	if !ok {
		t.Fatalf("body %v is not an object", body)
	}
	names, _ := m["metadata"].(map[string]any)["feature_names"].([]any)
	results, _ := m["results"].([]any)
	if len(names) != len(results) {
		t.Fatalf("%d feature names, %d result columns: %v", len(names), len(results), body)
	}
	byName := map[string]any{}
	for i, n := range names {
		col, _ := results[i].(map[string]any)
		values, _ := col["values"].([]any)
		statuses, _ := col["statuses"].([]any)
		stamps, _ := col["event_timestamps"].([]any)
		if len(values) != len(statuses) || len(values) != len(stamps) {
			t.Fatalf("column %v: %d values, %d statuses, %d event times", n, len(values), len(statuses), len(stamps))
		}
		if n != "driver_id" { // the entity key column has event time 0
			for r := range values {
				if ts, err := time.Parse(time.RFC3339, fmt.Sprint(stamps[r])); err == nil && ts.Before(expired) {
					values[r], statuses[r], stamps[r] = nil, "NOT_FOUND", "1970-01-01T00:00:00Z"
				}
				if values[r] == nil && statuses[r] == "PRESENT" {
					statuses[r] = "NULL_VALUE"
				}
			}
		}
		byName[fmt.Sprint(n)] = col
	}
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	out["results"] = byName
	meta := map[string]any{}
	for k, v := range m["metadata"].(map[string]any) {
		meta[k] = v
	}
	sorted := make([]string, 0, len(names))
	for n := range byName {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	meta["feature_names"] = sorted
	out["metadata"] = meta
	return out
}

func postJSON(t *testing.T, url string, body any) (int, []byte) {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

// startFeastServe runs `feast serve` (HTTP, sqlite online store) on a free
// loopback port until the test ends, and returns its URL once /health
// answers.
func startFeastServe(t *testing.T, py, repo string) string {
	t.Helper()
	addr := freePort(t)
	host, port, _ := strings.Cut(addr, ":")
	cmd := feastCmd(py, repo, "serve", "-h", host, "-p", port, "--no-access-log", "-w", "1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // gunicorn forks workers: kill the group
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	})
	url := "http://" + addr
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get(url + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return url
			}
		}
		select {
		case <-done:
			t.Fatalf("feast serve exited:\n%s", logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("feast serve not ready after 90s:\n%s", logs)
		}
	}
}
