package serving

import (
	"context"
	"errors"
	"runtime/debug"
	"strconv"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

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
	// A real message (codec.go writes it without reflection). It outlives
	// the handler, so it is not pooled. bound is cheap and never below the
	// encoded size; only a response near the limit is sized exactly.
	resp, bound := newResponse(p, &l.req, l.out)
	if bound > s.opts.MaxResponseBytes && proto.Size(resp) > s.opts.MaxResponseBytes {
		return nil, toGRPC(s.responseTooLarge())
	}
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

// valueFromProto is the aggregate value of a pushed field.
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
