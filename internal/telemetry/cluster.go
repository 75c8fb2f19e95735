package telemetry

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/featured-dev/featured/cluster"
	"github.com/featured-dev/featured/serving"
)

// ClusterNode is what the cluster metrics read of a node in cluster mode
// (*replicas.Keeper), once per collection.
type ClusterNode interface {
	// Roles is this node's role per partition.
	Roles() []cluster.Role
	// Lags is each partition's lag in records, -1 where unknown or not
	// held.
	Lags() []int64
	// MembershipStats is the group member's counters.
	MembershipStats() cluster.Stats
}

// HandoverCounts are a node's partition hand-overs since it started
// (replicas.HandoverStats): Replays includes the restores that failed
// (RestoreErrors).
type HandoverCounts struct {
	Restores, Replays, RestoreErrors uint64
	RestoreBytes                     int64
	RestoreSeconds                   float64
	Checkpoints, CheckpointErrors    uint64
	CheckpointBytes                  int64
}

// HandoverNode is a ClusterNode that may hand partitions over through
// checkpoints; ok is false when it does not (no --checkpoint-dest), and
// the hand-over metrics are then not reported.
type HandoverNode interface {
	HandoverCounts() (c HandoverCounts, ok bool)
}

// forwardBuckets bound one forwarded call, in seconds: a loopback forward
// takes well under a millisecond, the forward timeout is 250ms.
var forwardBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}

// forwardObserver records serving's forwards into a histogram by peer.
type forwardObserver struct {
	duration metric.Float64Histogram
}

func (f *forwardObserver) ObserveForward(peer string, _ int, d time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	f.duration.Record(context.Background(), d.Seconds(),
		metric.WithAttributes(attribute.String("peer", peer), attribute.String("result", result)))
}

// ObserveCluster registers the cluster metrics: the node's role and lag per
// partition, the group's generation and rebalances (node), and the router's
// forwarding counters (routerStats, which may be called before the server
// exists and then returns zeros). It returns the observer that records
// each forward's duration (serving.Options.ForwardObserver).
func (t *Telemetry) ObserveCluster(node ClusterNode, routerStats func() serving.RouterStats) (serving.ForwardObserver, error) {
	m := t.meter
	dur, err := m.Float64Histogram("featured.cluster.forward.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of one forwarded read (PeerService.Read) to a peer, by peer and result."),
		metric.WithExplicitBucketBoundaries(forwardBuckets...))
	if err != nil {
		return nil, fmt.Errorf("telemetry: observe cluster: %w", err)
	}
	c := newCollector(m)
	role := c.gauge("featured.cluster.partition.role", "", "1 for this node's role (active, standby, warmup) in each partition it holds.")
	lag := c.gauge("featured.cluster.partition.lag_records", "{record}", "Records this node's replica of the partition is behind its end offset, on its most lagging source.")
	gen := c.gauge("featured.cluster.generation", "", "Generation of the owner map this node follows (0 before the first).")
	rebalances := c.counter("featured.cluster.rebalances", "{rebalance}", "Owner maps this node adopted.")
	rows := c.counter("featured.cluster.forwarded_rows", "{row}", "Entity rows forwarded to each peer.")
	failovers := c.counter("featured.cluster.failovers", "{failover}", "Partitions of a lookup retried on another replica.")
	restores := c.counter("featured.cluster.restores", "{partition}", "Partitions adopted with no state: restored from a checkpoint (result=restored), replayed from the topic for want of one (replayed), or after a failed restore (error).")
	restoreBytes := c.counter("featured.cluster.restore", "By", "Checkpoint bytes downloaded by restores.")
	checkpoints := c.counter("featured.cluster.checkpoints", "{checkpoint}", "Checkpoints of the partitions this node is the active of, by result (ok, error).")
	checkpointBytes := c.counter("featured.cluster.checkpoint.uploaded", "By", "Bytes the checkpoints uploaded (what the destination lacked).")
	restoreSeconds, err := m.Float64ObservableCounter("featured.cluster.restore.duration", metric.WithUnit("s"),
		metric.WithDescription("Time spent restoring partitions from checkpoints (download and load)."))
	if err != nil {
		return nil, fmt.Errorf("telemetry: observe cluster: %w", err)
	}
	if err := c.err(); err != nil {
		return nil, err
	}
	hn, _ := node.(HandoverNode)
	_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		ms := node.MembershipStats()
		o.ObserveInt64(gen, int64(ms.Generation))
		o.ObserveInt64(rebalances, int64(ms.Rebalances))
		lags := node.Lags()
		for p, r := range node.Roles() {
			if r == cluster.RoleNone {
				continue
			}
			part := attribute.String("partition", strconv.Itoa(p))
			o.ObserveInt64(role, 1, metric.WithAttributes(part, attribute.String("role", r.String())))
			if p < len(lags) && lags[p] >= 0 {
				o.ObserveInt64(lag, lags[p], metric.WithAttributes(part))
			}
		}
		rs := routerStats()
		for peer, n := range rs.ForwardedRows {
			o.ObserveInt64(rows, n, metric.WithAttributes(attribute.String("peer", peer)))
		}
		o.ObserveInt64(failovers, rs.Failovers)
		if hn == nil {
			return nil
		}
		hc, ok := hn.HandoverCounts()
		if !ok {
			return nil
		}
		result := func(r string) metric.ObserveOption { return metric.WithAttributes(attribute.String("result", r)) }
		o.ObserveInt64(restores, int64(hc.Restores), result("restored"))
		o.ObserveInt64(restores, int64(hc.Replays-hc.RestoreErrors), result("replayed"))
		o.ObserveInt64(restores, int64(hc.RestoreErrors), result("error"))
		o.ObserveInt64(restoreBytes, hc.RestoreBytes)
		o.ObserveFloat64(restoreSeconds, hc.RestoreSeconds)
		o.ObserveInt64(checkpoints, int64(hc.Checkpoints), result("ok"))
		o.ObserveInt64(checkpoints, int64(hc.CheckpointErrors), result("error"))
		o.ObserveInt64(checkpointBytes, hc.CheckpointBytes)
		return nil
	}, append(c.instruments, restoreSeconds)...)
	if err != nil {
		return nil, fmt.Errorf("telemetry: observe cluster: %w", err)
	}
	return &forwardObserver{duration: dur}, nil
}
