package serving_test

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/featured-dev/featured/serving"
)

// feastPushDefinitions add to the harness's definitions what a Feast repo
// imported by `featured import feast` has: a push source and a plain view
// whose features pass the source's fields through (lifetime last), and a
// pass-through view over a Kafka source.
const feastPushDefinitions = `
entities:
  - {name: driver, join_key: driver_id, type: int64}
sources:
  - name: driver_stats_push
    kind: push
    entity_key: driver_id
    event_time: ts
    fields: {conv_rate: float64, trips: int64, city: string, active: bool}
  - name: rides
    kind: kafka
    topic: rides
    entity_key: driver_id
    event_time: ts
    fields: {fare: float64}
feature_views:
  - name: driver_hourly
    entity: driver
    source: driver_stats_push
    ttl: 8d
    features:
      - {name: conv_rate, aggregation: last, field: conv_rate}
      - {name: trips, aggregation: last, field: trips}
      - {name: city, aggregation: last, field: city}
      - {name: active, aggregation: last, field: active}
  - name: ride_fares
    entity: driver
    source: rides
    ttl: 8d
    features:
      - {name: fare, aggregation: last, field: fare}
`

// feastColumn is one column of a /get-online-features answer.
type feastColumn struct {
	Values     []any    `json:"values"`
	Statuses   []string `json:"statuses"`
	Timestamps []string `json:"event_timestamps"`
}

