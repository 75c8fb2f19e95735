package offline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/aggregate/aggregatetest"
	"github.com/featured-dev/featured/featurestore"
	"github.com/featured-dev/featured/ingest"
	"github.com/featured-dev/featured/internal/keyenc"
	"github.com/featured-dev/featured/internal/partition"
	"github.com/featured-dev/featured/internal/testdefs"
	"github.com/featured-dev/featured/offline/eventlog"
	"github.com/featured-dev/featured/offline/export"
	"github.com/featured-dev/featured/registry"
)

// The fault-injection sweep (issue 9.1, docs/reliability.md "Fault
// injection"): a fixed workload (pushes through ingest.Pusher with batch
// IDs, every other one atomic (the push journal), retried on error until
// acknowledged, and a
// Kafka-style stream of two partitions through EnqueueFenced with the
// consumer's rewind) runs once to count the write and sync
// operations the store and the offline log perform, then again on a fresh
// directory for each swept operation i, failing it (fail-once), failing it
// and every later one until a restart (disk-died), or ending the process
// there (crash). A fatal-by-design path (Options.Fatalf) is a crash too. A
// crashed process is abandoned, its disk made dead, and a new one opened on
// the same directories, without faults, resumes: the consumers from
// Store.Offsets, the pushes by retrying what was not acknowledged. In the
// end every aggregate of both views equals aggregatetest's reference over
// the events the log holds, the log holds every Kafka event and every push
// event exactly once (the batch ID's contract), and a served export equals
// the online answers.
//
// FEATURED_SWEEP=full sweeps every operation in every mode; by default
// sweepPoints operations per mode, evenly spread.

const sweepPoints = 40

var sweepDefs = testdefs.Doc(
	[]string{testdefs.Source("tx", "push", ""), testdefs.Source("clicks", "kafka", "clicks")},
	[]string{testdefs.View("spend", "tx", "2d"), testdefs.View("kspend", "clicks", "2d")},
)

const (
	sweepTopic      = "clicks"
	sweepPartitions = 2
	sweepStart      = int64(1_767_225_600_000) // 2026-01-01
)

// sweepWork is the workload: the same for every point.
type sweepWork struct {
	users  []string
	pushes [][]sweepEvent    // batches of tx events
	kafka  [][]sweepEvent    // per partition, by offset
	now    int64             // the clock of the whole run
	fields []aggregate.Kind  // the sources' field kinds, FieldNames order
	byKey  map[pushKey]int   // push event -> index in the flattened pushes
	userOf map[string]string // encoded entity -> user
	reg    *registry.Registry
	kview  *registry.View
	kschem *featurestore.Schema
}

type sweepEvent struct {
	user string
	ev   aggregatetest.Event
}

type pushKey struct {
	user   string
	millis int64
}

