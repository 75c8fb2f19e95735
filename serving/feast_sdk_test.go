package serving_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/featured-dev/featured/serving"
)

// feastPython returns the interpreter of the project's venv
// (scripts/python-env.sh) or $FEATURED_PYTHON, with the Feast SDK. Missing,
// the test fails under CI and skips elsewhere.
func feastPython(t *testing.T) string {
	t.Helper()
	p := os.Getenv("FEATURED_PYTHON")
	if p == "" {
		p, _ = filepath.Abs(filepath.Join("..", ".cache", "venv", "bin", "python"))
	}
	if err := exec.Command(p, "-c", "import feast").Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no feast at %s (%v): run scripts/python-env.sh", p, err)
		}
		t.Skipf("no feast at %s (%v): run scripts/python-env.sh", p, err)
	}
	return p
}

// feastRepo is a Feast repo whose views match the harness's definitions:
// the SDK resolves features against its registry (made by feast apply) and
// reads them from featured as its remote online store.
const feastRepo = `
from datetime import timedelta
from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64
src = FileSource(name="events", path="data/events.parquet", timestamp_field="ts")
user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.STRING)
merchant = Entity(name="merchant", join_keys=["merchant_id"], value_type=ValueType.INT64)
user_spend = FeatureView(name="user_spend", entities=[user], ttl=timedelta(days=8),
    schema=[Field(name="spend_7d", dtype=Float64)], source=src)
merchant_stats = FeatureView(name="merchant_stats", entities=[merchant], ttl=timedelta(days=8),
    schema=[Field(name="volume_1d", dtype=Float64)], source=src)
`

// feastScript runs the SDK's calls, one per gap of issue 13, and prints
// what each returned or raised.
const feastScript = `
import json, sys, warnings
warnings.filterwarnings("ignore")
from feast import FeatureStore
s = FeatureStore(repo_path=sys.argv[1])
out = {}
def run(name, f):
    try:
        out[name] = {"ok": f()}
    except Exception as e:
        out[name] = {"error": type(e).__name__, "message": str(e)}
run("two_entities", lambda: s.get_online_features(features=["user_spend:spend_7d", "merchant_stats:volume_1d"],
    entity_rows=[{"user_id": "u1", "merchant_id": 42}, {"user_id": "u9", "merchant_id": 7}]).to_dict())
run("latest", lambda: s.get_online_features(features=["merchant_stats@latest:volume_1d"], entity_rows=[{"merchant_id": 42}]).to_dict())
run("unknown_view", lambda: s.get_online_features(features=["nope:x"], entity_rows=[{"merchant_id": 42}]).to_dict())
print(json.dumps(out))
`

// TestFeastSDK drives the real Feast SDK (feature_store.yaml with
// online_store: {type: remote}) against featured.
func TestFeastSDK(t *testing.T) {
	py := feastPython(t)
	h := newHarness(t, serving.Options{})
	seed(h)
	dir := feastApply(t, py, h.url, feastRepo)
	out, err := exec.Command(py, "-c", feastScript, dir).Output()
	if err != nil {
		t.Fatalf("feast script: %v\n%s", err, out)
	}
	var got map[string]struct {
		OK      map[string][]any `json:"ok"`
		Error   string           `json:"error"`
		Message string           `json:"message"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	two := got["two_entities"].OK
	if len(two["spend_7d"]) != 2 || two["spend_7d"][0] != 127.85 || two["spend_7d"][1] != nil ||
		len(two["volume_1d"]) != 2 || two["volume_1d"][0] != 42.5 || two["volume_1d"][1] != nil ||
		len(two["merchant_id"]) != 2 || two["merchant_id"][0] != 42.0 {
		t.Errorf("two entities: %+v", got["two_entities"])
	}
	if v := got["latest"].OK["volume_1d"]; len(v) != 1 || v[0] != 42.5 {
		t.Errorf("@latest: %+v", got["latest"])
	}
	if e := got["unknown_view"]; e.Error != "FeatureViewNotFoundException" {
		t.Errorf("unknown view: %+v, want FeatureViewNotFoundException", e)
	}
}

// feastApply writes a Feast repo (feature_store.yaml with featured at url
// as its remote online store, and repo.py), runs feast apply in it and
// returns its directory.
func feastApply(t *testing.T, py, url, repo string) string {
	t.Helper()
	dir := t.TempDir()
	yaml := "project: featured_test\nregistry: data/registry.db\nprovider: local\n" +
		"online_store:\n  type: remote\n  path: " + url + "\nentity_key_serialization_version: 3\n"
	for name, body := range map[string]string{"feature_store.yaml": yaml, "repo.py": repo} {
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
	return dir
}
