package featurestore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"
)

// ErrJournaled is a push that was journaled but that not every shard has
// committed yet (a shard's commit failed, or the caller's context ended
// first). The store keeps applying the rest in the background until every
// shard has committed it; a retry with the same batch ID is safe and answers
// once it has. Every *JournaledError matches it.
var ErrJournaled = errors.New("featurestore: push journaled, not yet applied by every shard")

// ErrBadBatchID is a batch ID that is empty where one is required, longer
// than MaxBatchIDBytes, not UTF-8 or holding a NUL byte.
var ErrBadBatchID = errors.New("featurestore: bad batch id")

// JournaledError is ErrJournaled for one push, with the failure that kept
// it from being applied at once.
type JournaledError struct {
	ID  string // the push's batch ID, to retry with
	Err error
}

func (e *JournaledError) Error() string {
	return fmt.Sprintf("featurestore: push %q is journaled and will be applied (retrying with the same batch_id is safe): %v", e.ID, e.Err)
}

// Unwrap makes a JournaledError match ErrJournaled and its cause.
func (e *JournaledError) Unwrap() []error { return []error{ErrJournaled, e.Err} }

// Batch is one push for WriteBatch.
type Batch struct {
	// ID names the push so that a retry of it is applied at most once per
	// shard (see WriteBatch); "" for none. At most MaxBatchIDBytes of UTF-8
	// without NUL.
	ID string
	// Atomic journals the push before any shard applies its part, so that
	// its durable outcome is all or nothing across shards and crashes. An
	// atomic push without an ID gets a generated one.
	Atomic bool
	Writes []Write
}

// BatchResult is what WriteBatch applied.
type BatchResult struct {
	// ID is the push's batch ID: the caller's, or the generated one.
	ID string
	// Accepted is the number of writes of the push. For a duplicate, the
	// count the shards recorded when they first applied it.
	Accepted int
	// Duplicate reports that every shard's part had already been applied
	// by an earlier push with this ID: nothing was applied now.
	Duplicate bool
	// Rejected lists, by index in Batch.Writes, the writes a shard refused
	// because a target state is corrupt (ErrQuarantined, see Write): they
	// were applied to no view, and are not counted in Accepted.
	Rejected []Rejection
}

// CheckBatchID reports whether id can name a push: 1 to MaxBatchIDBytes
// bytes of UTF-8 without NUL (the rules of an entity key, shorter).
func CheckBatchID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: empty", ErrBadBatchID)
	case len(id) > MaxBatchIDBytes:
		return fmt.Errorf("%w: %d bytes, the limit is %d", ErrBadBatchID, len(id), MaxBatchIDBytes)
	case !utf8.ValidString(id):
		return fmt.Errorf("%w: not valid UTF-8", ErrBadBatchID)
	}
	for i := 0; i < len(id); i++ {
		if id[i] == 0 {
			return fmt.Errorf("%w: NUL byte at %d", ErrBadBatchID, i)
		}
	}
	return nil
}

// WriteBatch folds b.Writes, synced, like Write, and adds two guarantees:
//
//   - With an ID, every shard that commits a part of the push commits, in
//     the same Pebble batch, a marker of the ID; a shard that already holds
//     the marker skips its part. Markers are kept for Options.DedupeWindow,
//     so a retry within it (after a timeout, an error or a crash) applies
//     every write exactly once.
//   - With Atomic, the push is first written, synced, to the store's push
//     journal; the shards then apply their parts and the entry is deleted.
//     An entry left by a crash or a failed commit is applied by Open, or by
//     the store in the background with backoff, to the shards that lack
//     it. The failure is then reported as a *JournaledError.
//
// Readers may see one shard's part before another's: atomic is about the
// durable outcome, not snapshot isolation. Without ID and Atomic,
// WriteBatch is Write.
func (s *Store) WriteBatch(ctx context.Context, b Batch) (BatchResult, error) {
	if b.ID != "" {
		if err := CheckBatchID(b.ID); err != nil {
			return BatchResult{}, err
		}
	}
	if len(b.Writes) == 0 {
		return BatchResult{ID: b.ID}, nil
	}
	if err := s.checkPartitions(b.Writes); err != nil {
		return BatchResult{ID: b.ID}, err
	}
	if b.ID == "" && !b.Atomic {
		rej, err := s.Write(ctx, b.Writes)
		return BatchResult{Accepted: len(b.Writes) - len(rej), Rejected: rej}, err
	}
	if b.ID == "" {
		b.ID = newBatchID()
	}
	res := BatchResult{ID: b.ID, Accepted: len(b.Writes)}
	now := s.opts.Now().UnixMilli()
	if !b.Atomic {
		dup, err := s.applyParts(ctx, b.ID, b.Writes, len(b.Writes), now-s.opts.DedupeWindow.Milliseconds(), nil)
		if err != nil {
			return BatchResult{ID: b.ID}, err
		}
		return dup.result(res), nil
	}
	e, err := s.journal.begin(ctx, b.ID, b.Writes, now)
	if err != nil {
		return BatchResult{ID: b.ID}, err
	}
	// A retry of a push still journaled applies the journaled writes, not
	// its own: they are what the first attempt promised.
	res.Accepted = e.accepted
	dup, err := s.applyEntry(ctx, e)
	if errors.Is(err, errTestCrash) {
		return BatchResult{ID: b.ID}, err
	}
	if err != nil {
		s.journal.retryLater(e)
		return BatchResult{ID: b.ID}, &JournaledError{ID: b.ID, Err: err}
	}
	s.journal.finish(e, s.opts.Logger)
	return dup.result(res), nil
}

