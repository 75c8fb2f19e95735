package featurestore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/cockroachdb/pebble/v2"

	"github.com/featured-dev/featured/aggregate"
)

// ErrCorrupt is data on disk that does not read back as it was written: a
// Pebble block whose checksum does not match, or a stored state that does
// not decode. Read returns it (wrapped, naming the shard) for the entity
// whose data is damaged; every other entity still reads.
var ErrCorrupt = errors.New("featurestore: corrupt data on disk")

// ErrQuarantined is a write the store refused because the state it would
// fold into is corrupt (see Rejection and DeadLetter). It matches
// ErrCorrupt.
var ErrQuarantined = fmt.Errorf("%w: state quarantined", ErrCorrupt)

// Rejection is a pushed write (Write) that the store did not apply. Index
// is its index in the slice given to Write.
type Rejection struct {
	Index int
	Err   error
}

// damage is what is known to be wrong with one shard's data on disk. Pebble's
// event listener and logger write it from whatever goroutine found the
// corruption (a lookup, a compaction); Read and the writer count into it;
// Stats and Ready read it. Its own mutex, taken last: nothing is called
// while it is held.
type damage struct {
	shard int
	log   *slog.Logger

	mu struct {
		sync.Mutex
		reports      uint64 // Pebble DataCorruption events
		corruptReads uint64 // Reads answered with ErrCorrupt
		first        string // the first report, for Ready
		writeStalls  uint64 // Pebble WriteStallBegin events (metrics only)
	}
}

func newDamage(shard int, log *slog.Logger) *damage {
	return &damage{shard: shard, log: log.With("shard", shard)}
}

// corruption records Pebble's report of on-disk corruption (a block whose
// checksum does not match, a table that cannot be opened). Pebble calls it
// synchronously on the path that read the block and then returns a
// corruption error there (pebble.IsCorruptionError), so the shard goes on
// serving the keys whose blocks are intact. It must not block.
func (d *damage) corruption(info pebble.DataCorruptionInfo) {
	msg := info.String()
	if info.Details != nil {
		msg += ": " + info.Details.Error()
	}
	d.mu.Lock()
	d.mu.reports++
	if d.mu.first == "" {
		d.mu.first = msg
	}
	d.mu.Unlock()
	d.log.Error("pebble: on-disk corruption; the shard is damaged", "path", info.Path, "bounds", info.Bounds.String(), "err", info.Details)
}

// corruptRead counts a Read answered with ErrCorrupt.
func (d *damage) corruptRead() {
	d.mu.Lock()
	d.mu.corruptReads++
	d.mu.Unlock()
}

// ready returns nil while Pebble reported no corruption in the shard, else
// an error naming the shard and the first report.
func (d *damage) ready() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.mu.reports == 0 {
		return nil
	}
	return fmt.Errorf("shard %d: %w: %d corruption reports since open, the first: %s", d.shard, ErrCorrupt, d.mu.reports, d.mu.first)
}

func (d *damage) fill(st *ShardStats) {
	d.mu.Lock()
	st.CorruptionReports = d.mu.reports
	st.CorruptReads = d.mu.corruptReads
	st.Damaged = d.mu.first
	st.WriteStalls = d.mu.writeStalls
	d.mu.Unlock()
}

// eventListener routes Pebble's corruption reports to d instead of Pebble's
// default, which calls Logger.Fatalf and so ends the process on the first
// lookup that reads a bad block. It also counts write stalls, the shard's
// one other event worth a metric; they live here because this is the
// shard's only listener.
func (d *damage) eventListener() *pebble.EventListener {
	return &pebble.EventListener{
		DataCorruption: d.corruption,
		BackgroundError: func(err error) {
			d.log.Error("pebble: background error", "err", err)
		},
		WriteStallBegin: func(pebble.WriteStallBeginInfo) {
			d.mu.Lock()
			d.mu.writeStalls++
			d.mu.Unlock()
		},
	}
}

// Ready returns nil when no shard is known damaged, else an error naming
// each damaged shard (Pebble reported on-disk corruption in it since Open).
// It is cheap and safe for concurrent use: readiness probes call it.
func (s *Store) Ready() error {
	var errs []error
	for _, sh := range s.shards {
		if err := sh.damage.ready(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// readError turns an error of reading a state of shard sh into Read's
// error: corruption (Pebble's or a state that does not decode) matches
// ErrCorrupt and is counted.
func (sh *shard) readError(vk ViewKey, err error) error {
	if pebble.IsCorruptionError(err) || errors.Is(err, aggregate.ErrCorrupt) {
		sh.damage.corruptRead()
		return fmt.Errorf("featurestore: read view %d@v%d: shard %d: %w: %w", vk.ID, vk.Version, sh.id, ErrCorrupt, err)
	}
	return fmt.Errorf("featurestore: read view %d@v%d: shard %d: %w", vk.ID, vk.Version, sh.id, err)
}

// quarantineKey is where the raw bytes of a state that does not decode are
// copied: 'q' · the state key (docs/format.md).
func quarantineKey(stateKey []byte) []byte {
	return append([]byte{prefixQuarantine}, stateKey...)
}

// loadQuarantine reads the quarantined state keys into the writer's set.
func (s *shard) loadQuarantine() error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixQuarantine}, UpperBound: []byte{prefixQuarantine + 1}})
	if err != nil {
		return fmt.Errorf("shard %d: read quarantine: %w", s.id, err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		s.quarantined[string(it.Key()[1:])] = struct{}{}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("shard %d: read quarantine: %w", s.id, err)
	}
	s.mu.stats.QuarantinedStates = len(s.quarantined)
	return nil
}

