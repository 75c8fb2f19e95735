package featurestore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/internal/keyenc"
)

// The push journal makes an atomic push all or nothing across shards and
// crashes. WriteBatch writes the validated push to it, synced, before any
// shard sees a part; once every shard has committed its part (with its
// batch marker, dedupe.go) the entry is deleted. An entry still there is
// applied again to the shards that lack its marker: by Open, before the
// store is returned, and by the retrier, in the background with backoff,
// after a shard's commit failed. The journal is its own small Pebble
// database, <store>/journal, keyed by batch ID (docs/format.md).

const journalDirName = "journal"

func journalDir(dir string) string { return filepath.Join(dir, journalDirName) }

// Backoff of the retrier between rounds that left an entry unapplied.
const (
	journalRetryMin = 100 * time.Millisecond
	journalRetryMax = 30 * time.Second
)

// journal is the push journal and the set of its entries not yet applied
// by every shard.
type journal struct {
	db   *pebble.DB
	kick chan struct{} // wakes the retrier; capacity 1, sends never block

	// dbMu guards db against Close: Set and Delete hold it shared (so that
	// concurrent pushes still share the journal's fsync), close holds it
	// exclusively. A push racing Close gets ErrClosed, not a Pebble panic.
	// Lock order: mu before dbMu (finish).
	dbMu     sync.RWMutex
	dbClosed bool

	stopRetrier context.CancelFunc
	donec       chan struct{} // closed when the retrier returns

	mu struct {
		sync.Mutex
		// pending holds every entry in the journal, by batch ID: being
		// journaled, being applied, or waiting for the retrier.
		pending map[string]*journalEntry
	}
}

// journalEntry is one atomic push.
type journalEntry struct {
	id            string
	createdMillis int64
	accepted      int
	writes        []Write

	ready chan struct{} // closed once the entry is durable or failed to be
	err   error         // why it could not be journaled; set before ready closes
	retry bool          // the retrier applies it; guarded by journal.mu
}

// journalCreating marks a journal whose creation has not finished
// (openJournal).
const journalCreating = journalDirName + ".creating"

// openJournal opens the push journal, creating it when it is missing. The
// creation is marked first, durably, by journal.creating, removed once
// Pebble made the database: a creation that failed or crashed halfway (the
// first Open of a store, or of one made before the journal) would
// otherwise leave a journal directory without a MANIFEST, which
// checkJournalDir must refuse (a journal that lost its database lost
// pushes). Beside the mark, the directory held nothing yet: it is removed
// and the creation starts again.
func openJournal(dir string, opts *Options, cache *pebble.Cache) (*journal, error) {
	fs := opts.FS
	po := &pebble.Options{
		Cache:  cache,
		Logger: pebbleLogger{l: opts.Logger.With("part", "journal"), part: "push journal", fatal: opts.Fatalf},
		FS:     fs,
	}
	_, err := fs.Stat(journalDir(dir))
	create := errors.Is(err, os.ErrNotExist) || journalUnfinished(fs, dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("featurestore: open push journal: %w", err)
	}
	if create {
		if err := fs.RemoveAll(journalDir(dir)); err != nil {
			return nil, fmt.Errorf("featurestore: create push journal: %w", err)
		}
		if err := writeFileSync(fs, dir, journalCreating, nil); err != nil {
			return nil, fmt.Errorf("featurestore: create push journal: %w", err)
		}
	} else {
		// A journal without its database lost pushes (checkJournalDir):
		// Pebble must not make a new one.
		po.ErrorIfNotExists = true
	}
	db, err := pebble.Open(journalDir(dir), po)
	if err != nil {
		return nil, fmt.Errorf("featurestore: open push journal: %w", err)
	}
	if create {
		err := fs.Remove(filepath.Join(dir, journalCreating))
		if err == nil {
			err = syncDir(fs, dir)
		}
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("featurestore: create push journal: %w", err)
		}
	}
	j := &journal{db: db, kick: make(chan struct{}, 1), donec: make(chan struct{})}
	j.mu.pending = make(map[string]*journalEntry)
	return j, nil
}

// journalUnfinished reports whether dir holds a journal creation that did
// not finish: journal.creating.
func journalUnfinished(fs vfs.FS, dir string) bool {
	_, err := fs.Stat(filepath.Join(dir, journalCreating))
	return err == nil
}

