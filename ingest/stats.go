package ingest

import (
	"sort"
	"sync"
	"sync/atomic"

	"github.com/featured-dev/featured/featurestore"
)

// sourceStats counts one source's events. Updated with atomics on the
// ingest paths.
type sourceStats struct {
	applied        atomic.Uint64
	history        atomic.Uint64 // older than every view's TTL: logged, folded nowhere
	deadLetters    atomic.Uint64 // written to the source's dead-letter topic
	maxEventMillis atomic.Int64
	mu             sync.Mutex
	rejected       map[string]uint64 // by reason code
}

func (s *sourceStats) reject(code string) {
	s.mu.Lock()
	s.rejected[code]++
	s.mu.Unlock()
}

// add counts writes handed to the store for rt: as history those that no
// view of a source with views takes (route.admit), as applied the others.
func (s *sourceStats) add(rt *route, writes []featurestore.Write) {
	var history uint64
	if len(rt.targets) > 0 {
		for i := range writes {
			if len(writes[i].Targets) == 0 {
				history++
			}
		}
	}
	s.applied.Add(uint64(len(writes)) - history)
	s.history.Add(history)
}

// unapply takes back one applied event the store then refused.
func (s *sourceStats) unapply() {
	for {
		cur := s.applied.Load()
		if cur == 0 || s.applied.CompareAndSwap(cur, cur-1) {
			return
		}
	}
}

func (s *sourceStats) observe(eventMillis int64) {
	for {
		cur := s.maxEventMillis.Load()
		if eventMillis <= cur || s.maxEventMillis.CompareAndSwap(cur, eventMillis) {
			return
		}
	}
}

// stats holds every source's counters.
type stats struct {
	bySource sync.Map // string -> *sourceStats
}

func (st *stats) source(name string) *sourceStats {
	if s, ok := st.bySource.Load(name); ok {
		return s.(*sourceStats)
	}
	s, _ := st.bySource.LoadOrStore(name, &sourceStats{rejected: make(map[string]uint64)})
	return s.(*sourceStats)
}

// SourceStats is a snapshot of one source's counters.
type SourceStats struct {
	Source string `json:"source"`
	// Applied counts events folded online (into at least one view, or of
	// a source no view reads yet).
	Applied uint64 `json:"events_applied"`
	// History counts valid events older than every view's TTL (a source
	// catching up after an outage, or read from the earliest offset):
	// written to the offline log, folded into no view, not rejected.
	History  uint64            `json:"events_history"`
	Rejected map[string]uint64 `json:"events_rejected"`
	// LatestEventMillis is the latest event time applied (0 if none); now
	// minus it is the source's freshness.
	LatestEventMillis int64 `json:"latest_event_millis"`
	// DeadLetters counts messages written to the source's dead-letter
	// topic (Kafka sources only): rejected events, and events the store
	// refused. A replayed batch's are counted again, as they are written
	// again.
	DeadLetters uint64 `json:"dead_letters"`
}

func (st *stats) snapshot() []SourceStats {
	var out []SourceStats
	st.bySource.Range(func(k, v any) bool {
		s := v.(*sourceStats)
		s.mu.Lock()
		rej := make(map[string]uint64, len(s.rejected))
		for code, n := range s.rejected {
			rej[code] = n
		}
		s.mu.Unlock()
		out = append(out, SourceStats{Source: k.(string), Applied: s.applied.Load(), History: s.history.Load(), Rejected: rej, LatestEventMillis: s.maxEventMillis.Load(), DeadLetters: s.deadLetters.Load()})
		return true
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Source < out[j].Source })
	return out
}
