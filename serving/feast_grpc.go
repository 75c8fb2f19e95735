package serving

import (
	"context"
	"slices"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/featured-dev/featured/aggregate"
	feastserving "github.com/featured-dev/featured/api/feast/serving"
	feasttypes "github.com/featured-dev/featured/api/feast/types"
)

// This file serves Feast's gRPC service, feast.serving.ServingService
// (api/feast), so that Feast's generated clients call featured's gRPC port
// unchanged. GetOnlineFeatures is POST /get-online-features over gRPC: the
// request is bound to the same lookupRequest, resolved, checked
// (checkEntities with Feast's rules) and read by the same lookupDecoded;
// only the conversion to and from Feast's messages is here.

type feastService struct {
	feastserving.UnimplementedServingServiceServer
	s *Server
}

var _ feastserving.ServingServiceServer = feastService{}

// GetFeastServingInfo answers Options.Version.
func (g feastService) GetFeastServingInfo(context.Context, *feastserving.GetFeastServingInfoRequest) (*feastserving.GetFeastServingInfoResponse, error) {
	return &feastserving.GetFeastServingInfoResponse{Version: g.s.opts.Version}, nil
}

// GetOnlineFeatures is Feast's lookup: the semantics of POST
// /get-online-features, Feast's column-major response with feast.types
// values. Errors are featured's gRPC codes (errors.go).
func (g feastService) GetOnlineFeatures(ctx context.Context, in *feastserving.GetOnlineFeaturesRequest) (*feastserving.GetOnlineFeaturesResponse, error) {
	s := g.s
	l := s.getLookup()
	defer s.putLookup(l)
	if err := requestFromFeast(&l.req, in, s.opts.MaxFeatures, s.opts.MaxEntities); err != nil {
		return nil, toGRPC(err)
	}
	if err := stalenessFromMetadata(ctx, &l.req); err != nil {
		return nil, toGRPC(err)
	}
	p, _, err := s.lookupDecoded(ctx, l, true)
	if err != nil {
		return nil, toGRPC(err)
	}
	s.observe(ctx, APIFeastGRPC, l, p)
	if s.opts.Placement != nil {
		// Feast's message has no room for them: a header, as over HTTP.
		_ = grpc.SetHeader(ctx, metadata.Pairs("featured-positions", string(appendPositionsJSON(nil, l.route.positions))))
	}
	resp := newFeastResponse(p, &l.req, l.out)
	if proto.Size(resp) > s.opts.MaxResponseBytes {
		return nil, toGRPC(s.responseTooLarge())
	}
	return resp, nil
}

// requestFromFeast fills req from Feast's request, with the checks the JSON
// decoder does. A protobuf map has no order, so the entity keys are taken
// in the order of their names: that is the order of the response's key
// columns (over HTTP it is the order sent). An entity key is an int64_val,
// an int32_val (an int64 to featured) or a string_val. request_context,
// the input of Feast's on-demand transforms, which featured does not have,
// is ignored.
func requestFromFeast(req *lookupRequest, in *feastserving.GetOnlineFeaturesRequest, maxFeatures, maxEntities int) error {
	req.reset()
	str := func(s string) span {
		off := len(req.arena)
		req.arena = append(req.arena, s...)
		return span{off: int32(off), n: int32(len(s))}
	}
	switch k := in.GetKind().(type) {
	case *feastserving.GetOnlineFeaturesRequest_FeatureService:
		req.service, req.hasService = str(k.FeatureService), true
	case *feastserving.GetOnlineFeaturesRequest_Features:
		req.hasFeatures = true
		vals := k.Features.GetVal()
		if maxFeatures > 0 && len(vals) > maxFeatures {
			return &LimitError{Field: "features", Limit: maxFeatures, What: "features"}
		}
		for _, f := range vals {
			req.features = append(req.features, str(f))
		}
	}
	req.fullNames = in.GetFullFeatureNames()
	req.versionMeta = in.GetIncludeFeatureViewVersionMetadata()
	entities := in.GetEntities()
	req.hasEntities = len(entities) > 0
	keys := make([]string, 0, len(entities))
	for key := range entities {
		keys = append(keys, key)
	}
	slices.Sort(keys)
	var rerr RequestError
	for _, key := range keys {
		req.keys = append(req.keys, str(key))
		vals := entities[key].GetVal()
		if maxEntities > 0 && len(vals) > maxEntities {
			return &LimitError{Field: "entities." + key, Limit: maxEntities, What: "entity rows"}
		}
		for i, v := range vals {
			switch x := v.GetVal().(type) {
			case *feasttypes.Value_Int64Val:
				req.all = append(req.all, entityValue{isInt: true, i: x.Int64Val})
			case *feasttypes.Value_Int32Val:
				req.all = append(req.all, entityValue{isInt: true, i: int64(x.Int32Val)})
			case *feasttypes.Value_StringVal:
				req.all = append(req.all, entityValue{s: str(x.StringVal)})
			default:
				rerr.add("entities."+key+"["+strconv.Itoa(i)+"]", "", "an entity key is a string_val, an int64_val or an int32_val", nil)
			}
		}
		req.addCol()
	}
	req.bindFirst()
	return rerr.err()
}

