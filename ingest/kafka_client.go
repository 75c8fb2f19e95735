package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// newClient returns a franz-go client of the brokers, logging through
// Options.Logger, with extra options (producer or consumer settings) added.
func newClient(opts *KafkaOptions, extra ...kgo.Opt) (*kgo.Client, error) {
	kopts := append([]kgo.Opt{
		kgo.SeedBrokers(opts.Brokers...),
		kgo.WithLogger(kgoLogger{opts.Logger}),
		kgo.RetryBackoffFn(func(tries int) time.Duration {
			return min(opts.RetryMin<<min(tries, 16), opts.RetryMax)
		}),
	}, extra...)
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return nil, fmt.Errorf("kafka client of %v: %w", opts.Brokers, err)
	}
	return cl, nil
}

// newConsumerClient returns the client that reads a source's partitions:
// direct consumption (no group), with partitions added at exact offsets by
// the source's poll loop. An out-of-range offset is not reset by the
// client: it is returned, and the partition's consumer decides (Kafka).
// With readCommitted (push topics) records of open or aborted transactions
// are not returned.
func newConsumerClient(opts *KafkaOptions, readCommitted bool) (*kgo.Client, error) {
	extra := []kgo.Opt{kgo.FetchIsolationLevel(kgo.ReadUncommitted())}
	if readCommitted {
		// A transaction's commit or abort marker takes an offset. Kept, it
		// moves the partition's next offset past itself (apply skips it);
		// dropped, a partition whose last record is a marker would stay one
		// behind its end offset for good, and never count as caught up.
		extra = []kgo.Opt{kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords()}
	}
	return newClient(opts, append(extra,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{}),
		kgo.ConsumeResetOffset(kgo.NoResetOffset()),
		kgo.FetchMinBytes(1),
		kgo.FetchMaxBytes(int32(opts.MaxBytes)),
		kgo.FetchMaxPartitionBytes(int32(opts.MaxBytes)),
		kgo.FetchMaxWait(opts.MaxWait),
	)...)
}

// kgoLogger writes franz-go's warnings and errors to a slog.Logger; its
// info and debug lines (every metadata refresh, every assignment) are not
// worth their volume.
type kgoLogger struct{ log *slog.Logger }

func (l kgoLogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (l kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	lvl := slog.LevelWarn
	if level == kgo.LogLevelError {
		lvl = slog.LevelError
	}
	l.log.Log(context.Background(), lvl, "kafka client: "+msg, keyvals...)
}
