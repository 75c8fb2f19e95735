package export

import "context"

// Tracer starts spans around an export's phases; featured serve backs it
// with OpenTelemetry (internal/telemetry), which this package does not
// import. Start returns a context carrying the new span, for its children,
// and a func that ends the span, recording err when not nil; end is called
// exactly once. Start may be called from several of an export's goroutines
// at once (the spine and the log are read concurrently) and from
// concurrent exports, and must not block.
//
// The spans (names are constants below), children of the caller's span
// (the export request's):
//
//	export                 one export
//	  export.spine_read    reading the spine (both passes of a spilling
//	                       export: the second as part of export.write)
//	  export.log_scan      reading the log: every group's in memory, or one
//	                       group's into spill buckets (one span per group)
//	  export.join          folding the log rows for the spine rows (per
//	                       group when spilling)
//	  export.write         assembling the output in spine order into the sink
//
// export.spine_read and the first export.log_scan overlap in time: they run
// on two goroutines.
type Tracer interface {
	Start(ctx context.Context, name string) (context.Context, func(err error))
}

// Span names.
const (
	SpanExport    = "export"
	SpanSpineRead = "export.spine_read"
	SpanLogScan   = "export.log_scan"
	SpanJoin      = "export.join"
	SpanWrite     = "export.write"
)

// startSpan is t.Start, or nothing when t is nil.
func startSpan(ctx context.Context, t Tracer, name string) (context.Context, func(error)) {
	if t == nil {
		return ctx, endNothing
	}
	return t.Start(ctx, name)
}

func endNothing(error) {}
