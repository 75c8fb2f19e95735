package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/valyala/fastjson"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/featurestore"
	"github.com/featured-dev/featured/registry"
)

var (
	ErrUnknownSource  = errors.New("ingest: unknown source")
	ErrNotPushSource  = errors.New("ingest: source is not a push source")
	ErrAtomicRejected = errors.New("ingest: atomic batch has rejected events; nothing was applied")
	ErrBatchTooLarge  = errors.New("ingest: batch too large")
	ErrEmptyBatch     = errors.New("ingest: batch has no events")
	// ErrBadBatchID is a batch ID that is too long, not UTF-8 or holds a
	// NUL byte (featurestore.CheckBatchID).
	ErrBadBatchID = errors.New("ingest: bad batch_id")
)

// Options configures ingestion. The zero value is usable.
type Options struct {
	// MaxBatch is the most events one push may carry. The default value is
	// 10000.
	MaxBatch int
	// MaxFutureSkew is how far past the ingest clock an event time may be.
	// It must not exceed the store's PruneSlack. The default value is 15m.
	MaxFutureSkew time.Duration
	// Now is the ingest clock. The default value is time.Now.
	Now func() time.Time
	// Logger. The default value is slog.Default().
	Logger *slog.Logger
	// Writable says whether the store may take writes now: an error (the
	// disk is full, diskguard.Guard.Check) refuses a push with it before
	// anything is decoded, and pauses Kafka consumers until it clears.
	// The default value always allows.
	Writable func() error
	// PushBatch, when set, is told the size of every push that passed the
	// batch checks (a source, a count of events), on the pushing goroutine;
	// it must not block. featured serve records it in metrics. Nil: not
	// called.
	PushBatch func(source string, events int)
	// Applied, when set, is told of every batch of events handed to the
	// store: its source, how many events and the newest event time (Unix
	// milliseconds). A push's events are visible to lookups when it is
	// called; a Kafka batch's once its shards commit, within the store's
	// CommitInterval. In cluster mode a Pusher does not call it: a push's
	// events are applied, and reported, by the Kafka consumers of its push
	// topic. It runs on the ingesting goroutine and must not block.
	// featured serve records end-to-end ingest latency with it. Nil: not
	// called.
	Applied func(source string, events int, newestEventMillis int64)
	// Tracer, when set, gets a span per push and per Kafka batch, with
	// children for their phases (see Tracer). featured serve sets it when
	// traces are sampled. Nil: no spans.
	Tracer Tracer
	// Cluster, when set, is cluster mode: a Pusher produces each validated
	// push to its source's push topic (PushTopic) instead of writing it to
	// the store, and Kafka consumes every push source from its push topic,
	// read_committed, like a Kafka source (push_cluster.go). Nil: a single
	// node, pushes written to the store.
	Cluster *ClusterOptions
}

