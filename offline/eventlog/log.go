package eventlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/featured-dev/featured/featurestore"
	"github.com/featured-dev/featured/offline/internal/codec"
)

// Options configures a Log. The zero value is usable.
type Options struct {
	// SegmentBytes seals a shard's WAL segment (and so turns it into
	// Parquet) once it holds this many bytes. The default value is 64 MiB.
	SegmentBytes int64
	// SegmentAge seals a non-empty segment this long after it was opened, so
	// the Parquet files trail the stream by at most about this much. The
	// default value is 10m.
	SegmentAge time.Duration
	// RowGroupRows is the most rows in one Parquet row group. The default
	// value is 65536.
	RowGroupRows int
	// Retention is how long Parquet files are kept, by the UTC day of their
	// rows' ingest time; independent of any view's TTL. The default value
	// is 30 days. Negative keeps everything.
	Retention time.Duration
	// Now is the clock for segment age and retention. The default value is
	// time.Now.
	Now func() time.Time
	// Logger. The default value is slog.Default().
	Logger *slog.Logger
	// FS is the file system of every file the Log opens: WAL segments
	// (appended, checked, quarantined), markers, Parquet files (written,
	// renamed, scanned) and their directories. Its WAL files must have a Truncate(size int64) error
	// method, as vfs.Default's have (vfs.File has none), to cut a failed
	// commit. Exports open Parquet files by path (OpenFile) on the OS, so a
	// FS other than vfs.Default must be a wrapper over the same directories
	// (as fault-injection tests use). The default value is vfs.Default.
	FS vfs.FS
}

