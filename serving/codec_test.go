package serving

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/encoding"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/featured-dev/featured/aggregate"
	featuredv1 "github.com/featured-dev/featured/api/featured/v1"
)

// TestCodecMatchesProtoMarshal: newResponse builds exactly the message the
// test's own naive oracle builds, and the registered "proto" codec writes it
// byte for byte as proto.Marshal does, for random results of every kind and
// status, string and int64 keys, and any shape.
func TestCodecMatchesProtoMarshal(t *testing.T) {
	c := encoding.GetCodecV2("proto")
	if _, ok := c.(codec); !ok {
		t.Fatalf("the registered proto codec is %T, want serving's", c)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	value := func() aggregate.Value {
		switch rng.IntN(6) {
		case 0:
			return aggregate.Value{Kind: aggregate.KindInt64, I: rng.Int64() - 1<<62}
		case 1:
			return aggregate.Value{Kind: aggregate.KindFloat64, F: rng.NormFloat64() * 1e6}
		case 2:
			return aggregate.Value{Kind: aggregate.KindString, S: fmt.Sprintf("m%d", rng.IntN(100))}
		case 3:
			return aggregate.Value{Kind: aggregate.KindBool, I: int64(rng.IntN(2))}
		case 4:
			l := aggregate.Value{Kind: aggregate.KindList, L: []aggregate.Value{}}
			for i := rng.IntN(4); i > 0; i-- {
				l.L = append(l.L, aggregate.Value{Kind: aggregate.KindFloat64, F: float64(rng.IntN(9))})
			}
			return l
		}
		return aggregate.Value{Kind: aggregate.KindFloat64, F: 0}
	}
	for round := 0; round < 300; round++ {
		n, nf := 1+rng.IntN(12), rng.IntN(8)
		body := `{"entities":{"user_id":[`
		for e := 0; e < n; e++ {
			if e > 0 {
				body += ","
			}
			if round%2 == 0 {
				body += fmt.Sprintf("%d", rng.Int64N(1<<40)-1<<39)
			} else {
				body += fmt.Sprintf("%q", fmt.Sprintf("u%d", rng.IntN(1000)))
			}
		}
		body += `]},"features":["v:f"]}`
		var req lookupRequest
		if err := decodeLookup([]byte(body), &req, 100, 100); err != nil {
			t.Fatalf("decode %s: %v", body, err)
		}
		p := &plan{joinKey: "user_id"}
		for c := 0; c < nf; c++ {
			p.names = append(p.names, fmt.Sprintf("feature_%d", c))
		}
		out := make([]aggregate.Result, n*nf)
		for i := range out {
			switch rng.IntN(5) {
			case 0:
				out[i] = aggregate.Result{Status: aggregate.StatusNotFound}
			case 1:
				out[i] = aggregate.Result{Status: aggregate.StatusNull, EventMillis: rng.Int64N(1 << 42)}
			case 2:
				out[i] = aggregate.Result{Status: aggregate.StatusPresent, Value: value(), EventMillis: -rng.Int64N(1 << 40)}
			default:
				out[i] = aggregate.Result{Status: aggregate.StatusPresent, Value: value(), EventMillis: rng.Int64N(1 << 42)}
			}
		}
		want := oracleResponse(p, &req, out)
		got, bound := newResponse(p, &req, out)
		if !proto.Equal(got, want) {
			t.Fatalf("round %d: newResponse differs:\ngot  %v\nwant %v", round, got, want)
		}
		// The response-byte limit trusts bound to be at least the size.
		if size := proto.Size(got); bound < size {
			t.Fatalf("round %d: size bound %d below the encoded size %d", round, bound, size)
		}
		bs, err := c.Marshal(got)
		if err != nil {
			t.Fatalf("round %d: marshal: %v", round, err)
		}
		std, err := proto.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		if wire := bs.Materialize(); string(wire) != string(std) {
			t.Fatalf("round %d: codec writes %d bytes unlike proto.Marshal's %d", round, len(wire), len(std))
		}
		bs.Free()
	}
}

// oracleResponse is the test's own, naive builder of a lookup response: one
// allocation per message, no arenas.
func oracleResponse(p *plan, req *lookupRequest, out []aggregate.Result) *featuredv1.GetOnlineFeaturesResponse {
	nf := len(p.names)
	resp := &featuredv1.GetOnlineFeaturesResponse{Metadata: &featuredv1.GetOnlineFeaturesResponseMetadata{
		FeatureNames: &featuredv1.FeatureList{Val: append([]string{p.joinKey}, p.names...)}}}
	keys := &featuredv1.FeatureVector{}
	for e := range req.values {
		ev := &req.values[e]
		v := &featuredv1.Value{Kind: &featuredv1.Value_StringVal{StringVal: string(req.str(ev.s))}}
		if ev.isInt {
			v = &featuredv1.Value{Kind: &featuredv1.Value_Int64Val{Int64Val: ev.i}}
		}
		keys.Values = append(keys.Values, v)
		keys.Statuses = append(keys.Statuses, featuredv1.FieldStatus_PRESENT)
		keys.EventTimestamps = append(keys.EventTimestamps, &timestamppb.Timestamp{})
	}
	resp.Results = append(resp.Results, keys)
	for c := 0; c < nf; c++ {
		col := &featuredv1.FeatureVector{}
		for e := range req.values {
			r := &out[e*nf+c]
			v := &featuredv1.Value{}
			if statusOf(r) == statusPresent {
				v = oracleValue(&r.Value)
			}
			ts := &timestamppb.Timestamp{}
			if r.Status != aggregate.StatusNotFound && r.EventMillis != 0 {
				ts = timestamppb.New(time.UnixMilli(r.EventMillis))
			}
			col.Values = append(col.Values, v)
			col.Statuses = append(col.Statuses, featuredv1.FieldStatus(statusOf(r)))
			col.EventTimestamps = append(col.EventTimestamps, ts)
		}
		resp.Results = append(resp.Results, col)
	}
	return resp
}

func oracleValue(a *aggregate.Value) *featuredv1.Value {
	switch a.Kind {
	case aggregate.KindInt64:
		return &featuredv1.Value{Kind: &featuredv1.Value_Int64Val{Int64Val: a.I}}
	case aggregate.KindFloat64:
		return &featuredv1.Value{Kind: &featuredv1.Value_DoubleVal{DoubleVal: a.F}}
	case aggregate.KindString:
		return &featuredv1.Value{Kind: &featuredv1.Value_StringVal{StringVal: a.S}}
	case aggregate.KindBool:
		return &featuredv1.Value{Kind: &featuredv1.Value_BoolVal{BoolVal: a.I != 0}}
	case aggregate.KindList:
		l := &featuredv1.ValueList{}
		for i := range a.L {
			l.Val = append(l.Val, oracleValue(&a.L[i]))
		}
		return &featuredv1.Value{Kind: &featuredv1.Value_ListVal{ListVal: l}}
	}
	return &featuredv1.Value{}
}

// TestCodecReadsUnknownFields: the codec's fast check of unknown fields
// reads every message type it writes at a reflected offset; none may have
// fallen back (a protobuf-go that moved the field would make that silent).
func TestCodecReadsUnknownFields(t *testing.T) {
	for name, off := range map[string]uintptr{
		"GetOnlineFeaturesResponse": offResponse, "GetOnlineFeaturesResponseMetadata": offMetadata,
		"FeatureList": offFeatureList, "FeatureVector": offVector, "Value": offValue,
		"ValueList": offValueList, "Timestamp": offTimestamp,
	} {
		if off == 0 {
			t.Errorf("%s: no unknownFields []byte field found; the codec asks ProtoReflect per message", name)
		}
	}
}

// TestCodecMutatedResponse: a response changed after newResponse built it
// (as an interceptor may) is written exactly as proto.Marshal writes it, or
// fails as proto.Marshal fails. Cells share messages (the empty Timestamp,
// equal times), so a change to one shows in all of them, and in both
// encodings alike.
func TestCodecMutatedResponse(t *testing.T) {
	c := encoding.GetCodecV2("proto")
	withUnknown := func(m proto.Message) { m.ProtoReflect().SetUnknown([]byte{0xf8, 0x07, 0x01}) } // field 127, varint 1
	decoded := func() *featuredv1.Value {
		var v featuredv1.Value
		// int64_val: 5 and an unknown field 99 (varint 7), as from a newer peer.
		if err := proto.Unmarshal([]byte{0x08, 0x05, 0x98, 0x06, 0x07}, &v); err != nil {
			t.Fatal(err)
		}
		return &v
	}
	mutations := map[string]func(r *featuredv1.GetOnlineFeaturesResponse){
		"none":                    func(r *featuredv1.GetOnlineFeaturesResponse) {},
		"unknown in response":     func(r *featuredv1.GetOnlineFeaturesResponse) { withUnknown(r) },
		"unknown in metadata":     func(r *featuredv1.GetOnlineFeaturesResponse) { withUnknown(r.Metadata) },
		"unknown in feature list": func(r *featuredv1.GetOnlineFeaturesResponse) { withUnknown(r.Metadata.FeatureNames) },
		"unknown in vector":       func(r *featuredv1.GetOnlineFeaturesResponse) { withUnknown(r.Results[2]) },
		"unknown in value":        func(r *featuredv1.GetOnlineFeaturesResponse) { withUnknown(r.Results[1].Values[1]) },
		"unknown in key value":    func(r *featuredv1.GetOnlineFeaturesResponse) { withUnknown(r.Results[0].Values[0]) },
		"unknown in empty stamp":  func(r *featuredv1.GetOnlineFeaturesResponse) { withUnknown(r.Results[0].EventTimestamps[0]) },
		"unknown in stamp":        func(r *featuredv1.GetOnlineFeaturesResponse) { withUnknown(r.Results[3].EventTimestamps[1]) },
		"decoded value":           func(r *featuredv1.GetOnlineFeaturesResponse) { r.Results[1].Values[0] = decoded() },
		"shared stamp changed":    func(r *featuredv1.GetOnlineFeaturesResponse) { r.Results[2].EventTimestamps[0].Seconds = -1 },
		"empty stamp changed": func(r *featuredv1.GetOnlineFeaturesResponse) {
			r.Results[0].EventTimestamps[0].Nanos = 999_999_999
		},
		"value changed": func(r *featuredv1.GetOnlineFeaturesResponse) {
			r.Results[2].Values[1].Kind = &featuredv1.Value_StringVal{StringVal: strings.Repeat("x", 300)}
		},
		"long string": func(r *featuredv1.GetOnlineFeaturesResponse) {
			// Longer than the writer's guess of the vector's size by far:
			// its length takes more bytes than the writer saved for it.
			r.Results[2].Values[2].Kind = &featuredv1.Value_StringVal{StringVal: strings.Repeat("y", 40_000)}
		},
		"invalid utf-8": func(r *featuredv1.GetOnlineFeaturesResponse) {
			r.Results[2].Values[1].Kind = &featuredv1.Value_StringVal{StringVal: "\xff"}
		},
		"invalid utf-8 name": func(r *featuredv1.GetOnlineFeaturesResponse) { r.Metadata.FeatureNames.Val[1] = "\xfe" },
		"list with unknown": func(r *featuredv1.GetOnlineFeaturesResponse) {
			r.Results[1].Values[2].Kind = &featuredv1.Value_ListVal{ListVal: &featuredv1.ValueList{Val: []*featuredv1.Value{{}, decoded()}}}
		},
		"unknown in list": func(r *featuredv1.GetOnlineFeaturesResponse) {
			l := &featuredv1.ValueList{Val: []*featuredv1.Value{{Kind: &featuredv1.Value_BoolVal{}}}}
			withUnknown(l)
			r.Results[1].Values[2].Kind = &featuredv1.Value_ListVal{ListVal: l}
		},
		"nil list": func(r *featuredv1.GetOnlineFeaturesResponse) {
			r.Results[1].Values[2].Kind = &featuredv1.Value_ListVal{}
		},
		"nil value":   func(r *featuredv1.GetOnlineFeaturesResponse) { r.Results[1].Values[0] = nil },
		"nil stamp":   func(r *featuredv1.GetOnlineFeaturesResponse) { r.Results[1].EventTimestamps[0] = nil },
		"nil vector":  func(r *featuredv1.GetOnlineFeaturesResponse) { r.Results[1] = nil },
		"no metadata": func(r *featuredv1.GetOnlineFeaturesResponse) { r.Metadata = nil },
		"no names":    func(r *featuredv1.GetOnlineFeaturesResponse) { r.Metadata.FeatureNames = nil },
		"odd status":  func(r *featuredv1.GetOnlineFeaturesResponse) { r.Results[1].Statuses[0] = -3 },
		"big status":  func(r *featuredv1.GetOnlineFeaturesResponse) { r.Results[1].Statuses[0] = 1000 },
		"no statuses": func(r *featuredv1.GetOnlineFeaturesResponse) { r.Results[2].Statuses = nil },
		"appended": func(r *featuredv1.GetOnlineFeaturesResponse) {
			v := r.Results[1]
			v.Values = append(v.Values, &featuredv1.Value{Kind: &featuredv1.Value_DoubleVal{DoubleVal: 1.5}})
			v.Statuses = append(v.Statuses, featuredv1.FieldStatus_PRESENT)
			v.EventTimestamps = append(v.EventTimestamps, &timestamppb.Timestamp{Seconds: 1 << 40})
		},
	}
	for name, mutate := range mutations {
		t.Run(name, func(t *testing.T) {
			p, req, out := codecFixture(codecSize{"3x4", 3, 4})
			resp, _ := newResponse(p, req, out)
			mutate(resp)
			std, stdErr := proto.Marshal(resp)
			bs, err := c.Marshal(resp)
			if (err != nil) != (stdErr != nil) {
				t.Fatalf("codec error %v, proto.Marshal error %v", err, stdErr)
			}
			if err != nil {
				return
			}
			if wire := bs.Materialize(); string(wire) != string(std) {
				t.Fatalf("codec writes\n%x\nproto.Marshal\n%x", wire, std)
			}
			bs.Free()
		})
	}
}
