package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/featured-dev/featured/offline/eventlog"
	"github.com/featured-dev/featured/offline/export"
)

// TestMigrateStore builds a data dir of the layout before partitions with
// the real server (a one-partition store is a one-shard store of the old
// layout but for its files: they are renamed, its partition record
// deleted), checks that serve refuses it with the message naming
// migrate-store, migrates it to 4 partitions, and checks that a server on
// the result answers every feature as the reference does.
func TestMigrateStore(t *testing.T) {
	dir := t.TempDir()
	defs := defsWith("push", "")
	defsFile := filepath.Join(dir, "defs.yaml")
	if err := os.WriteFile(defsFile, []byte(defs), 0o644); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	s := startServer(t, data, "--apply", defsFile, "--partitions", "1")
	streams := streamsFor(12, 7, 30, time.Now())
	var batch []map[string]any
	for u, evs := range streams {
		for _, ev := range evs {
			batch = append(batch, eventObject(u, ev))
		}
	}
	if code, body := s.post(t, "/v1/push", map[string]any{"source": "tx", "events": batch}); code != 200 {
		t.Fatalf("push: %d %s", code, body)
	}
	s.stop(t)

	store := filepath.Join(data, "store")
	db, err := pebble.Open(filepath.Join(store, "p-0000"), &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Delete([]byte("mpart"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(store, "p-0000"), filepath.Join(store, "shard-000")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(store, "PARTITIONS")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(store, "SHARDS"), []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	wal := filepath.Join(data, "offline", "wal")
	if err := os.Rename(filepath.Join(wal, "p-0000"), filepath.Join(wal, "shard-000")); err != nil {
		t.Fatal(err)
	}

	var logs bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = serve(ctx, []string{"--data-dir", data, "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--partitions", "4"}, &logs)
	want := `store: data dir has the single-node layout of featured <= 0.x (store/SHARDS, 1 shards); run "featured migrate-store --data-dir ` + data + ` --partitions 4" once`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("serve on the old layout: %v, want %q", err, want)
	}

	var out bytes.Buffer
	if err := run(context.Background(), []string{"migrate-store", "--data-dir", data, "--partitions", "4"}, &out, &logs); err != nil {
		t.Fatalf("migrate-store: %v\n%s", err, logs.String())
	}
	if !strings.Contains(out.String(), "from 1 shards to 4 partitions: 12 states") {
		t.Fatalf("migrate-store said %q", out.String())
	}
	if _, err := os.Stat(filepath.Join(wal, "p-0000")); err != nil {
		t.Fatalf("the offline log's WAL of shard 0 was not renamed: %v", err)
	}
	s = startServer(t, data, "--partitions", "4")
	s.checkAgainstReference(t, compiledView(t, defs, "spend"), streams)
	s.stop(t)

	// The offline log kept every event logged before the migration.
	n := 0
	err = withLocalExporter(data, func(x *export.Exporter) error {
		seen := map[[2]int64]bool{}
		return x.Log().Events(context.Background(), "tx", func(e eventlog.Event) error {
			if k := [2]int64{int64(e.Shard), e.LSN}; !seen[k] {
				seen[k] = true
				n++
			}
			return nil
		})
	})
	if err != nil || n != len(batch) {
		t.Fatalf("offline log after the migration: %d events, %v; want %d", n, err, len(batch))
	}
}
