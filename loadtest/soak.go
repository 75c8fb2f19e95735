package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The soak (issue 9, "how it is shown") runs featured as a child process
// under everything a bad day brings at once, then checks that nothing it
// acknowledged was lost or counted twice:
//
//   - pushes with a batch_id, retried with the same batch_id until
//     answered 200 (so each is applied exactly once whatever happened);
//   - a Kafka topic fed by an independent producer (acks=all);
//   - lookups throughout (errors during restarts are counted, not fatal);
//   - SIGKILL of the server every -kill-every, and a restart;
//   - with -tmpfs-mb (root only), the data dir on a small tmpfs that a
//     ballast file fills below the server's --min-free-disk every
//     -fill-every, then frees;
//   - hostile requests (oversized, over-deep, over the cell limit, huge
//     strings, bad keys) that must get a 4xx or a rejected row, never a
//     crash.
//
// At the end every entity's lifetime count and sum, per source, are read
// back and compared with what was acknowledged (pushes) and with what the
// topic holds (Kafka: read back from the broker, the ground truth even if a
// producer call failed half-way). The figures go to docs/reliability.md.

// soakOptions configures one soak.
type soakOptions struct {
	Binary    string        // the featured binary
	Dir       string        // working dir (data dir, logs, tmpfs mount)
	Brokers   []string      // Kafka bootstrap brokers
	Duration  time.Duration // how long the faults go on
	KillEvery time.Duration // SIGKILL period; 0: never
	FillEvery time.Duration // disk-fill period (with TmpfsMB); 0: never
	TmpfsMB   int           // mount a tmpfs of this size for the data dir; 0: none
	Entities  int
	PushBatch int
	Log       io.Writer
}

// SoakReport is the soak's result, written as JSON.
type SoakReport struct {
	DurationSeconds  float64 `json:"duration_seconds"`
	Kills            int     `json:"kills"`
	UnplannedExits   int     `json:"unplanned_exits"`
	DiskFills        int     `json:"disk_fills"`
	DiskFullRefusals int64   `json:"disk_full_refusals"`
	HostileTried     int64   `json:"hostile_tried"`
	HostileRefused   int64   `json:"hostile_refused"`
	HostileAccepted  int64   `json:"hostile_accepted"`
	PushBatches      int64   `json:"push_batches"`
	PushEvents       int64   `json:"push_events"`
	PushRetries      int64   `json:"push_retries"`
	PushDuplicates   int64   `json:"push_duplicates"`
	KafkaMessages    int64   `json:"kafka_messages"`
	Lookups          int64   `json:"lookups"`
	LookupErrors     int64   `json:"lookup_errors"`
	PeakRSSBytes     int64   `json:"peak_rss_bytes"`
	EventsLost       int64   `json:"events_lost"`
	EventsDoubled    int64   `json:"events_doubled"`
	SumMismatches    int64   `json:"sum_mismatches"`
}

const soakMinFree = "24MiB"

func soakDefs(topic string) string {
	return `entities:
  - {name: soak_user, join_key: user_id, type: string}
sources:
  - {name: soak_push, kind: push, entity_key: user_id, event_time: ts, fields: {v: int64}}
  - {name: soak_kafka, kind: kafka, topic: ` + topic + `, entity_key: user_id, event_time: ts, fields: {v: int64}}
feature_views:
  - name: soak_push_view
    entity: soak_user
    source: soak_push
    ttl: 30d
    features:
      - {name: n, aggregation: count}
      - {name: s, aggregation: sum, field: v}
  - name: soak_kafka_view
    entity: soak_user
    source: soak_kafka
    ttl: 30d
    features:
      - {name: n, aggregation: count}
      - {name: s, aggregation: sum, field: v}
`
}

// soakServer is the featured child process, restarted after each kill.
type soakServer struct {
	opts      soakOptions
	dataDir   string
	url       string
	grpc      string
	logPath   string
	unplanned atomic.Int64

	mu struct {
		sync.Mutex
		cmd     *exec.Cmd
		done    chan struct{}
		killing bool
		peakRSS int64
	}
}

