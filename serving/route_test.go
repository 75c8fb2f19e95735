package serving_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	feastserving "github.com/featured-dev/featured/api/feast/serving"
	feasttypes "github.com/featured-dev/featured/api/feast/types"
	peerv1 "github.com/featured-dev/featured/api/featured/peer/v1"
	featuredv1 "github.com/featured-dev/featured/api/featured/v1"
	"github.com/featured-dev/featured/internal/auth"
	"github.com/featured-dev/featured/internal/partition"
	"github.com/featured-dev/featured/serving"
)

// routePartitions is P of the routing tests.
const routePartitions = 8

// staticPlacement is a fixed owner map: replicas[p] are the nodes (indexes
// into addrs) holding partition p, active first. Node self answers what it
// holds; it reports as positions its own name and an offset that encodes
// node and partition, so a test sees which replica answered.
type staticPlacement struct {
	self     int
	replicas [][]int
	mu       sync.Mutex
	addrs    []string // set once every node listens
}

func (s *staticPlacement) Partitions() int { return len(s.replicas) }

func (s *staticPlacement) Route(p int) (bool, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var peers []string
	local := false
	for _, n := range s.replicas[p] {
		if n == s.self {
			local = true
			continue
		}
		peers = append(peers, s.addrs[n])
	}
	return local, peers
}

func (s *staticPlacement) AppendPositions(dst []serving.Position, p int) []serving.Position {
	return append(dst, serving.Position{Source: fmt.Sprintf("node%d", s.self), Partition: p, Offset: int64(1000*s.self + p)})
}

func (s *staticPlacement) setAddrs(addrs []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addrs = addrs
}

// activeStandby places partition p's active on node p%n and its standby on
// the next node.
func activeStandby(nodes, parts int) [][]int {
	r := make([][]int, parts)
	for p := range r {
		r[p] = []int{p % nodes, (p + 1) % nodes}
	}
	return r
}

// keyPartition is the partition of an entity key as ingest places it: a
// string's bytes, an int64 in decimal.
func keyPartition(key any, n int) int {
	switch k := key.(type) {
	case string:
		return partition.Of(partition.AppendString(nil, k), n)
	case int64:
		return partition.Of(partition.AppendInt64(nil, k, partition.Decimal), n)
	}
	panic(fmt.Sprintf("key %T", key))
}

// cluster is 3 serving nodes on a static placement and a single-node
// reference holding everything.
type cluster struct {
	t          *testing.T
	nodes      []*harness
	placements []*staticPlacement
	ref        *harness
}

func newCluster(t *testing.T, opts serving.Options, replicas [][]int, nodes int) *cluster {
	t.Helper()
	c := &cluster{t: t, ref: newHarness(t, serving.Options{})}
	c.ref.apply(definitions)
	var addrs []string
	for i := range nodes {
		pl := &staticPlacement{self: i, replicas: replicas}
		o := opts
		o.Placement = pl
		h := newHarness(t, o)
		h.apply(definitions)
		c.nodes = append(c.nodes, h)
		c.placements = append(c.placements, pl)
		addrs = append(addrs, h.grpcAddr)
	}
	for _, pl := range c.placements {
		pl.setAddrs(addrs)
	}
	return c
}

// push sends events to the reference and to every replica of each
// event's partition.
func (c *cluster) push(source string, events ...event) {
	c.t.Helper()
	c.ref.push(source, events...)
	for _, e := range events {
		p := keyPartition(e.key, routePartitions)
		for _, n := range c.placements[0].replicas[p] {
			c.nodes[n].push(source, e)
		}
	}
}

// fill pushes users u0..u(users-1) and merchants 1..merchants, a few
// events each.
func (c *cluster) fill(users, merchants int) {
	c.t.Helper()
	var tx, mx []event
	for i := range users {
		for j := range 1 + i%3 {
			ms := nowMillis - int64(j+1)*int64(time.Minute/time.Millisecond)*7
			tx = append(tx, event{key: fmt.Sprintf("u%d", i), ms: ms, amount: f64(float64(i) + 0.25*float64(j)),
				items: i64(int64(i % 5)), merchant: str(fmt.Sprintf("m%d", (i+j)%4))})
		}
	}
	for i := 1; i <= merchants; i++ {
		mx = append(mx, event{key: int64(i), ms: nowMillis - 60_000, amount: f64(float64(i) * 1.5)})
	}
	c.push("transactions", tx...)
	c.push("merchant_events", mx...)
}

