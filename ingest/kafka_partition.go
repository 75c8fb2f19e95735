package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/valyala/fastjson"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/featurestore"
)

// partitionConsumer reads one partition. Its run goroutine owns probed,
// fence, began, gen and held and is the only writer of the counters, next,
// high and epoch; status reads the atomics from any goroutine. The topic
// consumer's poll goroutine sends it fetches on in.
type partitionConsumer struct {
	c         *topicConsumer
	partition int

	// in carries the poll goroutine's fetches; stopc, closed by the topic
	// consumer, stops the partition once its current batch is handed to
	// the store; done is closed when run returns.
	in    chan fetched
	stopc chan struct{}
	done  chan struct{}

	next     atomic.Int64
	high     atomic.Int64
	reading  atomic.Bool
	applied  atomic.Uint64
	rejected atomic.Uint64
	skipped  atomic.Int64
	resets   atomic.Int64
	rewinds  atomic.Int64
	lastErr  atomic.Pointer[string]
	// epoch names the offsets (offsetName); probed says it has been read
	// from the store (once, at the first start).
	epoch  atomic.Int32
	probed bool
	// fence is the store's fence of the partition's offsets, taken before
	// the start offset was read from the store: a failed commit moves it,
	// and the consumer rewinds (see Kafka).
	fence featurestore.Fence
	// began is the offset the partition was first read from when the store
	// had no record of it (start_offset latest: the end then), so that a
	// rewind before the first commit goes back there rather than to a later
	// end; set says it is known.
	began struct {
		offset int64
		set    bool
	}
	// gen is the generation of the partition's latest seek: fetches of
	// other generations were read from an older position. held is a fetch
	// error received while a batch was filling, handled after it.
	gen  uint64
	held *fetched
}

func newPartitionConsumer(c *topicConsumer, partition int) *partitionConsumer {
	return &partitionConsumer{
		c: c, partition: partition,
		in:    make(chan fetched, 2),
		stopc: make(chan struct{}),
		done:  make(chan struct{}),
	}
}

func (pc *partitionConsumer) status() PartitionStatus {
	s := PartitionStatus{
		Source: pc.c.source, Topic: pc.c.topic, Partition: pc.partition,
		NextOffset: pc.next.Load(), HighWatermark: pc.high.Load(), Reading: pc.reading.Load(),
		Applied: pc.applied.Load(), Rejected: pc.rejected.Load(), Skipped: pc.skipped.Load(),
		OffsetResets: pc.resets.Load(), OffsetEpoch: pc.epoch.Load(), Rewinds: pc.rewinds.Load(),
	}
	s.Lag = max(0, s.HighWatermark-s.NextOffset)
	if e := pc.lastErr.Load(); e != nil {
		s.LastError = *e
	}
	return s
}

func (pc *partitionConsumer) setErr(err error) {
	msg := err.Error()
	pc.lastErr.Store(&msg)
}

// errStopped ends a partition's reading when it leaves the partition set.
var errStopped = errors.New("ingest: partition no longer read")

// run consumes the partition until ctx ends or the partition is stopped.
// After a failure that leaves the batch unapplied it starts again from the
// store's offsets.
func (pc *partitionConsumer) run(ctx context.Context) {
	defer close(pc.done)
	k := pc.c.k
	log := k.opts.Logger.With("source", pc.c.source, "topic", pc.c.topic, "partition", pc.partition)
	backoff := newBackoff(k.opts.RetryMin, k.opts.RetryMax)
	for {
		before := pc.applied.Load() + pc.rejected.Load()
		started := time.Now()
		err := pc.consume(ctx, log)
		if ctx.Err() != nil || errors.Is(err, errStopped) {
			return
		}
		progress := pc.applied.Load()+pc.rejected.Load() != before
		if errors.Is(err, featurestore.ErrFenced) {
			// A store commit failed and dropped events this consumer had
			// handed over. Batches enqueued before the commit ran count as
			// progress, so only a consumer that ran for a while resets the
			// backoff: a disk that fails every commit is retried at
			// RetryMax, not at RetryMin.
			progress = time.Since(started) > k.opts.RetryMax
			pc.rewinds.Add(1)
			pc.setErr(err)
			log.Error("a store commit failed and dropped events of this partition; rewinding to the stored offsets",
				"next", pc.next.Load(), "rewinds", pc.rewinds.Load(), "err", err)
		} else {
			pc.setErr(err)
			log.Warn("partition consumer stopped; restarting from stored offsets", "err", err)
		}
		if progress {
			backoff.reset() // a new failure, not the same one
		}
		if !pc.sleep(ctx, backoff) {
			return
		}
	}
}