// quarantine sets aside the state under key, whose stored bytes raw do not
// decode: it copies raw under quarantineKey in the pending batch and refuses
// every later write to key (see doc.go, Corruption). Runs on the writer.
func (s *shard) quarantine(key, raw []byte, err error) error {
	s.quarantined[string(key)] = struct{}{}
	_ = s.batch.Set(quarantineKey(key), raw, nil)
	s.mu.Lock()
	s.mu.stats.QuarantinedStates = len(s.quarantined)
	s.mu.Unlock()
	s.opts.Logger.Error("state does not decode; quarantined, its writes are refused until the view is rebuilt or dropped",
		"shard", s.id, "key", fmt.Sprintf("%x", key), "bytes", len(raw), "err", err)
	return fmt.Errorf("shard %d: state %x: %w: %w", s.id, key, ErrQuarantined, err)
}

// unquarantineView forgets the quarantined states of vk: its states are
// being deleted (DropView) or replaced (Rebuild). Runs on the writer.
func (s *shard) unquarantineView(vk ViewKey) {
	start, end := viewBounds(vk)
	_ = s.batch.DeleteRange(quarantineKey(start), quarantineKey(end), nil)
	for k := range s.quarantined {
		if got, _, _ := parseStateKey([]byte(k)); got == vk {
			delete(s.quarantined, k)
		}
	}
	s.mu.Lock()
	s.mu.stats.QuarantinedStates = len(s.quarantined)
	s.mu.Unlock()
}

// DeadLetter is a Kafka write (Write.Position set) that the store refused
// and recorded, in the batch that advanced the partition's offset past it,
// for ingest to publish: the offset moves on, and the event is not lost in
// a crash between the commit and the publishing.
type DeadLetter struct {
	Shard    int
	Seq      uint64 // the record's key within the shard
	Position Position
	Source   string // Write.Schema.Source; "" when the write had no Schema
	Entity   []byte
	Reason   string // a code: "corrupt_state"
	Err      string // why, for a person
}

// ReasonCorruptState is DeadLetter.Reason for a write refused because a
// target state is corrupt (quarantined, or its Pebble block is damaged).
const ReasonCorruptState = "corrupt_state"

// deadLetterKey is 'd' · seq (u64 BE).
func deadLetterKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefixDeadLetter}, seq)
}

// loadDeadLetterSeq sets the next dead-letter sequence number past the
// highest recorded.
func (s *shard) loadDeadLetterSeq() error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixDeadLetter}, UpperBound: []byte{prefixDeadLetter + 1}})
	if err != nil {
		return fmt.Errorf("shard %d: read dead letters: %w", s.id, err)
	}
	defer it.Close()
	if it.Last() && len(it.Key()) == 9 {
		s.deadSeq = binary.BigEndian.Uint64(it.Key()[1:]) + 1
	}
	return it.Error()
}

// reject refuses write i of r: the write is not folded, logged or counted as
// applied. A pushed write is reported back to Write's caller; a Kafka
// write, whose offset advances as usual, is recorded as a dead letter in
// the same batch. Runs on the writer.
func (s *shard) reject(r *request, i int, w *Write, err error) {
	s.mu.Lock()
	s.mu.stats.WritesRejected++
	s.mu.Unlock()
	if w.Position == nil {
		if r.done != nil {
			idx := i
			if r.index != nil {
				idx = r.index[i]
			}
			r.rejected = append(r.rejected, Rejection{Index: idx, Err: err})
		}
		return
	}
	dl := DeadLetter{Position: *w.Position, Entity: w.Entity, Reason: ReasonCorruptState, Err: err.Error()}
	if w.Schema != nil {
		dl.Source = w.Schema.Source
	}
	_ = s.batch.Set(deadLetterKey(s.deadSeq), appendDeadLetter(nil, &dl), nil)
	s.deadSeq++
	s.deadPending = true
}

func appendDeadLetter(dst []byte, dl *DeadLetter) []byte {
	str := func(b []byte, s []byte) []byte {
		b = binary.AppendUvarint(b, uint64(len(s)))
		return append(b, s...)
	}
	dst = append(dst, 1) // record version
	dst = str(dst, []byte(dl.Position.Topic))
	dst = binary.BigEndian.AppendUint32(dst, uint32(dl.Position.Partition))
	dst = binary.BigEndian.AppendUint64(dst, uint64(dl.Position.Offset))
	dst = str(dst, []byte(dl.Source))
	dst = str(dst, dl.Entity)
	dst = str(dst, []byte(dl.Reason))
	return str(dst, []byte(dl.Err))
}

