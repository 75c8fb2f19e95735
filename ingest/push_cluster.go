package ingest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/internal/partition"
)

// This file holds pushes in cluster mode (Options.Cluster): a validated
// push is produced to its source's push topic instead of being written to
// the local store, and every replica of each partition applies it as a
// Kafka consumer of that topic (Kafka consumes push sources in cluster
// mode). See docs/scaling.md "Writes and exports in a cluster".

// Push record headers, beside the dead-letter ones.
const (
	// HeaderBatchID is the push's batch ID, on every record of a push
	// that has one.
	HeaderBatchID = "featured-batch-id"
	// HeaderEventIndex is the event's index in its push (decimal). A
	// consumer applies a batch ID's records in a partition only above the
	// highest index the partition delivered before, so a client's retry
	// applies what the first produce did not deliver, and nothing twice
	// (featurestore.Store.EnqueueFencedBatch).
	HeaderEventIndex = "featured-event-index"
)

var (
	// ErrAtomicUnsupported refuses an atomic push in cluster mode on a
	// node without ClusterOptions.TransactionalID.
	ErrAtomicUnsupported = errors.New("ingest: atomic pushes need a transactional ID in cluster mode")
	// ErrPushTopic is a push topic that exists with another partition
	// count than the cluster's.
	ErrPushTopic = errors.New("ingest: push topic has the wrong partition count")
)

// ClusterOptions make pushes go through Kafka (cluster mode): see
// Options.Cluster.
type ClusterOptions struct {
	// Brokers are the bootstrap brokers a Pusher produces to, host:port;
	// Kafka reads the push topics from KafkaOptions.Brokers, the same
	// cluster.
	Brokers []string
	// Group is the cluster group's name; push source s is produced to
	// and consumed from the topic Group+".push."+s (PushTopic).
	Group string
	// Partitions is the cluster's partition count: every push topic has
	// it, created with it when absent (the broker's default replication).
	Partitions int
	// TransactionalID, unique per node (its pod name), makes an atomic
	// push one Kafka transaction over its records. Empty: atomic pushes
	// are refused (ErrAtomicUnsupported).
	TransactionalID string
	// TransactionTimeout is how long the broker lets a transaction stay
	// open before aborting it: a node that dies mid-push holds up the
	// read_committed consumers of the partitions it wrote to for at most
	// this long (or until it starts again with the same TransactionalID).
	// The default value is 10s.
	TransactionTimeout time.Duration
}

// PushTopic is the topic of push source source in cluster group group.
func PushTopic(group, source string) string { return group + ".push." + source }

func (o *ClusterOptions) ensureDefaults() {
	if o.TransactionTimeout == 0 {
		o.TransactionTimeout = 10 * time.Second
	}
}

func (o *ClusterOptions) validate() error {
	var errs []error
	if len(o.Brokers) == 0 {
		errs = append(errs, errors.New("ingest: cluster: no brokers"))
	}
	if o.Group == "" {
		errs = append(errs, errors.New("ingest: cluster: no group"))
	}
	if o.Partitions < 1 {
		errs = append(errs, fmt.Errorf("ingest: cluster: partitions: %d is less than 1", o.Partitions))
	}
	if o.TransactionTimeout < 0 {
		errs = append(errs, fmt.Errorf("ingest: cluster: transaction timeout: %s is negative", o.TransactionTimeout))
	}
	return errors.Join(errs...)
}

// EventKey appends the record key of an event whose key's first part is
// first (in the entity's kafka_key encoding enc) to dst and returns it with
// the record's partition among n, as keyenc.Partition places it.
func EventKey(dst []byte, first aggregate.Value, enc partition.KeyEncoding, n int) ([]byte, int32) {
	start := len(dst)
	if first.Kind == aggregate.KindInt64 {
		dst = partition.AppendInt64(dst, first.I, enc)
	} else {
		dst = partition.AppendString(dst, first.S)
	}
	return dst, int32(partition.Of(dst[start:], n))
}

// Position is where a pushed record landed: the offset of the push's last
// record in a partition.
type Position struct {
	Partition int32 `json:"partition"`
	Offset    int64 `json:"offset"`
}

