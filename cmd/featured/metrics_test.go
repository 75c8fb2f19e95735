package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/featured-dev/featured/internal/kafkatest"
	"github.com/featured-dev/featured/internal/testdefs"
)

// scrape returns the value of every sample of /metrics, by its line's
// name and labels ("featured_lookups_total{api=\"native\",...}").
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// family sums the samples of a metric whose labels contain every one of
// labels (`name="value"` pairs).
func family(samples map[string]float64, name string, labels ...string) (sum float64, found bool) {
	for k, v := range samples {
		n, rest, _ := strings.Cut(k, "{")
		if n != name {
			continue
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(rest, l) {
				ok = false
			}
		}
		if ok {
			sum += v
			found = true
		}
	}
	return sum, found
}

// TestMetricsScrape drives known traffic through the real binary (HTTP
// and gRPC lookups, a push, a Kafka topic on the real broker, an export)
// and checks that every metric family it should move moved, with the
// labels the README documents.
func TestMetricsScrape(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.CreateTopic(t, brokers, "metrics", 2)
	t.Cleanup(func() { kafkatest.DeleteTopic(t, brokers, topic+".dlq") })
	dir := t.TempDir()
	defs := testdefs.Doc([]string{testdefs.Source("tx", "push", ""), testdefs.Source("ktx", "kafka", topic)},
		[]string{testdefs.View("spend", "tx", "2d"), testdefs.View("kspend", "ktx", "2d")})
	defs += "feature_services:\n  - {name: svc, features: [\"spend:cnt_items_life\"]}\n"
	defsFile := filepath.Join(dir, "defs.yaml")
	if err := os.WriteFile(defsFile, []byte(defs), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, filepath.Join(dir, "data"), "--apply", defsFile, "--kafka-brokers", strings.Join(brokers, ","),
		"--kafka-commit-group", "metrics-test-")
	before := scrape(t, s.url)

	now := time.Now().Add(-time.Minute).UnixMilli()
	events := []map[string]any{
		{"user_id": "u1", "ts": now, "amount": 1.5, "merchant": "m", "items": 2, "flag": true},
		{"user_id": "u2", "ts": now, "amount": 2.5, "merchant": "m", "items": 3, "flag": false},
		{"user_id": "u3", "ts": "not a time"},
	}
	if code, body := s.post(t, "/v1/push", map[string]any{"source": "tx", "events": events}); code != 200 {
		t.Fatalf("push: %d %s", code, body)
	}
	var msgs []*kgo.Record
	for i := range 10 {
		v, _ := json.Marshal(map[string]any{"user_id": fmt.Sprintf("k%d", i), "ts": now, "amount": 1.0, "merchant": "m", "items": 1, "flag": true})
		msgs = append(msgs, &kgo.Record{Key: []byte(fmt.Sprintf("k%d", i)), Value: v})
	}
	msgs = append(msgs, &kgo.Record{Key: []byte("bad"), Value: []byte("{not json")})
	kafkatest.Produce(t, brokers, topic, msgs)

	s.lookup(t, []string{"spend:cnt_items_life"}, []string{"u1", "u2", "nobody"})
	if code, body := s.post(t, "/get-online-features", map[string]any{"feature_service": "svc", "entities": map[string]any{"user_id": []string{"u1"}}}); code != 200 {
		t.Fatalf("feast lookup: %d %s", code, body)
	}
	if _, err := grpcGet(context.Background(), &clientConf{url: s.url}, s.grpc, false, []string{"spend:cnt_items_life"}, "", []string{"user_id"}, [][]any{{"u1"}}); err != nil {
		t.Fatalf("grpc lookup: %v", err)
	}
	spine := fmt.Sprintf("user_id,event_timestamp\nu1,%s\n", time.Now().UTC().Format(time.RFC3339Nano))
	resp, err := http.Post(s.url+"/v1/export?features=spend:cnt_items_life", "text/csv", strings.NewReader(spine))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("export: %d", resp.StatusCode)
	}

	// Kafka ingest is asynchronous: poll until the partitions caught up.
	var after map[string]float64
	deadline := time.Now().Add(30 * time.Second)
	for {
		after = scrape(t, s.url)
		applied, _ := family(after, "featured_ingest_events_total", `source="ktx"`, `result="applied"`)
		dead, _ := family(after, "featured_ingest_dead_letters_total", `source="ktx"`)
		if applied == 10 && dead == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("kafka events not applied after 30s: applied %v, dead letters %v\n%s", applied, dead, s.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}

	moved := []struct {
		name   string
		labels []string
	}{
		{"http_server_request_duration_seconds_count", []string{`http_route="/v1/features"`, `http_request_method="POST"`, `http_response_status_code="200"`}},
		{"http_server_request_duration_seconds_count", []string{`http_route="/get-online-features"`}},
		{"http_server_request_duration_seconds_count", []string{`http_route="/v1/export"`}},
		{"rpc_server_call_duration_seconds_count", []string{`rpc_method="featured.v1.ServingService/GetOnlineFeatures"`}},
		{"featured_lookups_total", []string{`api="native"`, `feature_service=""`}},
		{"featured_lookups_total", []string{`api="feast"`, `feature_service="svc"`}},
		{"featured_lookups_total", []string{`api="grpc"`}},
		{"featured_lookup_entities_count", []string{`api="native"`}},
		{"featured_lookup_features_sum", []string{`api="native"`}},
		{"featured_lookup_values_total", []string{`view="spend"`, `view_version="1"`, `status="PRESENT"`}},
		{"featured_lookup_values_total", []string{`view="spend"`, `status="NOT_FOUND"`}},
		{"featured_ingest_events_total", []string{`source="tx"`, `result="applied"`}},
		{"featured_ingest_rejected_total", []string{`source="tx"`}},
		{"featured_ingest_rejected_total", []string{`source="ktx"`}},
		{"featured_ingest_push_batch_size_count", []string{`source="tx"`}},
		{"featured_ingest_latency_seconds_count", []string{`source="tx"`}},
		{"featured_ingest_latency_seconds_count", []string{`source="ktx"`}},
		{"featured_kafka_offset_applied", []string{`source="ktx"`}},
		{"featured_kafka_high_watermark", []string{`source="ktx"`}},
		{"featured_view_freshness_seconds", []string{`view="spend"`, `view_version="1"`}},
		{"featured_view_freshness_seconds", []string{`view="kspend"`}},
		{"featured_store_commits_total", []string{`shard="0"`}},
		{"featured_store_writes_total", []string{`result="applied"`}},
		{"featured_store_commit_duration_seconds_count", nil},
		{"featured_store_commit_writes_sum", nil},
		{"featured_offline_runs_total", []string{`kind="export"`, `result="ok"`}},
		{"featured_offline_rows_total", []string{`kind="export"`}},
		{"featured_offline_duration_seconds_count", []string{`kind="export"`}},
	}
	for _, m := range moved {
		b, _ := family(before, m.name, m.labels...)
		a, ok := family(after, m.name, m.labels...)
		if !ok || a <= b {
			t.Errorf("%s%v: %v before, %v after (present: %v); want it to move", m.name, m.labels, b, a, ok)
		}
	}
	// Present even when zero: a dashboard plots them from the start.
	for _, name := range []string{"featured_kafka_lag", "featured_kafka_lag_seconds", "featured_kafka_offset_resets_total",
		"featured_store_queue_depth", "featured_store_cached_states", "featured_store_ttl_deleted_states_total", "featured_store_ttl_scans_total", "featured_store_ttl_last_scan_time_seconds",
		"featured_storage_compactions_total", "featured_storage_disk_usage_bytes", "featured_storage_memtable_size_bytes",
		"featured_storage_block_cache_hits_total", "featured_storage_block_cache_misses_total", "featured_storage_l0_sublevels", "featured_storage_l0_files", "featured_storage_write_stalls_total"} {
		if _, ok := family(after, name); !ok {
			t.Errorf("%s missing from /metrics", name)
		}
	}
	// Lag tools see the applied offsets in the informational group:
	// together the partitions hold the 11 messages produced.
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	deadline = time.Now().Add(30 * time.Second)
	for {
		resp, err := adm.FetchOffsetsForTopics(context.Background(), "metrics-test-ktx", topic)
		var total int64
		if err == nil {
			for _, p := range []int32{0, 1} {
				if o, ok := resp.Lookup(topic, p); ok && o.Err == nil && o.At > 0 {
					total += o.At
				}
			}
		}
		if total == int64(len(msgs)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("group metrics-test-ktx: committed offsets sum to %d (%v), want %d", total, err, len(msgs))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Every query of the Helm chart's dashboard reads what this scrape has.
	checkDashboard(t, after)
	// No entity key is a label value.
	for k := range after {
		for _, key := range []string{"u1", "u2", "k1", "nobody"} {
			if strings.Contains(k, `"`+key+`"`) {
				t.Errorf("entity key %q in a label: %s", key, k)
			}
		}
	}
	if t.Failed() {
		var names []string
		for k := range after {
			if strings.HasPrefix(k, "featured") || strings.HasPrefix(k, "http") || strings.HasPrefix(k, "rpc") {
				names = append(names, k)
			}
		}
		t.Logf("samples:\n%s", strings.Join(names, "\n"))
	}
}