func (s *soakServer) start(ctx context.Context) error {
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.opts.Binary, "serve", "--data-dir", s.dataDir,
		"--http-addr", strings.TrimPrefix(s.url, "http://"), "--grpc-addr", s.grpc,
		"--partitions", "4", "--kafka-brokers", strings.Join(s.opts.Brokers, ","),
		"--min-free-disk", soakMinFree, "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	done := make(chan struct{})
	s.mu.Lock()
	s.mu.cmd, s.mu.done, s.mu.killing = cmd, done, false
	s.mu.Unlock()
	go func() {
		_ = cmd.Wait()
		logf.Close()
		s.mu.Lock()
		if !s.mu.killing {
			s.unplanned.Add(1)
		}
		s.mu.Unlock()
		close(done)
	}()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return fmt.Errorf("featured exited during startup (log %s)", s.logPath)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if resp, err := http.Get(s.url + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("featured not ready after 90s (log %s)", s.logPath)
}

// kill is kill -9, after reading the process's peak RSS.
func (s *soakServer) kill() {
	s.mu.Lock()
	cmd, done := s.mu.cmd, s.mu.done
	s.mu.killing = true
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	s.recordRSS(cmd.Process.Pid)
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// alive restarts the server if it exited on its own (counted as unplanned).
func (s *soakServer) alive(ctx context.Context) error {
	s.mu.Lock()
	done := s.mu.done
	s.mu.Unlock()
	select {
	case <-done:
		return s.start(ctx)
	default:
		return nil
	}
}

func (s *soakServer) recordRSS(pid int) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			s.mu.Lock()
			s.mu.peakRSS = max(s.mu.peakRSS, kb<<10)
			s.mu.Unlock()
		}
	}
}

