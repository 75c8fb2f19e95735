package kafkatest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
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
		msgs := make([]*kgo.Record, benchMessages)
		for i := range msgs {
			msgs[i] = &kgo.Record{Value: value}
		}
		began := time.Now()
		// Round-robin gives each partition exactly a quarter.
		if benchTopic.err = produce(brokers, name, msgs, kgo.RoundRobinPartitioner()); benchTopic.err != nil {
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

// BenchmarkConsume measures raw consumption from the real broker: one franz-go
// client consuming the 4 partitions directly (no group, exact start offsets),
// each message's value checked for length and nothing else done with it. One op
// is one message; msgs/s is the ceiling for ingest. Run it with e.g.
//
//	go test ./internal/kafkatest -run '^$' -bench Consume -benchtime 1000000x
//
// Sub-benchmarks compare franz-go's defaults (FetchMaxBytes 50 MB,
// FetchMaxPartitionBytes 1 MB, FetchMaxWait 5 s) with larger partition
// fetches; docs/kafka.md has the numbers. cpu-ns/msg and broker-cpu-ns/msg are
// the client's and the broker's CPU per message, which hold when other work
// shares the cores.
func BenchmarkConsume(b *testing.B) {
	consumeFixture(b)
	configs := []struct {
		name string
		opts []kgo.Opt
	}{
		{name: "defaults"},
		{name: "max4MB", opts: []kgo.Opt{kgo.FetchMaxBytes(4 << 20), kgo.FetchMaxPartitionBytes(4 << 20), kgo.FetchMaxWait(250 * time.Millisecond)}},
		{name: "max16MB", opts: []kgo.Opt{kgo.FetchMaxBytes(16 << 20), kgo.FetchMaxPartitionBytes(16 << 20), kgo.FetchMaxWait(250 * time.Millisecond)}},
		{name: "max64MB", opts: []kgo.Opt{kgo.FetchMaxBytes(64 << 20), kgo.FetchMaxPartitionBytes(64 << 20), kgo.FetchMaxWait(250 * time.Millisecond)}},
	}
	for _, c := range configs {
		b.Run(c.name, func(b *testing.B) { benchConsume(b, c.opts) })
	}
}

func benchConsume(b *testing.B, opts []kgo.Opt) {
	b.ReportAllocs()
	b.SetBytes(benchValueBytes)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	// open consumes every partition from its first offset; a pass over the
	// fixture reads benchMessages, and b.N beyond that starts another pass.
	open := func() *kgo.Client {
		start := map[int32]kgo.Offset{}
		for p := range benchPartitions {
			start[int32(p)] = kgo.NewOffset().At(benchTopic.first[p])
		}
		cl, err := kgo.NewClient(append([]kgo.Opt{
			kgo.SeedBrokers(benchTopic.brokers...),
			kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{benchTopic.name: start}),
		}, opts...)...)
		if err != nil {
			b.Fatal(err)
		}
		return cl
	}
	broker := brokerPID()
	cpuBefore, brokerBefore := processCPU(b), procCPU(broker)
	b.ResetTimer()
	cl := open()
	read, pass := 0, 0
	var err error
	for read < b.N && err == nil {
		fs := cl.PollFetches(ctx)
		if err = fs.Err0(); err != nil {
			break
		}
		fs.EachRecord(func(m *kgo.Record) {
			if len(m.Value) != benchValueBytes && err == nil {
				err = fmt.Errorf("partition %d offset %d: %d-byte value, want %d", m.Partition, m.Offset, len(m.Value), benchValueBytes)
			}
			read++
			pass++
		})
		if pass >= benchMessages && read < b.N {
			cl.Close()
			cl, pass = open(), 0
		}
	}
	cl.Close()
	b.StopTimer()
	cpu, brokerCPU := processCPU(b)-cpuBefore, procCPU(broker)-brokerBefore
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	// The client's own CPU per message (user+sys of this process) holds steady
	// when other work shares the cores and wall-clock msgs/s does not.
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/msg")
	if broker != 0 {
		b.ReportMetric(float64(brokerCPU.Nanoseconds())/float64(b.N), "broker-cpu-ns/msg")
	}
}

// brokerPID returns the pid of the broker scripts/kafka.sh runs from KAFKA_DIR
// (default .cache/kafka/run), or 0 if there is none or it is not the one the
// tests use; the broker's CPU is then not reported.
func brokerPID() int {
	root, err := RepoRoot()
	if err != nil {
		return 0
	}
	dir := os.Getenv("KAFKA_DIR")
	if dir == "" {
		dir = filepath.Join(root, ".cache", "kafka", "run")
	}
	port := os.Getenv("KAFKA_PORT")
	if port == "" {
		port = "19092"
	}
	if len(benchTopic.brokers) != 1 || benchTopic.brokers[0] != "127.0.0.1:"+port {
		return 0
	}
	b, err := os.ReadFile(filepath.Join(dir, "kafka.pid"))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !bytes.Contains(cmdline, []byte("kafka.Kafka")) {
		return 0
	}
	return pid
}

// procCPU returns the user+system CPU time of process pid from /proc (Linux,
// 100 clock ticks per second), or 0 for pid 0 or on any error.
func procCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the parenthesised command name; utime and stime are the
	// 14th and 15th fields of the whole line.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// processCPU returns the user+system CPU time this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
