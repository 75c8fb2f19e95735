package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/featured-dev/featured/aggregate/aggregatetest"
)

// TestDiskFull runs the real binary on a small tmpfs (CI runs as root, which
// mount needs) and fills it: pushes and applies are refused with 507 naming
// the full disk, /readyz stays 200 and lists the disk as a warning, status
// shows it, lookups go on; once space is freed, pushes are accepted again
// without a restart, and after a restart every acknowledged event is there.
func TestDiskFull(t *testing.T) {
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=128m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount a 128 MiB tmpfs (needs root, as CI runs): %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", mnt).Run() })

	defs := defsWith("push", "")
	defsFile := filepath.Join(t.TempDir(), "defs.yaml")
	if err := os.WriteFile(defsFile, []byte(defs), 0o644); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(mnt, "data")
	s := startServer(t, data, "--min-free-disk", "32MiB")
	if out, err := s.cli(t, "apply", "-f", defsFile); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	now := time.Now()
	streams := streamsFor(4, 11, 60, now)
	push := func(from, to int) (int, string) {
		var batch []map[string]any
		for i := from; i < to; i++ {
			for u, evs := range streams {
				batch = append(batch, eventObject(u, evs[i]))
			}
		}
		code, body := s.post(t, "/v1/push", map[string]any{"source": "tx", "events": batch})
		return code, string(body)
	}
	if code, body := push(0, 30); code != 200 {
		t.Fatalf("push before the disk fills: %d %s", code, body)
	}

	// Fill the disk to 16 MiB free, below the 32 MiB margin.
	var st syscall.Statfs_t
	if err := syscall.Statfs(mnt, &st); err != nil {
		t.Fatal(err)
	}
	ballast := filepath.Join(mnt, "ballast")
	fill := int64(st.Bavail)*int64(st.Bsize) - 16<<20
	f, err := os.Create(ballast)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(f, zeros{}, fill); err != nil {
		t.Fatalf("write %d bytes of ballast: %v", fill, err)
	}
	f.Close()

	// The guard polls every second; wait for it rather than pushing (a
	// push accepted before it noticed would be counted).
	waitFor(t, "status shows the disk full", func() bool {
		_, b := get(t, s.url+"/v1/status")
		return strings.Contains(b, `"full": true`)
	})
	code, body := push(30, 31)
	if code != http.StatusInsufficientStorage || !strings.Contains(body, "disk full") || !strings.Contains(body, "free under") {
		t.Fatalf("refused push: %d %s, want the disk named as full", code, body)
	}
	if out, err := s.cli(t, "apply", "-f", defsFile); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("apply on a full disk: %v\n%s, want refused naming the disk", err, out)
	}
	if c, b := get(t, s.url+"/readyz"); c != 200 {
		t.Fatalf("plain /readyz on a full disk: %d %s, want 200 (lookups go on)", c, b)
	}
	if c, b := get(t, s.url+"/readyz?verbose"); c != 200 || !strings.Contains(b, "[!]disk warn: diskguard: disk full") {
		t.Fatalf("/readyz?verbose on a full disk: %d %s", c, b)
	}
	if c, b := get(t, s.url+"/v1/status"); c != 200 || !strings.Contains(b, `"full": true`) {
		t.Fatalf("status on a full disk: %d %s", c, b)
	}
	if !strings.Contains(s.logs.String(), "disk full") {
		t.Fatalf("no log line names the full disk:\n%s", s.logs)
	}
	view := compiledView(t, defs, "spend")
	first := map[string][]aggregatetest.Event{}
	for u, evs := range streams {
		first[u] = evs[:30]
	}
	s.checkAgainstReference(t, view, first) // lookups go on

	// Space comes back: writes resume by themselves.
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "pushes accepted again", func() bool {
		code, body = push(30, 60)
		return code == 200
	})
	s.stop(t)
	s = startServer(t, data, "--min-free-disk", "32MiB")
	s.checkAgainstReference(t, view, streams)
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitFor polls f for up to 30 s.
func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if f() {
			return
		}
	}
	t.Fatal(fmt.Sprintf("%s: not within 30s", what))
}
