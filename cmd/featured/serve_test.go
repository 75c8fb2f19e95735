package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/featured-dev/featured/aggregate/aggregatetest"
	feastserving "github.com/featured-dev/featured/api/feast/serving"
	feasttypes "github.com/featured-dev/featured/api/feast/types"
	"github.com/featured-dev/featured/internal/testdefs"
)

// TestServePushRestart walks the README's path on the real binary: apply,
// push, look up (every operator against the reference), restart, look up
// again; then plan, a new version beside the old one, and a refused bad
// definition that changes nothing.
func TestServePushRestart(t *testing.T) {
	dir := t.TempDir()
	defs := defsWith("push", "")
	defsFile := filepath.Join(dir, "defs.yaml")
	if err := os.WriteFile(defsFile, []byte(defs), 0o644); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	s := startServer(t, data)
	out, err := s.cli(t, "apply", "-f", defsFile)
	if err != nil || !strings.Contains(out, "view spend v1") {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	now := time.Now()
	streams := streamsFor(8, 3, 120, now)
	var batch []map[string]any
	for i := 0; i < 120; i++ {
		for u, evs := range streams {
			batch = append(batch, eventObject(u, evs[i]))
		}
		if len(batch) >= 200 || i == 119 {
			code, body := s.post(t, "/v1/push", map[string]any{"source": "tx", "events": batch})
			if code != 200 || !strings.Contains(string(body), `"accepted":`+strconv.Itoa(len(batch))) {
				t.Fatalf("push: %d %s", code, body)
			}
			batch = nil
		}
	}
	view := compiledView(t, defs, "spend")
	s.checkAgainstReference(t, view, streams)

	// The same lookup over gRPC, as `featured get --grpc` prints it.
	want := aggregatetest.Reference(view.Layout.Specs(), view.Layout.TTLMillis(), streams["user-000"], 1, time.Now().UnixMilli())
	out, err = s.cli(t, "get", "--grpc", s.grpc, "--features", "spend:cnt_items_life", "--entity", "user_id=user-000")
	if err != nil || !strings.Contains(out, fmt.Sprintf(`"int64Val": "%d"`, want.Value.I)) || !strings.Contains(out, "PRESENT") {
		t.Fatalf("get --grpc: %v\n%s\nwant count %d", err, out, want.Value.I)
	}
	// And over Feast's gRPC service on the same port.
	conn, err := grpc.NewClient(s.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	feast := feastserving.NewServingServiceClient(conn)
	resp, err := feast.GetOnlineFeatures(context.Background(), &feastserving.GetOnlineFeaturesRequest{
		Kind: &feastserving.GetOnlineFeaturesRequest_Features{Features: &feastserving.FeatureList{Val: []string{"spend:cnt_items_life"}}},
		Entities: map[string]*feasttypes.RepeatedValue{"user_id": {Val: []*feasttypes.Value{
			{Val: &feasttypes.Value_StringVal{StringVal: "user-000"}}}}},
	})
	if err != nil || len(resp.GetResults()) != 2 || resp.GetResults()[1].GetValues()[0].GetInt64Val() != want.Value.I ||
		resp.GetResults()[1].GetStatuses()[0] != feastserving.FieldStatus_PRESENT {
		t.Fatalf("feast.serving GetOnlineFeatures: %v, %v; want count %d", resp, err, want.Value.I)
	}
	if info, err := feast.GetFeastServingInfo(context.Background(), &feastserving.GetFeastServingInfoRequest{}); err != nil || info.GetVersion() != version {
		t.Fatalf("GetFeastServingInfo: %v, %v; want %q", info, err, version)
	}

	s.stop(t)
	s = startServer(t, data)
	s.checkAgainstReference(t, view, streams)

	out, err = s.cli(t, "plan", "-f", defsFile)
	if err != nil || !strings.Contains(out, "0 to create") && !strings.Contains(strings.ToLower(out), "no changes") {
		t.Fatalf("plan of the applied file: %v\n%s", err, out)
	}

	// A changed window makes v2; v1 stays servable by pinning.
	v2 := strings.Replace(defs, "{name: cnt_1h, aggregation: count, window: 1h}", "{name: cnt_1h, aggregation: count, window: 2h}", 1)
	v2File := filepath.Join(dir, "v2.yaml")
	os.WriteFile(v2File, []byte(v2), 0o644)
	if out, err := s.cli(t, "plan", "-f", v2File); err != nil || !strings.Contains(out, "v1 -> v2") {
		t.Fatalf("plan v2: %v\n%s", err, out)
	}
	if out, err := s.cli(t, "apply", "-f", v2File); err != nil {
		t.Fatalf("apply v2: %v\n%s", err, out)
	}
	users := []string{"user-000"}
	pinned := s.lookup(t, []string{"spend@v1:cnt_1h"}, users)
	latest := s.lookup(t, []string{"spend:cnt_1h"}, users)
	if pinned.Rows[0].Statuses[0] != "PRESENT" || latest.Rows[0].Statuses[0] != "NOT_FOUND" {
		t.Fatalf("after v2: pinned v1 %+v, latest %+v: want v1 PRESENT, v2 NOT_FOUND (no events since)", pinned.Rows[0], latest.Rows[0])
	}

	// A bad definition is refused with its path and changes nothing.
	before := s.registryJSON(t)
	bad := strings.Replace(v2, "window: 2d, hop: 1h", "window: 3d, hop: 1h", 1)
	badFile := filepath.Join(dir, "bad.yaml")
	os.WriteFile(badFile, []byte(bad), 0o644)
	_, err = s.cli(t, "apply", "-f", badFile)
	badPath := fmt.Sprintf("feature_views[0].features[%d].window", testdefs.Feature("variance_items_2d"))
	if err == nil || !strings.Contains(err.Error(), badPath) {
		t.Fatalf("bad apply: %v; want an error naming %s", err, badPath)
	}
	if after := s.registryJSON(t); after != before {
		t.Fatalf("registry changed by a refused apply:\nbefore %s\nafter  %s", before, after)
	}
	// v1, pinned, still answers exactly as before.
	s.checkAgainstReference(t, view, streams)
}

func (s *server) registryJSON(t *testing.T) string {
	t.Helper()
	out, err := s.cli(t, "registry")
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("registry output %s: %v", out, err)
	}
	return out
}
