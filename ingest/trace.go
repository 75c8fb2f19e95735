package ingest

import "context"

// Tracer starts spans around the phases of ingestion; featured serve backs
// it with OpenTelemetry (internal/telemetry), which ingest does not import.
// Start returns a context carrying the new span, for its children, and a
// func that ends the span, recording err when not nil; end is called
// exactly once, on the goroutine that called Start. Start and end are
// called concurrently from every pushing goroutine and Kafka partition
// consumer, and must not block.
//
// The spans (names are constants below):
//
//	ingest.push            one push, a child of the request's span
//	  ingest.decode        decoding and admitting its events
//	  ingest.write         store.WriteBatch: fold and commit, synchronous
//	ingest.kafka.batch     one fetched Kafka batch, a root span
//	  ingest.decode        decoding and admitting its messages
//	  ingest.dead_letter   publishing the rejected ones (when any)
//	  ingest.enqueue       handing the rest to the shard writers
//
// A Kafka batch's fold and commit happen later, on the shard writers,
// which fold the writes of many batches (and partitions) into one Pebble
// commit every featurestore.Options.CommitInterval; a commit has no single
// parent batch, so it is not a span of the batch: its cost is the store's
// commit metrics (featurestore.Options.Committed) and the batch's visible
// latency the Applied hook's.
type Tracer interface {
	Start(ctx context.Context, name string) (context.Context, func(err error))
}

// Span names.
const (
	SpanPush       = "ingest.push"
	SpanKafkaBatch = "ingest.kafka.batch"
	SpanDecode     = "ingest.decode"
	SpanDeadLetter = "ingest.dead_letter"
	SpanWrite      = "ingest.write"
	SpanEnqueue    = "ingest.enqueue"
)

// startSpan is t.Start, or nothing when t is nil: tracing off costs a nil
// check.
func startSpan(ctx context.Context, t Tracer, name string) (context.Context, func(error)) {
	if t == nil {
		return ctx, endNothing
	}
	return t.Start(ctx, name)
}

func endNothing(error) {}
