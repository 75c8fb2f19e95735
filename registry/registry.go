package registry

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a Registry. The zero value is usable.
type Options struct {
	// Now stamps View.CreatedAt on new versions. The default is time.Now.
	Now func() time.Time
}

// EnsureDefaults fills in unset fields.
func (o *Options) EnsureDefaults() {
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Validate reports a bad option. Every option has a valid default.
func (o *Options) Validate() error { return nil }

// Registry holds the versioned definitions and persists them in one file.
// Snapshot is lock-free and may be called from any goroutine at any rate;
// Plan reads a Snapshot; Apply and Delete are serialized by a mutex.
type Registry struct {
	path string
	opts Options
	snap atomic.Pointer[Snapshot]

	// mu serializes Apply, Delete and Close: each builds the next Snapshot
	// from the current one, persists it, then publishes it, all under mu.
	mu struct {
		sync.Mutex
		closed bool
		lock   *os.File // flock held on path+".lock" while open
	}
}

// Open opens the registry stored in the file path (e.g.
// <data-dir>/registry.json), creating it (and its directory) if absent. A
// lock file beside it keeps a second process from opening it.
func Open(path string) (*Registry, error) {
	return OpenWithOptions(path, Options{})
}

// OpenWithOptions is Open with options.
func OpenWithOptions(path string, opts Options) (*Registry, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("registry: create dir: %w", err)
	}
	lock, err := lockFile(path + ".lock")
	if err != nil {
		return nil, fmt.Errorf("registry: lock %s: %w", path, err)
	}
	r := &Registry{path: path, opts: opts}
	r.mu.lock = lock
	snap, err := r.load()
	if err != nil {
		unlockFile(lock)
		return nil, err
	}
	r.snap.Store(snap)
	return r, nil
}

func (r *Registry) load() (*Snapshot, error) {
	data, err := os.ReadFile(r.path)
	if errors.Is(err, fs.ErrNotExist) {
		s := emptySnapshot()
		if err := r.persist(s); err != nil {
			return nil, err
		}
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("registry: read %s: %w", r.path, err)
	}
	s, err := decodeSnapshot(data)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", r.path, err)
	}
	return s, nil
}

func (r *Registry) persist(s *Snapshot) error {
	data, err := encodeSnapshot(s)
	if err != nil {
		return fmt.Errorf("registry: encode: %w", err)
	}
	if err := writeFileAtomic(r.path, data); err != nil {
		return fmt.Errorf("registry: write %s: %w", r.path, err)
	}
	return nil
}

// Snapshot returns the current registry. It never blocks.
func (r *Registry) Snapshot() *Snapshot { return r.snap.Load() }

// Changed returns a channel closed when a Snapshot newer than the current
// one is published; then call it again. Call Changed before Snapshot to never
// miss a change:
//
//	for {
//		ch := r.Changed()
//		use(r.Snapshot())
//		<-ch
//	}
func (r *Registry) Changed() <-chan struct{} { return r.snap.Load().changed }

// Plan validates d against the current registry and says what Apply would
// do. It changes nothing.
func (r *Registry) Plan(d *Definitions) (*Plan, error) {
	_, plan, err := compile(r.snap.Load(), d, r.now())
	return plan, err
}

// Apply validates d and applies it, all or nothing: an upsert of what d
// names (objects it does not name are left alone; removing is Delete). It
// persists the registry and then publishes the new Snapshot. An apply that
// changes nothing neither writes nor publishes. Validation errors are
// *ValidationErrors joined (errors.Is ErrInvalid).
func (r *Registry) Apply(d *Definitions) (*Plan, error) {
	return r.ApplyBy(d, Caller{})
}

// ApplyBy is Apply that records the caller in the history.
func (r *Registry) ApplyBy(d *Definitions, by Caller) (*Plan, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.closed {
		return nil, ErrClosed
	}
	cur := r.snap.Load()
	next, plan, err := compile(cur, d, r.now())
	if err != nil {
		return nil, err
	}
	if next != cur {
		withHistory(cur, next, HistoryEntry{Generation: next.gen, Time: r.now(), By: by.Name, Remote: by.Remote, Action: "apply", Changes: plan.Changes})
		if err := r.publishLocked(cur, next); err != nil {
			return nil, err
		}
	}
	return plan, nil
}

// Delete removes an object: kind is "view", "source", "entity" or
// "service"; version selects one version of a view, 0 every version (and
// is the only value for other kinds). It refuses (ErrInUse) to delete an
// entity or source that a live view version uses, and a view version that
// a feature service references. A deleted view keeps its ID and its
// version numbers reserved: recreating it continues after the last one.
func (r *Registry) Delete(kind, name string, version int) (*Plan, error) {
	return r.DeleteBy(kind, name, version, Caller{})
}

// DeleteBy is Delete that records the caller in the history.
func (r *Registry) DeleteBy(kind, name string, version int, by Caller) (*Plan, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.closed {
		return nil, ErrClosed
	}
	cur := r.snap.Load()
	next, plan, err := cur.planDelete(kind, name, version)
	if err != nil {
		return nil, err
	}
	withHistory(cur, next, HistoryEntry{Generation: next.gen, Time: r.now(), By: by.Name, Remote: by.Remote, Action: "delete", Changes: plan.Changes})
	if err := r.publishLocked(cur, next); err != nil {
		return nil, err
	}
	return plan, nil
}

func (r *Registry) publishLocked(cur, next *Snapshot) error {
	if err := r.persist(next); err != nil {
		return err
	}
	r.snap.Store(next)
	close(cur.changed)
	return nil
}

func (r *Registry) now() time.Time {
	return r.opts.Now().UTC().Truncate(time.Millisecond)
}

// Close releases the registry file. Snapshots stay readable; Apply and
// Delete return ErrClosed. Close is idempotent.
func (r *Registry) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.closed {
		return nil
	}
	r.mu.closed = true
	return unlockFile(r.mu.lock)
}

// CopyTo writes the registry's file, as last persisted, to dst. It holds
// the registry's lock, so no Apply or Delete is half done: a backup takes
// it while the store's writers are paused (featurestore.Store.Checkpoint),
// and the copy names exactly the view ids the store's state was written
// under.
func (r *Registry) CopyTo(dst string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.closed {
		return fmt.Errorf("registry: copy: %w", ErrClosed)
	}
	data, err := os.ReadFile(r.path)
	if err != nil {
		return fmt.Errorf("registry: copy %s: %w", r.path, err)
	}
	if err := writeFileAtomic(dst, data); err != nil {
		return fmt.Errorf("registry: copy to %s: %w", dst, err)
	}
	return nil
}
