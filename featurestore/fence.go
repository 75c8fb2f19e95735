package featurestore

import (
	"errors"
	"sync"
)

// ErrFenced is returned by EnqueueFenced when a shard's commit failed after
// the caller took its Fence: the shard dropped events the caller had handed
// it, and every later request under that fence is dropped too. The caller
// must read Offsets again, take a new Fence and re-read from there.
var ErrFenced = errors.New("featurestore: partition fenced by a failed commit")

// A Fence is a partition's fence generation as a consumer took it, with
// Offsets, before reading the partition from there. A shard whose commit
// fails drops what it had not committed and moves the fence of every
// partition whose writes or marks it dropped; from then on, requests under
// the old fence are dropped unapplied, so a consumer's later offsets are
// never folded on top of the gap the failure left. The zero Fence is not
// valid: take one with Store.Fence.
type Fence struct {
	tp    topicPartition
	gen   uint64
	moved <-chan struct{}
}

// Moved is closed once a failed commit has moved the partition's fence past
// f: the consumer must rewind (see ErrFenced), even if it has nothing more
// to enqueue, or the dropped events stay unapplied until its next batch.
func (f Fence) Moved() <-chan struct{} { return f.moved }

// fences holds the Store's partition fences. Shard writers move them (only
// on a failed commit); consumers read them. Safe for concurrent use.
type fences struct {
	mu sync.Mutex
	m  map[topicPartition]*fenceState
}

type fenceState struct {
	gen   uint64
	moved chan struct{} // closed and replaced when gen moves
}

func (fs *fences) stateLocked(tp topicPartition) *fenceState {
	if fs.m == nil {
		fs.m = make(map[topicPartition]*fenceState)
	}
	st, ok := fs.m[tp]
	if !ok {
		st = &fenceState{moved: make(chan struct{})}
		fs.m[tp] = st
	}
	return st
}

func (fs *fences) take(tp topicPartition) Fence {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	st := fs.stateLocked(tp)
	return Fence{tp: tp, gen: st.gen, moved: st.moved}
}

// current reports whether f is the partition's fence.
func (fs *fences) current(tp topicPartition, gen uint64) bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.stateLocked(tp).gen == gen
}

// move moves the fence of every partition in tps and wakes their holders.
func (fs *fences) move(tps []topicPartition) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for _, tp := range tps {
		st := fs.stateLocked(tp)
		st.gen++
		close(st.moved)
		st.moved = make(chan struct{})
	}
}
