package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	_ "gocloud.dev/blob/s3blob" // s3:// URLs

	"github.com/featured-dev/featured/featurestore"
)

// ErrNotEmpty is Restore's refusal of a data dir that holds anything.
var ErrNotEmpty = errors.New("backup: data dir is not empty")

// ErrNoBackup is a destination without the backup asked for (or any).
var ErrNoBackup = errors.New("backup: no such backup")

// ErrMismatch is a downloaded file whose size or SHA-256 is not the
// manifest's.
var ErrMismatch = errors.New("backup: file does not match its manifest")

// Manifest names what one backup holds.
type Manifest struct {
	ID   string    `json:"id"`
	Time time.Time `json:"time"`
	// Store is the commit point of every partition: the Kafka offsets and
	// offline log position the backup's state holds. A server started on
	// the restored data dir resumes Kafka from these offsets. A manifest
	// of the layout before partitions has "shards" instead; its restored
	// data dir is refused until featured migrate-store converts it.
	Store *featurestore.CheckpointInfo `json:"store"`
	Files []File                       `json:"files"`
	// Bytes is the size of every file; UploadedBytes and UploadedFiles
	// what this backup had to upload (the rest the destination held).
	Bytes         int64 `json:"bytes"`
	UploadedBytes int64 `json:"uploaded_bytes"`
	UploadedFiles int   `json:"uploaded_files"`
}

// File is one file of a backup: its path in the data dir (slash
// separated), size and content hash, which names its object.
type File struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// ModTimeNanos is an sstable's modification time (Unix nanoseconds),
	// which lets the next backup trust SHA256 without reading the file
	// (see Upload); 0 for other files.
	ModTimeNanos int64 `json:"mtime_ns,omitempty"`
}

func dataKey(sum string) string { return "data/" + sum[:2] + "/" + sum }

const manifestDir = "manifests/"

// Dest is an open backup destination.
type Dest struct {
	b *blob.Bucket
}

// Open opens a destination: a directory path, file:///path, or
// s3://bucket/prefix?endpoint=...&use_path_style=true&region=... (S3
// credentials from the AWS environment: AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY, AWS_REGION). A directory is created if absent.
func Open(ctx context.Context, dest string) (*Dest, error) {
	u, err := url.Parse(dest)
	if err != nil || u.Scheme == "" {
		return openDir(dest)
	}
	switch u.Scheme {
	case "file":
		return openDir(u.Path)
	case "s3":
		prefix := strings.Trim(u.Path, "/")
		u.Path = ""
		b, err := blob.OpenBucket(ctx, u.String())
		if err != nil {
			return nil, fmt.Errorf("backup: open %s: %w", dest, err)
		}
		if prefix != "" {
			b = blob.PrefixedBucket(b, prefix+"/")
		}
		return &Dest{b: b}, nil
	}
	return nil, fmt.Errorf("backup: open %s: unsupported scheme %q (a directory, file:// or s3://)", dest, u.Scheme)
}

func openDir(dir string) (*Dest, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("backup: create %s: %w", dir, err)
	}
	b, err := fileblob.OpenBucket(dir, &fileblob.Options{Metadata: fileblob.MetadataDontWrite})
	if err != nil {
		return nil, fmt.Errorf("backup: open %s: %w", dir, err)
	}
	return &Dest{b: b}, nil
}

// Close closes the destination.
func (d *Dest) Close() error { return d.b.Close() }

// uploaders is how many files Upload sends at once.
const uploaders = 4

