package featurestore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/cockroachdb/pebble/v2"
)

// This file holds the shard's side of exactly-once pushes: the batch
// markers a shard commits with each part of a push that has a batch ID, and
// the check that skips a part whose marker the shard already holds. The
// store's side (splitting, journaling, retrying) is in batch.go and
// journal.go; the key layout in docs/format.md.

// markerBucketMillis is the time bucket of a marker key: markers are keyed
// by the hour they were committed in, so that expired ones are reclaimed by
// one DeleteRange instead of a scan. It is part of the on-disk format.
const markerBucketMillis = 3600_000

// MaxBatchIDBytes is the longest batch ID.
const MaxBatchIDBytes = 128

// markerKey is 'b' | commit hour (u32 BE, hours since the Unix epoch) | id.
func markerKey(hour uint32, id string) []byte {
	k := make([]byte, 0, 5+len(id))
	k = append(k, prefixMarker)
	k = binary.BigEndian.AppendUint32(k, hour)
	return append(k, id...)
}

// markerHour is the bucket of a commit time; times before the epoch (test
// clocks) fall into bucket 0.
func markerHour(millis int64) uint32 {
	if millis < 0 {
		return 0
	}
	return uint32(millis / markerBucketMillis)
}

// marker is what a shard remembers of a push it applied part of.
type marker struct {
	commitMillis int64 // the shard's clock when it took the part
	accepted     int   // the push's accepted count, every shard's part included
	// byIndex marks a push read from a push topic (EnqueueFencedBatch):
	// lastIndex is the highest event index of the push the partition has
	// delivered to the shard.
	byIndex   bool
	lastIndex int
}

// Marker versions: 1 is a direct push's, 2 a push topic's, which ends with
// its last event index.
const (
	markerVersion        = 1
	markerVersionByIndex = 2
)

func appendMarker(dst []byte, m marker) []byte {
	v := byte(markerVersion)
	if m.byIndex {
		v = markerVersionByIndex
	}
	dst = append(dst, v)
	dst = binary.BigEndian.AppendUint64(dst, uint64(m.commitMillis))
	dst = binary.AppendUvarint(dst, uint64(m.accepted))
	if m.byIndex {
		dst = binary.AppendUvarint(dst, uint64(m.lastIndex))
	}
	return dst
}

func decodeMarker(v []byte) (marker, error) {
	if len(v) < 10 || (v[0] != markerVersion && v[0] != markerVersionByIndex) {
		return marker{}, fmt.Errorf("corrupt batch marker %x", v)
	}
	acc, n := binary.Uvarint(v[9:])
	if n <= 0 {
		return marker{}, fmt.Errorf("corrupt batch marker %x", v)
	}
	m := marker{commitMillis: int64(binary.BigEndian.Uint64(v[1:9])), accepted: int(acc)}
	rest := v[9+n:]
	if v[0] == markerVersionByIndex {
		last, n := binary.Uvarint(rest)
		if n <= 0 || last > math.MaxInt32 {
			return marker{}, fmt.Errorf("corrupt batch marker %x", v)
		}
		m.byIndex, m.lastIndex, rest = true, int(last), rest[n:]
	}
	if len(rest) != 0 {
		return marker{}, fmt.Errorf("corrupt batch marker %x", v)
	}
	return m, nil
}

// batchMark makes a write request one shard's part of a push with a batch
// ID: the shard applies the writes only if it holds no marker of id, and
// then commits a marker in the same Pebble batch as their state.
type batchMark struct {
	id       string
	accepted int
	// byIndex: the writes are a push topic's records of the push
	// (EnqueueFencedBatch); index[i] is writes[i]'s event index and last
	// the highest event index of the records handed over with them. The
	// shard takes the writes whose index is above its marker's, in order,
	// and moves the marker to last (admitIndexed).
	byIndex bool
	index   []int
	last    int
	// lowMillis is the oldest commit time an earlier marker of id can have;
	// the shard looks in the buckets from it to the clock's next hour.
	lowMillis int64
	// gcBelowMillis: markers committed in buckets wholly before it may be
	// deleted (the dedupe window and the journal's oldest entry allow it).
	gcBelowMillis int64

	// Written by the shard's writer before it answers the request.
	skipped bool   // the shard held a marker: the writes were not applied
	prior   marker // that marker, when skipped
}

