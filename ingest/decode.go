package ingest

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/valyala/fastjson"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/featurestore"
	"github.com/featured-dev/featured/internal/jsoncheck"
	"github.com/featured-dev/featured/internal/keyenc"
	"github.com/featured-dev/featured/registry"
)

// Reasons an event is rejected. They label counters and dead-letter
// headers, so they are stable identifiers.
const (
	ReasonMalformed   = "malformed"    // not a JSON object
	ReasonMissingKey  = "missing_key"  // entity key absent or null
	ReasonMissingTime = "missing_time" // event time absent or null
	ReasonWrongType   = "wrong_type"   // a field of the wrong JSON type
	// ReasonTooLate is no longer produced: an event older than every view's
	// TTL is history (logged offline, folded nowhere, SourceStats.History).
	// Kept so counters and dead letters written before stay readable.
	ReasonTooLate = "too_late"
	ReasonFuture  = "too_far_in_future" // beyond the accepted clock skew
	ReasonBadKey  = "bad_key"           // entity key breaks internal/keyenc's rule (empty, NUL, too long, not UTF-8)
	ReasonTooLong = "too_long"          // a string field value longer than MaxStringBytes
	// ReasonCorruptState: the store refused the event because the entity's
	// state in a target view is corrupt on disk (featurestore.ErrQuarantined);
	// it was applied to no view.
	ReasonCorruptState = featurestore.ReasonCorruptState
)

// MaxStringBytes bounds one string field value of an event, on every
// ingest path. Without it a state's size is bounded only by the request
// body: a last_k(1000) feature over 4 MiB strings would hold gigabytes per
// entity. 4 KiB keeps a last_k state under 4 MiB per tile while leaving room
// for URLs, user agents and short texts. It is a fixed rule, not a flag, as
// it decides what can be stored.
const MaxStringBytes = 4096

// RowError says why one event of a batch was rejected.
type RowError struct {
	Index  int    `json:"index"`
	Field  string `json:"field,omitempty"`
	Reason string `json:"reason"`
	// Code is one of the Reason* constants.
	Code string `json:"code"`
}

func (e *RowError) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("event %d: %s: %s", e.Index, e.Field, e.Reason)
	}
	return fmt.Sprintf("event %d: %s", e.Index, e.Reason)
}

// Record is a decoded event: its entity key (one part per field of the
// source's entity_key: a compound key has several), event time and the
// source's fields in the source's field order (KindNull where absent).
type Record struct {
	Key         []aggregate.Value
	EventMillis int64
	Fields      []aggregate.Value
}

// decoder turns events of one source into Records. It is immutable once
// built and safe for concurrent use; parsing state lives in the caller's
// fastjson.Parser.
type decoder struct {
	src *registry.Source
	// keyKinds[i] is the kind of the key field src.EntityKey[i] (KindNull
	// for every part while no view reads the source: then no key decodes).
	keyKinds []aggregate.Kind
	fields   map[string]int
}

func newDecoder(src *registry.Source, keyKinds []aggregate.Kind) *decoder {
	if len(keyKinds) != len(src.EntityKey) {
		keyKinds = make([]aggregate.Kind, len(src.EntityKey))
	}
	d := &decoder{src: src, keyKinds: keyKinds, fields: make(map[string]int, len(src.Fields))}
	for i, f := range src.Fields {
		d.fields[f.Name] = i
	}
	return d
}

