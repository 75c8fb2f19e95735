package ingest

import (
	"strings"
	"testing"

	"github.com/valyala/fastjson"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/internal/keyenc"
	"github.com/featured-dev/featured/registry"
)

// TestDecodeRefusesBadKeys: the JSON decoder shared by push and Kafka (whose
// rejects are dead-lettered with the code) applies keyenc's key rule.
func TestDecodeRefusesBadKeys(t *testing.T) {
	d := newDecoder(&registry.Source{EntityKey: registry.KeyFields{"id"}, EventTime: "ts"}, []aggregate.Kind{aggregate.KindString})
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
	src := &registry.Source{EntityKey: registry.KeyFields{"id"}, EventTime: "ts", Fields: []registry.Field{{Name: "s", Kind: aggregate.KindString}}}
	d := newDecoder(src, []aggregate.Kind{aggregate.KindString})
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

// TestDecodeCompoundKey checks that every part of a compound key is read,
// that a missing or bad part is refused naming its field, on the JSON and
// the typed (gRPC) paths alike, and that the record's key encodes as keyenc's
// compound key.
func TestDecodeCompoundKey(t *testing.T) {
	src := &registry.Source{EntityKey: registry.KeyFields{"driver", "cust"}, EventTime: "ts"}
	d := newDecoder(src, []aggregate.Kind{aggregate.KindInt64, aggregate.KindString})
	var p fastjson.Parser
	var rec Record
	if rowErr := d.decodeJSON(&p, []byte(`{"cust":"c1","driver":7,"ts":1}`), &rec); rowErr != nil {
		t.Fatal(rowErr)
	}
	key, rowErr := d.appendKey(nil, &rec)
	want, _ := keyenc.AppendKey(nil, aggregate.Value{Kind: aggregate.KindInt64, I: 7}, aggregate.Value{Kind: aggregate.KindString, S: "c1"})
	if rowErr != nil || string(key) != string(want) {
		t.Fatalf("key %q, %v; want %q", key, rowErr, want)
	}
	f := func(in string, event map[string]aggregate.Value, code, field string) {
		t.Helper()
		var rec Record
		rowErr := d.decodeJSON(&p, []byte(in), &rec)
		if rowErr == nil || rowErr.Code != code || rowErr.Field != field {
			t.Errorf("decodeJSON(%s) = %v, want %s on %s", in, rowErr, code, field)
		}
		rowErr = d.valuesRecord(event, &rec)
		if rowErr == nil || rowErr.Code != code || rowErr.Field != field {
			t.Errorf("valuesRecord(%v) = %v, want %s on %s", event, rowErr, code, field)
		}
	}
	ts := aggregate.Value{Kind: aggregate.KindInt64, I: 1}
	drv := aggregate.Value{Kind: aggregate.KindInt64, I: 7}
	f(`{"driver":7,"ts":1}`, map[string]aggregate.Value{"driver": drv, "ts": ts}, ReasonMissingKey, "cust")
	f(`{"cust":"c1","ts":1}`, map[string]aggregate.Value{"cust": {Kind: aggregate.KindString, S: "c1"}, "ts": ts}, ReasonMissingKey, "driver")
	f(`{"driver":7,"cust":null,"ts":1}`, map[string]aggregate.Value{"driver": drv, "cust": {}, "ts": ts}, ReasonMissingKey, "cust")
	f(`{"driver":"7","cust":"c1","ts":1}`, map[string]aggregate.Value{"driver": {Kind: aggregate.KindString, S: "7"}, "cust": {Kind: aggregate.KindString, S: "c1"}, "ts": ts}, ReasonWrongType, "driver")
	f(`{"driver":7,"cust":"","ts":1}`, map[string]aggregate.Value{"driver": drv, "cust": {Kind: aggregate.KindString}, "ts": ts}, ReasonBadKey, "cust")
}
