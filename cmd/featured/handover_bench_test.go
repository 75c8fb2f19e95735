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
	"github.com/featured-dev/featured/registry"
)

// BenchmarkHandover measures a partition's hand-over (issue 14) at three
// state sizes: a store of one partition holding N entities of
// examples/defs.yaml's user_spend (one pushed event each), checkpointed
// (Store.CheckpointPartition), uploaded to --checkpoint-dest's layout
// (the test object store when FEATURED_S3_ENDPOINT is set, else a
// directory), downloaded and loaded into another store's empty partition
// (Store.LoadPartition). "replay-s" is the alternative's floor: applying
// the same events into an empty store through the push path, without
// Kafka's fetch and decode. Run one at a time:
// go test -run '^$' -bench 'BenchmarkHandover/100k' -benchtime 1x ./cmd/featured/
// (docs/benchmarks.md, "Hand-over time per partition").
func BenchmarkHandover(b *testing.B) {
	for _, n := range []struct {
		name     string
		entities int
	}{{"10k", 10_000}, {"100k", 100_000}, {"1M", 1_000_000}} {
		b.Run(n.name, func(b *testing.B) { benchHandover(b, n.entities) })
	}
}

// handoverStore opens a one-partition store with the example definitions
// under dir, and a pusher into it.
func handoverStore(b *testing.B, dir string, log *slog.Logger) (*featurestore.Store, *ingest.Pusher) {
	paths := dataDirLayout(dir)
	reg, err := registry.Open(paths.registry)
	if err != nil {
		b.Fatal(err)
	}
	store, err := featurestore.Open(paths.store, featurestore.Options{Partitions: 1, Views: (&liveViews{reg: reg}).lookup, Layouts: layoutsOf(reg), Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	if err := applyAtStartup(reg, filepath.Join("..", "..", "examples", "defs.yaml"), log); err != nil {
		b.Fatal(err)
	}
	pusher, err := ingest.NewPusher(reg, store, ingest.Options{MaxBatch: 5000, Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	return store, pusher
}

func benchHandover(b *testing.B, entities int) {
	ctx := context.Background()
	dir := b.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	src, pusher := handoverStore(b, filepath.Join(dir, "src"), log)
	now := time.Now().UnixMilli()
	evs := make([]map[string]aggregate.Value, 0, 5000)
	start := time.Now()
	for i := 0; i < entities; i++ {
		evs = append(evs, map[string]aggregate.Value{
			"user_id":  {Kind: aggregate.KindString, S: fmt.Sprintf("u%07d", i)},
			"ts":       {Kind: aggregate.KindInt64, I: now - int64(i%3600)*1000},
			"amount":   {Kind: aggregate.KindFloat64, F: float64(i%997) + 0.5},
			"merchant": {Kind: aggregate.KindString, S: "m" + strconv.Itoa(i%1000)},
			"items":    {Kind: aggregate.KindInt64, I: int64(1 + i%5)},
		})
		if len(evs) == cap(evs) || i == entities-1 {
			if _, err := pusher.PushValues(ctx, "transactions", evs, ingest.PushOptions{}); err != nil {
				b.Fatal(err)
			}
			evs = evs[:0]
		}
	}
	if err := src.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	replay := time.Since(start)
	dest := os.Getenv("FEATURED_S3_ENDPOINT")
	if dest != "" {
		dest = "s3://featured-test/bench-handover-" + strconv.FormatInt(time.Now().UnixNano(), 10) + "?endpoint=" + dest + "&use_path_style=true&region=us-east-1"
	} else {
		dest = filepath.Join(dir, "dest")
	}
	var ckpt, upload, download, load time.Duration
	var m *backup.Manifest
	var st featurestore.LoadStats
	for i := 0; b.Loop(); i++ {
		stage := filepath.Join(dir, "src", fmt.Sprintf("%sbench-%d", stagingPrefix, i))
		start := time.Now()
		pc, err := src.CheckpointPartition(ctx, 0, stage)
		if err != nil {
			b.Fatal(err)
		}
		ckpt += time.Since(start)
		d, err := backup.OpenPartition(ctx, dest, 0)
		if err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		m = &backup.Manifest{Time: start, Store: &featurestore.CheckpointInfo{Partitions: []featurestore.PartitionCheckpoint{*pc}}}
		if err := d.Upload(ctx, stage, m); err != nil {
			b.Fatal(err)
		}
		upload += time.Since(start)
		start = time.Now()
		_, got, err := d.Download(ctx, dir)
		if err != nil {
			b.Fatal(err)
		}
		download += time.Since(start)
		dst, _ := handoverStore(b, filepath.Join(dir, fmt.Sprintf("dst-%d", i)), log)
		start = time.Now()
		if st, err = dst.LoadPartition(ctx, 0, got); err != nil {
			b.Fatal(err)
		}
		load += time.Since(start)
		d.Close()
		os.RemoveAll(stage)
		os.RemoveAll(got)
	}
	n := float64(b.N)
	b.ReportMetric(float64(m.Bytes), "checkpoint-B")
	b.ReportMetric(float64(st.Keys), "keys")
	b.ReportMetric(ckpt.Seconds()/n, "checkpoint-s")
	b.ReportMetric(upload.Seconds()/n, "upload-s")
	b.ReportMetric(download.Seconds()/n, "download-s")
	b.ReportMetric(load.Seconds()/n, "load-s")
	b.ReportMetric((ckpt+upload+download+load).Seconds()/n, "handover-s")
	b.ReportMetric(replay.Seconds(), "replay-s")
}
