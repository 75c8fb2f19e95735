package telemetry

import (
	"context"

	"go.opentelemetry.io/otel/trace"

	"github.com/featured-dev/featured/ingest"
	"github.com/featured-dev/featured/offline/export"
)

// spanTracer is ingest.Tracer and export.Tracer over featured's OTel
// tracer.
type spanTracer struct{ tracer trace.Tracer }

var (
	_ ingest.Tracer = spanTracer{}
	_ export.Tracer = spanTracer{}
)

func (s spanTracer) Start(ctx context.Context, name string) (context.Context, func(error)) {
	ctx, span := s.tracer.Start(ctx, name)
	if !span.IsRecording() {
		// Unsampled: its context still carries the decision to the
		// children, but ending it records nothing, so skip the closure.
		return ctx, endNothing
	}
	return ctx, func(err error) {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codesError, err.Error())
		}
		span.End()
	}
}

func endNothing(error) {}

// IngestTracer is ingest.Options.Tracer: spans for pushes and Kafka
// batches. Nil when tracing is off, so ingest skips the calls altogether.
func (t *Telemetry) IngestTracer() ingest.Tracer {
	if t.tracers == nil {
		return nil
	}
	return spanTracer{t.tracer}
}

// ExportTracer is offline.HandlerOptions.Tracer: spans for an export's
// phases. Nil when tracing is off.
func (t *Telemetry) ExportTracer() export.Tracer {
	if t.tracers == nil {
		return nil
	}
	return spanTracer{t.tracer}
}