func newSweepWork(t *testing.T) *sweepWork {
	t.Helper()
	w := &sweepWork{fields: []aggregate.Kind{aggregate.KindFloat64, aggregate.KindBool, aggregate.KindInt64, aggregate.KindString}, byKey: map[pushKey]int{}, userOf: map[string]string{}}
	var err error
	w.reg, err = registry.OpenWithOptions(filepath.Join(t.TempDir(), "registry.json"), registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defs, err := registry.ParseYAML([]byte(sweepDefs))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.reg.Apply(defs); err != nil {
		t.Fatal(err)
	}
	snap := w.reg.Snapshot()
	if w.kview, err = snap.View("kspend", 0); err != nil {
		t.Fatal(err)
	}
	src, _ := snap.Source("clicks")
	w.kschem = &featurestore.Schema{Source: "clicks", KeyKinds: snap.SourceKeyKinds("clicks")}
	for _, f := range src.Fields {
		w.kschem.Names = append(w.kschem.Names, f.Name)
		w.kschem.Kinds = append(w.kschem.Kinds, f.Kind)
	}
	rng := rand.New(rand.NewPCG(9, 1))
	stream := func(seed uint64, n int) []aggregatetest.Event {
		return aggregatetest.Stream(seed, aggregatetest.StreamOptions{
			Events: n, Fields: w.fields, StartMillis: sweepStart, MeanGapMillis: 30 * 60_000,
			MaxLateMillis: 2 * 3600_000, GapFraction: -1, Cardinality: 5,
		})
	}
	var push []sweepEvent
	w.kafka = make([][]sweepEvent, sweepPartitions)
	for u := 0; u < 6; u++ {
		user := fmt.Sprintf("user-%03d", u)
		w.users = append(w.users, user)
		ent, _ := keyenc.AppendEntity(nil, aggregate.Value{Kind: aggregate.KindString, S: user})
		w.userOf[string(ent)] = user
		for _, ev := range stream(uint64(100+u), 6) {
			push = append(push, sweepEvent{user, ev})
		}
		p := partition.Of(ent, sweepPartitions) // Kafka keys partition by entity, as the store places it
		for _, ev := range stream(uint64(200+u), 8) {
			w.kafka[p] = append(w.kafka[p], sweepEvent{user, ev})
		}
	}
	// Interleave users; each user's events keep their order.
	rng.Shuffle(len(push), func(i, j int) { push[i], push[j] = push[j], push[i] })
	for p := range w.kafka {
		rng.Shuffle(len(w.kafka[p]), func(i, j int) { w.kafka[p][i], w.kafka[p][j] = w.kafka[p][j], w.kafka[p][i] })
	}
	for _, e := range append(append([]sweepEvent(nil), push...), append(w.kafka[0], w.kafka[1]...)...) {
		w.now = max(w.now, e.ev.Millis)
	}
	w.now += 60_000
	// A push event is told apart in the log by (user, event time).
	for i := range push {
		for {
			k := pushKey{push[i].user, push[i].ev.Millis}
			if _, dup := w.byKey[k]; !dup {
				w.byKey[k] = i
				break
			}
			push[i].ev.Millis++
		}
	}
	for i := 0; i < len(push); {
		n := 1 + rng.IntN(3)
		w.pushes = append(w.pushes, push[i:min(i+n, len(push))])
		i += n
	}
	return w
}

// sweepProc is one process: a store and its offline log on a faultFS.
type sweepProc struct {
	fs      *faultFS
	dead    atomic.Bool
	store   *featurestore.Store
	log     *eventlog.Log
	pusher  *ingest.Pusher
	ctx     context.Context
	cancel  context.CancelFunc
	crashed chan struct{}
	once    sync.Once
	fatal   atomic.Bool // ended by Options.Fatalf
}

// crash ends the process: nothing it does from now on reaches the disk,
// and the calls it is in return.
func (p *sweepProc) crash() {
	p.once.Do(func() {
		p.dead.Store(true)
		close(p.crashed) // before the cancel: its errors mean the crash
		p.cancel()
	})
}

func (p *sweepProc) isCrashed() bool {
	select {
	case <-p.crashed:
		return true
	default:
		return false
	}
}

// call runs fn unless the process crashes first (fn may be stuck behind a
// goroutine parked in Fatalf); crashed reports that.
func (p *sweepProc) call(fn func() error) (err error, crashed bool) {
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		// An error may be the crash's (a cancelled context), seen
		// before the crash itself.
		return err, err != nil && p.isCrashed()
	case <-p.crashed:
		return errDead, true
	}
}

var quiet = slog.New(slog.DiscardHandler)

