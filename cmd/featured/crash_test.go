package main

import (
	"encoding/json"
	"flag"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/featured-dev/featured/internal/kafkatest"
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
	var msgs []kafka.Message
	for i := 0; i < events; i++ {
		for u, evs := range streams {
			b, _ := json.Marshal(eventObject(u, evs[i]))
			msgs = append(msgs, kafka.Message{Key: []byte(u), Value: b})
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
	args := []string{"--kafka-brokers", strings.Join(brokers, ","), "--apply", defsFile, "--commit-interval", "2ms"}
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
	s.checkAgainstReference(t, compiledView(t, defs, "spend"), streams)
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
