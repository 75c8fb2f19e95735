// Package cluster owns cluster membership and the owner map: which member
// holds which partition, as active, standby or warm-up (docs/scaling.md,
// "Who owns what" and "Replicas"). It decides placement and tells every
// member; it moves no data, consumes no partition and serves nothing.
// Consuming, warming up and routing belong to the packages that use the map.
//
// # How
//
// Every member joins one Kafka consumer group (classic protocol, static
// membership with the pod name as group.instance.id) through franz-go. The
// group is used only for membership: its members subscribe to one
// membership topic, <group>.members (one partition, created if absent, never
// written or read), and the assignment gives no member any partition to
// consume. Each member's join metadata ([MemberMeta]) carries its advertised
// address, zone, P, the partitions it holds caught up (Config.CaughtUp) and
// its roles in the last map it saw. The group leader's client runs the
// featured-v1 balancer ([Balance], a pure function of those metadata) and
// writes the resulting [OwnerMap] into every member's assignment. Every
// replica, whatever its role, consumes its partitions directly from the
// offsets in its own store.
//
// A member being emptied before it goes away calls Drain: its metadata says
// so, the balancer places nothing new on it and moves its replicas away as
// their new holders catch up; once it holds nothing it calls Leave.
//
// The broker is the one authority on who is in the group: it detects a
// member that stops heartbeating after Config.SessionTimeout, rebalances
// when a member joins, leaves or changes its metadata, and keeps a static
// member's place across a restart within the session timeout.
//
// # Concurrency
//
// A [Membership] may be used from any goroutine. The owner map it returns
// is immutable; Current returns it with a channel closed when another map
// replaces it. Config.CaughtUp is called at every join and every probing
// interval, from the Membership's goroutines; it must not block or call back
// into the Membership. Membership runs two goroutines of its own (the probe and a loop that
// drains the Kafka client's error notices) besides the Kafka client's; Close
// or Leave stops and waits for all of them.
//
// # Encodings
//
// Both encodings start with a version byte; decoders refuse other versions
// ([ErrUnknownVersion]) and malformed input ([ErrCorrupt]). All integers are
// unsigned varints, strings are a length then bytes.
//
//	OwnerMap v1:   1, generation, P, nMembers, {instanceID, advertise, zone}*,
//	               then per partition: active+1 (0: none), nStandbys, standby*,
//	               nWarmups, warmup*  (member indexes into the member list)
//	MemberMeta v1: 1, instanceID, advertise, zone, flags byte (bit 0:
//	               draining; other bits refused), P, lastGeneration,
//	               nCaughtUp, caught-up partition deltas*,
//	               nRoles, {partition delta, role byte}*
//
// A partition delta is the partition minus the previous one minus one (the
// first is the partition itself), so runs cost a byte each. A map of P=256
// with R=1 is about a kilobyte.
package cluster