// openSweepProc opens a process on dir; inj (nil: none) sees its disk
// operations. It returns nil when the process crashed while opening.
func openSweepProc(t *testing.T, w *sweepWork, dir string, inj *sweepInjector) (*sweepProc, error) {
	p := &sweepProc{crashed: make(chan struct{})}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.fs = &faultFS{FS: vfs.Default, dead: &p.dead}
	if inj != nil {
		inj.crash = p.crash
		p.fs.inj = inj
	}
	now := func() time.Time { return time.UnixMilli(w.now) }
	// Open runs aside: a crash while opening may park it for good, and
	// only what it returned may be closed.
	type opened struct {
		store *featurestore.Store
		log   *eventlog.Log
		err   error
	}
	openc := make(chan opened, 1)
	go func() {
		var o opened
		defer func() {
			// Pebble panics where it treats an error as unrecoverable
			// (a failed directory fsync): fatal by design, a crash.
			if r := recover(); r != nil {
				p.fatal.Store(true)
				p.crash()
				o.err = fmt.Errorf("panic: %v", r)
			}
			openc <- o
		}()
		o.store, o.log, o.err = p.open(w, dir, now)
	}()
	select {
	case o := <-openc:
		if o.err != nil {
			p.crash()
			return nil, o.err
		}
		p.store, p.log = o.store, o.log
		p.pusher, o.err = ingest.NewPusher(w.reg, p.store, ingest.Options{Now: now, MaxFutureSkew: 15 * time.Minute})
		if o.err != nil {
			t.Fatal(o.err)
		}
		return p, nil
	case <-p.crashed:
		go func() {
			o := <-openc
			if o.store != nil {
				o.store.Close()
			}
			if o.log != nil {
				o.log.Close()
			}
		}()
		return nil, errDead
	}
}

func (p *sweepProc) open(w *sweepWork, dir string, now func() time.Time) (store *featurestore.Store, log *eventlog.Log, err error) {
	log, err = eventlog.Open(filepath.Join(dir, "offline"), eventlog.Options{SegmentBytes: 4096, Now: now, Logger: quiet, FS: p.fs})
	if err != nil {
		return nil, nil, err
	}
	store, err = featurestore.Open(filepath.Join(dir, "store"), featurestore.Options{
		Partitions: sweepPartitions, CommitInterval: 2 * time.Millisecond, GCInterval: -1, EventLog: log, Now: now,
		CacheBytes: 1 << 20, Logger: quiet, FS: p.fs,
		// Open applies the atomic pushes a crash left in the journal.
		Layouts: func(vk featurestore.ViewKey) *aggregate.Layout {
			for _, v := range w.reg.Snapshot().Views() {
				if v.ID == vk.ID && uint32(v.Version) == vk.Version {
					return v.Layout
				}
			}
			return nil
		},
		Fatalf: func(string, ...any) {
			p.fatal.Store(true)
			p.crash()
			select {} // never returns, as the process it models
		},
	})
	if err != nil {
		log.Close()
		return nil, nil, err
	}
	return store, log, nil
}

// abandon crashes the process and releases what it can in the
// background; a goroutine parked in Fatalf keeps its part.
func (p *sweepProc) abandon() {
	p.crash()
	st, l := p.store, p.log
	go func() {
		if st != nil {
			st.Close()
		}
		if l != nil {
			l.Close()
		}
	}()
}

// sweepDriver is the outside world: the push client and the Kafka
// consumers, whose progress survives the process.
type sweepDriver struct {
	w        *sweepWork
	nextPush int
	attempts []int // per flattened push event: calls of PushValues with it
	acked    []bool
	failures int // errors seen by the clients
}