// EnsureDefaults fills zero fields with their defaults.
func (o *Options) EnsureDefaults() {
	if o.SegmentBytes == 0 {
		o.SegmentBytes = 64 << 20
	}
	if o.SegmentAge == 0 {
		o.SegmentAge = 10 * time.Minute
	}
	if o.RowGroupRows == 0 {
		o.RowGroupRows = 65536
	}
	if o.Retention == 0 {
		o.Retention = 30 * 24 * time.Hour
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.FS == nil {
		o.FS = vfs.Default
	}
}

// Validate reports options that cannot work.
func (o *Options) Validate() error {
	var errs []error
	if o.SegmentBytes < 4096 {
		errs = append(errs, fmt.Errorf("offline: segment bytes: %d is less than 4096", o.SegmentBytes))
	}
	if o.SegmentAge < 0 {
		errs = append(errs, fmt.Errorf("offline: segment age: %s is negative", o.SegmentAge))
	}
	if o.RowGroupRows < 1 {
		errs = append(errs, fmt.Errorf("offline: row group rows: %d is less than 1", o.RowGroupRows))
	}
	return errors.Join(errs...)
}

// Log is the offline log: it implements featurestore.EventLog, keeps one
// WAL per store shard, and turns sealed WAL segments into Parquet files in
// a background goroutine. Its methods are safe for concurrent use as
// featurestore.EventLog documents; Close stops the converter.
type Log struct {
	dir  string
	opts Options

	mu     sync.Mutex
	shards map[int]*shardLog

	// files guards the set of files readers see: a reader holds it for
	// reading while it lists and reads; the converter holds it for writing
	// while it renames Parquet files in and deletes the segment they came
	// from, and retention while it deletes days.
	files sync.RWMutex

	jobs chan convJob
	// held counts, by shard, the HoldConversion calls not yet released;
	// the converter defers those shards' segments. wake tells it of a
	// release.
	held struct {
		sync.Mutex
		n map[int]int
	}
	wake      chan struct{}
	stopc     chan struct{}
	donec     chan struct{}
	closeOnce sync.Once
	convErr   error // last conversion error, for Close
	convMu    sync.Mutex
}

type convJob struct {
	shard int
	seg   uint64
}

// shardLog is one shard's WAL. The fields above mu are owned by the shard's
// writer goroutine (EventLog's calls for that shard).
type shardLog struct {
	id  int
	dir string

	f        vfs.File
	seg      uint64
	size     int64 // bytes in f, including the frame of a pending commit
	segStart time.Time
	nextLSN  int64

	rows      []byte // encoded rows since the last Commit
	nrows     int
	firstLSN  int64
	ids       map[*featurestore.Schema]uint64
	defs      []*Schema
	views     []int64
	frame     []byte   // the pending frame, as written at prevSize
	prevSize  int64    // size before the pending frame
	sealed    []uint64 // segments sealed, handed to the converter after a synced commit
	needSync  bool     // the next commit must be synced (a rotation is pending)
	lastWrite int64    // commit clock of the pending frame
	synced    bool     // the pending frame was fsynced by Commit
	// pendingMarker is a backfill's marker (MarkRebuild), written with the
	// next commit (after a frame of that commit's own; see Commit).
	pendingMarker *marker
	markerWritten bool

	mu struct {
		sync.Mutex
		seg     uint64 // committed position
		off     int64
		lsn     int64
		markers []marker // committed backfill markers
		// damaged are the shard's quarantined WAL files (damage.go);
		// scans of the shard fail while there are any.
		damaged      []string
		droppedBytes int64 // cut past the committed position by Recover
		lostBytes    int64 // committed, missing from the end of the WAL at Recover
	}
}

const (
	walDir     = "wal"
	frameHead  = 8
	maxFrame   = 1 << 30
	posVersion = 1
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Open opens (creating) the offline log under dir and starts its
// converter. The store then calls Recover for each shard as it opens.
func Open(dir string, opts Options) (*Log, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if err := opts.FS.MkdirAll(filepath.Join(dir, walDir), 0o755); err != nil {
		return nil, fmt.Errorf("offline: create %s: %w", dir, err)
	}
	l := &Log{
		dir:    dir,
		opts:   opts,
		shards: make(map[int]*shardLog),
		jobs:   make(chan convJob, 1024),
		stopc:  make(chan struct{}),
		donec:  make(chan struct{}),
		wake:   make(chan struct{}, 1),
	}
	l.held.n = map[int]int{}
	go l.convert()
	return l, nil
}

// Dir returns the log's directory.
func (l *Log) Dir() string { return l.dir }

var _ featurestore.EventLog = (*Log)(nil)

func (l *Log) shard(id int) *shardLog {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.shards[id]
}

func segName(seg uint64) string { return fmt.Sprintf("%020d.wal", seg) }

// listSegments returns the segment numbers in dir, ascending.
func listSegments(fs vfs.FS, dir string) ([]uint64, error) {
	names, err := fs.List(dir)
	if err != nil {
		return nil, err
	}
	var out []uint64
	for _, name := range names {
		if !strings.HasSuffix(name, ".wal") {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSuffix(name, ".wal"), 10, 64)
		if err != nil {
			continue
		}
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

func encodePos(seg uint64, off, lsn int64) []byte {
	b := []byte{posVersion}
	b = binary.BigEndian.AppendUint64(b, seg)
	b = binary.BigEndian.AppendUint64(b, uint64(off))
	return binary.BigEndian.AppendUint64(b, uint64(lsn))
}

func decodePos(b []byte) (seg uint64, off, lsn int64, err error) {
	if len(b) != 25 || b[0] != posVersion {
		return 0, 0, 0, corruptf("log position %x", b)
	}
	return binary.BigEndian.Uint64(b[1:]), int64(binary.BigEndian.Uint64(b[9:])), int64(binary.BigEndian.Uint64(b[17:])), nil
}

// Recover implements featurestore.EventLog: it cuts the shard's WAL back to
// the position the store committed, checks what it keeps (see verify) and
// queues sealed segments for conversion.
func (l *Log) Recover(shard int, committed []byte) error {
	dir := walShardDir(l.dir, shard)
	fs := l.opts.FS
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("offline: %w", err)
	}
	segs, err := listSegments(fs, dir)
	if err != nil {
		return fmt.Errorf("offline: list %s: %w", dir, err)
	}
	sl := &shardLog{id: shard, dir: dir, ids: make(map[*featurestore.Schema]uint64)}
	var seg uint64 = 1
	var off, lsn int64
	if committed != nil {
		if seg, off, lsn, err = decodePos(committed); err != nil {
			return fmt.Errorf("offline: shard %d: %w", shard, err)
		}
	}
	var dropped int64
	var older []uint64
	for _, s := range segs {
		switch {
		case committed == nil || s > seg:
			// Nothing of it was committed: the store lost those events too
			// (push callers saw an error; Kafka reads them again).
			path := filepath.Join(dir, segName(s))
			if st, err := fs.Stat(path); err == nil {
				dropped += st.Size()
			}
			if err := fs.Remove(path); err != nil {
				return fmt.Errorf("offline: %w", err)
			}
		case s < seg:
			older = append(older, s)
		}
	}
	v, err := l.verify(shard, dir, older, seg, off, lsn, committed != nil)
	if err != nil {
		return err
	}
	dropped += v.dropped
	path := filepath.Join(dir, segName(v.seg))
	_, serr := fs.Stat(path)
	f, err := fs.OpenReadWrite(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("offline: %w", err)
	}
	if errors.Is(serr, os.ErrNotExist) {
		// A committed position will name this file: make its name durable
		// first, so that a missing committed segment can only be damage.
		if err := syncDir(fs, dir); err != nil {
			f.Close()
			return err
		}
	}
	if err := truncate(f, v.off); err != nil {
		f.Close()
		return fmt.Errorf("offline: truncate %s: %w", path, err)
	}
	markers, err := loadMarkers(fs, dir, seg, v.markerOff, committed != nil)
	if err != nil {
		f.Close()
		return err
	}
	damaged, err := listDamaged(fs, dir)
	if err != nil {
		f.Close()
		return err
	}
	sl.f, sl.seg, sl.size, sl.nextLSN, sl.segStart = f, v.seg, v.off, lsn, l.opts.Now()
	sl.prevSize = v.off
	sl.mu.seg, sl.mu.off, sl.mu.lsn, sl.mu.markers = v.seg, v.off, lsn, markers
	sl.mu.damaged, sl.mu.droppedBytes, sl.mu.lostBytes = damaged, dropped, v.lost
	l.mu.Lock()
	if old := l.shards[shard]; old != nil && old.f != nil {
		old.f.Close()
	}
	l.shards[shard] = sl
	l.mu.Unlock()
	for _, s := range v.convert {
		l.enqueue(shard, s)
	}
	return nil
}

// Append implements featurestore.EventLog. It encodes the row into the
// shard's pending frame: no I/O.
func (l *Log) Append(shard int, w *featurestore.Write, folded []featurestore.ViewKey) {
	sl := l.shard(shard)
	if sl.nrows == 0 {
		sl.firstLSN = sl.nextLSN
	}
	fs := w.Schema
	if fs == nil {
		fs = &noSchema
	}
	id, ok := sl.ids[fs]
	if !ok {
		id = uint64(len(sl.defs))
		sl.ids[fs] = id
		sl.defs = append(sl.defs, schemaOf(fs))
	}
	sl.views = sl.views[:0]
	for _, vk := range folded {
		sl.views = append(sl.views, ViewKeyInt(vk))
	}
	sl.rows = binary.AppendUvarint(sl.rows, id)
	sl.rows = appendRowBody(sl.rows, w.IngestMillis, w.EventMillis, w.Entity, w.Position, sl.views, w.Fields, len(fs.Names))
	sl.nrows++
	sl.nextLSN++
}

var noSchema featurestore.Schema

// Commit implements featurestore.EventLog: it writes the pending rows as one
// frame (fsynced when the batch is, or when the segment rotated) and
// returns the position after it. A commit with no rows writes no frame,
// unless it carries a backfill's marker, which is written after an empty
// frame of its own, with the position after that frame.
func (l *Log) Commit(shard int, sync bool, nowMillis int64) ([]byte, bool, error) {
	sl := l.shard(shard)
	sl.prevSize = sl.size
	sl.lastWrite = nowMillis
	rotate := sl.size > 0 && (sl.size >= l.opts.SegmentBytes || l.opts.Now().Sub(sl.segStart) >= l.opts.SegmentAge)
	if rotate {
		// Sealed segments are whole frames only (a failed commit's frame
		// whose truncation failed would otherwise stay): readers of a
		// sealed segment take any other byte for damage.
		if err := truncate(sl.f, sl.size); err != nil {
			return nil, false, fmt.Errorf("offline: seal segment: %w", err)
		}
		if err := sl.f.Sync(); err != nil {
			return nil, false, fmt.Errorf("offline: sync segment: %w", err)
		}
		nf, err := l.opts.FS.Create(filepath.Join(sl.dir, segName(sl.seg+1)), vfs.WriteCategoryUnspecified)
		if err != nil {
			return nil, false, fmt.Errorf("offline: rotate segment: %w", err)
		}
		if err := syncDir(l.opts.FS, sl.dir); err != nil {
			nf.Close()
			return nil, false, err
		}
		sl.f.Close()
		sl.sealed = append(sl.sealed, sl.seg)
		sl.f, sl.seg, sl.size, sl.prevSize, sl.segStart = nf, sl.seg+1, 0, 0, l.opts.Now()
		sl.needSync = true
	}
	// A backfill's batch (Store.Rebuild) has no rows: it gets a frame
	// anyway, an empty one, so that its marker's position, the position
	// after the frame, is past every position committed before. A batch
	// the store never commits then takes its marker with it when the WAL
	// is cut back to the committed position (Committed with an error, or
	// Recover after a crash between the marker's fsync and the batch's).
	if sl.nrows > 0 || sl.pendingMarker != nil {
		if sl.nrows == 0 {
			sl.firstLSN = sl.nextLSN
		}
		f := sl.frame[:0]
		f = append(f, make([]byte, frameHead)...)
		f = binary.AppendUvarint(f, uint64(sl.firstLSN))
		f = binary.AppendVarint(f, nowMillis)
		f = binary.AppendUvarint(f, uint64(len(sl.defs)))
		for _, d := range sl.defs {
			f = appendSchema(f, d)
		}
		f = binary.AppendUvarint(f, uint64(sl.nrows))
		f = append(f, sl.rows...)
		binary.LittleEndian.PutUint32(f[0:], uint32(len(f)-frameHead))
		binary.LittleEndian.PutUint32(f[4:], crc32.Checksum(f[frameHead:], crcTable))
		sl.frame = f
		if _, err := sl.f.WriteAt(f, sl.size); err != nil {
			return nil, false, fmt.Errorf("offline: write segment: %w", err)
		}
		sl.size += int64(len(f))
	}
	sl.synced = sync || sl.needSync
	if sl.synced {
		if err := sl.f.Sync(); err != nil {
			return nil, false, fmt.Errorf("offline: sync segment: %w", err)
		}
	}
	if m := sl.pendingMarker; m != nil {
		m.CommitMillis, m.Seg, m.Off = nowMillis, sl.seg, sl.size
		if err := appendMarker(l.opts.FS, sl.dir, *m, true); err != nil {
			return nil, false, err
		}
		sl.markerWritten = true
	}
	// A rotated segment is handed to the Parquet converter only once a
	// synced batch records a position past it, so a power loss can never
	// leave Parquet rows the store does not have.
	return encodePos(sl.seg, sl.size, sl.nextLSN), sl.needSync, nil
}

// Committed implements featurestore.EventLog. On success, when the batch
// became visible after the clock Commit stamped its frame with, it restamps
// the frame (and a backfill's marker) with visibleMillis: served exports
// count rows as visible from their commit time, and a read between the two
// instants did not see them. This happens before the committed position
// moves past the frame, so no reader ever reads a frame being rewritten.
func (l *Log) Committed(shard int, visibleMillis int64, err error) {
	sl := l.shard(shard)
	sl.rows = sl.rows[:0]
	sl.nrows = 0
	clear(sl.ids)
	sl.defs = sl.defs[:0]
	m := sl.pendingMarker
	sl.pendingMarker = nil
	if err != nil {
		// The store dropped these events' state: drop their rows.
		if terr := truncate(sl.f, sl.prevSize); terr != nil {
			l.opts.Logger.Error("offline: cut a failed commit's rows from the WAL", "shard", shard, "err", terr)
		}
		if sl.markerWritten {
			sl.mu.Lock()
			committed := sl.mu.seg
			off := sl.mu.off
			sl.mu.Unlock()
			if _, merr := loadMarkers(l.opts.FS, sl.dir, committed, off, true); merr != nil {
				l.opts.Logger.Error("offline: drop a failed backfill's marker", "shard", shard, "err", merr)
			}
		}
		sl.markerWritten = false
		sl.size = sl.prevSize
		sl.mu.Lock()
		sl.nextLSN = sl.mu.lsn
		sl.mu.Unlock()
		return
	}
	if visibleMillis > sl.lastWrite {
		if sl.size > sl.prevSize {
			l.restamp(sl, visibleMillis)
		}
		if m != nil && sl.markerWritten {
			l.restampMarker(sl, m, visibleMillis)
		}
	}
	sl.mu.Lock()
	sl.mu.seg, sl.mu.off, sl.mu.lsn = sl.seg, sl.size, sl.nextLSN
	if m != nil && sl.markerWritten {
		sl.mu.markers = append(sl.mu.markers, *m)
	}
	sl.mu.Unlock()
	sl.markerWritten = false
	if sl.needSync {
		sl.needSync = false
		for _, s := range sl.sealed {
			l.enqueue(shard, s)
		}
		sl.sealed = sl.sealed[:0]
	}
}

// restamp rewrites the commit time of the frame the last Commit wrote (at
// sl.prevSize, still in sl.frame) to visibleMillis, in place, with the
// frame's checksum: one write of the header bytes from the checksum to the
// commit time. The segment is not fsynced for it: if the write never
// reaches the disk the frame keeps its first stamp, which misplaces only
// reads made between the two stamps, before a crash.
//
// The frame cannot grow: the position after it is already stored with the
// batch. So when visibleMillis needs a varint of another length, the frame
// keeps its stamp. For a clock near the present both take 6 bytes; the
// length changes at 2^41 ms (2039-09-07), so one commit in decades keeps
// the time it was stamped with, as every commit did before restamping, and
// commit times stay monotone along the log (the next stamp is read after
// visibleMillis).
func (l *Log) restamp(sl *shardLog, visibleMillis int64) {
	f := sl.frame
	_, n := binary.Uvarint(f[frameHead:]) // first LSN
	at := frameHead + n
	_, old := binary.Varint(f[at:])
	var stamp [binary.MaxVarintLen64]byte
	if binary.PutVarint(stamp[:], visibleMillis) != old {
		l.opts.Logger.Debug("offline: the visible time does not fit the frame's commit time; keeping the commit time",
			"shard", sl.id, "commit_ms", sl.lastWrite, "visible_ms", visibleMillis)
		return
	}
	end := at + old
	var orig [4 + 2*binary.MaxVarintLen64]byte
	saved := orig[:copy(orig[:], f[4:end])]
	copy(f[at:], stamp[:old])
	binary.LittleEndian.PutUint32(f[4:], crc32.Checksum(f[frameHead:], crcTable))
	if _, err := sl.f.WriteAt(f[4:end], sl.prevSize+4); err != nil {
		// Put the first stamp back, on disk too: a partial write would
		// fail the frame's checksum.
		copy(f[4:], saved)
		if _, rerr := sl.f.WriteAt(saved, sl.prevSize+4); rerr != nil {
			l.opts.Logger.Error("offline: restamp a WAL frame; it may fail its checksum",
				"shard", sl.id, "segment", sl.seg, "offset", sl.prevSize, "err", err, "restore_err", rerr)
			return
		}
		l.opts.Logger.Warn("offline: restamp a WAL frame; it keeps its commit time", "shard", sl.id, "err", err)
		return
	}
	// A frame that Commit synced must not be left torn by a power loss
	// between the checksum and the stamp: the rewrite is left to the page
	// cache only when it lies in one 512-byte sector, which disks write
	// whole. Otherwise (about one frame in 40) it is synced now.
	if sl.synced && (sl.prevSize+4)/512 != (sl.prevSize+int64(end)-1)/512 {
		if err := sl.f.Sync(); err != nil {
			l.opts.Logger.Error("offline: sync a restamped WAL frame", "shard", sl.id, "segment", sl.seg, "err", err)
		}
	}
}

// restampMarker moves the backfill marker the last Commit wrote to
// visibleMillis: in memory, and on disk by a restamp line after the
// marker's (see marker), not fsynced: lost or torn, it leaves the marker
// with its first stamp, as a lost frame restamp leaves the frame.
func (l *Log) restampMarker(sl *shardLog, m *marker, visibleMillis int64) {
	r := *m
	r.VisibleMillis = visibleMillis
	if err := appendMarker(l.opts.FS, sl.dir, r, false); err != nil {
		l.opts.Logger.Warn("offline: restamp a backfill marker; it keeps its commit time", "shard", sl.id, "err", err)
		return
	}
	m.CommitMillis = visibleMillis
}

func (l *Log) enqueue(shard int, seg uint64) {
	select {
	case l.jobs <- convJob{shard: shard, seg: seg}:
	case <-l.stopc:
	}
}

// Close stops the converter (segments not yet converted stay in the WAL
// and are converted on the next Open) and closes the WAL files. Call it
// after the store is closed. It is idempotent.
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		close(l.stopc)
		<-l.donec
		l.mu.Lock()
		for _, sl := range l.shards {
			if sl.f != nil {
				sl.f.Close()
			}
		}
		l.mu.Unlock()
	})
	l.convMu.Lock()
	defer l.convMu.Unlock()
	return l.convErr
}

