// Package diskguard watches the free space of the file system that holds
// featured's data dir and says when writes must stop, before the disk is
// actually full.
//
// Why stop early: Pebble treats a failed write of its WAL as fatal (the
// commit pipeline panics) and needs room for flushes and compactions, and
// the offline log's segments and Parquet files share the disk. So featured
// refuses new writes (pushes, applies, Kafka batches) while free space is
// below a margin, keeps serving lookups, and resumes by itself once space
// is back above the margin plus a hysteresis, with no restart. A write that
// fails with ENOSPC anyway (another process filled the disk between two
// polls) is reported through Observe and puts the guard in the same state
// at once.
//
// A Guard is safe for concurrent use: Check and Observe are called from
// request and ingest goroutines while Run polls.
package diskguard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"syscall"
	"time"
)

// ErrDiskFull is returned by Check while writes are refused.
var ErrDiskFull = errors.New("diskguard: disk full")

// Options configures a Guard. The zero value is usable.
type Options struct {
	// MinFreeBytes is the free space below which writes are refused. The
	// default is 5% of the file system's size, at most 1 GiB.
	MinFreeBytes int64
	// ResumeBytes is how far above MinFreeBytes free space must climb
	// before writes resume, so that a disk hovering at the margin does not
	// flap. The default is MinFreeBytes / 4.
	ResumeBytes int64
	// Interval is how often free space is polled. The default value is 1s.
	Interval time.Duration
	// Logger receives one line per change of state. The default discards.
	Logger *slog.Logger
	// statfs is the free and total bytes of dir; tests replace it.
	statfs func(dir string) (free, total int64, err error)
}

// Guard is the disk state of one data dir.
type Guard struct {
	dir  string
	opts Options

	mu struct {
		sync.Mutex
		full      bool
		reason    string // why, while full
		freeBytes int64  // at the last poll
	}
}

// New returns a Guard over dir, having polled it once.
func New(dir string, opts Options) (*Guard, error) {
	if opts.statfs == nil {
		opts.statfs = statfs
	}
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	free, total, err := opts.statfs(dir)
	if err != nil {
		return nil, fmt.Errorf("diskguard: statfs %s: %w", dir, err)
	}
	if opts.MinFreeBytes < 0 || opts.ResumeBytes < 0 {
		return nil, fmt.Errorf("diskguard: negative margin (min free %d, resume %d)", opts.MinFreeBytes, opts.ResumeBytes)
	}
	if opts.MinFreeBytes == 0 {
		opts.MinFreeBytes = min(total/20, 1<<30)
	}
	if opts.ResumeBytes == 0 {
		opts.ResumeBytes = opts.MinFreeBytes / 4
	}
	g := &Guard{dir: dir, opts: opts}
	g.update(free)
	return g, nil
}

// Run polls free space every Interval until ctx ends.
func (g *Guard) Run(ctx context.Context) {
	t := time.NewTicker(g.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			g.Poll()
		}
	}
}

// Poll reads free space now and updates the state.
func (g *Guard) Poll() {
	free, _, err := g.opts.statfs(g.dir)
	if err != nil {
		g.opts.Logger.Error("disk space check failed", "dir", g.dir, "err", err)
		return
	}
	g.update(free)
}

func (g *Guard) update(free int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.mu.freeBytes = free
	resume := g.opts.MinFreeBytes + g.opts.ResumeBytes
	low := fmt.Sprintf("%s free under %s, below the margin of %s (writes resume above %s)",
		mib(free), g.dir, mib(g.opts.MinFreeBytes), mib(resume))
	switch {
	case g.mu.full && free < resume:
		g.mu.reason = low
	case !g.mu.full && free < g.opts.MinFreeBytes:
		g.mu.full = true
		g.mu.reason = low
		g.opts.Logger.Error("disk full: refusing pushes, applies and Kafka ingest until space is freed; lookups go on",
			"dir", g.dir, "free_bytes", free, "min_free_bytes", g.opts.MinFreeBytes)
	case g.mu.full:
		g.mu.full = false
		g.mu.reason = ""
		g.opts.Logger.Info("disk space back: writes resume", "dir", g.dir, "free_bytes", free)
	}
}

// Observe tells the guard that a write failed with err. An ENOSPC puts it
// in the full state until a poll sees space above the margin plus the
// hysteresis; other errors are ignored.
func (g *Guard) Observe(err error) {
	if !errors.Is(err, syscall.ENOSPC) {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.mu.full {
		g.mu.full = true
		g.opts.Logger.Error("disk full: a write failed with ENOSPC; refusing writes until space is freed", "dir", g.dir, "err", err)
	}
	g.mu.reason = fmt.Sprintf("a write under %s failed: no space left on device", g.dir)
}

// Check returns nil while writes may go on, else an error wrapping
// ErrDiskFull that says how much is free and what the margin is.
func (g *Guard) Check() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.mu.full {
		return nil
	}
	return fmt.Errorf("%w: %s; free space (delete files, grow the volume) and writes resume by themselves", ErrDiskFull, g.mu.reason)
}

// Status is the guard's state for /v1/status.
type Status struct {
	Full         bool   `json:"full"`
	FreeBytes    int64  `json:"free_bytes"`
	MinFreeBytes int64  `json:"min_free_bytes"`
	Reason       string `json:"reason,omitempty"`
}

// Status returns the state at the last poll.
func (g *Guard) Status() Status {
	g.mu.Lock()
	defer g.mu.Unlock()
	return Status{Full: g.mu.full, FreeBytes: g.mu.freeBytes, MinFreeBytes: g.opts.MinFreeBytes, Reason: g.mu.reason}
}

func statfs(dir string) (free, total int64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), int64(st.Blocks) * int64(st.Bsize), nil
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
