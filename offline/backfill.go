package offline

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/featurestore"
	"github.com/featured-dev/featured/registry"
)

// marker records a backfill of one view version on one shard: from
// CommitMillis on, the shard's state of the view is the fold of every
// logged row with LSN < LSN that the view admits by its TTL at the row's
// ingest time, followed by the rows folded live after. Markers are written
// to wal/shard-NNN/markers in the commit of the rebuild's batch, with the
// WAL position of that commit (Seg, Off), and dropped when the store did
// not keep the batch: on recovery, or at once when its commit fails. The
// batch has no rows, but its commit writes an empty WAL frame, so that
// position is new, past every position committed before: a marker at or
// before the store's committed position is one whose batch committed.
// CommitMillis is stamped before the batch commits; a line after the
// marker's may move it to when the batch became visible (Log.Committed).
type marker struct {
	View         int64 `json:"view"` // id<<32 | version
	LSN          int64 `json:"lsn"`
	CommitMillis int64 `json:"commit_ms"`
	Seg          uint64
	Off          int64
	// VisibleMillis is set only on a restamp line: the marker on the line
	// before it, equal to it in every other field, takes it as its
	// CommitMillis.
	VisibleMillis int64 `json:"visible_ms,omitempty"`
}

const markersFile = "markers"

// loadMarkers reads a shard's markers, keeping those at or before the
// committed position with their restamps applied (and rewriting the file
// without the others when it drops any).
func loadMarkers(dir string, seg uint64, off int64, committed bool) ([]marker, error) {
	path := filepath.Join(dir, markersFile)
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("offline: %w", err)
	}
	var keep []marker
	dropped := false
	prev := -1 // index in keep of the previous line's marker
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var m marker
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			dropped = true // a torn last line
			prev = -1
			continue
		}
		if v := m.VisibleMillis; v != 0 {
			m.VisibleMillis = 0
			if prev >= 0 && keep[prev] == m {
				keep[prev].CommitMillis = v
			} else {
				dropped = true // its marker was dropped
			}
			prev = -1
			continue
		}
		prev = -1
		if !committed || m.Seg > seg || (m.Seg == seg && m.Off > off) {
			dropped = true
			continue
		}
		keep = append(keep, m)
		prev = len(keep) - 1
	}
	if dropped {
		var out []byte
		for _, m := range keep {
			line, _ := json.Marshal(m)
			out = append(append(out, line...), '\n')
		}
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, out, 0o644); err != nil {
			return nil, fmt.Errorf("offline: %w", err)
		}
		if err := os.Rename(tmp, path); err != nil {
			return nil, fmt.Errorf("offline: %w", err)
		}
	}
	return keep, nil
}

// appendMarker appends m to the shard's markers file, fsynced when sync.
func appendMarker(dir string, m marker, sync bool) error {
	f, err := os.OpenFile(filepath.Join(dir, markersFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("offline: %w", err)
	}
	line, _ := json.Marshal(m)
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("offline: %w", err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			f.Close()
			return fmt.Errorf("offline: %w", err)
		}
	}
	return f.Close()
}

// markersOf returns the committed markers of view version vk by shard,
// oldest first.
func (l *Log) markersOf(vk int64) map[int32][]marker {
	out := map[int32][]marker{}
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, sl := range l.shards {
		sl.mu.Lock()
		for _, m := range sl.mu.markers {
			if m.View == vk {
				out[int32(id)] = append(out[int32(id)], m)
			}
		}
		sl.mu.Unlock()
	}
	for _, ms := range out {
		sort.Slice(ms, func(i, j int) bool { return ms[i].CommitMillis < ms[j].CommitMillis })
	}
	return out
}

// admits is the ingest's per-view admission rule, replayed: an event is
// folded into a view when its time is within the view's TTL of the ingest
// clock. (The future bound was checked for every view at ingest.)
func admits(v *registry.View, r *row) bool {
	return r.schema.source == v.Source.Name && r.schema.keyKind == v.Entity.Type &&
		r.eventMillis >= r.ingestMillis-v.TTL.Milliseconds()
}

// Backfill builds view version v's online state from the offline log and
// switches the store to it, shard by shard (featurestore.Store.Rebuild): each
// shard pauses, commits what it holds, and the state becomes the fold, in log
// order, of every logged event of the view's source that the view admits
// by its TTL at the event's ingest time; then ingestion resumes into it. No
// event is missed (the log is read up to the position the shard committed)
// nor counted twice (nothing is applied while the shard is paused). Exports
// of the view in served mode answer the old state before the switch and the
// new one after it (the switch is recorded in the log).
func Backfill(ctx context.Context, store *featurestore.Store, log *Log, v *registry.View) (entities int, err error) {
	vk := featurestore.ViewKey{ID: v.ID, Version: uint32(v.Version)}
	lay := v.Layout
	ev := &exportView{view: v}
	err = store.Rebuild(ctx, vk, lay, func(ctx context.Context, shard int, emit func([]byte, *aggregate.State) error) error {
		sl := log.shard(shard)
		states := map[string]*aggregate.State{}
		var order []string
		maxLSN := int64(-1)
		err := log.scanShard(ctx, shard, v.Source.Name, func(r *row) error {
			if r.lsn <= maxLSN {
				return nil // a re-converted segment's duplicate
			}
			maxLSN = r.lsn
			if !admits(v, r) {
				return nil
			}
			st := states[string(r.entity)]
			if st == nil {
				st = lay.NewState()
				states[string(r.entity)] = st
				order = append(order, string(r.entity))
			}
			lay.Fold(st, r.eventMillis, ev.fieldsOf(r))
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range order {
			if err := emit([]byte(k), states[k]); err != nil {
				return err
			}
		}
		entities += len(order)
		sl.pendingMarker = &marker{View: viewKeyInt(vk), LSN: sl.nextLSN}
		return nil
	})
	return entities, err
}
