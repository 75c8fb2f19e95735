package featurestore

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/aggregate/aggregatetest"
	"github.com/featured-dev/featured/internal/partition"
)

const (
	hour = int64(time.Hour / time.Millisecond)
	day  = 24 * hour
)

// testSpecs is a view over fields [amount float64, merchant string, items int64].
var testSpecs = []aggregate.Spec{
	{Op: aggregate.OpSum, Field: 0, FieldKind: aggregate.KindFloat64, WindowMillis: 7 * day, HopMillis: hour},
	{Op: aggregate.OpCount, Field: -1, WindowMillis: hour, HopMillis: 60_000},
	{Op: aggregate.OpAvg, Field: 0, FieldKind: aggregate.KindFloat64, WindowMillis: day, HopMillis: 5 * 60_000},
	{Op: aggregate.OpLast, Field: 1, FieldKind: aggregate.KindString},
	{Op: aggregate.OpSum, Field: 2, FieldKind: aggregate.KindInt64, WindowMillis: day, HopMillis: hour},
	{Op: aggregate.OpMax, Field: 2, FieldKind: aggregate.KindInt64, WindowMillis: 7 * day, HopMillis: hour},
}

const testTTL = 8 * day

func testLayout(t testing.TB) *aggregate.Layout {
	t.Helper()
	l, err := aggregate.NewLayout(testSpecs, testTTL)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// fakeClock is a settable clock shared by the store and the test.
type fakeClock struct{ ms atomic.Int64 }

func (c *fakeClock) Now() time.Time { return time.UnixMilli(c.ms.Load()) }
func (c *fakeClock) Set(ms int64)   { c.ms.Store(ms) }
func newClock(ms int64) *fakeClock  { c := &fakeClock{}; c.Set(ms); return c }
func allFeatures(n int) []int {
	f := make([]int, n)
	for i := range f {
		f[i] = i
	}
	return f
}
func entityKey(i int) []byte { return []byte(fmt.Sprintf("user-%04d", i)) }
func openStore(t testing.TB, dir string, o Options) *Store {
	t.Helper()
	s, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// stream makes n events over entities, all within the last few days of now.
func stream(n, entities int, nowMs int64) (keys [][]byte, events [][]aggregatetest.Event) {
	keys = make([][]byte, entities)
	events = make([][]aggregatetest.Event, entities)
	for i := range keys {
		keys[i] = entityKey(i)
	}
	for i := 0; i < n; i++ {
		e := i % entities
		ts := nowMs - 3*day + int64(i)*37_003%(3*day) // scrambled: late events too
		events[e] = append(events[e], aggregatetest.Event{Millis: ts, Fields: []aggregate.Value{
			{Kind: aggregate.KindFloat64, F: float64(i%97) + 0.25},
			{Kind: aggregate.KindString, S: fmt.Sprintf("m%d", i%13)},
			{Kind: aggregate.KindInt64, I: int64(i % 11)},
		}})
	}
	return keys, events
}

func writesOf(l *aggregate.Layout, vk ViewKey, keys [][]byte, events [][]aggregatetest.Event) []Write {
	var ws []Write
	// Interleave entities so shards and batches mix.
	for i := 0; ; i++ {
		any := false
		for e := range keys {
			if i < len(events[e]) {
				any = true
				ev := events[e][i]
				ws = append(ws, Write{Entity: keys[e], EventMillis: ev.Millis, Fields: ev.Fields, Targets: []Target{{Key: vk, Layout: l}}})
			}
		}
		if !any {
			return ws
		}
	}
}

func checkAgainstReference(t *testing.T, s *Store, l *aggregate.Layout, vk ViewKey, keys [][]byte, events [][]aggregatetest.Event, at int64) {
	t.Helper()
	out := make([]aggregate.Result, len(testSpecs))
	for e, key := range keys {
		if err := s.Read(vk, l, partOf(key, s.Partitions()), key, allFeatures(len(testSpecs)), at, out); err != nil {
			t.Fatal(err)
		}
		for f := range testSpecs {
			want := aggregatetest.Reference(testSpecs, testTTL, events[e], f, at)
			if !aggregatetest.Equal(out[f], want, 1e-9) {
				t.Fatalf("entity %s feature %d at %d: got %+v, want %+v", key, f, at, out[f], want)
			}
		}
	}
}

func TestWriteReadRestart(t *testing.T) {
	now := int64(1_790_000_000_000)
	dir := t.TempDir()
	l := testLayout(t)
	vk := ViewKey{ID: 7, Version: 1}
	keys, events := stream(3000, 40, now)
	ws := writesOf(l, vk, keys, events)

	s := openStore(t, dir, Options{Partitions: 3, Now: newClock(now).Now, GCInterval: -1})
	for i := 0; i < len(ws); i += 250 {
		if _, err := s.Write(context.Background(), placed(ws[i:min(i+250, len(ws))], s.Partitions())); err != nil {
			t.Fatal(err)
		}
	}
	checkAgainstReference(t, s, l, vk, keys, events, now)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	s = openStore(t, dir, Options{Partitions: 3, Now: newClock(now).Now, GCInterval: -1})
	defer s.Close()
	checkAgainstReference(t, s, l, vk, keys, events, now)
	checkAgainstReference(t, s, l, vk, keys, events, now+2*hour)

	out := make([]aggregate.Result, 2)
	if err := s.Read(vk, l, partOf([]byte("nobody"), s.Partitions()), []byte("nobody"), []int{0, 3}, now, out); err != nil {
		t.Fatal(err)
	}
	for i, r := range out {
		if r.Status != aggregate.StatusNotFound {
			t.Fatalf("unknown entity feature %d: status %v, want NotFound", i, r.Status)
		}
	}
	if err := s.Read(ViewKey{ID: 7, Version: 2}, l, partOf(keys[0], s.Partitions()), keys[0], []int{0}, now, out); err != nil || out[0].Status != aggregate.StatusNotFound {
		t.Fatalf("other version: %+v, %v; want NotFound", out[0], err)
	}
}

func TestShardCountIsFixed(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{Partitions: 2, GCInterval: -1})
	s.Close()
	if _, err := Open(dir, Options{Partitions: 3}); err == nil {
		t.Fatal("reopening a 2-shard store with 3 shards succeeded")
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, o := range []Options{{Partitions: -1}, {Partitions: 5000}, {CommitMaxWrites: -5}, {QueueLength: -1}, {CachedStateBytes: -1}} {
		if _, err := Open(t.TempDir(), o); err == nil {
			t.Errorf("Open with %+v succeeded", o)
		}
	}
}

// TestOffsetsExactlyOnce enqueues a Kafka-like stream with positions, then
// replays it from the stored offsets after a restart, as a consumer does
// after a crash: nothing is counted twice.
func TestOffsetsExactlyOnce(t *testing.T) {
	now := int64(1_790_000_000_000)
	dir := t.TempDir()
	l := testLayout(t)
	vk := ViewKey{ID: 1, Version: 1}
	keys, events := stream(2000, 25, now)
	ws := writesOf(l, vk, keys, events)
	const topic = "tx"
	for i := range ws {
		ws[i].Position = &Position{Topic: topic, Partition: int32(i % 2), Offset: int64(i / 2)}
	}
	enqueue := func(s *Store, from map[int32]int64, upto int) {
		for i := 0; i < upto; i += 100 {
			batch := ws[i:min(i+100, upto)]
			var todo []Write
			marks := map[int32]int64{}
			for _, w := range batch {
				if off, ok := from[w.Position.Partition]; ok && w.Position.Offset < off {
					continue
				}
				todo = append(todo, w)
				marks[w.Position.Partition] = w.Position.Offset + 1
			}
			var ms []Position
			for p, o := range marks {
				ms = append(ms, Position{Topic: topic, Partition: p, Offset: o})
			}
			if err := s.Enqueue(context.Background(), placed(todo, s.Partitions()), ms); err != nil {
				t.Fatal(err)
			}
		}
	}
	s := openStore(t, dir, Options{Partitions: 4, Now: newClock(now).Now, GCInterval: -1, CommitMaxWrites: 37})
	enqueue(s, nil, 1300)
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := s.Offsets(topic)
	if got[0] != 650 || got[1] != 650 {
		t.Fatalf("offsets after 1300 events over 2 partitions: %v, want 650 each", got)
	}
	s.Close()

	// Restart and replay from an older point than stored, as a consumer whose
	// offsets were rewound would: shards skip what they applied.
	s = openStore(t, dir, Options{Partitions: 4, Now: newClock(now).Now, GCInterval: -1})
	defer s.Close()
	enqueue(s, map[int32]int64{0: 100, 1: 100}, len(ws))
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkAgainstReference(t, s, l, vk, keys, events, now)
	var skipped uint64
	for _, st := range s.Stats() {
		skipped += st.WritesSkipped
	}
	if skipped != 1100 {
		t.Fatalf("skipped %d replayed writes, want 1100", skipped)
	}
	if got := s.Offsets(topic); got[0] != 1000 || got[1] != 1000 {
		t.Fatalf("final offsets %v, want 1000 each", got)
	}
	if got := s.Offsets("other"); len(got) != 0 {
		t.Fatalf("offsets of an unknown topic: %v", got)
	}
}

func TestTTLExpiryAndCollection(t *testing.T) {
	now := int64(1_790_000_000_000)
	clock := newClock(now)
	l := testLayout(t)
	live := ViewKey{ID: 1, Version: 1}
	dropped := ViewKey{ID: 2, Version: 1}
	var dropLive atomic.Bool
	dropLive.Store(true)
	views := func(vk ViewKey) (time.Duration, bool) {
		if vk == dropped {
			return time.Duration(testTTL) * time.Millisecond, dropLive.Load()
		}
		return time.Duration(testTTL) * time.Millisecond, vk == live
	}
	s := openStore(t, t.TempDir(), Options{Partitions: 2, Now: clock.Now, GCInterval: 5 * time.Millisecond, Views: views})
	defer s.Close()
	f := []aggregate.Value{{Kind: aggregate.KindFloat64, F: 1}, {Kind: aggregate.KindString, S: "m"}, {Kind: aggregate.KindInt64, I: 1}}
	w := func(key string, vk ViewKey, ts int64) Write {
		return Write{Entity: []byte(key), EventMillis: ts, Fields: f, Targets: []Target{{Key: vk, Layout: l}}}
	}
	if _, err := s.Write(context.Background(), placed([]Write{w("old", live, now), w("fresh", live, now), w("x", dropped, now)}, s.Partitions())); err != nil {
		t.Fatal(err)
	}
	read := func(key string, vk ViewKey, at int64) aggregate.Result {
		out := make([]aggregate.Result, 1)
		if err := s.Read(vk, l, partOf([]byte(key), s.Partitions()), []byte(key), []int{3}, at, out); err != nil {
			t.Fatal(err)
		}
		return out[0]
	}
	// Past the TTL the value is never served, whether or not it is deleted.
	if r := read("old", live, now+testTTL+1); r.Status != aggregate.StatusNotFound {
		t.Fatalf("read past ttl: %+v, want NotFound", r)
	}
	// Keep "fresh" fresh, move the clock past 2×TTL of "old", and stop
	// reporting the dropped view as live.
	later := now + 2*testTTL + hour
	if _, err := s.Write(context.Background(), placed([]Write{w("fresh", live, later)}, s.Partitions())); err != nil {
		t.Fatal(err)
	}
	clock.Set(later)
	dropLive.Store(false)
	deadline := time.Now().Add(10 * time.Second)
	for {
		var deleted uint64
		for _, st := range s.Stats() {
			deleted += st.StatesDeleted
		}
		if deleted == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("TTL scan deleted %d states, want 2 (old, and x of the dropped view)", deleted)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if r := read("fresh", live, later); r.Status != aggregate.StatusPresent || r.Value.S != "m" {
		t.Fatalf("fresh entity after collection: %+v", r)
	}
	// The sweep's progress: scans completed, states read, when it ended.
	var scans, scanned uint64
	var last int64
	for _, st := range s.Stats() {
		scans, scanned, last = scans+st.TTLScans, scanned+st.TTLStatesScanned, max(last, st.TTLLastScanMillis)
	}
	if scans == 0 || scanned < 3 || last < later {
		t.Fatalf("TTL sweep progress: %d scans, %d states scanned, last at %d; want scans, the 3 states, at or after %d", scans, scanned, last, later)
	}
	if r := read("old", live, now); r.Status != aggregate.StatusNotFound {
		t.Fatalf("collected entity read at its own time: %+v, want NotFound (deleted)", r)
	}
}

func TestDropView(t *testing.T) {
	now := int64(1_790_000_000_000)
	l := testLayout(t)
	s := openStore(t, t.TempDir(), Options{Partitions: 2, Now: newClock(now).Now, GCInterval: -1})
	defer s.Close()
	a, b := ViewKey{ID: 3, Version: 1}, ViewKey{ID: 3, Version: 2}
	keys, events := stream(200, 10, now)
	ws := append(writesOf(l, a, keys, events), writesOf(l, b, keys, events)...)
	if _, err := s.Write(context.Background(), placed(ws, s.Partitions())); err != nil {
		t.Fatal(err)
	}
	if err := s.DropView(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	out := make([]aggregate.Result, 1)
	for _, k := range keys {
		if err := s.Read(a, l, partOf(k, s.Partitions()), k, []int{1}, now, out); err != nil || out[0].Status != aggregate.StatusNotFound {
			t.Fatalf("dropped view still has %s: %+v %v", k, out[0], err)
		}
	}
	checkAgainstReference(t, s, l, b, keys, events, now)
}

// TestConcurrentReadsDuringWrites runs readers against writers under -race;
// every read must be a consistent committed state (count never decreases).
func TestConcurrentReadsDuringWrites(t *testing.T) {
	now := int64(1_790_000_000_000)
	l := testLayout(t)
	vk := ViewKey{ID: 1, Version: 1}
	s := openStore(t, t.TempDir(), Options{Partitions: 2, Now: newClock(now).Now, GCInterval: -1, CommitInterval: time.Millisecond})
	defer s.Close()
	f := []aggregate.Value{{Kind: aggregate.KindFloat64, F: 2}, {Kind: aggregate.KindString, S: "m"}, {Kind: aggregate.KindInt64, I: 3}}
	const writers, perWriter = 2, 300
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var readErr atomic.Value
	for r := 0; r < 2; r++ {
		wg.Go(func() {
			out := make([]aggregate.Result, 1)
			last := int64(0)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := s.Read(vk, l, partOf([]byte("hot"), s.Partitions()), []byte("hot"), []int{1}, now, out); err != nil {
					readErr.Store(err)
					return
				}
				if out[0].Status == aggregate.StatusPresent {
					if out[0].Value.I < last {
						readErr.Store(fmt.Errorf("count went back from %d to %d", last, out[0].Value.I))
						return
					}
					last = out[0].Value.I
				}
			}
		})
	}
	var wwg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wwg.Go(func() {
			for i := 0; i < perWriter; i++ {
				ws := []Write{{Entity: []byte("hot"), EventMillis: now - int64(i), Fields: f, Targets: []Target{{Key: vk, Layout: l}}}}
				var err error
				if i%2 == 0 {
					_, err = s.Write(context.Background(), placed(ws, s.Partitions()))
				} else {
					err = s.Enqueue(context.Background(), placed(ws, s.Partitions()), nil)
				}
				if err != nil {
					readErr.Store(err)
					return
				}
			}
		})
	}
	wwg.Wait()
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	if err, _ := readErr.Load().(error); err != nil {
		t.Fatal(err)
	}
	out := make([]aggregate.Result, 1)
	if err := s.Read(vk, l, partOf([]byte("hot"), s.Partitions()), []byte("hot"), []int{1}, now, out); err != nil || out[0].Value.I != writers*perWriter {
		t.Fatalf("final count %+v %v, want %d", out[0], err, writers*perWriter)
	}
}

// TestDropViewThenWrite queues a drop and a write to the same view back to
// back, so the writer handles both before it commits: the write must start
// from an empty state, not reload the dropped one from Pebble.
func TestDropViewThenWrite(t *testing.T) {
	now := int64(1_790_000_000_000)
	l := testLayout(t)
	s := openStore(t, t.TempDir(), Options{Partitions: 1, Now: newClock(now).Now, GCInterval: -1, CommitInterval: time.Hour})
	defer s.Close()
	vk := ViewKey{ID: 9, Version: 1}
	f := []aggregate.Value{{Kind: aggregate.KindFloat64, F: 1}, {Kind: aggregate.KindString, S: "m"}, {Kind: aggregate.KindInt64, I: 1}}
	w := Write{Entity: []byte("e"), EventMillis: now, Fields: f, Targets: []Target{{Key: vk, Layout: l}}}
	out := make([]aggregate.Result, 1)
	for i := 0; i < 50; i++ {
		if _, err := s.Write(context.Background(), placed([]Write{w, w, w}, s.Partitions())); err != nil {
			t.Fatal(err)
		}
		drop := &request{kind: reqDrop, view: vk, sync: true, done: make(chan error, 1)}
		write := &request{kind: reqWrite, writes: []Write{w}, sync: true, done: make(chan error, 1)}
		s.shards[0].reqs <- drop
		s.shards[0].reqs <- write
		if err := <-drop.done; err != nil {
			t.Fatal(err)
		}
		if err := <-write.done; err != nil {
			t.Fatal(err)
		}
		if err := s.Read(vk, l, partOf([]byte("e"), s.Partitions()), []byte("e"), []int{1}, now, out); err != nil {
			t.Fatal(err)
		}
		if out[0].Value.I != 1 {
			t.Fatalf("round %d: count after drop and one write = %d, want 1", i, out[0].Value.I)
		}
		if err := s.DropView(context.Background(), vk); err != nil {
			t.Fatal(err)
		}
	}
}

// TestWriterCacheBoundedInBytes: with a byte bound far below what the
// entities' decoded states take, every commit leaves each writer's cache
// under its share of the bound, and evicted states reload from Pebble
// exactly (the values still match the reference).
func TestWriterCacheBoundedInBytes(t *testing.T) {
	now := int64(1_790_000_000_000)
	l := testLayout(t)
	vk := ViewKey{ID: 3, Version: 1}
	keys, events := stream(12000, 400, now)
	ws := writesOf(l, vk, keys, events)
	const shards, bound = 2, 256 << 10
	s := openStore(t, t.TempDir(), Options{Partitions: shards, Now: newClock(now).Now, GCInterval: -1, CachedStateBytes: bound})
	defer s.Close()
	var peak int64
	for i := 0; i < len(ws); i += 200 {
		if _, err := s.Write(context.Background(), placed(ws[i:min(i+200, len(ws))], s.Partitions())); err != nil {
			t.Fatal(err)
		}
		for _, st := range s.Stats() {
			if st.CachedStateBytes > bound/shards {
				t.Fatalf("after a commit a writer caches %d bytes, over its share %d", st.CachedStateBytes, bound/shards)
			}
			peak = max(peak, st.CachedStateBytes)
		}
	}
	if peak < bound/shards/2 {
		t.Fatalf("the cache peaked at %d bytes: the bound was never approached, the test proves nothing", peak)
	}
	checkAgainstReference(t, s, l, vk, keys, events, now)

	// The same stream with room for everything ends with more cached.
	all := openStore(t, t.TempDir(), Options{Partitions: shards, Now: newClock(now).Now, GCInterval: -1})
	defer all.Close()
	if _, err := all.Write(context.Background(), placed(ws, all.Partitions())); err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, st := range all.Stats() {
		total += st.CachedStateBytes
	}
	if total <= bound {
		t.Fatalf("unbounded, the states take %d bytes, not more than the bound %d: the test proves nothing", total, bound)
	}
}

// partOf is an entity's partition among n, its encoded key taken as its
// record key (true of string keys, which the tests use).
func partOf(entity []byte, n int) int { return partition.Of(entity, n) }

// placed returns a copy of ws with every Partition set for a store of n
// partitions.
func placed(ws []Write, n int) []Write {
	out := make([]Write, len(ws))
	for i := range ws {
		out[i] = ws[i]
		out[i].Partition = partOf(ws[i].Entity, n)
	}
	return out
}
