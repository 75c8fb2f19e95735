package kafkatest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

const (
	benchMessages   = 1_000_000
	benchValueBytes = 200
	benchPartitions = 4
)

// benchTopic is BenchmarkConsume's fixture: 1M messages of 200 bytes spread
// evenly over 4 partitions, produced once per test binary and deleted by
// TestMain (a b.Cleanup would delete it after each b.N round).
var benchTopic struct {
	once    sync.Once
	brokers []string
	name    string
	err     error
	first   [benchPartitions]int64
	end     [benchPartitions]int64
}

func consumeFixture(b *testing.B) {
	brokers := Brokers(b)
	benchTopic.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), produceTimeout)
		defer cancel()
		name := uniqueName("bench-consume")
		if benchTopic.err = createTopic(ctx, brokers, name, benchPartitions); benchTopic.err != nil {
			return
		}
		benchTopic.brokers, benchTopic.name = brokers, name
		value := bytes.Repeat([]byte{'v'}, benchValueBytes)
		msgs := make([]kafka.Message, benchMessages)
		for i := range msgs {
			msgs[i].Value = value
		}
		began := time.Now()
		// Round-robin gives each partition exactly a quarter.
		if benchTopic.err = produce(brokers, name, msgs, &kafka.RoundRobin{}); benchTopic.err != nil {
			return
		}
		b.Logf("fixture: produced %d messages of %d B to %s in %v", benchMessages, benchValueBytes, name, time.Since(began).Round(time.Millisecond))
		for p := range benchPartitions {
			benchTopic.first[p], benchTopic.end[p], benchTopic.err = partitionOffsets(ctx, brokers, name, p)
			if benchTopic.err != nil {
				return
			}
		}
	})
	if benchTopic.err != nil {
		b.Fatalf("BenchmarkConsume fixture: %v", benchTopic.err)
	}
}

func deleteBenchTopic() error {
	if benchTopic.name == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	return deleteTopic(ctx, benchTopic.brokers, benchTopic.name)
}

// BenchmarkConsume measures raw consumption from the real broker: one
// partition-bound kafka.Reader per partition (no group, SetOffset), reading in
// parallel, each message's value checked for length and nothing else done with
// it. One op is one message; msgs/s is the ceiling for ingest. Run it with e.g.
//
//	go test ./internal/kafkatest -run '^$' -bench Consume -benchtime 1000000x
//
// Sub-benchmarks compare kafka-go's defaults with tuned reader settings.
func BenchmarkConsume(b *testing.B) {
	consumeFixture(b)
	configs := []struct {
		name string
		cfg  kafka.ReaderConfig
	}{
		// kafka-go's defaults: MinBytes 1, MaxBytes 1 MB, MaxWait 10 s, QueueCapacity 100.
		{name: "defaults", cfg: kafka.ReaderConfig{}},
		{name: "max4MB", cfg: kafka.ReaderConfig{MinBytes: 1, MaxBytes: 4 << 20, MaxWait: 250 * time.Millisecond}},
		{name: "max16MB", cfg: kafka.ReaderConfig{MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 250 * time.Millisecond}},
		{name: "max16MB-queue1000", cfg: kafka.ReaderConfig{MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 250 * time.Millisecond, QueueCapacity: 1000}},
	}
	for _, c := range configs {
		b.Run(c.name, func(b *testing.B) { benchConsume(b, c.cfg) })
	}
}

func benchConsume(b *testing.B, cfg kafka.ReaderConfig) {
	b.ReportAllocs()
	b.SetBytes(benchValueBytes)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	readers := make([]*kafka.Reader, benchPartitions)
	for p := range readers {
		c := cfg
		c.Brokers, c.Topic, c.Partition = benchTopic.brokers, benchTopic.name, p
		readers[p] = kafka.NewReader(c)
		defer readers[p].Close()
		if err := readers[p].SetOffset(benchTopic.first[p]); err != nil {
			b.Fatal(err)
		}
	}
	errs := make([]error, benchPartitions)
	b.ResetTimer()
	var wg sync.WaitGroup
	for p, r := range readers {
		// Each reader reads its quarter of b.N, wrapping to the first offset
		// when b.N exceeds what the partition holds.
		share := b.N / benchPartitions
		if p < b.N%benchPartitions {
			share++
		}
		wg.Go(func() {
			for range share {
				m, err := r.ReadMessage(ctx)
				if err != nil {
					errs[p] = fmt.Errorf("partition %d at offset %d: %w", p, r.Offset(), err)
					return
				}
				if len(m.Value) != benchValueBytes {
					errs[p] = fmt.Errorf("partition %d offset %d: %d-byte value, want %d", p, m.Offset, len(m.Value), benchValueBytes)
					return
				}
				if m.Offset+1 >= benchTopic.end[p] {
					if err := r.SetOffset(benchTopic.first[p]); err != nil {
						errs[p] = err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	if err := errors.Join(errs...); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
