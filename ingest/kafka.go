package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/valyala/fastjson"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/featurestore"
	"github.com/featured-dev/featured/internal/keyenc"
	"github.com/featured-dev/featured/registry"
)

// KafkaOptions configures Kafka ingestion. The zero value is usable once
// Brokers is set.
type KafkaOptions struct {
	Options
	// Brokers are the bootstrap brokers, host:port.
	Brokers []string
	// BatchSize is the most messages of one partition handed to the store at
	// once. The default value is 4096.
	BatchSize int
	// Linger is how long a partial batch waits for more messages. The default
	// value is 5ms.
	Linger time.Duration
	// MaxBytes is the largest fetch response. The default value is 16 MiB.
	MaxBytes int
	// MaxWait is how long the broker holds a fetch for new data. The default
	// value is 250ms.
	MaxWait time.Duration
	// RetryMin and RetryMax bound the backoff between retries of metadata,
	// topic and dead-letter calls. Defaults: 200ms and 10s.
	RetryMin, RetryMax time.Duration
	// PartitionCheck is how often a consumer looks for new partitions. The
	// default value is 30s.
	PartitionCheck time.Duration
	// OffsetCheck is how long a partition's reader may go without a message
	// before its position is compared with the partition's offsets on the
	// broker, to catch a topic recreated or truncated under it (see Kafka).
	// The check also runs at once when kafka-go reports an out-of-range
	// offset. The default value is 10s.
	OffsetCheck time.Duration
}

// EnsureDefaults fills zero fields with their defaults.
func (o *KafkaOptions) EnsureDefaults() {
	o.Options.EnsureDefaults()
	if o.BatchSize == 0 {
		o.BatchSize = 4096
	}
	if o.Linger == 0 {
		o.Linger = 5 * time.Millisecond
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = 16 << 20
	}
	if o.MaxWait == 0 {
		o.MaxWait = 250 * time.Millisecond
	}
	if o.RetryMin == 0 {
		o.RetryMin = 200 * time.Millisecond
	}
	if o.RetryMax == 0 {
		o.RetryMax = 10 * time.Second
	}
	if o.PartitionCheck == 0 {
		o.PartitionCheck = 30 * time.Second
	}
	if o.OffsetCheck == 0 {
		o.OffsetCheck = 10 * time.Second
	}
}

// Validate reports options that cannot work.
func (o *KafkaOptions) Validate() error {
	var errs []error
	if len(o.Brokers) == 0 {
		errs = append(errs, errors.New("ingest: kafka: no brokers"))
	}
	if o.BatchSize < 1 {
		errs = append(errs, fmt.Errorf("ingest: kafka: batch size %d is less than 1", o.BatchSize))
	}
	errs = append(errs, o.Options.Validate())
	return errors.Join(errs...)
}

// Dead-letter message headers.
const (
	HeaderReason    = "featured-reason" // a Reason* code
	HeaderError     = "featured-error"  // the human explanation
	HeaderSource    = "featured-source"
	HeaderTopic     = "featured-topic"
	HeaderPartition = "featured-partition"
	HeaderOffset    = "featured-offset"
)

// Kafka runs one consumer per Kafka source in the registry, starting and
// stopping them as sources are applied and deleted. Each partition is read
// by its own kafka.Reader with no consumer group, from the offsets the store
// committed with the state (featurestore.Store.Offsets): the store, not
// Kafka, is the record of what was applied, which is what makes ingestion
// exactly-once.
//
// A stored offset the partition no longer holds is handled before the
// partition's reader starts (and, while it runs, whenever kafka-go reports
// an out-of-range offset or the partition has been idle for
// KafkaOptions.OffsetCheck):
//
//  1. Stored offset below the partition's first offset: retention or
//     compaction removed events this source never applied. They are gone;
//     the gap is counted in PartitionStatus.Skipped, logged as a warning,
//     and reading resumes at the first offset.
//  2. Stored offset above the partition's end offset (high watermark): the
//     topic was deleted and recreated, or truncated. kafka-go alone would
//     retry forever, then resume silently at the stored offset once the new
//     topic grew past it, skipping the new topic's first events. Instead the
//     reset is logged as an error (topic, partition, stored and end
//     offsets), counted in PartitionStatus.OffsetResets, and the partition
//     is read again from its first offset: its events are new events, folded
//     on top of the state the old topic's events built.
//
// The store skips an event at an offset below the one it recorded for that
// name (that is how a replay after a crash is never applied twice), so
// after a reset the partition's offsets are recorded under a new name,
// "<source>/<topic>#<epoch>" (epoch 0 is plain "<source>/<topic>"); at start
// a consumer takes the highest epoch the store has a complete record of.
// Offsets alone cannot tell a recreated topic that has already grown past
// the stored offset from normal progress: that case is not detected
// (docs/kafka.md).
type Kafka struct {
	store  *featurestore.Store
	reg    *registry.Registry
	opts   KafkaOptions
	router router
	stats  stats
	client *kafka.Client
	dlq    *kafka.Writer

	mu struct {
		sync.Mutex
		consumers map[string]*topicConsumer // by source name
	}
}

