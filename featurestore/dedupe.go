package featurestore

import (
	"encoding/binary"
	"errors"
	"fmt"

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
	// attempt names the produce attempt of a push read from a push topic
	// whose records the shard applied (EnqueueFencedBatch); 0 for a push
	// applied directly.
	attempt uint64
}

// Marker versions: 1 has no attempt (a direct push), 2 ends with one.
const (
	markerVersion        = 1
	markerVersionAttempt = 2
)

func appendMarker(dst []byte, m marker) []byte {
	v := byte(markerVersion)
	if m.attempt != 0 {
		v = markerVersionAttempt
	}
	dst = append(dst, v)
	dst = binary.BigEndian.AppendUint64(dst, uint64(m.commitMillis))
	dst = binary.AppendUvarint(dst, uint64(m.accepted))
	if m.attempt != 0 {
		dst = binary.AppendUvarint(dst, m.attempt)
	}
	return dst
}

func decodeMarker(v []byte) (marker, error) {
	if len(v) < 10 || (v[0] != markerVersion && v[0] != markerVersionAttempt) {
		return marker{}, fmt.Errorf("corrupt batch marker %x", v)
	}
	acc, n := binary.Uvarint(v[9:])
	if n <= 0 {
		return marker{}, fmt.Errorf("corrupt batch marker %x", v)
	}
	m := marker{commitMillis: int64(binary.BigEndian.Uint64(v[1:9])), accepted: int(acc)}
	rest := v[9+n:]
	if v[0] == markerVersionAttempt {
		att, n := binary.Uvarint(rest)
		if n <= 0 || att == 0 {
			return marker{}, fmt.Errorf("corrupt batch marker %x", v)
		}
		m.attempt, rest = att, rest[n:]
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
	// attempt, when not 0, names the produce attempt the writes come from
	// (a push topic's records): a marker of id with the same attempt is
	// the same push's earlier records in the partition, which are applied
	// too; only another attempt's marker (a client's retry) skips them.
	attempt uint64
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
		return false
	}
	if found && m.attempt != 0 && prior.attempt == m.attempt {
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
	now := s.opts.Now().UnixMilli()
	if h := markerHour(m.gcBelowMillis); h > s.markersGCHour {
		// Every marker of a bucket before h is older than the dedupe window
		// and than any journaled push: the retries it guards are over.
		_ = s.batch.DeleteRange([]byte{prefixMarker}, markerKey(h, ""), nil)
		s.markersGCHour = h
	}
	mk := marker{commitMillis: now, accepted: m.accepted, attempt: m.attempt}
	s.valBuf = appendMarker(s.valBuf[:0], mk)
	_ = s.batch.Set(markerKey(markerHour(now), m.id), s.valBuf, nil)
	if s.pendingMarks == nil {
		s.pendingMarks = make(map[string]marker)
	}
	s.pendingMarks[m.id] = mk
	return true
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
