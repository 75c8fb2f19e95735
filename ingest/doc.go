// Package ingest owns the paths by which events enter featured: the push
// API and (in its own files) Kafka consumers. Both decode an event against
// its source's schema, check its event time, and hand it to the store with
// one featurestore.Target per live version of every view on the source, so
// the same aggregate.Layout folds it whichever way it came.
//
// Event-time admission is per target view: an event is folded into a view
// when its time is within that view's TTL of the ingest clock and at most
// Options.MaxFutureSkew ahead of it. An event further in the future is
// rejected (too_far_in_future); one older than every view's TTL is history:
// handed to the store with no target, so the offline log keeps it (folded
// into no view) and no online state changes, and counted as history, not
// rejected. Rejections are counted per source and reason (Stats).
//
// The store may refuse an event after validation, when the entity's state in
// a target view is corrupt on disk (featurestore.ErrQuarantined): a push
// answers it rejected corrupt_state; a Kafka event is recorded by the store
// with its offset and published to the dead-letter topic (deadletter.go).
//
// In cluster mode (Options.Cluster) a push is not written to the local
// store: it is validated and admitted as above, then produced to its
// source's push topic (push_cluster.go), and every replica applies it as a
// Kafka consumer of that topic (Kafka). A push then answers once the broker
// acknowledged every record, with their positions; its events are visible
// once the replicas have read past them. The one function that places an
// event's record is EventKey.
//
// A Pusher is safe for concurrent use. Push calls return once their events
// are durable (synced to every shard they touch, or, in cluster mode,
// acknowledged by the broker's in-sync replicas).
package ingest