// clusterPush produces pushes. The idempotent client takes concurrent
// pushes; the transactional one, made at the first atomic push, takes one
// transaction at a time (txMu).
type clusterPush struct {
	opts ClusterOptions
	kopt KafkaOptions // the client settings (retries, logger)
	cl   *kgo.Client
	adm  *kadm.Client

	// topics holds the push topics known to exist with the right count.
	topics sync.Map // string -> struct{}

	txMu sync.Mutex
	tx   *kgo.Client // guarded by txMu; nil until the first atomic push
	// testBeforeCommit, when set, runs after an atomic push's records are
	// acknowledged and before its commit; an error stops the push there
	// with the transaction open, as if the node died (tests only).
	testBeforeCommit func(tx *kgo.Client) error

	closeOnce sync.Once
}

func newClusterPush(opts Options) (*clusterPush, error) {
	c := &clusterPush{opts: *opts.Cluster}
	c.kopt = KafkaOptions{Options: opts, Brokers: c.opts.Brokers}
	c.kopt.EnsureDefaults()
	cl, err := newClient(&c.kopt,
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(0),
	)
	if err != nil {
		return nil, err
	}
	c.cl, c.adm = cl, kadm.NewClient(cl)
	return c, nil
}

func (c *clusterPush) close() {
	c.closeOnce.Do(func() {
		c.txMu.Lock()
		defer c.txMu.Unlock()
		if c.tx != nil {
			c.tx.Close()
		}
		c.cl.Close()
	})
}

// ensureTopic creates the push topic of source when it is missing and
// refuses one with another partition count.
func (c *clusterPush) ensureTopic(ctx context.Context, source string) (string, error) {
	topic := PushTopic(c.opts.Group, source)
	if _, ok := c.topics.Load(topic); ok {
		return topic, nil
	}
	if err := ensurePushTopic(ctx, c.adm, topic, c.opts.Partitions); err != nil {
		return "", err
	}
	c.topics.Store(topic, struct{}{})
	return topic, nil
}

// ensurePushTopic creates topic with partitions partitions when it is
// missing, and refuses it when it has another count.
func ensurePushTopic(ctx context.Context, adm *kadm.Client, topic string, partitions int) error {
	_, err := adm.CreateTopic(ctx, int32(partitions), -1, nil, topic)
	if err == nil {
		return nil
	}
	if !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("create push topic %q: %w", topic, err)
	}
	md, err := adm.Metadata(ctx, topic)
	if err != nil {
		return fmt.Errorf("read metadata of push topic %q: %w", topic, err)
	}
	t, ok := md.Topics[topic]
	if !ok || t.Err != nil {
		return fmt.Errorf("read metadata of push topic %q: %v", topic, t.Err)
	}
	if len(t.Partitions) != partitions {
		return fmt.Errorf("%w: %q has %d partitions, the cluster %d", ErrPushTopic, topic, len(t.Partitions), partitions)
	}
	return nil
}

// record makes the record of a validated event.
func (c *clusterPush) record(topic string, rt *route, rec *Record, index int, batchID []byte) *kgo.Record {
	key, p := EventKey(nil, rec.Key[0], rt.kafkaKey, c.opts.Partitions)
	r := &kgo.Record{Topic: topic, Partition: p, Key: key, Value: appendEventJSON(nil, rt.dec, rec)}
	r.Headers = make([]kgo.RecordHeader, 0, 2)
	if batchID != nil {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: HeaderBatchID, Value: batchID})
	}
	r.Headers = append(r.Headers, kgo.RecordHeader{Key: HeaderEventIndex, Value: strconv.AppendInt(nil, int64(index), 10)})
	return r
}