// partsOutcome is what the shards answered for a push's parts.
type partsOutcome struct {
	parts, skipped int
	prior          marker      // a skipped part's marker
	rejected       []Rejection // by index in the push's writes
}

// result is res as a duplicate when every part was skipped, less the
// writes the shards refused.
func (o partsOutcome) result(res BatchResult) BatchResult {
	if o.parts > 0 && o.skipped == o.parts {
		res.Duplicate = true
		res.Accepted = o.prior.accepted
	}
	res.Rejected = o.rejected
	res.Accepted -= len(o.rejected)
	return res
}

// errTestCrash stops a push after the parts testPart let through, as if the
// process had died there (tests only).
var errTestCrash = errors.New("featurestore: test crash")

// applyParts sends each shard its part of ws, marked with id, and waits for
// every shard's commit. lowMillis is the oldest commit time an earlier
// marker of id can have. pinned is the journal entry being applied, if any:
// its markers must outlive it.
func (s *Store) applyParts(ctx context.Context, id string, ws []Write, accepted int, lowMillis int64, pinned *journalEntry) (partsOutcome, error) {
	n := len(s.shards)
	if err := s.checkPartitions(ws); err != nil {
		return partsOutcome{}, err
	}
	parts := make([][]Write, n)
	index := make([][]int, n) // each part's writes' indexes in ws, for Rejections
	for i := range ws {
		j := ws[i].Partition
		parts[j] = append(parts[j], ws[i])
		index[j] = append(index[j], i)
	}
	gcBelow := s.markerGCHorizon(pinned)
	reqs := make([]*request, n)
	var out partsOutcome
	crash := false
	for i, p := range parts {
		if len(p) == 0 {
			continue
		}
		out.parts++
		if s.testPart != nil && !s.testPart(i) {
			crash = true
			continue
		}
		reqs[i] = &request{kind: reqWrite, writes: p, index: index[i], sync: true, done: make(chan error, 1),
			mark: &batchMark{id: id, accepted: accepted, lowMillis: lowMillis, gcBelowMillis: gcBelow}}
	}
	if err := s.send(ctx, reqs); err != nil {
		return out, err
	}
	if crash {
		return out, errTestCrash
	}
	for _, r := range reqs {
		if r == nil {
			continue
		}
		if r.mark.skipped {
			out.skipped++
			out.prior = r.mark.prior
		}
		out.rejected = append(out.rejected, r.rejected...)
	}
	slices.SortFunc(out.rejected, func(a, b Rejection) int { return a.Index - b.Index })
	return out, nil
}

// markerGCHorizon is the commit time before which markers may be deleted:
// older than the dedupe window, and than the oldest journaled push (whose
// replay must find the markers of the parts it already applied), less a
// bucket for a clock that stepped back.
func (s *Store) markerGCHorizon(pinned *journalEntry) int64 {
	h := s.opts.Now().UnixMilli() - s.opts.DedupeWindow.Milliseconds()
	if oldest, ok := s.journal.oldest(); ok {
		h = min(h, oldest)
	}
	if pinned != nil {
		h = min(h, pinned.createdMillis)
	}
	return h - markerBucketMillis
}

// applyEntry applies a journaled push to the shards that lack it.
func (s *Store) applyEntry(ctx context.Context, e *journalEntry) (partsOutcome, error) {
	low := min(s.opts.Now().UnixMilli()-s.opts.DedupeWindow.Milliseconds(), e.createdMillis-markerBucketMillis)
	return s.applyParts(ctx, e.id, e.writes, e.accepted, low, e)
}

// newBatchID names an atomic push sent without an ID.
func newBatchID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return "featured-" + hex.EncodeToString(b[:])
}
