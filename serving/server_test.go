package serving_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/featured-dev/featured/aggregate"
	featuredv1 "github.com/featured-dev/featured/api/featured/v1"
	"github.com/featured-dev/featured/serving"
)

var userRefs = []string{
	"user_spend:spend_7d", "user_spend:txn_count_1h", "user_spend:avg_amount_24h",
	"user_spend:last_merchant", "user_spend:max_items_1h", "user_spend:last_3_merchants",
}

var userNames = []string{"spend_7d", "txn_count_1h", "avg_amount_24h", "last_merchant", "max_items_1h", "last_3_merchants"}

var userKeys = []any{"u1", "u2", "u3"}

const (
	minute = int64(60_000)
	hour   = 60 * minute
	day    = 24 * hour
)

// seed applies the definitions and pushes the first events: u1 has events
// in every window, u2 only older than an hour (so max_items_1h is null and
// txn_count_1h 0), u3 none (NOT_FOUND); merchant 42 has events, 7 none.
func seed(h *harness) {
	h.t.Helper()
	h.apply(definitions)
	h.push("transactions",
		event{key: "u1", ms: nowMillis - 2*day, amount: f64(100), items: i64(1), merchant: str("m1")},
		event{key: "u1", ms: nowMillis - 3*hour, amount: f64(20.5), items: i64(2), merchant: str(`m"ü`), rfc3339: true},
		event{key: "u1", ms: nowMillis - 30*minute, amount: f64(7.25), items: i64(5), merchant: str("m3")},
		event{key: "u1", ms: nowMillis - 5*minute - 250, amount: f64(0.1), items: i64(3), merchant: str("m4")},
		event{key: "u2", ms: nowMillis - 5*hour, amount: f64(3), items: i64(1), merchant: str("m9")},
	)
	h.push("merchant_events",
		event{key: int64(42), ms: nowMillis - 2*hour, amount: f64(10)},
		event{key: int64(42), ms: nowMillis - 1*hour, amount: f64(32.5)},
	)
}

func statusName(r aggregate.Result) string {
	switch r.Status {
	case aggregate.StatusPresent:
		if r.Value.Kind == aggregate.KindFloat64 && (math.IsNaN(r.Value.F) || math.IsInf(r.Value.F, 0)) {
			return "INVALID"
		}
		return "PRESENT"
	case aggregate.StatusNull:
		return "NULL_VALUE"
	case aggregate.StatusNotFound:
		return "NOT_FOUND"
	}
	return "INVALID"
}

func timestampOf(r aggregate.Result) string {
	if r.Status == aggregate.StatusNotFound || r.EventMillis == 0 {
		return "1970-01-01T00:00:00Z"
	}
	t := time.UnixMilli(r.EventMillis).UTC()
	if r.EventMillis%1000 == 0 {
		return t.Format("2006-01-02T15:04:05Z")
	}
	return t.Format("2006-01-02T15:04:05.000Z")
}

