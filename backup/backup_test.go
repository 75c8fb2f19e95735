package backup

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func checkTree(t *testing.T, dir string, want map[string]string) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		rel, _ := filepath.Rel(dir, p)
		got, _ := os.ReadFile(p)
		if w, ok := want[filepath.ToSlash(rel)]; !ok || !bytes.Equal(got, []byte(w)) {
			t.Errorf("%s: got %q, want %q (listed %v)", rel, got, w, ok)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != len(want) {
		t.Errorf("restored %d files, want %d", n, len(want))
	}
}

// testDest runs the destination-independent checks on dest: incremental
// uploads, list, restore (refusing a non-empty dir, detecting a damaged
// object) and prune.
func testDest(t *testing.T, dest string, damage func(sum string)) {
	ctx := context.Background()
	d, err := Open(ctx, dest)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	src := t.TempDir()
	first := map[string]string{"registry.json": "{}", "store/p-0000/000001.sst": "sst one", "store/p-0000/MANIFEST-000001": "m1"}
	writeTree(t, src, first)
	m1 := &Manifest{Time: time.Unix(1000, 0)}
	if err := d.Upload(ctx, src, m1); err != nil {
		t.Fatal(err)
	}
	if m1.UploadedFiles != 3 || m1.UploadedBytes != m1.Bytes {
		t.Fatalf("first backup uploaded %d files, %d of %d bytes; want all", m1.UploadedFiles, m1.UploadedBytes, m1.Bytes)
	}
	second := map[string]string{"registry.json": "{}", "store/p-0000/000001.sst": "sst one", "store/p-0000/000002.sst": "sst two", "store/p-0000/MANIFEST-000001": "m2"}
	writeTree(t, src, second)
	m2 := &Manifest{Time: time.Unix(2000, 0)}
	if err := d.Upload(ctx, src, m2); err != nil {
		t.Fatal(err)
	}
	if want := int64(len("sst two") + len("m2")); m2.UploadedFiles != 2 || m2.UploadedBytes != want {
		t.Fatalf("incremental backup uploaded %d files, %d bytes; want 2 files (the new sstable and the MANIFEST), %d bytes", m2.UploadedFiles, m2.UploadedBytes, want)
	}
	list, err := d.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != m1.ID || list[1].ID != m2.ID {
		t.Fatalf("List: %+v, want %s then %s", list, m1.ID, m2.ID)
	}

	out := filepath.Join(t.TempDir(), "restored")
	if _, err := d.Restore(ctx, m1.ID, out); err != nil {
		t.Fatal(err)
	}
	checkTree(t, out, first)
	if _, err := d.Restore(ctx, "", out); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("restore into a non-empty dir: %v, want ErrNotEmpty", err)
	}
	out2 := t.TempDir()
	if _, err := d.Restore(ctx, "", out2); err != nil {
		t.Fatal(err)
	}
	checkTree(t, out2, second)
	if _, err := d.Restore(ctx, "nope", t.TempDir()); !errors.Is(err, ErrNoBackup) {
		t.Fatalf("restore of an unknown backup: %v, want ErrNoBackup", err)
	}

	if n, err := d.Prune(ctx, 1); err != nil || n != 1 {
		t.Fatalf("Prune(1) = %d, %v; want 1 deleted", n, err)
	}
	have, err := d.objects(ctx, "data/")
	if err != nil {
		t.Fatal(err)
	}
	if len(have) != 4 { // {}, sst one, sst two, m2; m1 is gone
		t.Fatalf("after prune %d data objects, want 4: %v", len(have), have)
	}
	out3 := t.TempDir()
	if _, err := d.Restore(ctx, "", out3); err != nil {
		t.Fatal(err)
	}
	checkTree(t, out3, second)

	if damage != nil {
		for _, f := range m2.Files {
			if f.Path == "store/p-0000/000002.sst" {
				damage(f.SHA256)
			}
		}
		if _, err := d.Restore(ctx, "", t.TempDir()); !errors.Is(err, ErrMismatch) {
			t.Fatalf("restore of a damaged object: %v, want ErrMismatch", err)
		}
	}
}

func TestDir(t *testing.T) {
	dir := t.TempDir()
	testDest(t, "file://"+dir, func(sum string) {
		if err := os.WriteFile(filepath.Join(dir, "data", sum[:2], sum), []byte("sst 2wo"), 0o644); err != nil {
			t.Fatal(err)
		}
	})
}

func TestPlainPath(t *testing.T) {
	testDest(t, filepath.Join(t.TempDir(), "new", "dir"), nil)
}

// TestS3 runs the same checks against the S3-compatible server that
// scripts/objectstore.sh starts (FEATURED_S3_ENDPOINT).
func TestS3(t *testing.T) {
	ep := os.Getenv("FEATURED_S3_ENDPOINT")
	if ep == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("FEATURED_S3_ENDPOINT is not set: scripts/test.sh starts the object store (scripts/objectstore.sh)")
		}
		t.Skip("FEATURED_S3_ENDPOINT not set; start scripts/objectstore.sh and eval its env")
	}
	testDest(t, "s3://featured-test/unit-"+time.Now().Format("20060102T150405.000")+"?endpoint="+ep+"&use_path_style=true&region=us-east-1", nil)
}

