package serving

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/featured-dev/featured/aggregate"
)

// The codec alone (no store): the hand-written decoder and the append-style
// Feast encoder against the encoding/json baseline that NOTES.md's "Serving
// floor" measured (values as []any).

type codecSize struct {
	name               string
	entities, features int
}

var codecSizes = []codecSize{{"1x10", 1, 10}, {"1x50", 1, 50}, {"100x50", 100, 50}}

func codecBody(sz codecSize) []byte {
	refs := make([]string, sz.features)
	for i := range refs {
		refs[i] = fmt.Sprintf("feature_view_%d:feature_%d", i/10, i)
	}
	keys := make([]int64, sz.entities)
	for i := range keys {
		keys[i] = int64(i)
	}
	body, _ := json.Marshal(map[string]any{"features": refs, "entities": map[string]any{"entity": keys}})
	return body
}

func BenchmarkDecodeLookup(b *testing.B) {
	for _, sz := range codecSizes {
		body := codecBody(sz)
		b.Run(sz.name+"/handwritten", func(b *testing.B) {
			var req lookupRequest
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if err := decodeLookup(body, &req, 0, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(sz.name+"/encoding_json", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				var req struct {
					Features         []string         `json:"features"`
					FeatureService   string           `json:"feature_service"`
					Entities         map[string][]any `json:"entities"`
					FullFeatureNames bool             `json:"full_feature_names"`
				}
				if err := json.Unmarshal(body, &req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func codecFixture(sz codecSize) (*plan, *lookupRequest, []aggregate.Result) {
	names := make([]string, sz.features)
	for i := range names {
		names[i] = fmt.Sprintf("feature_%d", i)
	}
	p := &plan{joinKey: "entity", entityKind: aggregate.KindInt64, names: names}
	p.feastHeader = appendFeastHeader(nil, p)
	req := &lookupRequest{}
	if err := decodeLookup(codecBody(sz), req, 0, 0); err != nil {
		panic(err)
	}
	out := make([]aggregate.Result, sz.entities*sz.features)
	at := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC).UnixMilli()
	for i := range out {
		out[i] = aggregate.Result{Value: aggregate.Value{Kind: aggregate.KindInt64, I: int64(i * 37)}, Status: aggregate.StatusPresent, EventMillis: at - int64(i%7)*60_000}
	}
	return p, req, out
}

func BenchmarkEncodeFeast(b *testing.B) {
	for _, sz := range codecSizes {
		p, req, out := codecFixture(sz)
		b.Run(sz.name+"/append", func(b *testing.B) {
			buf := appendFeastResponse(nil, p, req, out)
			b.ReportAllocs()
			b.SetBytes(int64(len(buf)))
			for b.Loop() {
				buf = appendFeastResponse(buf[:0], p, req, out)
			}
		})
		b.Run(sz.name+"/encoding_json", func(b *testing.B) {
			type result struct {
				Values          []any    `json:"values"`
				Statuses        []string `json:"statuses"`
				EventTimestamps []string `json:"event_timestamps"`
			}
			type response struct {
				Metadata struct {
					FeatureNames []string `json:"feature_names"`
				} `json:"metadata"`
				Results []result `json:"results"`
			}
			b.ReportAllocs()
			for b.Loop() {
				// Build the []any response as a plain net/http server would,
				// then marshal it.
				var resp response
				resp.Metadata.FeatureNames = append([]string{p.joinKey}, p.names...)
				keys := result{}
				for _, v := range req.values {
					keys.Values = append(keys.Values, v.i)
					keys.Statuses = append(keys.Statuses, "PRESENT")
					keys.EventTimestamps = append(keys.EventTimestamps, "1970-01-01T00:00:00Z")
				}
				resp.Results = append(resp.Results, keys)
				nf := len(p.names)
				for c := 0; c < nf; c++ {
					var col result
					for e := range req.values {
						r := out[e*nf+c]
						col.Values = append(col.Values, r.Value.I)
						col.Statuses = append(col.Statuses, "PRESENT")
						col.EventTimestamps = append(col.EventTimestamps, time.UnixMilli(r.EventMillis).UTC().Format(time.RFC3339))
					}
					resp.Results = append(resp.Results, col)
				}
				if _, err := json.Marshal(resp); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