// Upload copies every file under dir (a data dir laid out by a checkpoint)
// that the destination lacks and then writes m, filled with the files, as
// the backup's manifest. m.ID defaults to m.Time in UTC to the millisecond.
//
// Every file is hashed but the sstables the newest backup at the
// destination already names with the same path, size and modification
// time: Pebble never rewrites an sstable and never reuses its number, and
// a checkpoint hard-links it, so those three name its contents. Without
// this an incremental backup would read the whole store to upload its
// newest part.
func (d *Dest) Upload(ctx context.Context, dir string, m *Manifest) error {
	if m.Time.IsZero() {
		m.Time = time.Now()
	}
	if m.ID == "" {
		m.ID = m.Time.UTC().Format("20060102T150405.000Z")
	}
	have, err := d.objects(ctx, "data/")
	if err != nil {
		return err
	}
	known, err := d.knownSSTables(ctx, have)
	if err != nil {
		return err
	}
	var paths []string
	err = filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil || !de.Type().IsRegular() {
			return err
		}
		paths = append(paths, p)
		return nil
	})
	if err != nil {
		return fmt.Errorf("backup: list %s: %w", dir, err)
	}
	m.Files = make([]File, len(paths))
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		next = make(chan int)
	)
	for range uploaders {
		wg.Go(func() {
			for i := range next {
				rel, _ := filepath.Rel(dir, paths[i])
				f, up, err := d.put(ctx, paths[i], filepath.ToSlash(rel), have, known)
				f.Path = filepath.ToSlash(rel)
				mu.Lock()
				m.Files[i] = f
				if err != nil {
					errs = append(errs, fmt.Errorf("backup: upload %s: %w", rel, err))
				} else if up {
					m.UploadedBytes += f.Size
					m.UploadedFiles++
				}
				mu.Unlock()
			}
		})
	}
	for i := range paths {
		next <- i
	}
	close(next)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, f := range m.Files {
		m.Bytes += f.Size
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("backup: encode manifest: %w", err)
	}
	if err := d.b.WriteAll(ctx, manifestDir+m.ID+".json", data, &blob.WriterOptions{ContentType: "application/json"}); err != nil {
		return fmt.Errorf("backup: write manifest %s: %w", m.ID, err)
	}
	return nil
}

// knownSSTables returns the sstables of the newest backup at the
// destination whose objects have holds, by path.
func (d *Dest) knownSSTables(ctx context.Context, have map[string]bool) (map[string]File, error) {
	keys, err := d.objects(ctx, manifestDir)
	if err != nil {
		return nil, err
	}
	newest := ""
	for k := range keys {
		// IDs sort as their times do (Upload's default ID).
		if strings.HasSuffix(k, ".json") && k > newest {
			newest = k
		}
	}
	known := map[string]File{}
	if newest == "" {
		return known, nil
	}
	m, err := d.manifest(ctx, newest)
	if err != nil {
		return nil, err
	}
	for _, f := range m.Files {
		if f.ModTimeNanos != 0 && isSSTable(f.Path) && have[dataKey(f.SHA256)] {
			known[f.Path] = f
		}
	}
	return known, nil
}

func isSSTable(p string) bool { return strings.HasSuffix(p, ".sst") }

// put hashes the file at p (rel in the backup) and uploads it unless have
// holds its object. An sstable known names with the same size and
// modification time is neither read nor uploaded.
func (d *Dest) put(ctx context.Context, p, rel string, have map[string]bool, known map[string]File) (File, bool, error) {
	f, err := os.Open(p)
	if err != nil {
		return File{}, false, err
	}
	defer f.Close()
	var mtime int64
	if isSSTable(rel) {
		fi, err := f.Stat()
		if err != nil {
			return File{}, false, err
		}
		mtime = fi.ModTime().UnixNano()
		if k, ok := known[rel]; ok && k.Size == fi.Size() && k.ModTimeNanos == mtime {
			return k, false, nil
		}
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return File{}, false, err
	}
	out := File{Size: n, SHA256: hex.EncodeToString(h.Sum(nil)), ModTimeNanos: mtime}
	key := dataKey(out.SHA256)
	if have[key] {
		return out, false, nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return out, false, err
	}
	w, err := d.b.NewWriter(ctx, key, &blob.WriterOptions{ContentType: "application/octet-stream"})
	if err != nil {
		return out, false, err
	}
	if _, err := io.Copy(w, io.LimitReader(f, n)); err != nil {
		w.Close()
		return out, false, err
	}
	if err := w.Close(); err != nil {
		return out, false, err
	}
	return out, true, nil
}

// objects lists the keys under prefix.
func (d *Dest) objects(ctx context.Context, prefix string) (map[string]bool, error) {
	out := map[string]bool{}
	it := d.b.List(&blob.ListOptions{Prefix: prefix})
	for {
		o, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("backup: list %s: %w", prefix, err)
		}
		out[o.Key] = true
	}
}

