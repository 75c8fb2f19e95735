package registry

import "time"

// MaxHistory bounds the history the registry keeps: past it the oldest
// entries are dropped, so the registry file does not grow without bound.
const MaxHistory = 1000

// HistoryEntry is one registry change: who made it, when, and what it
// changed. The registry keeps the last MaxHistory, persisted with the
// definitions.
type HistoryEntry struct {
	// Generation is the registry's generation after the change.
	Generation uint64    `json:"generation"`
	Time       time.Time `json:"time"`
	// By names the caller (a token's name); "" when the server ran
	// without auth. Remote is the caller's address, when known.
	By      string   `json:"by"`
	Remote  string   `json:"remote,omitempty"`
	Action  string   `json:"action"` // "apply" or "delete"
	Changes []Change `json:"changes"`
}

// Caller says who makes a change, for the history.
type Caller struct {
	Name   string
	Remote string
}

// History returns the registry's change history, oldest first. The slice
// is shared: do not modify it.
func (s *Snapshot) History() []HistoryEntry { return s.history }

// withHistory sets next's history to cur's plus one entry, dropping the
// oldest past MaxHistory. next is not yet published.
func withHistory(cur, next *Snapshot, e HistoryEntry) {
	h := cur.history
	if len(h) >= MaxHistory {
		h = h[len(h)-MaxHistory+1:]
	}
	// Only what changed: an apply's plan lists every object it names.
	var changed []Change
	for _, c := range e.Changes {
		if c.Action != ActionUnchanged {
			changed = append(changed, c)
		}
	}
	e.Changes = changed
	// A fresh array: cur's is shared with its readers.
	next.history = append(append(make([]HistoryEntry, 0, len(h)+1), h...), e)
}