// decodeJSON decodes one JSON event into rec. Fields not in the source are
// ignored: producers often send more than one source reads. rec.Fields must
// have len(src.Fields) entries; they are overwritten.
func (d *decoder) decodeJSON(p *fastjson.Parser, data []byte, rec *Record) *RowError {
	v, err := p.ParseBytes(data)
	if err != nil {
		return &RowError{Code: ReasonMalformed, Reason: fmt.Sprintf("not valid JSON: %v", err)}
	}
	// fastjson keeps a lone surrogate escape as its six characters and
	// bytes that are not UTF-8 as they are, and reads a repeated key twice:
	// refused alike on every path.
	if err := jsoncheck.Check(data); err != nil {
		return &RowError{Code: ReasonMalformed, Reason: "not valid JSON: " + err.Error()}
	}
	obj, err := v.Object()
	if err != nil {
		return &RowError{Code: ReasonMalformed, Reason: fmt.Sprintf("event is a JSON %s, not an object", v.Type())}
	}
	d.resetRecord(rec)
	var rowErr *RowError
	haveTime := false
	obj.Visit(func(key []byte, fv *fastjson.Value) {
		if rowErr != nil {
			return
		}
		name := string(key) // no allocation: the compiler elides it in comparisons and map lookups
		switch k := d.keyPart(name); {
		case k >= 0:
			if fv.Type() == fastjson.TypeNull {
				return
			}
			rec.Key[k], rowErr = jsonValue(fv, d.keyKinds[k], d.src.EntityKey[k])
			if rowErr == nil {
				rowErr = d.checkKey(k, rec.Key[k])
			}
		case name == d.src.EventTime:
			if fv.Type() == fastjson.TypeNull {
				return
			}
			haveTime = true
			rec.EventMillis, rowErr = jsonTime(fv, d.src.EventTime)
		default:
			i, ok := d.fields[name]
			if !ok || fv.Type() == fastjson.TypeNull {
				return
			}
			rec.Fields[i], rowErr = jsonValue(fv, d.src.Fields[i].Kind, d.src.Fields[i].Name)
		}
	})
	if rowErr != nil {
		return rowErr
	}
	if rowErr := d.missingKey(rec); rowErr != nil {
		return rowErr
	}
	if !haveTime {
		return &RowError{Code: ReasonMissingTime, Field: d.src.EventTime, Reason: "event time is missing"}
	}
	return nil
}

// resetRecord clears rec's key parts and fields, sizing rec.Key for the
// source (reusing its array).
func (d *decoder) resetRecord(rec *Record) {
	if cap(rec.Key) < len(d.src.EntityKey) {
		rec.Key = make([]aggregate.Value, len(d.src.EntityKey))
	}
	rec.Key = rec.Key[:len(d.src.EntityKey)]
	clear(rec.Key)
	clear(rec.Fields)
}

// keyPart returns the index of name in the source's entity_key, or -1.
func (d *decoder) keyPart(name string) int {
	for i, k := range d.src.EntityKey {
		if k == name {
			return i
		}
	}
	return -1
}

// missingKey names the first key field an event lacks (absent or null).
func (d *decoder) missingKey(rec *Record) *RowError {
	for i, v := range rec.Key {
		if v.Kind == aggregate.KindNull {
			return &RowError{Code: ReasonMissingKey, Field: d.src.EntityKey[i], Reason: "entity key is missing"}
		}
	}
	return nil
}

// checkKey applies the one entity key rule of every path (keyenc.Check) to
// key part k.
func (d *decoder) checkKey(k int, key aggregate.Value) *RowError {
	if key.Kind != aggregate.KindString {
		return nil
	}
	if err := keyenc.Check(key.S); err != nil {
		return &RowError{Code: ReasonBadKey, Field: d.src.EntityKey[k], Reason: strings.TrimPrefix(err.Error(), "keyenc: ")}
	}
	return nil
}

// appendKey appends the encoded key of a decoded rec to dst (keyenc.AppendKey),
// the bytes the store and the log key the event by.
func (d *decoder) appendKey(dst []byte, rec *Record) ([]byte, *RowError) {
	out, err := keyenc.AppendKey(dst, rec.Key...)
	if err != nil {
		return dst, &RowError{Code: ReasonWrongType, Field: d.src.EntityKey.String(), Reason: err.Error()}
	}
	return out, nil
}

func jsonValue(v *fastjson.Value, kind aggregate.Kind, field string) (aggregate.Value, *RowError) {
	wrong := func(want string) *RowError {
		return &RowError{Code: ReasonWrongType, Field: field, Reason: fmt.Sprintf("want %s, got JSON %s %s", want, v.Type(), clip(v.String()))}
	}
	switch kind {
	case aggregate.KindString:
		b, err := v.StringBytes()
		if err != nil {
			return aggregate.Value{}, wrong("a string")
		}
		if len(b) > MaxStringBytes {
			return aggregate.Value{}, tooLong(field, len(b))
		}
		return aggregate.Value{Kind: aggregate.KindString, S: string(b)}, nil
	case aggregate.KindInt64:
		if v.Type() != fastjson.TypeNumber {
			return aggregate.Value{}, wrong("an integer")
		}
		i, err := v.Int64()
		if err != nil {
			return aggregate.Value{}, wrong("an integer that fits int64")
		}
		return aggregate.Value{Kind: aggregate.KindInt64, I: i}, nil
	case aggregate.KindFloat64:
		if v.Type() != fastjson.TypeNumber {
			return aggregate.Value{}, wrong("a number")
		}
		f, err := v.Float64()
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return aggregate.Value{}, wrong("a finite number")
		}
		return aggregate.Value{Kind: aggregate.KindFloat64, F: f}, nil
	case aggregate.KindBool:
		b, err := v.Bool()
		if err != nil {
			return aggregate.Value{}, wrong("true or false")
		}
		var i int64
		if b {
			i = 1
		}
		return aggregate.Value{Kind: aggregate.KindBool, I: i}, nil
	}
	return aggregate.Value{}, &RowError{Code: ReasonWrongType, Field: field, Reason: fmt.Sprintf("field has unsupported kind %s", kind)}
}