// NewKafka returns a Kafka ingester; Run starts it.
func NewKafka(reg *registry.Registry, store *featurestore.Store, opts KafkaOptions) (*Kafka, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	k := &Kafka{
		store:  store,
		reg:    reg,
		opts:   opts,
		router: router{reg: reg},
		client: &kafka.Client{Addr: kafka.TCP(opts.Brokers...), Timeout: 10 * time.Second},
		dlq: &kafka.Writer{
			Addr:         kafka.TCP(opts.Brokers...),
			Balancer:     &kafka.Murmur2Balancer{},
			RequiredAcks: kafka.RequireAll,
			BatchTimeout: time.Millisecond,
		},
	}
	k.mu.consumers = make(map[string]*topicConsumer)
	return k, nil
}

// Run reconciles consumers with the registry until ctx ends, then stops
// them and flushes what they handed to the store.
func (k *Kafka) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { k.publishStoreDeadLetters(ctx) })
	for {
		changed := k.reg.Changed()
		k.reconcile(ctx)
		select {
		case <-ctx.Done():
			k.stopAll()
			wg.Wait()
			flushCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err := k.store.Flush(flushCtx)
			if cerr := k.dlq.Close(); err == nil {
				err = cerr
			}
			return err
		case <-changed:
		}
	}
}

func (k *Kafka) reconcile(ctx context.Context) {
	snap := k.reg.Snapshot()
	want := map[string]*registry.Source{}
	for _, src := range snap.Sources() {
		if src.Kind == "kafka" {
			want[src.Name] = src
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for name, c := range k.mu.consumers {
		if src, ok := want[name]; !ok || src.Topic != c.topic {
			c.stop()
			delete(k.mu.consumers, name)
		}
	}
	for name, src := range want {
		if _, ok := k.mu.consumers[name]; !ok {
			c := k.newTopicConsumer(src)
			k.mu.consumers[name] = c
			c.start(ctx)
		}
	}
}

func (k *Kafka) stopAll() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for name, c := range k.mu.consumers {
		c.stop()
		delete(k.mu.consumers, name)
	}
}

// Stats returns per-source counters of Kafka events.
func (k *Kafka) Stats() []SourceStats { return k.stats.snapshot() }

// PartitionStatus is one partition's ingest state.
type PartitionStatus struct {
	Source    string `json:"source"`
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
	// NextOffset is the next offset to read; HighWatermark the partition's
	// end as last seen; Lag their difference.
	NextOffset    int64  `json:"next_offset"`
	HighWatermark int64  `json:"high_watermark"`
	Lag           int64  `json:"lag"`
	Applied       uint64 `json:"events_applied"`
	Rejected      uint64 `json:"events_rejected"`
	// Skipped counts offsets that were gone when read (retention or
	// compaction removed them before they were applied).
	Skipped int64 `json:"offsets_skipped"`
	// OffsetResets counts, since the process started, the times the
	// partition's next offset was past its end offset (the topic was
	// recreated or truncated) and reading started again at its first
	// offset. OffsetEpoch is how many resets the stored offsets have been
	// through, ever: they are kept as "<source>/<topic>#<epoch>".
	OffsetResets int64  `json:"offset_resets"`
	OffsetEpoch  int32  `json:"offset_epoch"`
	LastError    string `json:"last_error,omitempty"`
}

// ConsumerStatus is one Kafka source's state.
type ConsumerStatus struct {
	Source     string            `json:"source"`
	Topic      string            `json:"topic"`
	Ready      bool              `json:"ready"`
	Error      string            `json:"error,omitempty"`
	Partitions []PartitionStatus `json:"partitions"`
}

// Status returns every consumer's state, sorted by source.
func (k *Kafka) Status() []ConsumerStatus {
	k.mu.Lock()
	cs := make([]*topicConsumer, 0, len(k.mu.consumers))
	for _, c := range k.mu.consumers {
		cs = append(cs, c)
	}
	k.mu.Unlock()
	out := make([]ConsumerStatus, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.status())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Source < out[j].Source })
	return out
}

