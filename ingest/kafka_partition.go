package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/valyala/fastjson"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/featurestore"
	"github.com/featured-dev/featured/internal/keyenc"
)

// partitionConsumer reads one partition. Its run goroutine owns probed,
// fence and began and is the only writer of the counters, next, high and
// epoch; the reader's
// error logger (kafka-go's goroutines) sets lastErr and outOfRange and calls
// wake; status reads the atomics from any goroutine.
type partitionConsumer struct {
	c         *topicConsumer
	partition int

	next     atomic.Int64
	high     atomic.Int64
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

	// outOfRange is set by the reader's error logger when kafka-go reports
	// an out-of-range offset; wake cancels the current wait for a message
	// (nil between waits), so the offsets are checked at once.
	outOfRange atomic.Bool
	wake       atomic.Pointer[context.CancelFunc]
}

func (pc *partitionConsumer) status() PartitionStatus {
	s := PartitionStatus{
		Source: pc.c.source, Topic: pc.c.topic, Partition: pc.partition,
		NextOffset: pc.next.Load(), HighWatermark: pc.high.Load(),
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

// run consumes the partition until ctx ends. After a failure that leaves
// the batch unapplied it starts again from the store's offsets.
func (pc *partitionConsumer) run(ctx context.Context) {
	k := pc.c.k
	log := k.opts.Logger.With("source", pc.c.source, "topic", pc.c.topic, "partition", pc.partition)
	backoff := newBackoff(k.opts.RetryMin, k.opts.RetryMax)
	for {
		before := pc.applied.Load() + pc.rejected.Load()
		started := time.Now()
		err := pc.consume(ctx, log)
		if ctx.Err() != nil {
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
		if !backoff.wait(ctx) {
			return
		}
	}
}

// consume reads the partition from where the store's offsets say, until
// ctx ends or a failure; a reset found while reading starts a new reader.
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

// read runs a reader from start, applying batches, until ctx ends or a
// failure. After a reset it returns the offset to read from next.
func (pc *partitionConsumer) read(ctx context.Context, log *slog.Logger, start int64) (int64, error) {
	k := pc.c.k
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:   k.opts.Brokers,
		Topic:     pc.c.topic,
		Partition: pc.partition,
		MinBytes:  1,
		MaxBytes:  k.opts.MaxBytes,
		MaxWait:   k.opts.MaxWait,
		// An offset past the end when the reader connects is returned by
		// FetchMessage; the same found while fetching is only logged, and
		// kafka-go retries it forever (docs/kafka.md).
		OffsetOutOfRangeError: true,
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
			pc.setErr(fmt.Errorf(msg, args...))
			if outOfRange(msg, args) {
				pc.wakeOffsetCheck()
			}
		}),
	})
	defer r.Close()
	if err := r.SetOffset(start); err != nil {
		return 0, fmt.Errorf("set offset %d: %w", start, err)
	}
	pc.next.Store(start)

	// Fetches end when the fence moves, so that an idle partition rewinds
	// at once rather than at its next message.
	rctx, cancel := context.WithCancel(ctx)
	moved := pc.fence.Moved()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() {
		select {
		case <-moved:
			cancel()
		case <-rctx.Done():
		}
	})

	var parser fastjson.Parser
	batch := make([]kafka.Message, 0, k.opts.BatchSize)
	for {
		batch = batch[:0]
		msg, err := pc.fetchFirst(rctx, r)
		if err != nil {
			if ctx.Err() == nil && pc.fenced() {
				return 0, fmt.Errorf("fetch at offset %d: %w", pc.next.Load(), featurestore.ErrFenced)
			}
			if ctx.Err() != nil || !(errors.Is(err, errOffsetCheck) || errors.Is(err, kafka.OffsetOutOfRange)) {
				return 0, fmt.Errorf("fetch: %w", err)
			}
			first, reset, cerr := pc.checkOffsets(ctx, log)
			switch {
			case reset:
				return first, nil
			case errors.Is(err, kafka.OffsetOutOfRange):
				// The reader gave up; start a new one after a backoff.
				return 0, fmt.Errorf("fetch at offset %d: %w", pc.next.Load(), err)
			case cerr != nil:
				pc.setErr(fmt.Errorf("check offsets: %w", cerr))
			}
			continue
		}
		batch = append(batch, msg)
		// Fill the batch from what the reader has buffered, waiting at most
		// Linger for the rest.
		lctx, cancel := context.WithTimeout(rctx, k.opts.Linger)
		for len(batch) < k.opts.BatchSize {
			msg, err := r.FetchMessage(lctx)
			if err != nil {
				break
			}
			batch = append(batch, msg)
		}
		cancel()
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

// fetchFirst waits for the first message of a batch. It returns
// errOffsetCheck after OffsetCheck without a message, or at once when the
// reader's error logger reported an out-of-range offset.
// waitWritable holds a fetched batch while the store may not take writes
// (Options.Writable: the disk is full), polling with backoff up to a second
// so that ingest resumes soon after space is freed. Nothing is lost: the
// batch is applied once writes resume, or read again from the stored
// offsets if the consumer stops first.
func (pc *partitionConsumer) waitWritable(ctx context.Context, log *slog.Logger) error {
	writable := pc.c.k.opts.Writable
	err := writable()
	if err == nil {
		return nil
	}
	log.Warn("kafka ingest paused: the store takes no writes", "partition", pc.partition, "err", err)
	b := newBackoff(pc.c.k.opts.RetryMin, min(pc.c.k.opts.RetryMax, time.Second))
	for err != nil {
		pc.setErr(fmt.Errorf("paused: %w", err))
		if !b.wait(ctx) {
			return ctx.Err()
		}
		err = writable()
	}
	log.Info("kafka ingest resumed", "partition", pc.partition)
	return nil
}

func (pc *partitionConsumer) fetchFirst(ctx context.Context, r *kafka.Reader) (kafka.Message, error) {
	if pc.outOfRange.Swap(false) {
		return kafka.Message{}, errOffsetCheck
	}
	fctx, cancel := context.WithTimeout(ctx, pc.c.k.opts.OffsetCheck)
	defer cancel()
	pc.wake.Store(&cancel)
	defer pc.wake.Store(nil)
	if pc.outOfRange.Load() {
		cancel() // reported between the Swap and the Store
	}
	msg, err := r.FetchMessage(fctx)
	if err != nil && ctx.Err() == nil && fctx.Err() != nil {
		pc.outOfRange.Store(false)
		return msg, errOffsetCheck
	}
	return msg, err
}

// fenced reports whether a failed commit has moved the partition's fence
// since the consumer took it.
func (pc *partitionConsumer) fenced() bool {
	select {
	case <-pc.fence.Moved():
		return true
	default:
		return false
	}
}

// wakeOffsetCheck makes the fetch loop check the partition's offsets now.
// Called from the reader's goroutines.
func (pc *partitionConsumer) wakeOffsetCheck() {
	pc.outOfRange.Store(true)
	if cancel := pc.wake.Load(); cancel != nil {
		(*cancel)()
	}
}

// apply decodes a batch, dead-letters the bad messages, and hands the good
// ones to the store together with the next offset to read. Dead letters are
// written before the batch's offsets can be committed, so a crash may write
// a dead letter twice but never loses one.
func (pc *partitionConsumer) apply(ctx context.Context, parser *fastjson.Parser, batch []kafka.Message) (err error) {
	tracer := pc.c.k.opts.Tracer
	ctx, end := startSpan(ctx, tracer, SpanKafkaBatch)
	defer func() { end(err) }()
	c := pc.c
	k := c.k
	rt := k.router.route(c.source)
	if rt == nil || rt.src.Kind != "kafka" {
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
	var dead []kafka.Message
	var rec Record
	expect := pc.next.Load()
	maxMillis := int64(0)
	for i := range batch {
		m := &batch[i]
		if expect >= 0 && m.Offset > expect {
			pc.skipped.Add(m.Offset - expect)
		}
		expect = m.Offset + 1
		rec.Fields = fields[i*nf : (i+1)*nf : (i+1)*nf]
		rowErr := rt.dec.decodeJSON(parser, m.Value, &rec)
		var targets []featurestore.Target
		if rowErr == nil {
			targets, rowErr = rt.admit(rec.EventMillis, now, k.opts.MaxFutureSkew)
		}
		start := len(keys)
		if rowErr == nil {
			var err error
			if keys, err = keyenc.AppendEntity(keys, rec.Entity); err != nil {
				rowErr = &RowError{Code: ReasonWrongType, Field: rt.src.EntityKey, Reason: err.Error()}
			}
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
	err = k.store.EnqueueFenced(ectx, writes, mark, pc.fence)
	endEnqueue(err)
	if err != nil {
		return err
	}
	pc.next.Store(last.Offset + 1)
	pc.high.Store(last.HighWaterMark)
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
