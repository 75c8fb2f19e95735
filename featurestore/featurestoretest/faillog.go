package featurestoretest

import (
	"errors"
	"fmt"
	"sync"

	"github.com/featured-dev/featured/featurestore"
)

// ErrInjected is the error of a commit FailLog was told to fail.
var ErrInjected = errors.New("featurestoretest: injected commit failure")

// FailLog is an in-memory featurestore.EventLog that records nothing and
// fails the next commits of the shards Fail names, as a log whose write or
// fsync fails (ENOSPC, EIO) would: the store then drops the batch. The zero
// value is ready; it is safe for concurrent use.
type FailLog struct {
	mu      sync.Mutex
	pending map[int]int // shard -> commits still to fail
	failed  int
}

var _ featurestore.EventLog = (*FailLog)(nil)

// Fail makes shard's next n commits fail.
func (l *FailLog) Fail(shard, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pending == nil {
		l.pending = make(map[int]int)
	}
	l.pending[shard] += n
}

// Failed returns how many commits FailLog has failed.
func (l *FailLog) Failed() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failed
}

// Recover implements featurestore.EventLog.
func (l *FailLog) Recover(int, []byte) error { return nil }

// Append implements featurestore.EventLog.
func (l *FailLog) Append(int, *featurestore.Write, []featurestore.ViewKey) {}

// Commit implements featurestore.EventLog: it fails while Fail has commits
// left for shard.
func (l *FailLog) Commit(shard int, _ bool, _ int64) ([]byte, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pending[shard] > 0 {
		l.pending[shard]--
		l.failed++
		return nil, false, fmt.Errorf("shard %d: %w", shard, ErrInjected)
	}
	return []byte{}, false, nil
}

// Committed implements featurestore.EventLog.
func (l *FailLog) Committed(int, int64, error) {}