// newFeastResponse builds Feast's GetOnlineFeaturesResponse of a lookup,
// the columns of the JSON response (appendFeastResponseLimit) as messages:
// the entity key columns first (the keys, int64 keys sent as strings
// converted; PRESENT; the epoch as an empty Timestamp), then one column per
// feature. A value that is not PRESENT is an empty Value, as Feast's server
// sends it; a time of a NOT_FOUND or never-set value is an empty Timestamp
// (the epoch). out holds the results row-major: out[e*nf+c].
//
// Unlike newResponse it is not tuned to allocate a fixed number of times:
// Feast's service is a compatibility path, featured.v1's the fast one.
func newFeastResponse(p *plan, req *lookupRequest, out []aggregate.Result) *feastserving.GetOnlineFeaturesResponse {
	n := len(req.values)
	nf := len(p.names)
	names := make([]string, 0, len(req.outKeys)+nf)
	for _, k := range req.outKeys {
		names = append(names, string(req.str(req.keys[k])))
	}
	names = append(names, p.names...)
	md := &feastserving.GetOnlineFeaturesResponseMetadata{FeatureNames: &feastserving.FeatureList{Val: names}}
	if req.versionMeta {
		for i := range p.groups {
			md.FeatureViewMetadata = append(md.FeatureViewMetadata, &feastserving.FeatureViewMetadata{
				Name: p.groups[i].view, Version: int32(p.groups[i].version),
			})
		}
	}
	resp := &feastserving.GetOnlineFeaturesResponse{
		Metadata: md,
		Results:  make([]*feastserving.GetOnlineFeaturesResponse_FeatureVector, 0, len(names)),
	}
	empty := &timestamppb.Timestamp{}
	column := func() *feastserving.GetOnlineFeaturesResponse_FeatureVector {
		v := &feastserving.GetOnlineFeaturesResponse_FeatureVector{
			Values:          make([]*feasttypes.Value, n),
			Statuses:        make([]feastserving.FieldStatus, n),
			EventTimestamps: make([]*timestamppb.Timestamp, n),
		}
		resp.Results = append(resp.Results, v)
		return v
	}
	for _, k := range req.outKeys {
		v := column()
		for e, ev := range req.col(k) {
			if ev.isInt {
				v.Values[e] = &feasttypes.Value{Val: &feasttypes.Value_Int64Val{Int64Val: ev.i}}
			} else {
				v.Values[e] = &feasttypes.Value{Val: &feasttypes.Value_StringVal{StringVal: string(req.str(ev.s))}}
			}
			v.Statuses[e], v.EventTimestamps[e] = feastserving.FieldStatus_PRESENT, empty
		}
	}
	// The element kind of each feature's input field, for an empty list
	// (last_k of nothing yet), whose elements cannot say.
	elems := make([]aggregate.Kind, nf)
	for i := range p.groups {
		g := &p.groups[i]
		specs := g.layout.Specs()
		for j, c := range g.cols {
			elems[c] = specs[g.features[j]].FieldKind
		}
	}
	unset := &feasttypes.Value{}
	stamps := make(map[int64]*timestamppb.Timestamp)
	for c := 0; c < nf; c++ {
		v := column()
		for e := 0; e < n; e++ {
			r := &out[e*nf+c]
			st := statusOf(r)
			v.Statuses[e] = feastserving.FieldStatus(st)
			v.Values[e] = unset
			if st == statusPresent {
				v.Values[e] = feastValue(&r.Value, elems[c])
			}
			v.EventTimestamps[e] = empty
			if r.Status != aggregate.StatusNotFound && r.EventMillis != 0 {
				ts, ok := stamps[r.EventMillis]
				if !ok {
					ts = timestamppb.New(time.UnixMilli(r.EventMillis))
					stamps[r.EventMillis] = ts
				}
				v.EventTimestamps[e] = ts
			}
		}
	}
	return resp
}

