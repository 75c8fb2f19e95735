package replicas

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/featured-dev/featured/cluster"
	"github.com/featured-dev/featured/ingest"
)

// fakeMember is a Membership whose maps the test sets.
type fakeMember struct {
	mu         sync.Mutex
	cur        *cluster.OwnerMap
	changed    chan struct{}
	rebalances int
	drained    bool
	left       bool
}

func newFakeMember() *fakeMember { return &fakeMember{changed: make(chan struct{})} }

func (f *fakeMember) set(om *cluster.OwnerMap) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cur = om
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeMember) Current() (*cluster.OwnerMap, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cur, f.changed
}

func (f *fakeMember) Rebalance() {
	f.mu.Lock()
	f.rebalances++
	f.mu.Unlock()
}

func (f *fakeMember) Drain() {
	f.mu.Lock()
	f.drained = true
	f.mu.Unlock()
}

func (f *fakeMember) Leave(context.Context) error {
	f.mu.Lock()
	f.left = true
	f.mu.Unlock()
	return nil
}

func (f *fakeMember) Stats() cluster.Stats { return cluster.Stats{} }

// fakeConsumers reports positions the test sets, per partition of one
// source.
type fakeConsumers struct {
	mu  sync.Mutex
	pos map[int][2]int64 // partition -> next, high
}

func (f *fakeConsumers) setPos(p int, next, high int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pos[p] = [2]int64{next, high}
}

func (f *fakeConsumers) Status() []ingest.ConsumerStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	cs := ingest.ConsumerStatus{Source: "tx", Topic: "t", Ready: true}
	for p, nh := range f.pos {
		cs.Partitions = append(cs.Partitions, ingest.PartitionStatus{Source: "tx", Topic: "t", Partition: p,
			NextOffset: nh[0], HighWatermark: nh[1], Lag: max(0, nh[1]-nh[0]), Reading: true})
	}
	return []ingest.ConsumerStatus{cs}
}

