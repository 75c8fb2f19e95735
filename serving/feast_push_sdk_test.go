package serving_test

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"reflect"
	"strings"
	"testing"

	"github.com/featured-dev/featured/serving"
)

// feastPushRepo is feastRepo plus what feastPushDefinitions define, as a
// Feast user has them: a push source over a file source and a plain view
// reading it.
const feastPushRepo = feastRepo + `
from feast import PushSource
from feast.types import Bool, String
driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
driver_file = FileSource(name="driver_file", path="data/driver.parquet", timestamp_field="ts")
driver_push = PushSource(name="driver_stats_push", batch_source=driver_file)
driver_hourly = FeatureView(name="driver_hourly", entities=[driver], ttl=timedelta(days=8), source=driver_push,
    schema=[Field(name="conv_rate", dtype=Float64), Field(name="trips", dtype=Int64),
            Field(name="city", dtype=String), Field(name="active", dtype=Bool)])
`

// feastPushScript writes through every path a Feast user has, then reads
// back through the SDK, printing what each call returned or raised.
const feastPushScript = `
import json, sys, warnings
warnings.filterwarnings("ignore")
import pandas as pd, requests
from feast import FeatureStore
from feast.data_source import PushMode
s = FeatureStore(repo_path=sys.argv[1])
url = sys.argv[2]
out = {}
def run(name, f):
    try:
        out[name] = {"ok": f()}
    except Exception as e:
        out[name] = {"error": type(e).__name__, "message": str(e)}
t = lambda m: pd.Timestamp("2026-11-24 09:00", tz="UTC") + pd.Timedelta(minutes=m)
def frame(ids, m, trips):
    return pd.DataFrame({"driver_id": ids, "ts": [t(m)] * len(ids), "created": [t(m)] * len(ids),
        "conv_rate": [0.25 * i for i in trips], "trips": trips, "city": ["c%d" % i for i in trips], "active": [i % 2 == 0 for i in trips]})
def post():
    r = requests.post(url + "/push", json={"push_source_name": "driver_stats_push", "to": "online_and_offline",
        "df": {"driver_id": [1001], "ts": [str(t(0))], "conv_rate": [0.25], "trips": [1], "city": ["c1"], "active": [False]}})
    return [r.status_code, r.text]
run("post", post)
# A missing float in pandas is NaN: the SDK sends it as null.
pushed = frame([1002, 1003], 10, [2, 3])
pushed.loc[1, "conv_rate"] = float("nan")
run("push", lambda: s.push("driver_stats_push", pushed, to=PushMode.ONLINE) or "done")
run("write", lambda: s.write_to_online_store("driver_hourly", frame([1004], 20, [4])) or "done")
# The offline store is the SDK's own: the push source's file source.
parquet = sys.argv[1] + "/data/driver.parquet"
frame([999], -60, [9]).drop(columns=["created"]).to_parquet(parquet)
run("push_offline", lambda: s.push("driver_stats_push", frame([1005], 30, [5]).drop(columns=["created"]), to=PushMode.OFFLINE) or "done")
run("push_online_and_offline", lambda: s.push("driver_stats_push", frame([1006], 40, [6]).drop(columns=["created"]), to=PushMode.ONLINE_AND_OFFLINE) or "done")
run("offline_rows", lambda: sorted(int(i) for i in pd.read_parquet(parquet)["driver_id"]))
run("write_aggregate", lambda: s.write_to_online_store("user_spend",
    pd.DataFrame({"user_id": ["u5"], "ts": [t(0)], "spend_7d": [1.0]})) or "done")
run("read", lambda: s.get_online_features(features=["driver_hourly:conv_rate", "driver_hourly:trips", "driver_hourly:city", "driver_hourly:active"],
    entity_rows=[{"driver_id": i} for i in range(1001, 1008)]).to_dict())
print(json.dumps(out))
`

// TestFeastSDKPush drives Feast's push paths with the real SDK against
// featured: Feast's /push body posted by hand, FeatureStore.push and
// write_to_online_store (which the SDK's remote online store sends as POST
// /write-to-online-store, one per view of the push source), then reads the
// values back through get_online_features.
func TestFeastSDKPush(t *testing.T) {
	py := feastPython(t)
	h := newHarness(t, serving.Options{})
	seed(h)
	h.apply(feastPushDefinitions)
	dir := feastApply(t, py, h.url, feastPushRepo)
	out, err := exec.Command(py, "-c", feastPushScript, dir, h.url).Output()
	if err != nil {
		t.Fatalf("feast script: %v\n%s", err, out)
	}
	var got map[string]struct {
		OK      any    `json:"ok"`
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if l, _ := got["post"].OK.([]any); len(l) != 2 || l[0] != 200.0 || !strings.HasPrefix(fmt.Sprint(l[1]), `{"accepted":1,`) {
		t.Errorf("requests.post /push: %+v", got["post"])
	}
	for _, name := range []string{"push", "write", "push_offline", "push_online_and_offline"} {
		if got[name].OK != "done" {
			t.Errorf("%s: %+v", name, got[name])
		}
	}
	// The SDK's remote store forwards featured's error: FeastError with
	// featured's message.
	if e := got["write_aggregate"]; e.Error != "FeastError" || !strings.Contains(e.Message, "spend_7d") || !strings.Contains(e.Message, "not pass-through") {
		t.Errorf("write_to_online_store of an aggregating view: %+v", e)
	}
	// PushMode.OFFLINE writes the SDK's own offline store (the push
	// source's parquet) and nothing to featured; ONLINE_AND_OFFLINE both.
	if rows := got["offline_rows"].OK; !reflect.DeepEqual(rows, []any{999.0, 1005.0, 1006.0}) {
		t.Errorf("offline store rows: %+v", got["offline_rows"])
	}
	want := map[string]any{
		"driver_id": []any{1001.0, 1002.0, 1003.0, 1004.0, 1005.0, 1006.0, 1007.0},
		"conv_rate": []any{0.25, 0.5, nil, 1.0, nil, 1.5, nil},
		"trips":     []any{1.0, 2.0, 3.0, 4.0, nil, 6.0, nil},
		"city":      []any{"c1", "c2", "c3", "c4", nil, "c6", nil},
		"active":    []any{false, true, false, true, nil, true, nil},
	}
	if !reflect.DeepEqual(got["read"].OK, want) {
		t.Errorf("get_online_features after the pushes: %+v\nwant %v", got["read"], want)
	}
	// The rows' event times arrived (the SDK sends them as naive UTC
	// event_timestamp).
	ts := feastRead(t, h, []string{"driver_hourly:trips"}, map[string]any{"driver_id": []any{1001, 1002, 1004, 1006}})["trips"].Timestamps
	if !reflect.DeepEqual(ts, []string{"2026-11-24T09:00:00Z", "2026-11-24T09:10:00Z", "2026-11-24T09:20:00Z", "2026-11-24T09:40:00Z"}) {
		t.Errorf("event times %v", ts)
	}
}