func parseDeadLetter(v []byte) (DeadLetter, error) {
	var dl DeadLetter
	bad := fmt.Errorf("%w: dead letter record", ErrCorrupt)
	if len(v) < 1 || v[0] != 1 {
		return dl, bad
	}
	v = v[1:]
	str := func() ([]byte, bool) {
		n, k := binary.Uvarint(v)
		if k <= 0 || uint64(len(v)-k) < n {
			return nil, false
		}
		s := v[k : k+int(n)]
		v = v[k+int(n):]
		return s, true
	}
	topic, ok := str()
	if !ok || len(v) < 12 {
		return dl, bad
	}
	dl.Position = Position{Topic: string(topic), Partition: int32(binary.BigEndian.Uint32(v)), Offset: int64(binary.BigEndian.Uint64(v[4:]))}
	v = v[12:]
	var fields [4][]byte
	for i := range fields {
		if fields[i], ok = str(); !ok {
			return dl, bad
		}
	}
	dl.Source = string(fields[0])
	dl.Entity = append([]byte(nil), fields[1]...)
	dl.Reason = string(fields[2])
	dl.Err = string(fields[3])
	return dl, nil
}

// DeadLetters returns up to max recorded dead letters, oldest first per
// shard. They stay recorded until DeleteDeadLetters: a consumer publishes
// them, then deletes them, so a crash in between publishes one twice but
// never loses one. Safe for concurrent use; meant for one consumer (ingest).
func (s *Store) DeadLetters(max int) ([]DeadLetter, error) {
	var out []DeadLetter
	for _, sh := range s.shards {
		it, err := sh.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixDeadLetter}, UpperBound: []byte{prefixDeadLetter + 1}})
		if err != nil {
			return out, fmt.Errorf("featurestore: dead letters of shard %d: %w", sh.id, err)
		}
		for it.First(); it.Valid() && len(out) < max; it.Next() {
			if len(it.Key()) != 9 {
				continue
			}
			dl, err := parseDeadLetter(it.Value())
			if err != nil {
				it.Close()
				return out, fmt.Errorf("featurestore: dead letter %x of shard %d: %w", it.Key(), sh.id, err)
			}
			dl.Shard = sh.id
			dl.Seq = binary.BigEndian.Uint64(it.Key()[1:])
			out = append(out, dl)
		}
		err = it.Error()
		it.Close()
		if err != nil {
			return out, fmt.Errorf("featurestore: dead letters of shard %d: %w", sh.id, err)
		}
	}
	return out, nil
}

// DeleteDeadLetters deletes published dead letters, synced. The writer never
// writes a sequence number twice in a process and starts past the highest
// recorded one, so deleting here, off the writer, cannot lose a newer record.
func (s *Store) DeleteDeadLetters(dls []DeadLetter) error {
	for _, dl := range dls {
		if dl.Shard < 0 || dl.Shard >= len(s.shards) {
			return fmt.Errorf("featurestore: delete dead letter: no shard %d", dl.Shard)
		}
		if err := s.shards[dl.Shard].db.Delete(deadLetterKey(dl.Seq), pebble.Sync); err != nil {
			return fmt.Errorf("featurestore: delete dead letter %d of shard %d: %w", dl.Seq, dl.Shard, err)
		}
	}
	return nil
}

// DeadLetterNotify returns a channel that receives (droppable: one pending
// wake-up at most) after a commit that recorded dead letters.
func (s *Store) DeadLetterNotify() <-chan struct{} { return s.deadc }

// pebbleLogger sends Pebble's logs to slog. Pebble's info lines (flushes,
// compactions) go to debug.
//
// Fatalf ends the process (Options.Fatalf), as Pebble expects: with the DataCorruption
// listener set (damage.eventListener), what still reaches Fatalf in the
// pinned Pebble (v2.1.7) is a broken invariant or a failed MANIFEST, WAL or
// commit-pipeline write, after which Pebble's code goes on as if the call
// had not returned and its in-memory state no longer matches the disk;
// serving on would answer from that. See doc.go, Corruption.
type pebbleLogger struct {
	l     *slog.Logger
	part  string                           // "shard 3", "push journal": prefixes fatal messages
	fatal func(format string, args ...any) // Options.Fatalf
}

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug("pebble: " + fmt.Sprintf(format, args...))
}
func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error("pebble: " + fmt.Sprintf(format, args...))
}
func (p pebbleLogger) Fatalf(format string, args ...any) {
	p.fatal("%s: pebble: %s", p.part, fmt.Sprintf(format, args...))
}

// notifyDeadLetters wakes the dead-letter consumer after a commit that
// recorded some. Runs on the writer.
func (s *shard) notifyDeadLetters() {
	if !s.deadPending {
		return
	}
	s.deadPending = false
	select {
	case s.deadc <- struct{}{}:
	default:
	}
}
