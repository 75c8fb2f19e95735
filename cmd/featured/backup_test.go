package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/featured-dev/featured/backup"
	"github.com/featured-dev/featured/internal/kafkatest"
)

// s3Dest returns an s3:// destination on the test object store
// (scripts/objectstore.sh), or "" when there is none outside CI.
func s3Dest(t *testing.T, bucket string) string {
	ep := os.Getenv("FEATURED_S3_ENDPOINT")
	if ep == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("FEATURED_S3_ENDPOINT is not set: scripts/test.sh starts the object store (scripts/objectstore.sh)")
		}
		return ""
	}
	return "s3://" + bucket + "/featured-" + strings.ReplaceAll(t.Name(), "/", "-") + "-" + time.Now().Format("150405.000") +
		"?endpoint=" + ep + "&use_path_style=true&region=us-east-1"
}

// TestBackupRestore backs up a server while Kafka ingest and lookups go
// on, restores the backup into a new data dir and starts a server there:
// it resumes Kafka from the restored offsets and ends with every event
// applied exactly once (the reference over all events). A second,
// incremental backup of the quiet server uploads less than it holds, and
// restored without Kafka it answers what the original answered.
func TestBackupRestore(t *testing.T) {
	dests := map[string]func(t *testing.T, dir string) string{
		"dir":  func(t *testing.T, dir string) string { return filepath.Join(dir, "backups") },
		"file": func(t *testing.T, dir string) string { return "file://" + filepath.Join(dir, "backups") },
		"s3": func(t *testing.T, dir string) string {
			d := s3Dest(t, "featured-test")
			if d == "" {
				t.Skip("FEATURED_S3_ENDPOINT not set (scripts/objectstore.sh)")
			}
			return d
		},
	}
	for name, dest := range dests {
		t.Run(name, func(t *testing.T) { testBackupRestore(t, dest) })
	}
}

func testBackupRestore(t *testing.T, destOf func(t *testing.T, dir string) string) {
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.CreateTopic(t, brokers, "backup", 2)
	t.Cleanup(func() { kafkatest.DeleteTopic(t, brokers, topic+".dlq") })
	dir := t.TempDir()
	dest := destOf(t, dir)
	defs := defsWith("kafka", topic)
	defsFile := filepath.Join(dir, "defs.yaml")
	if err := os.WriteFile(defsFile, []byte(defs), 0o644); err != nil {
		t.Fatal(err)
	}
	const entities, events = 20, 60
	streams := streamsFor(entities, 11, events, time.Now())
	var msgs []*kgo.Record
	for i := 0; i < events; i++ {
		for u, evs := range streams {
			b, _ := json.Marshal(eventObject(u, evs[i]))
			msgs = append(msgs, &kgo.Record{Key: []byte(u), Value: b})
		}
	}
	args := []string{"--kafka-brokers", strings.Join(brokers, ","), "--apply", defsFile, "--commit-interval", "2ms"}
	s := startServer(t, filepath.Join(dir, "data"), args...)
	view := compiledView(t, defs, "spend")
	refs := viewRefs(view)
	var users []string
	for u := range streams {
		users = append(users, u)
	}

	half := len(msgs) / 2
	kafkatest.Produce(t, brokers, topic, msgs[:half])
	waitFor(t, "the first half ingested", func() bool { next, _ := s.kafkaProgress(t); return next >= int64(half) })

	// The backup runs while the rest is produced and ingested and lookups
	// go on.
	var wg sync.WaitGroup
	var stop atomic.Bool
	wg.Go(func() {
		const chunks = 10
		per := (len(msgs) - half + chunks - 1) / chunks
		for i := half; i < len(msgs); i += per {
			kafkatest.Produce(t, brokers, topic, msgs[i:min(i+per, len(msgs))])
		}
	})
	wg.Go(func() {
		for !stop.Load() {
			s.lookup(t, refs, users)
		}
	})
	out, err := s.cli(t, "backup", dest)
	if err != nil {
		t.Fatalf("backup: %v\n%s\n%s", err, out, s.logs)
	}
	stop.Store(true)
	wg.Wait()
	waitFor(t, "every event ingested", func() bool {
		next, lag := s.kafkaProgress(t)
		return next == int64(len(msgs)) && lag == 0
	})

	// The first backup, restored: Kafka resumes from its offsets, reads
	// the events after the backup again, and the server ends with each
	// event applied once.
	restored := filepath.Join(dir, "restored")
	if out, err := runCLI(t.Context(), "restore", "--data-dir", restored, dest); err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	if out, err := runCLI(t.Context(), "restore", "--data-dir", restored, dest); !errors.Is(err, backup.ErrNotEmpty) {
		t.Fatalf("restore into a non-empty data dir: %v, want ErrNotEmpty\n%s", err, out)
	}
	r := startServer(t, restored, args...)
	waitFor(t, "the restored server caught up", func() bool {
		next, lag := r.kafkaProgress(t)
		return next == int64(len(msgs)) && lag == 0
	})
	// Offsets are recorded when batches are handed to the shards; the
	// lookup reads what is committed, so flush by a clean restart.
	r.stop(t)
	r = startServer(t, restored, args...)
	r.checkAgainstReference(t, view, streams)
	r.stop(t)

	// The second backup, of the quiet server, is incremental: the
	// sstables of the first are not sent again.
	s.stop(t)
	s = startServer(t, filepath.Join(dir, "data"), args...)
	s.checkAgainstReference(t, view, streams)
	for range 2 {
		if out, err := s.cli(t, "backup", dest); err != nil {
			t.Fatalf("backup of the quiet server: %v\n%s", err, out)
		}
	}
	d, err := backup.Open(t.Context(), dest)
	if err != nil {
		t.Fatal(err)
	}
	list, err := d.List(t.Context())
	d.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 {
		t.Fatalf("backup list: %d backups, want 3", len(list))
	}
	// The third backup, of the same sstables, uploads none of them.
	second, third := list[1], list[2]
	inSecond := map[string]bool{}
	for _, f := range second.Files {
		inSecond[f.SHA256] = true
	}
	var ssts, sstBytes int64
	for _, f := range third.Files {
		if strings.HasSuffix(f.Path, ".sst") {
			ssts++
			sstBytes += f.Size
			if !inSecond[f.SHA256] {
				t.Errorf("%s changed between two backups of a quiet server", f.Path)
			}
		}
	}
	if ssts == 0 || third.UploadedBytes > third.Bytes-sstBytes {
		t.Fatalf("third backup uploaded %d of %d bytes (%d sstables, %d bytes): want an incremental upload without the sstables", third.UploadedBytes, third.Bytes, ssts, sstBytes)
	}
	if out, err := runCLI(t.Context(), "backup", "list", dest); err != nil || !strings.Contains(out, second.ID) || !strings.Contains(out, list[0].ID) || !strings.Contains(out, third.ID) {
		t.Fatalf("backup list: %v\n%s", err, out)
	}

	// Restored without Kafka, the second backup answers what the original
	// answered at the backup point: both equal the reference over every
	// event (lookups have no read time to pin, so each is compared with
	// the reference at its own).
	again := filepath.Join(dir, "again")
	if out, err := runCLI(t.Context(), "restore", "--data-dir", again, "--backup", second.ID, dest); err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	q := startServer(t, again, "--commit-interval", "2ms")
	q.checkAgainstReference(t, view, streams)
	q.stop(t)
	s.stop(t)
}