// load reads the entries a previous process left and registers them as
// pending. Targets are resolved with layouts; a target whose view version
// is gone is dropped.
func (j *journal) load(layouts func(ViewKey) *aggregate.Layout, opts *Options) ([]*journalEntry, error) {
	it, err := j.db.NewIter(nil)
	if err != nil {
		return nil, fmt.Errorf("featurestore: read push journal: %w", err)
	}
	defer it.Close()
	var out []*journalEntry
	for it.First(); it.Valid(); it.Next() {
		if layouts == nil {
			return nil, fmt.Errorf("featurestore: push journal holds pushes to apply and Options.Layouts is nil")
		}
		if v := it.Value(); len(v) > 0 && v[0] == journalVersionLegacy {
			return nil, fmt.Errorf("featurestore: push journal: batch %q is of the layout before partitions: run featured migrate-store", it.Key())
		}
		e, dropped, err := decodeEntry(string(it.Key()), it.Value(), layouts)
		if err != nil {
			return nil, fmt.Errorf("featurestore: push journal: %w", err)
		}
		if dropped > 0 {
			opts.Logger.Warn("journaled push targets view versions that no longer exist; their part is dropped", "batch_id", e.id, "targets", dropped)
		}
		e.ready = make(chan struct{})
		close(e.ready)
		out = append(out, e)
		j.mu.pending[e.id] = e
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("featurestore: read push journal: %w", err)
	}
	return out, nil
}

// begin journals a push, synced, or joins the entry of an earlier push with
// the same ID still pending (a retry: the journaled writes are applied, not
// the retry's).
func (j *journal) begin(ctx context.Context, id string, ws []Write, nowMillis int64) (*journalEntry, error) {
	j.mu.Lock()
	if e, ok := j.mu.pending[id]; ok {
		j.mu.Unlock()
		select {
		case <-e.ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if e.err != nil {
			return nil, e.err
		}
		return e, nil
	}
	e := &journalEntry{id: id, createdMillis: nowMillis, accepted: len(ws), writes: ws, ready: make(chan struct{})}
	j.mu.pending[id] = e
	j.mu.Unlock()

	val, err := appendEntry(nil, e)
	if err == nil {
		err = j.write(func(db *pebble.DB) error { return db.Set([]byte(id), val, pebble.Sync) })
	}
	if err != nil {
		e.err = fmt.Errorf("featurestore: journal push %q: %w", id, err)
		j.mu.Lock()
		delete(j.mu.pending, id)
		j.mu.Unlock()
	}
	close(e.ready)
	return e, e.err
}

// finish deletes an entry every shard has committed. The deletion is not
// synced: if a crash loses it, Open finds every shard's marker and applies
// nothing.
func (j *journal) finish(e *journalEntry, logger interface{ Error(string, ...any) }) {
	j.mu.Lock()
	defer j.mu.Unlock()
	// A later push with the same ID may have journaled anew once e was
	// gone; its record is not e's to delete.
	if j.mu.pending[e.id] != e {
		return
	}
	delete(j.mu.pending, e.id)
	if err := j.write(func(db *pebble.DB) error { return db.Delete([]byte(e.id), pebble.NoSync) }); err != nil {
		logger.Error("delete applied push from journal; it is replayed as a duplicate on the next open", "batch_id", e.id, "err", err)
	}
}

// write runs fn on the journal's database unless it is closed.
func (j *journal) write(fn func(*pebble.DB) error) error {
	j.dbMu.RLock()
	defer j.dbMu.RUnlock()
	if j.dbClosed {
		return ErrClosed
	}
	return fn(j.db)
}

// close closes the journal's database once no write is under way.
func (j *journal) close() error {
	j.dbMu.Lock()
	defer j.dbMu.Unlock()
	if j.dbClosed {
		return nil
	}
	j.dbClosed = true
	return j.db.Close()
}

// retryLater hands e to the retrier.
func (j *journal) retryLater(e *journalEntry) {
	j.mu.Lock()
	e.retry = true
	j.mu.Unlock()
	select {
	case j.kick <- struct{}{}:
	default:
	}
}

// toRetry lists the entries the retrier owns.
func (j *journal) toRetry() []*journalEntry {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []*journalEntry
	for _, e := range j.mu.pending {
		if e.retry {
			out = append(out, e)
		}
	}
	return out
}

// oldest returns the creation time of the oldest pending entry.
func (j *journal) oldest() (int64, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	var m int64 = math.MaxInt64
	for _, e := range j.mu.pending {
		m = min(m, e.createdMillis)
	}
	return m, len(j.mu.pending) > 0
}

// Pending returns the number of journaled pushes not yet applied by every
// shard (being applied, or waiting for the background retry).
func (s *Store) Pending() int {
	s.journal.mu.Lock()
	defer s.journal.mu.Unlock()
	return len(s.journal.mu.pending)
}

// replayJournal applies the entries a previous process left, before Open
// returns. One that fails (the disk is still full) is left to the retrier,
// and the store is served meanwhile: refusing to open would stop lookups
// too, for a push that readers see at most in part until it commits.
func (s *Store) replayJournal() error {
	es, err := s.journal.load(s.opts.Layouts, &s.opts)
	if err != nil {
		return err
	}
	for _, e := range es {
		out, err := s.applyEntry(context.Background(), e)
		if err != nil {
			s.opts.Logger.Error("replay journaled push; retrying in the background", "batch_id", e.id, "err", err)
			s.journal.retryLater(e)
			continue
		}
		s.opts.Logger.Info("replayed journaled push", "batch_id", e.id, "parts", out.parts, "already_applied", out.skipped)
		s.journal.finish(e, s.opts.Logger)
	}
	return nil
}

// startRetrier starts the goroutine that applies the entries handed to
// retryLater, with backoff, until every shard has committed them.
func (s *Store) startRetrier() {
	j := s.journal
	ctx, cancel := context.WithCancel(context.Background())
	j.stopRetrier = cancel
	go func() {
		defer close(j.donec)
		backoff := journalRetryMin
		timer := time.NewTimer(0)
		<-timer.C
		armed := false
		for {
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case <-timer.C:
				armed = false
			case <-j.kick:
				if armed {
					continue // a new failure waits for the round already due
				}
			}
			failed := 0
			for _, e := range j.toRetry() {
				if _, err := s.applyEntry(ctx, e); err != nil {
					if ctx.Err() != nil {
						return
					}
					failed++
					s.opts.Logger.Warn("apply journaled push; retrying", "batch_id", e.id, "in", backoff, "err", err)
					continue
				}
				s.opts.Logger.Info("applied journaled push", "batch_id", e.id)
				j.finish(e, s.opts.Logger)
			}
			if failed == 0 {
				backoff = journalRetryMin
				continue
			}
			timer.Reset(backoff)
			armed = true
			backoff = min(2*backoff, journalRetryMax)
		}
	}()
}

