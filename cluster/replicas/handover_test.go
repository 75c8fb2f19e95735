package replicas

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/featured-dev/featured/cluster"
	"github.com/featured-dev/featured/ingest"
)

// fakeHandover records its calls; restoring p checks that p is not yet
// consumed.
type fakeHandover struct {
	set *ingest.PartitionSet
	mu  sync.Mutex
	// restored: partition -> whether it was in the set when restored.
	restored    map[int32]bool
	checkpoints map[int32]int
}

func (f *fakeHandover) Restore(_ context.Context, p int32) (Restore, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.restored[p] = f.set.Contains(p)
	switch p {
	case 0:
		return Restore{Restored: true, Bytes: 100}, nil
	case 1:
		return Restore{Reason: ReasonNoCheckpoint}, nil
	}
	return Restore{}, errors.New("unreachable store")
}

func (f *fakeHandover) Checkpoint(_ context.Context, p int32) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checkpoints[p]++
	return 10, nil
}

// TestKeeperHandover: partitions adopted are restored before they are
// consumed, once; only actives checkpoint; Status counts both.
func TestKeeperHandover(t *testing.T) {
	set := ingest.NewPartitionSet()
	h := &fakeHandover{set: set, restored: map[int32]bool{}, checkpoints: map[int32]int{}}
	k, err := New(Options{Self: "b", Partitions: 4, Set: set, Handover: h, CheckpointInterval: 5 * time.Millisecond, Tick: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	m := newFakeMember()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { k.Run(ctx, m) })
	defer func() { cancel(); wg.Wait() }()
	// b: active of 0, standby of 1, warm-up of 2, nothing of 3.
	m.set(ownerMap(1,
		cluster.Placement{Active: 1, Standbys: []int{0}},
		cluster.Placement{Active: 2, Standbys: []int{0, 1}},
		cluster.Placement{Active: 0, Standbys: []int{2}, Warmups: []int{1}},
		cluster.Placement{Active: 0, Standbys: []int{2}},
	))
	waitUntil(t, "the partition set follows the map", func() bool { return slices.Equal(set.Partitions(), []int32{0, 1, 2}) })
	waitUntil(t, "partition 0 checkpointed", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.checkpoints[0] >= 2
	})
	// The same partitions in the next map: nothing restored again.
	m.set(ownerMap(2,
		cluster.Placement{Active: 1, Standbys: []int{0}},
		cluster.Placement{Active: 1, Standbys: []int{0, 2}},
		cluster.Placement{Active: 0, Standbys: []int{1}},
		cluster.Placement{Active: 0, Standbys: []int{2}},
	))
	waitUntil(t, "partition 1 checkpointed as active", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.checkpoints[1] >= 1
	})
	h.mu.Lock()
	if want := map[int32]bool{0: false, 1: false, 2: false}; !maps.Equal(h.restored, want) {
		t.Errorf("restored (partition: already consumed) %v, want %v", h.restored, want)
	}
	if h.checkpoints[2] != 0 || h.checkpoints[3] != 0 {
		t.Errorf("checkpoints %v: a partition not active here was checkpointed", h.checkpoints)
	}
	h.mu.Unlock()
	st := k.Status().Handover
	if st == nil || st.Restores != 1 || st.RestoreBytes != 100 || st.Replays != 2 || st.RestoreErrors != 1 || st.Checkpoints < 3 {
		t.Fatalf("handover status %+v, want 1 restore of 100 bytes, 2 replays (1 error), at least 3 checkpoints", st)
	}
}
