package ingest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/featured-dev/featured/featurestore"
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
	// MaxBytes is the largest fetch response, and the most bytes of one
	// partition in it. The default value is 16 MiB.
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
	// The check also runs at once when a fetch reports an out-of-range
	// offset. The default value is 10s.
	OffsetCheck time.Duration
	// GroupPrefix, when set, makes Run commit each partition's applied
	// offset to the consumer group GroupPrefix+<source> every
	// GroupCommitInterval, as information for lag tools (kafka_group.go);
	// featured never reads it. Empty: no group commits.
	GroupPrefix string
	// GroupCommitInterval is how often applied offsets are committed to
	// the groups. The default value is 5s.
	GroupCommitInterval time.Duration
	// Partitions, when set, restricts every source to the partitions in the
	// set, by partition number, and is watched: a partition added is read
	// from the store's offsets as at start, one removed stops once the
	// batch it is applying has been handed to the store. Nil: all
	// partitions of every topic.
	Partitions *PartitionSet
	// GroupPartitions, when set, restricts the group commits (GroupPrefix)
	// to the partitions in the set: in a cluster every replica of a
	// partition reads it, and only its active's progress is committed, so
	// that lag tools see one writer per partition. Nil: every partition
	// read is committed.
	GroupPartitions *PartitionSet
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
	if o.GroupCommitInterval == 0 {
		o.GroupCommitInterval = 5 * time.Second
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

// Kafka runs one consumer per Kafka source in the registry, starting and
// stopping them as sources are applied and deleted; in cluster mode
// (Options.Cluster) also one per push source, which reads the source's
// push topic (PushTopic, created with the cluster's partition count when
// missing) read_committed, so an atomic push's records are applied once
// its transaction commits and never when it aborts. An event of a push
// with a batch ID is applied once however often the push was retried
// (featurestore.Store.EnqueueFencedBatch). A source's partitions
// are read by one franz-go client of its own (kgo, direct partition
// consumption, no consumer group) and applied by one goroutine per
// partition, from the offsets the store committed with the state
// (featurestore.Store.Offsets): the store, not Kafka, is the record of what
// was applied, which is what makes ingestion exactly-once.
//
// A stored offset the partition no longer holds is handled before the
// partition is read (and, while it is, whenever a fetch reports an
// out-of-range offset or the partition has been idle for
// KafkaOptions.OffsetCheck):
//
//  1. Stored offset below the partition's first offset: retention or
//     compaction removed events this source never applied. They are gone;
//     the gap is counted in PartitionStatus.Skipped, logged as a warning,
//     and reading resumes at the first offset.
//  2. Stored offset above the partition's end offset (high watermark): the
//     topic was deleted and recreated, or truncated. A client left to
//     itself would reset silently or retry forever, then resume at the
//     stored offset once the new topic grew past it, skipping the new
//     topic's first events. Instead the
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
//
// A store commit that fails (the offline log's write or fsync, Pebble, a
// full disk) drops events a partition's consumer had already handed over
// with featurestore.Store.EnqueueFenced. The store moves the partition's
// fence; the consumer sees it (ErrFenced from the next batch, or the
// fence's Moved while it waits for messages), waits with its backoff,
// takes a new fence, reads the stored offset again and reads the partition
// from there. Shards that did commit skip what they already hold, so
// nothing is applied twice. Rewinds are counted in PartitionStatus.Rewinds
// and logged as errors; dead letters of a replayed batch are written again.
type Kafka struct {
	store  *featurestore.Store
	reg    *registry.Registry
	opts   KafkaOptions
	router router
	stats  stats
	// cl is the client for everything but consuming: metadata, offsets,
	// topic creation and group commits (through adm) and the dead letters
	// it produces. Run makes it and closes it.
	cl  *kgo.Client
	adm *kadm.Client

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
		router: router{reg: reg, partitions: store.Partitions()},
	}
	k.mu.consumers = make(map[string]*topicConsumer)
	return k, nil
}

// Run reconciles consumers with the registry until ctx ends, then stops
// them and flushes what they handed to the store. It is called once.
func (k *Kafka) Run(ctx context.Context) error {
	cl, err := newClient(&k.opts,
		// Dead letters: acks from every in-sync replica, keys placed as the
		// Java client places them (murmur2), idempotent (kgo's default).
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
		kgo.ProducerLinger(time.Millisecond),
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	k.cl, k.adm = cl, kadm.NewClient(cl)
	var wg sync.WaitGroup
	wg.Go(func() { k.publishStoreDeadLetters(ctx) })
	if k.opts.GroupPrefix != "" {
		wg.Go(func() { k.commitGroups(ctx) })
	}
	for {
		changed := k.reg.Changed()
		k.reconcile(ctx)
		select {
		case <-ctx.Done():
			k.stopAll()
			wg.Wait()
			flushCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			return k.store.Flush(flushCtx)
		case <-changed:
		}
	}
}

func (k *Kafka) reconcile(ctx context.Context) {
	snap := k.reg.Snapshot()
	want := map[string]*registry.Source{}
	for _, src := range snap.Sources() {
		if src.Kind == "kafka" || (src.Kind == "push" && k.opts.Cluster != nil) {
			want[src.Name] = src
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for name, c := range k.mu.consumers {
		if src, ok := want[name]; !ok || k.topicOf(src) != c.topic {
			c.stop()
			delete(k.mu.consumers, name)
		}
	}
	for name, src := range want {
		if _, ok := k.mu.consumers[name]; !ok {
			c := k.newTopicConsumer(src, k.topicOf(src))
			k.mu.consumers[name] = c
			c.start(ctx)
		}
	}
}

// topicOf is the topic src is read from: a Kafka source's own, a push
// source's push topic in cluster mode.
func (k *Kafka) topicOf(src *registry.Source) string {
	if src.Kind == "push" && k.opts.Cluster != nil {
		return PushTopic(k.opts.Cluster.Group, src.Name)
	}
	return src.Topic
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
	// end as last seen; Lag their difference. Reading says the partition
	// has been positioned (its start offset found in the store and checked
	// against the broker): before that, NextOffset, HighWatermark and Lag
	// are zeros, not a partition caught up.
	NextOffset    int64  `json:"next_offset"`
	HighWatermark int64  `json:"high_watermark"`
	Lag           int64  `json:"lag"`
	Reading       bool   `json:"reading"`
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
	OffsetResets int64 `json:"offset_resets"`
	OffsetEpoch  int32 `json:"offset_epoch"`
	// Rewinds counts, since the process started, the times a failed store
	// commit dropped events of the partition and reading started again at
	// the offset the store committed (see Kafka). Applied and Rejected
	// count the replayed events again.
	Rewinds   int64  `json:"rewinds"`
	LastError string `json:"last_error,omitempty"`
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