func tooLong(field string, n int) *RowError {
	return &RowError{Code: ReasonTooLong, Field: field, Reason: fmt.Sprintf("string of %d bytes, the limit is %d", n, MaxStringBytes)}
}

// jsonTime reads an event time: an RFC 3339 string or integer epoch
// milliseconds.
func jsonTime(v *fastjson.Value, field string) (int64, *RowError) {
	switch v.Type() {
	case fastjson.TypeNumber:
		ms, err := v.Int64()
		if err != nil {
			return 0, &RowError{Code: ReasonWrongType, Field: field, Reason: fmt.Sprintf("want epoch milliseconds as an integer, got %s", clip(v.String()))}
		}
		return ms, nil
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		return parseTime(b, field)
	}
	return 0, &RowError{Code: ReasonWrongType, Field: field, Reason: fmt.Sprintf("want an RFC 3339 string or epoch milliseconds, got JSON %s", v.Type())}
}

func parseTime(b []byte, field string) (int64, *RowError) {
	t, err := time.Parse(time.RFC3339Nano, string(b))
	if err != nil {
		return 0, &RowError{Code: ReasonWrongType, Field: field, Reason: fmt.Sprintf("want an RFC 3339 time like 2026-11-24T10:00:00Z, got %q", clip(string(b)))}
	}
	return t.UnixMilli(), nil
}

// valuesRecord builds a Record from typed values (the gRPC push path). The
// event time may be KindInt64 (epoch ms) or KindString (RFC 3339).
func (d *decoder) valuesRecord(event map[string]aggregate.Value, rec *Record) *RowError {
	d.resetRecord(rec)
	for k, field := range d.src.EntityKey {
		key, ok := event[field]
		if !ok || key.Kind == aggregate.KindNull {
			return &RowError{Code: ReasonMissingKey, Field: field, Reason: "entity key is missing"}
		}
		if key.Kind != d.keyKinds[k] {
			return &RowError{Code: ReasonWrongType, Field: field, Reason: fmt.Sprintf("want %s, got %s", d.keyKinds[k], key.Kind)}
		}
		if rowErr := d.checkKey(k, key); rowErr != nil {
			return rowErr
		}
		rec.Key[k] = key
	}
	ts, ok := event[d.src.EventTime]
	switch {
	case !ok || ts.Kind == aggregate.KindNull:
		return &RowError{Code: ReasonMissingTime, Field: d.src.EventTime, Reason: "event time is missing"}
	case ts.Kind == aggregate.KindInt64:
		rec.EventMillis = ts.I
	case ts.Kind == aggregate.KindString:
		ms, rowErr := parseTime([]byte(ts.S), d.src.EventTime)
		if rowErr != nil {
			return rowErr
		}
		rec.EventMillis = ms
	default:
		return &RowError{Code: ReasonWrongType, Field: d.src.EventTime, Reason: fmt.Sprintf("want epoch milliseconds or an RFC 3339 string, got %s", ts.Kind)}
	}
	for name, v := range event {
		i, ok := d.fields[name]
		if !ok || v.Kind == aggregate.KindNull {
			continue
		}
		want := d.src.Fields[i].Kind
		if want == aggregate.KindFloat64 && v.Kind == aggregate.KindInt64 {
			v = aggregate.Value{Kind: aggregate.KindFloat64, F: float64(v.I)}
		}
		if v.Kind != want {
			return &RowError{Code: ReasonWrongType, Field: name, Reason: fmt.Sprintf("want %s, got %s", want, v.Kind)}
		}
		if v.Kind == aggregate.KindFloat64 && (math.IsInf(v.F, 0) || math.IsNaN(v.F)) {
			return &RowError{Code: ReasonWrongType, Field: name, Reason: "want a finite number"}
		}
		if v.Kind == aggregate.KindString && len(v.S) > MaxStringBytes {
			return tooLong(name, len(v.S))
		}
		rec.Fields[i] = v
	}
	return nil
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