// run drives p until the workload is done (true) or p crashed or was
// given up on (false).
func (d *sweepDriver) run(t *testing.T, p *sweepProc) bool {
	t.Helper()
	type consumer struct {
		fence featurestore.Fence
		next  int64
	}
	cs := make([]consumer, sweepPartitions)
	rewind := func(i int) {
		cs[i].fence = p.store.Fence(sweepTopic, int32(i))
		cs[i].next = p.store.Offsets(sweepTopic)[int32(i)]
	}
	for i := range cs {
		rewind(i)
	}
	base := 0 // index of d.nextPush's first event
	for _, b := range d.w.pushes[:d.nextPush] {
		base += len(b)
	}
	strikes := 0 // errors in a row: an operator restarts the process
	for {
		if p.isCrashed() || strikes > 20 {
			return false
		}
		progress := false
		if d.nextPush < len(d.w.pushes) {
			b := d.w.pushes[d.nextPush]
			evs := make([]map[string]aggregate.Value, len(b))
			for i, e := range b {
				evs[i] = eventMap(e.user, e.ev)
				d.attempts[base+i]++
			}
			var res ingest.PushResult
			err, crashed := p.call(func() (err error) {
				res, err = p.pusher.PushValues(p.ctx, "tx", evs, pushOptions(d.nextPush))
				return err
			})
			switch {
			case crashed:
				return false
			case err != nil:
				d.failures++
				strikes++
			default:
				if len(res.Rejected) > 0 {
					t.Fatalf("push %d rejected %+v", d.nextPush, res.Rejected)
				}
				for i := range b {
					d.acked[base+i] = true
				}
				base += len(b)
				d.nextPush++
				progress = true
			}
		}
		for i := range cs {
			c := &cs[i]
			select {
			case <-c.fence.Moved():
				d.failures++
				strikes++
				rewind(i)
			default:
			}
			evs := d.w.kafka[i]
			if c.next >= int64(len(evs)) {
				continue
			}
			end := min(c.next+3, int64(len(evs)))
			ws := make([]featurestore.Write, 0, end-c.next)
			for off := c.next; off < end; off++ {
				ws = append(ws, d.w.kafkaWrite(int32(i), off))
			}
			err, crashed := p.call(func() error {
				return p.store.EnqueueFenced(p.ctx, ws, featurestore.Position{Topic: sweepTopic, Partition: int32(i), Offset: end}, c.fence)
			})
			switch {
			case crashed:
				return false
			case errors.Is(err, featurestore.ErrFenced):
				d.failures++
				strikes++
				rewind(i)
			case err != nil:
				t.Fatalf("enqueue: %v", err)
			default:
				c.next = end
				progress = true
			}
		}
		if progress {
			continue
		}
		// Everything is handed over: the pushes were acknowledged; the
		// stream is done once its offsets are committed.
		err, crashed := p.call(func() error { return p.store.Flush(p.ctx) })
		if crashed {
			return false
		}
		if err != nil {
			d.failures++
			strikes++
			continue
		}
		done := d.nextPush == len(d.w.pushes)
		offs := p.store.Offsets(sweepTopic)
		for i := range cs {
			if offs[int32(i)] != int64(len(d.w.kafka[i])) {
				done = false
				rewind(i)
			}
		}
		if done {
			return true
		}
		strikes++
	}
}

// pushOptions gives every push a batch ID, so retries apply it exactly
// once, and makes every other one atomic, so the push journal is swept
// too.
func pushOptions(i int) ingest.PushOptions {
	return ingest.PushOptions{BatchID: fmt.Sprintf("sweep-%d", i), Atomic: i%2 == 0}
}

func (w *sweepWork) kafkaWrite(part int32, off int64) featurestore.Write {
	e := w.kafka[part][off]
	ent, _ := keyenc.AppendEntity(nil, aggregate.Value{Kind: aggregate.KindString, S: e.user})
	return featurestore.Write{
		Entity: ent, Partition: int(part), EventMillis: e.ev.Millis, Fields: e.ev.Fields,
		Targets:      []featurestore.Target{{Key: featurestore.ViewKey{ID: w.kview.ID, Version: uint32(w.kview.Version)}, Layout: w.kview.Layout}},
		Position:     &featurestore.Position{Topic: sweepTopic, Partition: part, Offset: off},
		IngestMillis: w.now, Schema: w.kschem,
	}
}

// sweepResult is what one point saw.
type sweepResult struct {
	ops      int    // write operations the first process performed
	hit      string // the operation failed
	restarts int
	fatal    bool
	failures int
}

