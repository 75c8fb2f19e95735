package serving

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/featured-dev/featured/internal/jsoncheck"
)

// FuzzDecodeLookup checks that the hand-written decoder never panics, only
// accepts valid JSON that keeps internal/jsoncheck's rules, and agrees with
// encoding/json on what it accepts.
func FuzzDecodeLookup(f *testing.F) {
	for _, seed := range []string{
		`{"features":["user_spend:spend_7d"],"entities":{"user_id":["u1","u2"]}}`,
		`{"feature_service":"fraud","entities":{"entity":[1,2,3]},"full_feature_names":true}`,
		`{"features":["v@v2:f","v:g"],"entities":{"k":[-9223372036854775808]},"x":{"y":[1.5e-3,null,true]}}`,
		`{"features":["\u00e9\ud83d\ude00\\"],"entities":{"k":["\n"]}}`,
		`{"features":null,"feature_service":null,"entities":null}`,
		`{"entities":{"a":[1],"b":[2]}}`,
		`{"features":[1]}`,
		`{"entities":{"k":[1.0]}}`,
		`{"features":["a\ud800"]}`, "{\"features\":[\"\xff\"]}", `{"x":{"a":1,"a":2},"features":[]}`, `{"x":1,"x":2}`,
		`[`, `{`, `{"`, `{"features":[`, `{"features":["\u`, "",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) > 64<<10 {
			return // input cap
		}
		var req lookupRequest
		err := decodeLookup(body, &req, 100, 100)
		if err != nil {
			var se *SyntaxError
			var le *LimitError
			if !errors.As(err, &se) && !errors.As(err, &le) {
				t.Fatalf("decode %q: error %T %v is neither a SyntaxError nor a LimitError", body, err, err)
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("decode accepted invalid JSON %q", body)
		}
		if cerr := jsoncheck.Check(body); cerr != nil {
			t.Fatalf("decode accepted %q, which breaks a rule of every decoder: %v", body, cerr)
		}
		var want struct {
			Features         []string
			FeatureService   *string `json:"feature_service"`
			Entities         map[string][]any
			FullFeatureNames *bool `json:"full_feature_names"`
		}
		// encoding/json matches field names case-insensitively; the decoder,
		// like Feast, does not. Compare only bodies where that cannot matter.
		if jerr := json.Unmarshal(body, &want); jerr != nil {
			return
		}
		got := plain(&req)
		if req.hasFeatures && !equalStrings(got.features, want.Features) {
			t.Fatalf("decode %q: features %q, encoding/json %q", body, got.features, want.Features)
		}
		if req.hasService && (want.FeatureService == nil || *want.FeatureService != got.service) {
			t.Fatalf("decode %q: feature_service %q, encoding/json %v", body, got.service, want.FeatureService)
		}
		if len(req.keys) == 1 {
			vals := want.Entities[got.keys[0]]
			if len(vals) != len(req.values) {
				t.Fatalf("decode %q: %d entity values, encoding/json %d", body, len(req.values), len(vals))
			}
			for i, v := range req.values {
				if s, ok := vals[i].(string); ok && (v.isInt || string(req.str(v.s)) != s) {
					t.Fatalf("decode %q: entity %d: %+v, encoding/json %q", body, i, v, s)
				}
			}
		}
	})
}