func closeFloat(a, b float64) bool {
	if a == b {
		return true
	}
	return math.Abs(a-b) <= 1e-9*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

// jsonMatches reports whether got (decoded with UseNumber) is the JSON of v.
func jsonMatches(got any, v aggregate.Value) bool {
	switch v.Kind {
	case aggregate.KindNull:
		return got == nil
	case aggregate.KindInt64:
		n, ok := got.(json.Number)
		return ok && n.String() == strconv.FormatInt(v.I, 10)
	case aggregate.KindFloat64:
		n, ok := got.(json.Number)
		if !ok || !strings.ContainsAny(n.String(), ".e") { // floats read back as floats
			return false
		}
		f, err := n.Float64()
		return err == nil && closeFloat(f, v.F)
	case aggregate.KindString:
		s, ok := got.(string)
		return ok && s == v.S
	case aggregate.KindBool:
		b, ok := got.(bool)
		return ok && b == (v.I != 0)
	case aggregate.KindList:
		l, ok := got.([]any)
		if !ok || len(l) != len(v.L) {
			return false
		}
		for i := range l {
			if !jsonMatches(l[i], v.L[i]) {
				return false
			}
		}
		return true
	}
	return false
}

func protoMatches(got *featuredv1.Value, v aggregate.Value) bool {
	switch v.Kind {
	case aggregate.KindNull:
		return got.GetKind() == nil
	case aggregate.KindInt64:
		x, ok := got.GetKind().(*featuredv1.Value_Int64Val)
		return ok && x.Int64Val == v.I
	case aggregate.KindFloat64:
		x, ok := got.GetKind().(*featuredv1.Value_DoubleVal)
		return ok && closeFloat(x.DoubleVal, v.F)
	case aggregate.KindString:
		x, ok := got.GetKind().(*featuredv1.Value_StringVal)
		return ok && x.StringVal == v.S
	case aggregate.KindBool:
		x, ok := got.GetKind().(*featuredv1.Value_BoolVal)
		return ok && x.BoolVal == (v.I != 0)
	case aggregate.KindList:
		x, ok := got.GetKind().(*featuredv1.Value_ListVal)
		if !ok || len(x.ListVal.GetVal()) != len(v.L) {
			return false
		}
		for i, e := range x.ListVal.GetVal() {
			if !protoMatches(e, v.L[i]) {
				return false
			}
		}
		return true
	}
	return false
}

func decodeUseNumber(t *testing.T, body []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
}

type feastResponse struct {
	Metadata struct {
		FeatureNames []string `json:"feature_names"`
	} `json:"metadata"`
	Results []struct {
		Values          []any    `json:"values"`
		Statuses        []string `json:"statuses"`
		EventTimestamps []string `json:"event_timestamps"`
	} `json:"results"`
}

type nativeResponse struct {
	JoinKey  string   `json:"join_key"`
	Features []string `json:"features"`
	ReadAtMs int64    `json:"read_at_ms"`
	Rows     []struct {
		Key      any      `json:"key"`
		Values   []any    `json:"values"`
		Statuses []string `json:"statuses"`
		EventMs  []int64  `json:"event_ms"`
	} `json:"rows"`
}

// column is one expected feature column: its served name, the reference to
// compute it from, and the index into the pushed events the version saw
// first.
type column struct {
	name  string
	ref   string
	since int
}

func columnsOf(names, refs []string) []column {
	cols := make([]column, len(refs))
	for i := range refs {
		cols[i] = column{name: names[i], ref: refs[i]}
	}
	return cols
}

// checkFeast checks a Feast response against Reference.
func checkFeast(t *testing.T, h *harness, body []byte, joinKey string, keys []any, cols []column) {
	t.Helper()
	var got feastResponse
	decodeUseNumber(t, body, &got)
	wantNames := []string{joinKey}
	for _, c := range cols {
		wantNames = append(wantNames, c.name)
	}
	if strings.Join(got.Metadata.FeatureNames, ",") != strings.Join(wantNames, ",") {
		t.Fatalf("feature_names = %q, want %q", got.Metadata.FeatureNames, wantNames)
	}
	if len(got.Results) != len(cols)+1 {
		t.Fatalf("%d results, want %d: %s", len(got.Results), len(cols)+1, body)
	}
	k := got.Results[0]
	if len(k.Values) != len(keys) || len(k.Statuses) != len(keys) || len(k.EventTimestamps) != len(keys) {
		t.Fatalf("join key column has %d/%d/%d entries, want %d", len(k.Values), len(k.Statuses), len(k.EventTimestamps), len(keys))
	}
	for e, key := range keys {
		var wantKey aggregate.Value
		switch x := key.(type) {
		case string:
			wantKey = aggregate.Value{Kind: aggregate.KindString, S: x}
		case int64:
			wantKey = aggregate.Value{Kind: aggregate.KindInt64, I: x}
		}
		if !jsonMatches(k.Values[e], wantKey) || k.Statuses[e] != "PRESENT" || k.EventTimestamps[e] != "1970-01-01T00:00:00Z" {
			t.Errorf("join key row %d: %v %s %s, want %v PRESENT epoch", e, k.Values[e], k.Statuses[e], k.EventTimestamps[e], key)
		}
	}
	for c, col := range cols {
		r := got.Results[c+1]
		if len(r.Values) != len(keys) || len(r.Statuses) != len(keys) || len(r.EventTimestamps) != len(keys) {
			t.Fatalf("column %s has %d/%d/%d entries, want %d", col.name, len(r.Values), len(r.Statuses), len(r.EventTimestamps), len(keys))
		}
		for e, key := range keys {
			want := h.want(col.ref, key, col.since)
			wantVal := want.Value
			if statusName(want) != "PRESENT" {
				wantVal = aggregate.Value{}
			}
			if !jsonMatches(r.Values[e], wantVal) || r.Statuses[e] != statusName(want) || r.EventTimestamps[e] != timestampOf(want) {
				t.Errorf("%s of %v: got %v %s %s, want %+v %s %s", col.ref, key, r.Values[e], r.Statuses[e], r.EventTimestamps[e],
					wantVal, statusName(want), timestampOf(want))
			}
		}
	}
}

// checkNative checks a native response against Reference.
func checkNative(t *testing.T, h *harness, body []byte, joinKey string, keys []any, cols []column) {
	t.Helper()
	var got nativeResponse
	decodeUseNumber(t, body, &got)
	if got.JoinKey != joinKey || got.ReadAtMs != nowMillis || len(got.Features) != len(cols) || len(got.Rows) != len(keys) {
		t.Fatalf("native response header: %s", body)
	}
	for c, col := range cols {
		if got.Features[c] != col.name {
			t.Errorf("features[%d] = %q, want %q", c, got.Features[c], col.name)
		}
	}
	for e, key := range keys {
		row := got.Rows[e]
		if keyString(row.Key) != keyString(key) {
			t.Errorf("rows[%d].key = %v, want %v", e, row.Key, key)
		}
		for c, col := range cols {
			want := h.want(col.ref, key, col.since)
			wantVal := want.Value
			if statusName(want) != "PRESENT" {
				wantVal = aggregate.Value{}
			}
			wantMs := want.EventMillis
			if want.Status == aggregate.StatusNotFound {
				wantMs = 0
			}
			if !jsonMatches(row.Values[c], wantVal) || row.Statuses[c] != statusName(want) || row.EventMs[c] != wantMs {
				t.Errorf("%s of %v: got %v %s %d, want %+v %s %d", col.ref, key, row.Values[c], row.Statuses[c], row.EventMs[c],
					wantVal, statusName(want), wantMs)
			}
		}
	}
}

// checkProto checks a gRPC response against Reference.
func checkProto(t *testing.T, h *harness, got *featuredv1.GetOnlineFeaturesResponse, joinKey string, keys []any, cols []column) {
	t.Helper()
	names := got.GetMetadata().GetFeatureNames().GetVal()
	if len(names) != len(cols)+1 || names[0] != joinKey || len(got.GetResults()) != len(cols)+1 {
		t.Fatalf("gRPC response names %q, %d results", names, len(got.GetResults()))
	}
	for e, key := range keys {
		kv := got.GetResults()[0].GetValues()[e]
		if keyString(kv.GetStringVal()) != keyString(key) && keyString(kv.GetInt64Val()) != keyString(key) {
			t.Errorf("join key row %d = %v, want %v", e, kv, key)
		}
		if got.GetResults()[0].GetStatuses()[e] != featuredv1.FieldStatus_PRESENT {
			t.Errorf("join key row %d status %v", e, got.GetResults()[0].GetStatuses()[e])
		}
	}
	for c, col := range cols {
		if names[c+1] != col.name {
			t.Errorf("names[%d] = %q, want %q", c+1, names[c+1], col.name)
		}
		r := got.GetResults()[c+1]
		for e, key := range keys {
			want := h.want(col.ref, key, col.since)
			wantVal := want.Value
			if statusName(want) != "PRESENT" {
				wantVal = aggregate.Value{}
			}
			wantMs := want.EventMillis
			if want.Status == aggregate.StatusNotFound {
				wantMs = 0
			}
			gotMs := r.GetEventTimestamps()[e].AsTime().UnixMilli()
			if !protoMatches(r.GetValues()[e], wantVal) || r.GetStatuses()[e].String() != statusName(want) || gotMs != wantMs {
				t.Errorf("%s of %v: got %v %v %d, want %+v %s %d", col.ref, key, r.GetValues()[e], r.GetStatuses()[e], gotMs,
					wantVal, statusName(want), wantMs)
			}
		}
	}
}

func TestLookupEndToEnd(t *testing.T) {
	h := newHarness(t, serving.Options{})
	seed(h)
	cols := columnsOf(userNames, userRefs)

	// Pin a few values by hand, so that a bug shared by the server and the
	// reference cannot hide.
	pin := func(ref string, key any, status aggregate.Status, v aggregate.Value) {
		t.Helper()
		got := h.want(ref, key, 0)
		if got.Status != status || (status == aggregate.StatusPresent && !jsonMatches(jsonOf(t, v), got.Value)) {
			t.Fatalf("reference %s of %v = %+v, want status %d value %+v", ref, key, got, status, v)
		}
	}
	pin("user_spend:txn_count_1h", "u1", aggregate.StatusPresent, aggregate.Value{Kind: aggregate.KindInt64, I: 2})
	pin("user_spend:txn_count_1h", "u2", aggregate.StatusPresent, aggregate.Value{Kind: aggregate.KindInt64, I: 0})
	pin("user_spend:max_items_1h", "u2", aggregate.StatusNull, aggregate.Value{})
	pin("user_spend:spend_7d", "u3", aggregate.StatusNotFound, aggregate.Value{})

	t.Run("native", func(t *testing.T) {
		st, body := h.post("/v1/features", map[string]any{"features": userRefs, "entities": map[string]any{"user_id": userKeys}})
		if st != http.StatusOK {
			t.Fatalf("%d %s", st, body)
		}
		checkNative(t, h, body, "user_id", userKeys, cols)
	})
	t.Run("feast", func(t *testing.T) {
		// No Content-Type, as curl -d sends none that matters.
		req, _ := json.Marshal(map[string]any{"features": userRefs, "entities": map[string]any{"user_id": userKeys}})
		st, body := h.do("POST", "/get-online-features", "application/x-www-form-urlencoded", req)
		if st != http.StatusOK {
			t.Fatalf("%d %s", st, body)
		}
		checkFeast(t, h, body, "user_id", userKeys, cols)
	})
	t.Run("feast full names", func(t *testing.T) {
		st, body := h.post("/get-online-features", map[string]any{
			"features": userRefs[:2], "entities": map[string]any{"user_id": []any{"u1"}}, "full_feature_names": true})
		if st != http.StatusOK {
			t.Fatalf("%d %s", st, body)
		}
		checkFeast(t, h, body, "user_id", []any{"u1"}, columnsOf([]string{"user_spend__spend_7d", "user_spend__txn_count_1h"}, userRefs[:2]))
	})
	t.Run("int64 join key", func(t *testing.T) {
		keys := []any{int64(42), int64(7)}
		st, body := h.post("/get-online-features", map[string]any{
			"features": []string{"merchant_stats:volume_1d"}, "entities": map[string]any{"merchant_id": keys}})
		if st != http.StatusOK {
			t.Fatalf("%d %s", st, body)
		}
		checkFeast(t, h, body, "merchant_id", keys, columnsOf([]string{"volume_1d"}, []string{"merchant_stats:volume_1d"}))
		if !bytes.Contains(body, []byte(`"values":[42,7]`)) {
			t.Errorf("int64 join keys are not JSON numbers: %s", body)
		}
	})
	t.Run("grpc", func(t *testing.T) {
		resp, err := h.serving.GetOnlineFeatures(context.Background(), &featuredv1.GetOnlineFeaturesRequest{
			Kind:     &featuredv1.GetOnlineFeaturesRequest_Features{Features: &featuredv1.FeatureList{Val: userRefs}},
			Entities: map[string]*featuredv1.RepeatedValue{"user_id": protoKeys(userKeys...)},
		})
		if err != nil {
			t.Fatal(err)
		}
		checkProto(t, h, resp, "user_id", userKeys, cols)
	})
	t.Run("feature service", func(t *testing.T) {
		svcCols := columnsOf([]string{"user_spend__spend_7d", "user_spend__txn_count_1h"}, userRefs[:2])
		st, body := h.post("/get-online-features", map[string]any{
			"feature_service": "fraud_model_v1", "entities": map[string]any{"user_id": userKeys}, "full_feature_names": true})
		if st != http.StatusOK {
			t.Fatalf("%d %s", st, body)
		}
		checkFeast(t, h, body, "user_id", userKeys, svcCols)
		resp, err := h.serving.GetOnlineFeatures(context.Background(), &featuredv1.GetOnlineFeaturesRequest{
			Kind:             &featuredv1.GetOnlineFeaturesRequest_FeatureService{FeatureService: "fraud_model_v1"},
			Entities:         map[string]*featuredv1.RepeatedValue{"user_id": protoKeys(userKeys...)},
			FullFeatureNames: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		checkProto(t, h, resp, "user_id", userKeys, svcCols)
	})
	t.Run("shape", func(t *testing.T) {
		// The raw bytes: Feast's field order and statuses, as NOTES.md
		// describes them.
		st, body := h.post("/get-online-features", map[string]any{
			"features": []string{"user_spend:txn_count_1h", "user_spend:max_items_1h"}, "entities": map[string]any{"user_id": []any{"u2", "u3"}}})
		if st != http.StatusOK {
			t.Fatalf("%d %s", st, body)
		}
		want := `{"metadata":{"feature_names":["user_id","txn_count_1h","max_items_1h"]},"results":[` +
			`{"values":["u2","u3"],"statuses":["PRESENT","PRESENT"],"event_timestamps":["1970-01-01T00:00:00Z","1970-01-01T00:00:00Z"]},` +
			`{"values":[0,null],"statuses":["PRESENT","NOT_FOUND"],"event_timestamps":["` + timestampOf(h.want("user_spend:txn_count_1h", "u2", 0)) + `","1970-01-01T00:00:00Z"]},` +
			`{"values":[null,null],"statuses":["NULL_VALUE","NOT_FOUND"],"event_timestamps":["` + timestampOf(h.want("user_spend:max_items_1h", "u2", 0)) + `","1970-01-01T00:00:00Z"]}]}`
		if string(body) != want {
			t.Errorf("Feast response:\n got %s\nwant %s", body, want)
		}
	})
	t.Run("pinned versions", func(t *testing.T) {
		since := h.pushedCount("transactions", "u1")
		h.apply(strings.Replace(definitions, "{name: spend_7d, aggregation: sum, field: amount, window: 7d, hop: 1h}",
			"{name: spend_7d, aggregation: sum, field: amount, window: 6d, hop: 1h}", 1))
		if v, err := h.reg.Snapshot().View("user_spend", 0); err != nil || v.Version != 2 {
			t.Fatalf("user_spend after the second apply: %v %v", v, err)
		}
		h.push("transactions", event{key: "u1", ms: nowMillis - 10*minute, amount: f64(2), items: i64(1), merchant: str("m5")})
		refs := []string{"user_spend@v1:spend_7d", "user_spend:spend_7d", "user_spend@v2:spend_7d"}
		pinCols := []column{
			{name: "user_spend@v1__spend_7d", ref: refs[0]},
			{name: "user_spend__spend_7d", ref: refs[1], since: since},
			{name: "user_spend@v2__spend_7d", ref: refs[2], since: since},
		}
		st, body := h.post("/get-online-features", map[string]any{"features": refs, "entities": map[string]any{"user_id": []any{"u1"}}, "full_feature_names": true})
		if st != http.StatusOK {
			t.Fatalf("%d %s", st, body)
		}
		checkFeast(t, h, body, "user_id", []any{"u1"}, pinCols)
		v1, v2 := h.want(refs[0], "u1", 0), h.want(refs[1], "u1", since)
		if !closeFloat(v1.Value.F, 129.85) || v2.Value.F != 2 {
			t.Errorf("v1 spend_7d %v (want 129.85: every event), v2 %v (want 2: only events since v2)", v1.Value, v2.Value)
		}
		// The same three without full names collide.
		st, body = h.post("/get-online-features", map[string]any{"features": refs, "entities": map[string]any{"user_id": []any{"u1"}}})
		wantProblem(t, st, body, http.StatusBadRequest, "features[1]", "user_spend:spend_7d", "full_feature_names")
	})
}

func jsonOf(t *testing.T, v aggregate.Value) any {
	t.Helper()
	var b []byte
	switch v.Kind {
	case aggregate.KindInt64:
		b = []byte(strconv.FormatInt(v.I, 10))
	default:
		b = []byte("null")
	}
	var out any
	decodeUseNumber(t, b, &out)
	return out
}

func protoKeys(keys ...any) *featuredv1.RepeatedValue {
	rv := &featuredv1.RepeatedValue{}
	for _, k := range keys {
		switch x := k.(type) {
		case string:
			rv.Val = append(rv.Val, &featuredv1.Value{Kind: &featuredv1.Value_StringVal{StringVal: x}})
		case int64:
			rv.Val = append(rv.Val, &featuredv1.Value{Kind: &featuredv1.Value_Int64Val{Int64Val: x}})
		case float64:
			rv.Val = append(rv.Val, &featuredv1.Value{Kind: &featuredv1.Value_DoubleVal{DoubleVal: x}})
		}
	}
	return rv
}

// errorResponse is the JSON of an error.
type errorResponse struct {
	Error struct {
		Status   int    `json:"status"`
		Message  string `json:"message"`
		Problems []struct {
			Field  string `json:"field"`
			Value  string `json:"value"`
			Reason string `json:"reason"`
		} `json:"problems"`
	} `json:"error"`
}

// featuredError returns the featured error of an error body. Feast's
// endpoint sends a JSON string (Feast's error detail) whose content holds
// it under "error"; every other route sends it as is.
func featuredError(body []byte) []byte {
	var inner string
	if json.Unmarshal(body, &inner) == nil {
		return []byte(inner)
	}
	return body
}

// wantProblem checks an error response: its status, and a problem naming
// field (and value, if not empty) whose reason contains reason.
func wantProblem(t *testing.T, st int, body []byte, wantStatus int, field, value, reason string) {
	t.Helper()
	if st != wantStatus {
		t.Fatalf("status %d, want %d: %s", st, wantStatus, body)
	}
	var e errorResponse
	if err := json.Unmarshal(featuredError(body), &e); err != nil {
		t.Fatalf("error body %s: %v", body, err)
	}
	if e.Error.Status != wantStatus || e.Error.Message == "" {
		t.Errorf("error body %s: status %d", body, e.Error.Status)
	}
	if field == "" {
		if !strings.Contains(e.Error.Message, reason) {
			t.Errorf("error %q does not say %q", e.Error.Message, reason)
		}
		return
	}
	for _, p := range e.Error.Problems {
		if p.Field == field && (value == "" || p.Value == value) && strings.Contains(p.Reason, reason) {
			return
		}
	}
	t.Errorf("no problem {field %q, value %q, reason ~%q} in %s", field, value, reason, body)
}

func TestBadRequests(t *testing.T) {
	h := newHarness(t, serving.Options{})
	seed(h)
	lookup := func() []byte {
		t.Helper()
		st, body := h.post("/v1/features", map[string]any{"features": userRefs, "entities": map[string]any{"user_id": userKeys}})
		if st != http.StatusOK {
			t.Fatalf("%d %s", st, body)
		}
		return body
	}
	before := lookup()
	genBefore := h.reg.Snapshot().Generation()

	type tc struct {
		name        string
		method      string
		path        string
		contentType string
		body        string
		status      int
		field       string
		value       string
		reason      string
	}
	ent := `"entities":{"user_id":["u1"]}`
	tests := []tc{
		{"unknown feature", "POST", "/v1/features", "", `{"features":["user_spend:spend_7d","user_spend:nope"],` + ent + `}`,
			400, "features[1]", "user_spend:nope", "unknown feature"},
		{"every unknown item named", "POST", "/v1/features", "", `{"features":["nope:a","user_spend:spend_7d","user_spend@v9:spend_7d"],` + ent + `}`,
			400, "features[2]", "user_spend@v9:spend_7d", "unknown version"},
		{"unknown view", "POST", "/v1/features", "", `{"features":["nope:a"],` + ent + `}`,
			400, "features[0]", "nope:a", "unknown view"},
		{"bad reference", "POST", "/v1/features", "", `{"features":["user_spend"],` + ent + `}`,
			400, "features[0]", "user_spend", "bad feature reference"},
		{"feast output name is not a reference", "POST", "/v1/features", "", `{"features":["user_spend__spend_7d"],` + ent + `}`,
			400, "features[0]", "user_spend__spend_7d", "view:feature"},
		{"unknown service", "POST", "/v1/features", "", `{"feature_service":"nope",` + ent + `}`,
			400, "feature_service", "nope", "unknown service"},
		{"features and service", "POST", "/v1/features", "", `{"features":["user_spend:spend_7d"],"feature_service":"fraud_model_v1",` + ent + `}`,
			400, "feature_service", "fraud_model_v1", "not both"},
		{"no features", "POST", "/v1/features", "", `{` + ent + `}`,
			400, "features", "", "missing"},
		{"empty features", "POST", "/v1/features", "", `{"features":[],` + ent + `}`,
			400, "features", "", "empty"},
		{"no entities", "POST", "/v1/features", "", `{"features":["user_spend:spend_7d"]}`,
			400, "entities", "", "missing"},
		{"wrong join key", "POST", "/v1/features", "", `{"features":["user_spend:spend_7d"],"entities":{"merchant_id":[1]}}`,
			400, "entities.merchant_id", "merchant_id", `join key "user_id"`},
		{"two join keys", "POST", "/v1/features", "", `{"features":["user_spend:spend_7d"],"entities":{"user_id":["u1"],"merchant_id":[1]}}`,
			400, "entities.merchant_id", "merchant_id", "not the join key"},
		{"views of different entities", "POST", "/v1/features", "", `{"features":["user_spend:spend_7d","merchant_stats:volume_1d"],` + ent + `}`,
			400, "features[1]", "merchant_stats:volume_1d", "one request serves one entity"},
		{"int key for a string entity", "POST", "/v1/features", "", `{"features":["user_spend:spend_7d"],"entities":{"user_id":["u1",5]}}`,
			400, "entities.user_id[1]", "5", "string keys"},
		{"string key for an int entity", "POST", "/v1/features", "", `{"features":["merchant_stats:volume_1d"],"entities":{"merchant_id":["42"]}}`,
			400, "entities.merchant_id[0]", "42", "int64 keys"},
		{"float key", "POST", "/v1/features", "", `{"features":["merchant_stats:volume_1d"],"entities":{"merchant_id":[4.2]}}`,
			400, "entities.merchant_id[0]", "", "not an integer"},
		{"malformed JSON", "POST", "/v1/features", "", `{"features":["user_spend:spend_7d"],` + ent,
			400, "", "", "offset 65: expected ',' or '}', found end of body"},
		{"not JSON", "POST", "/v1/features", "", `features=a`,
			400, "", "", "expected a JSON object"},
		{"wrong type", "POST", "/v1/features", "", `{"features":"user_spend:spend_7d"}`,
			400, "features", "", "offset 12: expected an array"},
		{"native wants JSON", "POST", "/v1/features", "text/csv", `{}`,
			415, "", "", "text/csv"},
		{"no route", "GET", "/v2/nothing", "", ``, 404, "", "", "no route"},
		{"wrong method", "GET", "/get-online-features", "", ``, 405, "", "", "GET"},
		{"push unknown source", "POST", "/v1/push", "", `{"source":"nope","events":[{"user_id":"u1","ts":1}]}`,
			404, "", "", "unknown source"},
		{"push no source", "POST", "/v1/push", "", `{"events":[{"user_id":"u1","ts":1}]}`,
			400, "source", "", "missing"},
		{"push no events", "POST", "/v1/push", "", `{"source":"transactions","events":[]}`,
			400, "", "", "no events"},
		{"push unknown field", "POST", "/v1/push", "", `{"source":"transactions","event":[]}`,
			400, "", "", `unknown field "event"`},
		{"push malformed", "POST", "/v1/push", "", `{"source":"transactions","events":[{]}`,
			400, "", "", "offset"},
		{"push wants JSON", "POST", "/v1/push", "application/x-www-form-urlencoded", `source=x`,
			415, "", "", "application/json"},
		{"apply invalid", "POST", "/v1/apply", "application/yaml", "entities:\n  - {name: u, join_key: k, type: float}\n",
			400, "entities[0].type", "", "float"},
		{"apply malformed", "POST", "/v1/apply", "application/json", `{"entities": [}`,
			400, "", "", "invalid"},
		{"apply wrong type", "POST", "/v1/apply", "application/xml", `<x/>`,
			415, "", "", "application/xml"},
		{"plan invalid", "POST", "/v1/plan", "", "feature_views:\n  - {name: v, entity: nope, source: transactions, ttl: 1d, features: []}\n",
			400, "", "", "nope"},
		{"delete unknown view", "DELETE", "/v1/views/nope", "", ``, 404, "", "", "unknown view"},
		{"delete unknown version", "DELETE", "/v1/views/user_spend?version=9", "", ``, 404, "", "", "no live version 9"},
		{"delete bad version", "DELETE", "/v1/views/user_spend?version=x", "", ``, 400, "version", "x", "version number"},
		{"delete version of a source", "DELETE", "/v1/sources/transactions?version=1", "", ``, 400, "version", "1", "only views"},
		{"delete view in use", "DELETE", "/v1/views/user_spend", "", ``, 409, "", "", "fraud_model_v1"},
		{"delete source in use", "DELETE", "/v1/sources/transactions", "", ``, 409, "", "", "user_spend"},
		{"delete unknown service", "DELETE", "/v1/services/nope", "", ``, 404, "", "", "unknown service"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, body := h.do(tt.method, tt.path, tt.contentType, []byte(tt.body))
			wantProblem(t, st, body, tt.status, tt.field, tt.value, tt.reason)
		})
	}
	t.Run("body too large", func(t *testing.T) {
		big := `{"features":["user_spend:spend_7d"],"entities":{"user_id":["` + strings.Repeat("x", serving.DefaultMaxBodyBytes) + `"]}}`
		st, body := h.do("POST", "/get-online-features", "", []byte(big))
		wantProblem(t, st, body, http.StatusRequestEntityTooLarge, "", "", "too large")
	})
	t.Run("grpc", func(t *testing.T) {
		ctx := context.Background()
		_, err := h.serving.GetOnlineFeatures(ctx, &featuredv1.GetOnlineFeaturesRequest{
			Kind:     &featuredv1.GetOnlineFeaturesRequest_Features{Features: &featuredv1.FeatureList{Val: []string{"user_spend:spend_7d", "user_spend:nope"}}},
			Entities: map[string]*featuredv1.RepeatedValue{"user_id": protoKeys("u1")},
		})
		wantCode(t, err, codes.InvalidArgument, `features[1] "user_spend:nope"`)
		_, err = h.serving.GetOnlineFeatures(ctx, &featuredv1.GetOnlineFeaturesRequest{
			Kind:     &featuredv1.GetOnlineFeaturesRequest_Features{Features: &featuredv1.FeatureList{Val: []string{"user_spend:spend_7d"}}},
			Entities: map[string]*featuredv1.RepeatedValue{"user_id": protoKeys("u1", 1.5)},
		})
		wantCode(t, err, codes.InvalidArgument, "entities.user_id[1]")
		_, err = h.serving.GetOnlineFeatures(ctx, &featuredv1.GetOnlineFeaturesRequest{
			Kind:     &featuredv1.GetOnlineFeaturesRequest_FeatureService{FeatureService: "nope"},
			Entities: map[string]*featuredv1.RepeatedValue{"user_id": protoKeys("u1")},
		})
		wantCode(t, err, codes.InvalidArgument, "unknown service")
		_, err = h.ingest.Push(ctx, &featuredv1.PushRequest{Source: "nope", Events: []*featuredv1.Event{{}}})
		wantCode(t, err, codes.NotFound, "unknown source")
		_, err = h.registry.Apply(ctx, &featuredv1.ApplyRequest{Definitions: "entities: [{name: u, join_key: k, type: float}]"})
		wantCode(t, err, codes.InvalidArgument, "entities[0].type")
		err = h.registryDelete(ctx, "view", "nope", 0)
		wantCode(t, err, codes.NotFound, "unknown view")
		err = h.registryDelete(ctx, "table", "x", 0)
		wantCode(t, err, codes.InvalidArgument, "kind")
		ctxDone, cancel := context.WithCancel(ctx)
		cancel()
		_, err = h.serving.GetOnlineFeatures(ctxDone, &featuredv1.GetOnlineFeaturesRequest{})
		wantCode(t, err, codes.Canceled, "")
	})
	t.Run("atomic push rejected", func(t *testing.T) {
		events := []map[string]any{
			{"user_id": "u1", "ts": nowMillis - minute, "amount": 1000.0},
			{"user_id": "u1", "ts": "yesterday", "amount": 1.0},
		}
		st, body := h.post("/v1/push", map[string]any{"source": "transactions", "events": events, "atomic": true})
		if st != http.StatusUnprocessableEntity {
			t.Fatalf("atomic push with a bad row: %d %s", st, body)
		}
		var res struct {
			Accepted int `json:"accepted"`
			Rejected []struct {
				Index int    `json:"index"`
				Field string `json:"field"`
			} `json:"rejected"`
			Error struct{ Status int } `json:"error"`
		}
		if err := json.Unmarshal(body, &res); err != nil {
			t.Fatal(err)
		}
		if res.Accepted != 0 || len(res.Rejected) != 1 || res.Rejected[0].Index != 1 || res.Rejected[0].Field != "ts" || res.Error.Status != 422 {
			t.Errorf("atomic push result: %s", body)
		}
		// Over gRPC: InvalidArgument with the rows in the details.
		_, err := h.ingest.Push(context.Background(), &featuredv1.PushRequest{Source: "transactions", Atomic: true, Events: []*featuredv1.Event{
			{Fields: map[string]*featuredv1.Value{"user_id": {Kind: &featuredv1.Value_StringVal{StringVal: "u1"}}, "ts": {Kind: &featuredv1.Value_Int64Val{Int64Val: nowMillis}}}},
			{Fields: map[string]*featuredv1.Value{"user_id": {Kind: &featuredv1.Value_Int64Val{Int64Val: 1}}, "ts": {Kind: &featuredv1.Value_Int64Val{Int64Val: nowMillis}}}},
		}})
		wantCode(t, err, codes.InvalidArgument, "atomic")
		st2, _ := status.FromError(err)
		var details *featuredv1.PushResponse
		for _, d := range st2.Details() {
			if pr, ok := d.(*featuredv1.PushResponse); ok {
				details = pr
			}
		}
		if details == nil || len(details.GetRejected()) != 1 || details.GetRejected()[0].GetIndex() != 1 || details.GetRejected()[0].GetField() != "user_id" {
			t.Errorf("gRPC atomic push details: %v", st2.Details())
		}
	})

	// Nothing above changed the store or the registry.
	if after := lookup(); !bytes.Equal(before, after) {
		t.Errorf("bad requests changed the store:\nbefore %s\n after %s", before, after)
	}
	if g := h.reg.Snapshot().Generation(); g != genBefore {
		t.Errorf("bad requests changed the registry: generation %d -> %d", genBefore, g)
	}
}

func (h *harness) registryDelete(ctx context.Context, kind, name string, version int) error {
	_, err := h.registry.Delete(ctx, &featuredv1.DeleteRequest{Kind: kind, Name: name, Version: int32(version)})
	return err
}

func wantCode(t *testing.T, err error, code codes.Code, msg string) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok || st.Code() != code || !strings.Contains(st.Message(), msg) {
		t.Errorf("got %v, want %v containing %q", err, code, msg)
	}
}

func TestPush(t *testing.T) {
	h := newHarness(t, serving.Options{})
	h.apply(definitions)
	t.Run("partial", func(t *testing.T) {
		events := []map[string]any{
			{"user_id": "u1", "ts": nowMillis - minute, "amount": 5.5, "merchant": "m1"},
			{"user_id": "u1", "ts": nowMillis - minute, "amount": "lots"},
			{"user_id": "u1", "ts": time.UnixMilli(nowMillis - 2*minute).UTC().Format(time.RFC3339), "items": 2},
		}
		st, body := h.post("/v1/push", map[string]any{"source": "transactions", "events": events})
		if st != http.StatusOK {
			t.Fatalf("%d %s", st, body)
		}
		var res struct {
			Accepted int `json:"accepted"`
			Rejected []struct {
				Index  int    `json:"index"`
				Field  string `json:"field"`
				Reason string `json:"reason"`
				Code   string `json:"code"`
			} `json:"rejected"`
		}
		if err := json.Unmarshal(body, &res); err != nil {
			t.Fatal(err)
		}
		if res.Accepted != 2 || len(res.Rejected) != 1 || res.Rejected[0].Index != 1 || res.Rejected[0].Field != "amount" || res.Rejected[0].Code != "wrong_type" {
			t.Fatalf("push result %s", body)
		}
		h.mu.Lock()
		h.pushed["transactions/u1"] = append(h.pushed["transactions/u1"],
			h.record("transactions", event{key: "u1", ms: nowMillis - minute, amount: f64(5.5), merchant: str("m1")}),
			h.record("transactions", event{key: "u1", ms: nowMillis - 2*minute, items: i64(2)}))
		h.mu.Unlock()
		st, body = h.post("/v1/features", map[string]any{"features": userRefs, "entities": map[string]any{"user_id": []any{"u1"}}})
		if st != http.StatusOK {
			t.Fatalf("%d %s", st, body)
		}
		checkNative(t, h, body, "user_id", []any{"u1"}, columnsOf(userNames, userRefs))
	})
	t.Run("grpc", func(t *testing.T) {
		resp, err := h.ingest.Push(context.Background(), &featuredv1.PushRequest{Source: "transactions", Events: []*featuredv1.Event{
			{Fields: map[string]*featuredv1.Value{
				"user_id": {Kind: &featuredv1.Value_StringVal{StringVal: "u2"}},
				"ts":      {Kind: &featuredv1.Value_StringVal{StringVal: time.UnixMilli(nowMillis - 3*minute).UTC().Format(time.RFC3339)}},
				"amount":  {Kind: &featuredv1.Value_DoubleVal{DoubleVal: 4}},
			}},
		}})
		if err != nil || resp.GetAccepted() != 1 || len(resp.GetRejected()) != 0 {
			t.Fatalf("gRPC push: %v %v", resp, err)
		}
		h.mu.Lock()
		h.pushed["transactions/u2"] = append(h.pushed["transactions/u2"], h.record("transactions", event{key: "u2", ms: nowMillis - 3*minute, amount: f64(4)}))
		h.mu.Unlock()
		got, err := h.serving.GetOnlineFeatures(context.Background(), &featuredv1.GetOnlineFeaturesRequest{
			Kind:     &featuredv1.GetOnlineFeaturesRequest_Features{Features: &featuredv1.FeatureList{Val: userRefs}},
			Entities: map[string]*featuredv1.RepeatedValue{"user_id": protoKeys("u2")},
		})
		if err != nil {
			t.Fatal(err)
		}
		checkProto(t, h, got, "user_id", []any{"u2"}, columnsOf(userNames, userRefs))
	})
	// A retry with the batch_id of a push that succeeded applies nothing and
	// answers as the first push did, flagged duplicate.
	t.Run("batch_id retry", func(t *testing.T) {
		e := event{key: "u3", ms: nowMillis - 4*minute, amount: f64(7), merchant: str("m3")}
		for i, atomic := range []bool{false, true, true} {
			st, body := h.post("/v1/push", map[string]any{"source": "transactions", "events": []any{e.json("transactions")}, "batch_id": "http-1", "atomic": atomic})
			var res struct {
				Accepted  int    `json:"accepted"`
				BatchID   string `json:"batch_id"`
				Duplicate bool   `json:"duplicate"`
			}
			if err := json.Unmarshal(body, &res); err != nil {
				t.Fatal(err)
			}
			if st != http.StatusOK || res.Accepted != 1 || res.BatchID != "http-1" || res.Duplicate != (i > 0) {
				t.Fatalf("push %d: %d %s, want duplicate %v", i, st, body, i > 0)
			}
		}
		ge := &featuredv1.Event{Fields: map[string]*featuredv1.Value{
			"user_id": {Kind: &featuredv1.Value_StringVal{StringVal: "u3"}},
			"ts":      {Kind: &featuredv1.Value_Int64Val{Int64Val: nowMillis - 5*minute}},
			"amount":  {Kind: &featuredv1.Value_DoubleVal{DoubleVal: 3}},
		}}
		for i := 0; i < 2; i++ {
			resp, err := h.ingest.Push(context.Background(), &featuredv1.PushRequest{Source: "transactions", BatchId: "grpc-1", Atomic: i == 1, Events: []*featuredv1.Event{ge}})
			if err != nil || resp.GetAccepted() != 1 || resp.GetBatchId() != "grpc-1" || resp.GetDuplicate() != (i > 0) {
				t.Fatalf("gRPC push %d: %v %v, want duplicate %v", i, resp, err, i > 0)
			}
		}
		h.mu.Lock()
		h.pushed["transactions/u3"] = append(h.pushed["transactions/u3"], h.record("transactions", e),
			h.record("transactions", event{key: "u3", ms: nowMillis - 5*minute, amount: f64(3)}))
		h.mu.Unlock()
		st, body := h.post("/v1/features", map[string]any{"features": userRefs, "entities": map[string]any{"user_id": []any{"u3"}}})
		if st != http.StatusOK {
			t.Fatalf("%d %s", st, body)
		}
		checkNative(t, h, body, "user_id", []any{"u3"}, columnsOf(userNames, userRefs))
	})
	t.Run("atomic gets a batch_id", func(t *testing.T) {
		e := event{key: "u4", ms: nowMillis - minute, amount: f64(1)}
		st, body := h.post("/v1/push", map[string]any{"source": "transactions", "events": []any{e.json("transactions")}, "atomic": true})
		var res struct {
			BatchID string `json:"batch_id"`
		}
		if err := json.Unmarshal(body, &res); err != nil || st != http.StatusOK || res.BatchID == "" {
			t.Fatalf("atomic push without batch_id: %d %s", st, body)
		}
		h.mu.Lock()
		h.pushed["transactions/u4"] = append(h.pushed["transactions/u4"], h.record("transactions", e))
		h.mu.Unlock()
	})
	t.Run("bad batch_id", func(t *testing.T) {
		e := event{key: "u5", ms: nowMillis - minute, amount: f64(1)}
		st, body := h.post("/v1/push", map[string]any{"source": "transactions", "events": []any{e.json("transactions")}, "batch_id": strings.Repeat("x", 129)})
		if st != http.StatusBadRequest || !strings.Contains(string(body), "batch_id") {
			t.Fatalf("push with a 129-byte batch_id: %d %s", st, body)
		}
		_, err := h.ingest.Push(context.Background(), &featuredv1.PushRequest{Source: "transactions", BatchId: "a\x00b", Events: []*featuredv1.Event{{}}})
		wantCode(t, err, codes.InvalidArgument, "batch_id")
	})
}

func TestRegistryAPI(t *testing.T) {
	h := newHarness(t, serving.Options{})
	ctx := context.Background()

	st, body := h.do("POST", "/v1/plan", "application/yaml", []byte(definitions))
	if st != http.StatusOK || !bytes.Contains(body, []byte(`"action":"create"`)) || !bytes.Contains(body, []byte(`"text":"`)) {
		t.Fatalf("plan: %d %s", st, body)
	}
	if g := h.reg.Snapshot().Generation(); g != 0 {
		t.Fatalf("plan changed the registry: generation %d", g)
	}
	// Apply as JSON over gRPC, the same document.
	resp, err := h.registry.Apply(ctx, &featuredv1.ApplyRequest{Definitions: definitions})
	if err != nil || len(resp.GetChanges()) == 0 || !strings.Contains(resp.GetText(), "user_spend") {
		t.Fatalf("gRPC apply: %v %v", resp, err)
	}
	plan, err := h.registry.Plan(ctx, &featuredv1.PlanRequest{Definitions: definitions})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range plan.GetChanges() {
		if c.GetAction() != "unchanged" {
			t.Errorf("re-plan of the applied document: %v", c)
		}
	}
	h.apply(strings.Replace(definitions, "ttl: 1d", "ttl: 2d", 1))

	st, body = h.do("GET", "/v1/registry", "", nil)
	if st != http.StatusOK {
		t.Fatalf("registry: %d %s", st, body)
	}
	var reg struct {
		Generation uint64 `json:"generation"`
		Entities   []struct {
			Name string `json:"name"`
		} `json:"entities"`
		FeatureViews []struct {
			Name     string `json:"name"`
			Version  int    `json:"version"`
			Latest   bool   `json:"latest"`
			TTL      string `json:"ttl"`
			JoinKey  string `json:"join_key"`
			Features []struct {
				Name string `json:"name"`
				Hop  string `json:"hop"`
			} `json:"features"`
		} `json:"feature_views"`
		FeatureServices []struct {
			Name     string   `json:"name"`
			Features []string `json:"features"`
		} `json:"feature_services"`
	}
	if err := json.Unmarshal(body, &reg); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, v := range reg.FeatureViews {
		got = append(got, v.Name+"@v"+strconv.Itoa(v.Version)+":"+v.TTL+":"+strconv.FormatBool(v.Latest)+":"+v.JoinKey)
	}
	want := "merchant_stats@v1:1d:false:merchant_id,merchant_stats@v2:2d:true:merchant_id,user_spend@v1:8d:true:user_id"
	if strings.Join(got, ",") != want || len(reg.Entities) != 2 || len(reg.FeatureServices) != 1 || reg.Generation != 2 {
		t.Errorf("registry views %s, want %s\n%s", strings.Join(got, ","), want, body)
	}
	lv, err := h.registry.ListViews(ctx, &featuredv1.ListViewsRequest{})
	if err != nil || len(lv.GetViews()) != 3 || lv.GetViews()[2].GetFeatures()[0].GetWindowMillis() != 7*day {
		t.Errorf("ListViews: %v %v", lv, err)
	}
	gr, err := h.registry.GetRegistry(ctx, &featuredv1.GetRegistryRequest{})
	if err != nil || len(gr.GetEntities()) != 2 || len(gr.GetSources()) != 2 || len(gr.GetViews()) != 3 || len(gr.GetServices()) != 1 ||
		gr.GetSources()[1].GetFields()["amount"] != "float64" {
		t.Errorf("GetRegistry: %v %v", gr, err)
	}

	// Delete one version: it is no longer servable, the other is.
	h.push("merchant_events", event{key: int64(1), ms: nowMillis - minute, amount: f64(1)})
	st, body = h.do("DELETE", "/v1/views/merchant_stats?version=1", "", nil)
	if st != http.StatusOK || !bytes.Contains(body, []byte(`"action":"delete"`)) {
		t.Fatalf("delete v1: %d %s", st, body)
	}
	st, body = h.post("/get-online-features", map[string]any{"features": []string{"merchant_stats@v1:volume_1d"}, "entities": map[string]any{"merchant_id": []any{1}}})
	wantProblem(t, st, body, http.StatusNotFound, "features[0]", "merchant_stats@v1:volume_1d", "unknown version") // Feast's FeatureViewVersionNotFound
	st, body = h.post("/get-online-features", map[string]any{"features": []string{"merchant_stats@v2:volume_1d"}, "entities": map[string]any{"merchant_id": []any{1}}})
	if st != http.StatusOK || !bytes.Contains(body, []byte(`"values":[1.0]`)) {
		t.Errorf("v2 after deleting v1: %d %s", st, body)
	}
	// Delete over gRPC, then the service and the view over HTTP.
	if err := h.registryDelete(ctx, "view", "merchant_stats", 0); err != nil {
		t.Fatal(err)
	}
	if st, body := h.do("DELETE", "/v1/services/fraud_model_v1", "", nil); st != http.StatusOK {
		t.Fatalf("delete service: %d %s", st, body)
	}
	if st, body := h.do("DELETE", "/v1/views/user_spend", "", nil); st != http.StatusOK {
		t.Fatalf("delete view: %d %s", st, body)
	}
	st, body = h.post("/get-online-features", map[string]any{"features": []string{"user_spend:spend_7d"}, "entities": map[string]any{"user_id": []any{"u1"}}})
	wantProblem(t, st, body, http.StatusNotFound, "features[0]", "user_spend:spend_7d", "unknown view")
}

func TestLimits(t *testing.T) {
	h := newHarness(t, serving.Options{MaxEntities: 2, MaxFeatures: 2, MaxBodyBytes: 1024})
	seed(h)
	tests := []struct {
		name   string
		body   map[string]any
		status int
		field  string
		reason string
	}{
		{"at the limits", map[string]any{"features": userRefs[:2], "entities": map[string]any{"user_id": []any{"u1", "u2"}}}, 200, "", ""},
		{"too many entities", map[string]any{"features": userRefs[:1], "entities": map[string]any{"user_id": []any{"u1", "u2", "u3"}}}, 400, "entities.user_id", "more than 2 entity rows"},
		{"too many features", map[string]any{"features": userRefs[:3], "entities": map[string]any{"user_id": []any{"u1"}}}, 400, "features", "more than 2 features"},
		{"body too large", map[string]any{"features": userRefs[:1], "entities": map[string]any{"user_id": []any{strings.Repeat("u", 1100)}}}, 413, "", "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, body := h.post("/get-online-features", tt.body)
			if tt.status == 200 {
				if st != 200 {
					t.Fatalf("%d %s", st, body)
				}
				return
			}
			wantProblem(t, st, body, tt.status, tt.field, "", tt.reason)
		})
	}
	t.Run("feature service over the limit", func(t *testing.T) {
		h.apply(definitions + "  - name: wide\n    features: [user_spend:spend_7d, user_spend:txn_count_1h, user_spend:last_merchant]\n")
		st, body := h.post("/get-online-features", map[string]any{"feature_service": "wide", "entities": map[string]any{"user_id": []any{"u1"}}})
		wantProblem(t, st, body, 400, "features", "", "more than 2 features")
	})
	t.Run("grpc", func(t *testing.T) {
		_, err := h.serving.GetOnlineFeatures(context.Background(), &featuredv1.GetOnlineFeaturesRequest{
			Kind:     &featuredv1.GetOnlineFeaturesRequest_Features{Features: &featuredv1.FeatureList{Val: userRefs[:1]}},
			Entities: map[string]*featuredv1.RepeatedValue{"user_id": protoKeys("a", "b", "c")},
		})
		wantCode(t, err, codes.InvalidArgument, "more than 2 entity rows")
	})
}

