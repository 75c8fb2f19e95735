package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/featured-dev/featured/internal/kafkatest"
	"github.com/featured-dev/featured/offline/eventlog"
	"github.com/featured-dev/featured/offline/export"
)

var crashLong = flag.Bool("crash.long", false, "run the long kill -9 test (more events, more kills)")

// TestCrashKafkaExactlyOnce produces a known stream to a 4-partition topic
// while featured is killed with SIGKILL at random moments and restarted on
// the same data dir; once it has caught up, every feature of every entity
// must equal the brute-force reference: nothing lost, nothing counted twice.
func TestCrashKafkaExactlyOnce(t *testing.T) {
	entities, events, kills := 30, 80, 4
	if *crashLong {
		entities, events, kills = 200, 400, 15
	}
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.CreateTopic(t, brokers, "crash", 4)
	t.Cleanup(func() { kafkatest.DeleteTopic(t, brokers, topic+".dlq") })
	dir := t.TempDir()
	defs := defsWith("kafka", topic)
	defsFile := filepath.Join(dir, "defs.yaml")
	if err := os.WriteFile(defsFile, []byte(defs), 0o644); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	streams := streamsFor(entities, 42, events, time.Now())
	var msgs []*kgo.Record
	for i := 0; i < events; i++ {
		for u, evs := range streams {
			b, _ := json.Marshal(eventObject(u, evs[i]))
			msgs = append(msgs, &kgo.Record{Key: []byte(u), Value: b})
		}
	}

	// Produce in chunks over the whole run, so kills land mid-ingestion.
	var wg sync.WaitGroup
	wg.Go(func() {
		const chunks = 40
		per := (len(msgs) + chunks - 1) / chunks
		for i := 0; i < len(msgs); i += per {
			kafkatest.Produce(t, brokers, topic, msgs[i:min(i+per, len(msgs))])
			time.Sleep(25 * time.Millisecond)
		}
	})
	args := []string{"--kafka-brokers", strings.Join(brokers, ","), "--apply", defsFile, "--commit-interval", "2ms", "--partitions", "4"}
	rng := rand.New(rand.NewPCG(7, uint64(time.Now().UnixNano())))
	for k := 0; k < kills; k++ {
		s := startServer(t, data, args...)
		// The random pause is the test's kill point, not a wait for a
		// condition.
		time.Sleep(time.Duration(50+rng.IntN(700)) * time.Millisecond)
		s.kill()
	}
	wg.Wait()

	s := startServer(t, data, args...)
	deadline := time.Now().Add(90 * time.Second)
	for {
		next, lag := s.kafkaProgress(t)
		if next == int64(len(msgs)) && lag == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("caught up to %d of %d offsets (lag %d) after 90s:\n%s", next, len(msgs), lag, s.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Offsets are recorded when batches are handed to the shards; the
	// lookup reads what is committed, so flush by a clean restart.
	s.stop(t)
	s = startServer(t, data, args...)
	view := compiledView(t, defs, "spend")
	s.checkAgainstReference(t, view, streams)

	// The offline log after the kills: an export of (user, lookup instant)
	// gives the online answers bit for bit, and it holds every offset of
	// the topic exactly once.
	online := s.answers(t, view, streams)
	spine := writeCSVSpine(t, dir, online)
	train := filepath.Join(dir, "train.parquet")
	if out, err := s.cli(t, "export", "--spine", spine, "--features", strings.Join(viewRefs(view), ","), "--out", train, "--statuses"); err != nil {
		t.Fatalf("export: %v\n%s", err, out)
	}
	checkExport(t, train, view, online)
	s.stop(t)
	auditOffsets(t, data, "tx", 4, int64(len(msgs)))
}

// auditOffsets opens a stopped server's data dir and checks that the
// offline log holds every offset of the source's partitions exactly once,
// total in all.
func auditOffsets(t *testing.T, data, source string, partitions int, total int64) {
	t.Helper()
	err := withLocalExporter(data, func(x *export.Exporter) error {
		seen := map[[2]int64]int{}
		lsns := map[[2]int64]bool{}
		err := x.Log().Events(context.Background(), source, func(e eventlog.Event) error {
			if lsns[[2]int64{int64(e.Shard), e.LSN}] {
				return nil // a re-converted segment: the same row twice
			}
			lsns[[2]int64{int64(e.Shard), e.LSN}] = true
			if !e.HasOffset {
				return fmt.Errorf("event without a Kafka offset: %+v", e)
			}
			seen[[2]int64{int64(e.Partition), e.Offset}]++
			return nil
		})
		if err != nil {
			return err
		}
		var n int64
		next := make([]int64, partitions)
		for p := range next {
			for seen[[2]int64{int64(p), next[p]}] > 0 {
				next[p]++
			}
		}
		for k, c := range seen {
			if c != 1 {
				t.Errorf("partition %d offset %d logged %d times", k[0], k[1], c)
			}
			n += int64(c)
		}
		var contiguous int64
		for _, v := range next {
			contiguous += v
		}
		if n != total || contiguous != total {
			t.Errorf("the log holds %d events (%d contiguous from offset 0), want %d", n, contiguous, total)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// kafkaProgress sums the next offsets and lags of every partition in
// /v1/status.
func (s *server) kafkaProgress(t *testing.T) (next, lag int64) {
	t.Helper()
	resp, err := http.Get(s.url + "/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct {
		Consumers []struct {
			Partitions []struct {
				NextOffset int64 `json:"next_offset"`
				Lag        int64 `json:"lag"`
			} `json:"partitions"`
		} `json:"consumers"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	for _, c := range st.Consumers {
		for _, p := range c.Partitions {
			next += max(p.NextOffset, 0)
			lag += p.Lag
		}
	}
	return next, lag
}

// TestCrashPushLog kills featured with SIGKILL while clients push (each push
// is fsynced before it is acknowledged), restarts it on the same data dir,
// and checks that the offline log and the online state still agree: an
// export of (user, lookup instant) equals the lookups bit for bit, and the
// log holds every acknowledged event (at most the sent ones).
func TestCrashPushLog(t *testing.T) {
	dir := t.TempDir()
	defs := defsWith("push", "")
	defsFile := filepath.Join(dir, "defs.yaml")
	if err := os.WriteFile(defsFile, []byte(defs), 0o644); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	streams := streamsFor(10, 77, 120, time.Now())
	var users []string
	for u := range streams {
		users = append(users, u)
	}
	acked, sent := 0, 0
	next := 0
	rng := rand.New(rand.NewPCG(9, uint64(time.Now().UnixNano())))
	for k := 0; k < 3 && next < 120; k++ {
		s := startServer(t, data, "--apply", defsFile)
		done := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			for next < 120 {
				select {
				case <-done:
					return
				default:
				}
				var batch []map[string]any
				for _, u := range users {
					batch = append(batch, eventObject(u, streams[u][next]))
				}
				sent += len(batch)
				b, _ := json.Marshal(map[string]any{"source": "tx", "events": batch})
				resp, err := http.Post(s.url+"/v1/push", "application/json", strings.NewReader(string(b)))
				if err != nil {
					return // killed mid-push: not acknowledged
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					return
				}
				acked += len(batch)
				next++
			}
		})
		// The random pause is the kill point.
		time.Sleep(time.Duration(100+rng.IntN(300)) * time.Millisecond)
		s.kill()
		close(done)
		wg.Wait()
	}
	s := startServer(t, data)
	view := compiledView(t, defs, "spend")
	online := s.answers(t, view, streams)
	spine := writeCSVSpine(t, dir, online)
	train := filepath.Join(dir, "train.parquet")
	if out, err := s.cli(t, "export", "--spine", spine, "--features", strings.Join(viewRefs(view), ","), "--out", train, "--statuses"); err != nil {
		t.Fatalf("export: %v\n%s", err, out)
	}
	checkExport(t, train, view, online)
	s.stop(t)
	logged := 0
	if err := withLocalExporter(data, func(x *export.Exporter) error {
		lsns := map[[2]int64]bool{}
		return x.Log().Events(context.Background(), "tx", func(e eventlog.Event) error {
			if !lsns[[2]int64{int64(e.Shard), e.LSN}] {
				lsns[[2]int64{int64(e.Shard), e.LSN}] = true
				logged++
			}
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	if logged < acked || logged > sent {
		t.Fatalf("the log holds %d events; %d were acknowledged, %d sent", logged, acked, sent)
	}
	t.Logf("%d events logged, %d acknowledged, %d sent", logged, acked, sent)
}
