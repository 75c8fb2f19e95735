// Package telemetry owns featured's OpenTelemetry wiring: the meter and
// tracer providers and their exporters (Prometheus text on /metrics, OTLP
// over gRPC when an endpoint is set), the HTTP middleware and gRPC stats
// handler that fill serving's Metrics slots, and the instruments of
// featured's own metrics.
//
// The packages that do the work never import OpenTelemetry: they count in
// their own Stats (featurestore.Store.Stats and PebbleMetrics,
// ingest.Pusher.Stats, ingest.Kafka.Stats and Status) and offer plain hooks
// (serving.LookupObserver, featurestore.Options.Committed,
// ingest.Options.PushBatch). Telemetry reads the Stats from observable
// instruments, once per collection, and records the hooks into histograms
// and counters whose attribute sets are built once per distinct value, so a
// request pays for no allocation to be measured.
//
// Traces: the HTTP middleware and gRPC stats handler start server spans;
// IngestTracer and ExportTracer back ingest.Tracer and export.Tracer (a
// span per push, Kafka batch and export, with children per phase) with
// featured's tracer, and are nil when tracing is off, so the packages skip
// their spans entirely.
//
// Every label is low-cardinality: API, route, method, status, view,
// feature service, source, topic, partition, shard and reason; never an
// entity key or a request value.
//
// A Telemetry is safe for concurrent use once New returns; Shutdown flushes
// the exporters and is called once, by the owner, after the servers stop.
package telemetry
