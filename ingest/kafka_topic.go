package ingest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/featured-dev/featured/registry"
)

// topicConsumer reads one source's topic: one franz-go client, whose
// fetches one poll goroutine hands out, and one goroutine per partition
// that batches and applies them.
//
// A partition goroutine positions its partition with seek; the poll
// goroutine carries the seeks out between polls (kgo's
// RemoveConsumePartitions and AddConsumePartitions at the exact offset,
// which drop what the client had buffered) and tags every fetch it hands
// out with the generation of the partition's last seek, so a partition
// goroutine drops fetches from before its latest seek. A partition
// goroutine that does not take its fetches for a while (its batch waits
// for the disk or for the dead-letter topic; it pauses its fetching
// meanwhile) holds the poll goroutine up once its channel is full, and
// with it the source's other partitions: they share that store and broker.
type topicConsumer struct {
	k      *Kafka
	source string
	topic  string
	// offsetTopic names the source's offsets in the store: two sources may
	// read one topic, and each needs its own record of what it applied.
	offsetTopic string
	dlqTopic    string
	// latest: a partition the store has no offsets of starts at its end
	// (start_offset latest), not at its first offset.
	latest bool
	// push: the topic is a push source's push topic (cluster mode): read
	// read_committed, created when missing, its batch IDs deduplicated.
	push bool

	cancel context.CancelFunc
	wg     sync.WaitGroup

	// cl consumes the topic's partitions; run sets it before any
	// partition or poll goroutine starts and closes it after they end.
	cl *kgo.Client
	// gens numbers seeks, unique over the consumer's life, so that a
	// partition removed and added again never takes an old fetch.
	gens atomic.Uint64

	mu struct {
		sync.Mutex
		err   string
		ready bool
		parts map[int]*partitionConsumer
		// seeks are the partitions' positionings the poll goroutine has
		// yet to carry out; purge asks it to forget the topic's metadata
		// (the topic was recreated: kgo keeps the old topic's ID).
		seeks map[int32]seek
		purge bool
		// pollCancel ends the current poll, so seeks are carried out
		// without waiting for data.
		pollCancel context.CancelFunc
	}
}

// seek positions one partition: read from offset, fetches tagged gen; or,
// with stop, no longer read.
type seek struct {
	offset int64
	gen    uint64
	stop   bool
}

// fetched is what the poll goroutine hands a partition goroutine: records
// in offset order, or a fetch error.
type fetched struct {
	gen  uint64
	recs []*kgo.Record
	high int64
	err  error
}

func (k *Kafka) newTopicConsumer(src *registry.Source, topic string) *topicConsumer {
	c := &topicConsumer{
		k:           k,
		source:      src.Name,
		topic:       topic,
		offsetTopic: src.Name + "/" + topic,
		dlqTopic:    src.DeadLetterTopic,
		latest:      src.StartOffset == "latest",
		push:        src.Kind == "push",
	}
	if c.dlqTopic == "" {
		c.dlqTopic = topic + ".dlq"
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
// dead-letter topic exists, and starts a goroutine per partition in
// KafkaOptions.Partitions; it keeps looking for new partitions and follows
// the set's changes.
func (c *topicConsumer) run(ctx context.Context) {
	log := c.k.opts.Logger.With("source", c.source, "topic", c.topic)
	cl, err := newConsumerClient(&c.k.opts, c.push)
	if err != nil {
		c.setErr(err)
		log.Error("kafka source cannot start", "err", err)
		return
	}
	c.cl = cl
	defer cl.Close()
	// Partition goroutines and the poll goroutine end before the client
	// closes (defers run last in, first out).
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { c.poll(ctx) })

	backoff := newBackoff(c.k.opts.RetryMin, c.k.opts.RetryMax)
	dlqReady := false
	for {
		changed := c.k.opts.Partitions.Changed()
		var err error
		if c.push && !dlqReady {
			err = ensurePushTopic(ctx, c.k.adm, c.topic, c.k.opts.Cluster.Partitions)
		}
		n := 0
		if err == nil {
			n, err = c.partitions(ctx)
		}
		if err == nil && c.push && n != c.k.opts.Cluster.Partitions {
			err = fmt.Errorf("%w: %q has %d partitions, the cluster %d", ErrPushTopic, c.topic, n, c.k.opts.Cluster.Partitions)
		}
		if err == nil {
			err = checkTopicPartitions(c.topic, n, c.k.store.Partitions())
		}
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
		c.assign(ctx, &wg, n)
		select {
		case <-ctx.Done():
			return
		case <-time.After(c.k.opts.PartitionCheck):
		case <-changed:
		}
	}
}

// assign starts a goroutine for each of the topic's n partitions that is
// in the partition set and has none, and stops those no longer in it, each
// once it has handed its current batch to the store. A stopped partition
// leaves Status once its goroutine has ended.
func (c *topicConsumer) assign(ctx context.Context, wg *sync.WaitGroup, n int) {
	set := c.k.opts.Partitions
	var stopped []*partitionConsumer
	c.mu.Lock()
	for p := range n {
		if _, ok := c.mu.parts[p]; !ok && set.Contains(int32(p)) {
			pc := newPartitionConsumer(c, p)
			c.mu.parts[p] = pc
			wg.Go(func() { pc.run(ctx) })
		}
	}
	for p, pc := range c.mu.parts {
		if !set.Contains(int32(p)) {
			stopped = append(stopped, pc)
		}
	}
	c.mu.err = ""
	c.mu.ready = true
	c.mu.Unlock()
	for _, pc := range stopped {
		close(pc.stopc)
	}
	for _, pc := range stopped {
		select {
		case <-pc.done:
		case <-ctx.Done():
			return
		}
		c.mu.Lock()
		delete(c.mu.parts, pc.partition)
		c.mu.Unlock()
		c.seek(int32(pc.partition), seek{stop: true})
		c.k.opts.Logger.Info("kafka partition no longer read", "source", c.source, "topic", c.topic,
			"partition", pc.partition, "next", pc.next.Load())
	}
}

// seek asks the poll goroutine to position a partition and wakes it.
func (c *topicConsumer) seek(partition int32, s seek) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.seeks == nil {
		c.mu.seeks = make(map[int32]seek)
	}
	c.mu.seeks[partition] = s
	if c.mu.pollCancel != nil {
		c.mu.pollCancel()
	}
}

