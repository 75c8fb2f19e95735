package serving

import (
	"context"
	"errors"
	"runtime/debug"
	"strconv"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
	"google.golang.org/protobuf/proto"

	"github.com/featured-dev/featured/aggregate"
	feastserving "github.com/featured-dev/featured/api/feast/serving"
	peerv1 "github.com/featured-dev/featured/api/featured/peer/v1"
	featuredv1 "github.com/featured-dev/featured/api/featured/v1"
	"github.com/featured-dev/featured/ingest"
)

const (
	healthServing    = healthgrpc.HealthCheckResponse_SERVING
	healthNotServing = healthgrpc.HealthCheckResponse_NOT_SERVING
)

// healthServices are the names the gRPC health service reports on: the
// server as a whole (""), each featured.v1 service and Feast's.
var healthServices = []string{
	"",
	featuredv1.ServingService_ServiceDesc.ServiceName,
	featuredv1.IngestService_ServiceDesc.ServiceName,
	featuredv1.RegistryService_ServiceDesc.ServiceName,
	feastserving.ServingService_ServiceDesc.ServiceName,
}

// Interceptors are the gRPC chain's hook slots, the same as Middleware's
// over HTTP. GRPCServerOptions chains them in a fixed order:
//
//	recovery -> Metrics -> Auth -> the method's scope -> class limit -> method
//
// A nil field of a slot is empty; Unary wraps every unary method, Stream
// every streaming one (health Watch, reflection).
type Interceptors struct {
	Metrics, Auth Interceptor
}

// Interceptor is one slot of the gRPC chain, for both kinds of method.
type Interceptor struct {
	Unary  grpc.UnaryServerInterceptor
	Stream grpc.StreamServerInterceptor
}

// GRPCServerOptions returns the options of the gRPC server that RegisterGRPC
// registers on: the one interceptor chain (Interceptors), and the bounds of
// what a request holds before any interceptor can refuse it. grpc-go reads a
// message whole before the chain runs, so its size is bounded by
// Options.MaxBodyBytes, as over HTTP, and the streams of a connection by the
// slots of the limited classes.
func (s *Server) GRPCServerOptions() []grpc.ServerOption {
	unary := []grpc.UnaryServerInterceptor{s.recoverUnary}
	stream := []grpc.StreamServerInterceptor{s.recoverStream}
	for _, slot := range []Interceptor{s.opts.Interceptors.Metrics, s.opts.Interceptors.Auth} {
		if slot.Unary != nil {
			unary = append(unary, slot.Unary)
		}
		if slot.Stream != nil {
			stream = append(stream, slot.Stream)
		}
	}
	unary = append(unary, s.unaryScope, s.unaryLimit())
	return []grpc.ServerOption{
		grpc.InTapHandle(s.callDeadline),
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
		grpc.MaxRecvMsgSize(int(s.opts.MaxBodyBytes)),
		grpc.MaxConcurrentStreams(uint32(s.opts.MaxLookups + s.opts.MaxPushes + s.opts.MaxRegistryChanges + s.opts.MaxPeerReads)),
	}
}

