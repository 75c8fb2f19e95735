package serving_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/featured-dev/featured/serving"
)

// compoundDefs has a view keyed by (driver, customer) and a view of the
// driver alone, as a Feast repo with a two-entity FeatureView has them.
const compoundDefs = `
entities:
  - {name: driver, join_key: driver_id, type: int64}
  - {name: customer, join_key: customer_id, type: string}
sources:
  - {name: trips, kind: push, entity_key: [driver_id, customer_id], event_time: ts, fields: {fare: float64}}
  - {name: rides, kind: push, entity_key: driver_id, event_time: ts, fields: {fare: float64}}
feature_views:
  - name: driver_customer_trips
    entities: [driver, customer]
    source: trips
    ttl: 8d
    features:
      - {name: fare_sum, aggregation: sum, field: fare}
      - {name: trips, aggregation: count}
  - name: driver_stats
    entity: driver
    source: rides
    ttl: 8d
    features:
      - {name: rides, aggregation: count}
`

// feastCompoundRepo is the Feast repo of compoundDefs: a FeatureView with
// two entities.
const feastCompoundRepo = `
from datetime import timedelta
from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64
src = FileSource(name="events", path="data/events.parquet", timestamp_field="ts")
driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.STRING)
driver_customer_trips = FeatureView(name="driver_customer_trips", entities=[driver, customer], ttl=timedelta(days=8),
    schema=[Field(name="fare_sum", dtype=Float64), Field(name="trips", dtype=Int64)], source=src)
driver_stats = FeatureView(name="driver_stats", entities=[driver], ttl=timedelta(days=8),
    schema=[Field(name="rides", dtype=Int64)], source=src)
`

// feastCompoundScript reads the two-entity view alone and mixed with the
// driver-only one, printing values and their Python types.
const feastCompoundScript = `
import json, sys, warnings
warnings.filterwarnings("ignore")
from feast import FeatureStore
s = FeatureStore(repo_path=sys.argv[1])
rows = [{"driver_id": 1, "customer_id": "a"}, {"driver_id": 1, "customer_id": "b"}, {"driver_id": 2, "customer_id": "a"}]
out = {}
def run(name, f):
    try:
        d = f()
        out[name] = {"ok": d, "types": {k: [type(v).__name__ for v in vs] for k, vs in d.items()}}
    except Exception as e:
        out[name] = {"error": type(e).__name__, "message": str(e)}
run("compound", lambda: s.get_online_features(features=["driver_customer_trips:fare_sum", "driver_customer_trips:trips"],
    entity_rows=rows).to_dict())
run("mixed", lambda: s.get_online_features(features=["driver_customer_trips:trips", "driver_stats:rides"],
    entity_rows=rows, full_feature_names=True).to_dict())
print(json.dumps(out))
`

// TestFeastSDKCompound: the real Feast SDK reads a FeatureView of two
// entities (driver + customer) from featured through online_store: remote,
// alone and in one request with a driver-only view: values, Python types and
// the rows no event has.
func TestFeastSDKCompound(t *testing.T) {
	py := feastPython(t)
	h := newHarness(t, serving.Options{})
	h.apply(compoundDefs)
	ts := nowMillis - hour
	for source, events := range map[string][]map[string]any{
		"trips": {
			{"driver_id": 1, "customer_id": "a", "ts": ts, "fare": 10.5},
			{"driver_id": 1, "customer_id": "a", "ts": ts + 1, "fare": 2.25},
			{"driver_id": 1, "customer_id": "b", "ts": ts, "fare": 7},
		},
		"rides": {{"driver_id": 1, "ts": ts, "fare": 1}, {"driver_id": 2, "ts": ts, "fare": 1}, {"driver_id": 2, "ts": ts, "fare": 1}},
	} {
		if code, body := h.post("/v1/push", map[string]any{"source": source, "events": events}); code != 200 || !strings.Contains(string(body), fmt.Sprintf(`"accepted":%d`, len(events))) {
			t.Fatalf("push %s: %d %s", source, code, body)
		}
	}
	dir := t.TempDir()
	yaml := "project: featured_test\nregistry: data/registry.db\nprovider: local\n" +
		"online_store:\n  type: remote\n  path: " + h.url + "\nentity_key_serialization_version: 3\n"
	for name, body := range map[string]string{"feature_store.yaml": yaml, "repo.py": feastCompoundRepo} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	apply := exec.Command(filepath.Join(filepath.Dir(py), "feast"), "apply")
	apply.Dir = dir
	if out, err := apply.CombinedOutput(); err != nil {
		t.Fatalf("feast apply: %v\n%s", err, out)
	}
	out, err := exec.Command(py, "-c", feastCompoundScript, dir).Output()
	if err != nil {
		t.Fatalf("feast script: %v\n%s", err, out)
	}
	var got map[string]struct {
		OK      map[string][]any    `json:"ok"`
		Types   map[string][]string `json:"types"`
		Error   string              `json:"error"`
		Message string              `json:"message"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	check := func(call, col string, values []any, types []string) {
		t.Helper()
		r := got[call]
		g, gt := r.OK[col], r.Types[col]
		if len(g) != len(values) || len(gt) != len(types) {
			t.Errorf("%s %s: %v (%v), want %v (%v); %s %s", call, col, g, gt, values, types, r.Error, r.Message)
			return
		}
		for i := range values {
			if g[i] != values[i] || gt[i] != types[i] {
				t.Errorf("%s %s[%d]: %v (%s), want %v (%s)", call, col, i, g[i], gt[i], values[i], types[i])
			}
		}
	}
	check("compound", "driver_id", []any{1.0, 1.0, 2.0}, []string{"int", "int", "int"})
	check("compound", "customer_id", []any{"a", "b", "a"}, []string{"str", "str", "str"})
	check("compound", "fare_sum", []any{12.75, 7.0, nil}, []string{"float", "float", "NoneType"})
	check("compound", "trips", []any{2.0, 1.0, nil}, []string{"int", "int", "NoneType"})
	check("mixed", "driver_customer_trips__trips", []any{2.0, 1.0, nil}, []string{"int", "int", "NoneType"})
	check("mixed", "driver_stats__rides", []any{1.0, 1.0, 2.0}, []string{"int", "int", "int"})
}
