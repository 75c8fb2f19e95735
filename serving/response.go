package serving

import (
	"github.com/featured-dev/featured/aggregate"
)

// The two JSON response shapes of a lookup. Both are written with the
// append-style writers of encode.go into a pooled buffer; the parts that only
// depend on the feature list are encoded once per plan.
//
// Feast's (POST /get-online-features), column-major, exactly as Feast's
// feature server writes it:
//
//	{"metadata":{"feature_names":["user_id","spend_7d"]},
//	 "results":[
//	  {"values":["u1","u2"],"statuses":["PRESENT","PRESENT"],
//	   "event_timestamps":["1970-01-01T00:00:00Z","1970-01-01T00:00:00Z"]},
//	  {"values":[12.5,null],"statuses":["PRESENT","NOT_FOUND"],
//	   "event_timestamps":["2026-11-24T10:00:00Z","1970-01-01T00:00:00Z"]}]}
//
// The native one (POST /v1/features), row-major, for model servers that
// build one input row per entity:
//
//	{"join_key":"user_id","features":["spend_7d","txn_count_1h"],
//	 "read_at_ms":1795000000000,
//	 "rows":[
//	  {"key":"u1","values":[12.5,3],"statuses":["PRESENT","PRESENT"],
//	   "event_ms":[1795000000000,1795000000000]},
//	  {"key":"u2","values":[null,0],"statuses":["NOT_FOUND","NOT_FOUND"],
//	   "event_ms":[0,0]}]}
//
// A compound key (views of several entities) has "join_keys" instead of
// "join_key", and each row "keys", in that order, instead of "key":
//
//	{"join_keys":["driver_id","customer_id"],"features":["fare_1d"],
//	 "read_at_ms":1795000000000,
//	 "rows":[{"keys":[7,"c1"],"values":[12.5],...}]}
//
// values[i] belongs to features[i]; statuses are the Feast names; event_ms
// is the event time (Unix milliseconds) each value reflects, 0 when none.

const epochJSON = `"1970-01-01T00:00:00Z"`

func appendFeastHeader(b []byte, p *plan) []byte {
	b = append(b, `{"metadata":{"feature_names":[`...)
	b = appendString(b, p.joinKey)
	for _, n := range p.names {
		b = append(b, ',')
		b = appendString(b, n)
	}
	return append(b, `]},"results":[`...)
}

