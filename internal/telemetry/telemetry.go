package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/exemplar"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// ScopeName is the instrumentation scope of featured's own instruments.
const ScopeName = "github.com/featured-dev/featured"

// Options configures a Telemetry. The zero value exports Prometheus text
// only and traces nothing.
type Options struct {
	// ServiceName is the service.name resource attribute. The default value
	// is "featured".
	ServiceName string
	// OTLPEndpoint, when set (host:port), also pushes metrics every
	// OTLPInterval and, with a TraceSampleRatio above 0, spans, to an OTLP
	// gRPC collector, without TLS. Empty: no OTLP.
	OTLPEndpoint string
	// OTLPInterval is how often metrics are pushed over OTLP. The default
	// value is 30s.
	OTLPInterval time.Duration
	// TraceSampleRatio is the fraction of traces started here that are
	// recorded (parent-based: a sampled caller's trace is always
	// recorded). Traces need OTLPEndpoint or SpanExporter; without either
	// nothing is traced. The default value 0 records none.
	TraceSampleRatio float64
	// SpanExporter, when set, receives spans instead of OTLP (tests pass
	// tracetest.NewInMemoryExporter), synchronously as each span ends.
	SpanExporter sdktrace.SpanExporter
}

// Validate reports the first bad field.
func (o *Options) Validate() error {
	if o.TraceSampleRatio < 0 || o.TraceSampleRatio > 1 {
		return fmt.Errorf("telemetry: options: trace sample ratio %g is not within [0, 1]", o.TraceSampleRatio)
	}
	if o.OTLPInterval < 0 {
		return fmt.Errorf("telemetry: options: otlp interval %s is negative", o.OTLPInterval)
	}
	return nil
}

// Telemetry holds the providers and featured's instruments.
type Telemetry struct {
	opts     Options
	registry *prometheus.Registry
	meters   *sdkmetric.MeterProvider
	tracers  *sdktrace.TracerProvider // nil when tracing is off
	tracer   trace.Tracer
	prop     propagation.TextMapPropagator
	meter    metric.Meter

	http   httpInstruments
	lookup lookupInstruments
	store  storeInstruments
	ingest ingestInstruments
	export exportInstruments
}

// New builds the providers and registers featured's instruments. ctx bounds
// the OTLP exporters' setup only.
func New(ctx context.Context, opts Options) (*Telemetry, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.ServiceName == "" {
		opts.ServiceName = "featured"
	}
	if opts.OTLPInterval == 0 {
		opts.OTLPInterval = 30 * time.Second
	}
	res := resource.NewSchemaless(semconv.ServiceName(opts.ServiceName))
	t := &Telemetry{opts: opts, registry: prometheus.NewRegistry(), prop: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})}
	t.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	promExp, err := otelprom.New(otelprom.WithRegisterer(t.registry))
	if err != nil {
		return nil, fmt.Errorf("telemetry: prometheus exporter: %w", err)
	}
	// No exemplars: offering every measurement to a reservoir cost about
	// 1.5% of a 1 x 50 lookup's CPU (docs/benchmarks.md), and traces,
	// when on, are found by the span's route and time.
	mopts := []sdkmetric.Option{sdkmetric.WithResource(res), sdkmetric.WithReader(promExp),
		sdkmetric.WithExemplarFilter(exemplar.AlwaysOffFilter)}
	if opts.OTLPEndpoint != "" {
		exp, err := otlpmetricgrpc.New(ctx, otlpmetricgrpc.WithEndpoint(opts.OTLPEndpoint), otlpmetricgrpc.WithInsecure())
		if err != nil {
			return nil, fmt.Errorf("telemetry: otlp metric exporter: %w", err)
		}
		mopts = append(mopts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp, sdkmetric.WithInterval(opts.OTLPInterval))))
	}
	t.meters = sdkmetric.NewMeterProvider(mopts...)
	t.meter = t.meters.Meter(ScopeName)

	t.tracer = noop.NewTracerProvider().Tracer(ScopeName)
	if opts.TraceSampleRatio > 0 && (opts.OTLPEndpoint != "" || opts.SpanExporter != nil) {
		topts := []sdktrace.TracerProviderOption{
			sdktrace.WithResource(res),
			sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(opts.TraceSampleRatio))),
		}
		if opts.SpanExporter != nil {
			topts = append(topts, sdktrace.WithSyncer(opts.SpanExporter))
		} else {
			exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(opts.OTLPEndpoint), otlptracegrpc.WithInsecure())
			if err != nil {
				return nil, fmt.Errorf("telemetry: otlp trace exporter: %w", err)
			}
			topts = append(topts, sdktrace.WithBatcher(exp))
		}
		t.tracers = sdktrace.NewTracerProvider(topts...)
		t.tracer = t.tracers.Tracer(ScopeName)
	}
	if err := t.initInstruments(); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *Telemetry) initInstruments() error {
	return errors.Join(t.http.init(t.meter), t.lookup.init(t.meter), t.store.init(t.meter),
		t.ingest.init(t.meter), t.export.init(t.meter))
}

// Tracing reports whether spans are recorded (a sample ratio above 0 and an
// exporter).
func (t *Telemetry) Tracing() bool { return t.tracers != nil }

// MeterProvider is the provider of every instrument, featured's and the
// libraries'.
func (t *Telemetry) MeterProvider() metric.MeterProvider { return t.meters }

// TracerProvider is the provider of every span; a no-op one when tracing
// is off.
func (t *Telemetry) TracerProvider() trace.TracerProvider {
	if t.tracers == nil {
		return noop.NewTracerProvider()
	}
	return t.tracers
}

// Tracer is featured's own tracer (ingest batches, export phases).
func (t *Telemetry) Tracer() trace.Tracer { return t.tracer }

// Propagator extracts and injects W3C trace context and baggage.
func (t *Telemetry) Propagator() propagation.TextMapPropagator { return t.prop }

// Handler serves the metrics in the Prometheus text format (GET /metrics).
// Each request collects once: observable instruments read their sources'
// Stats then.
func (t *Telemetry) Handler() http.Handler {
	return promhttp.HandlerFor(t.registry, promhttp.HandlerOpts{})
}

// Shutdown flushes and stops the exporters. Call it once, after the servers
// and ingest have stopped.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	var errs []error
	if t.tracers != nil {
		errs = append(errs, t.tracers.Shutdown(ctx))
	}
	errs = append(errs, t.meters.Shutdown(ctx))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("telemetry: shutdown: %w", err)
	}
	return nil
}
