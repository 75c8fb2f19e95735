package serving_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/featured-dev/featured/serving"
)

// FuzzFeastLookup sends arbitrary bodies through the whole lookup path (the
// decoder, plan resolution against a real registry, entity checks, Pebble
// reads, the encoder): every answer is 200 or a 4xx with a JSON error, never
// a 500 or a panic, and every 200 is valid JSON.
func FuzzFeastLookup(f *testing.F) {
	for _, seed := range []string{
		`{"features":["user_spend:spend_7d","user_spend:last_3_merchants"],"entities":{"user_id":["u1","u2","u3"]}}`,
		`{"feature_service":"fraud_model_v1","entities":{"user_id":["u1"]},"full_feature_names":true}`,
		`{"features":["merchant_stats:volume_1d"],"entities":{"merchant_id":[42,-1]}}`,
		`{"features":["user_spend@v1:spend_7d","user_spend@v0:x","nope:y",":","@:"],"entities":{"user_id":[]}}`,
		`{"features":["user_spend:spend_7d","merchant_stats:volume_1d"],"entities":{"user_id":["u1"],"merchant_id":[1]}}`,
		`{"features":["user_spend:spend_7d","user_spend:spend_7d"],"entities":{"user_id":["\u0000"]}}`,
		`{"features":[],"entities":{}}`,
		`{}`, `[]`, `null`, ``,
	} {
		f.Add([]byte(seed))
	}
	h := newHarness(f, serving.Options{MaxEntities: 50, MaxFeatures: 20, MaxBodyBytes: 16 << 10})
	seed(h)
	handler := h.srv.HTTPHandler()
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, path := range []string{"/get-online-features", "/v1/features"} {
			req := httptest.NewRequest("POST", path, bytes.NewReader(body))
			w := httptest.NewRecorder()
			handler.ServeHTTP(w, req)
			switch {
			case w.Code == http.StatusOK:
			case w.Code >= 400 && w.Code < 500:
				var e errorResponse
				if err := json.Unmarshal(featuredError(w.Body.Bytes()), &e); err != nil || e.Error.Status != w.Code {
					t.Fatalf("%s %q: %d with error body %s", path, body, w.Code, w.Body.Bytes())
				}
			default:
				t.Fatalf("%s %q: %d %s", path, body, w.Code, w.Body.Bytes())
			}
			if !json.Valid(w.Body.Bytes()) {
				t.Fatalf("%s %q: response is not JSON: %s", path, body, w.Body.Bytes())
			}
		}
	})
}