// soak runs one soak and returns its report.
func soak(ctx context.Context, o soakOptions) (*SoakReport, error) {
	if o.Entities <= 0 {
		o.Entities = 200
	}
	if o.PushBatch <= 0 {
		o.PushBatch = 50
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	rep := &SoakReport{}
	dataParent := o.Dir
	if o.TmpfsMB > 0 {
		dataParent = filepath.Join(o.Dir, "tmpfs")
		if err := os.MkdirAll(dataParent, 0o755); err != nil {
			return nil, err
		}
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%dm", o.TmpfsMB), "tmpfs", dataParent).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("mount a %d MiB tmpfs (needs root): %v: %s", o.TmpfsMB, err, out)
		}
		defer exec.Command("umount", "-l", dataParent).Run()
	}
	httpAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	grpcAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	srv := &soakServer{opts: o, dataDir: filepath.Join(dataParent, "data"), url: "http://" + httpAddr, grpc: grpcAddr,
		logPath: filepath.Join(o.Dir, "featured.log")}
	if err := srv.start(ctx); err != nil {
		return nil, err
	}
	defer srv.kill()

	topic := fmt.Sprintf("soak-%d", time.Now().UnixNano())
	if err := createSoakTopic(ctx, o.Brokers, topic, 4); err != nil {
		return nil, err
	}
	if code, body := soakPost(srv.url+"/v1/apply", "application/yaml", []byte(soakDefs(topic))); code != 200 {
		return nil, fmt.Errorf("apply: %d %s", code, body)
	}

	client := &http.Client{Timeout: 10 * time.Second}
	var (
		wg       sync.WaitGroup
		pushMu   sync.Mutex
		pushWant = map[string][2]int64{} // entity -> count, sum of acknowledged pushes
	)
	faults, stopFaults := context.WithTimeout(ctx, o.Duration)
	defer stopFaults()
	load, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	start := time.Now()

	// Pushers: every batch is retried with its batch_id until answered 200.
	for w := range 2 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for seq := 0; load.Err() == nil; seq++ {
				events := make([]map[string]any, o.PushBatch)
				want := map[string][2]int64{}
				for i := range events {
					user := fmt.Sprintf("u%04d", rng.IntN(o.Entities))
					v := rng.Int64N(100) + 1
					events[i] = map[string]any{"user_id": user, "ts": time.Now().UnixMilli(), "v": v}
					c := want[user]
					want[user] = [2]int64{c[0] + 1, c[1] + v}
				}
				body, _ := json.Marshal(map[string]any{"source": "soak_push", "events": events, "batch_id": fmt.Sprintf("soak-%d-%d", w, seq)})
				for attempt := 0; ; attempt++ {
					if attempt > 0 {
						atomic.AddInt64(&rep.PushRetries, 1)
						time.Sleep(100 * time.Millisecond)
					}
					resp, err := client.Post(srv.url+"/v1/push", "application/json", bytes.NewReader(body))
					if err != nil {
						continue // killed mid-request: unknown, retry with the same batch_id
					}
					rb, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode == http.StatusInsufficientStorage {
						atomic.AddInt64(&rep.DiskFullRefusals, 1)
					}
					if resp.StatusCode != 200 {
						if resp.StatusCode/100 == 4 && resp.StatusCode != 408 && resp.StatusCode != 429 {
							fmt.Fprintf(o.Log, "soak: push refused %d %s\n", resp.StatusCode, rb)
							return
						}
						continue
					}
					if bytes.Contains(rb, []byte(`"duplicate":true`)) {
						atomic.AddInt64(&rep.PushDuplicates, 1)
					}
					break
				}
				pushMu.Lock()
				for u, c := range want {
					p := pushWant[u]
					pushWant[u] = [2]int64{p[0] + c[0], p[1] + c[1]}
				}
				pushMu.Unlock()
				atomic.AddInt64(&rep.PushBatches, 1)
				atomic.AddInt64(&rep.PushEvents, int64(len(events)))
			}
		})
	}

	// The Kafka producer: keyed by entity, acks=all, murmur2 as Java's.
	wg.Go(func() {
		wr, err := kgo.NewClient(kgo.SeedBrokers(o.Brokers...), kgo.DefaultProduceTopic(topic),
			kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)), kgo.RequiredAcks(kgo.AllISRAcks()),
			kgo.ProducerLinger(5*time.Millisecond))
		if err != nil {
			return
		}
		defer wr.Close()
		rng := rand.New(rand.NewPCG(99, 2))
		for load.Err() == nil {
			msgs := make([]*kgo.Record, 100)
			for i := range msgs {
				user := fmt.Sprintf("u%04d", rng.IntN(o.Entities))
				b, _ := json.Marshal(map[string]any{"user_id": user, "ts": time.Now().UnixMilli(), "v": rng.Int64N(100) + 1})
				msgs[i] = &kgo.Record{Key: []byte(user), Value: b}
			}
			if err := wr.ProduceSync(load, msgs...).FirstErr(); err == nil {
				atomic.AddInt64(&rep.KafkaMessages, int64(len(msgs)))
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	// Lookups.
	wg.Go(func() {
		rng := rand.New(rand.NewPCG(7, 3))
		for load.Err() == nil {
			body, _ := json.Marshal(map[string]any{
				"features": []string{"soak_push_view:n", "soak_kafka_view:s"},
				"entities": map[string]any{"user_id": []string{fmt.Sprintf("u%04d", rng.IntN(o.Entities))}},
			})
			atomic.AddInt64(&rep.Lookups, 1)
			resp, err := client.Post(srv.url+"/v1/features", "application/json", bytes.NewReader(body))
			if err != nil {
				atomic.AddInt64(&rep.LookupErrors, 1)
				time.Sleep(20 * time.Millisecond)
				continue
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				atomic.AddInt64(&rep.LookupErrors, 1)
			}
			time.Sleep(2 * time.Millisecond)
		}
	})

	// Hostile requests: each must be refused (4xx) or rejected row by row.
	wg.Go(func() {
		for i := 0; faults.Err() == nil; i++ {
			code, body := hostile(client, srv.url, i)
			if code == 0 {
				time.Sleep(50 * time.Millisecond)
				continue // the server was down
			}
			if code == http.StatusInsufficientStorage || code == http.StatusServiceUnavailable {
				time.Sleep(50 * time.Millisecond)
				continue // refused for the disk or a restart: says nothing of the input
			}
			atomic.AddInt64(&rep.HostileTried, 1)
			switch {
			case code/100 == 4:
				atomic.AddInt64(&rep.HostileRefused, 1)
			case code == 200 && bytes.Contains(body, []byte(`"rejected"`)):
				atomic.AddInt64(&rep.HostileRefused, 1)
			default:
				atomic.AddInt64(&rep.HostileAccepted, 1)
				fmt.Fprintf(o.Log, "soak: hostile request %d answered %d %.200s\n", i%len(hostileKinds), code, body)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})

	// The disk filler.
	if o.TmpfsMB > 0 && o.FillEvery > 0 {
		wg.Go(func() {
			ballast := filepath.Join(dataParent, "ballast")
			t := time.NewTicker(o.FillEvery)
			defer t.Stop()
			for {
				select {
				case <-faults.Done():
					os.Remove(ballast)
					return
				case <-t.C:
				}
				if err := fillDisk(dataParent, ballast, 12<<20); err != nil {
					fmt.Fprintf(o.Log, "soak: fill disk: %v\n", err)
					continue
				}
				rep.DiskFills++
				select {
				case <-faults.Done():
				case <-time.After(2 * time.Second):
				}
				os.Remove(ballast)
			}
		})
	}

	// The killer, on this goroutine.
	var kerr error
	if o.KillEvery > 0 {
		t := time.NewTicker(o.KillEvery)
	kill:
		for {
			select {
			case <-faults.Done():
				break kill
			case <-t.C:
			}
			srv.kill()
			rep.Kills++
			if kerr = srv.start(ctx); kerr != nil {
				break
			}
		}
		t.Stop()
	} else {
		<-faults.Done()
	}
	if kerr == nil {
		kerr = srv.alive(ctx)
	}
	stopLoad()
	wg.Wait()
	rep.DurationSeconds = time.Since(start).Seconds()
	if kerr != nil {
		return rep, kerr
	}
	if err := srv.alive(ctx); err != nil {
		return rep, err
	}

	// Ground truth of the topic, then wait for featured to hold it all.
	kafkaWant, err := readTopic(ctx, o.Brokers, topic)
	if err != nil {
		return rep, err
	}
	users := make([]string, o.Entities)
	for i := range users {
		users[i] = fmt.Sprintf("u%04d", i)
	}
	var got map[string][4]int64
	deadline := time.Now().Add(120 * time.Second)
	for {
		got, err = soakRead(srv.url, users)
		if err == nil && sameTotals(got, pushWant, kafkaWant) {
			break
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if err != nil {
		return rep, err
	}
	for _, u := range users {
		g := got[u]
		for i, want := range [][2]int64{pushWant[u], kafkaWant[u]} {
			d := g[2*i] - want[0]
			if d < 0 {
				rep.EventsLost -= d
			} else {
				rep.EventsDoubled += d
			}
			if g[2*i+1] != want[1] {
				rep.SumMismatches++
			}
		}
	}
	srv.recordRSS(srv.pid())
	srv.mu.Lock()
	rep.PeakRSSBytes = srv.mu.peakRSS
	srv.mu.Unlock()
	rep.UnplannedExits = int(srv.unplanned.Load())
	return rep, nil
}

func (s *soakServer) pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.cmd.Process.Pid
}

func sameTotals(got map[string][4]int64, push, kafka map[string][2]int64) bool {
	for u, g := range got {
		if g[0] != push[u][0] || g[2] != kafka[u][0] {
			return false
		}
	}
	return true
}

// soakRead reads every user's push and Kafka count and sum.
func soakRead(url string, users []string) (map[string][4]int64, error) {
	body, _ := json.Marshal(map[string]any{
		"features": []string{"soak_push_view:n", "soak_push_view:s", "soak_kafka_view:n", "soak_kafka_view:s"},
		"entities": map[string]any{"user_id": users}, "full_feature_names": true,
	})
	code, rb := soakPost(url+"/v1/features", "application/json", body)
	if code != 200 {
		return nil, fmt.Errorf("read back: %d %s", code, rb)
	}
	var r struct {
		Rows []struct {
			Key    string            `json:"key"`
			Values []json.RawMessage `json:"values"`
		} `json:"rows"`
	}
	if err := json.Unmarshal(rb, &r); err != nil {
		return nil, fmt.Errorf("read back %.200s: %w", rb, err)
	}
	out := make(map[string][4]int64, len(users))
	for i, row := range r.Rows {
		var v [4]int64
		for j := range v {
			if j < len(row.Values) {
				_ = json.Unmarshal(row.Values[j], &v[j]) // null (NOT_FOUND) stays 0
			}
		}
		out[users[i]] = v
	}
	return out, nil
}

// readTopic reads the whole topic back: per entity, count and sum of v.
func readTopic(ctx context.Context, brokers []string, topic string) (map[string][2]int64, error) {
	admCl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return nil, err
	}
	ends, err := kadm.NewClient(admCl).ListEndOffsets(ctx, topic)
	admCl.Close()
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("list end offsets of %s: %w", topic, err)
	}
	start := map[int32]kgo.Offset{}
	left := map[int32]int64{} // the end offset of each partition not read to its end
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			start[o.Partition] = kgo.NewOffset().At(0)
			left[o.Partition] = o.Offset
		}
	})
	out := map[string][2]int64{}
	if len(left) == 0 {
		return out, nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.FetchMaxWait(250*time.Millisecond),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: start}))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	for len(left) > 0 {
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		fs := cl.PollFetches(rctx)
		cancel()
		if err := fs.Err0(); err != nil {
			return nil, fmt.Errorf("read %s (partitions left %v): %w", topic, left, err)
		}
		fs.EachRecord(func(m *kgo.Record) {
			end, ok := left[m.Partition]
			if !ok || m.Offset >= end {
				return
			}
			if m.Offset+1 >= end {
				delete(left, m.Partition)
			}
			var ev struct {
				User string `json:"user_id"`
				V    int64  `json:"v"`
			}
			if json.Unmarshal(m.Value, &ev) == nil {
				c := out[ev.User]
				out[ev.User] = [2]int64{c[0] + 1, c[1] + ev.V}
			}
		})
	}
	return out, nil
}