func TestHealthAndReadiness(t *testing.T) {
	h := newHarness(t, serving.Options{})
	hc := healthgrpc.NewHealthClient(h.conn)
	check := func(ready bool) {
		t.Helper()
		st, _ := h.do("GET", "/healthz", "", nil)
		if st != http.StatusOK {
			t.Errorf("healthz: %d", st)
		}
		st, _ = h.do("GET", "/readyz", "", nil)
		want := http.StatusOK
		wantHealth := healthgrpc.HealthCheckResponse_SERVING
		if !ready {
			want, wantHealth = http.StatusServiceUnavailable, healthgrpc.HealthCheckResponse_NOT_SERVING
		}
		if st != want {
			t.Errorf("readyz with ready=%v: %d, want %d", ready, st, want)
		}
		for _, svc := range []string{"", "featured.v1.ServingService"} {
			resp, err := hc.Check(context.Background(), &healthgrpc.HealthCheckRequest{Service: svc})
			if err != nil || resp.GetStatus() != wantHealth {
				t.Errorf("gRPC health %q with ready=%v: %v %v", svc, ready, resp, err)
			}
		}
	}
	check(true)
	h.srv.SetReady(false)
	check(false)
	st, body := h.post("/get-online-features", map[string]any{"features": userRefs, "entities": map[string]any{"user_id": []any{"u1"}}})
	wantProblem(t, st, body, http.StatusServiceUnavailable, "", "", "not ready")
	_, err := h.serving.GetOnlineFeatures(context.Background(), &featuredv1.GetOnlineFeaturesRequest{})
	wantCode(t, err, codes.Unavailable, "not ready")
	h.srv.SetReady(true)
	check(true)
}

