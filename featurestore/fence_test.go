package featurestore_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/featurestore"
	"github.com/featured-dev/featured/featurestore/featurestoretest"
	"github.com/featured-dev/featured/internal/partition"
)

// TestFailedCommitFencesPartition: the first commit of shard 0 fails while
// a consumer has enqueued offsets 0-9 and then 10-19 of one partition. The
// shard must not apply 10-19 on top of the dropped 0-9 (which left count 10
// and offset 20, for good); the consumer learns of it (Moved, ErrFenced),
// replays from the stored offsets under a new fence, and the store ends
// with every event counted once and the offset at 20.
func TestFailedCommitFencesPartition(t *testing.T) {
	const (
		topic    = "src/tx"
		entities = 4
	)
	now := time.UnixMilli(1_790_000_000_000)
	lay, err := aggregate.NewLayout([]aggregate.Spec{{Op: aggregate.OpCount, Field: -1, WindowMillis: 3_600_000, HopMillis: 60_000}}, 24*3_600_000)
	if err != nil {
		t.Fatal(err)
	}
	vk := featurestore.ViewKey{ID: 1, Version: 1}
	var log featurestoretest.FailLog
	log.Fail(0, 1)
	// CommitMaxWrites 1: each request is committed on its own, so shard 0's
	// first commit holds the batch 0-9 and nothing else.
	s, err := featurestore.Open(t.TempDir(), featurestore.Options{
		Partitions: 2, EventLog: &log, GCInterval: -1, CommitMaxWrites: 1, CommitInterval: time.Hour,
		Now: func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ws := make([]featurestore.Write, 20)
	for i := range ws {
		ws[i] = featurestore.Write{
			Entity: fmt.Appendf(nil, "user-%d", i%entities), EventMillis: now.UnixMilli() - 1000,
			Targets:  []featurestore.Target{{Key: vk, Layout: lay}},
			Position: &featurestore.Position{Topic: topic, Partition: 0, Offset: int64(i)},
		}
	}
	mark := func(off int64) featurestore.Position {
		return featurestore.Position{Topic: topic, Partition: 0, Offset: off}
	}
	ctx := context.Background()

	f := s.Fence(topic, 0)
	if err := s.EnqueueFenced(ctx, placed(ws[0:10], s.Partitions()), mark(10), f); err != nil {
		t.Fatal(err)
	}
	// Queued before or after shard 0 failed: dropped by the shard, or
	// refused here.
	if err := s.EnqueueFenced(ctx, placed(ws[10:20], s.Partitions()), mark(20), f); err != nil && !errors.Is(err, featurestore.ErrFenced) {
		t.Fatal(err)
	}
	select {
	case <-f.Moved():
	case <-time.After(30 * time.Second):
		t.Fatal("the partition's fence did not move after a failed commit")
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.EnqueueFenced(ctx, placed(ws[10:20], s.Partitions()), mark(20), f); !errors.Is(err, featurestore.ErrFenced) {
		t.Fatalf("enqueue under a moved fence: %v, want ErrFenced", err)
	}
	if got, ok := s.Offsets(topic)[0]; ok {
		t.Fatalf("stored offset %d after shard 0's only commit of the partition failed, want none", got)
	}

	// The consumer rewinds: a new fence, then the stored offsets.
	f2 := s.Fence(topic, 0)
	start := s.Offsets(topic)[0] // none: from the start
	for from := start; from < 20; from += 10 {
		if err := s.EnqueueFenced(ctx, placed(ws[from:from+10], s.Partitions()), mark(from+10), f2); err != nil {
			t.Fatalf("replay from %d: %v", from, err)
		}
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-f2.Moved():
		t.Fatal("the fence moved again without a failed commit")
	default:
	}
	var count int64
	out := make([]aggregate.Result, 1)
	for e := range entities {
		if err := s.Read(vk, lay, partOf(fmt.Appendf(nil, "user-%d", e), s.Partitions()), fmt.Appendf(nil, "user-%d", e), []int{0}, now.UnixMilli(), out); err != nil {
			t.Fatal(err)
		}
		count += out[0].Value.I
	}
	if got := s.Offsets(topic)[0]; count != 20 || got != 20 {
		t.Fatalf("after the replay: count %d, offset %d, want 20 and 20", count, got)
	}
	var failed uint64
	for _, st := range s.Stats() {
		failed += st.CommitsFailed
	}
	if failed != 1 || log.Failed() != 1 {
		t.Fatalf("%d failed commits in the stats, %d injected, want 1 and 1", failed, log.Failed())
	}
}

func partOf(entity []byte, n int) int { return partition.Of(entity, n) }

func placed(ws []featurestore.Write, n int) []featurestore.Write {
	out := make([]featurestore.Write, len(ws))
	for i := range ws {
		out[i] = ws[i]
		out[i].Partition = partOf(ws[i].Entity, n)
	}
	return out
}