var routeUserRefs = []string{
	"user_spend:spend_7d", "user_spend:txn_count_1h", "user_spend:avg_amount_24h",
	"user_spend:last_merchant", "user_spend:max_items_1h", "user_spend:last_3_merchants",
}

func routeKeys(from, n int) []any {
	keys := make([]any, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("u%d", from+i)
	}
	return keys
}

// withoutPositions decodes a native response and drops its positions,
// returning them apart.
func withoutPositions(t *testing.T, body []byte) (map[string]any, []serving.Position) {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	var ps []serving.Position
	if raw, ok := m["positions"]; ok {
		b, _ := json.Marshal(raw)
		if err := json.Unmarshal(b, &ps); err != nil {
			t.Fatal(err)
		}
		delete(m, "positions")
	}
	return m, ps
}

// checkLookups compares every lookup API through node n with the
// reference, for keys; it returns the positions of the native answer.
func (c *cluster) checkLookups(n int, keys []any) []serving.Position {
	c.t.Helper()
	t := c.t
	h := c.nodes[n]
	native := map[string]any{"features": routeUserRefs, "entities": map[string]any{"user_id": keys}}
	st, want := c.ref.post("/v1/features", native)
	if st != http.StatusOK {
		t.Fatalf("reference: %d %s", st, want)
	}
	st, got := h.post("/v1/features", native)
	if st != http.StatusOK {
		t.Fatalf("node %d native: %d %s", n, st, got)
	}
	wm, _ := withoutPositions(t, want)
	gm, positions := withoutPositions(t, got)
	if d := cmp.Diff(wm, gm); d != "" {
		t.Fatalf("node %d native, %d keys (-reference +node):\n%s", n, len(keys), d)
	}
	if len(positions) == 0 {
		t.Fatalf("node %d native: no positions: %s", n, got)
	}

	// Feast: two entities per row, each view on its own key's partition.
	merchants := make([]any, len(keys))
	for i := range merchants {
		merchants[i] = int64(1 + i%7)
	}
	feast := map[string]any{
		"features": []string{"user_spend:spend_7d", "merchant_stats:volume_1d", "user_spend:last_3_merchants"},
		"entities": map[string]any{"user_id": keys, "merchant_id": merchants},
	}
	st, want = c.ref.post("/get-online-features", feast)
	if st != http.StatusOK {
		t.Fatalf("reference feast: %d %s", st, want)
	}
	b, _ := json.Marshal(feast)
	req, _ := http.NewRequest("POST", h.url+"/get-online-features", strings.NewReader(string(b)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	buf, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || string(buf) != string(want) {
		t.Fatalf("node %d feast, %d keys: %d\n got %s\nwant %s", n, len(keys), resp.StatusCode, buf, want)
	}
	var hdr []serving.Position
	if err := json.Unmarshal([]byte(resp.Header.Get("Featured-Positions")), &hdr); err != nil || len(hdr) == 0 {
		t.Fatalf("node %d feast: Featured-Positions %q: %v", n, resp.Header.Get("Featured-Positions"), err)
	}

	// featured.v1 gRPC.
	ctx := context.Background()
	vals := make([]*featuredv1.Value, len(keys))
	for i, k := range keys {
		vals[i] = &featuredv1.Value{Kind: &featuredv1.Value_StringVal{StringVal: k.(string)}}
	}
	greq := &featuredv1.GetOnlineFeaturesRequest{
		Kind:     &featuredv1.GetOnlineFeaturesRequest_Features{Features: &featuredv1.FeatureList{Val: routeUserRefs}},
		Entities: map[string]*featuredv1.RepeatedValue{"user_id": {Val: vals}},
	}
	gwant, err := c.ref.serving.GetOnlineFeatures(ctx, greq)
	if err != nil {
		t.Fatal(err)
	}
	ggot, err := h.serving.GetOnlineFeatures(ctx, greq)
	if err != nil {
		t.Fatalf("node %d grpc: %v", n, err)
	}
	if len(ggot.Positions) == 0 {
		t.Fatalf("node %d grpc: no positions", n)
	}
	ggot.Positions = nil
	if !proto.Equal(gwant, ggot) {
		t.Fatalf("node %d grpc, %d keys:\n got %v\nwant %v", n, len(keys), ggot, gwant)
	}

	// Feast's gRPC service.
	fvals := make([]*feasttypes.Value, len(keys))
	for i, k := range keys {
		fvals[i] = &feasttypes.Value{Val: &feasttypes.Value_StringVal{StringVal: k.(string)}}
	}
	fmv := make([]*feasttypes.Value, len(merchants))
	for i, m := range merchants {
		fmv[i] = &feasttypes.Value{Val: &feasttypes.Value_Int64Val{Int64Val: m.(int64)}}
	}
	freq := &feastserving.GetOnlineFeaturesRequest{
		Kind:     &feastserving.GetOnlineFeaturesRequest_Features{Features: &feastserving.FeatureList{Val: []string{"user_spend:spend_7d", "merchant_stats:volume_1d"}}},
		Entities: map[string]*feasttypes.RepeatedValue{"user_id": {Val: fvals}, "merchant_id": {Val: fmv}},
	}
	fwant, err := feastserving.NewServingServiceClient(c.ref.conn).GetOnlineFeatures(ctx, freq)
	if err != nil {
		t.Fatal(err)
	}
	var md metadata.MD
	fgot, err := feastserving.NewServingServiceClient(h.conn).GetOnlineFeatures(ctx, freq, grpc.Header(&md))
	if err != nil {
		t.Fatalf("node %d feast grpc: %v", n, err)
	}
	if !proto.Equal(fwant, fgot) {
		t.Fatalf("node %d feast grpc, %d keys:\n got %v\nwant %v", n, len(keys), fgot, fwant)
	}
	if v := md.Get("featured-positions"); len(v) != 1 || !strings.Contains(v[0], `"partition"`) {
		t.Fatalf("node %d feast grpc: featured-positions %q", n, v)
	}
	return positions
}

// TestRouteEqualsReference: 3 nodes, P=8, every partition on an active and
// a standby; lookups of every API through every node, of 1 and 100
// entities, equal a single node holding everything.
func TestRouteEqualsReference(t *testing.T) {
	c := newCluster(t, serving.Options{}, activeStandby(3, routePartitions), 3)
	c.fill(120, 10)
	forwarded := false
	for n := range c.nodes {
		for _, keys := range [][]any{routeKeys(7, 1), routeKeys(0, 100)} {
			positions := c.checkLookups(n, keys)
			// Every partition the keys touch is answered once, by a
			// replica that holds it.
			seen := map[int]bool{}
			for _, pos := range positions {
				var node int
				if _, err := fmt.Sscanf(pos.Source, "node%d", &node); err != nil {
					t.Fatalf("position %+v", pos)
				}
				if seen[pos.Partition] {
					t.Fatalf("node %d: partition %d answered twice: %+v", n, pos.Partition, positions)
				}
				seen[pos.Partition] = true
				reps := c.placements[n].replicas[pos.Partition]
				if node != reps[0] && node != reps[1] {
					t.Fatalf("node %d: partition %d answered by node%d, replicas %v", n, pos.Partition, node, reps)
				}
			}
			for _, k := range keys {
				if p := keyPartition(k, routePartitions); !seen[p] {
					t.Fatalf("node %d: key %v's partition %d has no position: %+v", n, k, p, positions)
				}
			}
		}
		if st := c.nodes[n].srv.RouterStats(); st.Forwards > 0 && len(st.ForwardedRows) > 0 {
			forwarded = true
		}
	}
	if !forwarded {
		t.Fatal("no node forwarded anything: the placement routes nothing")
	}
}

// TestRouteFailover: with a node stopped, lookups through the others
// still succeed, its partitions read from their other replica.
func TestRouteFailover(t *testing.T) {
	c := newCluster(t, serving.Options{}, activeStandby(3, routePartitions), 3)
	c.fill(100, 10)
	c.nodes[2].stopGRPC()
	for _, n := range []int{0, 1} {
		positions := c.checkLookups(n, routeKeys(0, 100))
		for _, pos := range positions {
			if pos.Source == "node2" {
				t.Fatalf("node %d: partition %d answered by the stopped node", n, pos.Partition)
			}
		}
	}
	// Node 1 forwards partitions 2 and 5 (active node 2, standby node 0):
	// they failed over.
	if st := c.nodes[1].srv.RouterStats(); st.Failovers == 0 || st.ForwardErrors == 0 {
		t.Fatalf("node 1: %+v, want failovers", st)
	}
	// Restarted, node 2 answers its partitions again once its down mark
	// passes: every lookup in between succeeds.
	c.nodes[2].startGRPC()
	deadline := time.Now().Add(30 * time.Second)
	for {
		back := false
		for _, pos := range c.checkLookups(1, routeKeys(0, 100)) {
			back = back || pos.Source == "node2"
		}
		if back {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("node 2 never answered again after its restart")
		}
		time.Sleep(50 * time.Millisecond) // polling, capped above
	}
}

// hangingPeer is a PeerService that answers nothing until its caller gives
// up.
type hangingPeer struct {
	peerv1.UnimplementedPeerServiceServer
	calls chan struct{}
}

func (h *hangingPeer) Read(ctx context.Context, _ *peerv1.ReadRequest) (*peerv1.ReadResponse, error) {
	select {
	case h.calls <- struct{}{}:
	default:
	}
	<-ctx.Done()
	return nil, ctx.Err()
}

func startHangingPeer(t *testing.T) (string, *hangingPeer) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hp := &hangingPeer{calls: make(chan struct{}, 1)}
	gs := grpc.NewServer()
	peerv1.RegisterPeerServiceServer(gs, hp)
	var wg sync.WaitGroup
	wg.Go(func() { _ = gs.Serve(lis) })
	t.Cleanup(func() {
		gs.Stop()
		wg.Wait()
	})
	return lis.Addr().String(), hp
}

// frontAndOwner is a front node holding nothing, whose peers for every
// partition are peers (addresses), and an owner holding everything.
func frontAndOwner(t *testing.T, opts serving.Options, peers func(owner string) []string) (front, owner *harness) {
	t.Helper()
	owner = newHarness(t, serving.Options{Placement: &staticPlacement{self: 0, replicas: allOn(0), addrs: []string{""}}})
	owner.apply(definitions)
	pl := &fixedPeers{peers: peers(owner.grpcAddr)}
	opts.Placement = pl
	front = newHarness(t, opts)
	front.apply(definitions)
	return front, owner
}

func allOn(node int) [][]int {
	r := make([][]int, routePartitions)
	for p := range r {
		r[p] = []int{node}
	}
	return r
}

// fixedPeers answers nothing locally and names the same peers for every
// partition.
type fixedPeers struct{ peers []string }

func (f *fixedPeers) Partitions() int                                                  { return routePartitions }
func (f *fixedPeers) Route(int) (bool, []string)                                       { return false, f.peers }
func (f *fixedPeers) AppendPositions(dst []serving.Position, _ int) []serving.Position { return dst }

// TestRouteHangingPeer: a peer that never answers costs one forward
// timeout, then the standby answers; with a forward timeout longer than
// the caller's deadline, the caller gets DEADLINE_EXCEEDED, not a hang.
func TestRouteHangingPeer(t *testing.T) {
	hang, hp := startHangingPeer(t)
	front, owner := frontAndOwner(t, serving.Options{ForwardTimeout: 100 * time.Millisecond},
		func(owner string) []string { return []string{hang, owner} })
	owner.push("transactions", event{key: "u1", ms: nowMillis - 1000, amount: f64(2)})
	keys := []any{"u1"}
	native := map[string]any{"features": routeUserRefs, "entities": map[string]any{"user_id": keys}}
	st, body := front.post("/v1/features", native)
	if st != http.StatusOK || !strings.Contains(string(body), `"source":"node0"`) {
		t.Fatalf("through a hanging active: %d %s", st, body)
	}
	select {
	case <-hp.calls:
	default:
		t.Fatal("the hanging peer was never asked")
	}
	if st := front.srv.RouterStats(); st.Failovers == 0 {
		t.Fatalf("%+v: want a failover", st)
	}

	slow, _ := frontAndOwner(t, serving.Options{ForwardTimeout: time.Hour},
		func(owner string) []string { return []string{hang, owner} })
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := slow.serving.GetOnlineFeatures(ctx, &featuredv1.GetOnlineFeaturesRequest{
		Kind:     &featuredv1.GetOnlineFeaturesRequest_Features{Features: &featuredv1.FeatureList{Val: routeUserRefs}},
		Entities: map[string]*featuredv1.RepeatedValue{"user_id": {Val: []*featuredv1.Value{{Kind: &featuredv1.Value_StringVal{StringVal: "u1"}}}}},
	})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("forward timeout past the caller's deadline: %v, want DeadlineExceeded", err)
	}
}