// Ready returns nil when every Kafka source's topic exists and all its
// partitions are being read, or an error naming what is not.
func (k *Kafka) Ready() error {
	var errs []error
	for _, s := range k.Status() {
		if !s.Ready {
			msg := s.Error
			if msg == "" {
				msg = "starting"
			}
			errs = append(errs, fmt.Errorf("kafka source %q (topic %q): %s", s.Source, s.Topic, msg))
		}
	}
	return errors.Join(errs...)
}

// topicConsumer reads one source's topic: one goroutine per partition.
type topicConsumer struct {
	k      *Kafka
	source string
	topic  string
	// offsetTopic names the source's offsets in the store: two sources may
	// read one topic, and each needs its own record of what it applied.
	offsetTopic string
	dlqTopic    string
	startOffset int64

	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu struct {
		sync.Mutex
		err   string
		ready bool
		parts map[int]*partitionConsumer
	}
}

func (k *Kafka) newTopicConsumer(src *registry.Source) *topicConsumer {
	c := &topicConsumer{
		k:           k,
		source:      src.Name,
		topic:       src.Topic,
		offsetTopic: src.Name + "/" + src.Topic,
		dlqTopic:    src.DeadLetterTopic,
		startOffset: kafka.FirstOffset,
	}
	if c.dlqTopic == "" {
		c.dlqTopic = src.Topic + ".dlq"
	}
	if src.StartOffset == "latest" {
		c.startOffset = kafka.LastOffset
	}
	c.mu.parts = make(map[int]*partitionConsumer)
	return c
}

func (c *topicConsumer) start(parent context.Context) {
	ctx, cancel := context.WithCancel(parent)
	c.cancel = cancel
	c.wg.Go(func() { c.run(ctx) })
}

func (c *topicConsumer) stop() {
	c.cancel()
	c.wg.Wait()
}

func (c *topicConsumer) setErr(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil {
		c.mu.err = ""
		return
	}
	c.mu.err = err.Error()
	c.mu.ready = false
}

// run finds the topic's partitions (retrying, with the failure visible in
// Status, while the topic or the broker is missing), makes sure the
// dead-letter topic exists, and starts a reader per partition; it keeps
// looking for new partitions.
func (c *topicConsumer) run(ctx context.Context) {
	log := c.k.opts.Logger.With("source", c.source, "topic", c.topic)
	backoff := newBackoff(c.k.opts.RetryMin, c.k.opts.RetryMax)
	dlqReady := false
	for {
		n, err := c.partitions(ctx)
		if err == nil && !dlqReady {
			err = c.ensureDLQ(ctx, n)
			dlqReady = err == nil
		}
		if err != nil {
			c.setErr(err)
			log.Warn("kafka source not ready; retrying", "err", err)
			if !backoff.wait(ctx) {
				return
			}
			continue
		}
		backoff.reset()
		c.mu.Lock()
		for p := 0; p < n; p++ {
			if _, ok := c.mu.parts[p]; !ok {
				pc := &partitionConsumer{c: c, partition: p}
				c.mu.parts[p] = pc
				c.wg.Go(func() { pc.run(ctx) })
			}
		}
		c.mu.err = ""
		c.mu.ready = true
		c.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-time.After(c.k.opts.PartitionCheck):
		}
	}
}

// ErrTopicMissing is reported while a Kafka source's topic does not exist.
var ErrTopicMissing = errors.New("ingest: kafka topic does not exist")