// sleep waits for the backoff, dropping the fetches that arrive meanwhile
// (reading starts again with a seek), so the poll goroutine is never held
// up by this partition. It returns false when ctx ended or the partition
// was stopped.
func (pc *partitionConsumer) sleep(ctx context.Context, b *backoff) bool {
	t := time.NewTimer(b.cur)
	defer t.Stop()
	b.cur = min(2*b.cur, b.max)
	for {
		select {
		case <-ctx.Done():
			return false
		case <-pc.stopc:
			return false
		case <-pc.in:
		case <-t.C:
			return true
		}
	}
}

// consume reads the partition from where the store's offsets say, until
// ctx ends or a failure; a reset found while reading seeks anew.
func (pc *partitionConsumer) consume(ctx context.Context, log *slog.Logger) error {
	start, err := pc.startOffset(ctx, log)
	if err != nil {
		return err
	}
	for {
		if start, err = pc.read(ctx, log, start); err != nil {
			return err
		}
	}
}

// seek has the partition read from offset; fetches from before are
// dropped from then on.
func (pc *partitionConsumer) seek(offset int64) {
	pc.gen = pc.c.gens.Add(1)
	pc.held = nil
	pc.c.seek(int32(pc.partition), seek{offset: offset, gen: pc.gen})
}

// read seeks to start and applies batches until ctx ends, the partition is
// stopped, or a failure. After a reset it returns the offset to read from
// next.
func (pc *partitionConsumer) read(ctx context.Context, log *slog.Logger, start int64) (int64, error) {
	k := pc.c.k
	pc.seek(start)
	pc.next.Store(start)
	pc.reading.Store(true)
	// want is the offset after the last record taken from a fetch: a
	// record below it was taken already.
	want := start
	var pending []*kgo.Record
	batch := make([]*kgo.Record, 0, k.opts.BatchSize)
	idle := time.NewTimer(k.opts.OffsetCheck)
	defer idle.Stop()
	var parser fastjson.Parser
	for {
		select {
		case <-pc.stopc:
			return 0, errStopped
		default:
		}
		for len(pending) == 0 {
			f, err := pc.receive(ctx, idle.C)
			if err == nil {
				pending = pc.take(f, &want)
				continue
			}
			switch {
			case ctx.Err() != nil || errors.Is(err, errStopped):
				return 0, err
			case errors.Is(err, featurestore.ErrFenced):
				return 0, fmt.Errorf("fetch at offset %d: %w", pc.next.Load(), err)
			case errors.Is(err, errOffsetCheck), errors.Is(err, kerr.OffsetOutOfRange):
				first, reset, cerr := pc.checkOffsets(ctx, log)
				switch {
				case reset:
					return first, nil
				case errors.Is(err, kerr.OffsetOutOfRange):
					// Below the first offset (retention) or a position
					// the client gave up on: start again from the store.
					return 0, fmt.Errorf("fetch at offset %d: %w", want, err)
				case cerr != nil:
					pc.setErr(fmt.Errorf("check offsets: %w", cerr))
				}
				idle.Reset(k.opts.OffsetCheck)
			default:
				// The client retries what it can; say what it saw.
				pc.setErr(fmt.Errorf("fetch: %w", err))
			}
		}
		idle.Reset(k.opts.OffsetCheck)
		batch = batch[:0]
		n := min(len(pending), k.opts.BatchSize)
		batch, pending = append(batch, pending[:n]...), pending[n:]
		// Fill the batch from what the poll goroutine has, waiting at most
		// Linger for the rest.
		if len(batch) < k.opts.BatchSize {
			linger := time.NewTimer(k.opts.Linger)
		fill:
			for len(batch) < k.opts.BatchSize {
				select {
				case f := <-pc.in:
					if f.gen != pc.gen {
						continue
					}
					if f.err != nil {
						pc.held = &f
						break fill
					}
					recs := pc.take(f, &want)
					n := min(len(recs), k.opts.BatchSize-len(batch))
					batch, pending = append(batch, recs[:n]...), recs[n:]
				case <-linger.C:
					break fill
				case <-ctx.Done():
					break fill
				case <-pc.stopc:
					break fill
				}
			}
			linger.Stop()
		}
		if len(batch) == 0 {
			continue
		}
		if err := pc.waitWritable(ctx, log); err != nil {
			return 0, err
		}
		if err := pc.apply(ctx, &parser, batch); err != nil {
			// The store refused the batch (closing, or a failed commit
			// fenced the partition: ErrFenced): it was not applied and its
			// offsets were not recorded.
			return 0, fmt.Errorf("apply batch at offset %d: %w", batch[0].Offset, err)
		}
	}
}