// List returns the destination's backups, oldest first.
func (d *Dest) List(ctx context.Context) ([]*Manifest, error) {
	keys, err := d.objects(ctx, manifestDir)
	if err != nil {
		return nil, err
	}
	var out []*Manifest
	for k := range keys {
		if !strings.HasSuffix(k, ".json") {
			continue
		}
		m, err := d.manifest(ctx, k)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b *Manifest) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

func (d *Dest) manifest(ctx context.Context, key string) (*Manifest, error) {
	data, err := d.b.ReadAll(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("backup: read %s: %w", key, err)
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("backup: decode %s: %w", key, err)
	}
	return &m, nil
}

// Restore lays backup id (the newest when empty) into dataDir, which must
// be empty or absent, checking every file's size and SHA-256.
func (d *Dest) Restore(ctx context.Context, id, dataDir string) (*Manifest, error) {
	if ents, err := os.ReadDir(dataDir); err == nil && len(ents) > 0 {
		return nil, fmt.Errorf("%w: %s holds %s", ErrNotEmpty, dataDir, ents[0].Name())
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("backup: restore: %w", err)
	}
	var m *Manifest
	if id == "" {
		all, err := d.List(ctx)
		if err != nil {
			return nil, err
		}
		if len(all) == 0 {
			return nil, ErrNoBackup
		}
		m = all[len(all)-1]
	} else {
		var err error
		if m, err = d.manifest(ctx, manifestDir+id+".json"); err != nil {
			if ok, _ := d.b.Exists(ctx, manifestDir+id+".json"); !ok {
				return nil, fmt.Errorf("%w: %s", ErrNoBackup, id)
			}
			return nil, err
		}
	}
	for _, f := range m.Files {
		if err := d.get(ctx, f, dataDir); err != nil {
			return nil, fmt.Errorf("backup: restore %s: %w", f.Path, err)
		}
	}
	return m, nil
}

func (d *Dest) get(ctx context.Context, f File, dataDir string) error {
	clean := path.Clean(f.Path)
	if path.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") {
		return fmt.Errorf("%w: path outside the data dir", ErrMismatch)
	}
	to := filepath.Join(dataDir, filepath.FromSlash(clean))
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	r, err := d.b.NewReader(ctx, dataKey(f.SHA256), nil)
	if err != nil {
		return err
	}
	defer r.Close()
	w, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), r)
	if err == nil {
		err = w.Sync()
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if n != f.Size || hex.EncodeToString(h.Sum(nil)) != f.SHA256 {
		return fmt.Errorf("%w: %d bytes, sha256 %x; manifest: %d bytes, %s", ErrMismatch, n, h.Sum(nil), f.Size, f.SHA256)
	}
	return nil
}

// Prune deletes all but the newest keep backups, then every data object
// that no remaining manifest names. keep < 1 keeps everything.
func (d *Dest) Prune(ctx context.Context, keep int) (deleted int, err error) {
	if keep < 1 {
		return 0, nil
	}
	all, err := d.List(ctx)
	if err != nil {
		return 0, err
	}
	if len(all) <= keep {
		return 0, nil
	}
	for _, m := range all[:len(all)-keep] {
		if err := d.b.Delete(ctx, manifestDir+m.ID+".json"); err != nil {
			return deleted, fmt.Errorf("backup: delete manifest %s: %w", m.ID, err)
		}
		deleted++
	}
	used := map[string]bool{}
	for _, m := range all[len(all)-keep:] {
		for _, f := range m.Files {
			used[dataKey(f.SHA256)] = true
		}
	}
	have, err := d.objects(ctx, "data/")
	if err != nil {
		return deleted, err
	}
	for k := range have {
		if !used[k] {
			if err := d.b.Delete(ctx, k); err != nil {
				return deleted, fmt.Errorf("backup: delete %s: %w", k, err)
			}
		}
	}
	return deleted, nil
}

// ReadObject reads one file or object: a path, file:///path, or
// s3://bucket/key?endpoint=...&use_path_style=true&region=... (the
// object's directory opened as Open opens a destination, with the same
// credentials). featured import feast reads a Feast registry file this way.
// Nothing is created: a missing file or object is an error.
func ReadObject(ctx context.Context, src string) ([]byte, error) {
	u, err := url.Parse(src)
	if err != nil || u.Scheme == "" {
		return os.ReadFile(src)
	}
	switch u.Scheme {
	case "file":
		return os.ReadFile(u.Path)
	case "s3":
		dir, key := path.Split(strings.TrimPrefix(u.Path, "/"))
		if key == "" {
			return nil, fmt.Errorf("backup: read %s: no object key", src)
		}
		u.Path = "/" + dir
		d, err := Open(ctx, u.String())
		if err != nil {
			return nil, err
		}
		defer d.Close()
		b, err := d.b.ReadAll(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("backup: read %s: %w", src, err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("backup: read %s: unsupported scheme %q (a path, file:// or s3://)", src, u.Scheme)
}