func TestOptions(t *testing.T) {
	var o serving.Options
	o.EnsureDefaults()
	if o.MaxEntities != 1000 || o.MaxBodyBytes != 4<<20 || o.MaxFeatures != 1000 || o.Now == nil || o.Logger == nil {
		t.Errorf("defaults: %+v", o)
	}
	if err := o.Validate(); err != nil {
		t.Error(err)
	}
	for _, bad := range []serving.Options{{MaxEntities: -1}, {MaxFeatures: -1}, {MaxBodyBytes: -1}, {MaxBodyBytes: 2 << 30}} {
		if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "serving: options: max") {
			t.Errorf("Validate(%+v) = %v", bad, err)
		}
	}
	if _, err := serving.New(nil, nil, nil, serving.Options{}); err == nil {
		t.Error("New with nil parts succeeded")
	}
}

// TestReadyChecks: /readyz fails for a failing check, naming it, and not
// for a failing Warn check; ?verbose lists every check, Kubernetes style.
func TestReadyChecks(t *testing.T) {
	var problem, warning atomic.Pointer[error]
	load := func(p *atomic.Pointer[error]) func() error {
		return func() error {
			if e := p.Load(); e != nil {
				return *e
			}
			return nil
		}
	}
	h := newHarness(t, serving.Options{ReadyChecks: []serving.Check{
		{Name: "kafka", Check: load(&problem)},
		{Name: "disk", Check: load(&warning), Warn: true},
	}})
	h.apply(definitions)
	readyz := func(query string, wantStatus int, want string) {
		t.Helper()
		st, body := h.do("GET", "/readyz"+query, "", nil)
		if st != wantStatus || string(body) != want {
			t.Fatalf("GET /readyz%s: %d %q, want %d %q", query, st, body, wantStatus, want)
		}
	}
	readyz("", http.StatusOK, "ok\n")
	readyz("?verbose", http.StatusOK, "[+]ready ok\n[+]store ok\n[+]kafka ok\n[+]disk ok\nreadyz check passed\n")

	warn := errors.New("disk 91% full")
	warning.Store(&warn)
	readyz("", http.StatusOK, "ok\n")
	readyz("?verbose", http.StatusOK, "[+]ready ok\n[+]store ok\n[+]kafka ok\n[!]disk warn: disk 91% full\nreadyz check passed\n")

	err := errors.New(`kafka source "tx" (topic "t"): topic does not exist`)
	problem.Store(&err)
	readyz("", http.StatusServiceUnavailable, "[-]kafka failed: kafka source \"tx\" (topic \"t\"): topic does not exist\nreadyz check failed\n")
	readyz("?verbose=1", http.StatusServiceUnavailable, "[+]ready ok\n[+]store ok\n[-]kafka failed: kafka source \"tx\" (topic \"t\"): topic does not exist\n"+
		"[!]disk warn: disk 91% full\nreadyz check failed\n")
	h.srv.SetReady(false)
	readyz("", http.StatusServiceUnavailable, "[-]ready failed: serving: not ready\n[-]kafka failed: kafka source \"tx\" (topic \"t\"): topic does not exist\nreadyz check failed\n")
	h.srv.SetReady(true)
	if st, body := h.do("GET", "/livez", "", nil); st != http.StatusOK || string(body) != "ok\n" {
		t.Fatalf("livez while a check fails: %d %q", st, body)
	}
	// Lookups still work: the store serves what it holds.
	if st, body := h.post("/get-online-features", map[string]any{"features": userRefs, "entities": map[string]any{"user_id": []any{"u1"}}}); st != http.StatusOK {
		t.Fatalf("lookup while a ready check fails: %d %s", st, body)
	}
}
