package replicas

import (
	"context"
	"time"

	"github.com/featured-dev/featured/cluster"
)

// Handover moves partitions' state through object storage
// (docs/scaling.md, "Replicas"): the active of each partition checkpoints
// it every CheckpointInterval, and a node adopting a partition it holds no
// state of restores the newest checkpoint before consuming it, then reads
// on from the restored offsets. cmd/featured implements it over
// featurestore and backup.
type Handover interface {
	// Restore fills partition p from its newest checkpoint if this
	// node's copy of p is empty. An error, or Restored false, leaves p to
	// be replayed from the topic. It is called from the Keeper's
	// goroutine, before p is added to the ingest partition set.
	Restore(ctx context.Context, p int32) (Restore, error)
	// Checkpoint checkpoints partition p and uploads it, returning the
	// bytes uploaded. It is called from the Keeper's checkpoint
	// goroutine, one partition at a time.
	Checkpoint(ctx context.Context, p int32) (uploadedBytes int64, err error)
}

// Restore is what Handover.Restore did.
type Restore struct {
	// Restored says p was filled from a checkpoint; otherwise Reason says
	// why not (it holds state, no checkpoint exists).
	Restored bool
	Reason   string
	Bytes    int64 // downloaded
}

// HandoverStats counts this node's hand-overs since it started: the
// cluster section's "handover" in GET /v1/status.
type HandoverStats struct {
	// Restores counts partitions filled from a checkpoint, Replays the
	// partitions adopted empty that had none to restore (or whose restore
	// failed: RestoreErrors) and are replayed from the topic.
	Restores       uint64  `json:"restores"`
	Replays        uint64  `json:"replays"`
	RestoreErrors  uint64  `json:"restore_errors"`
	RestoreBytes   int64   `json:"restore_bytes"`
	RestoreSeconds float64 `json:"restore_seconds"`
	// Checkpoints counts uploaded checkpoints of the partitions this node
	// is the active of; CheckpointBytes what they uploaded.
	Checkpoints      uint64 `json:"checkpoints"`
	CheckpointErrors uint64 `json:"checkpoint_errors"`
	CheckpointBytes  int64  `json:"checkpoint_bytes"`
	LastError        string `json:"last_error,omitempty"`
}

// restoreNew restores the partitions of roles that set does not hold yet
// (adopted by this map), before they are consumed.
func (k *Keeper) restoreNew(ctx context.Context, roles map[int32]cluster.Role) {
	h := k.opts.Handover
	if h == nil {
		return
	}
	for _, p := range heldBy(roles) {
		if k.opts.Set.Contains(p) {
			continue
		}
		start := time.Now()
		r, err := h.Restore(ctx, p)
		k.mu.Lock()
		hs := &k.mu.handover
		switch {
		case err != nil:
			hs.RestoreErrors++
			hs.Replays++
			hs.LastError = err.Error()
		case r.Restored:
			hs.Restores++
			hs.RestoreBytes += r.Bytes
			hs.RestoreSeconds += time.Since(start).Seconds()
		case r.Reason == ReasonNoCheckpoint:
			hs.Replays++
		}
		k.mu.Unlock()
		switch {
		case err != nil:
			k.opts.Logger.Warn("cluster: restore failed; replaying the partition from the topic", "partition", p, "err", err)
		case r.Restored:
			k.opts.Logger.Info("cluster: restored the partition from its checkpoint", "partition", p, "bytes", r.Bytes, "seconds", time.Since(start).Seconds())
		default:
			k.opts.Logger.Info("cluster: not restored", "partition", p, "reason", r.Reason)
		}
	}
}

// ReasonNoCheckpoint and ReasonHasState are Restore.Reason's usual values.
const (
	ReasonNoCheckpoint = "no checkpoint: replaying from the topic"
	ReasonHasState     = "holds state: consuming from its own offsets"
)

// checkpointLoop checkpoints the partitions this node is the active of,
// every CheckpointInterval, until ctx ends.
func (k *Keeper) checkpointLoop(ctx context.Context) {
	t := time.NewTicker(k.opts.CheckpointInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for p, r := range k.table.Load().roles {
			if r != cluster.RoleActive || ctx.Err() != nil {
				continue
			}
			n, err := k.opts.Handover.Checkpoint(ctx, int32(p))
			k.mu.Lock()
			if err != nil {
				k.mu.handover.CheckpointErrors++
				k.mu.handover.LastError = err.Error()
			} else {
				k.mu.handover.Checkpoints++
				k.mu.handover.CheckpointBytes += n
			}
			k.mu.Unlock()
			if err != nil && ctx.Err() == nil {
				k.opts.Logger.Warn("cluster: checkpoint failed", "partition", p, "err", err)
			}
		}
	}
}
