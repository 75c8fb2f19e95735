package featurestore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/aggregate/aggregatetest"
)

// failingLog is an EventLog whose Commit fails for the shards in fail: the
// shard's whole batch fails, as a full disk or an I/O error would fail it.
type failingLog struct {
	mu   sync.Mutex
	fail map[int]bool
}

var _ EventLog = (*failingLog)(nil)

func (f *failingLog) Recover(int, []byte) error     { return nil }
func (f *failingLog) Append(int, *Write, []ViewKey) {}
func (f *failingLog) Committed(int, int64, error)   {}
func (f *failingLog) set(shard int, fail bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail == nil {
		f.fail = map[int]bool{}
	}
	f.fail[shard] = fail
}
func (f *failingLog) Commit(shard int, _ bool, _ int64) ([]byte, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail[shard] {
		return nil, false, fmt.Errorf("write event log of shard %d: no space left on device", shard)
	}
	return []byte("pos"), false, nil
}

// batchFixture is a push of 600 events over 30 entities, which the store
// spreads over all its shards.
type batchFixture struct {
	now    int64
	l      *aggregate.Layout
	vk     ViewKey
	keys   [][]byte
	events [][]aggregatetest.Event
	ws     []Write
}

func newBatchFixture(t *testing.T) *batchFixture {
	f := &batchFixture{now: 1_790_000_000_000, l: testLayout(t), vk: ViewKey{ID: 3, Version: 1}}
	f.keys, f.events = stream(600, 30, f.now)
	f.ws = writesOf(f.l, f.vk, f.keys, f.events)
	return f
}

func (f *batchFixture) layouts(vk ViewKey) *aggregate.Layout {
	if vk == f.vk {
		return f.l
	}
	return nil
}

// entityOn returns an entity of the fixture that lives on shard i of n.
func (f *batchFixture) entityOn(t *testing.T, i, n int) []byte {
	t.Helper()
	for _, k := range f.keys {
		if partOf(k, n) == i {
			return k
		}
	}
	t.Fatalf("no entity on shard %d", i)
	return nil
}

func (f *batchFixture) found(t *testing.T, s *Store, entity []byte) bool {
	t.Helper()
	out := make([]aggregate.Result, 1)
	if err := s.Read(f.vk, f.l, partOf(entity, s.Partitions()), entity, []int{1}, f.now, out); err != nil {
		t.Fatal(err)
	}
	return out[0].Status != aggregate.StatusNotFound
}

// waitFor polls cond every 10ms for at most 20s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestWriteBatchRetryAfterSuccess: a push retried with its batch ID after it
// succeeded applies nothing and answers as the first did, flagged duplicate.
func TestWriteBatchRetryAfterSuccess(t *testing.T) {
	for _, atomic := range []bool{false, true} {
		t.Run(fmt.Sprintf("atomic=%v", atomic), func(t *testing.T) {
			f := newBatchFixture(t)
			s := openStore(t, t.TempDir(), Options{Partitions: 3, Now: newClock(f.now).Now, GCInterval: -1})
			defer s.Close()
			ctx := context.Background()
			res, err := s.WriteBatch(ctx, Batch{ID: "b-1", Atomic: atomic, Writes: placed(f.ws, s.Partitions())})
			if err != nil || res.Duplicate || res.Accepted != len(f.ws) || res.ID != "b-1" {
				t.Fatalf("first push: %+v, %v", res, err)
			}
			// The retry's validation may accept fewer events (a clock that
			// moved on): the answer is still the first push's count.
			res, err = s.WriteBatch(ctx, Batch{ID: "b-1", Atomic: atomic, Writes: placed(f.ws[:len(f.ws)-5], s.Partitions())})
			if err != nil || !res.Duplicate || res.Accepted != len(f.ws) {
				t.Fatalf("retry: %+v, %v; want a duplicate of %d", res, err, len(f.ws))
			}
			checkAgainstReference(t, s, f.l, f.vk, f.keys, f.events, f.now)
			if n := s.Pending(); n != 0 {
				t.Fatalf("%d journaled pushes pending", n)
			}
		})
	}
}

