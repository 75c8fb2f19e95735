package serving_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/featured-dev/featured/serving"
)

// FuzzFeastPush sends arbitrary bodies through Feast's push routes (the
// body decoder, the df's columns, the time parser, ingest's checks, the
// store): every answer is 200 with a JSON result or a 4xx in Feast's error
// shape, never a 500 or a panic.
func FuzzFeastPush(f *testing.F) {
	for _, seed := range []string{
		`{"push_source_name":"driver_stats_push","df":{"driver_id":[1,2],"ts":["2026-11-24 09:00:00",1795510800000],"trips":[1,null],"city":["a","b"],"active":[true,false]}}`,
		`{"push_source_name":"transactions","to":"online_and_offline","df":{"user_id":["u1"],"ts":["2026-11-24T09:00:00Z"],"amount":[1.5]}}`,
		`{"feature_view_name":"driver_hourly","df":{"driver_id":[1],"event_timestamp":["2026-11-24T09:00:00.5"],"conv_rate":[0.5],"created":[null]}}`,
		`{"feature_view_name":"user_spend","df":{"user_id":["u1"]}}`,
		`{"push_source_name":"driver_stats_push","to":"offline","df":{"driver_id":[[1]],"ts":{"0":1}}}`,
		`{"push_source_name":"driver_stats_push","df":{"driver_id":[1e400,-0,"\u0000"],"ts":["2026-13-40 25:61:61","",null]}}`,
		`{"push_source_name":"nope","df":{}}`,
		`{}`, `[]`, `null`, ``,
	} {
		f.Add([]byte(seed))
	}
	h := newHarness(f, serving.Options{MaxBodyBytes: 16 << 10})
	h.apply(definitions)
	h.apply(feastPushDefinitions)
	handler := h.srv.HTTPHandler()
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, path := range []string{"/push", "/write-to-online-store"} {
			req := httptest.NewRequest("POST", path, bytes.NewReader(body))
			w := httptest.NewRecorder()
			handler.ServeHTTP(w, req)
			switch {
			case w.Code == http.StatusOK:
				var res struct {
					Accepted *int `json:"accepted"`
				}
				if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil || res.Accepted == nil {
					t.Fatalf("%s %q: 200 with %s", path, body, w.Body.Bytes())
				}
			case w.Code >= 400 && w.Code < 500:
				var detail struct{ Module, Class, Message string }
				if err := json.Unmarshal(featuredError(w.Body.Bytes()), &detail); err != nil || detail.Class == "" || detail.Message == "" {
					t.Fatalf("%s %q: %d not in Feast's error shape: %s", path, body, w.Code, w.Body.Bytes())
				}
			default:
				t.Fatalf("%s %q: %d %s", path, body, w.Code, w.Body.Bytes())
			}
		}
	})
}
