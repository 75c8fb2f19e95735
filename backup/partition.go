package backup

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
)

// OpenPartition opens partition p's checkpoint destination inside dest
// (as Open takes it): <dest>/partitions/p-NNNN/, with the layout of a whole
// backup (manifests/, data/). A partition's files are content-addressed
// among its own checkpoints only: sstables of two partitions never share
// contents, so nothing is lost, and Prune of one partition never looks at
// another's.
//
// As for a whole destination, one writer at a time: the partition's
// active (cluster/replicas) uploads and prunes it.
func OpenPartition(ctx context.Context, dest string, p int) (*Dest, error) {
	return Open(ctx, PartitionDest(dest, p))
}

// PartitionDest is the destination OpenPartition opens.
func PartitionDest(dest string, p int) string {
	sub := fmt.Sprintf("partitions/p-%04d", p)
	u, err := url.Parse(dest)
	if err != nil || u.Scheme == "" {
		return filepath.Join(dest, filepath.FromSlash(sub))
	}
	u.Path = path.Join("/", u.Path, sub)
	return u.String()
}

// Download lays the newest backup at d into a new temporary directory
// under tmp ("" for the system's), returning its manifest and the
// directory, which the caller removes. It is ErrNoBackup when d holds none.
func (d *Dest) Download(ctx context.Context, tmp string) (*Manifest, string, error) {
	dir, err := os.MkdirTemp(tmp, "checkpoint-")
	if err != nil {
		return nil, "", fmt.Errorf("backup: download: %w", err)
	}
	m, err := d.Restore(ctx, "", dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, "", err
	}
	return m, dir, nil
}
