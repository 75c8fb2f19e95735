package serving

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

// decoded is a lookupRequest in plain Go values, for comparisons.
type decoded struct {
	features  []string
	service   string
	full      bool
	keys      []string
	values    []string // ints as "i:42", strings as "s:abc"
	hasFeat   bool
	hasSvc    bool
	hasEntity bool
}

func plain(r *lookupRequest) decoded {
	var d decoded
	for _, f := range r.features {
		d.features = append(d.features, string(r.str(f)))
	}
	d.service = string(r.str(r.service))
	d.full = r.fullNames
	for _, k := range r.keys {
		d.keys = append(d.keys, string(r.str(k)))
	}
	for _, v := range r.values {
		if v.isInt {
			d.values = append(d.values, "i:"+strconv.FormatInt(v.i, 10))
		} else {
			d.values = append(d.values, "s:"+string(r.str(v.s)))
		}
	}
	d.hasFeat, d.hasSvc, d.hasEntity = r.hasFeatures, r.hasService, r.hasEntities
	return d
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestDecodeLookup(t *testing.T) {
	tests := []struct {
		name string
		body string
		want decoded
	}{
		{
			name: "feast features",
			body: `{"features": ["user_spend:spend_7d", "user_spend@v2:txn_count_1h"], "entities": {"user_id": ["u1", "u2"]}}`,
			want: decoded{features: []string{"user_spend:spend_7d", "user_spend@v2:txn_count_1h"}, keys: []string{"user_id"},
				values: []string{"s:u1", "s:u2"}, hasFeat: true, hasEntity: true},
		},
		{
			name: "service, int keys, full names",
			body: "\n{ \"feature_service\" : \"fraud\",\t\"entities\":{\"entity\":[1,-2,0,9223372036854775807,-9223372036854775808]},\"full_feature_names\":true }\n",
			want: decoded{service: "fraud", full: true, keys: []string{"entity"},
				values: []string{"i:1", "i:-2", "i:0", "i:9223372036854775807", "i:-9223372036854775808"}, hasSvc: true, hasEntity: true},
		},
		{
			name: "escapes",
			body: `{"features":["v:caf\u00e9","v:\ud83d\ude00","v:a\"b\\c\/d\n"],"entities":{"k\u0065y":["\t"]}}`,
			want: decoded{features: []string{"v:café", "v:😀", "v:a\"b\\c/d\n"}, keys: []string{"key"},
				values: []string{"s:\t"}, hasFeat: true, hasEntity: true},
		},
		{
			name: "unknown fields are skipped",
			body: `{"query_string":"x","extra":{"a":[1,2.5e3,{"b":null,"c":[true,false]}],"d":"\u0041"},"features":["v:f"],"entities":{"k":[]},"n":-0.5}`,
			want: decoded{features: []string{"v:f"}, keys: []string{"k"}, hasFeat: true, hasEntity: true},
		},
		{
			name: "nulls mean absent",
			body: `{"features":null,"feature_service":"s","entities":null,"full_feature_names":null}`,
			want: decoded{service: "s", hasSvc: true},
		},
		{
			name: "two keys: values of the first only",
			body: `{"features":["v:f"],"entities":{"a":[1],"b":["x"]}}`,
			want: decoded{features: []string{"v:f"}, keys: []string{"a", "b"}, values: []string{"i:1"}, hasFeat: true, hasEntity: true},
		},
		{
			name: "empty object",
			body: `{}`,
			want: decoded{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var req lookupRequest
			if err := decodeLookup([]byte(tt.body), &req, 0, 0); err != nil {
				t.Fatalf("decode %s: %v", tt.body, err)
			}
			got := plain(&req)
			w := tt.want
			if !equalStrings(got.features, w.features) || got.service != w.service || got.full != w.full ||
				!equalStrings(got.keys, w.keys) || !equalStrings(got.values, w.values) ||
				got.hasFeat != w.hasFeat || got.hasSvc != w.hasSvc || got.hasEntity != w.hasEntity {
				t.Errorf("decode %s\n got %+v\nwant %+v", tt.body, got, w)
			}
		})
	}
}

func TestDecodeLookupReuse(t *testing.T) {
	// A pooled request must not keep anything from the previous one.
	var req lookupRequest
	if err := decodeLookup([]byte(`{"features":["a:b","c:d"],"feature_service":"s","entities":{"k":[1,2]},"full_feature_names":true}`), &req, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := decodeLookup([]byte(`{"features":["x:y"],"entities":{"j":["z"]}}`), &req, 0, 0); err != nil {
		t.Fatal(err)
	}
	got := plain(&req)
	if !equalStrings(got.features, []string{"x:y"}) || got.hasSvc || got.full || !equalStrings(got.keys, []string{"j"}) ||
		!equalStrings(got.values, []string{"s:z"}) {
		t.Errorf("second decode kept state: %+v", got)
	}
}

func TestDecodeLookupErrors(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		field  string // the SyntaxError's field
		msg    string // a substring of the message
		offset int    // -1: do not check
	}{
		{"empty", ``, "", "expected a JSON object, found end of body", 0},
		{"array", `[]`, "", "expected a JSON object", 0},
		{"trailing", `{} {}`, "", "after the request object", 3},
		{"unterminated object", `{"features":["a:b"]`, "", "expected ',' or '}'", -1},
		{"missing colon", `{"features" ["a:b"]}`, "features", "expected ':'", 12},
		{"duplicate field", `{"features":[],"features":[]}`, "features", "duplicate key", -1},
		{"features not array", `{"features":"a:b"}`, "features", "expected an array of feature references", 12},
		{"feature not string", `{"features":["a:b", 3]}`, "features[1]", "expected a feature reference string", 20},
		{"service not string", `{"feature_service":1}`, "feature_service", "expected a feature service name", -1},
		{"full names not bool", `{"full_feature_names":"yes"}`, "full_feature_names", "expected true or false", -1},
		{"entities not object", `{"entities":[1]}`, "entities", "expected an object", -1},
		{"entity values not array", `{"entities":{"user_id":"u1"}}`, "entities.user_id", "expected an array of entity keys", -1},
		{"entity float", `{"entities":{"user_id":[1, 1.5]}}`, "entities.user_id[1]", "entity key 1.5 is not an integer", -1},
		{"entity exponent", `{"entities":{"user_id":[1e3]}}`, "entities.user_id[0]", "is not an integer", -1},
		{"entity overflow", `{"entities":{"user_id":[9223372036854775808]}}`, "entities.user_id[0]", "overflows int64", -1},
		{"entity bool", `{"entities":{"user_id":[true]}}`, "entities.user_id[0]", "expected a string or an integer", -1},
		{"entity null", `{"entities":{"user_id":[null]}}`, "entities.user_id[0]", "expected a string or an integer", -1},
		{"bad number", `{"entities":{"user_id":[-]}}`, "entities.user_id[0]", "invalid number", -1},
		{"leading zero", `{"entities":{"user_id":[01]}}`, "entities.user_id[0]", "expected ',' or ']'", -1},
		{"unterminated string", `{"features":["a:b`, "features[0]", "unterminated string", -1},
		{"bad escape", `{"features":["a\x"]}`, "features[0]", `invalid escape \x`, -1},
		{"bad unicode escape", `{"features":["\u12G4"]}`, "features[0]", `invalid \u escape`, -1},
		{"control char", "{\"features\":[\"a\nb\"]}", "features[0]", "control character 0x0a", -1},
		{"unknown field bad value", `{"extra":[1,}`, "extra", "expected a JSON value", -1},
		{"unknown field bad literal", `{"extra":tru}`, "extra", "expected a JSON value", -1},
		{"too deep", `{"extra":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, "extra", "nesting deeper than", -1},
		{"bare value", `"x"`, "", "expected a JSON object", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var req lookupRequest
			err := decodeLookup([]byte(tt.body), &req, 0, 0)
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("decode %q: got %v, want a *SyntaxError", tt.body, err)
			}
			if !errors.Is(err, ErrBadRequest) {
				t.Errorf("decode %q: %v does not match ErrBadRequest", tt.body, err)
			}
			if se.Field != tt.field || !strings.Contains(se.Msg, tt.msg) || (tt.offset >= 0 && se.Offset != tt.offset) {
				t.Errorf("decode %q:\n got field %q offset %d msg %q\nwant field %q offset %d msg containing %q",
					tt.body, se.Field, se.Offset, se.Msg, tt.field, tt.offset, tt.msg)
			}
		})
	}
}

func TestDecodeLookupLimits(t *testing.T) {
	var req lookupRequest
	err := decodeLookup([]byte(`{"features":["a:1","a:2","a:3"]}`), &req, 2, 0)
	var le *LimitError
	if !errors.As(err, &le) || le.Field != "features" || le.Limit != 2 || !errors.Is(err, ErrLimit) {
		t.Errorf("3 features over a limit of 2: got %v", err)
	}
	err = decodeLookup([]byte(`{"entities":{"user_id":[1,2,3,4]}}`), &req, 0, 3)
	if !errors.As(err, &le) || le.Field != "entities.user_id" || le.Limit != 3 {
		t.Errorf("4 entities over a limit of 3: got %v", err)
	}
	if err := decodeLookup([]byte(`{"features":["a:1","a:2"],"entities":{"user_id":[1,2,3]}}`), &req, 2, 3); err != nil {
		t.Errorf("at the limits: %v", err)
	}
}

func TestDecodeLookupAllocs(t *testing.T) {
	body := []byte(`{"features":["user_spend:spend_7d","user_spend:txn_count_1h","user_spend:avg_amount_24h"],` +
		`"entities":{"user_id":["u1","u2","u3"]},"full_feature_names":false,"extra":{"x":[1,2]}}`)
	var req lookupRequest
	if err := decodeLookup(body, &req, 0, 0); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if err := decodeLookup(body, &req, 0, 0); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("a warm decode allocates %.1f times, want 0", allocs)
	}
}
