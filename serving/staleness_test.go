package serving_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	feastserving "github.com/featured-dev/featured/api/feast/serving"
	feasttypes "github.com/featured-dev/featured/api/feast/types"
	featuredv1 "github.com/featured-dev/featured/api/featured/v1"
	"github.com/featured-dev/featured/serving"
)

// stalePlacement is a staticPlacement whose node is stale by a fixed
// duration on every partition it holds (serving.BoundedRouter), as the
// Keeper measures it.
type stalePlacement struct {
	*staticPlacement
	stale time.Duration
}

func (s *stalePlacement) RouteWithin(p int, bound time.Duration) (bool, []string) {
	local, peers := s.Route(p)
	return local && s.stale <= bound, peers
}

// staleNodes starts one node per staleness, every partition held by every
// node (node 0 first in each partition's peers).
func staleNodes(t *testing.T, stale ...time.Duration) []*harness {
	t.Helper()
	replicas := make([][]int, routePartitions)
	for p := range replicas {
		for n := range stale {
			replicas[p] = append(replicas[p], n)
		}
	}
	var nodes []*harness
	var pls []*stalePlacement
	var addrs []string
	for i, d := range stale {
		pl := &stalePlacement{staticPlacement: &staticPlacement{self: i, replicas: replicas}, stale: d}
		h := newHarness(t, serving.Options{Placement: pl})
		h.apply(definitions)
		nodes, pls, addrs = append(nodes, h), append(pls, pl), append(addrs, h.grpcAddr)
	}
	for _, pl := range pls {
		pl.setAddrs(addrs)
	}
	return nodes
}

// sources returns the distinct position sources (the nodes that answered).
func sources[P interface{ GetSource() string }](ps []P) map[string]bool {
	out := map[string]bool{}
	for _, p := range ps {
		out[p.GetSource()] = true
	}
	return out
}

type pos serving.Position

func (p pos) GetSource() string { return p.Source }

func positionsOf(ps []serving.Position) []pos {
	out := make([]pos, len(ps))
	for i := range ps {
		out[i] = pos(ps[i])
	}
	return out
}

func boundedLookup(keys []any, extra map[string]any) map[string]any {
	body := map[string]any{"features": routeUserRefs, "entities": map[string]any{"user_id": keys}}
	for k, v := range extra {
		body[k] = v
	}
	return body
}

func postHeader(t *testing.T, h *harness, path string, body any, header, value string) (int, http.Header, []byte) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", h.url+path, strings.NewReader(string(b)))
	req.Header.Set("Content-Type", "application/json")
	if header != "" {
		req.Header.Set(header, value)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, buf
}

func boundedGRPCLookup(keys []any, ms int64) *featuredv1.GetOnlineFeaturesRequest {
	vals := make([]*featuredv1.Value, len(keys))
	for i, k := range keys {
		vals[i] = &featuredv1.Value{Kind: &featuredv1.Value_StringVal{StringVal: k.(string)}}
	}
	return &featuredv1.GetOnlineFeaturesRequest{
		Kind:           &featuredv1.GetOnlineFeaturesRequest_Features{Features: &featuredv1.FeatureList{Val: routeUserRefs}},
		Entities:       map[string]*featuredv1.RepeatedValue{"user_id": {Val: vals}},
		MaxStalenessMs: ms,
	}
}

func boundedFeastLookup(keys []any) *feastserving.GetOnlineFeaturesRequest {
	vals := make([]*feasttypes.Value, len(keys))
	for i, k := range keys {
		vals[i] = &feasttypes.Value{Val: &feasttypes.Value_StringVal{StringVal: k.(string)}}
	}
	return &feastserving.GetOnlineFeaturesRequest{
		Kind:     &feastserving.GetOnlineFeaturesRequest_Features{Features: &feastserving.FeatureList{Val: []string{"user_spend:spend_7d"}}},
		Entities: map[string]*feasttypes.RepeatedValue{"user_id": {Val: vals}},
	}
}

