package ingest

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/featured-dev/featured/featurestore"
	"github.com/featured-dev/featured/internal/kafkatest"
	"github.com/featured-dev/featured/registry"
)

const benchDefs = `
entities: [{name: user, join_key: user_id, type: string}]
sources:
  - {name: tx, kind: kafka, topic: TOPIC, entity_key: user_id, event_time: ts,
     fields: {amount: float64, merchant: string}}
feature_views:
  - name: spend
    entity: user
    source: tx
    ttl: 8d
    features:
      - {name: spend_1h, aggregation: sum, field: amount, window: 1h}
      - {name: spend_24h, aggregation: sum, field: amount, window: 24h}
      - {name: spend_7d, aggregation: sum, field: amount, window: 7d}
`

// BenchmarkKafkaIngest measures end-to-end ingest from the real broker:
// FEATURED_BENCH_EVENTS (default 1,000,000) JSON events of 10,000 users,
// already in a 4-partition topic, read, decoded, folded into a view with
// three windows and committed to a 2-shard store, broker on the same machine.
// Run it once: go test -run '^$' -bench KafkaIngest -benchtime 1x ./ingest/
func BenchmarkKafkaIngest(b *testing.B) {
	n := 1_000_000
	if s := os.Getenv("FEATURED_BENCH_EVENTS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
	brokers := kafkatest.Brokers(b)
	topic := kafkatest.CreateTopic(b, brokers, "bench", 4)
	b.Cleanup(func() { kafkatest.DeleteTopic(b, brokers, topic+".dlq") })
	now := time.Now()
	msgs := make([]*kgo.Record, 0, 50_000)
	for i := 0; i < n; i++ {
		user := "user-" + strconv.Itoa(i%10_000)
		ts := now.Add(-7*24*time.Hour + time.Duration(i)*(7*24*time.Hour)/time.Duration(n)).UnixMilli()
		msgs = append(msgs, &kgo.Record{Key: []byte(user),
			Value: fmt.Appendf(nil, `{"user_id":%q,"ts":%d,"amount":%d.25,"merchant":"m%d"}`, user, ts, i%500, i%37)})
		if len(msgs) == cap(msgs) || i == n-1 {
			kafkatest.Produce(b, brokers, topic, msgs)
			msgs = msgs[:0]
		}
	}

	for b.Loop() {
		dir := b.TempDir()
		reg, err := registry.Open(dir + "/registry.json")
		if err != nil {
			b.Fatal(err)
		}
		d, err := registry.ParseYAML([]byte(strings.ReplaceAll(benchDefs, "TOPIC", topic)))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := reg.Apply(d); err != nil {
			b.Fatal(err)
		}
		store, err := featurestore.Open(dir+"/store", featurestore.Options{Partitions: 4, GCInterval: -1})
		if err != nil {
			b.Fatal(err)
		}
		k, err := NewKafka(reg, store, KafkaOptions{Brokers: brokers})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cpuBefore := processCPU(b)
		start := time.Now()
		done := make(chan error, 1)
		go func() { done <- k.Run(ctx) }()
		for {
			applied, rejected := counted(k, "tx")
			if rejected > 0 {
				b.Fatalf("%d events rejected", rejected)
			}
			if applied == uint64(n) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		if err := store.Flush(context.Background()); err != nil {
			b.Fatal(err)
		}
		elapsed := time.Since(start)
		cpu := processCPU(b) - cpuBefore
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		store.Close()
		reg.Close()
		b.ReportMetric(float64(n)/elapsed.Seconds(), "events/s")
		// This process's CPU (client, decoding, store; not the broker) per
		// event holds when other work shares the cores and events/s does
		// not.
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(n), "cpu-ns/event")
	}
}

// processCPU returns the user+system CPU time this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
