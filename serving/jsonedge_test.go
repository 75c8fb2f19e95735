package serving

import (
	"fmt"
	"strings"
	"testing"

	"github.com/featured-dev/featured/internal/jsoncheck"
	"github.com/featured-dev/featured/internal/jsonedge"
)

// TestJSONEdgeCases runs the shared table (internal/jsonedge) through the
// hand-written lookup decoder (entity keys, feature references, repeated
// keys) and decodeStrict, encoding/json's path for push bodies.
func TestJSONEdgeCases(t *testing.T) {
	var req lookupRequest
	refused := func(err error, want string) bool {
		return err != nil && strings.Contains(err.Error(), want)
	}
	for _, c := range jsonedge.Strings {
		t.Run(c.Name, func(t *testing.T) {
			err := decodeLookup([]byte(`{"features":[`+c.JSON+`],"entities":{"k":[`+c.JSON+`]}}`), &req, 0, 0)
			switch {
			case c.Refused != "":
				if !refused(err, c.Refused) {
					t.Fatalf("lookup: %v, want %q", err, c.Refused)
				}
			case err != nil:
				t.Fatalf("lookup: %v", err)
			case string(req.str(req.features[0])) != c.Value || string(req.str(req.values[0].s)) != c.Value:
				t.Fatalf("lookup: feature %q, key %q, want %q", req.str(req.features[0]), req.str(req.values[0].s), c.Value)
			}
			var body struct{ Source string }
			err = decodeStrict([]byte(`{"source":`+c.JSON+`}`), &body)
			switch {
			case c.Refused != "":
				if !refused(err, c.Refused) {
					t.Fatalf("decodeStrict: %v, want %q", err, c.Refused)
				}
			case err != nil || body.Source != c.Value:
				t.Fatalf("decodeStrict: %q %v, want %q", body.Source, err, c.Value)
			}
		})
	}
	for _, c := range jsonedge.Numbers {
		err := decodeLookup([]byte(`{"entities":{"k":[`+c.JSON+`]}}`), &req, 0, 0)
		if (err == nil) != c.IntOK || (c.IntOK && (!req.values[0].isInt || req.values[0].i != c.Int)) {
			t.Errorf("%s: lookup key %+v %v, want ok %v %d", c.Name, req.values, err, c.IntOK, c.Int)
		}
	}
	for _, c := range jsonedge.Duplicates {
		for _, body := range []string{
			`{"features":["v:f"],` + c.First + `:1,` + c.Second + `:2}`,
			`{"features":["v:f"],"extra":{"a":[{` + c.First + `:1,` + c.Second + `:2}]}}`,
			`{"entities":{` + c.First + `:[1],` + c.Second + `:[2]}}`,
		} {
			if err := decodeLookup([]byte(body), &req, 0, 0); !refused(err, jsoncheck.MsgDuplicateKey) {
				t.Errorf("%s: lookup %s: %v", c.Name, body, err)
			}
		}
		var v struct{ X int }
		if err := decodeStrict([]byte(`{`+c.First+`:1,`+c.Second+`:2}`), &v); !refused(err, jsoncheck.MsgDuplicateKey) {
			t.Errorf("%s: decodeStrict: %v", c.Name, err)
		}
	}
	// A known field twice is the same refusal.
	if err := decodeLookup([]byte(`{"features":[],"\u0066eatures":[]}`), &req, 0, 0); !refused(err, jsoncheck.MsgDuplicateKey) {
		t.Errorf("features twice: %v", err)
	}
}

// TestManyJoinKeysLinear: a body of many join keys is decoded in one pass
// (the duplicate check must not compare each key with every other), and a
// duplicate far down is still found.
func TestManyJoinKeysLinear(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"entities":{`)
	const n = 200000
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `"k%d":[],`, i)
	}
	body := b.String()
	var req lookupRequest
	if err := decodeLookup([]byte(body+`"end":[]}}`), &req, 0, 0); err != nil || len(req.keys) != n+1 {
		t.Fatalf("%d keys: %v", len(req.keys), err)
	}
	if err := decodeLookup([]byte(body+`"k7":[]}}`), &req, 0, 0); err == nil || !strings.Contains(err.Error(), jsoncheck.MsgDuplicateKey) || !strings.Contains(err.Error(), "entities.k7") {
		t.Fatalf("a duplicate after %d keys: %v", n, err)
	}
}