func (c *topicConsumer) partitions(ctx context.Context) (int, error) {
	md, err := c.k.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{c.topic}})
	if err != nil {
		return 0, fmt.Errorf("read metadata from %v: %w", c.k.opts.Brokers, err)
	}
	for _, t := range md.Topics {
		if t.Name != c.topic {
			continue
		}
		if t.Error != nil {
			if errors.Is(t.Error, kafka.UnknownTopicOrPartition) {
				return 0, fmt.Errorf("%w: %q (create it, or fix the source's topic)", ErrTopicMissing, c.topic)
			}
			return 0, fmt.Errorf("topic %q: %w", c.topic, t.Error)
		}
		if len(t.Partitions) == 0 {
			return 0, fmt.Errorf("%w: %q has no partitions", ErrTopicMissing, c.topic)
		}
		return len(t.Partitions), nil
	}
	return 0, fmt.Errorf("%w: %q", ErrTopicMissing, c.topic)
}

// ensureDLQ creates the dead-letter topic when it is missing.
func (c *topicConsumer) ensureDLQ(ctx context.Context, partitions int) error {
	res, err := c.k.client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: c.dlqTopic, NumPartitions: min(partitions, 4), ReplicationFactor: -1,
	}}})
	if err != nil {
		return fmt.Errorf("create dead-letter topic %q: %w", c.dlqTopic, err)
	}
	if e := res.Errors[c.dlqTopic]; e != nil && !errors.Is(e, kafka.TopicAlreadyExists) {
		return fmt.Errorf("create dead-letter topic %q: %w", c.dlqTopic, e)
	}
	return nil
}

func (c *topicConsumer) status() ConsumerStatus {
	c.mu.Lock()
	s := ConsumerStatus{Source: c.source, Topic: c.topic, Ready: c.mu.ready, Error: c.mu.err}
	parts := make([]*partitionConsumer, 0, len(c.mu.parts))
	for _, pc := range c.mu.parts {
		parts = append(parts, pc)
	}
	c.mu.Unlock()
	for _, pc := range parts {
		s.Partitions = append(s.Partitions, pc.status())
	}
	sort.Slice(s.Partitions, func(i, j int) bool { return s.Partitions[i].Partition < s.Partitions[j].Partition })
	return s
}

// offsetName is the name of the source's offsets in the store in the given
// epoch (see Kafka): a topic name has no '#', a source name no '/' or '#'.
func (c *topicConsumer) offsetName(epoch int32) string {
	if epoch == 0 {
		return c.offsetTopic
	}
	return c.offsetTopic + "#" + strconv.Itoa(int(epoch))
}

// partitionConsumer reads one partition. Its run goroutine owns probed and
// is the only writer of the counters, next, high and epoch; the reader's
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
	lastErr  atomic.Pointer[string]
	// epoch names the offsets (offsetName); probed says it has been read
	// from the store (once, at the first start).
	epoch  atomic.Int32
	probed bool

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
		OffsetResets: pc.resets.Load(), OffsetEpoch: pc.epoch.Load(),
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
		err := pc.consume(ctx, log)
		if ctx.Err() != nil {
			return
		}
		if pc.applied.Load()+pc.rejected.Load() != before {
			backoff.reset() // it made progress: this is a new failure, not the same one
		}
		pc.setErr(err)
		log.Warn("partition consumer stopped; restarting from stored offsets", "err", err)
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

// startOffset decides where the partition's reader starts: the offset
// stored with the state, checked against the partition's first and end
// offsets on the broker before anything is fetched (see Kafka for the
// policy).
func (pc *partitionConsumer) startOffset(ctx context.Context, log *slog.Logger) (int64, error) {
	c := pc.c
	first, end, err := pc.offsets(ctx)
	if err != nil {
		return 0, fmt.Errorf("list offsets: %w", err)
	}
	pc.high.Store(end)
	if !pc.probed {
		pc.epoch.Store(pc.storedEpoch())
		pc.probed = true
	}
	epoch := pc.epoch.Load()
	stored, ok := c.k.store.Offsets(c.offsetName(epoch))[int32(pc.partition)]
	switch {
	case !ok && epoch > 0:
		// A reset whose first batch is not committed yet: read from the
		// start again; shards skip the events they already applied.
		return first, nil
	case !ok && c.startOffset == kafka.LastOffset:
		return end, nil
	case !ok:
		return first, nil
	case stored > end:
		pc.reset(log, stored, first, end)
		return first, nil
	case stored < first:
		// Retention removed offsets this source never applied. kafka-go
		// would jump silently; count it and say so.
		pc.skipped.Add(first - stored)
		log.Warn("stored offset is gone from the topic; resuming at the earliest offset",
			"stored", stored, "earliest", first, "lost", first-stored)
		return first, nil
	}
	return stored, nil
}