// take returns f's records from want on (an earlier seek's records the
// client still had may precede them) and moves want past them.
func (pc *partitionConsumer) take(f fetched, want *int64) []*kgo.Record {
	recs := f.recs
	for len(recs) > 0 && recs[0].Offset < *want {
		recs = recs[1:]
	}
	if len(recs) > 0 {
		*want = recs[len(recs)-1].Offset + 1
		pc.high.Store(max(f.high, *want))
	}
	return recs
}

// receive waits for the next fetch of the partition's current generation.
// It returns errOffsetCheck when idle fires (no records for OffsetCheck),
// ErrFenced when a failed commit moved the fence, errStopped when the
// partition leaves the set, and a fetch's error.
func (pc *partitionConsumer) receive(ctx context.Context, idle <-chan time.Time) (fetched, error) {
	if f := pc.held; f != nil {
		pc.held = nil
		return *f, f.err
	}
	for {
		select {
		case <-ctx.Done():
			return fetched{}, ctx.Err()
		case <-pc.stopc:
			return fetched{}, errStopped
		case <-pc.fence.Moved():
			return fetched{}, featurestore.ErrFenced
		case <-idle:
			return fetched{}, errOffsetCheck
		case f := <-pc.in:
			if f.gen != pc.gen {
				continue
			}
			return f, f.err
		}
	}
}

// waitWritable holds a fetched batch while the store may not take writes
// (Options.Writable: the disk is full), polling with backoff up to a second
// so that ingest resumes soon after space is freed. The partition's
// fetching is paused meanwhile. Nothing is lost: the batch is applied once
// writes resume, or read again from the stored offsets if the consumer
// or the partition stops first.
func (pc *partitionConsumer) waitWritable(ctx context.Context, log *slog.Logger) error {
	writable := pc.c.k.opts.Writable
	err := writable()
	if err == nil {
		return nil
	}
	tp := map[string][]int32{pc.c.topic: {int32(pc.partition)}}
	pc.c.cl.PauseFetchPartitions(tp)
	defer pc.c.cl.ResumeFetchPartitions(tp)
	log.Warn("kafka ingest paused: the store takes no writes", "partition", pc.partition, "err", err)
	b := newBackoff(pc.c.k.opts.RetryMin, min(pc.c.k.opts.RetryMax, time.Second))
	for err != nil {
		pc.setErr(fmt.Errorf("paused: %w", err))
		select {
		case <-pc.stopc:
			// The batch was not handed over: whoever reads the
			// partition next reads it again from the stored offsets.
			return errStopped
		default:
		}
		if !b.wait(ctx) {
			return ctx.Err()
		}
		err = writable()
	}
	log.Info("kafka ingest resumed", "partition", pc.partition)
	return nil
}