// runSweepPoint runs the workload on a fresh dir with inj (nil: none) on
// the first process, restarting crashed ones without faults, and checks
// the outcome.
func runSweepPoint(t *testing.T, w *sweepWork, inj *sweepInjector) sweepResult {
	t.Helper()
	dir := t.TempDir()
	npush := 0
	for _, b := range w.pushes {
		npush += len(b)
	}
	d := &sweepDriver{w: w, attempts: make([]int, npush), acked: make([]bool, npush)}
	var res sweepResult
	first := inj
	var lastErr error
	for {
		if res.restarts > 5 {
			t.Fatalf("%d restarts and the workload is not done (failed operation %q; last open: %v)", res.restarts, res.hit, lastErr)
		}
		p, err := openSweepProc(t, w, dir, first)
		if first != nil {
			res.ops, res.hit = first.count()
		}
		first = nil
		if err != nil {
			lastErr = err
			if inj == nil {
				t.Fatalf("open: %v", err)
			}
			res.restarts++
			continue
		}
		done := d.run(t, p)
		res.fatal = res.fatal || p.fatal.Load()
		if inj != nil && res.restarts == 0 {
			res.ops, res.hit = inj.count()
		}
		if !done {
			p.abandon()
			res.restarts++
			continue
		}
		if err, crashed := p.call(func() error { return errors.Join(p.store.Close(), p.log.Close()) }); crashed {
			res.fatal = res.fatal || p.fatal.Load()
			p.abandon()
		} else if err != nil && inj == nil {
			t.Fatalf("close: %v", err)
		}
		break
	}
	res.failures = d.failures
	// A clean process checks what the disk holds.
	p, err := openSweepProc(t, w, dir, nil)
	if err != nil {
		t.Fatalf("reopen to check: %v", err)
	}
	defer func() {
		if err := errors.Join(p.store.Close(), p.log.Close()); err != nil {
			t.Errorf("close: %v", err)
		}
	}()
	checkSweep(t, w, d, p)
	return res
}

