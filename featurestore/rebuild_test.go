package featurestore

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/featured-dev/featured/aggregate"
)

// TestRebuildRecovery: Open finishes a rebuild's swap whose commit point
// (the swap record) was committed before a crash, and drops the staging
// keys of one that never reached it. With a swap record, the staged states
// become the live ones (entities 5..14), live states with no staged one
// (0..4) go, and the staging keys and the record are gone; without one,
// the live states stay as they were and the staging keys go.
func TestRebuildRecovery(t *testing.T) {
	for _, committed := range []bool{true, false} {
		name := "no swap record"
		if committed {
			name = "swap record"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			clock := newClock(100 * day)
			l := testLayout(t)
			vk := ViewKey{ID: 7, Version: 2}
			s := openStore(t, dir, Options{Partitions: 1, Now: clock.Now, GCInterval: -1})
			var ws []Write
			for i := 0; i < 10; i++ {
				ws = append(ws, Write{Entity: entityKey(i), EventMillis: 100*day - 1000, Fields: []aggregate.Value{{Kind: aggregate.KindFloat64, F: 1}},
					Targets: []Target{{Key: vk, Layout: l}}})
			}
			if _, err := s.Write(context.Background(), placed(ws, s.Partitions())); err != nil {
				t.Fatal(err)
			}
			// What a crashed rebuild left: staged states, and with
			// committed its swap record.
			db := s.shards[0].db
			staged := map[string][]byte{}
			b := db.NewBatch()
			for i := 5; i < 15; i++ {
				st := l.NewState()
				l.Fold(st, 100*day-int64(i), []aggregate.Value{{Kind: aggregate.KindFloat64, F: float64(i)}})
				v := l.AppendEncode(nil, st)
				staged[string(entityKey(i))] = v
				if err := b.Set(appendStagingKey(nil, vk, entityKey(i)), v, nil); err != nil {
					t.Fatal(err)
				}
			}
			if committed {
				if err := b.Set(swapKey(vk), nil, nil); err != nil {
					t.Fatal(err)
				}
			}
			if err := b.Commit(pebble.Sync); err != nil {
				t.Fatal(err)
			}
			before := map[string][]byte{}
			for i := 0; i < 15; i++ {
				if v, closer, err := db.Get(appendStateKey(nil, vk, entityKey(i))); err == nil {
					before[string(entityKey(i))] = append([]byte(nil), v...)
					closer.Close()
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}

			s = openStore(t, dir, Options{Partitions: 1, Now: clock.Now, GCInterval: -1})
			defer s.Close()
			db = s.shards[0].db
			want := before
			if committed {
				want = staged
			}
			for i := 0; i < 15; i++ {
				k := string(entityKey(i))
				v, closer, err := db.Get(appendStateKey(nil, vk, entityKey(i)))
				switch {
				case errors.Is(err, pebble.ErrNotFound):
					if want[k] != nil {
						t.Errorf("%s: no live state, want %x", k, want[k])
					}
				case err != nil:
					t.Fatal(err)
				default:
					if !bytes.Equal(v, want[k]) {
						t.Errorf("%s: live state %x, want %x", k, v, want[k])
					}
					closer.Close()
				}
			}
			for _, bound := range [][2][]byte{{[]byte{prefixStaging}, []byte{prefixStaging + 1}}, {swapKeyPrefix, append(append([]byte(nil), swapKeyPrefix...), 0xff)}} {
				it, err := db.NewIter(&pebble.IterOptions{LowerBound: bound[0], UpperBound: bound[1]})
				if err != nil {
					t.Fatal(err)
				}
				if it.First() {
					t.Errorf("key %q left after Open", it.Key())
				}
				it.Close()
			}
		})
	}
}
