package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/featured-dev/featured/internal/kafkatest"
)

// TestSoakShort is a short soak in every CI run: pushes with batch_id,
// a Kafka stream and lookups while the server is killed with SIGKILL every
// 3 s, its disk (a tmpfs: CI runs as root) filled past the margin and
// freed, and hostile requests sent. Nothing acknowledged may be lost or
// doubled, and no hostile request may crash the server. The long soak
// behind `loadtest soak` gives the figures in docs/reliability.md.
func TestSoakShort(t *testing.T) {
	if testing.Short() {
		t.Skip("the soak takes half a minute; -short skips it")
	}
	brokers := kafkatest.Brokers(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "featured")
	build := exec.Command("go", "build", "-o", bin, "./cmd/featured")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build featured: %v\n%s", err, out)
	}
	tmpfs := 0
	if os.Geteuid() == 0 {
		tmpfs = 128
	} else if os.Getenv("CI") != "" {
		t.Fatal("the soak mounts a tmpfs to fill the disk, which needs root; CI runs as root")
	}
	rep, err := soak(context.Background(), soakOptions{
		Binary: bin, Dir: dir, Brokers: brokers, Duration: 15 * time.Second,
		KillEvery: 3 * time.Second, FillEvery: 4 * time.Second, TmpfsMB: tmpfs, Entities: 100, Log: testWriter{t},
	})
	if err != nil {
		if log, rerr := os.ReadFile(filepath.Join(dir, "featured.log")); rerr == nil && len(log) > 0 {
			t.Logf("featured's log (tail):\n%s", tail(log, 4000))
		}
		t.Fatalf("soak: %v (report %+v)", err, rep)
	}
	t.Logf("soak report: %+v", *rep)
	switch {
	case rep.EventsLost != 0 || rep.EventsDoubled != 0 || rep.SumMismatches != 0:
		t.Fatalf("%d events lost, %d doubled, %d sums differ", rep.EventsLost, rep.EventsDoubled, rep.SumMismatches)
	case rep.UnplannedExits != 0:
		t.Fatalf("the server exited %d times on its own", rep.UnplannedExits)
	case rep.Kills < 3:
		t.Fatalf("%d kills, want at least 3", rep.Kills)
	case rep.PushBatches == 0 || rep.KafkaMessages == 0 || rep.Lookups == 0:
		t.Fatalf("no load went through: %+v", *rep)
	case rep.HostileTried == 0 || rep.HostileAccepted != 0:
		t.Fatalf("hostile requests: %d tried, %d accepted", rep.HostileTried, rep.HostileAccepted)
	case tmpfs > 0 && rep.DiskFills == 0:
		t.Fatalf("the disk was never filled")
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