// truncate cuts f to size: vfs.File has no Truncate, the files of
// vfs.Default have one (see Options.FS).
func truncate(f vfs.File, size int64) error {
	t, ok := f.(interface{ Truncate(int64) error })
	if !ok {
		return fmt.Errorf("offline: truncate: %T has no Truncate (Options.FS)", f)
	}
	return t.Truncate(size)
}

func syncDir(fs vfs.FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return fmt.Errorf("offline: sync dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("offline: sync dir %s: %w", dir, err)
	}
	return nil
}

// walFrame is one decoded frame.
type walFrame struct {
	off          int64 // in its segment
	firstLSN     int64
	commitMillis int64
	defs         []*Schema
	nrows        int
	body         []byte // the rows
}

// readFrames calls fn for each frame of the segment at path up to limit
// bytes (-1: the whole file) and returns the offset after the last frame.
// Every byte up to the limit must belong to a whole frame with a good
// checksum, else the error wraps ErrCorrupt: sealed segments were fsynced
// whole before the next one was made, and the committed segment is whole up
// to the committed position. Only tornOK (a committed segment found shorter
// than its committed position: a power loss before unsynced commits reached
// the disk) lets a torn or unreadable frame end the read quietly. An I/O
// error is returned as it is, never as ErrCorrupt.
func readFrames(fs vfs.FS, path string, limit int64, tornOK bool, fn func(*walFrame) error) (int64, error) {
	return readFramesFrom(fs, path, 0, limit, tornOK, fn)
}

