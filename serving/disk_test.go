package serving_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc/codes"

	featuredv1 "github.com/featured-dev/featured/api/featured/v1"
	"github.com/featured-dev/featured/internal/diskguard"
	"github.com/featured-dev/featured/serving"
)

// fullDisk is a serving.Disk whose state the test sets.
type fullDisk struct{ full atomic.Bool }

func (d *fullDisk) Check() error {
	if d.full.Load() {
		return fmt.Errorf("%w: 1.0 MiB free under /data, below the margin of 64.0 MiB", diskguard.ErrDiskFull)
	}
	return nil
}

func (d *fullDisk) Status() diskguard.Status {
	return diskguard.Status{Full: d.full.Load(), FreeBytes: 1 << 20, MinFreeBytes: 64 << 20}
}

// TestDiskFullRefusesWrites: with the disk full, pushes and applies are
// refused on both transports (507 / RESOURCE_EXHAUSTED) naming the disk,
// while lookups, readiness and status answer; once it clears, writes go on.
func TestDiskFullRefusesWrites(t *testing.T) {
	disk := &fullDisk{}
	h := newHarness(t, serving.Options{Disk: disk})
	h.apply(definitions)
	seed(h)
	disk.full.Store(true)

	push := map[string]any{"source": "transactions", "events": []map[string]any{{"user_id": "u9", "ts": nowMillis - minute, "amount": 1.5}}}
	if st, body := h.post("/v1/push", push); st != http.StatusInsufficientStorage || !strings.Contains(string(body), "disk full") {
		t.Errorf("HTTP push on a full disk: %d %s", st, body)
	}
	if st, body := h.do("POST", "/v1/apply", "application/yaml", []byte(definitions)); st != http.StatusInsufficientStorage || !strings.Contains(string(body), "disk full") {
		t.Errorf("HTTP apply on a full disk: %d %s", st, body)
	}
	ctx := context.Background()
	_, err := h.ingest.Push(ctx, &featuredv1.PushRequest{Source: "transactions", Events: []*featuredv1.Event{{Fields: map[string]*featuredv1.Value{
		"user_id": {Kind: &featuredv1.Value_StringVal{StringVal: "u9"}},
		"ts":      {Kind: &featuredv1.Value_Int64Val{Int64Val: nowMillis - minute}},
	}}}})
	wantCode(t, err, codes.ResourceExhausted, "disk full")
	_, err = h.registry.Apply(ctx, &featuredv1.ApplyRequest{Definitions: definitions})
	wantCode(t, err, codes.ResourceExhausted, "disk full")

	ents := map[string]any{"user_id": []any{"u1"}}
	if st, body := h.post("/v1/features", map[string]any{"features": userRefs[:1], "entities": ents}); st != 200 {
		t.Errorf("lookup on a full disk: %d %s", st, body)
	}
	if st, body := h.do("GET", "/readyz", "", nil); st != 200 {
		t.Errorf("/readyz on a full disk: %d %s, want 200 (lookups go on)", st, body)
	}
	if st, body := h.do("GET", "/readyz?verbose", "", nil); st != 200 || !strings.Contains(string(body), "[!]disk warn: diskguard: disk full") {
		t.Errorf("/readyz?verbose on a full disk: %d %s", st, body)
	}
	if st, body := h.do("GET", "/v1/status", "", nil); st != 200 || !strings.Contains(string(body), `"full": true`) {
		t.Errorf("/v1/status on a full disk: %d %s", st, body)
	}

	disk.full.Store(false)
	if st, body := h.post("/v1/push", push); st != 200 {
		t.Errorf("push once the disk has room: %d %s", st, body)
	}
}
