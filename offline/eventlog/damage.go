package eventlog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Damage to the WAL below the committed position (a frame that fails its
// checksum, a sealed segment cut short or followed by garbage, LSNs that do
// not follow on, a segment missing from the sequence) is not a crash: a
// crash only leaves a torn tail past the committed position, which Recover
// cuts and counts. Damaged committed rows cannot be read back, and a log
// read without them would give exports and backfills a silent hole. The
// log does not refuse to open for it (the online store does not need the
// log to serve): it quarantines the segment, renaming it to
// <seq>.wal.damaged (or writing <seq>.wal.missing for a segment that is
// gone), and every scan that reads the shard fails with ErrDamaged naming
// the file, until an operator restores the segment (renamed back to
// <seq>.wal; Recover checks it again) or accepts the loss (renames it to
// <seq>.wal.lost). Stats reports the quarantined files.
const (
	damagedSuffix = ".damaged"
	missingSuffix = ".missing"
	lostSuffix    = ".lost"
)

// ErrDamaged is returned by the scans of a shard whose WAL has quarantined
// files; the error names them and the way out.
var ErrDamaged = errors.New("eventlog: damaged log")

// ShardStats is one shard's WAL as Stats reports it.
type ShardStats struct {
	Shard int `json:"shard"`
	// DroppedBytes were cut past the committed position when the shard
	// was recovered: rows of batches the store did not keep, or a torn
	// frame, after a crash. Normal.
	DroppedBytes int64 `json:"uncommitted_bytes_dropped"`
	// LostBytes were committed but missing from the end of the WAL when
	// the shard was recovered: a power loss before unsynced commits
	// reached the disk. Their events are in the online state, not in the
	// log.
	LostBytes int64 `json:"committed_bytes_lost"`
	// Damaged are the quarantined WAL files; scans of the shard fail
	// while there are any (docs/reliability.md, "Damaged data").
	Damaged []string `json:"damaged,omitempty"`
}

// Stats reports each recovered shard's WAL, by shard. Safe to call
// concurrently with everything.
func (l *Log) Stats() []ShardStats {
	l.mu.Lock()
	out := make([]ShardStats, 0, len(l.shards))
	for _, sl := range l.shards {
		sl.mu.Lock()
		out = append(out, ShardStats{Shard: sl.id, DroppedBytes: sl.mu.droppedBytes, LostBytes: sl.mu.lostBytes,
			Damaged: append([]string(nil), sl.mu.damaged...)})
		sl.mu.Unlock()
	}
	l.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Shard < out[j].Shard })
	return out
}

// damageErr returns ErrDamaged naming the quarantined files of shards, or
// nil.
func damageErr(shards []*shardLog) error {
	var files []string
	for _, sl := range shards {
		sl.mu.Lock()
		files = append(files, sl.mu.damaged...)
		sl.mu.Unlock()
	}
	if len(files) == 0 {
		return nil
	}
	return fmt.Errorf("%w: committed events of %s cannot be read: restore the segment from a backup (named <seq>.wal, checked on the next start) or accept their loss by renaming the file to <seq>.wal%s (docs/reliability.md, \"Damaged data\")",
		ErrDamaged, strings.Join(files, ", "), lostSuffix)
}

// recovered is what verify leaves of a shard's WAL.
type recovered struct {
	seg       uint64   // the segment to append to
	off       int64    // its committed length
	markerOff int64    // the committed offset in the committed segment, for its markers
	lost      int64    // committed bytes missing from its end
	dropped   int64    // bytes past the committed position
	convert   []uint64 // sealed segments to convert, in order
}

// verify checks the segments Recover keeps: the sealed ones (older) must be
// whole frames with good checksums, and the committed one up to off, with
// LSNs following on from frame to frame and from segment to segment, ending
// at lsn; segment numbers must not skip one. It reads all of them, which
// the converter does anyway. A damaged segment is quarantined; when it is
// the committed one, appends go on in a new segment after it.
func (l *Log) verify(shard int, dir string, older []uint64, seg uint64, off, lsn int64, committed bool) (recovered, error) {
	r := recovered{seg: seg, off: off, markerOff: off}
	if !committed {
		return r, nil
	}
	// The converter takes a shard's sealed segments in order and deletes
	// each once converted (setting aside a damaged one), so from the
	// oldest segment still in the WAL to the committed one, every number
	// is a segment or a quarantined file.
	present, err := segmentNumbers(l.opts.FS, dir)
	if err != nil {
		return r, err
	}
	aside := present[seg] // and no <seq>.wal: quarantined or lost before
	from := seg
	if len(older) > 0 {
		from = older[0]
	}
	for n := from + 1; n < seg; n++ {
		if !present[n] {
			if err := l.markMissing(shard, dir, n, "the segment is missing between two others"); err != nil {
				return r, err
			}
		}
	}
	next := int64(-1) // the LSN the next segment starts at, when known
	prev := uint64(0)
	for _, s := range older {
		if s != prev+1 {
			next = -1
		}
		prev = s
		path := filepath.Join(dir, segName(s))
		_, n, err := checkSegment(l.opts.FS, path, -1, false, next)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				return r, err
			}
			if err := l.quarantine(shard, path, err); err != nil {
				return r, err
			}
			next = -1
			continue
		}
		r.convert = append(r.convert, s)
		next = n
	}
	if seg != prev+1 {
		next = -1
	}
	path := filepath.Join(dir, segName(seg))
	st, err := l.opts.FS.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if off == 0 {
			return r, nil
		}
		if aside {
			r.seg, r.off = seg+1, 0
			return r, nil
		}
		if err := l.markMissing(shard, dir, seg, fmt.Sprintf("the committed segment is missing (%d bytes committed)", off)); err != nil {
			return r, err
		}
		r.seg, r.off = seg+1, 0
		return r, nil
	case err != nil:
		return r, fmt.Errorf("offline: %w", err)
	}
	short := st.Size() < off
	end, n, err := checkSegment(l.opts.FS, path, off, short, next)
	if err == nil && !short && off > 0 && n != lsn {
		err = corruptf("%s: ends at LSN %d, the store committed %d", path, n, lsn)
	}
	if err != nil {
		if !errors.Is(err, ErrCorrupt) {
			return r, err
		}
		if err := l.quarantine(shard, path, err); err != nil {
			return r, err
		}
		r.seg, r.off = seg+1, 0
		return r, nil
	}
	if short {
		// Only possible after a power loss with unsynced commits: the
		// store kept more than the WAL. Those events' rows are gone.
		l.opts.Logger.Error("offline log lost rows the store committed (power loss before an unsynced commit reached disk?)",
			"shard", shard, "segment", seg, "have_bytes", st.Size(), "committed_bytes", off, "whole_frames_bytes", end)
		r.lost = off - end
		r.off, r.markerOff = end, end
		return r, nil
	}
	r.dropped = st.Size() - off
	return r, nil
}

