package featurestore

import (
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// gcBatch is how many candidate keys one request to a writer carries; it
// bounds how long a writer spends on collection before it serves ingest again.
const gcBatch = 512

// gcRunner scans the shards for collectable states (see expired) and hands
// candidates to each shard's writer, which decides again and deletes.
type gcRunner struct {
	stopc chan struct{}
	donec chan struct{}
}

func startGC(s *Store) *gcRunner {
	g := &gcRunner{stopc: make(chan struct{}), donec: make(chan struct{})}
	if s.opts.GCInterval < 0 || s.opts.Views == nil {
		close(g.donec)
		return g
	}
	go func() {
		defer close(g.donec)
		t := time.NewTimer(s.opts.GCInterval)
		defer t.Stop()
		for {
			select {
			case <-g.stopc:
				return
			case <-t.C:
			}
			for _, sh := range s.shards {
				if !g.scan(s, sh) {
					return
				}
			}
			t.Reset(s.opts.GCInterval)
		}
	}()
	return g
}

func (g *gcRunner) stop() {
	select {
	case <-g.stopc:
	default:
		close(g.stopc)
	}
	<-g.donec
}

// scan walks one shard's states on an iterator (a consistent view that
// never blocks readers or the writer) and sends candidates in batches. It
// returns false when the runner is stopping.
func (g *gcRunner) scan(s *Store, sh *shard) bool {
	it, err := sh.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixState}, UpperBound: []byte{prefixState + 1}})
	if err != nil {
		s.opts.Logger.Error("ttl scan", "shard", sh.id, "err", err)
		return true
	}
	defer it.Close()
	now := s.opts.Now()
	var keys [][]byte
	flush := func() bool {
		if len(keys) == 0 {
			return true
		}
		r := &request{kind: reqGC, keys: keys, done: make(chan error, 1)}
		select {
		case sh.reqs <- r:
		case <-g.stopc:
			return false
		}
		select {
		case <-r.done:
		case <-g.stopc:
			return false
		}
		keys = nil
		return true
	}
	var scanned uint64
	for it.First(); it.Valid(); it.Next() {
		vk, _, ok := parseStateKey(it.Key())
		if !ok {
			continue
		}
		scanned++
		ttl, live := s.opts.Views(vk)
		if live && !expired(it.Value(), now, ttl) {
			continue
		}
		keys = append(keys, append([]byte(nil), it.Key()...))
		if len(keys) >= gcBatch && !flush() {
			return false
		}
	}
	if err := it.Error(); err != nil {
		s.opts.Logger.Error("ttl scan", "shard", sh.id, "err", err)
		return flush()
	}
	if !flush() {
		return false
	}
	sh.mu.Lock()
	sh.mu.stats.TTLScans++
	sh.mu.stats.TTLStatesScanned += scanned
	sh.mu.stats.TTLLastScanMillis = s.opts.Now().UnixMilli()
	sh.mu.Unlock()
	return true
}