// RegisterGRPC registers featured.v1's ServingService, IngestService and
// RegistryService, Feast's feast.serving.ServingService (feast_grpc.go) and
// the nodes' own featured.internal.v1.PeerService (peer.go), on g, with the gRPC health service (following SetReady) and
// server reflection. g must be built with GRPCServerOptions (its recovery
// and limits are the methods'). The caller owns g: its listener and
// shutdown.
func (s *Server) RegisterGRPC(g *grpc.Server) {
	featuredv1.RegisterServingServiceServer(g, servingService{s: s})
	featuredv1.RegisterIngestServiceServer(g, ingestService{s: s})
	featuredv1.RegisterRegistryServiceServer(g, registryService{s: s})
	feastserving.RegisterServingServiceServer(g, feastService{s: s})
	peerv1.RegisterPeerServiceServer(g, peerService{s: s})
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
	l := s.getLookup()
	defer s.putLookup(l)
	if err := requestFromProto(&l.req, in, s.opts.MaxFeatures, s.opts.MaxEntities); err != nil {
		return nil, toGRPC(err)
	}
	if err := stalenessFromMetadata(ctx, &l.req); err != nil {
		return nil, toGRPC(err)
	}
	p, _, lerr := s.lookupDecoded(ctx, l, false)
	if lerr != nil {
		return nil, toGRPC(lerr)
	}
	s.observe(ctx, APIGRPC, l, p)
	// A real message (codec.go writes it without reflection). It outlives
	// the handler, so it is not pooled. bound is cheap and never below the
	// encoded size; only a response near the limit is sized exactly.
	resp, bound := newResponse(p, &l.req, l.out)
	if s.opts.Placement != nil {
		resp.Positions = positionsProto(l.route.positions)
		bound += proto.Size(&featuredv1.GetOnlineFeaturesResponse{Positions: resp.Positions})
	}
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
	if ms := in.GetMaxStalenessMs(); ms != 0 {
		d, err := stalenessFromMillis("max_staleness_ms", ms)
		if err != nil {
			return err
		}
		req.maxStaleness = d
	}
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
		for i, v := range vals {
			switch x := v.GetKind().(type) {
			case *featuredv1.Value_Int64Val:
				req.all = append(req.all, entityValue{isInt: true, i: x.Int64Val})
			case *featuredv1.Value_StringVal:
				req.all = append(req.all, entityValue{s: str(x.StringVal)})
			default:
				rerr.add("entities."+key+"["+strconv.Itoa(i)+"]", "", "an entity key is a string_val or an int64_val", nil)
			}
		}
		req.addCol()
	}
	req.bindFirst()
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
// the status details; a push that fails once it has a batch ID (UNAVAILABLE
// for an atomic push journaled, INTERNAL otherwise) carries the
// PushResponse with the batch ID.
func (g ingestService) Push(ctx context.Context, in *featuredv1.PushRequest) (_ *featuredv1.PushResponse, err error) {
	s := g.s
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
	res, perr := s.pusher.PushValues(ctx, in.GetSource(), events, ingest.PushOptions{Atomic: in.GetAtomic(), BatchID: in.GetBatchId()})
	out := &featuredv1.PushResponse{Accepted: int64(res.Accepted), BatchId: res.BatchID, Duplicate: res.Duplicate}
	for _, r := range res.Rejected {
		out.Rejected = append(out.Rejected, &featuredv1.RowError{Index: int32(r.Index), Field: r.Field, Reason: r.Reason, Code: r.Code})
	}
	if perr != nil {
		// As over HTTP, a failure once the push has a batch ID carries it.
		if errors.Is(perr, ingest.ErrAtomicRejected) || res.BatchID != "" {
			st := status.New(grpcCode(perr), clipMessage(perr.Error()))
			if withDetails, derr := st.WithDetails(out); derr == nil {
				st = withDetails
			}
			return nil, st.Err()
		}
		return nil, toGRPC(perr)
	}
	return out, nil
}

// recoverUnary, first in the chain, turns a panic in a unary method or in
// an interceptor after it into a logged Internal error: grpc-go does not
// recover panics, and one would take the process down. Any error that is
// not yet a gRPC status gets its code from errors.go's table.
func (s *Server) recoverUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (_ any, err error) {
	if cancel, ok := ctx.Value(callDeadlineKey{}).(context.CancelFunc); ok {
		defer cancel()
	}
	defer s.recoverGRPC(info.FullMethod, &err)
	resp, err := handler(ctx, req)
	return resp, toGRPC(err)
}

// callDeadlineKey holds the cancel func of the deadline callDeadline sets,
// for recoverUnary to release its timer as soon as the call ends.
type callDeadlineKey struct{}

// callDeadline is the gRPC counterpart of the HTTP body and write deadlines:
// every call but health and reflection (featured's are all unary) must have arrived and been answered
// within BodyTimeout + WriteTimeout, or the client's own deadline when that
// is sooner. grpc-go reads a unary message whole before any interceptor
// runs and waits on the stream's context while it does, so this deadline,
// set as the stream is created, is what cuts off a client that sends its
// message a byte at a time and would otherwise hold a stream and its
// buffer for ever. Streaming methods (health Watch, reflection) are left
// alone: they are long-lived by design and carry no large messages.
// A call whose message never completes never reaches recoverUnary; its
// timer then lasts until the deadline, which bounds it.
func (s *Server) callDeadline(ctx context.Context, info *tap.Info) (context.Context, error) {
	if strings.HasPrefix(info.FullMethodName, "/grpc.health.") || strings.HasPrefix(info.FullMethodName, "/grpc.reflection.") {
		return ctx, nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.BodyTimeout+s.opts.WriteTimeout)
	return context.WithValue(ctx, callDeadlineKey{}, cancel), nil
}

// recoverStream is recoverUnary for streaming methods.
func (s *Server) recoverStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	defer s.recoverGRPC(info.FullMethod, &err)
	return toGRPC(handler(srv, ss))
}

func (s *Server) recoverGRPC(method string, err *error) {
	if v := recover(); v != nil {
		s.opts.Logger.Error("serving: panic in gRPC method", "method", method, "panic", v, "stack", string(debug.Stack()))
		*err = status.Errorf(codes.Internal, "serving: internal error: %v", v)
	}
}