// storedEpoch returns the highest offset epoch the store has a complete
// record of for the partition. Epoch e+1 is only ever started from a
// complete record of epoch e, so the epochs on record are contiguous.
func (pc *partitionConsumer) storedEpoch() int32 {
	var e int32
	for {
		if _, ok := pc.c.k.store.Offsets(pc.c.offsetName(e + 1))[int32(pc.partition)]; !ok {
			return e
		}
		e++
	}
}

// reset moves the partition to a new offset epoch after its next offset
// was found past the partition's end offset.
func (pc *partitionConsumer) reset(log *slog.Logger, next, first, end int64) {
	epoch := pc.epoch.Add(1)
	pc.resets.Add(1)
	pc.setErr(fmt.Errorf("offset %d is past the partition's end offset %d (topic recreated or truncated): reading again from its earliest offset %d, offsets kept as %q",
		next, end, first, pc.c.offsetName(epoch)))
	log.Error("stored offset is past the partition's end offset: the topic was recreated or truncated; resuming at the earliest offset",
		"stored", next, "end", end, "earliest", first, "offset_epoch", epoch)
}

// errOffsetCheck is returned by fetchFirst when the partition's offsets are
// to be checked: no message for OffsetCheck, or kafka-go reported an
// out-of-range offset.
var errOffsetCheck = errors.New("ingest: check partition offsets")

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

	var parser fastjson.Parser
	batch := make([]kafka.Message, 0, k.opts.BatchSize)
	for {
		batch = batch[:0]
		msg, err := pc.fetchFirst(ctx, r)
		if err != nil {
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
		lctx, cancel := context.WithTimeout(ctx, k.opts.Linger)
		for len(batch) < k.opts.BatchSize {
			msg, err := r.FetchMessage(lctx)
			if err != nil {
				break
			}
			batch = append(batch, msg)
		}
		cancel()
		if err := pc.apply(ctx, &parser, batch); err != nil {
			// The store refused the batch (closing, or a disk error): it
			// was not applied and its offsets were not recorded.
			return 0, fmt.Errorf("apply batch: %w", err)
		}
	}
}

// fetchFirst waits for the first message of a batch. It returns
// errOffsetCheck after OffsetCheck without a message, or at once when the
// reader's error logger reported an out-of-range offset.
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

// wakeOffsetCheck makes the fetch loop check the partition's offsets now.
// Called from the reader's goroutines.
func (pc *partitionConsumer) wakeOffsetCheck() {
	pc.outOfRange.Store(true)
	if cancel := pc.wake.Load(); cancel != nil {
		(*cancel)()
	}
}

// outOfRange reports whether a kafka-go error log line is about an offset
// out of range: the error itself, or kafka-go's "reading passed the last
// offset" (v0.4.51), logged while it retries a fetch past the end.
func outOfRange(msg string, args []any) bool {
	if strings.Contains(msg, "passed the last offset") {
		return true
	}
	for _, a := range args {
		if err, ok := a.(error); ok && errors.Is(err, kafka.OffsetOutOfRange) {
			return true
		}
	}
	return false
}

// checkOffsets compares the partition's next offset with its offsets on
// the broker. When the next offset is past the end it resets the partition
// and returns its first offset and true.
func (pc *partitionConsumer) checkOffsets(ctx context.Context, log *slog.Logger) (int64, bool, error) {
	first, end, err := pc.offsets(ctx)
	if err != nil {
		return 0, false, err
	}
	pc.high.Store(end)
	if next := pc.next.Load(); next > end {
		pc.reset(log, next, first, end)
		return first, true, nil
	}
	return 0, false, nil
}