// readFramesFrom is readFrames starting at offset from, a frame boundary
// (a position the log committed); limit and the offsets it returns stay
// offsets in the file.
func readFramesFrom(fs vfs.FS, path string, from, limit int64, tornOK bool, fn func(*walFrame) error) (int64, error) {
	f, err := fs.Open(path)
	if err != nil {
		return 0, fmt.Errorf("offline: %w", err)
	}
	defer f.Close()
	off := from
	var rd io.Reader = f
	if from > 0 {
		// vfs.File has no Seek.
		rd = io.NewSectionReader(f, from, math.MaxInt64-from)
	}
	head := make([]byte, frameHead)
	var buf []byte
	for limit < 0 || off < limit {
		if _, err := io.ReadFull(rd, head); err != nil {
			switch {
			case errors.Is(err, io.EOF) && (limit < 0 || tornOK):
				return off, nil
			case errors.Is(err, io.ErrUnexpectedEOF) && tornOK:
				return off, nil
			case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
				if limit >= 0 {
					return off, corruptf("%s: ends at %d before the committed %d", path, off, limit)
				}
				return off, corruptf("%s: torn frame at %d", path, off)
			}
			return off, fmt.Errorf("offline: read %s: %w", path, err)
		}
		n := binary.LittleEndian.Uint32(head)
		if n > maxFrame || (limit >= 0 && off+frameHead+int64(n) > limit) {
			if tornOK {
				return off, nil
			}
			return off, corruptf("%s: frame at %d has length %d", path, off, n)
		}
		if cap(buf) < int(n) {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(rd, buf); err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				// An I/O error says nothing of the bytes: a segment is
				// quarantined for what it holds, not for a failed read.
				return off, fmt.Errorf("offline: read %s: %w", path, err)
			}
			if tornOK {
				return off, nil
			}
			return off, corruptf("%s: frame at %d: %v", path, off, err)
		}
		if crc32.Checksum(buf, crcTable) != binary.LittleEndian.Uint32(head[4:]) {
			if tornOK {
				return off, nil
			}
			return off, corruptf("%s: frame at %d: checksum mismatch", path, off)
		}
		d := codec.NewDecoder(buf)
		fr := &walFrame{off: off, firstLSN: int64(d.Uvarint()), commitMillis: d.Varint()}
		nd := d.Uvarint()
		for i := uint64(0); i < nd && d.Err() == nil; i++ {
			fr.defs = append(fr.defs, decodeSchema(&d))
		}
		fr.nrows = int(d.Uvarint())
		if d.Err() != nil {
			return off, corruptf("%s: frame at %d: header", path, off)
		}
		fr.body = d.Rest()
		if err := fn(fr); err != nil {
			return off, err
		}
		off += frameHead + int64(n)
	}
	return off, nil
}

