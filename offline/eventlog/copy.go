package eventlog

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// CopyTo writes a copy of the log to dst (created; it must not hold a log):
// the WAL segments and markers of every shard, copied byte for byte, and
// the sealed Parquet files, hard-linked where dst is on the log's file
// system (they are never rewritten) and copied otherwise. Temporary files
// of a conversion in progress are left out.
//
// The caller's duty: no shard may commit while CopyTo runs (a backup calls
// it from featurestore.Store.Checkpoint's during, with every writer
// paused), so each WAL ends at the position its shard committed. The
// converter and retention are held off meanwhile, so a segment is either
// still in the WAL or already in its Parquet files, never in neither.
func (l *Log) CopyTo(dst string) error {
	l.files.RLock()
	defer l.files.RUnlock()
	err := filepath.WalkDir(l.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(l.dir, path)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		if strings.HasSuffix(d.Name(), ".tmp") || !d.Type().IsRegular() {
			return nil
		}
		if rel != walDir && !strings.HasPrefix(rel, walDir+string(filepath.Separator)) {
			if err := os.Link(path, to); err == nil {
				return nil
			}
		}
		return copyFile(path, to)
	})
	if err != nil {
		return fmt.Errorf("offline: copy log to %s: %w", dst, err)
	}
	return nil
}

func copyFile(from, to string) (err error) {
	src, err := os.Open(from)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // deleted meanwhile: a damaged file set aside
		}
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := dst.Close(); err == nil {
			err = cerr
		}
	}()
	_, err = io.Copy(dst, src)
	return err
}
