package ingest

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/valyala/fastjson"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/internal/jsoncheck"
	"github.com/featured-dev/featured/internal/jsonedge"
	"github.com/featured-dev/featured/internal/keyenc"
)

// TestJSONEdgeCases runs the shared table (internal/jsonedge) through the
// event decoder of push bodies and Kafka messages: as a string field, as
// the entity key, as int64 and float64 fields, and with repeated keys.
func TestJSONEdgeCases(t *testing.T) {
	strKey := newDecoder(fuzzSource, []aggregate.Kind{aggregate.KindString})
	intKey := newDecoder(fuzzSource, []aggregate.Kind{aggregate.KindInt64})
	var p fastjson.Parser
	decode := func(d *decoder, event string) (Record, *RowError) {
		rec := Record{Fields: make([]aggregate.Value, len(fuzzSource.Fields))}
		return rec, d.decodeJSON(&p, []byte(event), &rec)
	}
	const merchant = 3 // fuzzSource's string field
	for _, c := range jsonedge.Strings {
		t.Run(c.Name, func(t *testing.T) {
			rec, rowErr := decode(strKey, `{"user_id":"u","ts":1,"merchant":`+c.JSON+`}`)
			switch {
			case c.Refused != "":
				if rowErr == nil || rowErr.Code != ReasonMalformed || !strings.Contains(rowErr.Reason, c.Refused) {
					t.Fatalf("as a field: %v, want %s: %q", rowErr, ReasonMalformed, c.Refused)
				}
			case rowErr != nil:
				t.Fatalf("as a field: %v", rowErr)
			case rec.Fields[merchant].S != c.Value:
				t.Fatalf("as a field: %q, want %q", rec.Fields[merchant].S, c.Value)
			}
			rec, rowErr = decode(strKey, `{"user_id":`+c.JSON+`,"ts":1}`)
			switch {
			case c.Refused != "":
				if rowErr == nil || !strings.Contains(rowErr.Reason, c.Refused) {
					t.Fatalf("as a key: %v, want %q", rowErr, c.Refused)
				}
			case keyenc.Check(c.Value) != nil:
				if rowErr == nil || rowErr.Code != ReasonBadKey {
					t.Fatalf("as a key: %v, want %s", rowErr, ReasonBadKey)
				}
			case rowErr != nil:
				t.Fatalf("as a key: %v", rowErr)
			case rec.Key[0].S != c.Value:
				t.Fatalf("as a key: %q, want %q", rec.Key[0].S, c.Value)
			}
		})
	}
	const amount, items = 0, 2 // fuzzSource's float64 and int64 fields
	for _, c := range jsonedge.Numbers {
		t.Run(c.Name, func(t *testing.T) {
			rec, rowErr := decode(strKey, `{"user_id":"u","ts":1,"items":`+c.JSON+`}`)
			if (rowErr == nil) != c.IntOK || (c.IntOK && rec.Fields[items].I != c.Int) || (!c.IntOK && rowErr.Code != ReasonWrongType) {
				t.Fatalf("as an int64 field: %+v %v, want ok %v %d", rec.Fields[items], rowErr, c.IntOK, c.Int)
			}
			rec, rowErr = decode(intKey, `{"user_id":`+c.JSON+`,"ts":1}`)
			if (rowErr == nil) != c.IntOK || (c.IntOK && rec.Key[0].I != c.Int) {
				t.Fatalf("as an int64 key: %+v %v, want ok %v %d", rec.Key[0], rowErr, c.IntOK, c.Int)
			}
			rec, rowErr = decode(strKey, `{"user_id":"u","ts":1,"amount":`+c.JSON+`}`)
			if (rowErr == nil) != c.FloatOK || (c.FloatOK && rec.Fields[amount].F != c.Float) || (!c.FloatOK && rowErr.Code != ReasonWrongType) {
				t.Fatalf("as a float64 field: %+v %v, want ok %v %g", rec.Fields[amount], rowErr, c.FloatOK, c.Float)
			}
		})
	}
	// asKey spells the table's key "x" as the entity key, keeping its escape.
	asKey := func(lit string) string {
		return strings.ReplaceAll(strings.ReplaceAll(lit, `\u0078`, `\u0075ser_id`), "x", "user_id")
	}
	for _, c := range jsonedge.Duplicates {
		for _, event := range []string{
			`{"user_id":"u","ts":1,` + c.First + `:1,` + c.Second + `:2}`,
			`{"user_id":"u","ts":1,"extra":{` + c.First + `:1,` + c.Second + `:2}}`,
			`{` + asKey(c.First) + `:"a",` + asKey(c.Second) + `:"b","ts":1}`,
		} {
			_, rowErr := decode(strKey, event)
			if rowErr == nil || rowErr.Code != ReasonMalformed || !strings.Contains(rowErr.Reason, jsoncheck.MsgDuplicateKey) {
				t.Errorf("%s: %s: %v, want %s", c.Name, event, rowErr, jsoncheck.MsgDuplicateKey)
			}
		}
	}
}

// BenchmarkDecodeEvent is one event through the decoder of push and Kafka,
// jsoncheck's pass included (BenchmarkCheck in internal/jsoncheck is that
// pass alone, on the same event).
//
// The encoding_json case is what decoding with encoding/json instead of
// fastjson would cost at least (into a map, before any typing): the reason
// events keep their own JSON stack.
func BenchmarkDecodeEvent(b *testing.B) {
	event := []byte(benchEvent)
	b.Run("fastjson", func(b *testing.B) {
		d := newDecoder(fuzzSource, []aggregate.Kind{aggregate.KindString})
		var p fastjson.Parser
		rec := Record{Fields: make([]aggregate.Value, len(fuzzSource.Fields))}
		b.SetBytes(int64(len(event)))
		b.ReportAllocs()
		for b.Loop() {
			if rowErr := d.decodeJSON(&p, event, &rec); rowErr != nil {
				b.Fatal(rowErr)
			}
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		b.SetBytes(int64(len(event)))
		b.ReportAllocs()
		for b.Loop() {
			var m map[string]any
			if err := json.Unmarshal(event, &m); err != nil {
				b.Fatal(err)
			}
		}
	})
}

const benchEvent = `{"user_id":"user-000123","ts":"2026-11-24T10:00:00.123Z","amount":12.5,"flag":true,"items":3,"merchant":"merchant-42","channel":"web"}`
