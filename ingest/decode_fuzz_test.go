package ingest

import (
	"math"
	"testing"

	"github.com/valyala/fastjson"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/registry"
)

// fuzzSource has a value field of every kind; the fuzzer decodes against it
// with a string and with an int64 entity key.
var fuzzSource = &registry.Source{
	Name: "tx", Kind: "push", Format: "json", EntityKey: registry.KeyFields{"user_id"}, EventTime: "ts",
	Fields: []registry.Field{
		{Name: "amount", Kind: aggregate.KindFloat64},
		{Name: "flag", Kind: aggregate.KindBool},
		{Name: "items", Kind: aggregate.KindInt64},
		{Name: "merchant", Kind: aggregate.KindString},
	},
}

// FuzzDecodeEvent feeds arbitrary bytes to the event decoder (push bodies'
// events and Kafka message values). Whatever it accepts must be typed as the
// schema says (finite floats, the key of the entity's kind), re-encode to
// JSON that decodes to the same record, and decode the same through the
// typed-values path (gRPC push).
func FuzzDecodeEvent(f *testing.F) {
	for _, s := range []string{
		`{"user_id":"u1","ts":"2026-11-24T10:00:00Z","amount":12.5,"flag":true,"items":3,"merchant":"m1"}`,
		`{"user_id":42,"ts":1764000000000,"amount":-0,"items":-9223372036854775808}`,
		`{"user_id":"u\u0000\ud83d\ude00","ts":"2026-11-24T10:00:00.123456789+05:30","extra":{"a":[1,2]}}`,
		`{"user_id":null,"ts":1}`,
		`{"user_id":"u","ts":null}`,
		`{"user_id":"u","ts":1,"amount":1e400}`,
		`{"user_id":"u","ts":1,"items":1.5}`,
		`{"user_id":"u","ts":1,"items":9223372036854775808}`,
		`{"user_id":"u","ts":"yesterday"}`,
		`{"user_id":"a","user_id":"b","ts":1,"ts":2}`,
		`[1,2]`, `"x"`, `{`, ``, "{\"user_id\":\"\xff\xfe\",\"ts\":0}",
	} {
		f.Add([]byte(s))
	}
	decs := []*decoder{newDecoder(fuzzSource, []aggregate.Kind{aggregate.KindString}), newDecoder(fuzzSource, []aggregate.Kind{aggregate.KindInt64})}
	var p fastjson.Parser
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 64<<10 {
			return // input cap: events are small; big ones only slow the fuzzer
		}
		for _, d := range decs {
			rec := Record{Fields: make([]aggregate.Value, len(fuzzSource.Fields))}
			rowErr := d.decodeJSON(&p, data, &rec)
			if rowErr != nil {
				if rowErr.Code == "" || rowErr.Reason == "" {
					t.Fatalf("%q: rejection without a code or reason: %+v", data, rowErr)
				}
				continue
			}
			if rec.Key[0].Kind != d.keyKinds[0] {
				t.Fatalf("%q: entity %+v, want kind %s", data, rec.Key[0], d.keyKinds[0])
			}
			for i, v := range rec.Fields {
				if v.Kind != aggregate.KindNull && v.Kind != fuzzSource.Fields[i].Kind {
					t.Fatalf("%q: field %s is %+v, want kind %s", data, fuzzSource.Fields[i].Name, v, fuzzSource.Fields[i].Kind)
				}
				if v.Kind == aggregate.KindFloat64 && (math.IsNaN(v.F) || math.IsInf(v.F, 0)) {
					t.Fatalf("%q: field %s accepted non-finite %v", data, fuzzSource.Fields[i].Name, v.F)
				}
			}

			enc := appendEventJSON(nil, d, &rec)
			back := Record{Fields: make([]aggregate.Value, len(fuzzSource.Fields))}
			if rowErr := d.decodeJSON(&p, enc, &back); rowErr != nil {
				t.Fatalf("%q: re-encoded as %s, which is rejected: %v", data, enc, rowErr)
			}
			if !sameRecord(&rec, &back) {
				t.Fatalf("%q: re-encoded as %s, which decodes to %+v, not %+v", data, enc, back, rec)
			}

			event := map[string]aggregate.Value{
				fuzzSource.EntityKey[0]: rec.Key[0],
				fuzzSource.EventTime:    {Kind: aggregate.KindInt64, I: rec.EventMillis},
			}
			for i, v := range rec.Fields {
				event[fuzzSource.Fields[i].Name] = v
			}
			typed := Record{Fields: make([]aggregate.Value, len(fuzzSource.Fields))}
			if rowErr := d.valuesRecord(event, &typed); rowErr != nil {
				t.Fatalf("%q: the typed path rejects %+v: %v", data, event, rowErr)
			}
			if !sameRecord(&rec, &typed) {
				t.Fatalf("%q: the typed path decodes %+v, the JSON path %+v", data, typed, rec)
			}
		}
	})
}

func sameRecord(a, b *Record) bool {
	if !sameValue(a.Key[0], b.Key[0]) || a.EventMillis != b.EventMillis || len(a.Fields) != len(b.Fields) {
		return false
	}
	for i := range a.Fields {
		if !sameValue(a.Fields[i], b.Fields[i]) {
			return false
		}
	}
	return true
}

func sameValue(a, b aggregate.Value) bool {
	return a.Kind == b.Kind && a.I == b.I && a.S == b.S && math.Float64bits(a.F) == math.Float64bits(b.F)
}
