package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/backup"
	"github.com/featured-dev/featured/featurestore"
	"github.com/featured-dev/featured/ingest"
	"github.com/featured-dev/featured/offline/eventlog"
	"github.com/featured-dev/featured/registry"
)

// BenchmarkBackup1M measures the backups of issue 11 on a store of
// 1,000,000 entities in examples/defs.yaml's user_spend (one pushed event
// each, 2 shards, offline log on, as featured serve opens them): the
// checkpoint, a full backup to a directory, an incremental one after 1% of
// the entities got a new event, and a restore of it into an empty dir.
// Run it alone: go test -run '^$' -bench BenchmarkBackup1M -benchtime 1x
// ./cmd/featured/ (docs/benchmarks.md, "Backups").
func BenchmarkBackup1M(b *testing.B) { benchBackup(b, 1_000_000) }

// BenchmarkBackup10k is the same at 10,000 entities: a quick check of the
// harness.
func BenchmarkBackup10k(b *testing.B) { benchBackup(b, 10_000) }

func benchBackup(b *testing.B, entities int) {
	ctx := context.Background()
	dir := b.TempDir()
	paths := dataDirLayout(filepath.Join(dir, "data"))
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg, err := registry.Open(paths.registry)
	if err != nil {
		b.Fatal(err)
	}
	olog, err := eventlog.Open(paths.offline, eventlog.Options{Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	defer olog.Close()
	store, err := featurestore.Open(paths.store, featurestore.Options{
		EventLog:   olog,
		Partitions: 2,
		Views:      (&liveViews{reg: reg}).lookup,
		Layouts:    layoutsOf(reg),
		Logger:     log,
	})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	if err := applyAtStartup(reg, filepath.Join("..", "..", "examples", "defs.yaml"), log); err != nil {
		b.Fatal(err)
	}
	const batch = 5000
	pusher, err := ingest.NewPusher(reg, store, ingest.Options{MaxBatch: batch, Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	// push sends one event for each entity i in [from, to) step every, in
	// pushes of batch events.
	round := 0
	push := func(from, to, every int) {
		b.Helper()
		round++
		now := time.Now().UnixMilli()
		evs := make([]map[string]aggregate.Value, 0, batch)
		flush := func() {
			res, err := pusher.PushValues(ctx, "transactions", evs, ingest.PushOptions{})
			if err != nil {
				b.Fatal(err)
			}
			if res.Accepted != len(evs) {
				b.Fatalf("push: %d of %d accepted: %+v", res.Accepted, len(evs), res.Rejected[0])
			}
			evs = evs[:0]
		}
		for i := from; i < to; i += every {
			evs = append(evs, map[string]aggregate.Value{
				"user_id":  {Kind: aggregate.KindString, S: fmt.Sprintf("u%07d", i)},
				"ts":       {Kind: aggregate.KindInt64, I: now - int64(i%3600)*1000},
				"amount":   {Kind: aggregate.KindFloat64, F: float64(i%997) + 0.5},
				"merchant": {Kind: aggregate.KindString, S: "m" + strconv.Itoa((i+round)%1000)},
				"items":    {Kind: aggregate.KindInt64, I: int64(1 + i%5)},
			})
			if len(evs) == batch {
				flush()
			}
		}
		if len(evs) > 0 {
			flush()
		}
		if err := store.Flush(ctx); err != nil {
			b.Fatal(err)
		}
	}
	start := time.Now()
	push(0, entities, 1)
	populate := time.Since(start)

	// backupTo does what backuper.run does, timing the checkpoint (the
	// writers' pause) apart from the upload.
	backupTo := func(d *backup.Dest) (m *backup.Manifest, checkpoint, upload time.Duration) {
		b.Helper()
		start := time.Now()
		stage := filepath.Join(dir, stagingPrefix+strconv.FormatInt(start.UnixNano(), 10))
		defer os.RemoveAll(stage)
		sp := dataDirLayout(stage)
		info, err := store.Checkpoint(ctx, sp.store, func() error {
			if err := reg.CopyTo(sp.registry); err != nil {
				return err
			}
			return olog.CopyTo(sp.offline)
		})
		if err != nil {
			b.Fatal(err)
		}
		checkpoint = time.Since(start)
		m = &backup.Manifest{Time: start, Store: info}
		if err := d.Upload(ctx, stage, m); err != nil {
			b.Fatal(err)
		}
		return m, checkpoint, time.Since(start) - checkpoint
	}

	var (
		fullCkpt, fullUp, incrCkpt, incrUp, update, restore time.Duration
		full, incr                                          *backup.Manifest
	)
	for b.Loop() {
		destDir := filepath.Join(dir, "dest")
		d, err := backup.Open(ctx, destDir)
		if err != nil {
			b.Fatal(err)
		}
		m, c, u := backupTo(d)
		full, fullCkpt, fullUp = m, fullCkpt+c, fullUp+u

		// 1% of the entities, spread over the key space, get an event.
		start := time.Now()
		push(0, entities, 100)
		update += time.Since(start)
		m, c, u = backupTo(d)
		incr, incrCkpt, incrUp = m, incrCkpt+c, incrUp+u
		if incr.UploadedBytes >= full.UploadedBytes {
			b.Fatalf("incremental backup uploaded %d bytes, the full one %d", incr.UploadedBytes, full.UploadedBytes)
		}

		out := filepath.Join(dir, "restored")
		start = time.Now()
		rm, err := d.Restore(ctx, "", out)
		if err != nil {
			b.Fatal(err)
		}
		restore += time.Since(start)
		if rm.ID != incr.ID {
			b.Fatalf("restored %s, want the newest, %s", rm.ID, incr.ID)
		}
		if err := checkDataDir(dataDirLayout(out), 2); err != nil {
			b.Fatalf("the restored data dir fails its checks: %v", err)
		}
		if err := d.Close(); err != nil {
			b.Fatal(err)
		}
		if err := os.RemoveAll(destDir); err != nil {
			b.Fatal(err)
		}
		if err := os.RemoveAll(out); err != nil {
			b.Fatal(err)
		}
	}
	n := float64(b.N)
	b.ReportMetric(populate.Seconds(), "populate-s")
	b.ReportMetric(fullCkpt.Seconds()/n, "full-checkpoint-s")
	b.ReportMetric(fullUp.Seconds()/n, "full-upload-s")
	b.ReportMetric(float64(full.Bytes), "full-B")
	b.ReportMetric(float64(full.UploadedBytes), "full-uploaded-B")
	b.ReportMetric(float64(full.UploadedFiles), "full-uploaded-files")
	b.ReportMetric(update.Seconds()/n, "update1pct-s")
	b.ReportMetric(incrCkpt.Seconds()/n, "incr-checkpoint-s")
	b.ReportMetric(incrUp.Seconds()/n, "incr-upload-s")
	b.ReportMetric(float64(incr.Bytes), "incr-B")
	b.ReportMetric(float64(incr.UploadedBytes), "incr-uploaded-B")
	b.ReportMetric(float64(incr.UploadedFiles), "incr-uploaded-files")
	b.ReportMetric(float64(len(incr.Files)), "incr-files")
	b.ReportMetric(float64(incr.UploadedBytes)/float64(full.UploadedBytes), "incr/full-B")
	b.ReportMetric(restore.Seconds()/n, "restore-s")
}