// TestWriteBatchShardCommitFails: one shard's commit fails. An atomic push
// answers ErrJournaled and the store applies the failed part once the shard
// commits again; a retry with the batch ID then is a duplicate. A
// non-atomic push answers the error, and its retry applies only the part
// that failed. Either way every event counts once.
func TestWriteBatchShardCommitFails(t *testing.T) {
	for _, atomic := range []bool{false, true} {
		t.Run(fmt.Sprintf("atomic=%v", atomic), func(t *testing.T) {
			f := newBatchFixture(t)
			log := &failingLog{}
			s := openStore(t, t.TempDir(), Options{Partitions: 3, Now: newClock(f.now).Now, GCInterval: -1, EventLog: log})
			defer s.Close()
			ctx := context.Background()
			log.set(1, true)
			_, err := s.WriteBatch(ctx, Batch{ID: "b-2", Atomic: atomic, Writes: placed(f.ws, s.Partitions())})
			if err == nil {
				t.Fatal("push with a failing shard succeeded")
			}
			if got := errors.Is(err, ErrJournaled); got != atomic {
				t.Fatalf("errors.Is(%v, ErrJournaled) = %v, want %v", err, got, atomic)
			}
			// The other shards' parts are applied and visible: atomic is
			// the durable outcome, not isolation.
			if !f.found(t, s, f.entityOn(t, 0, 3)) || f.found(t, s, f.entityOn(t, 1, 3)) {
				t.Fatal("want shard 0's part applied and shard 1's not")
			}
			log.set(1, false)
			if atomic {
				waitFor(t, "the journaled push to be applied", func() bool { return s.Pending() == 0 })
				checkAgainstReference(t, s, f.l, f.vk, f.keys, f.events, f.now)
			}
			res, err := s.WriteBatch(ctx, Batch{ID: "b-2", Atomic: atomic, Writes: placed(f.ws, s.Partitions())})
			if err != nil || res.Accepted != len(f.ws) || res.Duplicate != atomic {
				t.Fatalf("retry: %+v, %v; want %d accepted, duplicate %v", res, err, len(f.ws), atomic)
			}
			checkAgainstReference(t, s, f.l, f.vk, f.keys, f.events, f.now)
		})
	}
}

