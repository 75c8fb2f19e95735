package offline

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// errDead is what every operation of a crashed process's file system
// returns: nothing it does after the crash reaches the disk.
var errDead = errors.New("offline test: the process is dead")

// faultFS is the disk of one process of the sweep: it asks an
// errorfs.Injector about every operation, and once the process is dead
// (dead is set) it fails every operation, so the abandoned process's
// goroutines cannot touch the files its successor opens. errorfs.Wrap is
// not used because its files hide Truncate, which the offline log needs;
// the injector is errorfs's. Lock takes no lock: a successor opens the same
// directories in this process while the dead one still holds them.
type faultFS struct {
	vfs.FS
	inj  errorfs.Injector // nil: no faults
	dead *atomic.Bool
}

var _ vfs.FS = (*faultFS)(nil)

func (fs *faultFS) check(kind errorfs.OpKind, path string) error {
	if fs.dead.Load() {
		return errDead
	}
	if fs.inj == nil {
		return nil
	}
	return fs.inj.MaybeError(errorfs.Op{Kind: kind, Path: path})
}

func (fs *faultFS) wrap(f vfs.File, path string, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return &faultFile{File: f, fs: fs, path: path}, nil
}

func (fs *faultFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	if err := fs.check(errorfs.OpCreate, name); err != nil {
		return nil, err
	}
	f, err := fs.FS.Create(name, c)
	return fs.wrap(f, name, err)
}

func (fs *faultFS) Link(oldname, newname string) error {
	if err := fs.check(errorfs.OpLink, newname); err != nil {
		return err
	}
	return fs.FS.Link(oldname, newname)
}

func (fs *faultFS) Open(name string, opts ...vfs.OpenOption) (vfs.File, error) {
	if err := fs.check(errorfs.OpOpen, name); err != nil {
		return nil, err
	}
	f, err := fs.FS.Open(name, opts...)
	return fs.wrap(f, name, err)
}

func (fs *faultFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	// Opening for writing creates the file when missing: a write point.
	if err := fs.check(errorfs.OpCreate, name); err != nil {
		return nil, err
	}
	f, err := fs.FS.OpenReadWrite(name, c, opts...)
	return fs.wrap(f, name, err)
}

func (fs *faultFS) OpenDir(name string) (vfs.File, error) {
	if err := fs.check(errorfs.OpOpenDir, name); err != nil {
		return nil, err
	}
	f, err := fs.FS.OpenDir(name)
	return fs.wrap(f, name, err)
}

func (fs *faultFS) Remove(name string) error {
	if err := fs.check(errorfs.OpRemove, name); err != nil {
		return err
	}
	return fs.FS.Remove(name)
}

func (fs *faultFS) RemoveAll(name string) error {
	if err := fs.check(errorfs.OpRemoveAll, name); err != nil {
		return err
	}
	return fs.FS.RemoveAll(name)
}

func (fs *faultFS) Rename(oldname, newname string) error {
	if err := fs.check(errorfs.OpRename, newname); err != nil {
		return err
	}
	return fs.FS.Rename(oldname, newname)
}

func (fs *faultFS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	if err := fs.check(errorfs.OpReuseForWrite, newname); err != nil {
		return nil, err
	}
	f, err := fs.FS.ReuseForWrite(oldname, newname, c)
	return fs.wrap(f, newname, err)
}

func (fs *faultFS) MkdirAll(dir string, perm os.FileMode) error {
	if err := fs.check(errorfs.OpMkdirAll, dir); err != nil {
		return err
	}
	return fs.FS.MkdirAll(dir, perm)
}

func (fs *faultFS) Lock(name string) (io.Closer, error) {
	if err := fs.check(errorfs.OpLock, name); err != nil {
		return nil, err
	}
	return io.NopCloser(nil), nil
}

func (fs *faultFS) List(dir string) ([]string, error) {
	if err := fs.check(errorfs.OpList, dir); err != nil {
		return nil, err
	}
	return fs.FS.List(dir)
}

func (fs *faultFS) Stat(name string) (vfs.FileInfo, error) {
	if err := fs.check(errorfs.OpStat, name); err != nil {
		return nil, err
	}
	return fs.FS.Stat(name)
}

func (fs *faultFS) Unwrap() vfs.FS { return fs.FS }

