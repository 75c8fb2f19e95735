// Package feastimport turns a Feast registry (the serialized feast.core
// Registry protobuf that `feast apply` writes, e.g. data/registry.db) into a
// featured definitions document, for `featured import feast`.
//
// Convert is a pure function of the registry's bytes: it does no I/O and may
// be called concurrently. What it maps, per Feast object of the chosen
// project:
//
//   - Entity: an entity with the same name and join key; value type INT64 or
//     INT32 is int64, STRING is string (an entity Feast left untyped takes
//     the type of its join key column in the views).
//   - PushSource: a push source (format json) named as in Feast, so Feast's
//     push_source_name finds it. KafkaSource with a JSON message format: a
//     kafka source on the same topic. Both take event_time from the
//     source's timestamp field, entity_key from the join keys of the views
//     on them, and their fields from those views' features.
//   - FeatureView over a push or Kafka source: a view whose features are
//     lifetime last values of the same-named fields, with the view's TTL.
//   - StreamFeatureView: its aggregations (function, column, time_window,
//     slide_interval) become features (aggregation, field, window, hop),
//     named as Feast names them (name, or function_column_<seconds>s). One
//     without aggregations maps as a plain view.
//   - FeatureService: a service with the same references; a reference to an
//     aggregated column of a stream feature view stands for every
//     aggregation of that column.
//
// Everything else is returned as Unmapped with the reason, and written as
// comments at the top of the document, never dropped silently: on-demand
// feature views, UDFs, batch-only sources and the views over them, value
// types featured has no kind for, names featured's rules refuse, and
// aggregations or windows featured cannot compute.
//
// Decided here: a Feast TTL of 0 (never expires) becomes 36500d, featured's
// longest TTL, since featured needs one; a TTL shorter than the view's
// longest window is raised to that window (featured refuses a window longer
// than the TTL), and the document says so in a comment.
package feastimport
