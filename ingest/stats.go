package ingest

import (
	"sort"
	"sync"
	"sync/atomic"
)

// sourceStats counts one source's events. Updated with atomics on the
// ingest paths.
type sourceStats struct {
	applied        atomic.Uint64
	maxEventMillis atomic.Int64
	mu             sync.Mutex
	rejected       map[string]uint64 // by reason code
}

func (s *sourceStats) reject(code string) {
	s.mu.Lock()
	s.rejected[code]++
	s.mu.Unlock()
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
	Source   string            `json:"source"`
	Applied  uint64            `json:"events_applied"`
	Rejected map[string]uint64 `json:"events_rejected"`
	// LatestEventMillis is the latest event time applied (0 if none); now
	// minus it is the source's freshness.
	LatestEventMillis int64 `json:"latest_event_millis"`
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
		out = append(out, SourceStats{Source: k.(string), Applied: s.applied.Load(), Rejected: rej, LatestEventMillis: s.maxEventMillis.Load()})
		return true
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Source < out[j].Source })
	return out
}