// purge asks the poll goroutine to forget the topic's metadata and add its
// partitions again where they are.
func (c *topicConsumer) purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.purge = true
	if c.mu.pollCancel != nil {
		c.mu.pollCancel()
	}
}

// poll fetches the consumed partitions' records and hands them to their
// partition goroutines until ctx ends. It alone polls the client and
// changes what it consumes.
func (c *topicConsumer) poll(ctx context.Context) {
	gens := map[int32]uint64{} // the generation of each consumed partition
	pos := map[int32]int64{}   // the offset after the last record handed out
	for ctx.Err() == nil {
		pctx, cancel := context.WithCancel(ctx)
		c.mu.Lock()
		seeks, purge := c.mu.seeks, c.mu.purge
		c.mu.seeks, c.mu.purge = nil, false
		c.mu.pollCancel = cancel
		c.mu.Unlock()
		c.applySeeks(seeks, purge, gens, pos)
		fs := c.cl.PollFetches(pctx)
		c.mu.Lock()
		c.mu.pollCancel = nil
		c.mu.Unlock()
		cancel()
		if ctx.Err() != nil || fs.IsClientClosed() {
			return
		}
		fs.EachError(func(_ string, p int32, err error) {
			g, ok := gens[p]
			if !ok || errors.Is(err, context.Canceled) {
				return // a poll ended by a seek, or a partition no longer read
			}
			if errors.Is(err, kerr.UnknownTopicID) {
				// The topic was recreated under the client, which keeps
				// fetching by the old topic's ID until it is purged.
				c.purge()
			}
			c.deliver(ctx, p, fetched{gen: g, err: err})
		})
		fs.EachPartition(func(ftp kgo.FetchTopicPartition) {
			g, ok := gens[ftp.Partition]
			if !ok || len(ftp.Records) == 0 {
				return
			}
			pos[ftp.Partition] = ftp.Records[len(ftp.Records)-1].Offset + 1
			c.deliver(ctx, ftp.Partition, fetched{gen: g, recs: ftp.Records, high: ftp.HighWatermark})
		})
	}
}

// applySeeks carries out seeks, after purging the topic from the client
// when asked to (the partitions not sought are added again where they
// were).
func (c *topicConsumer) applySeeks(seeks map[int32]seek, purge bool, gens map[int32]uint64, pos map[int32]int64) {
	add := map[int32]kgo.Offset{}
	var remove []int32
	if purge {
		c.cl.PurgeTopicsFromClient(c.topic)
		for p := range gens {
			if _, ok := seeks[p]; !ok {
				add[p] = kgo.NewOffset().At(pos[p])
			}
		}
	}
	for p, s := range seeks {
		if _, ok := gens[p]; ok && !purge {
			remove = append(remove, p)
		}
		if s.stop {
			delete(gens, p)
			delete(pos, p)
			continue
		}
		gens[p], pos[p] = s.gen, s.offset
		add[p] = kgo.NewOffset().At(s.offset)
	}
	if len(remove) > 0 {
		c.cl.RemoveConsumePartitions(map[string][]int32{c.topic: remove})
	}
	if len(add) > 0 {
		c.cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{c.topic: add})
	}
}

// deliver hands f to the partition's goroutine, or drops it when the
// partition is no longer read.
func (c *topicConsumer) deliver(ctx context.Context, partition int32, f fetched) {
	c.mu.Lock()
	pc := c.mu.parts[int(partition)]
	c.mu.Unlock()
	if pc == nil {
		return
	}
	select {
	case pc.in <- f:
	case <-pc.done:
	case <-ctx.Done():
	}
}

// ErrTopicMissing is reported while a Kafka source's topic does not exist.
var ErrTopicMissing = errors.New("ingest: kafka topic does not exist")

func (c *topicConsumer) partitions(ctx context.Context) (int, error) {
	md, err := c.k.adm.Metadata(ctx, c.topic)
	if err != nil {
		return 0, fmt.Errorf("read metadata from %v: %w", c.k.opts.Brokers, err)
	}
	t, ok := md.Topics[c.topic]
	if !ok {
		return 0, fmt.Errorf("%w: %q", ErrTopicMissing, c.topic)
	}
	if t.Err != nil {
		if errors.Is(t.Err, kerr.UnknownTopicOrPartition) {
			return 0, fmt.Errorf("%w: %q (create it, or fix the source's topic)", ErrTopicMissing, c.topic)
		}
		return 0, fmt.Errorf("topic %q: %w", c.topic, t.Err)
	}
	if len(t.Partitions) == 0 {
		return 0, fmt.Errorf("%w: %q has no partitions", ErrTopicMissing, c.topic)
	}
	return len(t.Partitions), nil
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