// TestUploadSkipsKnownSSTables checks which files an upload trusts without
// reading: an sstable the newest backup names with the same path, size and
// modification time keeps that backup's hash even when its bytes differ
// (the proof that it was not read); a new modification time, a new size or
// a file that is no sstable is hashed again.
func TestUploadSkipsKnownSSTables(t *testing.T) {
	ctx := context.Background()
	d, err := Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	src := t.TempDir()
	writeTree(t, src, map[string]string{
		"s/000001.sst": "aaaa", "s/000002.sst": "bbbb", "s/000003.sst": "cccc", "s/MANIFEST-000001": "mmmm",
	})
	m1 := &Manifest{Time: time.Unix(1000, 0)}
	if err := d.Upload(ctx, src, m1); err != nil {
		t.Fatal(err)
	}
	first := map[string]File{}
	for _, f := range m1.Files {
		first[f.Path] = f
		if (f.ModTimeNanos != 0) != strings.HasSuffix(f.Path, ".sst") {
			t.Fatalf("%s: mtime_ns %d; want it set for sstables only", f.Path, f.ModTimeNanos)
		}
	}
	// Same sizes, other bytes: 000001 keeps its time, 000002 gets a new
	// one, 000003 grows; the MANIFEST keeps its time.
	overwrite := func(p, content string, keepTime bool) {
		t.Helper()
		full := filepath.Join(src, filepath.FromSlash(p))
		fi, err := os.Stat(full)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		mtime := fi.ModTime().Add(time.Second)
		if keepTime {
			mtime = fi.ModTime()
		}
		if err := os.Chtimes(full, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	overwrite("s/000001.sst", "AAAA", true)
	overwrite("s/000002.sst", "BBBB", false)
	overwrite("s/000003.sst", "CCCCC", true)
	overwrite("s/MANIFEST-000001", "MMMM", true)
	m2 := &Manifest{Time: time.Unix(2000, 0)}
	if err := d.Upload(ctx, src, m2); err != nil {
		t.Fatal(err)
	}
	trusted := map[string]bool{"s/000001.sst": true}
	for _, f := range m2.Files {
		if same := f.SHA256 == first[f.Path].SHA256; same != trusted[f.Path] {
			t.Errorf("%s: hash kept from the first backup: %v, want %v", f.Path, same, trusted[f.Path])
		}
	}
	if m2.UploadedFiles != 3 {
		t.Errorf("second backup uploaded %d files, want 3 (all but the trusted sstable)", m2.UploadedFiles)
	}
}

// TestPartitionDest: each partition's checkpoints are a destination of
// their own under partitions/p-NNNN/, incremental, pruned and downloaded
// on their own.
func TestPartitionDest(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	for _, c := range []struct{ dest, want string }{
		{root, filepath.Join(root, "partitions", "p-0007")},
		{"s3://bkt/pre?endpoint=http://x", "s3://bkt/pre/partitions/p-0007?endpoint=http://x"},
		{"s3://bkt?region=r", "s3://bkt/partitions/p-0007?region=r"},
	} {
		if got := PartitionDest(c.dest, 7); got != c.want {
			t.Errorf("PartitionDest(%q, 7) = %q, want %q", c.dest, got, c.want)
		}
	}
	d, err := OpenPartition(ctx, root, 7)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	src := t.TempDir()
	writeTree(t, src, map[string]string{"000001.sst": "one", "MANIFEST-000001": "m1"})
	if err := d.Upload(ctx, src, &Manifest{Time: time.Unix(1000, 0)}); err != nil {
		t.Fatal(err)
	}
	last := map[string]string{"000001.sst": "one", "000002.sst": "two", "MANIFEST-000001": "m2"}
	writeTree(t, src, last)
	m2 := &Manifest{Time: time.Unix(2000, 0)}
	if err := d.Upload(ctx, src, m2); err != nil {
		t.Fatal(err)
	}
	if m2.UploadedFiles != 2 {
		t.Fatalf("second checkpoint uploaded %d files, want 2 (the first sstable is there)", m2.UploadedFiles)
	}
	if n, err := d.Prune(ctx, 1); err != nil || n != 1 {
		t.Fatalf("prune: %d, %v; want 1 deleted", n, err)
	}
	m, dir, err := d.Download(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if m.ID != m2.ID {
		t.Fatalf("downloaded %s, want the newest %s", m.ID, m2.ID)
	}
	checkTree(t, dir, last)
	if _, err := os.Stat(filepath.Join(root, "partitions", "p-0007", "manifests")); err != nil {
		t.Fatalf("layout: %v", err)
	}
	empty, err := OpenPartition(ctx, root, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer empty.Close()
	if _, _, err := empty.Download(ctx, t.TempDir()); !errors.Is(err, ErrNoBackup) {
		t.Fatalf("download of a partition with no checkpoint: %v, want ErrNoBackup", err)
	}
}