// appendFeastHeaderKeys is the header of a Feast response whose request
// sent other keys than the plan's one join key, or asked for the view
// versions (include_feature_view_version_metadata): Feast's
// metadata.feature_view_metadata, one {"name","version"} per view version
// read, in order of first use.
func appendFeastHeaderKeys(b []byte, p *plan, req *lookupRequest) []byte {
	b = append(b, `{"metadata":{"feature_names":[`...)
	for i, k := range req.outKeys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendBytesString(b, req.str(req.keys[k]))
	}
	for _, n := range p.names {
		b = append(b, ',')
		b = appendString(b, n)
	}
	b = append(b, ']')
	if req.versionMeta {
		b = append(b, `,"feature_view_metadata":[`...)
		for i := range p.groups {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"name":`...)
			b = appendString(b, p.groups[i].view)
			b = append(b, `,"version":`...)
			b = appendInt(b, int64(p.groups[i].version))
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(b, `},"results":[`...)
}

func appendNativeHeader(b []byte, p *plan) []byte {
	if len(p.joinKeys) <= 1 {
		b = append(b, `{"join_key":`...)
		b = appendString(b, p.joinKey)
	} else {
		b = append(b, `{"join_keys":[`...)
		for j := range p.joinKeys {
			if j > 0 {
				b = append(b, ',')
			}
			b = appendString(b, p.joinKeys[j].joinKey)
		}
		b = append(b, ']')
	}
	b = append(b, `,"features":[`...)
	for i, n := range p.names {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, n)
	}
	return append(b, `],"read_at_ms":`...)
}

func appendEntity(b []byte, req *lookupRequest, v *entityValue) []byte {
	if v.isInt {
		return appendInt(b, v.i)
	}
	return appendBytesString(b, req.str(v.s))
}

// appendFeastResponse writes the Feast response. out holds the results
// row-major: out[e*nf+c] is feature column c of entity row e.
func appendFeastResponse(b []byte, p *plan, req *lookupRequest, out []aggregate.Result) []byte {
	b, _ = appendFeastResponseLimit(b, p, req, out, 0)
	return b
}

// appendFeastResponseLimit is appendFeastResponse that stops, with ok
// false, once the response passes limit bytes (0: no limit). It checks after
// each column, so it never holds much more than limit.
func appendFeastResponseLimit(b []byte, p *plan, req *lookupRequest, out []aggregate.Result, limit int) (_ []byte, ok bool) {
	start := len(b)
	n := len(req.values)
	nf := len(p.names)
	if len(req.outKeys) == 1 && !req.versionMeta {
		b = append(b, p.feastHeader...) // the plan's one join key
	} else {
		b = appendFeastHeaderKeys(b, p, req)
	}

	// The join key columns, in the order sent: the keys (int64 keys sent
	// as strings converted), PRESENT, the epoch.
	for i, k := range req.outKeys {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"values":[`...)
		col := req.col(k)
		for e := range col {
			if e > 0 {
				b = append(b, ',')
			}
			b = appendEntity(b, req, &col[e])
		}
		b = append(b, `],"statuses":[`...)
		for e := 0; e < n; e++ {
			if e > 0 {
				b = append(b, ',')
			}
			b = append(b, `"PRESENT"`...)
		}
		b = append(b, `],"event_timestamps":[`...)
		for e := 0; e < n; e++ {
			if e > 0 {
				b = append(b, ',')
			}
			b = append(b, epochJSON...)
		}
		b = append(b, `]}`...)
	}

	var tc tsCache
	for c := 0; c < nf; c++ {
		b = append(b, `,{"values":[`...)
		for e := 0; e < n; e++ {
			if e > 0 {
				b = append(b, ',')
			}
			r := &out[e*nf+c]
			if statusOf(r) == statusPresent {
				b = appendValue(b, &r.Value)
			} else {
				b = append(b, "null"...)
			}
		}
		b = append(b, `],"statuses":[`...)
		for e := 0; e < n; e++ {
			if e > 0 {
				b = append(b, ',')
			}
			b = append(b, statusJSON[statusOf(&out[e*nf+c])]...)
		}
		b = append(b, `],"event_timestamps":[`...)
		for e := 0; e < n; e++ {
			if e > 0 {
				b = append(b, ',')
			}
			r := &out[e*nf+c]
			if r.Status == aggregate.StatusNotFound || r.EventMillis == 0 {
				b = append(b, epochJSON...)
			} else {
				b = tc.append(b, r.EventMillis)
			}
		}
		b = append(b, `]}`...)
		if limit > 0 && len(b)-start > limit {
			return b, false
		}
	}
	b = append(b, "]}"...)
	return b, limit <= 0 || len(b)-start <= limit
}

// appendNativeResponse writes the native row-major response.
func appendNativeResponse(b []byte, p *plan, req *lookupRequest, out []aggregate.Result, atMillis int64) []byte {
	b, _ = appendNativeResponseLimit(b, p, req, out, atMillis, 0)
	return b
}

// appendNativeResponseLimit is appendNativeResponse that stops, with ok
// false, once the response passes limit bytes (0: no limit), checking after
// each row.
func appendNativeResponseLimit(b []byte, p *plan, req *lookupRequest, out []aggregate.Result, atMillis int64, limit int) (_ []byte, ok bool) {
	start := len(b)
	b = append(b, p.nativeHeader...)
	b = appendInt(b, atMillis)
	b = append(b, `,"rows":[`...)
	nf := len(p.names)
	for e := range req.values {
		if e > 0 {
			b = append(b, ',')
		}
		if len(p.joinKeys) <= 1 {
			b = append(b, `{"key":`...)
			b = appendEntity(b, req, &req.values[e])
		} else {
			b = append(b, `{"keys":[`...)
			for j := range p.joinKeys {
				if j > 0 {
					b = append(b, ',')
				}
				b = appendEntity(b, req, &req.col(req.keyOf[j])[e])
			}
			b = append(b, ']')
		}
		row := out[e*nf : (e+1)*nf]
		b = append(b, `,"values":[`...)
		for c := range row {
			if c > 0 {
				b = append(b, ',')
			}
			if statusOf(&row[c]) == statusPresent {
				b = appendValue(b, &row[c].Value)
			} else {
				b = append(b, "null"...)
			}
		}
		b = append(b, `],"statuses":[`...)
		for c := range row {
			if c > 0 {
				b = append(b, ',')
			}
			b = append(b, statusJSON[statusOf(&row[c])]...)
		}
		b = append(b, `],"event_ms":[`...)
		for c := range row {
			if c > 0 {
				b = append(b, ',')
			}
			if row[c].Status == aggregate.StatusNotFound {
				b = append(b, '0')
			} else {
				b = appendInt(b, row[c].EventMillis)
			}
		}
		b = append(b, "]}"...)
		if limit > 0 && len(b)-start > limit {
			return b, false
		}
	}
	b = append(b, "]}"...)
	return b, limit <= 0 || len(b)-start <= limit
}