// checkSweep checks p's state, log and export against the workload.
func checkSweep(t *testing.T, w *sweepWork, d *sweepDriver, p *sweepProc) {
	t.Helper()
	offs := p.store.Offsets(sweepTopic)
	for i := range w.kafka {
		if offs[int32(i)] != int64(len(w.kafka[i])) {
			t.Fatalf("partition %d: committed offset %d, want %d", i, offs[int32(i)], len(w.kafka[i]))
		}
	}
	type logged struct {
		shard int
		lsn   int64
		ev    eventlog.Event
	}
	var rows []logged
	seen := map[[2]int64]bool{}
	err := p.log.Events(context.Background(), "", func(e eventlog.Event) error {
		k := [2]int64{int64(e.Shard), e.LSN}
		if !seen[k] {
			seen[k] = true
			e.Entity = append([]byte(nil), e.Entity...)
			rows = append(rows, logged{e.Shard, e.LSN, e})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].shard != rows[j].shard {
			return rows[i].shard < rows[j].shard
		}
		return rows[i].lsn < rows[j].lsn
	})
	// Kafka: every offset exactly once. Pushes (each has a batch ID and is
	// retried until acknowledged): exactly once.
	kafka := map[[2]int64]int{}
	pushes := make([]int, len(d.attempts))
	streams := map[string]map[string][]aggregatetest.Event{"tx": {}, "clicks": {}}
	for _, r := range rows {
		user, ok := w.userOf[string(r.ev.Entity)]
		if !ok {
			t.Fatalf("log holds an event of unknown entity %x", r.ev.Entity)
		}
		ev := aggregatetest.Event{Millis: r.ev.EventMillis, Fields: make([]aggregate.Value, len(testFieldNames))}
		for i, n := range testFieldNames {
			ev.Fields[i] = r.ev.Fields[n]
		}
		streams[r.ev.Source][user] = append(streams[r.ev.Source][user], ev)
		switch r.ev.Source {
		case "clicks":
			kafka[[2]int64{int64(r.ev.Partition), r.ev.Offset}]++
		case "tx":
			i, ok := w.byKey[pushKey{user, r.ev.EventMillis}]
			if !ok {
				t.Fatalf("log holds a push never sent: %s at %d", user, r.ev.EventMillis)
			}
			pushes[i]++
		}
	}
	for part, evs := range w.kafka {
		for off := range evs {
			if n := kafka[[2]int64{int64(part), int64(off)}]; n != 1 {
				t.Errorf("kafka %d/%d applied %d times, want once", part, off, n)
			}
		}
	}
	if len(kafka) != len(w.kafka[0])+len(w.kafka[1]) {
		t.Errorf("log holds %d kafka positions, want %d", len(kafka), len(w.kafka[0])+len(w.kafka[1]))
	}
	for i, n := range pushes {
		switch {
		case !d.acked[i]:
			t.Errorf("push event %d never acknowledged", i)
		case n != 1:
			t.Errorf("push event %d applied %d times (sent %d times with its batch ID), want once", i, n, d.attempts[i])
		}
	}
	// Every aggregate equals the reference over the logged events, in
	// fold order; a served export equals the online answers.
	at := w.now + 1
	var samples []sample
	for _, v := range w.reg.Snapshot().Views() {
		src := "tx"
		if v.Name == "kspend" {
			src = "clicks"
		}
		specs := v.Layout.Specs()
		feats := make([]int, len(specs))
		for i := range feats {
			feats[i] = i
		}
		for _, user := range w.users {
			ent, _ := keyenc.AppendEntity(nil, aggregate.Value{Kind: aggregate.KindString, S: user})
			out := make([]aggregate.Result, len(specs))
			if err := p.store.Read(featurestore.ViewKey{ID: v.ID, Version: uint32(v.Version)}, v.Layout, partition.Of(ent, sweepPartitions), ent, feats, at, out); err != nil {
				t.Fatal(err)
			}
			for f := range specs {
				want := aggregatetest.Reference(specs, v.Layout.TTLMillis(), streams[src][user], f, at)
				if !aggregatetest.Equal(out[f], want, 1e-9) {
					t.Errorf("%s %s.%s: online %+v, reference %+v", user, v.Name, v.Features[f].Name, out[f], want)
				}
			}
			samples = append(samples, sample{user: user, at: at, view: v, results: out})
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	spine := filepath.Join(t.TempDir(), "spine.parquet")
	writeSpine(t, spine, samples)
	var m memSink
	x := export.NewExporter(w.reg, p.log)
	if _, err := x.Export(context.Background(), spine, "", export.Request{Features: allRefs(w.reg), Statuses: true, FullNames: true}, &m); err != nil {
		t.Fatal(err)
	}
	compare(t, &m, samples, true)
}

// sweepIndexes picks the operations to fail: all of [0, n) for a full
// sweep, else k spread evenly.
func sweepIndexes(n, k int, full bool) []int {
	if full || n <= k {
		out := make([]int, n)
		for i := range out {
			out[i] = i
		}
		return out
	}
	out := make([]int, k)
	for i := range out {
		out[i] = i * (n - 1) / (k - 1)
	}
	return out
}

func TestFaultSweep(t *testing.T) {
	w := newSweepWork(t)
	// The count: the workload without faults.
	count := &sweepInjector{at: -1}
	base := runSweepPoint(t, w, count)
	if base.restarts != 0 || base.failures != 0 {
		t.Fatalf("without faults: %+v", base)
	}
	full := os.Getenv("FEATURED_SWEEP") == "full"
	var swept, fatal, crashes, unreached int
	for _, mode := range []sweepMode{failOnce, diskDied, crashHere} {
		for _, at := range sweepIndexes(base.ops, sweepPoints, full) {
			name := fmt.Sprintf("%s/op=%d", mode, at)
			var res sweepResult
			ok := t.Run(name, func(t *testing.T) {
				res = runSweepPoint(t, w, &sweepInjector{at: at, mode: mode})
			})
			if !ok {
				t.Logf("%s failed at operation %q", name, res.hit)
				continue
			}
			swept++
			if res.hit == "" {
				unreached++ // this run performed fewer operations
			}
			if res.fatal {
				fatal++
			}
			if res.restarts > 0 {
				crashes++
			}
		}
	}
	t.Logf("fault sweep: %d write/sync operations in the workload; %d points swept (3 modes), %d fatal by design, %d restarted the process, %d not reached (full sweep: FEATURED_SWEEP=full)",
		base.ops, swept, fatal, crashes, unreached)
}