// TestStalenessBoundForwards: node 0 is 10s stale, node 1 fresh, both hold
// every partition. Without a bound node 0 answers its lookups itself; with
// a bound under 10s, from any API, every partition is read on node 1.
func TestStalenessBoundForwards(t *testing.T) {
	nodes := staleNodes(t, 10*time.Second, 0)
	front := nodes[0]
	keys := routeKeys(0, 30)
	only := func(what string, got map[string]bool, want string) {
		t.Helper()
		if len(got) != 1 || !got[want] {
			t.Fatalf("%s: answered by %v, want only %s", what, got, want)
		}
	}

	st, body := front.post("/v1/features", boundedLookup(keys, nil))
	if st != http.StatusOK {
		t.Fatalf("no bound: %d %s", st, body)
	}
	_, ps := withoutPositions(t, body)
	only("native, no bound", sources(positionsOf(ps)), "node0")
	// A bound above the node's staleness changes nothing.
	st, body = front.post("/v1/features", boundedLookup(keys, map[string]any{"max_staleness_ms": 60_000}))
	if st != http.StatusOK {
		t.Fatalf("60s bound: %d %s", st, body)
	}
	_, ps = withoutPositions(t, body)
	only("native, 60s bound", sources(positionsOf(ps)), "node0")

	st, body = front.post("/v1/features", boundedLookup(keys, map[string]any{"max_staleness_ms": 1000}))
	if st != http.StatusOK {
		t.Fatalf("native 1s bound: %d %s", st, body)
	}
	_, ps = withoutPositions(t, body)
	only("native, 1s bound", sources(positionsOf(ps)), "node1")

	for _, v := range []string{"1000", "500ms"} {
		st, hdr, body := postHeader(t, front, "/get-online-features", boundedLookup(keys, nil), serving.StalenessHeader, v)
		if st != http.StatusOK {
			t.Fatalf("feast header %s: %d %s", v, st, body)
		}
		var hp []serving.Position
		if err := json.Unmarshal([]byte(hdr.Get("Featured-Positions")), &hp); err != nil {
			t.Fatal(err)
		}
		only("feast header "+v, sources(positionsOf(hp)), "node1")
	}

	ctx := context.Background()
	resp, err := front.serving.GetOnlineFeatures(ctx, boundedGRPCLookup(keys, 1000))
	if err != nil {
		t.Fatal(err)
	}
	only("grpc max_staleness_ms", sources(resp.Positions), "node1")
	resp, err = front.serving.GetOnlineFeatures(ctx, boundedGRPCLookup(keys, 0))
	if err != nil {
		t.Fatal(err)
	}
	only("grpc, no bound", sources(resp.Positions), "node0")

	var md metadata.MD
	mctx := metadata.AppendToOutgoingContext(ctx, "featured-max-staleness", "2s")
	if _, err := feastserving.NewServingServiceClient(front.conn).GetOnlineFeatures(mctx, boundedFeastLookup(keys), grpc.Header(&md)); err != nil {
		t.Fatal(err)
	}
	var fp []serving.Position
	if v := md.Get("featured-positions"); len(v) != 1 || json.Unmarshal([]byte(v[0]), &fp) != nil {
		t.Fatalf("feast grpc featured-positions %q", v)
	}
	only("feast grpc metadata", sources(positionsOf(fp)), "node1")

	// Node 1 is within any bound: it reads locally.
	st, body = nodes[1].post("/v1/features", boundedLookup(keys, map[string]any{"max_staleness_ms": 1}))
	if st != http.StatusOK {
		t.Fatalf("node 1, 1ms bound: %d %s", st, body)
	}
	_, ps = withoutPositions(t, body)
	only("node 1, 1ms bound", sources(positionsOf(ps)), "node1")
}

// TestStalenessBoundNoReplica: every replica is staler than the bound:
// 503 / UNAVAILABLE naming the partition, the owner's refusal saying the
// bound; never stale values, never NOT_FOUND.
func TestStalenessBoundNoReplica(t *testing.T) {
	nodes := staleNodes(t, 10*time.Second, 3*time.Second)
	front := nodes[0]
	p := keyPartition("u1", routePartitions)
	st, body := front.post("/v1/features", boundedLookup([]any{"u1"}, map[string]any{"max_staleness_ms": 1000}))
	if st != http.StatusServiceUnavailable || !strings.Contains(string(body), fmt.Sprintf("partition %d unavailable", p)) ||
		!strings.Contains(string(body), "within max staleness 1s") || !strings.Contains(string(body), "does not hold it within 1s") {
		t.Fatalf("%d %s, want 503 naming partition %d and the owner's refusal within 1s", st, body, p)
	}
	_, err := front.serving.GetOnlineFeatures(context.Background(), boundedGRPCLookup([]any{"u1"}, 1000))
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), fmt.Sprintf("partition %d unavailable", p)) {
		t.Fatalf("%v, want Unavailable naming partition %d", err, p)
	}
	// A node that is the only replica, staler than the bound, has no one to
	// forward to.
	alone := staleNodes(t, 10*time.Second)[0]
	st, body = alone.post("/v1/features", boundedLookup([]any{"u1"}, map[string]any{"max_staleness_ms": 1000}))
	if st != http.StatusServiceUnavailable || !strings.Contains(string(body), fmt.Sprintf("partition %d unavailable: no replica answered within max staleness 1s", p)) {
		t.Fatalf("the only replica, 10s stale, 1s bound: %d %s, want 503 naming the partition and the bound", st, body)
	}
	// Within node 1's 3s: the owner answers the forward.
	st, body = front.post("/v1/features", boundedLookup([]any{"u1"}, map[string]any{"max_staleness_ms": 5000}))
	if st != http.StatusOK {
		t.Fatalf("5s bound: %d %s", st, body)
	}
	_, ps := withoutPositions(t, body)
	if got := sources(positionsOf(ps)); len(got) != 1 || !got["node1"] {
		t.Fatalf("5s bound: answered by %v, want node1", got)
	}
}

