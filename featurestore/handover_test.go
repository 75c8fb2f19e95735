package featurestore

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/featured-dev/featured/aggregate/aggregatetest"
)

// TestPartitionHandover checkpoints one partition mid-stream, loads it
// into another store's empty partition and resumes the stream from the
// restored offset there: the result equals the reference, nothing twice.
func TestPartitionHandover(t *testing.T) {
	ctx := context.Background()
	now := int64(1_790_000_000_000)
	l := testLayout(t)
	vk := ViewKey{ID: 3, Version: 1}
	const parts, p, topic = 3, 1, "tx"
	allKeys, allEvents := stream(3000, 60, now)
	// Only partition p's entities: Kafka partition p of a co-partitioned
	// topic.
	var keys [][]byte
	var events [][]aggregatetest.Event
	for i, k := range allKeys {
		if partOf(k, parts) == p {
			keys, events = append(keys, k), append(events, allEvents[i])
		}
	}
	ws := placed(writesOf(l, vk, keys, events), parts)
	for i := range ws {
		ws[i].Position = &Position{Topic: topic, Partition: p, Offset: int64(i)}
	}
	enqueue := func(s *Store, from, to int) {
		for i := from; i < to; i += 100 {
			j := min(i+100, to)
			if err := s.Enqueue(ctx, ws[i:j], []Position{{Topic: topic, Partition: p, Offset: int64(j)}}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	opts := Options{Partitions: parts, Now: newClock(now).Now, GCInterval: -1}
	a := openStore(t, t.TempDir(), opts)
	defer a.Close()
	cut := len(ws) / 2
	enqueue(a, 0, cut)
	ck := filepath.Join(t.TempDir(), "ck")
	info, err := a.CheckpointPartition(ctx, p, ck)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Offsets[topic][p]; got != int64(cut) {
		t.Fatalf("checkpoint offset %d, want %d", got, cut)
	}
	enqueue(a, cut, len(ws)) // after the checkpoint: not in it

	b := openStore(t, t.TempDir(), opts)
	defer b.Close()
	if _, err := b.LoadPartition(ctx, p+1, ck); err == nil {
		t.Fatal("loading partition 1's checkpoint as partition 2 succeeded")
	}
	st, err := b.LoadPartition(ctx, p, ck)
	if err != nil {
		t.Fatal(err)
	}
	if st.Keys == 0 || st.Offsets[topic][p] != int64(cut) {
		t.Fatalf("load stats %+v, want keys and offset %d", st, cut)
	}
	// Every partition has the offset, so the consumer resumes at cut, not
	// at the topic's start.
	if got, ok := b.Offsets(topic)[p]; !ok || got != int64(cut) {
		t.Fatalf("offsets after load: %v, want %d", b.Offsets(topic), cut)
	}
	// A replay from before cut is skipped where applied: exactly once.
	enqueue(b, cut-100, len(ws))
	checkAgainstReference(t, b, l, vk, keys, events, now)
	if _, err := b.LoadPartition(ctx, p, ck); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("second load: %v, want ErrNotEmpty", err)
	}
	// The other partitions got p's offset, but hold nothing of their own:
	// still empty, each may be loaded.
	for q := range parts {
		empty, err := b.PartitionEmpty(q)
		if err != nil || empty != (q != p) {
			t.Fatalf("PartitionEmpty(%d) = %v, %v; want %v", q, empty, err, q != p)
		}
	}
	// The load survives a restart.
	dir := b.dir
	b.Close()
	b = openStore(t, dir, opts)
	checkAgainstReference(t, b, l, vk, keys, events, now)
}

// TestHalfLoadWiped: a partition whose load was cut short is emptied at
// the next open, never served with state but no offsets.
func TestHalfLoadWiped(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Partitions: 2, GCInterval: -1}
	s := openStore(t, dir, opts)
	sh := s.shards[1]
	if err := sh.db.Set(metaLoadKey, nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := sh.db.Set(appendStateKey(nil, ViewKey{ID: 1, Version: 1}, []byte("x")), []byte("junk"), nil); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openStore(t, dir, opts)
	defer s.Close()
	if err := s.shards[1].checkEmpty(); err != nil {
		t.Fatalf("after open: %v, want the half load wiped", err)
	}
}
