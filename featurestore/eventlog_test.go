package featurestore

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/featured-dev/featured/aggregate"
)

// probeLog is an EventLog that reads an entity through the store when each
// batch is stamped (Commit) and when it is reported (Committed), to check
// what Read saw at the two instants the log is given.
type probeLog struct {
	store  atomic.Pointer[Store]
	layout *aggregate.Layout
	entity atomic.Pointer[[]byte] // the entity the current batch writes

	mu      sync.Mutex
	commits []probe
}

// probe is one batch as the log saw it.
type probe struct {
	nowMillis, visibleMillis int64
	sync                     bool
	// seenAtCommit and seenAtCommitted say whether Read found the batch's
	// entity in Commit and in Committed.
	seenAtCommit, seenAtCommitted bool
}

var _ EventLog = (*probeLog)(nil)

func (p *probeLog) Recover(int, []byte) error     { return nil }
func (p *probeLog) Append(int, *Write, []ViewKey) {}

func (p *probeLog) seen() bool {
	s, e := p.store.Load(), p.entity.Load()
	if s == nil || e == nil {
		return false
	}
	out := make([]aggregate.Result, 1)
	if err := s.Read(ViewKey{ID: 1, Version: 1}, p.layout, partOf(*e, s.Partitions()), *e, []int{1}, 0, out); err != nil {
		panic(err)
	}
	return out[0].Status != aggregate.StatusNotFound
}

func (p *probeLog) Commit(_ int, sync bool, nowMillis int64) ([]byte, bool, error) {
	seen := p.seen()
	p.mu.Lock()
	p.commits = append(p.commits, probe{nowMillis: nowMillis, sync: sync, seenAtCommit: seen})
	p.mu.Unlock()
	return []byte("pos"), false, nil
}

func (p *probeLog) Committed(_ int, visibleMillis int64, err error) {
	if err != nil {
		panic(err)
	}
	seen := p.seen()
	p.mu.Lock()
	c := &p.commits[len(p.commits)-1]
	c.visibleMillis, c.seenAtCommitted = visibleMillis, seen
	p.mu.Unlock()
}

// TestEventLogVisibleMillis: the time Committed reports is read from the
// store's clock after the batch became visible to Read, synced or not, and
// after the time Commit was given, read before it was.
func TestEventLogVisibleMillis(t *testing.T) {
	var clock atomic.Int64
	clock.Store(1_800_000_000_000)
	// Every read of the clock moves it 5 ms on, so each instant is distinct.
	now := func() time.Time { return time.UnixMilli(clock.Add(5)) }
	lay := testLayout(t)
	log := &probeLog{layout: lay}
	s := openStore(t, t.TempDir(), Options{
		Partitions: 1, EventLog: log, Now: now, GCInterval: -1, CommitInterval: time.Hour, CommitMaxWrites: 1,
	})
	defer s.Close()
	log.store.Store(s)
	ctx := context.Background()
	write := func(i int) []Write {
		e := entityKey(i)
		log.entity.Store(&e)
		return []Write{{
			Entity: e, EventMillis: clock.Load() - 60_000, Targets: []Target{{Key: ViewKey{ID: 1, Version: 1}, Layout: lay}},
			Fields: []aggregate.Value{{Kind: aggregate.KindFloat64, F: 1}, {Kind: aggregate.KindString, S: "m"}, {Kind: aggregate.KindInt64, I: 1}},
		}}
	}
	for i := 0; i < 3; i++ {
		if _, err := s.Write(ctx, placed(write(2*i), s.Partitions())); err != nil { // synced
			t.Fatal(err)
		}
		if err := s.Enqueue(ctx, placed(write(2*i+1), s.Partitions()), nil); err != nil { // committed unsynced at once
			t.Fatal(err)
		}
		// Waits for it, and syncs it: a commit of no writes, synced.
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	synced := 0
	for i, c := range log.commits {
		if i%3 == 2 {
			if !c.sync || c.visibleMillis <= c.nowMillis {
				t.Errorf("commit %d: %+v, want Flush's sync of the unsynced commit before it", i, c)
			}
			synced++
			continue
		}
		if c.seenAtCommit || !c.seenAtCommitted || c.visibleMillis <= c.nowMillis {
			t.Errorf("commit %d: %+v, want the batch unseen at Commit, seen at Committed, visibleMillis after nowMillis", i, c)
		}
		if c.sync {
			synced++
		}
	}
	if len(log.commits) != 9 || synced != 6 {
		t.Fatalf("%d commits, %d synced, want 9 and 6: %+v", len(log.commits), synced, log.commits)
	}
}
