package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/featured-dev/featured/backup"
	"github.com/featured-dev/featured/featurestore"
	"github.com/featured-dev/featured/offline/eventlog"
	"github.com/featured-dev/featured/registry"
	"github.com/featured-dev/featured/serving"
)

// stagingPrefix names the checkpoint directories under the data dir: on
// the store's file system, so Pebble hard-links the sstables rather than
// copying them. A crash leaves one behind; serve deletes them at start.
const stagingPrefix = ".backup-"

// backuper takes the server's backups, one at a time: a destination takes
// one writer (backup.Dest's Prune would delete a concurrent backup's
// files).
type backuper struct {
	dataDir string
	store   *featurestore.Store
	reg     *registry.Registry
	olog    *eventlog.Log
	log     *slog.Logger
	mu      sync.Mutex
}

// run takes a consistent backup to dest and, when keep > 0, deletes all
// but the newest keep backups there.
//
// Every shard's writer pauses at one commit point (Store.Checkpoint); while
// they are paused the registry (under its lock) and the offline log (its
// WAL up to the committed positions, its sealed Parquet files) are copied
// beside the checkpoints. The upload runs after the writers resumed.
func (b *backuper) run(ctx context.Context, dest string, keep int) (*backup.Manifest, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	d, err := backup.Open(ctx, dest)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	start := time.Now()
	stage := filepath.Join(b.dataDir, stagingPrefix+strconv.FormatInt(start.UnixNano(), 10))
	defer os.RemoveAll(stage)
	paths := dataDirLayout(stage)
	info, err := b.store.Checkpoint(ctx, paths.store, func() error {
		if err := b.reg.CopyTo(paths.registry); err != nil {
			return err
		}
		return b.olog.CopyTo(paths.offline)
	})
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	paused := time.Since(start)
	m := &backup.Manifest{Time: start, Store: info}
	if err := d.Upload(ctx, stage, m); err != nil {
		return nil, err
	}
	b.log.Info("backup done", "id", m.ID, "files", len(m.Files), "bytes", m.Bytes,
		"uploaded_files", m.UploadedFiles, "uploaded_bytes", m.UploadedBytes,
		"checkpoint", paused, "took", time.Since(start))
	if keep > 0 {
		n, err := d.Prune(ctx, keep)
		if err != nil {
			return m, fmt.Errorf("backup %s done; retention: %w", m.ID, err)
		}
		if n > 0 {
			b.log.Info("backup retention", "deleted_backups", n, "keep", keep)
		}
	}
	return m, nil
}

// handler serves POST /v1/backup[?dest=URL]: the backup's manifest as
// JSON. Without dest it backs up to --backup-dest.
func (b *backuper) handler(defaultDest string, keep int) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		dest := r.URL.Query().Get("dest")
		k := 0
		if dest == "" {
			dest, k = defaultDest, keep
		}
		if dest == "" {
			return fmt.Errorf("%w: no destination: give ?dest= or start the server with --backup-dest", serving.ErrBadRequest)
		}
		m, err := b.run(r.Context(), dest, k)
		if err != nil {
			return err
		}
		w.Header().Set("Content-Type", "application/json")
		return json.NewEncoder(w).Encode(m)
	}
}

// schedule backs up to dest every interval until ctx ends. A failed backup
// is logged and tried again at the next tick.
func (b *backuper) schedule(ctx context.Context, dest string, interval time.Duration, keep int) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := b.run(ctx, dest, keep); err != nil && ctx.Err() == nil {
				b.log.Error("scheduled backup failed; trying again at the next interval", "dest", redactURL(dest), "err", err)
			}
		}
	}
}

// removeStaging deletes checkpoint directories a crash left in dataDir.
func removeStaging(dataDir string) error {
	ents, err := os.ReadDir(dataDir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	for _, e := range ents {
		if e.IsDir() && strings.HasPrefix(e.Name(), stagingPrefix) {
			if err := os.RemoveAll(filepath.Join(dataDir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// redactURL drops a URL's user info and query (which may carry keys) for
// logs.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		return s
	}
	u.User, u.RawQuery = nil, ""
	return u.String()
}

// backupCmd is `featured backup --server URL [DEST]` and `featured backup
// list DEST`.
func backupCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "list" {
		return backupListCmd(ctx, args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := clientFlags(fs)
	timeout := timeoutFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var dests []string
	// Flags may follow DEST too.
	for fs.NArg() > 0 {
		dests = append(dests, fs.Arg(0))
		if err := fs.Parse(fs.Args()[1:]); err != nil {
			return err
		}
	}
	if len(dests) > 1 {
		return errors.New("backup: at most one DEST (a directory, file:///path or s3://bucket/prefix)")
	}
	path := "/v1/backup"
	if len(dests) == 1 {
		dest := dests[0]
		if u, err := url.Parse(dest); err == nil && u.Scheme == "" {
			// A directory names the server's file system: make it
			// absolute here so it means what the caller's shell meant
			// when both run on one machine.
			if abs, err := filepath.Abs(dest); err == nil {
				dest = abs
			}
		}
		path += "?dest=" + url.QueryEscape(dest)
	}
	c := newClient(server, *timeout)
	body, err := c.do(ctx, http.MethodPost, path, "", nil)
	if err != nil {
		return err
	}
	var m backup.Manifest
	if err := json.Unmarshal(body, &m); err != nil {
		return fmt.Errorf("backup: decode the server's manifest: %w", err)
	}
	fmt.Fprintf(stdout, "backup %s: %d files, %d bytes, %d files (%d bytes) uploaded\n", m.ID, len(m.Files), m.Bytes, m.UploadedFiles, m.UploadedBytes)
	return nil
}

func backupListCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("backup list", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print the manifests as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("backup list: give one DEST")
	}
	d, err := backup.Open(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	defer d.Close()
	all, err := d.List(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(all)
	}
	fmt.Fprintf(stdout, "%-24s  %-25s  %6s  %12s  %12s\n", "ID", "TIME", "FILES", "BYTES", "UPLOADED")
	for _, m := range all {
		fmt.Fprintf(stdout, "%-24s  %-25s  %6d  %12d  %12d\n", m.ID, m.Time.UTC().Format(time.RFC3339), len(m.Files), m.Bytes, m.UploadedBytes)
	}
	return nil
}

// restoreCmd is `featured restore --data-dir DIR [--backup ID] SRC`.
func restoreCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", "", "the data dir to restore into; it must be empty or absent")
	id := fs.String("backup", "", "the backup to restore (an ID from `featured backup list`; default the newest)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dataDir == "" || fs.NArg() != 1 {
		return errors.New("restore: give --data-dir DIR and one SRC (a directory, file:///path or s3://bucket/prefix)")
	}
	d, err := backup.Open(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	defer d.Close()
	m, err := d.Restore(ctx, *id, *dataDir)
	if err != nil {
		return err
	}
	partitions := 0
	if m.Store != nil {
		partitions = len(m.Store.Partitions)
	}
	if err := checkDataDir(dataDirLayout(*dataDir), partitions); err != nil {
		return fmt.Errorf("restore: the restored data dir fails its checks: %w", err)
	}
	fmt.Fprintf(stdout, "restored backup %s (%d files, %d bytes, %d partitions) into %s; start it with featured serve --data-dir %s --partitions %d\n",
		m.ID, len(m.Files), m.Bytes, partitions, *dataDir, *dataDir, partitions)
	return nil
}