// TestStalenessBoundOwnerRefuses: a front node that would forward to a
// 10s-stale owner anyway (its Placement knows nothing of staleness) gets
// the owner's refusal of a 1s bound, and the owner's answer without one.
func TestStalenessBoundOwnerRefuses(t *testing.T) {
	owner := newHarness(t, serving.Options{Placement: &stalePlacement{
		staticPlacement: &staticPlacement{self: 0, replicas: allOn(0), addrs: []string{""}}, stale: 10 * time.Second}})
	owner.apply(definitions)
	front := newHarness(t, serving.Options{Placement: &fixedPeers{peers: []string{owner.grpcAddr}}})
	front.apply(definitions)
	st, body := front.post("/v1/features", boundedLookup([]any{"u1"}, nil))
	if st != http.StatusOK {
		t.Fatalf("no bound: %d %s", st, body)
	}
	st, body = front.post("/v1/features", boundedLookup([]any{"u1"}, map[string]any{"max_staleness_ms": 1000}))
	if st != http.StatusServiceUnavailable || !strings.Contains(string(body), owner.grpcAddr+": does not hold it within 1s") {
		t.Fatalf("%d %s, want 503 with the owner's refusal", st, body)
	}
}

// TestStalenessBoundMalformed: each API refuses a malformed bound naming
// it; a node without a Placement accepts a valid one and ignores it.
func TestStalenessBoundMalformed(t *testing.T) {
	h := newHarness(t, serving.Options{})
	h.apply(definitions)
	keys := []any{"u1"}
	for _, v := range []any{-1, 1.5, "100", true, 1e30} {
		st, body := h.post("/v1/features", boundedLookup(keys, map[string]any{"max_staleness_ms": v}))
		if st != http.StatusBadRequest || !strings.Contains(string(body), "max_staleness_ms") {
			t.Errorf("max_staleness_ms %v: %d %s, want 400 naming the field", v, st, body)
		}
	}
	for _, path := range []string{"/v1/features", "/get-online-features"} {
		for _, v := range []string{"soon", "-5", "-1s", "1.5", "9999999999999"} {
			st, _, body := postHeader(t, h, path, boundedLookup(keys, nil), serving.StalenessHeader, v)
			if st != http.StatusBadRequest || !strings.Contains(string(body), serving.StalenessHeader) {
				t.Errorf("%s header %q: %d %s, want 400 naming the header", path, v, st, body)
			}
		}
		st, _, body := postHeader(t, h, path, boundedLookup(keys, nil), serving.StalenessHeader, "250ms")
		if st != http.StatusOK {
			t.Errorf("%s header 250ms without a Placement: %d %s, want it ignored", path, st, body)
		}
	}
	st, body := h.post("/v1/features", boundedLookup(keys, map[string]any{"max_staleness_ms": 250}))
	if st != http.StatusOK {
		t.Errorf("max_staleness_ms 250 without a Placement: %d %s, want it ignored", st, body)
	}

	ctx := context.Background()
	if _, err := h.serving.GetOnlineFeatures(ctx, boundedGRPCLookup(keys, -1)); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "max_staleness_ms") {
		t.Errorf("grpc max_staleness_ms -1: %v, want InvalidArgument naming the field", err)
	}
	if _, err := h.serving.GetOnlineFeatures(ctx, boundedGRPCLookup(keys, 250)); err != nil {
		t.Errorf("grpc max_staleness_ms 250 without a Placement: %v", err)
	}
	fc := feastserving.NewServingServiceClient(h.conn)
	bad := metadata.AppendToOutgoingContext(ctx, "featured-max-staleness", "later")
	if _, err := fc.GetOnlineFeatures(bad, boundedFeastLookup(keys)); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "featured-max-staleness") {
		t.Errorf("feast grpc metadata \"later\": %v, want InvalidArgument naming it", err)
	}
	good := metadata.AppendToOutgoingContext(ctx, "featured-max-staleness", "250")
	if _, err := fc.GetOnlineFeatures(good, boundedFeastLookup(keys)); err != nil {
		t.Errorf("feast grpc metadata 250 without a Placement: %v", err)
	}
}
