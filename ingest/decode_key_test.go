package ingest

import (
	"strings"
	"testing"

	"github.com/valyala/fastjson"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/registry"
)

// TestDecodeRefusesBadKeys: the JSON decoder shared by push and Kafka (whose
// rejects are dead-lettered with the code) applies keyenc's key rule.
func TestDecodeRefusesBadKeys(t *testing.T) {
	d := newDecoder(&registry.Source{EntityKey: "id", EventTime: "ts"}, aggregate.KindString)
	var p fastjson.Parser
	for _, in := range []string{`{"id":"","ts":1}`, `{"id":"a\u0000b","ts":1}`, `{"id":"` + strings.Repeat("k", 1025) + `","ts":1}`} {
		var rec Record
		rowErr := d.decodeJSON(&p, []byte(in), &rec)
		if rowErr == nil || rowErr.Code != ReasonBadKey || len(rowErr.Reason) > 120 {
			t.Errorf("%.40s: %v, want code %s", in, rowErr, ReasonBadKey)
		}
	}
	var rec Record
	if rowErr := d.decodeJSON(&p, []byte(`{"id":"u1","ts":1}`), &rec); rowErr != nil {
		t.Errorf("good key: %v", rowErr)
	}
}

// TestDecodeBoundsStrings: a string field value over MaxStringBytes is a
// rejected row naming the field, on the JSON path (push and Kafka) and the
// typed path (gRPC push), so no state can grow by one huge value.
func TestDecodeBoundsStrings(t *testing.T) {
	src := &registry.Source{EntityKey: "id", EventTime: "ts", Fields: []registry.Field{{Name: "s", Kind: aggregate.KindString}}}
	d := newDecoder(src, aggregate.KindString)
	var p fastjson.Parser
	for _, tc := range []struct {
		n      int
		reject bool
	}{{MaxStringBytes, false}, {MaxStringBytes + 1, true}, {1 << 20, true}} {
		s := strings.Repeat("x", tc.n)
		rec := Record{Fields: make([]aggregate.Value, 1)}
		rowErr := d.decodeJSON(&p, []byte(`{"id":"u1","ts":1,"s":"`+s+`"}`), &rec)
		rec2 := Record{Fields: make([]aggregate.Value, 1)}
		rowErr2 := d.valuesRecord(map[string]aggregate.Value{
			"id": {Kind: aggregate.KindString, S: "u1"}, "ts": {Kind: aggregate.KindInt64, I: 1}, "s": {Kind: aggregate.KindString, S: s},
		}, &rec2)
		for path, e := range map[string]*RowError{"json": rowErr, "values": rowErr2} {
			if !tc.reject {
				if e != nil {
					t.Errorf("%s, %d bytes: %v, want accepted", path, tc.n, e)
				}
				continue
			}
			if e == nil || e.Code != ReasonTooLong || e.Field != "s" || !strings.Contains(e.Reason, "limit is 4096") {
				t.Errorf("%s, %d bytes: %v, want code %s on field s", path, tc.n, e, ReasonTooLong)
			}
		}
		if !tc.reject && rec.Fields[0].S != s {
			t.Errorf("json, %d bytes: decoded %d bytes", tc.n, len(rec.Fields[0].S))
		}
	}
}