// feastRead looks features up through POST /get-online-features and
// returns the columns by name.
func feastRead(t *testing.T, h *harness, features []string, entities map[string]any) map[string]feastColumn {
	t.Helper()
	st, body := h.post("/get-online-features", map[string]any{"features": features, "entities": entities})
	if st != http.StatusOK {
		t.Fatalf("lookup: %d %s", st, body)
	}
	var resp struct {
		Metadata struct {
			Names []string `json:"feature_names"`
		} `json:"metadata"`
		Results []feastColumn `json:"results"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatalf("lookup: %v: %s", err, body)
	}
	out := map[string]feastColumn{}
	for i, n := range resp.Metadata.Names {
		out[n] = resp.Results[i]
	}
	return out
}

var driverFeatures = []string{"driver_hourly:conv_rate", "driver_hourly:trips", "driver_hourly:city", "driver_hourly:active"}

// wantNotFound checks that no feature of driver_hourly has a value for
// any of the driver ids: nothing of a refused write reached the store.
func wantNotFound(t *testing.T, h *harness, ids ...int64) {
	t.Helper()
	keys := make([]any, len(ids))
	for i, id := range ids {
		keys[i] = id
	}
	for name, col := range feastRead(t, h, driverFeatures, map[string]any{"driver_id": keys}) {
		if name == "driver_id" {
			continue
		}
		for i, s := range col.Statuses {
			if s != "NOT_FOUND" {
				t.Errorf("%s of driver %d: %s %v, want NOT_FOUND (a refused write wrote)", name, ids[i], s, col.Values[i])
			}
		}
	}
}

// feastClass returns the exception class of a Feast error body.
func feastClass(t *testing.T, body []byte) string {
	t.Helper()
	var detail struct {
		Module, Class, Message string
	}
	if err := json.Unmarshal(featuredError(body), &detail); err != nil || detail.Module != "feast.errors" || detail.Message == "" {
		t.Errorf("not Feast's error detail (%v): %s", err, body)
	}
	return detail.Class
}

// TestFeastPush drives POST /push with Feast's PushFeaturesRequest: rows of
// the df become events of the push source, checked as POST /v1/push checks
// them, all or nothing.
func TestFeastPush(t *testing.T) {
	h := newHarness(t, serving.Options{})
	seed(h)
	h.apply(feastPushDefinitions)

	// Feast's body, as its docs' curl sends it (no Content-Type that says
	// JSON): every time form a Feast client sends, a null, an extra column
	// (created), to: online_and_offline.
	body := `{"push_source_name": "driver_stats_push", "to": "online_and_offline", "allow_registry_cache": true,
	 "df": {"driver_id": [1001, 1002, 1003, 1004],
	        "ts": ["2026-11-24T09:00:00Z", "2026-11-24 09:30:00", "2026-11-24T09:40:00.123456", 1795510800000],
	        "created": ["2026-11-24 09:00:00", null, null, null],
	        "conv_rate": [0.5, 1, null, 0.75], "trips": [3, null, 5, 6],
	        "city": ["Zürich", "b", "c", "d"], "active": [true, false, null, true]}}`
	st, out := h.do("POST", "/push", "application/x-www-form-urlencoded", []byte(body))
	if st != http.StatusOK || !strings.Contains(string(out), `"accepted":4`) {
		t.Fatalf("push: %d %s", st, out)
	}
	got := feastRead(t, h, driverFeatures, map[string]any{"driver_id": []any{1001, 1002, 1003, 1004}})
	want := map[string]feastColumn{
		"conv_rate": {Values: []any{0.5, 1.0, nil, 0.75}, Statuses: []string{"PRESENT", "PRESENT", "NULL_VALUE", "PRESENT"}},
		"trips":     {Values: []any{3.0, nil, 5.0, 6.0}, Statuses: []string{"PRESENT", "NULL_VALUE", "PRESENT", "PRESENT"}},
		"city":      {Values: []any{"Zürich", "b", "c", "d"}, Statuses: []string{"PRESENT", "PRESENT", "PRESENT", "PRESENT"}},
		"active":    {Values: []any{true, false, nil, true}, Statuses: []string{"PRESENT", "PRESENT", "NULL_VALUE", "PRESENT"}},
	}
	for name, w := range want {
		if g := got[name]; !reflect.DeepEqual(g.Values, w.Values) || !reflect.DeepEqual(g.Statuses, w.Statuses) {
			t.Errorf("%s: %+v, want values %v statuses %v", name, g, w.Values, w.Statuses)
		}
	}
	// Naive times are UTC; epoch numbers are milliseconds.
	if ts := got["city"].Timestamps; !reflect.DeepEqual(ts, []string{"2026-11-24T09:00:00Z", "2026-11-24T09:30:00Z", "2026-11-24T09:40:00.123Z", "2026-11-24T09:00:00Z"}) {
		t.Errorf("event timestamps %v", ts)
	}

	// to defaults to online, and a push source's aggregates are computed
	// from the pushed rows as from POST /v1/push's events.
	st, out = h.post("/push", map[string]any{"push_source_name": "transactions", "df": map[string]any{
		"user_id": []any{"u7", "u7"}, "ts": []any{"2026-11-24T09:00:00Z", "2026-11-24T09:10:00Z"}, "amount": []any{2.5, 4}}})
	if st != http.StatusOK {
		t.Fatalf("push to an aggregating source: %d %s", st, out)
	}
	spend := feastRead(t, h, []string{"user_spend:spend_7d", "user_spend:txn_count_1h"}, map[string]any{"user_id": []any{"u7"}})
	if v := spend["spend_7d"].Values; len(v) != 1 || v[0] != 6.5 {
		t.Errorf("spend_7d after /push: %+v, want 6.5", spend["spend_7d"])
	}
	if v := spend["txn_count_1h"].Values; len(v) != 1 || v[0] != 2.0 {
		t.Errorf("txn_count_1h after /push: %+v, want 2", spend["txn_count_1h"])
	}

	// An empty frame writes nothing, as Feast's does.
	if st, out := h.post("/push", map[string]any{"push_source_name": "driver_stats_push", "df": map[string]any{"driver_id": []any{}, "ts": []any{}}}); st != http.StatusOK || string(out) != `{"accepted":0}` {
		t.Errorf("empty frame: %d %s", st, out)
	}

	// Refusals: each in Feast's error shape, each writing nothing for
	// drivers 2001 and 2002 (the good row beside a bad one included).
	row := func(extra map[string]any) map[string]any {
		df := map[string]any{"driver_id": []any{2001, 2002}, "ts": []any{"2026-11-24T09:00:00Z", "2026-11-24T09:00:00Z"},
			"conv_rate": []any{0.1, 0.2}, "trips": []any{1, 2}}
		for k, v := range extra {
			if v == nil {
				delete(df, k)
			} else {
				df[k] = v
			}
		}
		return map[string]any{"push_source_name": "driver_stats_push", "df": df}
	}
	with := func(req map[string]any, k string, v any) map[string]any { req[k] = v; return req }
	cases := []struct {
		name       string
		req        any
		status     int
		class      string
		field, msg string
	}{
		{"unknown source", with(row(nil), "push_source_name", "nope"), 422, "PushSourceNotFoundException", "", `unknown source "nope"`},
		{"kafka source", with(row(nil), "push_source_name", "rides"), 422, "PushSourceNotFoundException", "", `reads Kafka topic "rides"`},
		{"no source named", with(row(nil), "push_source_name", ""), 400, "FeastError", "push_source_name", "missing"},
		{"offline only", with(row(nil), "to", "offline"), 400, "FeastError", "to", "no offline-only write"},
		{"unknown mode", with(row(nil), "to", "sideways"), 400, "FeastError", "to", "want online, offline or online_and_offline"},
		{"column not a list", row(map[string]any{"city": "x"}), 400, "FeastError", "df.city", "not a list"},
		{"columns of different lengths", row(map[string]any{"city": []any{"x"}}), 400, "FeastError", "df.driver_id", "every column has one value per row"},
		{"cell not a scalar", row(map[string]any{"city": []any{"x", []any{"y"}}}), 400, "FeastError", "df.city[1]", "not a scalar"},
		{"no df", map[string]any{"push_source_name": "driver_stats_push"}, 400, "FeastError", "df", "no columns"},
		{"missing key column", row(map[string]any{"driver_id": nil}), 422, "FeastError", "df.driver_id[0]", "missing_key"},
		{"missing key cell", row(map[string]any{"driver_id": []any{2001, nil}}), 422, "FeastError", "df.driver_id[1]", "missing_key"},
		{"string key for an int64 entity", row(map[string]any{"driver_id": []any{2001, "2002"}}), 422, "FeastError", "df.driver_id[1]", "wrong_type"},
		{"wrong type", row(map[string]any{"trips": []any{1, "two"}}), 422, "FeastError", "df.trips[1]", "wrong_type"},
		{"float for an int64 field", row(map[string]any{"trips": []any{1, 2.5}}), 422, "FeastError", "df.trips[1]", "wrong_type"},
		{"bad time", row(map[string]any{"ts": []any{"2026-11-24T09:00:00Z", "yesterday"}}), 422, "FeastError", "df.ts[1]", "wrong_type"},
		{"missing time column", row(map[string]any{"ts": nil}), 422, "FeastError", "df.ts[0]", "missing_time"},
		{"too far in the future", row(map[string]any{"ts": []any{"2026-11-24T09:00:00Z", "2026-11-25T09:00:00Z"}}), 422, "FeastError", "df.ts[1]", "too_far_in_future"},
		{"string too long", row(map[string]any{"city": []any{"x", strings.Repeat("y", 4097)}}), 422, "FeastError", "df.city[1]", "too_long"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, out := h.post("/push", c.req)
			if cl := feastClass(t, out); cl != c.class {
				t.Errorf("class %s, want %s: %s", cl, c.class, out)
			}
			wantProblem(t, st, out, c.status, c.field, "", c.msg)
			wantNotFound(t, h, 2001, 2002)
		})
	}
	t.Run("malformed JSON", func(t *testing.T) {
		st, out := h.do("POST", "/push", "application/json", []byte(`{"push_source_name": "driver_stats_push", "df": {"driver_id": [1,}}`))
		wantProblem(t, st, out, 400, "", "", "offset")
		feastClass(t, out)
	})
	t.Run("too many events", func(t *testing.T) {
		ids, ts := make([]any, 10001), make([]any, 10001)
		for i := range ids {
			ids[i], ts[i] = 3000+i, nowMillis-1000
		}
		st, out := h.post("/push", map[string]any{"push_source_name": "driver_stats_push", "df": map[string]any{"driver_id": ids, "ts": ts, "trips": ids}})
		wantProblem(t, st, out, http.StatusRequestEntityTooLarge, "", "", "10001 events, the limit is 10000")
		wantNotFound(t, h, 3000, 13000)
	})
}

// TestFeastPushBodyLimit: Options.MaxBodyBytes bounds Feast's push bodies
// as it bounds every other.
func TestFeastPushBodyLimit(t *testing.T) {
	h := newHarness(t, serving.Options{MaxBodyBytes: 1024})
	h.apply(definitions)
	h.apply(feastPushDefinitions)
	ids := make([]any, 300)
	for i := range ids {
		ids[i] = i + 1
	}
	for _, path := range []string{"/push", "/write-to-online-store"} {
		st, out := h.post(path, map[string]any{"push_source_name": "driver_stats_push", "feature_view_name": "driver_hourly",
			"df": map[string]any{"driver_id": ids}})
		wantProblem(t, st, out, http.StatusRequestEntityTooLarge, "", "", "the limit is 1024")
		if cl := feastClass(t, out); cl != "FeastError" {
			t.Errorf("%s: class %s", path, cl)
		}
	}
}

// TestFeastWriteToOnlineStore drives POST /write-to-online-store with the
// body the Feast SDK's remote online store sends (online_write_batch): the
// view's join key, its features, event_timestamp as naive ISO and created.
func TestFeastWriteToOnlineStore(t *testing.T) {
	h := newHarness(t, serving.Options{})
	seed(h)
	h.apply(feastPushDefinitions)

	write := func(view string, df map[string]any) (int, []byte) {
		t.Helper()
		return h.post("/write-to-online-store", map[string]any{"feature_view_name": view, "df": df, "allow_registry_cache": false})
	}
	st, out := write("driver_hourly", map[string]any{
		"driver_id": []any{1001, 1002}, "conv_rate": []any{0.25, 0.5}, "trips": []any{7, 8}, "city": []any{"c", "d"}, "active": []any{true, nil},
		"event_timestamp": []any{"2026-11-24T09:45:00", "2026-11-24T09:46:00.5"}, "created": []any{nil, nil}})
	if st != http.StatusOK || !strings.Contains(string(out), `"accepted":2`) {
		t.Fatalf("write: %d %s", st, out)
	}
	// The source's own time column works as well, and is preferred.
	st, out = write("driver_hourly", map[string]any{"driver_id": []any{1003}, "trips": []any{9},
		"ts": []any{"2026-11-24T09:50:00Z"}, "event_timestamp": []any{"2026-11-24T08:00:00"}})
	if st != http.StatusOK {
		t.Fatalf("write with ts: %d %s", st, out)
	}
	got := feastRead(t, h, driverFeatures, map[string]any{"driver_id": []any{1001, 1002, 1003}})
	if v := got["trips"].Values; !reflect.DeepEqual(v, []any{7.0, 8.0, 9.0}) {
		t.Errorf("trips %v", got["trips"])
	}
	if v := got["conv_rate"].Values; !reflect.DeepEqual(v, []any{0.25, 0.5, nil}) {
		t.Errorf("conv_rate %v", got["conv_rate"])
	}
	// A null cell is no value: the entity has a state, the feature none.
	if v := got["active"].Statuses; !reflect.DeepEqual(v, []string{"PRESENT", "NULL_VALUE", "NULL_VALUE"}) {
		t.Errorf("active %v", got["active"])
	}
	if ts := got["trips"].Timestamps; !reflect.DeepEqual(ts, []string{"2026-11-24T09:45:00Z", "2026-11-24T09:46:00.500Z", "2026-11-24T09:50:00Z"}) {
		t.Errorf("event timestamps %v", ts)
	}

	good := func(extra map[string]any) map[string]any {
		df := map[string]any{"driver_id": []any{2001, 2002}, "event_timestamp": []any{"2026-11-24T09:00:00", "2026-11-24T09:00:00"},
			"conv_rate": []any{0.1, 0.2}, "trips": []any{1, 2}}
		for k, v := range extra {
			if v == nil {
				delete(df, k)
			} else {
				df[k] = v
			}
		}
		return df
	}
	cases := []struct {
		name, view string
		df         map[string]any
		status     int
		class      string
		field, msg string
	}{
		{"unknown view", "nope", good(nil), 404, "FeatureViewNotFoundException", "", `unknown view "nope"`},
		{"no view named", "", good(nil), 400, "FeastError", "feature_view_name", "missing"},
		{"aggregating view", "user_spend", map[string]any{"user_id": []any{"u8"}, "spend_7d": []any{1.0}, "event_timestamp": []any{"2026-11-24T09:00:00"}},
			400, "FeastError", "feature_view_name", "features spend_7d, txn_count_1h, avg_amount_24h, last_merchant, max_items_1h, last_3_merchants are not pass-through values"},
		{"kafka view", "ride_fares", map[string]any{"driver_id": []any{2001}, "fare": []any{1.0}, "event_timestamp": []any{"2026-11-24T09:00:00"}},
			400, "FeastError", "feature_view_name", `reads Kafka topic "rides"`},
		{"missing key", "driver_hourly", good(map[string]any{"driver_id": nil}), 422, "FeastError", "df.driver_id[0]", "missing_key"},
		{"missing time", "driver_hourly", good(map[string]any{"event_timestamp": nil}), 422, "FeastError", "df.ts[0]", "missing_time"},
		{"wrong type", "driver_hourly", good(map[string]any{"conv_rate": []any{0.1, "high"}}), 422, "FeastError", "df.conv_rate[1]", "wrong_type"},
		{"bad column", "driver_hourly", good(map[string]any{"trips": map[string]any{"0": 1}}), 400, "FeastError", "df.trips", "not a list"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, out := write(c.view, c.df)
			if cl := feastClass(t, out); cl != c.class {
				t.Errorf("class %s, want %s: %s", cl, c.class, out)
			}
			wantProblem(t, st, out, c.status, c.field, "", c.msg)
			wantNotFound(t, h, 2001, 2002)
		})
	}
	// The refused write to user_spend wrote nothing to its source.
	if s := feastRead(t, h, []string{"user_spend:txn_count_1h"}, map[string]any{"user_id": []any{"u8"}})["txn_count_1h"]; s.Statuses[0] != "NOT_FOUND" {
		t.Errorf("u8 after a refused write: %+v", s)
	}
}

// TestFeastPushScope: both routes need the write scope, as POST /v1/push.
func TestFeastPushScope(t *testing.T) {
	h := newAuthHarness(t)
	h.apply(feastPushDefinitions)
	push := `{"push_source_name": "driver_stats_push", "df": {"driver_id": [1], "ts": ["2026-11-24T09:00:00Z"], "trips": [1]}}`
	write := `{"feature_view_name": "driver_hourly", "df": {"driver_id": [1], "event_timestamp": ["2026-11-24T09:00:00"], "trips": [1]}}`
	for _, c := range []struct {
		token, path, body string
		want              int
	}{
		{"", "/push", push, 401},
		{"reader", "/push", push, 403},
		{"admin", "/push", push, 403},
		{"writer", "/push", push, 200},
		{"reader", "/write-to-online-store", write, 403},
		{"writer", "/write-to-online-store", write, 200},
	} {
		if st, body, _ := h.as(c.token, "POST", c.path, "application/json", c.body); st != c.want {
			t.Errorf("%s as %q: %d %s, want %d", c.path, c.token, st, body, c.want)
		}
	}
}

// TestFeastPushTimes: the event time forms Feast clients send. A naive
// time is UTC, as Feast reads it; a number is epoch milliseconds, as in
// POST /v1/push (and pandas' to_json).
func TestFeastPushTimes(t *testing.T) {
	h := newHarness(t, serving.Options{})
	h.apply(definitions)
	h.apply(feastPushDefinitions)
	cases := []struct {
		ts   any
		want string // "" for refused
	}{
		{"2026-11-24T09:00:00Z", "2026-11-24T09:00:00Z"},
		{"2026-11-24T10:00:00+01:00", "2026-11-24T09:00:00Z"},
		{"2026-11-24T09:00:00.25+00:00", "2026-11-24T09:00:00.250Z"},
		{"2026-11-24T09:00:00", "2026-11-24T09:00:00Z"},            // datetime.isoformat() of a naive UTC time
		{"2026-11-24 09:00:00", "2026-11-24T09:00:00Z"},            // str(pd.Timestamp), Feast's curl examples
		{"2026-11-24 09:00:00.123456", "2026-11-24T09:00:00.123Z"}, // microseconds, truncated to milliseconds
		{"2026-11-24 09:00:00+00:00", "2026-11-24T09:00:00Z"},
		{"2026-11-24", "2026-11-24T00:00:00Z"},
		{nowMillis - 3600000, "2026-11-24T09:00:00Z"},
		{"24/11/2026", ""},
		{"2026-11-24T09:00:00 UTC", ""},
		{1.5, ""},
		{true, ""},
	}
	for i, c := range cases {
		id := 5000 + i
		st, out := h.post("/push", map[string]any{"push_source_name": "driver_stats_push",
			"df": map[string]any{"driver_id": []any{id}, "ts": []any{c.ts}, "trips": []any{1}}})
		if c.want == "" {
			if st != http.StatusUnprocessableEntity || !strings.Contains(string(out), "df.ts[0]") {
				t.Errorf("%v: %d %s, want 422 naming df.ts[0]", c.ts, st, out)
			}
			continue
		}
		if st != http.StatusOK {
			t.Errorf("%v: %d %s", c.ts, st, out)
			continue
		}
		if got := feastRead(t, h, []string{"driver_hourly:trips"}, map[string]any{"driver_id": []any{id}})["trips"].Timestamps[0]; got != c.want {
			t.Errorf("%v: event time %s, want %s", c.ts, got, c.want)
		}
	}
}
