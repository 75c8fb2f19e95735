package telemetry

import (
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	otelcodes "go.opentelemetry.io/otel/codes"
	"google.golang.org/grpc"
)

const codesError = otelcodes.Error

// GRPCServerOption is the otelgrpc stats handler for featured's gRPC server:
// rpc.server.* metrics per method and status code, and, when tracing is on,
// a server span per call named by its full method and continuing the
// caller's W3C trace context. Pass it to grpc.NewServer beside
// serving.Server.GRPCServerOptions (a stats handler is a server option,
// not an interceptor, so it sees calls the chain refuses too).
func (t *Telemetry) GRPCServerOption() grpc.ServerOption {
	return grpc.StatsHandler(otelgrpc.NewServerHandler(
		otelgrpc.WithMeterProvider(t.meters),
		otelgrpc.WithTracerProvider(t.TracerProvider()),
		otelgrpc.WithPropagators(t.prop),
	))
}