func createSoakTopic(ctx context.Context, brokers []string, topic string, partitions int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	_, err = kadm.NewClient(cl).CreateTopic(ctx, int32(partitions), 1, nil, topic)
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	return nil
}

// fillDisk writes a ballast file leaving about leave bytes free.
func fillDisk(dir, ballast string, leave int64) error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return err
	}
	n := int64(st.Bavail)*int64(st.Bsize) - leave
	if n <= 0 {
		return nil
	}
	f, err := os.Create(ballast)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for n > 0 {
		k := min(n, int64(len(buf)))
		if _, err := f.Write(buf[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

var hostileKinds = []string{"oversized body", "deep nesting", "cells over the limit", "huge string field", "NUL key", "duplicate keys", "bad batch_id"}

// hostile sends hostile request number i; code 0 means no answer.
func hostile(c *http.Client, url string, i int) (int, []byte) {
	var path, body string
	switch i % len(hostileKinds) {
	case 0:
		path, body = "/v1/features", `{"features":["soak_push_view:n"],"entities":{"user_id":["`+strings.Repeat("x", 5<<20)+`"]}}`
	case 1:
		path, body = "/v1/push", strings.Repeat("[", 10000)+strings.Repeat("]", 10000)
	case 2:
		keys := make([]string, 1000)
		for k := range keys {
			keys[k] = fmt.Sprintf("u%04d", k)
		}
		refs := make([]string, 200)
		for k := range refs {
			refs[k] = "soak_push_view:n"
		}
		b, _ := json.Marshal(map[string]any{"features": refs, "entities": map[string]any{"user_id": keys}})
		path, body = "/v1/features", string(b)
	case 3:
		path, body = "/v1/push", `{"source":"soak_push","events":[{"user_id":"h1","ts":1,"v":"`+strings.Repeat("y", 100000)+`"}]}`
	case 4:
		path, body = "/v1/push", `{"source":"soak_push","events":[{"user_id":"a\u0000b","ts":1,"v":1}]}`
	case 5:
		path, body = "/v1/features", `{"features":["soak_push_view:n"],"features":["soak_push_view:s"],"entities":{"user_id":["u1"]}}`
	case 6:
		path, body = "/v1/push", `{"source":"soak_push","batch_id":"","events":[{"user_id":"h2","ts":1,"v":1}]}`
	}
	resp, err := c.Post(url+path, "application/json", strings.NewReader(body))
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b
}

func soakPost(url, ctype string, body []byte) (int, []byte) {
	for attempt := 0; attempt < 50; attempt++ {
		resp, err := http.Post(url, ctype, bytes.NewReader(body))
		if err != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 503 {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		return resp.StatusCode, b
	}
	return 0, []byte("no answer after 50 tries")
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// soakCmd is `loadtest soak`.
func soakCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o soakOptions
	var brokers, out string
	fs.StringVar(&o.Binary, "binary", "", "the featured binary (go build -o featured ./cmd/featured)")
	fs.StringVar(&o.Dir, "dir", "", "working directory (default: a new temp dir)")
	fs.StringVar(&brokers, "kafka-brokers", os.Getenv("FEATURED_KAFKA_BROKERS"), "Kafka bootstrap brokers (scripts/kafka.sh start)")
	fs.DurationVar(&o.Duration, "duration", 5*time.Minute, "how long faults are injected")
	fs.DurationVar(&o.KillEvery, "kill-every", 5*time.Second, "SIGKILL the server this often; 0: never")
	fs.DurationVar(&o.FillEvery, "fill-every", 15*time.Second, "fill the disk this often (with -tmpfs-mb)")
	fs.IntVar(&o.TmpfsMB, "tmpfs-mb", 0, "run the data dir on a tmpfs of this size (root only); 0: no disk filling")
	fs.IntVar(&o.Entities, "entities", 200, "entities")
	fs.StringVar(&out, "out", "", "write the JSON report here")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.Binary == "" || brokers == "" {
		return errors.New("soak: -binary and -kafka-brokers are required")
	}
	o.Brokers = strings.Split(brokers, ",")
	if o.Dir == "" {
		d, err := os.MkdirTemp("", "featured-soak-*")
		if err != nil {
			return err
		}
		o.Dir = d
	}
	o.Log = stderr
	rep, err := soak(ctx, o)
	if rep != nil {
		b, _ := json.MarshalIndent(rep, "", "  ")
		fmt.Fprintf(stdout, "%s\n", b)
		if out != "" {
			if werr := os.WriteFile(out, b, 0o644); werr != nil && err == nil {
				err = werr
			}
		}
	}
	if err != nil {
		return err
	}
	if rep.EventsLost != 0 || rep.EventsDoubled != 0 || rep.SumMismatches != 0 || rep.UnplannedExits != 0 {
		return fmt.Errorf("soak failed: %d lost, %d doubled, %d sum mismatches, %d unplanned exits", rep.EventsLost, rep.EventsDoubled, rep.SumMismatches, rep.UnplannedExits)
	}
	return nil
}
