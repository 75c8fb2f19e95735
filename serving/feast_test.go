package serving_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/featured-dev/featured/serving"
)

// TestFeastLookupGaps: what Feast's feature server answers on
// /get-online-features and featured did not (issue 13): features of several
// entities joined per row, an extra join key returned as a column, int64
// keys sent as strings, view@latest, errors in Feast's shape and classes,
// and the view versions in the metadata.
func TestFeastLookupGaps(t *testing.T) {
	h := newHarness(t, serving.Options{})
	seed(h)
	f := func(name, body string, wantStatus int, want string) {
		t.Helper()
		st, got := h.do("POST", "/get-online-features", "", []byte(body))
		if st != wantStatus || !strings.Contains(string(got), want) {
			t.Errorf("%s: %d %s\nwant %d containing %s", name, st, got, wantStatus, want)
		}
	}
	// 1. Two entities in one request, each view reading its own column.
	f("two entities", `{"features":["user_spend:spend_7d","merchant_stats:volume_1d"],"entities":{"user_id":["u1","u9"],"merchant_id":[42,42]}}`,
		http.StatusOK, `{"metadata":{"feature_names":["user_id","merchant_id","spend_7d","volume_1d"]},"results":[`+
			`{"values":["u1","u9"],"statuses":["PRESENT","PRESENT"],"event_timestamps":["1970-01-01T00:00:00Z","1970-01-01T00:00:00Z"]},`+
			`{"values":[42,42],"statuses":["PRESENT","PRESENT"],"event_timestamps":["1970-01-01T00:00:00Z","1970-01-01T00:00:00Z"]},`+
			`{"values":[127.85,null],"statuses":["PRESENT","NOT_FOUND"]`)
	f("entity columns in the order sent", `{"features":["user_spend:spend_7d","merchant_stats:volume_1d"],"entities":{"merchant_id":[42],"user_id":["u1"]}}`,
		http.StatusOK, `"feature_names":["merchant_id","user_id","spend_7d","volume_1d"]`)
	f("rows of different lengths", `{"features":["user_spend:spend_7d","merchant_stats:volume_1d"],"entities":{"user_id":["u1","u2"],"merchant_id":[42]}}`,
		http.StatusBadRequest, `one value per entity row`)
	f("a join key missing", `{"features":["user_spend:spend_7d","merchant_stats:volume_1d"],"entities":{"user_id":["u1"]}}`,
		http.StatusBadRequest, `entities.merchant_id`)
	// 2. A join key the features do not use is returned; a key no entity
	// has is ignored, as Feast ignores it.
	f("extra join key", `{"features":["user_spend:spend_7d"],"entities":{"user_id":["u1"],"merchant_id":["42"],"not_a_key":["x"]}}`,
		http.StatusOK, `{"metadata":{"feature_names":["user_id","merchant_id","spend_7d"]},"results":[{"values":["u1"]`+
			`,"statuses":["PRESENT"],"event_timestamps":["1970-01-01T00:00:00Z"]},{"values":[42],`)
	// 3. int64 keys as decimal strings; anything else refused by row.
	f("int64 key as a string", `{"features":["merchant_stats:volume_1d"],"entities":{"merchant_id":["42","-7"]}}`,
		http.StatusOK, `{"values":[42,-7],`)
	f("not an int64", `{"features":["merchant_stats:volume_1d"],"entities":{"merchant_id":["42","4x"]}}`,
		http.StatusBadRequest, `entities.merchant_id[1]`)
	f("over int64", `{"features":["merchant_stats:volume_1d"],"entities":{"merchant_id":["9223372036854775808"]}}`,
		http.StatusBadRequest, `not a decimal int64`)
	// 4. view@latest.
	f("@latest", `{"features":["merchant_stats@latest:volume_1d"],"entities":{"merchant_id":[42]},"full_feature_names":true}`,
		http.StatusOK, `"feature_names":["merchant_id","merchant_stats__volume_1d"]},"results":[{"values":[42],"statuses":["PRESENT"],"event_timestamps":["1970-01-01T00:00:00Z"]},{"values":[42.5]`)
	// 6. The view versions read.
	f("version metadata", `{"features":["user_spend:spend_7d","merchant_stats:volume_1d"],"entities":{"user_id":["u1"],"merchant_id":[42]},"include_feature_view_version_metadata":true}`,
		http.StatusOK, `{"metadata":{"feature_names":["user_id","merchant_id","spend_7d","volume_1d"],"feature_view_metadata":[{"name":"user_spend","version":1},{"name":"merchant_stats","version":1}]},"results":[`)

	// The native API keeps one entity per request, and its int64 rule.
	st, body := h.do("POST", "/v1/features", "", []byte(`{"features":["user_spend:spend_7d","merchant_stats:volume_1d"],"entities":{"user_id":["u1"],"merchant_id":[42]}}`))
	wantProblem(t, st, body, http.StatusBadRequest, "features[1]", "merchant_stats:volume_1d", "one request serves one entity")
	st, body = h.do("POST", "/v1/features", "", []byte(`{"features":["merchant_stats:volume_1d"],"entities":{"merchant_id":["42"]}}`))
	wantProblem(t, st, body, http.StatusBadRequest, "entities.merchant_id[0]", "42", "int64 keys")
}

// TestFeastErrors: Feast's endpoint answers errors as Feast's server does,
// a JSON string holding {"module","class","message"}, so the Feast SDK
// raises the same exception class.
func TestFeastErrors(t *testing.T) {
	h := newHarness(t, serving.Options{})
	seed(h)
	ent := `"entities":{"user_id":["u1"]}`
	for _, tc := range []struct {
		name, body string
		status     int
		class      string
	}{
		{"unknown view", `{"features":["nope:a"],` + ent + `}`, http.StatusNotFound, "FeatureViewNotFoundException"},
		{"unknown version", `{"features":["user_spend@v9:spend_7d"],` + ent + `}`, http.StatusNotFound, "FeatureViewVersionNotFound"},
		{"unknown feature", `{"features":["user_spend:nope"],` + ent + `}`, http.StatusNotFound, "FeastObjectNotFoundException"},
		{"unknown service", `{"feature_service":"nope",` + ent + `}`, http.StatusNotFound, "FeatureServiceNotFoundException"},
		{"name collision", `{"features":["user_spend:spend_7d","user_spend:spend_7d"],` + ent + `}`, http.StatusBadRequest, "FeatureNameCollisionError"},
		{"first problem decides", `{"features":["bad","nope:a"],` + ent + `}`, http.StatusBadRequest, "FeastError"},
		{"malformed", `{`, http.StatusBadRequest, "FeastError"},
	} {
		st, body := h.do("POST", "/get-online-features", "", []byte(tc.body))
		var detail string
		if err := json.Unmarshal(body, &detail); err != nil {
			t.Errorf("%s: body %s is not a JSON string: %v", tc.name, body, err)
			continue
		}
		var fe struct {
			Module, Class, Message string
			Error                  struct{ Status int }
		}
		if err := json.Unmarshal([]byte(detail), &fe); err != nil || st != tc.status || fe.Module != "feast.errors" ||
			fe.Class != tc.class || fe.Message == "" || fe.Error.Status != st {
			t.Errorf("%s: %d %s (%v), want %d with class %s", tc.name, st, detail, err, tc.status, tc.class)
		}
	}
}
