package serving_test

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/featured-dev/featured/featurestore"
	"github.com/featured-dev/featured/ingest"
	"github.com/featured-dev/featured/internal/kafkatest"
	"github.com/featured-dev/featured/internal/testdefs"
	"github.com/featured-dev/featured/registry"
	"github.com/featured-dev/featured/serving"
)

// TestPushClusterAnswer: POST /v1/push in cluster mode answers the
// positions of the produced records, and refuses an atomic push with a 400
// on a node without a transactional ID.
func TestPushClusterAnswer(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	dir := t.TempDir()
	reg, err := registry.Open(filepath.Join(dir, "registry.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	defs, err := registry.ParseYAML([]byte(testdefs.Doc([]string{testdefs.Source("tx", "push", "")}, []string{testdefs.View("v", "tx", "2d")})))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Apply(defs); err != nil {
		t.Fatal(err)
	}
	store, err := featurestore.Open(filepath.Join(dir, "data"), featurestore.Options{Partitions: 1, GCInterval: -1, Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var b [4]byte
	_, _ = rand.Read(b[:])
	group := "featured-serving-" + hex.EncodeToString(b[:])
	defer kafkatest.DeleteTopic(t, brokers, ingest.PushTopic(group, "tx"))
	pusher, err := ingest.NewPusher(reg, store, ingest.Options{Logger: discard(), Cluster: &ingest.ClusterOptions{Brokers: brokers, Group: group, Partitions: 2}})
	if err != nil {
		t.Fatal(err)
	}
	defer pusher.Close()
	srv, err := serving.New(reg, store, pusher, serving.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv.SetReady(true)
	hs := httptest.NewServer(srv.HTTPHandler())
	defer hs.Close()
	post := func(body string) (int, string) {
		t.Helper()
		resp, err := http.Post(hs.URL+"/v1/push", "application/json", strings.NewReader(body))
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
	var events []string
	ts := time.Now().Add(-time.Hour).UnixMilli()
	for i := range 20 {
		events = append(events, fmt.Sprintf(`{"user_id":"u%d","ts":%d,"amount":1.5}`, i, ts))
	}
	st, body := post(`{"source":"tx","events":[` + strings.Join(events, ",") + `]}`)
	var res struct {
		Accepted  int               `json:"accepted"`
		Positions []ingest.Position `json:"positions"`
	}
	if err := json.Unmarshal([]byte(body), &res); st != 200 || err != nil || res.Accepted != 20 || len(res.Positions) != 2 {
		t.Fatalf("push: %d %s (%v): want 200, 20 accepted, a position on each of 2 partitions", st, body, err)
	}
	if st, body := post(`{"source":"tx","atomic":true,"events":[` + events[0] + `]}`); st != http.StatusBadRequest || !strings.Contains(body, "transactional ID") {
		t.Fatalf("atomic push without a transactional ID: %d %s, want 400", st, body)
	}
}
