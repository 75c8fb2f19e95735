// Package registry owns featured's feature definitions: entities, sources,
// feature views and feature services. It parses definitions documents
// (ParseYAML, ParseJSON), validates them with errors that name their path
// in the document, diffs them against the registry (Plan), and applies
// them (Apply), all or nothing. Everything else in featured (ingest, the
// store, serving, offline export) reads the registry through a Snapshot.
//
// # Versions
//
// A view version is immutable. Apply compares each view of the document with
// the view's latest live version; a change to its features (names, order,
// aggregations, fields, windows, hops, k), entities (which and their order),
// source, its TTL, or to the
// way its source maps what it reads (entity_key, event_time, the kinds of
// the fields it reads) makes version n+1. Older versions stay live,
// servable with "view@vN:feature", until Delete removes them. A source
// change that alters a view's mapping gives that view a new version in the
// same apply, whether or not the document names the view; the plan says so.
// Entities, sources and services are not versioned: a change is an update.
// An entity's join key or type cannot change while a live view uses it.
//
// A view name gets an ID (View.ID) on its first apply and keeps it for good:
// the ID is never given to another name, and version numbers are never
// reused, even after Delete, so (ID, version) always names one definition and
// state stored under it can never be read by another.
//
// Hops are resolved when a version is created (aggregate.DefaultHopMillis
// when the document omits hop) and stored, so a later change of a default
// does not alter a version.
//
// # Sources and ingest
//
// Source.Fields lists the value fields, sorted by name; aggregate.Spec.Field
// of every feature indexes View.Source.Fields. Ingest decodes an event once
// per source: every view LiveViews returns has Source equal to the current
// source (field indexes move when a field is added, so Apply rebinds those
// versions to the new source in a new Snapshot). When a source change takes
// away what an older version reads (its event_time or entity_key field, a
// field it reads, or that field's kind), that version is Detached: it keeps
// the source it was created with, stays servable until its state expires
// by TTL or it is deleted, and is no longer ingested (LiveViews leaves it
// out). All live versions of all views on one source use one entity key
// type, part by part for compound keys, because the decoder decodes the key
// once per event (Snapshot.SourceKeyKinds). No two kafka sources read one
// topic, since offsets are committed per topic.
//
// # Compound keys
//
// A view may be keyed by several entities (View.Entities, ViewDef.Entities):
// its key is the tuple of their join-key values in the view's order
// (internal/keyenc.AppendKey). Its source's entity_key (Source.EntityKey)
// lists one event field per entity in that order; field i holds entity i's
// key, of entity i's type. The entities of one view have distinct join keys.
// In documents and registry.json one entity is written entity: x and one key
// field as a string, exactly as before compound keys.
//
// # Rules decided here
//
// Names of entities, sources, views, features and services match
// [a-z_][a-z0-9_]* without "__" (Feast's full feature names join view and
// feature with "__"); a source may not be named "wal" (the offline log's
// own directory sits beside the sources'). Field names and join keys are event keys and may also
// use upper case. Durations are <integer><unit> groups, units d, h, m, s, ms
// in that order ("7d", "1h30m"). A view needs a ttl; windows are at most the
// ttl, a multiple of their hop, and span at most 10080 tiles; last_k needs
// 1 <= k <= 1000 and count_distinct's exact bound 0 <= k <= 10000. A feature service names at least one reference, no
// duplicates, each resolving after the apply; an apply whose new version
// drops a feature that an unpinned service reference uses is refused.
//
// # Concurrency
//
// A Snapshot is immutable once published and safe for concurrent use; the
// Views, Sources and Entities it returns are shared and must not be
// modified. Registry.Snapshot is a lock-free atomic load, meant for every
// lookup. Plan reads the current Snapshot and may run concurrently with
// anything. Apply, Delete and Close hold Registry.mu: each builds the next
// Snapshot from the current one, writes the registry file (atomically:
// temp file, fsync, rename, fsync dir), then publishes the Snapshot and
// closes the channel Changed returned. A lock file beside the registry file
// keeps a second Registry (in any process) from opening it.
package registry
