package registry

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

func TestHistoryPersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "registry.json")
	clock := newTestClock()
	r := openTest(t, path, clock)
	if _, err := r.ApplyBy(mustParse(t, baseYAML), Caller{Name: "alice", Remote: "10.0.0.1:5000"}); err != nil {
		t.Fatal(err)
	}
	// An apply that changes nothing is no history.
	if _, err := r.ApplyBy(mustParse(t, baseYAML), Caller{Name: "alice"}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.DeleteBy(KindService, "fraud_model_v1", 0, Caller{Name: "bob"}); err != nil {
		t.Fatal(err)
	}
	check := func(h []HistoryEntry) {
		t.Helper()
		if len(h) != 2 || h[0].By != "alice" || h[0].Remote != "10.0.0.1:5000" || h[0].Action != "apply" || h[0].Generation != 1 ||
			len(h[0].Changes) == 0 || h[1].By != "bob" || h[1].Action != "delete" || h[1].Generation != 2 || h[1].Time.IsZero() {
			t.Fatalf("history = %+v; want alice's apply (gen 1) then bob's delete (gen 2)", h)
		}
	}
	check(r.Snapshot().History())
	r.Close()
	check(openTest(t, path, clock).Snapshot().History())
}

func TestHistoryOldFileLoads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "registry.json")
	clock := newTestClock()
	r := openTest(t, path, clock)
	mustApply(t, r, baseYAML)
	r.Close()
	// A file of a registry from before the history: no "history" key.
	var doc map[string]any
	if err := json.Unmarshal(readFile(t, path), &doc); err != nil {
		t.Fatal(err)
	}
	delete(doc, "history")
	data, _ := json.Marshal(doc)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	r2 := openTest(t, path, clock)
	if h := r2.Snapshot().History(); len(h) != 0 {
		t.Errorf("history of an old file = %+v; want none", h)
	}
	if r2.Snapshot().Generation() != 1 {
		t.Errorf("generation %d; want 1", r2.Snapshot().Generation())
	}
}

func TestHistoryBounded(t *testing.T) {
	cur := emptySnapshot()
	for i := range MaxHistory + 5 {
		next := emptySnapshot()
		withHistory(cur, next, HistoryEntry{Generation: uint64(i + 1), By: strconv.Itoa(i)})
		if len(cur.history) > 0 && cur.history[len(cur.history)-1].Generation != uint64(i) {
			t.Fatalf("the published snapshot's history changed under it")
		}
		cur = next
	}
	if h := cur.History(); len(h) != MaxHistory || h[0].Generation != 6 || h[len(h)-1].Generation != MaxHistory+5 {
		t.Errorf("history: %d entries from gen %d to %d; want %d from 6 to %d", len(h), h[0].Generation, h[len(h)-1].Generation, MaxHistory, MaxHistory+5)
	}
}
