// Package replicas keeps one node's replicas in step with the cluster's
// owner map (docs/scaling.md, "Replicas" and "Routing"): it is what a
// featured process in cluster mode runs between package cluster, which
// decides who holds which partition, package ingest, which consumes them,
// and package serving, which routes lookups.
//
// A [Keeper] follows the [cluster.Membership]'s maps. On every map it
//
//  1. sets the ingest partition set to this node's partitions, every role
//     (active, standby, warm-up): each replica consumes its partitions from
//     its own store's offsets, so a role change changes duties, not the
//     consumer;
//  2. saves the map under the data dir, so that a node coming back after the
//     session timeout reports its old roles (cluster.Config.Previous);
//  3. with a [Handover], first restores each partition it adopts and holds
//     no state of from the partition's newest checkpoint, so that it is
//     consumed from the checkpoint's offsets rather than the topic's start;
//  4. rebuilds the routing table serving reads ([Keeper.Route]): a
//     partition is answered here when this node holds it and has applied
//     every source of it up to where the partition ended at most
//     MaxStaleness ago; otherwise by the other replicas, active first, then
//     standbys. A lookup with its own, lower bound routes by
//     [Keeper.RouteWithin]: the same test against that bound.
//
// Every Tick it reads the consumers' positions (ingest.PartitionStatus):
// the partitions within AcceptableRecoveryLag records of their end offsets
// on every source are caught up ([Keeper.CaughtUp], the membership's join
// metadata); when a warm-up of this node catches up it asks the group to
// rebalance, which makes the warm-up a replica. Staleness is measured on the
// consumer's side: the partition's end offset is sampled every Tick, and a
// replica whose next offset reached the end seen at time T is at most
// now-T stale. A consumer whose fetches stopped sees no new end offset, so
// this bound holds only while fetches flow (they do, every
// KafkaOptions.MaxWait at most, while the broker is reachable).
//
// # Concurrency
//
// A Keeper's methods may be called from any goroutine. Route and Partitions
// are called on every routed lookup: they read an immutable table through an
// atomic pointer and never block. CaughtUp is called from the Kafka group
// client's goroutine and returns a copy of the last Tick's result. Run
// owns the Keeper's one goroutine (and, with a Handover, a second that
// checkpoints the partitions this node is the active of every
// CheckpointInterval); cancel its context to stop them.
package replicas