// feastValue is a present value as Feast's Value. A list whose elements
// are all of one scalar kind (elem, when it is empty) is Feast's typed list
// (int64_list_val, ...), as a Feast view's Array(Int64) feature is; any
// other list is a list_val of values.
func feastValue(a *aggregate.Value, elem aggregate.Kind) *feasttypes.Value {
	switch a.Kind {
	case aggregate.KindInt64:
		return &feasttypes.Value{Val: &feasttypes.Value_Int64Val{Int64Val: a.I}}
	case aggregate.KindFloat64:
		return &feasttypes.Value{Val: &feasttypes.Value_DoubleVal{DoubleVal: a.F}}
	case aggregate.KindString:
		return &feasttypes.Value{Val: &feasttypes.Value_StringVal{StringVal: a.S}}
	case aggregate.KindBool:
		return &feasttypes.Value{Val: &feasttypes.Value_BoolVal{BoolVal: a.I != 0}}
	case aggregate.KindList:
		if len(a.L) > 0 {
			elem = a.L[0].Kind
		}
		for i := range a.L {
			if a.L[i].Kind != elem {
				elem = aggregate.KindList // mixed: a list_val
			}
		}
		switch elem {
		case aggregate.KindInt64:
			l := make([]int64, len(a.L))
			for i := range a.L {
				l[i] = a.L[i].I
			}
			return &feasttypes.Value{Val: &feasttypes.Value_Int64ListVal{Int64ListVal: &feasttypes.Int64List{Val: l}}}
		case aggregate.KindFloat64:
			l := make([]float64, len(a.L))
			for i := range a.L {
				l[i] = a.L[i].F
			}
			return &feasttypes.Value{Val: &feasttypes.Value_DoubleListVal{DoubleListVal: &feasttypes.DoubleList{Val: l}}}
		case aggregate.KindString:
			l := make([]string, len(a.L))
			for i := range a.L {
				l[i] = a.L[i].S
			}
			return &feasttypes.Value{Val: &feasttypes.Value_StringListVal{StringListVal: &feasttypes.StringList{Val: l}}}
		case aggregate.KindBool:
			l := make([]bool, len(a.L))
			for i := range a.L {
				l[i] = a.L[i].I != 0
			}
			return &feasttypes.Value{Val: &feasttypes.Value_BoolListVal{BoolListVal: &feasttypes.BoolList{Val: l}}}
		}
		l := &feasttypes.RepeatedValue{Val: make([]*feasttypes.Value, len(a.L))}
		for i := range a.L {
			l.Val[i] = feastValue(&a.L[i], aggregate.KindNull)
		}
		return &feasttypes.Value{Val: &feasttypes.Value_ListVal{ListVal: l}}
	}
	return &feasttypes.Value{}
}