// stop stops the retrier and waits for it.
func (j *journal) stop() {
	if j.stopRetrier != nil {
		j.stopRetrier()
		<-j.donec
	}
}

// Entry encoding (version 2; version 1, of the layout before partitions,
// had no partition), all integers big-endian or varints:
//
//	u8 version | u64 created millis | uvarint accepted
//	uvarint schemas, each: str source | key kinds (keyenc.AppendKinds: u8 kind, or u8 0x80|n and n kinds) | uvarint fields, each: str name | u8 kind
//	uvarint writes, each: uvarint schema (0: none, else index+1) | str entity |
//	  uvarint partition | varint event millis | varint ingest millis | uvarint fields, each: value |
//	  uvarint targets, each: u32 view id | u32 version
//
// str is uvarint length | bytes; a value is u8 kind then, for int64 and
// bool, a varint; for float64, its u64 bits; for string, a str.
const journalVersion = 2

// journalVersionLegacy is the entry of the layout before partitions, read
// only by MigrateStore, which places its writes (their Partition is 0).
const journalVersionLegacy = 1

var errCorruptEntry = errors.New("corrupt entry")

func appendEntry(dst []byte, e *journalEntry) ([]byte, error) {
	dst = append(dst, journalVersion)
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.createdMillis))
	dst = binary.AppendUvarint(dst, uint64(e.accepted))
	schemas := map[*Schema]int{}
	var order []*Schema
	for i := range e.writes {
		if sc := e.writes[i].Schema; sc != nil {
			if _, ok := schemas[sc]; !ok {
				schemas[sc] = len(order) + 1
				order = append(order, sc)
			}
		}
	}
	dst = binary.AppendUvarint(dst, uint64(len(order)))
	for _, sc := range order {
		dst = appendStr(dst, sc.Source)
		dst = keyenc.AppendKinds(dst, sc.KeyKinds)
		dst = binary.AppendUvarint(dst, uint64(len(sc.Names)))
		for i, n := range sc.Names {
			dst = appendStr(dst, n)
			dst = append(dst, byte(sc.Kinds[i]))
		}
	}
	dst = binary.AppendUvarint(dst, uint64(len(e.writes)))
	for i := range e.writes {
		w := &e.writes[i]
		if w.Position != nil {
			return nil, fmt.Errorf("write %d has a Kafka position: only pushes are journaled", i)
		}
		dst = binary.AppendUvarint(dst, uint64(schemas[w.Schema]))
		dst = appendStr(dst, string(w.Entity))
		dst = binary.AppendUvarint(dst, uint64(w.Partition))
		dst = binary.AppendVarint(dst, w.EventMillis)
		dst = binary.AppendVarint(dst, w.IngestMillis)
		dst = binary.AppendUvarint(dst, uint64(len(w.Fields)))
		for _, v := range w.Fields {
			dst = append(dst, byte(v.Kind))
			switch v.Kind {
			case aggregate.KindNull:
			case aggregate.KindInt64, aggregate.KindBool:
				dst = binary.AppendVarint(dst, v.I)
			case aggregate.KindFloat64:
				dst = binary.BigEndian.AppendUint64(dst, math.Float64bits(v.F))
			case aggregate.KindString:
				dst = appendStr(dst, v.S)
			default:
				return nil, fmt.Errorf("write %d: field of kind %v cannot be journaled", i, v.Kind)
			}
		}
		dst = binary.AppendUvarint(dst, uint64(len(w.Targets)))
		for _, t := range w.Targets {
			dst = binary.BigEndian.AppendUint32(dst, t.Key.ID)
			dst = binary.BigEndian.AppendUint32(dst, t.Key.Version)
		}
	}
	return dst, nil
}

