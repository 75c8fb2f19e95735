package diskguard_test

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/featured-dev/featured/internal/diskguard"
)

const mib = 1 << 20

// TestMarginAndHysteresis: writes stop below the margin and resume only
// above the margin plus the hysteresis; the error says what is free.
func TestMarginAndHysteresis(t *testing.T) {
	var free atomic.Int64
	free.Store(500 * mib)
	opts := diskguard.WithStatfs(diskguard.Options{}, func(string) (int64, int64, error) { return free.Load(), 1000 * mib, nil })
	g, err := diskguard.New("/data", opts)
	if err != nil {
		t.Fatal(err)
	}
	// Default margin: 5% of 1000 MiB = 50 MiB, resume 12.5 MiB above it.
	if st := g.Status(); st.MinFreeBytes != 50*mib || st.Full {
		t.Fatalf("status %+v, want margin 50 MiB, not full", st)
	}
	f := func(freeMiB int64, wantFull bool) {
		t.Helper()
		free.Store(freeMiB * mib)
		g.Poll()
		err := g.Check()
		if (err != nil) != wantFull || (err != nil && !errors.Is(err, diskguard.ErrDiskFull)) {
			t.Fatalf("free %d MiB: Check() = %v, want full %v", freeMiB, err, wantFull)
		}
		if wantFull && !strings.Contains(err.Error(), fmt.Sprintf("%d.0 MiB free under /data", freeMiB)) {
			t.Fatalf("free %d MiB: error %q does not say what is free", freeMiB, err)
		}
	}
	f(60, false)
	f(49, true)
	f(55, true) // above the margin, not above the hysteresis
	f(63, false)
	f(51, false)
}

// TestObserveENOSPC: a write that failed with ENOSPC stops writes at once,
// whatever the last poll said; other errors do not.
func TestObserveENOSPC(t *testing.T) {
	var free atomic.Int64
	free.Store(500 * mib)
	g, err := diskguard.New("/data", diskguard.WithStatfs(diskguard.Options{MinFreeBytes: 10 * mib}, func(string) (int64, int64, error) { return free.Load(), 1000 * mib, nil }))
	if err != nil {
		t.Fatal(err)
	}
	g.Observe(errors.New("some other failure"))
	if err := g.Check(); err != nil {
		t.Fatalf("after a non-ENOSPC error: %v", err)
	}
	g.Observe(fmt.Errorf("commit: %w", &os.PathError{Op: "write", Path: "/data/x", Err: syscall.ENOSPC}))
	if err := g.Check(); !errors.Is(err, diskguard.ErrDiskFull) || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("after ENOSPC: %v", err)
	}
	g.Poll() // 500 MiB free: far above margin + hysteresis
	if err := g.Check(); err != nil {
		t.Fatalf("after space came back: %v", err)
	}
}

// TestRealFileSystem: New reads the real file system of a temp dir.
func TestRealFileSystem(t *testing.T) {
	g, err := diskguard.New(t.TempDir(), diskguard.Options{MinFreeBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	if st := g.Status(); st.FreeBytes <= 0 || st.Full {
		t.Fatalf("status of a temp dir: %+v", st)
	}
	if _, err := diskguard.New("/nonexistent/dir", diskguard.Options{}); err == nil {
		t.Fatal("New on a missing dir: no error")
	}
}