// rows decodes a frame's rows, calling fn with each (r is reused).
func (fr *walFrame) rows(shard int, fn func(r *Row) error) error {
	d := codec.NewDecoder(fr.body)
	var r Row
	for i := 0; i < fr.nrows; i++ {
		id := d.Uvarint()
		if d.Err() != nil || id >= uint64(len(fr.defs)) {
			return corruptf("row %d: schema %d", i, id)
		}
		r.schema = fr.defs[id]
		r.shard = int32(shard)
		r.lsn = fr.firstLSN + int64(i)
		r.commitMillis = fr.commitMillis
		decodeRowBody(&d, &r)
		if d.Err() != nil {
			return corruptf("row %d", i)
		}
		if err := fn(&r); err != nil {
			return err
		}
	}
	return nil
}

// CheckWAL reads every frame of shard's WAL segments up to the committed
// position, where a bad checksum is corruption (ErrCorrupt), and returns
// the rows they hold: a consistency check for tests and tools. Call it
// while the shard's writer is idle.
func (l *Log) CheckWAL(shard int) (rows int, err error) {
	sl := l.shard(shard)
	sl.mu.Lock()
	cseg, coff := sl.mu.seg, sl.mu.off
	sl.mu.Unlock()
	segs, err := listSegments(l.opts.FS, sl.dir)
	if err != nil {
		return 0, fmt.Errorf("eventlog: check WAL: %w", err)
	}
	for _, seg := range segs {
		limit := int64(-1)
		switch {
		case seg > cseg:
			return rows, corruptf("segment %d past the committed %d", seg, cseg)
		case seg == cseg:
			limit = coff
		}
		_, err := readFrames(l.opts.FS, filepath.Join(sl.dir, segName(seg)), limit, false, func(fr *walFrame) error {
			rows += fr.nrows
			return nil
		})
		if err != nil {
			return rows, fmt.Errorf("segment %d: %w", seg, err)
		}
	}
	return rows, nil
}
