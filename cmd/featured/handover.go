package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/featured-dev/featured/backup"
	"github.com/featured-dev/featured/cluster/replicas"
	"github.com/featured-dev/featured/featurestore"
)

// handover is replicas.Handover over the store and --checkpoint-dest: a
// partition's checkpoint is its Pebble's (Store.CheckpointPartition),
// uploaded to <dest>/partitions/p-NNNN/ (backup.OpenPartition) and loaded
// into an empty partition (Store.LoadPartition).
type handover struct {
	store *featurestore.Store
	dest  string
	keep  int
	// stage is under the data dir, so that a checkpoint hard-links the
	// sstables; its name starts with stagingPrefix, so a crash's leftovers
	// are deleted at the next start (removeStaging).
	stage string
}

var _ replicas.Handover = (*handover)(nil)

func newHandover(store *featurestore.Store, dataDir, dest string, keep int) *handover {
	return &handover{store: store, dest: dest, keep: keep, stage: filepath.Join(dataDir, stagingPrefix+"handover")}
}

// Checkpoint is replicas.Handover's: checkpoint partition p, upload it,
// keep the newest h.keep.
func (h *handover) Checkpoint(ctx context.Context, p int32) (int64, error) {
	if err := os.MkdirAll(h.stage, 0o755); err != nil {
		return 0, fmt.Errorf("checkpoint partition %d: %w", p, err)
	}
	start := time.Now()
	dir := filepath.Join(h.stage, fmt.Sprintf("p-%04d-%d", p, start.UnixNano()))
	defer os.RemoveAll(dir)
	pc, err := h.store.CheckpointPartition(ctx, int(p), dir)
	if err != nil {
		return 0, err
	}
	d, err := backup.OpenPartition(ctx, h.dest, int(p))
	if err != nil {
		return 0, err
	}
	defer d.Close()
	m := &backup.Manifest{Time: start, Store: &featurestore.CheckpointInfo{Partitions: []featurestore.PartitionCheckpoint{*pc}}}
	if err := d.Upload(ctx, dir, m); err != nil {
		return 0, fmt.Errorf("upload checkpoint of partition %d: %w", p, err)
	}
	if _, err := d.Prune(ctx, h.keep); err != nil {
		return m.UploadedBytes, fmt.Errorf("prune checkpoints of partition %d: %w", p, err)
	}
	return m.UploadedBytes, nil
}

// Restore is replicas.Handover's: when partition p is empty, download its
// newest checkpoint and load it.
func (h *handover) Restore(ctx context.Context, p int32) (replicas.Restore, error) {
	empty, err := h.store.PartitionEmpty(int(p))
	if err != nil {
		return replicas.Restore{}, err
	}
	if !empty {
		return replicas.Restore{Reason: replicas.ReasonHasState}, nil
	}
	d, err := backup.OpenPartition(ctx, h.dest, int(p))
	if err != nil {
		return replicas.Restore{}, err
	}
	defer d.Close()
	if err := os.MkdirAll(h.stage, 0o755); err != nil {
		return replicas.Restore{}, fmt.Errorf("restore partition %d: %w", p, err)
	}
	m, dir, err := d.Download(ctx, h.stage)
	if errors.Is(err, backup.ErrNoBackup) {
		return replicas.Restore{Reason: replicas.ReasonNoCheckpoint}, nil
	}
	if err != nil {
		return replicas.Restore{}, fmt.Errorf("download checkpoint of partition %d: %w", p, err)
	}
	defer os.RemoveAll(dir)
	if _, err := h.store.LoadPartition(ctx, int(p), dir); err != nil {
		return replicas.Restore{}, err
	}
	return replicas.Restore{Restored: true, Bytes: m.Bytes, Reason: "checkpoint " + m.ID}, nil
}