// faultFile is a file of a faultFS.
type faultFile struct {
	vfs.File
	fs   *faultFS
	path string
}

func (f *faultFile) Close() error {
	if err := f.fs.check(errorfs.OpFileClose, f.path); err != nil {
		// The descriptor is released anyway, as by a dying process.
		f.File.Close()
		return err
	}
	return f.File.Close()
}

func (f *faultFile) Read(p []byte) (int, error) {
	if err := f.fs.check(errorfs.OpFileRead, f.path); err != nil {
		return 0, err
	}
	return f.File.Read(p)
}

func (f *faultFile) ReadAt(p []byte, off int64) (int, error) {
	if err := f.fs.check(errorfs.OpFileReadAt, f.path); err != nil {
		return 0, err
	}
	return f.File.ReadAt(p, off)
}

func (f *faultFile) Write(p []byte) (int, error) {
	if err := f.fs.check(errorfs.OpFileWrite, f.path); err != nil {
		return 0, err
	}
	return f.File.Write(p)
}

func (f *faultFile) WriteAt(p []byte, off int64) (int, error) {
	if err := f.fs.check(errorfs.OpFileWriteAt, f.path); err != nil {
		return 0, err
	}
	return f.File.WriteAt(p, off)
}

func (f *faultFile) Preallocate(off, n int64) error {
	if err := f.fs.check(errorfs.OpFilePreallocate, f.path); err != nil {
		return err
	}
	return f.File.Preallocate(off, n)
}

func (f *faultFile) Stat() (vfs.FileInfo, error) {
	if err := f.fs.check(errorfs.OpFileStat, f.path); err != nil {
		return nil, err
	}
	return f.File.Stat()
}

func (f *faultFile) Sync() error {
	if err := f.fs.check(errorfs.OpFileSync, f.path); err != nil {
		return err
	}
	return f.File.Sync()
}

func (f *faultFile) SyncData() error {
	if err := f.fs.check(errorfs.OpFileSyncData, f.path); err != nil {
		return err
	}
	return f.File.SyncData()
}

func (f *faultFile) SyncTo(n int64) (bool, error) {
	if err := f.fs.check(errorfs.OpFileSyncTo, f.path); err != nil {
		return false, err
	}
	return f.File.SyncTo(n)
}

// Truncate is the offline log's cut of a failed commit (a write point).
func (f *faultFile) Truncate(size int64) error {
	if err := f.fs.check(errorfs.OpFileWrite, f.path); err != nil {
		return err
	}
	t, ok := f.File.(interface{ Truncate(int64) error })
	if !ok {
		return fmt.Errorf("truncate %s: %T cannot", f.path, f.File)
	}
	return t.Truncate(size)
}

// sweepMode is what happens at the swept write point.
type sweepMode int

const (
	failOnce  sweepMode = iota // the operation fails, later ones succeed
	diskDied                   // it and every later one fail until a restart
	crashHere                  // the process dies at it
)

func (m sweepMode) String() string {
	return [...]string{"fail-once", "disk-died", "crash"}[m]
}

// sweepInjector counts write operations (errorfs.OpIsWrite: creates,
// renames, removes, writes, syncs, closes...) and fails the at'th by mode.
type sweepInjector struct {
	at    int // -1: count only
	mode  sweepMode
	crash func() // crashHere: kills the process

	mu  sync.Mutex
	n   int
	hit string // the operation failed at at
}

func (s *sweepInjector) String() string { return fmt.Sprintf("sweep(%d, %s)", s.at, s.mode) }

func (s *sweepInjector) MaybeError(op errorfs.Op) error {
	if op.Kind.ReadOrWrite() != errorfs.OpIsWrite {
		return nil
	}
	s.mu.Lock()
	i := s.n
	s.n++
	if i == s.at {
		s.hit = fmt.Sprintf("%d %s", op.Kind, op.Path)
	}
	s.mu.Unlock()
	switch {
	case s.at < 0 || i < s.at:
		return nil
	case i == s.at && s.mode == crashHere:
		s.crash()
		return errDead
	case i == s.at, s.mode == diskDied:
		return errorfs.ErrInjected
	}
	return nil
}

func (s *sweepInjector) count() (n int, hit string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n, s.hit
}