func appendStr(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// entryReader decodes an entry; the first error sticks.
type entryReader struct {
	b   []byte
	err error
}

func (r *entryReader) fail() {
	if r.err == nil {
		r.err = errCorruptEntry
	}
	r.b = nil
}

func (r *entryReader) byte() byte {
	if len(r.b) < 1 {
		r.fail()
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *entryReader) u32() uint32 {
	if len(r.b) < 4 {
		r.fail()
		return 0
	}
	v := binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *entryReader) u64() uint64 {
	if len(r.b) < 8 {
		r.fail()
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *entryReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *entryReader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

// count reads a length and checks it against the bytes left, each item
// taking at least one byte, so a corrupt length cannot allocate much.
func (r *entryReader) count() int {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail()
		return 0
	}
	return int(n)
}

func (r *entryReader) str() string {
	n := r.count()
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// decodeEntry decodes the entry of batch id, resolving its targets with
// layouts. dropped counts the targets whose view version is gone.
func decodeEntry(id string, v []byte, layouts func(ViewKey) *aggregate.Layout) (e *journalEntry, dropped int, err error) {
	r := &entryReader{b: v}
	version := r.byte()
	if version != journalVersion && version != journalVersionLegacy {
		return nil, 0, fmt.Errorf("batch %q: %w: unknown version", id, errCorruptEntry)
	}
	e = &journalEntry{id: id, createdMillis: int64(r.u64()), accepted: int(r.uvarint())}
	schemas := make([]*Schema, r.count())
	for i := range schemas {
		sc := &Schema{Source: r.str()}
		sc.KeyKinds = keyenc.ReadKinds(r.byte)
		nf := r.count()
		for k := 0; k < nf; k++ {
			sc.Names = append(sc.Names, r.str())
			sc.Kinds = append(sc.Kinds, aggregate.Kind(r.byte()))
		}
		schemas[i] = sc
	}
	resolved := map[ViewKey]*aggregate.Layout{}
	e.writes = make([]Write, r.count())
	for i := range e.writes {
		w := &e.writes[i]
		if si := r.uvarint(); si > 0 {
			if si > uint64(len(schemas)) {
				r.fail()
				break
			}
			w.Schema = schemas[si-1]
		}
		w.Entity = []byte(r.str())
		if version == journalVersion {
			w.Partition = int(r.uvarint())
		}
		w.EventMillis = r.varint()
		w.IngestMillis = r.varint()
		w.Fields = make([]aggregate.Value, r.count())
		for k := range w.Fields {
			f := &w.Fields[k]
			f.Kind = aggregate.Kind(r.byte())
			switch f.Kind {
			case aggregate.KindNull:
			case aggregate.KindInt64, aggregate.KindBool:
				f.I = r.varint()
			case aggregate.KindFloat64:
				f.F = math.Float64frombits(r.u64())
			case aggregate.KindString:
				f.S = r.str()
			default:
				r.fail()
			}
		}
		nt := r.count()
		for k := 0; k < nt; k++ {
			vk := ViewKey{ID: r.u32(), Version: r.u32()}
			l, ok := resolved[vk]
			if !ok && r.err == nil {
				l = layouts(vk)
				resolved[vk] = l
			}
			if l == nil {
				dropped++
				continue
			}
			w.Targets = append(w.Targets, Target{Key: vk, Layout: l})
		}
		if r.err != nil {
			break
		}
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail()
	}
	if r.err != nil {
		return nil, 0, fmt.Errorf("batch %q: %w", id, r.err)
	}
	return e, dropped, nil
}
