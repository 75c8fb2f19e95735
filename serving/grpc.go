package serving

import (
	"context"
	"errors"
	"google.golang.org/protobuf/reflect/protoreflect"
	"runtime/debug"
	"strconv"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/featured-dev/featured/aggregate"
	featuredv1 "github.com/featured-dev/featured/api/featured/v1"
	"github.com/featured-dev/featured/ingest"
)

const (
	healthServing    = healthgrpc.HealthCheckResponse_SERVING
	healthNotServing = healthgrpc.HealthCheckResponse_NOT_SERVING
)

// healthServices are the names the gRPC health service reports on: the
// server as a whole ("") and each featured.v1 service.
var healthServices = []string{
	"",
	featuredv1.ServingService_ServiceDesc.ServiceName,
	featuredv1.IngestService_ServiceDesc.ServiceName,
	featuredv1.RegistryService_ServiceDesc.ServiceName,
}

// RegisterGRPC registers featured.v1's ServingService, IngestService and
// RegistryService on g, with the gRPC health service (following SetReady) and
// server reflection. The caller owns g: its listener, options (such as the
// maximum message size, which bounds requests there as MaxBodyBytes does over
// HTTP) and shutdown.
func (s *Server) RegisterGRPC(g *grpc.Server) {
	featuredv1.RegisterServingServiceServer(g, servingService{s: s})
	featuredv1.RegisterIngestServiceServer(g, ingestService{s: s})
	featuredv1.RegisterRegistryServiceServer(g, registryService{s: s})
	healthgrpc.RegisterHealthServer(g, s.health)
	reflection.Register(g)
}

type servingService struct {
	featuredv1.UnimplementedServingServiceServer
	s *Server
}

var _ featuredv1.ServingServiceServer = servingService{}

// GetOnlineFeatures is the lookup of POST /get-online-features over gRPC: the
// same resolution, limits, errors and column-major result.
func (g servingService) GetOnlineFeatures(ctx context.Context, in *featuredv1.GetOnlineFeaturesRequest) (_ *featuredv1.GetOnlineFeaturesResponse, err error) {
	s := g.s
	defer s.recoverGRPC("GetOnlineFeatures", &err)
	l := s.getLookup()
	defer s.putLookup(l)
	if err := requestFromProto(&l.req, in, s.opts.MaxFeatures, s.opts.MaxEntities); err != nil {
		return nil, toGRPC(err)
	}
	p, _, lerr := s.lookupDecoded(ctx, l)
	if lerr != nil {
		return nil, toGRPC(lerr)
	}
	// The response's wire bytes, written directly (grpc_wire.go) and handed
	// over as an empty message's unknown fields, which proto.Marshal copies
	// as they are. They outlive the handler, so they are not pooled.
	n := len(l.req.values) * (len(p.names) + 1)
	l.wire.limit = s.opts.MaxResponseBytes
	wire := l.wire.appendResponse(make([]byte, 0, min(64+24*n, s.opts.MaxResponseBytes+1)), p, &l.req, l.out)
	if len(wire) > s.opts.MaxResponseBytes {
		return nil, toGRPC(s.responseTooLarge())
	}
	resp := &featuredv1.GetOnlineFeaturesResponse{}
	resp.ProtoReflect().SetUnknown(protoreflect.RawFields(wire))
	return resp, nil
}