// offsets returns the partition's first offset and its end offset (the
// high watermark: the offset the next message will get).
func (pc *partitionConsumer) offsets(ctx context.Context) (first, end int64, err error) {
	res, err := pc.c.k.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{
		Topics: map[string][]kafka.OffsetRequest{pc.c.topic: {kafka.FirstOffsetOf(pc.partition), kafka.LastOffsetOf(pc.partition)}},
	})
	if err != nil {
		return 0, 0, err
	}
	for _, po := range res.Topics[pc.c.topic] {
		if po.Partition == pc.partition {
			return po.FirstOffset, po.LastOffset, po.Error
		}
	}
	return 0, 0, fmt.Errorf("no offsets for partition %d", pc.partition)
}

// apply decodes a batch, dead-letters the bad messages, and hands the good
// ones to the store together with the next offset to read. Dead letters are
// written before the batch's offsets can be committed, so a crash may write
// a dead letter twice but never loses one.
func (pc *partitionConsumer) apply(ctx context.Context, parser *fastjson.Parser, batch []kafka.Message) error {
	c := pc.c
	k := c.k
	rt := k.router.route(c.source)
	if rt == nil || rt.src.Kind != "kafka" {
		return fmt.Errorf("source %q is gone", c.source)
	}
	st := k.stats.source(c.source)
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
		if rowErr != nil {
			st.reject(rowErr.Code)
			dead = append(dead, deadLetter(c, m, rowErr))
			continue
		}
		positions[i] = featurestore.Position{Topic: name, Partition: int32(pc.partition), Offset: m.Offset}
		writes = append(writes, featurestore.Write{
			Entity:      keys[start:len(keys):len(keys)],
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
	if len(dead) > 0 {
		if err := pc.writeDead(ctx, dead); err != nil {
			return err
		}
	}
	last := batch[len(batch)-1]
	mark := []featurestore.Position{{Topic: name, Partition: int32(pc.partition), Offset: last.Offset + 1}}
	if err := k.store.Enqueue(ctx, writes, mark); err != nil {
		return err
	}
	pc.next.Store(last.Offset + 1)
	pc.high.Store(last.HighWaterMark)
	pc.applied.Add(uint64(len(writes)))
	pc.rejected.Add(uint64(len(dead)))
	st.add(rt, writes)
	if len(writes) > 0 {
		st.observe(maxMillis)
	}
	return nil
}

func deadLetter(c *topicConsumer, m *kafka.Message, e *RowError) kafka.Message {
	reason := e.Reason
	if e.Field != "" {
		reason = e.Field + ": " + reason
	}
	return kafka.Message{
		Topic: c.dlqTopic,
		Key:   m.Key,
		Value: m.Value,
		Headers: []kafka.Header{
			{Key: HeaderReason, Value: []byte(e.Code)},
			{Key: HeaderError, Value: []byte(reason)},
			{Key: HeaderSource, Value: []byte(c.source)},
			{Key: HeaderTopic, Value: []byte(c.topic)},
			{Key: HeaderPartition, Value: []byte(strconv.Itoa(m.Partition))},
			{Key: HeaderOffset, Value: []byte(strconv.FormatInt(m.Offset, 10))},
		},
	}
}

// writeDead writes dead letters, retrying with backoff while the broker is
// unavailable: the partition pauses rather than drop a bad message's record.
func (pc *partitionConsumer) writeDead(ctx context.Context, msgs []kafka.Message) error {
	backoff := newBackoff(pc.c.k.opts.RetryMin, pc.c.k.opts.RetryMax)
	for {
		err := pc.c.k.dlq.WriteMessages(ctx, msgs...)
		if err == nil {
			return nil
		}
		pc.setErr(fmt.Errorf("write dead letters to %q: %w", pc.c.dlqTopic, err))
		if !backoff.wait(ctx) {
			return ctx.Err()
		}
	}
}

// backoff is an exponential backoff with jitter-free doubling, bounded.
type backoff struct{ min, max, cur time.Duration }

func newBackoff(lo, hi time.Duration) *backoff { return &backoff{min: lo, max: hi, cur: lo} }
func (b *backoff) reset()                      { b.cur = b.min }
func (b *backoff) wait(ctx context.Context) bool {
	t := time.NewTimer(b.cur)
	defer t.Stop()
	b.cur = min(2*b.cur, b.max)
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