// TestRouteNoReplica: rows of a partition no replica answers fail the
// lookup with 503 / UNAVAILABLE naming the partition, never NOT_FOUND.
func TestRouteNoReplica(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := lis.Addr().String()
	lis.Close()
	front := newHarness(t, serving.Options{Placement: &fixedPeers{peers: []string{gone}}})
	front.apply(definitions)
	req, _ := http.NewRequest("POST", front.url+"/v1/features",
		strings.NewReader(`{"features":["user_spend:spend_7d"],"entities":{"user_id":["u1"]}}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("%d Retry-After %q, want 503 and 1", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	p := keyPartition("u1", routePartitions)
	_, err = front.serving.GetOnlineFeatures(context.Background(), &featuredv1.GetOnlineFeaturesRequest{
		Kind:     &featuredv1.GetOnlineFeaturesRequest_Features{Features: &featuredv1.FeatureList{Val: []string{"user_spend:spend_7d"}}},
		Entities: map[string]*featuredv1.RepeatedValue{"user_id": {Val: []*featuredv1.Value{{Kind: &featuredv1.Value_StringVal{StringVal: "u1"}}}}},
	})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), fmt.Sprintf("partition %d unavailable", p)) {
		t.Fatalf("%v, want Unavailable naming partition %d", err, p)
	}
}

// TestRouteGeneration: an owner whose registry generation is not the
// front node's refuses with FAILED_PRECONDITION; the front node reads from
// the next replica, or answers UNAVAILABLE when none is left.
func TestRouteGeneration(t *testing.T) {
	c := newCluster(t, serving.Options{}, activeStandby(3, routePartitions), 3)
	c.fill(40, 3)
	// Node 2 moves on by one generation (a view only it has).
	c.nodes[2].apply(strings.Replace(definitions, "feature_services:", `  - name: extra
    entity: user
    source: transactions
    ttl: 1d
    features:
      - {name: n, aggregation: count, window: 1h}
feature_services:`, 1))
	_, err := peerv1.NewPeerServiceClient(c.nodes[2].conn).Read(context.Background(), &peerv1.ReadRequest{
		Generation: c.nodes[0].reg.Snapshot().Generation(), Partitions: routePartitions,
	})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "generation") {
		t.Fatalf("Read at another generation: %v, want FailedPrecondition naming it", err)
	}
	// Node 1 forwards partitions 2 and 5 to node 2 first, then node 0.
	for _, pos := range c.checkLookups(1, routeKeys(0, 40)) {
		if pos.Source == "node2" {
			t.Fatalf("partition %d answered by the node at another generation", pos.Partition)
		}
	}

	// A front whose only replica is at another generation: UNAVAILABLE.
	front, _ := frontAndOwner(t, serving.Options{}, func(owner string) []string { return []string{c.nodes[2].grpcAddr} })
	st, body := front.post("/v1/features", map[string]any{"features": []string{"user_spend:spend_7d"}, "entities": map[string]any{"user_id": []any{"u1"}}})
	if st != http.StatusServiceUnavailable || !strings.Contains(string(body), "generation") {
		t.Fatalf("%d %s, want 503 naming the generation", st, body)
	}
}

// TestRouteViewLimitedToken: a view-limited token is refused on a forward
// as it is locally, by the owner's own keyring.
func TestRouteViewLimitedToken(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.yaml")
	writeTokens(t, path, tokenFile)
	k, err := auth.Open(path, auth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	withAuth := serving.Options{
		Middleware:   serving.Middleware{Auth: serving.AuthMiddleware(k, serving.AuthOptions{})},
		Interceptors: serving.Interceptors{Auth: serving.AuthInterceptor(k)},
	}
	owner := newHarness(t, serving.Options{
		Placement:    &staticPlacement{self: 0, replicas: allOn(0), addrs: []string{""}},
		Middleware:   withAuth.Middleware,
		Interceptors: withAuth.Interceptors,
	})
	owner.apply(definitions)
	// The front node checks no token itself: only the owner can refuse.
	front := newHarness(t, serving.Options{Placement: &fixedPeers{peers: []string{owner.grpcAddr}}})
	front.apply(definitions)

	lookup := func(token string, refs []string) (int, string) {
		b, _ := json.Marshal(map[string]any{"features": refs, "entities": map[string]any{"user_id": []any{"u1"}}})
		req, _ := http.NewRequest("POST", front.url+"/v1/features", strings.NewReader(string(b)))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(body)
	}
	if st, body := lookup("viewer", []string{"user_spend:spend_7d"}); st != http.StatusOK {
		t.Fatalf("viewer reads user_spend: %d %s", st, body)
	}
	if st, body := lookup("merch", []string{"user_spend:spend_7d"}); st != http.StatusForbidden || !strings.Contains(body, "user_spend") {
		t.Fatalf("merch reads user_spend through a forward: %d %s, want 403 naming the view", st, body)
	}
	if st, body := lookup("svcreader", []string{"user_spend:spend_7d"}); st != http.StatusForbidden {
		t.Fatalf("svcreader reads a feature list: %d %s, want 403", st, body)
	}
	if st, body := lookup("nobody", []string{"user_spend:spend_7d"}); st != http.StatusUnauthorized {
		t.Fatalf("unknown token: %d %s, want 401", st, body)
	}
	// Locally, on the owner, the same answers.
	ah := &authHarness{harness: owner}
	if st, body, _ := ah.as("merch", "POST", "/v1/features", "application/json",
		`{"features":["user_spend:spend_7d"],"entities":{"user_id":["u1"]}}`); st != http.StatusForbidden {
		t.Fatalf("merch locally: %d %s, want 403", st, body)
	}
	// A feature service the token may read is allowed whole on the owner.
	svc := map[string]any{"feature_service": "fraud_model_v1", "entities": map[string]any{"user_id": []any{"u1"}}}
	b, _ := json.Marshal(svc)
	req, _ := http.NewRequest("POST", front.url+"/v1/features", strings.NewReader(string(b)))
	req.Header.Set("Authorization", "Bearer svcreader")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("svcreader reads its service through a forward: %d", resp.StatusCode)
	}

	// The Read itself, straight to the owner, with a view-limited token.
	conn, err := grpc.NewClient(owner.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer merch")
	_, err = peerv1.NewPeerServiceClient(conn).Read(ctx, &peerv1.ReadRequest{
		Generation: owner.reg.Snapshot().Generation(), Partitions: routePartitions,
		Views: []*peerv1.ViewRead{{View: "user_spend", Version: 1, Features: []uint32{0}}},
	})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("Read of user_spend as merch: %v, want PermissionDenied", err)
	}
}

// TestRouteConcurrent: lookups through every node at once share the peer
// connections, the plans' peer views and the down marks without a race,
// and each equals the reference.
func TestRouteConcurrent(t *testing.T) {
	c := newCluster(t, serving.Options{}, activeStandby(3, routePartitions), 3)
	c.fill(60, 3)
	native := map[string]any{"features": routeUserRefs, "entities": map[string]any{"user_id": routeKeys(0, 60)}}
	st, want := c.ref.post("/v1/features", native)
	if st != http.StatusOK {
		t.Fatalf("reference: %d %s", st, want)
	}
	wm, _ := withoutPositions(t, want)
	body, _ := json.Marshal(native)
	var wg sync.WaitGroup
	errs := make(chan error, 24)
	for g := range 6 {
		wg.Go(func() {
			h := c.nodes[g%3]
			for range 4 {
				resp, err := http.Post(h.url+"/v1/features", "application/json", strings.NewReader(string(body)))
				if err != nil {
					errs <- err
					return
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("node %d: %d %s %v", g%3, resp.StatusCode, got, err)
					return
				}
				var gm map[string]any
				if err := json.Unmarshal(got, &gm); err != nil {
					errs <- err
					return
				}
				delete(gm, "positions")
				if d := cmp.Diff(wm, gm); d != "" {
					errs <- fmt.Errorf("node %d (-reference +node):\n%s", g%3, d)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// compoundSource and compoundView add a view keyed by (merchant, user) to definitions:
// a compound key lives in its first part's partition, so a routed lookup
// reads it as one unit there.
const compoundSource = `  - name: visits
    kind: push
    entity_key: [merchant_id, user_id]
    event_time: ts
    fields: {amount: float64}
`

const compoundView = `
  - name: merchant_user
    entities: [merchant, user]
    source: visits
    ttl: 1d
    features:
      - {name: visits_1d, aggregation: count, window: 1d}
      - {name: spent_1d, aggregation: sum, field: amount, window: 1d}
`

// TestRouteCompound: Feast lookups joining a compound view with the views of
// its parts, through every node of a routed cluster, equal the reference.
func TestRouteCompound(t *testing.T) {
	defs := strings.Replace(definitions, "feature_views:\n", compoundSource+"feature_views:\n"+strings.TrimPrefix(compoundView, "\n"), 1)
	c := &cluster{t: t, ref: newHarness(t, serving.Options{})}
	c.ref.apply(defs)
	replicas := activeStandby(3, routePartitions)
	var addrs []string
	for i := range 3 {
		pl := &staticPlacement{self: i, replicas: replicas}
		h := newHarness(t, serving.Options{Placement: pl})
		h.apply(defs)
		c.nodes = append(c.nodes, h)
		c.placements = append(c.placements, pl)
		addrs = append(addrs, h.grpcAddr)
	}
	for _, pl := range c.placements {
		pl.setAddrs(addrs)
	}
	c.fill(12, 6)
	var visits []map[string]any
	merchants, users := []any{}, []any{}
	for m := 1; m <= 6; m++ {
		for u := range 12 {
			if (m+u)%3 == 0 {
				continue // some pairs never met: NOT_FOUND through every node
			}
			visits = append(visits, map[string]any{"merchant_id": m, "user_id": fmt.Sprintf("u%d", u),
				"ts": nowMillis - int64(m*1000+u), "amount": float64(m) + float64(u)/4})
			merchants, users = append(merchants, m), append(users, fmt.Sprintf("u%d", u))
		}
	}
	// Every pair goes to every replica of its first part's (the merchant's)
	// partition, as a Kafka topic keyed by merchant_id would place it.
	pushTo := func(h *harness, evs []map[string]any) {
		t.Helper()
		if st, body := h.post("/v1/push", map[string]any{"source": "visits", "events": evs}); st != http.StatusOK {
			t.Fatalf("push: %d %s", st, body)
		}
	}
	pushTo(c.ref, visits)
	for _, e := range visits {
		p := keyPartition(int64(e["merchant_id"].(int)), routePartitions)
		for _, n := range replicas[p] {
			pushTo(c.nodes[n], []map[string]any{e})
		}
	}
	merchants, users = append(merchants, 3), append(users, "u0") // (3, u0) never met
	req := map[string]any{
		"features": []string{"merchant_user:visits_1d", "merchant_user:spent_1d", "user_spend:spend_7d", "merchant_stats:volume_1d"},
		"entities": map[string]any{"merchant_id": merchants, "user_id": users},
	}
	st, want := c.ref.post("/get-online-features", req)
	if st != http.StatusOK {
		t.Fatalf("reference: %d %s", st, want)
	}
	if !strings.Contains(string(want), `"NOT_FOUND"`) || !strings.Contains(string(want), `"PRESENT"`) {
		t.Fatalf("the reference answer should hold found and missing pairs: %s", want)
	}
	for n, h := range c.nodes {
		st, got := h.post("/get-online-features", req)
		if st != http.StatusOK {
			t.Fatalf("node %d: %d %s", n, st, got)
		}
		if string(got) != string(want) {
			t.Errorf("node %d answers\n%s\nthe reference\n%s", n, got, want)
		}
	}
}