// EnsureDefaults fills zero fields with their defaults.
func (o *Options) EnsureDefaults() {
	if o.MaxBatch == 0 {
		o.MaxBatch = 10000
	}
	if o.MaxFutureSkew == 0 {
		o.MaxFutureSkew = 15 * time.Minute
	}
	if o.Writable == nil {
		o.Writable = func() error { return nil }
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Cluster != nil {
		c := *o.Cluster // the caller's stays as it was
		c.ensureDefaults()
		o.Cluster = &c
	}
}

// Validate reports options that cannot work.
func (o *Options) Validate() error {
	if o.MaxBatch < 1 {
		return fmt.Errorf("ingest: max batch: %d is less than 1", o.MaxBatch)
	}
	if o.MaxFutureSkew < 0 {
		return fmt.Errorf("ingest: max future skew: %s is negative", o.MaxFutureSkew)
	}
	if o.Cluster != nil {
		return o.Cluster.validate()
	}
	return nil
}

// PushOptions are what a push asks for beyond its events.
type PushOptions struct {
	// Atomic applies all of the push or nothing: one rejected event and
	// nothing is written (ErrAtomicRejected); once validated, the push is
	// journaled so that a failed shard commit or a crash cannot leave part
	// of it applied (featurestore.WriteBatch).
	Atomic bool
	// BatchID names the push so that retrying it, after a timeout, a 5xx or
	// a crash, applies each event exactly once, for the store's dedupe
	// window. "" for none; an atomic push without one gets one, returned in
	// PushResult.BatchID. 1..128 bytes of UTF-8 without NUL.
	BatchID string
}

// PushResult reports a push: how many events were applied and why each
// rejected one was.
type PushResult struct {
	Accepted int        `json:"accepted"`
	Rejected []RowError `json:"rejected,omitempty"`
	// BatchID is the push's batch ID (the caller's or the generated one);
	// "" for a push that had none.
	BatchID string `json:"batch_id,omitempty"`
	// Duplicate reports a push whose batch ID had already been applied in
	// full: nothing was applied now, and Accepted is the first push's
	// count. Never set in cluster mode, where a retry is produced again and
	// skipped when applied.
	Duplicate bool `json:"duplicate,omitempty"`
	// Positions, in cluster mode, are the offset of the push's last
	// record in each partition of its push topic, by partition; a replica
	// has applied the push once it has read past them. Nil on a single
	// node.
	Positions []Position `json:"positions,omitempty"`
}

// Pusher applies pushed events. It is safe for concurrent use.
type Pusher struct {
	store  *featurestore.Store
	opts   Options
	router router
	stats  stats
	// cluster produces pushes in cluster mode; nil on a single node.
	cluster *clusterPush
}

// NewPusher returns a Pusher over reg and store. In cluster mode
// (Options.Cluster) it holds Kafka clients until Close.
func NewPusher(reg *registry.Registry, store *featurestore.Store, opts Options) (*Pusher, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	p := &Pusher{store: store, opts: opts, router: router{reg: reg, partitions: store.Partitions()}}
	if opts.Cluster != nil {
		c, err := newClusterPush(opts)
		if err != nil {
			return nil, err
		}
		p.cluster = c
	}
	return p, nil
}

// Close releases the Kafka clients of cluster mode; pushes after it fail.
// It is idempotent, and does nothing on a single node.
func (p *Pusher) Close() {
	if p.cluster != nil {
		p.cluster.close()
	}
}

// Stats returns per-source counters of pushed events: in cluster mode,
// of events produced (Kafka's Stats count them applied).
func (p *Pusher) Stats() []SourceStats { return p.stats.snapshot() }

// PushJSON decodes events (JSON objects) against source's schema and applies
// the good ones; see push.
func (p *Pusher) PushJSON(ctx context.Context, source string, events []json.RawMessage, po PushOptions) (PushResult, error) {
	var parser fastjson.Parser
	return p.push(ctx, source, len(events), po, func(d *decoder, i int, rec *Record) *RowError {
		return d.decodeJSON(&parser, events[i], rec)
	})
}

// PushValues is PushJSON for events already typed (the gRPC path).
func (p *Pusher) PushValues(ctx context.Context, source string, events []map[string]aggregate.Value, po PushOptions) (PushResult, error) {
	return p.push(ctx, source, len(events), po, func(d *decoder, i int, rec *Record) *RowError {
		return d.valuesRecord(events[i], rec)
	})
}

// push validates every event first, then writes the good ones in one
// store.WriteBatch, so a push is never half-applied by validation: with
// atomic, one bad event means nothing is written (ErrAtomicRejected, with
// the result listing every bad event). The store then makes the batch ID
// and atomic hold across shards and crashes.
func (p *Pusher) push(ctx context.Context, source string, n int, po PushOptions, decode func(*decoder, int, *Record) *RowError) (res PushResult, err error) {
	ctx, end := startSpan(ctx, p.opts.Tracer, SpanPush)
	defer func() { end(err) }()
	rt := p.router.route(source)
	switch {
	case po.BatchID != "" && featurestore.CheckBatchID(po.BatchID) != nil:
		return res, fmt.Errorf("%w: %v", ErrBadBatchID, featurestore.CheckBatchID(po.BatchID))
	case rt == nil:
		return res, fmt.Errorf("%w %q", ErrUnknownSource, source)
	case rt.src.Kind != "push":
		return res, fmt.Errorf("%w: %q reads Kafka topic %q; produce to the topic instead", ErrNotPushSource, source, rt.src.Topic)
	case n == 0:
		return res, ErrEmptyBatch
	case n > p.opts.MaxBatch:
		return res, fmt.Errorf("%w: %d events, the limit is %d", ErrBatchTooLarge, n, p.opts.MaxBatch)
	case po.Atomic && p.cluster != nil && p.cluster.opts.TransactionalID == "":
		return res, ErrAtomicUnsupported
	}
	if err := p.opts.Writable(); err != nil {
		return res, err
	}
	if f := p.opts.PushBatch; f != nil {
		f(source, n)
	}
	st := p.stats.source(source)
	_, endDecode := startSpan(ctx, p.opts.Tracer, SpanDecode)
	now := p.opts.Now()
	nf := len(rt.src.Fields)
	fields := make([]aggregate.Value, n*nf)
	writes := make([]featurestore.Write, 0, n)
	index := make([]int, 0, n) // writes[j] is event index[j]
	var keys []byte
	var rec Record
	// In cluster mode every good event becomes a record of the push topic.
	var recs []*kgo.Record
	var topic string
	var batchID []byte // shared by the records' headers
	if p.cluster != nil {
		if po.Atomic && po.BatchID == "" {
			po.BatchID = newClusterBatchID()
		}
		if po.BatchID != "" {
			batchID = []byte(po.BatchID)
		}
		topic = PushTopic(p.cluster.opts.Group, source)
		recs = make([]*kgo.Record, 0, n)
	}
	for i := 0; i < n; i++ {
		rec.Fields = fields[i*nf : (i+1)*nf : (i+1)*nf]
		rowErr := decode(rt.dec, i, &rec)
		var targets []featurestore.Target
		if rowErr == nil {
			targets, rowErr = rt.admit(rec.EventMillis, now, p.opts.MaxFutureSkew)
		}
		start := len(keys)
		if rowErr == nil {
			keys, rowErr = rt.dec.appendKey(keys, &rec)
		}
		if rowErr != nil {
			rowErr.Index = i
			res.Rejected = append(res.Rejected, *rowErr)
			continue
		}
		part, _ := rt.place(&rec, -1, nil)
		// Earlier entries keep pointing at the array they were cut from when
		// keys grows: append never rewrites bytes already handed out.
		writes = append(writes, featurestore.Write{
			Entity:      keys[start:len(keys):len(keys)],
			Partition:   part,
			EventMillis: rec.EventMillis,
			Fields:      rec.Fields,
			Targets:     targets,
			// The log replays admission from the ingest clock.
			IngestMillis: now.UnixMilli(),
			Schema:       rt.schema,
		})
		index = append(index, i)
		if p.cluster != nil {
			recs = append(recs, p.cluster.record(topic, rt, &rec, i, batchID))
		}
	}
	endDecode(nil)
	for _, r := range res.Rejected {
		st.reject(r.Code)
	}
	if po.Atomic && len(res.Rejected) > 0 {
		return res, ErrAtomicRejected
	}
	if p.cluster != nil {
		return p.produce(ctx, source, st, rt, po, writes, recs, res)
	}
	wctx, endWrite := startSpan(ctx, p.opts.Tracer, SpanWrite)
	br, err := p.store.WriteBatch(wctx, featurestore.Batch{ID: po.BatchID, Atomic: po.Atomic, Writes: writes})
	endWrite(err)
	if err != nil {
		return PushResult{BatchID: br.ID}, fmt.Errorf("ingest: push to %q: %w", source, err)
	}
	res.BatchID, res.Duplicate, res.Accepted = br.ID, br.Duplicate, br.Accepted
	if br.Duplicate {
		return res, nil
	}
	// The store refused these (a target state is corrupt): they were
	// applied to no view, even in an atomic push, whose atomicity covers
	// validation and crashes, not data already damaged on disk; the others
	// are committed.
	if refused := br.Rejected; len(refused) > 0 {
		kept := writes[:0]
		next := 0
		for j := range writes {
			if next < len(refused) && refused[next].Index == j {
				res.Rejected = append(res.Rejected, RowError{Index: index[j], Code: ReasonCorruptState, Reason: refused[next].Err.Error()})
				st.reject(ReasonCorruptState)
				next++
				continue
			}
			kept = append(kept, writes[j])
		}
		writes = kept
		slices.SortFunc(res.Rejected, func(a, b RowError) int { return a.Index - b.Index })
	}
	newest := int64(0)
	for i := range writes {
		st.observe(writes[i].EventMillis)
		newest = max(newest, writes[i].EventMillis)
	}
	st.add(rt, writes)
	if f := p.opts.Applied; f != nil && len(writes) > 0 {
		f(source, len(writes), newest)
	}
	return res, nil
}

// produce ends a push in cluster mode: its validated events, recs, are
// produced to the push topic, and the push answers once the broker holds
// them all. A failed produce may have written some of a non-atomic push's
// records: its retry with the same batch ID is skipped in the partitions
// that took any of them (docs/scaling.md says what that leaves out), one
// without a batch ID applies them twice.
func (p *Pusher) produce(ctx context.Context, source string, st *sourceStats, rt *route, po PushOptions, writes []featurestore.Write, recs []*kgo.Record, res PushResult) (PushResult, error) {
	res.BatchID = po.BatchID
	if len(recs) == 0 {
		return res, nil
	}
	wctx, endWrite := startSpan(ctx, p.opts.Tracer, SpanWrite)
	_, err := p.cluster.ensureTopic(wctx, source)
	var pos []Position
	if err == nil {
		pos, err = p.cluster.produce(wctx, recs, po.Atomic)
	}
	endWrite(err)
	if err != nil {
		return PushResult{BatchID: res.BatchID}, fmt.Errorf("ingest: push to %q: %w", source, err)
	}
	res.Accepted, res.Positions = len(recs), pos
	for i := range writes {
		st.observe(writes[i].EventMillis)
	}
	st.add(rt, writes)
	return res, nil
}
