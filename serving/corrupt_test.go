package serving_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/featured-dev/featured/featurestore"
	"github.com/featured-dev/featured/ingest"
	"github.com/featured-dev/featured/internal/partition"
	"github.com/featured-dev/featured/registry"
	"github.com/featured-dev/featured/serving"
)

// TestCorruptShard damages a data block of shard 0's sstable on disk and
// serves the store. Before, the first lookup of a user in that block ended
// the process (Pebble's fatal-on-corruption default). Now that lookup is a
// 500 (gRPC DataLoss) naming the shard, a user on shard 1 still reads,
// /v1/status counts it and /readyz fails naming the shard.
func TestCorruptShard(t *testing.T) {
	dir := t.TempDir()
	clock := func() time.Time { return now }
	reg, err := registry.OpenWithOptions(filepath.Join(dir, "registry.json"), registry.Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	d, err := registry.ParseYAML([]byte(definitions))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Apply(d); err != nil {
		t.Fatal(err)
	}
	sopts := featurestore.Options{Partitions: 2, CacheBytes: 8 << 20, GCInterval: -1, Now: clock, Logger: discard()}
	data := filepath.Join(dir, "data")
	open := func() (*featurestore.Store, *ingest.Pusher) {
		t.Helper()
		store, err := featurestore.Open(data, sopts)
		if err != nil {
			t.Fatal(err)
		}
		p, err := ingest.NewPusher(reg, store, ingest.Options{Now: clock, Logger: discard()})
		if err != nil {
			t.Fatal(err)
		}
		return store, p
	}
	store, p := open()
	users := map[int]string{} // a user on each shard
	var events []json.RawMessage
	for i := 0; len(users) < 2 || i < 20; i++ {
		u := fmt.Sprintf("u%d", i)
		users[partition.Of([]byte(u), 2)] = u
		events = append(events, json.RawMessage(fmt.Sprintf(`{"user_id":%q,"ts":%d,"amount":2,"merchant":"m","items":1}`, u, nowMillis-60_000)))
	}
	if res, err := p.PushJSON(context.Background(), "transactions", events, ingest.PushOptions{}); err != nil || res.Accepted != len(events) {
		t.Fatalf("push: %+v, %v", res, err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	shard0 := filepath.Join(data, "p-0000")
	db, err := pebble.Open(shard0, &pebble.Options{DisableAutomaticCompactions: true})
	if err != nil {
		t.Fatal(err)
	}
	// The partition record (featurestore/docs/format.md, 'mpart') would
	// share the damaged block with the states and fail the Open: it is
	// moved to an sstable of its own, written after the damaged ones are
	// listed.
	partKey := []byte("mpart")
	rec, closer, err := db.Get(partKey)
	if err != nil {
		t.Fatal(err)
	}
	rec = append([]byte(nil), rec...)
	closer.Close()
	if err := db.Delete(partKey, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Compact(context.Background(), []byte{0}, []byte{0xff}, false); err != nil {
		t.Fatal(err)
	}
	var ssts []string
	levels, err := db.SSTables()
	if err != nil {
		t.Fatal(err)
	}
	for _, level := range levels {
		for _, f := range level {
			ssts = append(ssts, filepath.Join(shard0, fmt.Sprintf("%06d.sst", f.FileNum)))
		}
	}
	if err := db.Set(partKey, rec, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if len(ssts) == 0 {
		t.Fatal("no sstable in shard 0")
	}
	for _, f := range ssts {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i := 16; i < 48 && i < len(b); i++ {
			b[i] ^= 0xff // inside the first data block
		}
		if err := os.WriteFile(f, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	store, p = open()
	defer store.Close()
	srv, err := serving.New(reg, store, p, serving.Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	srv.SetReady(true)
	hs := httptest.NewServer(srv.HTTPHandler())
	defer hs.Close()
	get := func(path, body string) (int, string) {
		t.Helper()
		method := http.MethodGet
		if body != "" {
			method = http.MethodPost
		}
		req, err := http.NewRequest(method, hs.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(b)
	}
	lookup := func(u string) (int, string) {
		return get("/get-online-features", fmt.Sprintf(`{"features":["user_spend:spend_7d"],"entities":{"user_id":[%q]}}`, u))
	}
	if st, body := lookup(users[0]); st != http.StatusInternalServerError || !strings.Contains(body, "shard 0") || !strings.Contains(body, "corrupt") {
		t.Fatalf("lookup of %s on the damaged shard: %d %s; want 500 naming shard 0", users[0], st, body)
	}
	if st, body := lookup(users[1]); st != http.StatusOK || !strings.Contains(body, "2") {
		t.Fatalf("lookup of %s on shard 1: %d %s", users[1], st, body)
	}
	st, body := get("/readyz?verbose", "")
	if st != http.StatusServiceUnavailable || !strings.Contains(body, "[-]store failed: shard 0: ") || strings.Contains(body, "shard 1") {
		t.Fatalf("readyz: %d %q; want 503 naming shard 0", st, body)
	}
	st, body = get("/v1/status", "")
	var status struct {
		Shards []featurestore.ShardStats `json:"shards"`
	}
	if err := json.Unmarshal([]byte(body), &status); st != http.StatusOK || err != nil || len(status.Shards) != 2 {
		t.Fatalf("status: %d %v %s", st, err, body)
	}
	if s0 := status.Shards[0]; s0.CorruptionReports == 0 || s0.CorruptReads != 1 || s0.Damaged == "" {
		t.Fatalf("status of shard 0: %+v", s0)
	}
}