// newClusterBatchID names an atomic push sent without a batch ID.
func newClusterBatchID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// produce sends recs and waits until the broker acknowledged every one,
// in one transaction when atomic. It returns, per partition, the offset of
// its last record.
func (c *clusterPush) produce(ctx context.Context, recs []*kgo.Record, atomic bool) ([]Position, error) {
	if !atomic {
		return lastOffsets(c.cl.ProduceSync(ctx, recs...))
	}
	c.txMu.Lock()
	defer c.txMu.Unlock()
	if c.tx == nil {
		tx, err := newClient(&c.kopt,
			kgo.RequiredAcks(kgo.AllISRAcks()),
			kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.ProducerLinger(0),
			kgo.TransactionalID(c.opts.TransactionalID),
			kgo.TransactionTimeout(c.opts.TransactionTimeout),
		)
		if err != nil {
			return nil, err
		}
		c.tx = tx
	}
	if err := c.tx.BeginTransaction(); err != nil {
		c.dropTxLocked()
		return nil, fmt.Errorf("begin transaction: %w", err)
	}
	pos, err := lastOffsets(c.tx.ProduceSync(ctx, recs...))
	if err == nil && c.testBeforeCommit != nil {
		if err = c.testBeforeCommit(c.tx); err != nil {
			return nil, err
		}
	}
	end := kgo.TryCommit
	if err != nil {
		end = kgo.TryAbort
		c.tx.AbortBufferedRecords(context.WithoutCancel(ctx))
	}
	// Not ctx: a cancelled end leaves the transaction's outcome unknown.
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.TransactionTimeout)
	defer cancel()
	eerr := c.tx.EndTransaction(ectx, end)
	if err != nil {
		if eerr != nil {
			c.dropTxLocked()
		}
		return nil, errors.Join(err, eerr)
	}
	if eerr != nil {
		// Unconfirmed: abort, which fences whatever is still open.
		if aerr := c.tx.EndTransaction(ectx, kgo.TryAbort); aerr != nil {
			eerr = errors.Join(eerr, aerr)
			c.dropTxLocked()
		}
		return nil, fmt.Errorf("commit transaction: %w", eerr)
	}
	return pos, nil
}

// dropTxLocked closes a transactional client left in a state it may not
// recover from; the next atomic push makes a new one, whose producer ID
// initialization fences and aborts whatever the old one left open.
func (c *clusterPush) dropTxLocked() {
	c.tx.Close()
	c.tx = nil
}

// lastOffsets is the offset of the last record per partition, or the
// first produce error.
func lastOffsets(res kgo.ProduceResults) ([]Position, error) {
	last := map[int32]int64{}
	for _, r := range res {
		if r.Err != nil {
			return nil, fmt.Errorf("produce to %s/%d: %w", r.Record.Topic, r.Record.Partition, r.Err)
		}
		last[r.Record.Partition] = max(last[r.Record.Partition], r.Record.Offset)
	}
	out := make([]Position, 0, len(last))
	for p, o := range last {
		out = append(out, Position{Partition: p, Offset: o})
	}
	slices.SortFunc(out, func(a, b Position) int { return int(a.Partition) - int(b.Partition) })
	return out, nil
}

// appendEventJSON writes rec as a JSON event in the push format, its time
// as epoch milliseconds, keeping string bytes as they are (encoding/json
// would replace invalid UTF-8, which the JSON decoder refuses rather than
// changes). Decoding it against the source gives rec back
// (FuzzDecodeJSON).
func appendEventJSON(b []byte, d *decoder, rec *Record) []byte {
	b = append(b, '{')
	for i, k := range d.src.EntityKey {
		b = appendJSONString(b, k)
		b = append(b, ':')
		b = appendJSONValue(b, rec.Key[i])
		b = append(b, ',')
	}
	b = appendJSONString(b, d.src.EventTime)
	b = append(b, ':')
	b = strconv.AppendInt(b, rec.EventMillis, 10)
	for i, v := range rec.Fields {
		if v.Kind == aggregate.KindNull {
			continue
		}
		b = append(b, ',')
		b = appendJSONString(b, d.src.Fields[i].Name)
		b = append(b, ':')
		b = appendJSONValue(b, v)
	}
	return append(b, '}')
}

func appendJSONValue(b []byte, v aggregate.Value) []byte {
	switch v.Kind {
	case aggregate.KindString:
		return appendJSONString(b, v.S)
	case aggregate.KindInt64:
		return strconv.AppendInt(b, v.I, 10)
	case aggregate.KindFloat64:
		return strconv.AppendFloat(b, v.F, 'g', -1, 64)
	case aggregate.KindBool:
		return strconv.AppendBool(b, v.I != 0)
	}
	return append(b, "null"...)
}

func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