// apply decodes a batch, dead-letters the bad messages, and hands the good
// ones to the store together with the next offset to read. Dead letters are
// written before the batch's offsets can be committed, so a crash may write
// a dead letter twice but never loses one.
func (pc *partitionConsumer) apply(ctx context.Context, parser *fastjson.Parser, batch []*kgo.Record) (err error) {
	tracer := pc.c.k.opts.Tracer
	ctx, end := startSpan(ctx, tracer, SpanKafkaBatch)
	defer func() { end(err) }()
	c := pc.c
	k := c.k
	rt := k.router.route(c.source)
	if rt == nil || (rt.src.Kind != "kafka" && !(c.push && rt.src.Kind == "push")) {
		return fmt.Errorf("source %q is gone", c.source)
	}
	st := k.stats.source(c.source)
	_, endDecode := startSpan(ctx, tracer, SpanDecode)
	name := c.offsetName(pc.epoch.Load())
	now := k.opts.Now()
	nf := len(rt.src.Fields)
	fields := make([]aggregate.Value, len(batch)*nf)
	positions := make([]featurestore.Position, len(batch))
	writes := make([]featurestore.Write, 0, len(batch))
	var keys []byte
	var dead []*kgo.Record
	var rec Record
	// runs splits a push topic's batch where its records change push
	// (batch ID), each run handed over with its own mark.
	var runs []pushRun
	expect := pc.next.Load()
	maxMillis := int64(0)
	for i := range batch {
		m := batch[i]
		// A push topic's gaps are its transactions' commit and abort
		// markers and aborted records, not offsets lost to retention.
		if expect >= 0 && m.Offset > expect && !c.push {
			pc.skipped.Add(m.Offset - expect)
		}
		expect = m.Offset + 1
		if m.Attrs.IsControl() {
			continue // a transaction marker: no event; the mark moves past it
		}
		index := -1
		if c.push {
			runs, index = addToRun(runs, m, len(writes))
		}
		rec.Fields = fields[i*nf : (i+1)*nf : (i+1)*nf]
		rowErr := rt.dec.decodeJSON(parser, m.Value, &rec)
		var targets []featurestore.Target
		if rowErr == nil {
			targets, rowErr = rt.admit(rec.EventMillis, now, k.opts.MaxFutureSkew)
		}
		start := len(keys)
		if rowErr == nil {
			keys, rowErr = rt.dec.appendKey(keys, &rec)
		}
		var part int
		if rowErr == nil {
			part, rowErr = rt.place(&rec, pc.partition, m.Key)
		}
		if rowErr != nil {
			st.reject(rowErr.Code)
			dead = append(dead, deadLetter(c, m, rowErr))
			continue
		}
		if index >= 0 {
			r := &runs[len(runs)-1]
			r.index = append(r.index, index)
		}
		positions[i] = featurestore.Position{Topic: name, Partition: int32(pc.partition), Offset: m.Offset}
		writes = append(writes, featurestore.Write{
			Entity:      keys[start:len(keys):len(keys)],
			Partition:   part,
			EventMillis: rec.EventMillis,
			Fields:      rec.Fields,
			Targets:     targets,
			Position:    &positions[i],
			// The log replays admission from the ingest clock.
			IngestMillis: now.UnixMilli(),
			Schema:       rt.schema,
		})
		maxMillis = max(maxMillis, rec.EventMillis)
	}
	endDecode(nil)
	if len(dead) > 0 {
		dctx, endDead := startSpan(ctx, tracer, SpanDeadLetter)
		err := pc.writeDead(dctx, dead)
		endDead(err)
		if err != nil {
			return err
		}
	}
	last := batch[len(batch)-1]
	mark := featurestore.Position{Topic: name, Partition: int32(pc.partition), Offset: last.Offset + 1}
	ectx, endEnqueue := startSpan(ctx, tracer, SpanEnqueue)
	if len(runs) > 1 || (len(runs) == 1 && runs[0].batchID != "") {
		err = pc.enqueueRuns(ectx, writes, runs, mark)
	} else {
		err = k.store.EnqueueFenced(ectx, writes, mark, pc.fence)
	}
	endEnqueue(err)
	if err != nil {
		return err
	}
	pc.next.Store(last.Offset + 1)
	pc.applied.Add(uint64(len(writes)))
	pc.rejected.Add(uint64(len(dead)))
	st.add(rt, writes)
	if len(writes) > 0 {
		st.observe(maxMillis)
		if f := k.opts.Applied; f != nil {
			f(c.source, len(writes), maxMillis)
		}
	}
	return nil
}

// pushRun is a run of a push topic's records of one push: from write
// index first on, up to the next run's; next is the offset after its
// last record. With a batch ID, index holds its writes' event indexes and
// last the highest of its records'.
type pushRun struct {
	batchID string // "": records without one
	first   int
	next    int64
	index   []int
	last    int
}

// addToRun adds record m, whose write (if it is not dead-lettered) will be
// writes[w], to the last run or starts a new one, and returns the record's
// event index (-1 without a batch ID). A record whose batch headers are
// missing or malformed counts as one without a batch ID.
func addToRun(runs []pushRun, m *kgo.Record, w int) ([]pushRun, int) {
	var id string
	index := -1
	for _, h := range m.Headers {
		switch h.Key {
		case HeaderBatchID:
			id = string(h.Value)
		case HeaderEventIndex:
			if i, err := strconv.Atoi(string(h.Value)); err == nil && i >= 0 {
				index = i
			}
		}
	}
	if index < 0 || featurestore.CheckBatchID(id) != nil {
		id, index = "", -1
	}
	if n := len(runs); n > 0 && runs[n-1].batchID == id {
		r := &runs[n-1]
		r.next = m.Offset + 1
		r.last = max(r.last, index)
		return runs, index
	}
	return append(runs, pushRun{batchID: id, first: w, next: m.Offset + 1, last: index}), index
}

// enqueueRuns hands a push topic's batch to the store run by run, each
// with the offset after it, those of a push with a batch ID with their
// event indexes so that a retry's copies are skipped; the last run's mark
// is the batch's.
func (pc *partitionConsumer) enqueueRuns(ctx context.Context, writes []featurestore.Write, runs []pushRun, mark featurestore.Position) error {
	store := pc.c.k.store
	for i, r := range runs {
		end := len(writes)
		if i+1 < len(runs) {
			end = runs[i+1].first
		}
		m := mark
		if i+1 < len(runs) {
			m.Offset = r.next
		}
		var err error
		if r.batchID != "" {
			err = store.EnqueueFencedBatch(ctx, writes[r.first:end], m, pc.fence, featurestore.PushRun{BatchID: r.batchID, Index: r.index, Last: r.last})
		} else {
			err = store.EnqueueFenced(ctx, writes[r.first:end], m, pc.fence)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