// requestFromProto fills req from a gRPC request, with the checks the JSON
// decoder does.
func requestFromProto(req *lookupRequest, in *featuredv1.GetOnlineFeaturesRequest, maxFeatures, maxEntities int) error {
	req.reset()
	str := func(s string) span {
		off := len(req.arena)
		req.arena = append(req.arena, s...)
		return span{off: int32(off), n: int32(len(s))}
	}
	switch k := in.GetKind().(type) {
	case *featuredv1.GetOnlineFeaturesRequest_FeatureService:
		req.service, req.hasService = str(k.FeatureService), true
	case *featuredv1.GetOnlineFeaturesRequest_Features:
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
	if len(in.GetEntities()) > 0 {
		req.hasEntities = true
	}
	var rerr RequestError
	for key, col := range in.GetEntities() {
		req.keys = append(req.keys, str(key))
		vals := col.GetVal()
		if maxEntities > 0 && len(vals) > maxEntities {
			return &LimitError{Field: "entities." + key, Limit: maxEntities, What: "entity rows"}
		}
		if len(req.keys) > 1 {
			continue // rejected by checkEntities; values not needed
		}
		for i, v := range vals {
			switch x := v.GetKind().(type) {
			case *featuredv1.Value_Int64Val:
				req.values = append(req.values, entityValue{isInt: true, i: x.Int64Val})
			case *featuredv1.Value_StringVal:
				req.values = append(req.values, entityValue{s: str(x.StringVal)})
			default:
				rerr.add("entities."+key+"["+strconv.Itoa(i)+"]", "", "an entity key is a string_val or an int64_val", nil)
			}
		}
	}
	return rerr.err()
}

func responseToProto(p *plan, req *lookupRequest, out []aggregate.Result) *featuredv1.GetOnlineFeaturesResponse {
	n := len(req.values)
	nf := len(p.names)
	names := make([]string, 0, nf+1)
	names = append(names, p.joinKey)
	names = append(names, p.names...)
	resp := &featuredv1.GetOnlineFeaturesResponse{
		Metadata: &featuredv1.GetOnlineFeaturesResponseMetadata{FeatureNames: &featuredv1.FeatureList{Val: names}},
		Results:  make([]*featuredv1.FeatureVector, nf+1),
	}
	// One backing array per message type: far fewer allocations than one
	// per value.
	values := make([]featuredv1.Value, n*(nf+1))
	stamps := make([]timestamppb.Timestamp, n*(nf+1))
	wr := wrappers{max: n * (nf + 1)}
	next := 0
	column := func() *featuredv1.FeatureVector {
		return &featuredv1.FeatureVector{
			Values:          make([]*featuredv1.Value, n),
			Statuses:        make([]featuredv1.FieldStatus, n),
			EventTimestamps: make([]*timestamppb.Timestamp, n),
		}
	}
	keys := column()
	for e := range req.values {
		v := &values[next]
		ts := &stamps[next]
		next++
		ev := &req.values[e]
		if ev.isInt {
			v.Kind = wr.int64(ev.i)
		} else {
			v.Kind = wr.string(string(req.str(ev.s)))
		}
		keys.Values[e], keys.Statuses[e], keys.EventTimestamps[e] = v, featuredv1.FieldStatus_PRESENT, ts
	}
	resp.Results[0] = keys
	for c := 0; c < nf; c++ {
		col := column()
		for e := 0; e < n; e++ {
			r := &out[e*nf+c]
			v := &values[next]
			ts := &stamps[next]
			next++
			st := statusOf(r)
			if st == statusPresent {
				wr.set(v, &r.Value)
			}
			if r.Status != aggregate.StatusNotFound && r.EventMillis != 0 {
				ts.Seconds = r.EventMillis / 1000
				ts.Nanos = int32(r.EventMillis%1000) * 1e6
				if ts.Nanos < 0 {
					ts.Seconds--
					ts.Nanos += 1e9
				}
			}
			col.Values[e], col.Statuses[e], col.EventTimestamps[e] = v, featuredv1.FieldStatus(st), ts
		}
		resp.Results[c+1] = col
	}
	return resp
}

// wrappers hands out oneof wrappers of Value from backing arrays allocated
// once per response (their capacity is fixed, so pointers stay valid).
type wrappers struct {
	max     int
	ints    []featuredv1.Value_Int64Val
	doubles []featuredv1.Value_DoubleVal
	strs    []featuredv1.Value_StringVal
}

func (w *wrappers) int64(i int64) *featuredv1.Value_Int64Val {
	if w.ints == nil {
		w.ints = make([]featuredv1.Value_Int64Val, 0, w.max)
	}
	w.ints = append(w.ints, featuredv1.Value_Int64Val{Int64Val: i})
	return &w.ints[len(w.ints)-1]
}

func (w *wrappers) double(f float64) *featuredv1.Value_DoubleVal {
	if w.doubles == nil {
		w.doubles = make([]featuredv1.Value_DoubleVal, 0, w.max)
	}
	w.doubles = append(w.doubles, featuredv1.Value_DoubleVal{DoubleVal: f})
	return &w.doubles[len(w.doubles)-1]
}

func (w *wrappers) string(s string) *featuredv1.Value_StringVal {
	if w.strs == nil {
		w.strs = make([]featuredv1.Value_StringVal, 0, w.max)
	}
	w.strs = append(w.strs, featuredv1.Value_StringVal{StringVal: s})
	return &w.strs[len(w.strs)-1]
}

// set sets v to the wire form of a top-level value.
func (w *wrappers) set(v *featuredv1.Value, a *aggregate.Value) {
	switch a.Kind {
	case aggregate.KindInt64:
		v.Kind = w.int64(a.I)
	case aggregate.KindFloat64:
		v.Kind = w.double(a.F)
	case aggregate.KindString:
		v.Kind = w.string(a.S)
	default:
		setProtoValue(v, a)
	}
}

// setProtoValue sets v to the wire form of a; a null leaves v unset.
func setProtoValue(v *featuredv1.Value, a *aggregate.Value) {
	switch a.Kind {
	case aggregate.KindInt64:
		v.Kind = &featuredv1.Value_Int64Val{Int64Val: a.I}
	case aggregate.KindFloat64:
		v.Kind = &featuredv1.Value_DoubleVal{DoubleVal: a.F}
	case aggregate.KindString:
		v.Kind = &featuredv1.Value_StringVal{StringVal: a.S}
	case aggregate.KindBool:
		v.Kind = &featuredv1.Value_BoolVal{BoolVal: a.I != 0}
	case aggregate.KindList:
		l := &featuredv1.ValueList{Val: make([]*featuredv1.Value, len(a.L))}
		for i := range a.L {
			l.Val[i] = &featuredv1.Value{}
			setProtoValue(l.Val[i], &a.L[i])
		}
		v.Kind = &featuredv1.Value_ListVal{ListVal: l}
	}
}

// valueFromProto is the inverse of setProtoValue.
func valueFromProto(v *featuredv1.Value) aggregate.Value {
	switch x := v.GetKind().(type) {
	case *featuredv1.Value_Int64Val:
		return aggregate.Value{Kind: aggregate.KindInt64, I: x.Int64Val}
	case *featuredv1.Value_DoubleVal:
		return aggregate.Value{Kind: aggregate.KindFloat64, F: x.DoubleVal}
	case *featuredv1.Value_StringVal:
		return aggregate.Value{Kind: aggregate.KindString, S: x.StringVal}
	case *featuredv1.Value_BoolVal:
		b := int64(0)
		if x.BoolVal {
			b = 1
		}
		return aggregate.Value{Kind: aggregate.KindBool, I: b}
	case *featuredv1.Value_ListVal:
		l := make([]aggregate.Value, len(x.ListVal.GetVal()))
		for i, e := range x.ListVal.GetVal() {
			l[i] = valueFromProto(e)
		}
		return aggregate.Value{Kind: aggregate.KindList, L: l}
	}
	return aggregate.Value{}
}

type ingestService struct {
	featuredv1.UnimplementedIngestServiceServer
	s *Server
}

var _ featuredv1.IngestServiceServer = ingestService{}

// Push is POST /v1/push over gRPC. An atomic push with rejected events fails
// with INVALID_ARGUMENT and carries the PushResponse (the rejected rows) in
// the status details.
func (g ingestService) Push(ctx context.Context, in *featuredv1.PushRequest) (_ *featuredv1.PushResponse, err error) {
	s := g.s
	defer s.recoverGRPC("Push", &err)
	if err := s.checkReady(); err != nil {
		return nil, toGRPC(err)
	}
	if in.GetSource() == "" {
		return nil, toGRPC(&RequestError{Problems: []Problem{{Field: "source", Reason: "missing: name the push source"}}})
	}
	events := make([]map[string]aggregate.Value, len(in.GetEvents()))
	for i, ev := range in.GetEvents() {
		m := make(map[string]aggregate.Value, len(ev.GetFields()))
		for k, v := range ev.GetFields() {
			m[k] = valueFromProto(v)
		}
		events[i] = m
	}
	res, perr := s.pusher.PushValues(ctx, in.GetSource(), events, in.GetAtomic())
	out := &featuredv1.PushResponse{Accepted: int64(res.Accepted)}
	for _, r := range res.Rejected {
		out.Rejected = append(out.Rejected, &featuredv1.RowError{Index: int32(r.Index), Field: r.Field, Reason: r.Reason, Code: r.Code})
	}
	if perr != nil {
		if errors.Is(perr, ingest.ErrAtomicRejected) {
			st := status.New(codes.InvalidArgument, perr.Error())
			if withDetails, derr := st.WithDetails(out); derr == nil {
				st = withDetails
			}
			return nil, st.Err()
		}
		return nil, toGRPC(perr)
	}
	return out, nil
}

// recoverGRPC turns a panic in a gRPC method into a logged Internal error
// (grpc-go does not recover panics; the caller's interceptors may not
// either). Deferred by every method.
func (s *Server) recoverGRPC(method string, err *error) {
	if v := recover(); v != nil {
		s.opts.Logger.Error("serving: panic in gRPC method", "method", method, "panic", v, "stack", string(debug.Stack()))
		*err = status.Errorf(codes.Internal, "serving: internal error: %v", v)
	}
}