// ownerMap builds a map of 4 partitions over members a, b, c: per
// partition the active, the standbys and the warm-ups by member index.
func ownerMap(gen int32, parts ...cluster.Placement) *cluster.OwnerMap {
	return &cluster.OwnerMap{Generation: gen, Partitions: len(parts), Parts: parts, Members: []cluster.Member{
		{InstanceID: "a", Advertise: "a:1"}, {InstanceID: "b", Advertise: "b:1"}, {InstanceID: "c", Advertise: "c:1"}}}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestKeeper follows maps: the partitions consumed are this node's in any
// role; a partition is answered here only once caught up within the
// staleness bound, else by the other replicas, active first; a warm-up
// that catches up asks for a rebalance once; a drained node leaves once it
// holds nothing; the map is saved and loads back.
func TestKeeper(t *testing.T) {
	set, actives := ingest.NewPartitionSet(), ingest.NewPartitionSet()
	cons := &fakeConsumers{pos: map[int][2]int64{}}
	mapFile := filepath.Join(t.TempDir(), "cluster-map")
	k, err := New(Options{Self: "b", Partitions: 4, Set: set, Actives: actives, Consumers: cons, MapFile: mapFile,
		MaxStaleness: time.Second, AcceptableRecoveryLag: 10, Tick: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if k.Ready() == nil {
		t.Fatal("ready before any map")
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
	if err := k.Ready(); err != nil {
		t.Fatal(err)
	}
	if got := actives.Partitions(); !slices.Equal(got, []int32{0}) {
		t.Fatalf("actives %v, want [0]", got)
	}
	// Nothing read yet: nothing answered here, nothing caught up.
	if local, peers := k.Route(0); local || !slices.Equal(peers, []string{"a:1"}) {
		t.Fatalf("route 0 before reading: %v %v", local, peers)
	}
	if local, peers := k.Route(1); local || !slices.Equal(peers, []string{"c:1", "a:1"}) {
		t.Fatalf("route 1: %v %v; want the active first", local, peers)
	}
	cons.setPos(0, 100, 100)
	cons.setPos(1, 50, 100) // 50 behind: beyond the recovery lag, and stale
	cons.setPos(2, 95, 100) // a warm-up within the recovery lag
	waitUntil(t, "partition 0 answered here", func() bool { local, _ := k.Route(0); return local })
	waitUntil(t, "caught up: 0 and the warm-up 2", func() bool { return slices.Equal(k.CaughtUp(), []int32{0, 2}) })
	if local, _ := k.Route(1); local {
		t.Fatal("partition 1, 50 records behind since it was first seen, answered here")
	}
	waitUntil(t, "the caught-up warm-up asks for a rebalance", func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.rebalances == 1
	})
	// Partition 1 reaches the end it had: fresh again, though the end
	// moved on since (it reached the end seen a moment ago).
	cons.setPos(1, 100, 100)
	waitUntil(t, "partition 1 answered here", func() bool { local, _ := k.Route(1); return local })
	cons.setPos(1, 100, 130)
	time.Sleep(50 * time.Millisecond) // ticks observe the new end; it is far from stale yet
	if local, _ := k.Route(1); !local {
		t.Fatal("partition 1 stopped being answered here within the staleness bound")
	}
	waitUntil(t, "partition 1 stale past MaxStaleness", func() bool { local, _ := k.Route(1); return !local })
	m.mu.Lock()
	if m.rebalances != 1 {
		t.Errorf("%d rebalances asked; want 1 (a warm-up asks once per map)", m.rebalances)
	}
	m.mu.Unlock()

	st := k.Status()
	if st.Generation != 0 || len(st.Members) != 3 || st.Partitions[2].Role != "warmup" || st.Partitions[0].Active != "b" ||
		!slices.Equal(st.Partitions[1].Standbys, []string{"a", "b"}) || st.Partitions[3].Role != "none" {
		t.Fatalf("status %+v", st)
	}
	saved, err := LoadMap(mapFile)
	if err != nil || saved == nil || saved.Generation != 1 {
		t.Fatalf("saved map: %+v %v", saved, err)
	}

	// Drain: nothing happens while b holds partitions; it leaves once a
	// map gives it none.
	if err := k.Drain(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	m.mu.Lock()
	if !m.drained || m.left {
		t.Fatalf("drained %v left %v; want drained, not left while holding partitions", m.drained, m.left)
	}
	m.mu.Unlock()
	m.set(ownerMap(2,
		cluster.Placement{Active: 0, Standbys: []int{2}},
		cluster.Placement{Active: 2, Standbys: []int{0}},
		cluster.Placement{Active: 0, Standbys: []int{2}},
		cluster.Placement{Active: 0, Standbys: []int{2}},
	))
	waitUntil(t, "the drained node leaves", func() bool { return k.Status().Left })
	if got := set.Partitions(); len(got) != 0 {
		t.Fatalf("a node that left consumes %v", got)
	}
	if local, peers := k.Route(0); local || !slices.Equal(peers, []string{"a:1", "c:1"}) {
		t.Fatalf("route 0 after leaving: %v %v", local, peers)
	}
}

// TestKeeperPrevious: a node restarting with the map it saved consumes its
// partitions from the start and reports those caught up before the first
// map arrives.
func TestKeeperPrevious(t *testing.T) {
	prev := ownerMap(7,
		cluster.Placement{Active: 0, Standbys: []int{1}},
		cluster.Placement{Active: 1, Standbys: []int{2}},
	)
	set := ingest.NewPartitionSet()
	cons := &fakeConsumers{pos: map[int][2]int64{0: {10, 10}, 1: {0, 100}}}
	k, err := New(Options{Self: "b", Partitions: 2, Set: set, Consumers: cons, Previous: prev, AcceptableRecoveryLag: 10, Tick: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(set.Partitions(), []int32{0, 1}) {
		t.Fatalf("consuming %v before the first map; want the previous map's 0 and 1", set.Partitions())
	}
	m := newFakeMember()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { k.Run(ctx, m) })
	defer func() { cancel(); wg.Wait() }()
	waitUntil(t, "partition 0 caught up", func() bool { return slices.Equal(k.CaughtUp(), []int32{0}) })
	if local, _ := k.Route(0); local {
		t.Fatal("answering before the first map")
	}
}

// TestKeeperRouteWithin: a lookup's own bound answers here only a
// partition fresh within it; a bound above MaxStaleness is capped at it;
// peers stay in the map's order. observe runs on the test's clock.
func TestKeeperRouteWithin(t *testing.T) {
	cons := &fakeConsumers{pos: map[int][2]int64{}}
	k, err := New(Options{Self: "b", Partitions: 2, Set: ingest.NewPartitionSet(), Consumers: cons,
		MaxStaleness: 10 * time.Second, Tick: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	// b: active of 0, standby of 1.
	k.adopt(t.Context(), ownerMap(1,
		cluster.Placement{Active: 1, Standbys: []int{0}},
		cluster.Placement{Active: 2, Standbys: []int{1, 0}},
	))
	t0 := time.Unix(1_000_000, 0)
	cons.setPos(0, 100, 100)
	cons.setPos(1, 100, 100)
	k.observe(t0)
	// Partition 1's end moves on at t0+1s; the standby stays where it was.
	cons.setPos(1, 100, 200)
	k.observe(t0.Add(time.Second))
	cons.setPos(0, 100, 100)
	k.observe(t0.Add(4 * time.Second)) // partition 1: 3s stale

	for _, c := range []struct {
		p     int
		bound time.Duration
		local bool
	}{
		{0, time.Millisecond, true}, // at its end
		{1, time.Second, false},     // 3s stale
		{1, 2999 * time.Millisecond, false},
		{1, 3 * time.Second, true},
		{1, 0, true},         // the node's MaxStaleness
		{1, time.Hour, true}, // capped at MaxStaleness: 3s is within
	} {
		local, peers := k.RouteWithin(c.p, c.bound)
		if local != c.local {
			t.Errorf("RouteWithin(%d, %v) local %v, want %v", c.p, c.bound, local, c.local)
		}
		if c.p == 1 && !slices.Equal(peers, []string{"c:1", "a:1"}) {
			t.Errorf("RouteWithin(1, %v) peers %v, want the active first", c.bound, peers)
		}
	}
	if local, _ := k.Route(1); !local {
		t.Error("Route(1): not local at 3s of a 10s MaxStaleness")
	}
	// 12s stale: past MaxStaleness, so no bound, however high, answers here.
	k.observe(t0.Add(13 * time.Second))
	if local, _ := k.RouteWithin(1, time.Hour); local {
		t.Error("RouteWithin(1, 1h) local at 12s stale; want capped at MaxStaleness 10s")
	}
	if local, _ := k.RouteWithin(-1, time.Second); local {
		t.Error("RouteWithin(-1) local")
	}
}