// TestWriteBatchCrashReplay: a process dies after an atomic push was
// journaled and one shard applied its part. Open applies the rest, once.
func TestWriteBatchCrashReplay(t *testing.T) {
	f := newBatchFixture(t)
	dir := t.TempDir()
	o := Options{Partitions: 3, Now: newClock(f.now).Now, GCInterval: -1, Layouts: f.layouts}
	s := openStore(t, dir, o)
	first := -1
	s.testPart = func(i int) bool {
		if first < 0 {
			first = i
		}
		return i == first
	}
	if _, err := s.WriteBatch(context.Background(), Batch{Atomic: true, Writes: placed(f.ws, s.Partitions())}); !errors.Is(err, errTestCrash) {
		t.Fatalf("push: %v, want the test crash", err)
	}
	if !f.found(t, s, f.entityOn(t, first, 3)) || f.found(t, s, f.entityOn(t, (first+1)%3, 3)) {
		t.Fatal("want exactly the first shard's part applied before the crash")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openStore(t, dir, o)
	if n := s.Pending(); n != 0 {
		t.Fatalf("%d journaled pushes pending after Open", n)
	}
	checkAgainstReference(t, s, f.l, f.vk, f.keys, f.events, f.now)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// And again: the journal entry is gone, nothing is applied twice.
	s = openStore(t, dir, o)
	defer s.Close()
	checkAgainstReference(t, s, f.l, f.vk, f.keys, f.events, f.now)
}

// TestJournalNeedsLayouts: a journal with a push to apply cannot be opened
// without a way to resolve its views.
func TestJournalNeedsLayouts(t *testing.T) {
	f := newBatchFixture(t)
	dir := t.TempDir()
	s := openStore(t, dir, Options{Partitions: 2, Now: newClock(f.now).Now, GCInterval: -1})
	s.testPart = func(int) bool { return false }
	if _, err := s.WriteBatch(context.Background(), Batch{ID: "x", Atomic: true, Writes: placed(f.ws, s.Partitions())}); !errors.Is(err, errTestCrash) {
		t.Fatalf("push: %v", err)
	}
	s.Close()
	if s, err := Open(dir, Options{Partitions: 2, GCInterval: -1}); err == nil {
		s.Close()
		t.Fatal("Open without Layouts succeeded over a journal with a push")
	}
	s = openStore(t, dir, Options{Partitions: 2, Now: newClock(f.now).Now, GCInterval: -1, Layouts: f.layouts})
	defer s.Close()
	checkAgainstReference(t, s, f.l, f.vk, f.keys, f.events, f.now)
}

// TestBatchMarkersExpire: a marker is remembered for the dedupe window,
// then reclaimed, and the ID may be used again.
func TestBatchMarkersExpire(t *testing.T) {
	f := newBatchFixture(t)
	clock := newClock(f.now)
	s := openStore(t, t.TempDir(), Options{Partitions: 1, Now: clock.Now, GCInterval: -1, DedupeWindow: 2 * time.Hour})
	defer s.Close()
	ctx := context.Background()
	w := f.ws[:1]
	push := func(id string) BatchResult {
		t.Helper()
		res, err := s.WriteBatch(ctx, Batch{ID: id, Writes: placed(w, s.Partitions())})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	push("old")
	clock.Set(f.now + 90*60_000)
	if !push("old").Duplicate {
		t.Fatal("retry within the window applied again")
	}
	clock.Set(f.now + 4*hour)
	push("new") // its commit reclaims the expired buckets
	if n := countMarkers(t, s); n != 1 {
		t.Fatalf("%d markers after expiry, want 1 (the new one)", n)
	}
	if push("old").Duplicate {
		t.Fatal("an ID past the window is still remembered")
	}
}

func countMarkers(t *testing.T, s *Store) int {
	t.Helper()
	n := 0
	for _, sh := range s.shards {
		it, err := sh.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixMarker}, UpperBound: []byte{prefixMarker + 1}})
		if err != nil {
			t.Fatal(err)
		}
		for it.First(); it.Valid(); it.Next() {
			n++
		}
		if err := it.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// TestConcurrentDuplicates: pushes with one ID racing each other apply it
// once, whichever shard batch each lands in.
func TestConcurrentDuplicates(t *testing.T) {
	f := newBatchFixture(t)
	s := openStore(t, t.TempDir(), Options{Partitions: 2, Now: newClock(f.now).Now, GCInterval: -1})
	defer s.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Go(func() {
			_, err := s.WriteBatch(context.Background(), Batch{ID: "same", Atomic: i%2 == 0, Writes: placed(f.ws, s.Partitions())})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	checkAgainstReference(t, s, f.l, f.vk, f.keys, f.events, f.now)
}

// TestJournalEntryRoundTrip runs for a one-part key and a compound key's
// part kinds (the key bytes are opaque to the journal).
func TestJournalEntryRoundTrip(t *testing.T) {
	for _, kinds := range [][]aggregate.Kind{{aggregate.KindString}, {aggregate.KindInt64, aggregate.KindString}} {
		t.Run(fmt.Sprint(kinds), func(t *testing.T) { testJournalEntryRoundTrip(t, kinds) })
	}
}

func testJournalEntryRoundTrip(t *testing.T, kinds []aggregate.Kind) {
	f := newBatchFixture(t)
	sc := &Schema{Source: "tx", KeyKinds: kinds, Names: []string{"amount", "merchant", "items"},
		Kinds: []aggregate.Kind{aggregate.KindFloat64, aggregate.KindString, aggregate.KindInt64}}
	ws := append([]Write(nil), f.ws[:20]...)
	for i := range ws {
		ws[i].Schema = sc
		ws[i].IngestMillis = f.now + int64(i)
	}
	ws[3].Fields = []aggregate.Value{{}, {Kind: aggregate.KindBool, I: 1}, {Kind: aggregate.KindInt64, I: -7}}
	e := &journalEntry{id: "rt", createdMillis: f.now, accepted: len(ws), writes: ws}
	v, err := appendEntry(nil, e)
	if err != nil {
		t.Fatal(err)
	}
	got, dropped, err := decodeEntry("rt", v, f.layouts)
	if err != nil || dropped != 0 {
		t.Fatalf("decode: %v, %d dropped", err, dropped)
	}
	if got.createdMillis != e.createdMillis || got.accepted != e.accepted || len(got.writes) != len(ws) {
		t.Fatalf("header: got %d %d %d", got.createdMillis, got.accepted, len(got.writes))
	}
	for i := range ws {
		g, w := got.writes[i], ws[i]
		if string(g.Entity) != string(w.Entity) || g.EventMillis != w.EventMillis || g.IngestMillis != w.IngestMillis ||
			fmt.Sprint(g.Fields) != fmt.Sprint(w.Fields) || len(g.Targets) != 1 || g.Targets[0] != w.Targets[0] ||
			fmt.Sprint(*g.Schema) != fmt.Sprint(*sc) {
			t.Fatalf("write %d: got %+v, want %+v", i, g, w)
		}
	}
	// A view version gone since: its target is dropped, the write kept.
	_, dropped, err = decodeEntry("rt", v, func(ViewKey) *aggregate.Layout { return nil })
	if err != nil || dropped != len(ws) {
		t.Fatalf("without layouts: %v, %d dropped, want %d", err, dropped, len(ws))
	}
	// Every truncation is reported as corrupt, never a panic or a short entry.
	for n := 0; n < len(v); n++ {
		if _, _, err := decodeEntry("rt", v[:n], f.layouts); !errors.Is(err, errCorruptEntry) {
			t.Fatalf("truncated to %d of %d bytes: %v, want a corrupt entry", n, len(v), err)
		}
	}
}

// TestWriteBatchAfterClose: a push racing Close fails with ErrClosed
// instead of writing to a closed journal.
func TestWriteBatchAfterClose(t *testing.T) {
	f := newBatchFixture(t)
	s := openStore(t, t.TempDir(), Options{Partitions: 2, Now: newClock(f.now).Now, GCInterval: -1})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, atomic := range []bool{false, true} {
		if _, err := s.WriteBatch(context.Background(), Batch{ID: "late", Atomic: atomic, Writes: placed(f.ws, s.Partitions())}); !errors.Is(err, ErrClosed) {
			t.Fatalf("atomic %v: %v, want ErrClosed", atomic, err)
		}
	}
}

func TestCheckBatchID(t *testing.T) {
	f := func(id string, ok bool) {
		t.Helper()
		if err := CheckBatchID(id); (err == nil) != ok {
			t.Fatalf("CheckBatchID(%q) = %v, want ok %v", id, err, ok)
		}
	}
	f("a", true)
	f("order-2026-11-25/17", true)
	f(string(make([]byte, 128)), false) // NULs
	f(string(bytesOf('x', 128)), true)
	f(string(bytesOf('x', 129)), false)
	f("", false)
	f("a\x00b", false)
	f("\xff", false)
}

func bytesOf(c byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = c
	}
	return b
}

// TestEnqueueFencedBatch: a push read from a push topic, handed over in
// two runs, is applied in full; a client's retry (the same events at later
// offsets) is skipped on every shard yet moves the partition's offset;
// after a restart the marker still skips it; a retry of a push whose first
// produce delivered only a prefix applies just the rest; and another
// partition's marker of the same batch ID does not skip.
func TestEnqueueFencedBatch(t *testing.T) {
	f := newBatchFixture(t)
	dir := t.TempDir()
	opts := Options{Partitions: 3, Now: newClock(f.now).Now, GCInterval: -1}
	s := openStore(t, dir, opts)
	ctx := context.Background()
	const topic = "tx/g.push.tx"
	// at is the push's events from..to as a partition delivers them from
	// offset off, with their event indexes.
	at := func(partition int32, off int64, from, to int) ([]Write, []int) {
		ws := make([]Write, 0, to-from)
		index := make([]int, 0, to-from)
		for i := from; i < to; i++ {
			w := f.ws[i]
			w.Partition = partOf(w.Entity, opts.Partitions)
			w.Position = &Position{Topic: topic, Partition: partition, Offset: off + int64(i-from)}
			ws = append(ws, w)
			index = append(index, i)
		}
		return ws, index
	}
	enqueue := func(s *Store, partition int32, off int64, id string, from, to int) {
		t.Helper()
		ws, index := at(partition, off, from, to)
		next := Position{Topic: topic, Partition: partition, Offset: off + int64(to-from)}
		if err := s.EnqueueFencedBatch(ctx, ws, next, s.Fence(topic, partition), PushRun{BatchID: id, Index: index, Last: to - 1}); err != nil {
			t.Fatal(err)
		}
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	n := len(f.ws)
	enqueue(s, 0, 0, "b-1", 0, n/2)
	enqueue(s, 0, int64(n/2), "b-1", n/2, n)
	enqueue(s, 0, int64(n), "b-1", 0, n) // the retry
	checkAgainstReference(t, s, f.l, f.vk, f.keys, f.events, f.now)
	if got := s.Offsets(topic)[0]; got != int64(2*n) {
		t.Fatalf("offset after the skipped retry: %d, want %d", got, 2*n)
	}
	s.Close()

	s = openStore(t, dir, opts)
	defer s.Close()
	enqueue(s, 0, int64(2*n), "b-1", 0, n)
	checkAgainstReference(t, s, f.l, f.vk, f.keys, f.events, f.now)

	// Partition 1: b-1's first produce delivered the first 100 events,
	// its retry delivers all. Every event counts once per partition:
	// twice in all.
	enqueue(s, 1, 0, "b-1", 0, 100)
	enqueue(s, 1, 100, "b-1", 0, n)
	twice := make([][]aggregatetest.Event, len(f.events))
	for i, evs := range f.events {
		twice[i] = append(append([]aggregatetest.Event(nil), evs...), evs...)
	}
	checkAgainstReference(t, s, f.l, f.vk, f.keys, twice, f.now)

	ws, index := at(1, 0, 0, 1)
	if err := s.EnqueueFencedBatch(ctx, ws, Position{Topic: topic, Partition: 1, Offset: 1}, s.Fence(topic, 1), PushRun{BatchID: "b-1", Index: index[:0]}); err == nil {
		t.Fatal("a run with fewer indexes than writes was taken")
	}
}

func TestMarkerEncoding(t *testing.T) {
	for _, m := range []marker{{commitMillis: 5, accepted: 3}, {commitMillis: 1 << 40, byIndex: true}, {commitMillis: 7, byIndex: true, lastIndex: 9999}} {
		got, err := decodeMarker(appendMarker(nil, m))
		if err != nil || got != m {
			t.Errorf("%+v: decoded %+v, %v", m, got, err)
		}
	}
	v2 := appendMarker(nil, marker{commitMillis: 5, byIndex: true, lastIndex: 9})
	for _, bad := range [][]byte{v2[:len(v2)-1], append(v2, 0), append(appendMarker(nil, marker{commitMillis: 5}), 9)} {
		if _, err := decodeMarker(bad); err == nil {
			t.Errorf("%x decoded", bad)
		}
	}
}