// checkSegment reads a segment's frames as readFrames does and checks that
// their LSNs follow on, from next when it is not -1. It returns the offset
// after the last frame and the LSN after it.
func checkSegment(fs vfs.FS, path string, limit int64, tornOK bool, next int64) (end, nextLSN int64, err error) {
	end, err = readFrames(fs, path, limit, tornOK, func(fr *walFrame) error {
		if next >= 0 && fr.firstLSN != next {
			return corruptf("%s: frame at %d starts at LSN %d where %d was due", path, fr.off, fr.firstLSN, next)
		}
		next = fr.firstLSN + int64(fr.nrows)
		return nil
	})
	return end, next, err
}

// quarantine renames a damaged segment aside.
func (l *Log) quarantine(shard int, path string, cause error) error {
	if err := l.opts.FS.Rename(path, path+damagedSuffix); err != nil {
		return fmt.Errorf("offline: quarantine %s: %w", path, err)
	}
	if err := syncDir(l.opts.FS, filepath.Dir(path)); err != nil {
		return err
	}
	l.opts.Logger.Error("offline: a WAL segment holding committed events is damaged; it is set aside and exports and backfills reading its shard fail until it is restored or its loss accepted (docs/reliability.md, \"Damaged data\")",
		"shard", shard, "file", path+damagedSuffix, "err", cause)
	return nil
}

// markMissing records a segment that is gone as <seq>.wal.missing.
func (l *Log) markMissing(shard int, dir string, seg uint64, why string) error {
	path := filepath.Join(dir, segName(seg)+missingSuffix)
	if err := writeFile(l.opts.FS, path, []byte(why+"\n")); err != nil {
		return fmt.Errorf("offline: record missing segment %s: %w", path, err)
	}
	if err := syncDir(l.opts.FS, dir); err != nil {
		return err
	}
	l.opts.Logger.Error("offline: a WAL segment holding committed events is missing; exports and backfills reading its shard fail until it is restored or its loss accepted (docs/reliability.md, \"Damaged data\")",
		"shard", shard, "file", path, "why", why)
	return nil
}

// segmentNumbers returns the numbers of every <seq>.wal* file in dir:
// segments and quarantined, missing or lost ones.
func segmentNumbers(fs vfs.FS, dir string) (map[uint64]bool, error) {
	names, err := fs.List(dir)
	if err != nil {
		return nil, fmt.Errorf("offline: list %s: %w", dir, err)
	}
	out := map[uint64]bool{}
	for _, name := range names {
		num, _, ok := strings.Cut(name, ".wal")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(num, 10, 64); err == nil {
			out[n] = true
		}
	}
	return out, nil
}

// listDamaged returns the quarantined files in dir.
func listDamaged(fs vfs.FS, dir string) ([]string, error) {
	names, err := fs.List(dir)
	if err != nil {
		return nil, fmt.Errorf("offline: list %s: %w", dir, err)
	}
	sort.Strings(names)
	var out []string
	for _, n := range names {
		if strings.HasSuffix(n, ".wal"+damagedSuffix) || strings.HasSuffix(n, ".wal"+missingSuffix) {
			out = append(out, filepath.Join(dir, n))
		}
	}
	return out, nil
}

// quarantineSealed sets aside a sealed segment the converter found damaged
// (after Recover checked it: the disk changed under the log), so that the
// shard's later segments still convert and its scans fail.
func (l *Log) quarantineSealed(shard int, seg uint64, cause error) error {
	sl := l.shard(shard)
	path := filepath.Join(sl.dir, segName(seg))
	l.files.Lock()
	defer l.files.Unlock()
	if err := l.quarantine(shard, path, cause); err != nil {
		return err
	}
	sl.mu.Lock()
	sl.mu.damaged = append(sl.mu.damaged, path+damagedSuffix)
	sl.mu.Unlock()
	return nil
}
