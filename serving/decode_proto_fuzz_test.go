package serving

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	featuredv1 "github.com/featured-dev/featured/api/featured/v1"
)

// FuzzDecodeLookupProto covers the native lookup's gRPC decoder: arbitrary
// wire bytes through proto.Unmarshal (what grpc-go does) and
// requestFromProto. Its errors are request or limit errors, and what it
// accepts the JSON decoder reads as the same request from the equivalent
// JSON body, so the two transports cannot disagree on a lookup.
func FuzzDecodeLookupProto(f *testing.F) {
	str := func(s string) *featuredv1.Value {
		return &featuredv1.Value{Kind: &featuredv1.Value_StringVal{StringVal: s}}
	}
	num := func(i int64) *featuredv1.Value {
		return &featuredv1.Value{Kind: &featuredv1.Value_Int64Val{Int64Val: i}}
	}
	for _, m := range []*featuredv1.GetOnlineFeaturesRequest{
		{Kind: &featuredv1.GetOnlineFeaturesRequest_Features{Features: &featuredv1.FeatureList{Val: []string{"user_spend:spend_7d", "v@v2:f"}}},
			Entities: map[string]*featuredv1.RepeatedValue{"user_id": {Val: []*featuredv1.Value{str("u1"), str("\x00"), str("")}}}},
		{Kind: &featuredv1.GetOnlineFeaturesRequest_FeatureService{FeatureService: "fraud"}, FullFeatureNames: true,
			Entities: map[string]*featuredv1.RepeatedValue{"merchant_id": {Val: []*featuredv1.Value{num(-1 << 63), num(42)}}}},
		{Kind: &featuredv1.GetOnlineFeaturesRequest_Features{Features: &featuredv1.FeatureList{}},
			Entities: map[string]*featuredv1.RepeatedValue{"a": {Val: []*featuredv1.Value{num(1)}}, "b": {}}},
		{Entities: map[string]*featuredv1.RepeatedValue{"k": {Val: []*featuredv1.Value{{Kind: &featuredv1.Value_DoubleVal{DoubleVal: 1}}, {}}}}},
		{},
	} {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x12, 0x02, 0x0a, 0xff})
	var req, fromJSON lookupRequest
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 64<<10 {
			return // input cap
		}
		var in featuredv1.GetOnlineFeaturesRequest
		if proto.Unmarshal(data, &in) != nil {
			return // grpc-go answers INTERNAL for undecodable messages before any handler runs
		}
		err := requestFromProto(&req, &in, 100, 100)
		if err != nil {
			var re *RequestError
			var le *LimitError
			if !errors.As(err, &re) && !errors.As(err, &le) || !errors.Is(err, ErrBadRequest) && !errors.Is(err, ErrLimit) {
				t.Fatalf("%x: error %T %v is neither a request nor a limit error", data, err, err)
			}
			return
		}
		got := plain(&req)
		if _, ok := in.GetKind().(*featuredv1.GetOnlineFeaturesRequest_Features); ok && !slices.Equal(got.features, in.GetFeatures().GetVal()) {
			t.Fatalf("%x: features %q, the message %q", data, got.features, in.GetFeatures().GetVal())
		}
		if in.GetFeatureService() != got.service {
			t.Fatalf("%x: feature_service %q, the message %q", data, got.service, in.GetFeatureService())
		}
		if len(in.GetEntities()) != 1 {
			return // which key's values are kept depends on map order; checkEntities rejects these
		}

		// The equivalent JSON body. Proto strings are valid UTF-8, so
		// encoding/json keeps them as they are.
		body := map[string]any{}
		switch k := in.GetKind().(type) {
		case *featuredv1.GetOnlineFeaturesRequest_Features:
			body["features"] = append([]string{}, k.Features.GetVal()...)
		case *featuredv1.GetOnlineFeaturesRequest_FeatureService:
			body["feature_service"] = k.FeatureService
		}
		if in.GetFullFeatureNames() {
			body["full_feature_names"] = true
		}
		ents := map[string][]any{}
		for key, col := range in.GetEntities() {
			vals := []any{}
			for _, v := range col.GetVal() {
				if s, ok := v.GetKind().(*featuredv1.Value_StringVal); ok {
					vals = append(vals, s.StringVal)
				} else {
					vals = append(vals, v.GetInt64Val())
				}
			}
			ents[key] = vals
		}
		body["entities"] = ents
		j, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		if err := decodeLookup(j, &fromJSON, 100, 100); err != nil {
			t.Fatalf("%x: accepted over gRPC, the JSON decoder rejects %s: %v", data, j, err)
		}
		want := plain(&fromJSON)
		if !slices.Equal(got.features, want.features) || got.service != want.service || got.full != want.full ||
			!slices.Equal(got.keys, want.keys) || !slices.Equal(got.values, want.values) ||
			got.hasFeat != want.hasFeat || got.hasSvc != want.hasSvc || got.hasEntity != want.hasEntity {
			t.Fatalf("%x: gRPC decodes %+v, JSON %s decodes %+v", data, got, j, want)
		}
	})
}
