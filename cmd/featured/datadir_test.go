package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestServeRefusesDamagedDataDir builds a data dir with the real server
// (apply, push, stop), damages it one way per case, and checks that serve
// refuses to start with a message naming the file and the way out; then
// --reset-data-dir starts it afresh and says so.
func TestServeRefusesDamagedDataDir(t *testing.T) {
	dir := t.TempDir()
	defs := defsWith("push", "")
	defsFile := filepath.Join(dir, "defs.yaml")
	if err := os.WriteFile(defsFile, []byte(defs), 0o644); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join(dir, "golden")
	s := startServer(t, golden, "--apply", defsFile)
	streams := streamsFor(6, 5, 20, time.Now())
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

	// serveArgs runs serve in-process: a refused start returns before
	// listening, so no ports are needed.
	refused := func(t *testing.T, data string, extra ...string) string {
		t.Helper()
		var logs bytes.Buffer
		args := append([]string{"--data-dir", data, "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--partitions", "2"}, extra...)
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // a start that is not refused returns at once, nil
		err := serve(ctx, args, &logs)
		if err == nil {
			t.Fatalf("serve of a damaged data dir started:\n%s", logs.String())
		}
		return err.Error()
	}
	for _, tc := range []struct {
		name   string
		damage func(data string) error
		extra  []string
		names  string
	}{
		{"registry.json deleted", func(data string) error { return os.Remove(filepath.Join(data, "registry.json")) }, nil, "registry.json"},
		{"shard dir deleted", func(data string) error { return os.RemoveAll(filepath.Join(data, "store", "p-0001")) }, nil, "p-0001"},
		{"PARTITIONS deleted, --partitions differs", func(data string) error { return os.Remove(filepath.Join(data, "store", "PARTITIONS")) }, []string{"--partitions", "3"}, "PARTITIONS"},
		{"PARTITIONS deleted", func(data string) error { return os.Remove(filepath.Join(data, "store", "PARTITIONS")) }, nil, "PARTITIONS"},
		{"store deleted", func(data string) error { return os.RemoveAll(filepath.Join(data, "store")) }, nil, "store"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			if err := os.CopyFS(data, os.DirFS(golden)); err != nil {
				t.Fatal(err)
			}
			if err := tc.damage(data); err != nil {
				t.Fatal(err)
			}
			msg := refused(t, data, tc.extra...)
			if !strings.Contains(msg, tc.names) || !strings.Contains(msg, "--reset-data-dir") || !strings.Contains(msg, "backup") {
				t.Fatalf("refusal %q: want it to name %s, a backup and --reset-data-dir", msg, tc.names)
			}
			// A second refused start still finds the damage: nothing was re-created.
			if again := refused(t, data, tc.extra...); again != msg {
				t.Fatalf("second start: %q, first %q", again, msg)
			}
		})
	}

	t.Run("reset", func(t *testing.T) {
		data := filepath.Join(t.TempDir(), "data")
		if err := os.CopyFS(data, os.DirFS(golden)); err != nil {
			t.Fatal(err)
		}
		os.RemoveAll(filepath.Join(data, "store", "p-0000"))
		s := startServer(t, data, "--reset-data-dir")
		if !strings.Contains(s.logs.String(), "DELETING the store") {
			t.Fatalf("reset did not say so:\n%s", s.logs)
		}
		// The registry is kept; the state is gone, and says so as NOT_FOUND.
		r := s.lookup(t, []string{"spend:cnt_1h"}, []string{"user-000"})
		if r.Rows[0].Statuses[0] != "NOT_FOUND" {
			t.Fatalf("after reset: %+v, want NOT_FOUND", r.Rows[0])
		}
		s.stop(t)
		// The reset dir is whole again: a plain start serves it.
		s = startServer(t, data)
		s.stop(t)
	})
}
