package eventlog

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/featured-dev/featured/featurestore"
)

// marker records a backfill of one view version on one shard: from
// CommitMillis on, the shard's state of the view is the fold of every
// logged row with LSN < LSN that the view admits by its TTL at the row's
// ingest time, followed by the rows folded live after. Markers are written
// to wal/p-NNNN/markers in the commit of the rebuild's batch, with the
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
func loadMarkers(fs vfs.FS, dir string, seg uint64, off int64, committed bool) ([]marker, error) {
	path := filepath.Join(dir, markersFile)
	b, err := readFile(fs, path)
	if errors.Is(err, os.ErrNotExist) {
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
		if err := writeFile(fs, tmp, out); err != nil {
			return nil, fmt.Errorf("offline: %w", err)
		}
		if err := fs.Rename(tmp, path); err != nil {
			return nil, fmt.Errorf("offline: %w", err)
		}
	}
	return keep, nil
}

// appendMarker appends m to the shard's markers file, fsynced when sync.
func appendMarker(fs vfs.FS, dir string, m marker, sync bool) error {
	f, err := fs.OpenReadWrite(filepath.Join(dir, markersFile), vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("offline: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("offline: %w", err)
	}
	line, _ := json.Marshal(m)
	if _, err := f.WriteAt(append(line, '\n'), st.Size()); err != nil {
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

// Marker is a backfill's switch of one view version on one shard, as
// exports see it: from CommitMillis on, the shard's state of the view is
// the fold of the logged rows with an LSN below LSN that the view admits by
// its TTL at the row's ingest time, followed by the rows folded live after.
type Marker struct {
	LSN          int64
	CommitMillis int64
}

// Markers returns the committed markers of view version vk (id<<32 |
// version, as ViewKeyInt) by shard, oldest first.
func (l *Log) Markers(vk int64) map[int32][]Marker {
	out := map[int32][]Marker{}
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, sl := range l.shards {
		sl.mu.Lock()
		for _, m := range sl.mu.markers {
			if m.View == vk {
				out[int32(id)] = append(out[int32(id)], Marker{LSN: m.LSN, CommitMillis: m.CommitMillis})
			}
		}
		sl.mu.Unlock()
	}
	for _, ms := range out {
		sort.Slice(ms, func(i, j int) bool { return ms[i].CommitMillis < ms[j].CommitMillis })
	}
	return out
}

// MarkRebuild records that shard's state of view is being rebuilt from the
// log up to the shard's next LSN: the marker is written by the shard's next
// Commit, in the rebuild's batch, and kept only if the store keeps that
// batch (see marker).
//
// Call it only from shard's writer goroutine, inside the
// featurestore.RebuildSource.Tail of Store.Rebuild (the rebuild's batch is
// then the shard's next Commit), after the last row the rebuild read: like
// Append, it touches state owned by that goroutine. The writer committed
// everything before Tail and applies nothing until that batch, so the
// marker's LSN is exactly the first row not folded by the rebuild.
func (l *Log) MarkRebuild(shard int, view featurestore.ViewKey) {
	sl := l.shard(shard)
	sl.pendingMarker = &marker{View: ViewKeyInt(view), LSN: sl.nextLSN}
}

// readFile is os.ReadFile on fs.
func readFile(fs vfs.FS, path string) ([]byte, error) {
	f, err := fs.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// writeFile is os.WriteFile on fs (not synced, as os.WriteFile).
func writeFile(fs vfs.FS, path string, b []byte) error {
	f, err := fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