// admitMarked decides whether request r, which carries a batchMark, is
// applied. It returns true when r's writes are to be applied: the marker is
// then in s.batch. Otherwise r was handled here: skipped (its waiter
// answered with the commit that makes the earlier marker durable, if that
// one is still pending) or failed.
func (s *shard) admitMarked(r *request) bool {
	m := r.mark
	prior, found, err := s.findMarker(m)
	if err != nil {
		if r.done != nil {
			r.done <- fmt.Errorf("shard %d: %w", s.id, err)
		}
		if f := r.fence; f != nil {
			// A consumer's request, dropped: its partition rewinds, as
			// after a failed commit, and reads it again.
			s.opts.Logger.Error("batch marker unreadable; rewinding the partition", "shard", s.id, "topic", f.tp.topic, "partition", f.tp.partition, "err", err)
			s.fences.move([]topicPartition{f.tp})
		}
		return false
	}
	if m.byIndex {
		s.admitIndexed(r, prior, found)
		return true
	}
	if found {
		m.skipped, m.prior = true, prior
		if r.sync {
			s.syncReq = true
		}
		if r.done != nil {
			s.waiters = append(s.waiters, r.done)
		}
		return false
	}
	s.setMarker(m, marker{commitMillis: s.opts.Now().UnixMilli(), accepted: m.accepted})
	return true
}

// setMarker puts mk in the batch as m.id's marker, in the bucket of its
// commit time, first reclaiming the buckets m's horizon has passed.
func (s *shard) setMarker(m *batchMark, mk marker) {
	if h := markerHour(m.gcBelowMillis); h > s.markersGCHour {
		// Every marker of a bucket before h is older than the dedupe window
		// and than any journaled push: the retries it guards are over.
		_ = s.batch.DeleteRange([]byte{prefixMarker}, markerKey(h, ""), nil)
		s.markersGCHour = h
	}
	s.valBuf = appendMarker(s.valBuf[:0], mk)
	_ = s.batch.Set(markerKey(markerHour(mk.commitMillis), m.id), s.valBuf, nil)
	if s.pendingMarks == nil {
		s.pendingMarks = make(map[string]marker)
	}
	s.pendingMarks[m.id] = mk
}

// admitIndexed keeps, of a push topic's records of one push, the writes
// whose event index is above every index the partition delivered before
// (prior's, then the request's earlier writes'), and moves the marker to
// the request's last index. A push's records reach a partition in index
// order, and a produce that fails leaves a prefix of them there (the
// producer fails a partition's later buffered records with the first), so
// an index at or below the marker's is a retry's copy of a record the
// shard has taken. The marker keeps its first commit time, hence its key,
// so there is one per (partition, batch ID).
func (s *shard) admitIndexed(r *request, prior marker, found bool) {
	m := r.mark
	cur, commit := -1, s.opts.Now().UnixMilli()
	if found {
		cur, commit = prior.lastIndex, prior.commitMillis
	}
	var kept []Write // nil until a write is dropped: r.writes is the caller's
	for i := range r.writes {
		if m.index[i] <= cur {
			if kept == nil {
				kept = append(make([]Write, 0, len(r.writes)), r.writes[:i]...)
			}
			continue
		}
		cur = m.index[i]
		if kept != nil {
			kept = append(kept, r.writes[i])
		}
	}
	if kept != nil {
		s.mu.Lock()
		s.mu.stats.WritesSkipped += uint64(len(r.writes) - len(kept))
		s.mu.Unlock()
		r.writes = kept
	}
	last := max(cur, m.last)
	if !found || last > prior.lastIndex {
		s.setMarker(m, marker{commitMillis: commit, byIndex: true, lastIndex: last})
	}
}

// findMarker looks for a marker of m.id: first among the ones in the
// uncommitted batch (a concurrent push with the same ID), then in Pebble,
// one point Get per bucket from m.lowMillis to the hour after the clock's
// (a clock that stepped back).
func (s *shard) findMarker(m *batchMark) (marker, bool, error) {
	if mk, ok := s.pendingMarks[m.id]; ok {
		return mk, true, nil
	}
	last := markerHour(s.opts.Now().UnixMilli()) + 1
	for h := markerHour(m.lowMillis); h <= last; h++ {
		v, closer, err := s.db.Get(markerKey(h, m.id))
		if errors.Is(err, pebble.ErrNotFound) {
			continue
		}
		if err != nil {
			return marker{}, false, fmt.Errorf("read batch marker: %w", err)
		}
		mk, err := decodeMarker(v)
		closer.Close()
		if err != nil {
			return marker{}, false, err
		}
		return mk, true, nil
	}
	return marker{}, false, nil
}
