package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/goleak"

	"github.com/featured-dev/featured/internal/kafkatest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// The broker's group.min.session.timeout.ms is 6 s by default
// (scripts/kafka.sh keeps the default), the smallest the tests may use.
const testSessionTimeout = 6 * time.Second

// settleCap bounds every wait for the group: a few rebalances, or a session
// timeout and a rebalance, on a broker sharing 2 cores.
const settleCap = 60 * time.Second

// node is one member in a test, with what it reports caught up.
type node struct {
	id     string
	m      *Membership
	caught atomic.Pointer[[]int32]
}

func (n *node) setCaught(ps []int32) { n.caught.Store(&ps) }

func (n *node) caughtUp() []int32 {
	if p := n.caught.Load(); p != nil {
		return *p
	}
	return nil
}

// holdAll reports every partition the node holds in its current map, warm-ups
// included, as caught up: a node that consumes as fast as it is asked.
func (n *node) holdAll() {
	cur, _ := n.m.Current()
	var ps []int32
	for p := range cur.Roles(n.id) {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	n.setCaught(ps)
}

type harness struct {
	t       *testing.T
	brokers []string
	group   string
	parts   int
	probe   time.Duration // Config.ProbingInterval; zero for the default
}

func newHarness(t *testing.T, parts int) *harness {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	h := &harness{t: t, brokers: kafkatest.Brokers(t), group: "featured-cluster-test-" + hex.EncodeToString(b[:]), parts: parts}
	t.Cleanup(h.deleteTopic)
	return h
}

func testLogger() *slog.Logger {
	if testing.Verbose() && os.Getenv("CLUSTER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func (h *harness) config(n *node, prev *OwnerMap) Config {
	return Config{
		Brokers:         h.brokers,
		Group:           h.group,
		InstanceID:      n.id,
		Advertise:       n.id + ".test:9000",
		Partitions:      h.parts,
		Standbys:        1,
		MaxWarmups:      2,
		SessionTimeout:  testSessionTimeout,
		CaughtUp:        n.caughtUp,
		Previous:        prev,
		ProbingInterval: h.probe,
		Logger:          testLogger(),
	}
}

// join starts a member; it is closed at the end of the test (a second Close
// is a no-op).
func (h *harness) join(n *node, prev *OwnerMap) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := Join(ctx, h.config(n, prev))
	if err != nil {
		h.t.Fatal(err)
	}
	n.m = m
	h.t.Cleanup(m.Close)
}

func (h *harness) deleteTopic() {
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.brokers...))
	if err != nil {
		h.t.Error(err)
		return
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req := kmsg.NewPtrDeleteTopicsRequest()
	dt := kmsg.NewDeleteTopicsRequestTopic()
	dt.Topic = kmsg.StringPtr(h.group + MembersTopicSuffix)
	req.Topics = append(req.Topics, dt)
	req.TopicNames = append(req.TopicNames, h.group+MembersTopicSuffix)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		h.t.Errorf("delete membership topic: %v", err)
		return
	}
	for _, r := range resp.Topics {
		if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
			h.t.Errorf("delete membership topic: %v", err)
		}
	}
}

// waitFor polls cond every 50 ms until it holds, failing the test after
// settleCap with what's description.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(settleCap)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", settleCap, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// agreed waits until every node holds a map of the same generation naming
// exactly these nodes, and cond (if not nil) holds for it; it returns it.
func agreed(t *testing.T, what string, cond func(*OwnerMap) bool, nodes ...*node) *OwnerMap {
	t.Helper()
	var want []string
	for _, n := range nodes {
		want = append(want, n.id)
	}
	slices.Sort(want)
	var got *OwnerMap
	waitFor(t, what, func() bool {
		got = nil
		for _, n := range nodes {
			cur, _ := n.m.Current()
			if cur == nil || !slices.Equal(names(cur.Members), want) || (got != nil && cur.Generation != got.Generation) {
				return false
			}
			got = cur
		}
		return cond == nil || cond(got)
	})
	return got
}

// checkCover asserts every partition has exactly one active and r standbys.
func checkCover(t *testing.T, m *OwnerMap, r int) {
	t.Helper()
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	actives := map[int32]int{}
	for _, mb := range m.Members {
		for p, role := range m.Roles(mb.InstanceID) {
			if role == RoleActive {
				actives[p]++
			}
		}
	}
	for p := range int32(m.Partitions) {
		if actives[p] != 1 || len(m.Parts[p].Standbys) != r {
			t.Fatalf("partition %d: %d actives and %d standbys, want 1 and %d\n%s", p, actives[p], len(m.Parts[p].Standbys), r, dump(m))
		}
	}
}

func startThree(t *testing.T, h *harness) []*node {
	t.Helper()
	nodes := []*node{{id: "node-0"}, {id: "node-1"}, {id: "node-2"}}
	for _, n := range nodes {
		h.join(n, nil)
	}
	m := agreed(t, "3 members agree on one map", nil, nodes...)
	checkCover(t, m, 1)
	return nodes
}

func leaderOf(t *testing.T, nodes []*node) *node {
	t.Helper()
	var leader *node
	waitFor(t, "one member reports it balanced the current map", func() bool {
		leader = nil
		for _, n := range nodes {
			if n.m.Stats().Leader {
				if leader != nil {
					return false
				}
				leader = n
			}
		}
		return leader != nil
	})
	return leader
}

func TestMembershipAgree(t *testing.T) {
	h := newHarness(t, 12)
	nodes := startThree(t, h)
	m, _ := nodes[0].m.Current()
	for _, n := range nodes {
		st := n.m.Stats()
		if st.Generation != m.Generation || st.Rebalances == 0 {
			t.Fatalf("%s: stats %+v, want generation %d and rebalances counted", n.id, st, m.Generation)
		}
		mb, ok := m.Member(n.id)
		if !ok || mb.Advertise != n.id+".test:9000" {
			t.Fatalf("%s: map names %+v, want its advertised address", n.id, mb)
		}
		if acts := countRole(m, n.id, RoleActive); acts != 4 {
			t.Fatalf("%s: %d actives of 12 over 3 members, want 4", n.id, acts)
		}
	}
	if l := leaderOf(t, nodes); l.m.Stats().Balances == 0 {
		t.Fatalf("leader %s counted no balance", l.id)
	}
}

func countRole(m *OwnerMap, id string, want Role) int {
	c := 0
	for _, r := range m.Roles(id) {
		if r == want {
			c++
		}
	}
	return c
}

func TestMembershipScaleOutWarmsUp(t *testing.T) {
	h := newHarness(t, 12)
	nodes := startThree(t, h)
	for _, n := range nodes {
		n.holdAll()
	}
	before, _ := nodes[0].m.Current()

	n3 := &node{id: "node-3"}
	h.join(n3, nil)
	all := append(slices.Clone(nodes), n3)
	m := agreed(t, "4 members agree", nil, all...)
	checkCover(t, m, 1)
	roles := m.Roles(n3.id)
	var warm []int32
	for p, r := range roles {
		if r != RoleWarmup {
			t.Fatalf("the new member is %s for partition %d before it caught up; want warm-ups only\n%s", r, p, dump(m))
		}
		warm = append(warm, p)
	}
	if len(warm) != 2 {
		t.Fatalf("the new member warms up %v, want 2 partitions (max warm-ups)", warm)
	}
	for p := range int32(12) {
		if !slices.Equal(names(before.Replicas(p)), names(m.Replicas(p))) {
			t.Fatalf("partition %d: replicas %v became %v before the new member caught up", p, names(before.Replicas(p)), names(m.Replicas(p)))
		}
	}

	// The warm-ups catch up; the new member asks for a rebalance (KIP-568).
	slices.Sort(warm)
	n3.setCaught(warm)
	n3.m.Rebalance()
	m2 := agreed(t, "the caught-up warm-ups become actives", func(m2 *OwnerMap) bool {
		return m2.Generation > m.Generation
	}, all...)
	checkCover(t, m2, 1)
	for _, p := range warm {
		if r := m2.Roles(n3.id)[p]; r != RoleActive {
			t.Fatalf("partition %d: the new member caught it up but is %s\n%s", p, r, dump(m2))
		}
	}
}

func TestMembershipStaticRestartKeepsGeneration(t *testing.T) {
	h := newHarness(t, 12)
	nodes := startThree(t, h)
	leader := leaderOf(t, nodes)
	m, _ := nodes[0].m.Current()

	// A member and then the leader restart within the session timeout,
	// each with the map it last saw (kept in its data dir in production).
	var follower *node
	for _, n := range nodes {
		if n != leader {
			follower = n
			break
		}
	}
	for _, n := range []*node{follower, leader} {
		last, _ := n.m.Current()
		n.m.Close()
		h.join(n, last)
		got := agreed(t, n.id+" back in the group", nil, nodes...)
		if got.Generation != m.Generation {
			t.Fatalf("%s restarted: generation %d, want %d (no rebalance)", n.id, got.Generation, m.Generation)
		}
		if !samePlacement(got, m) {
			t.Fatalf("%s restarted: the map changed\n%s\n%s", n.id, dump(m), dump(got))
		}
	}
	// The restarted members got generation m.Generation from their joins,
	// which the broker answers only after any rebalance the join caused;
	// and a new member's join makes the next generation.
	n3 := &node{id: "node-3"}
	h.join(n3, nil)
	got := agreed(t, "4 members agree", nil, append(nodes, n3)...)
	if got.Generation != m.Generation+1 {
		t.Fatalf("after the restarts a join made generation %d, want %d: the restarts rebalanced", got.Generation, m.Generation+1)
	}
}

func TestMembershipKilledMemberIsReplaced(t *testing.T) {
	h := newHarness(t, 12)
	nodes := startThree(t, h)
	for _, n := range nodes {
		n.holdAll()
	}
	// A rebalance with everyone reporting what they hold, so the map knows
	// the standbys are caught up: node-0's metadata changed, so its forced
	// rejoin rebalances.
	m0, _ := nodes[0].m.Current()
	nodes[0].m.Rebalance()
	before := agreed(t, "a map from caught-up reports", func(m *OwnerMap) bool { return m.Generation > m0.Generation }, nodes...)

	// node-1 dies: closed, never back. The broker removes it after the
	// session timeout.
	dead := nodes[1]
	dead.m.Close()
	live := []*node{nodes[0], nodes[2]}
	after := agreed(t, "the live members agree without the dead one", nil, live...)
	checkCover(t, after, 1)
	for p := range int32(12) {
		if before.Members[before.Parts[p].Active].InstanceID != dead.id {
			continue
		}
		stby := before.Members[before.Parts[p].Standbys[0]].InstanceID
		if got := after.Members[after.Parts[p].Active].InstanceID; got != stby {
			t.Fatalf("partition %d: the dead member's active went to %s, want its caught-up standby %s", p, got, stby)
		}
	}
}

// describeMembers returns the instance IDs the broker lists in the group.
func (h *harness) describeMembers() []string {
	h.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.brokers...))
	if err != nil {
		h.t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req := kmsg.NewPtrDescribeGroupsRequest()
	req.Groups = []string{h.group}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		h.t.Fatal(err)
	}
	if len(resp.Groups) != 1 {
		h.t.Fatalf("describe group: %d groups", len(resp.Groups))
	}
	g := resp.Groups[0]
	if err := kerr.ErrorForCode(g.ErrorCode); err != nil {
		h.t.Fatal(err)
	}
	var ids []string
	for _, m := range g.Members {
		ids = append(ids, strp(m.InstanceID))
	}
	slices.Sort(ids)
	return ids
}

func TestMembershipCloseStaysLeaveGoes(t *testing.T) {
	h := newHarness(t, 4)
	nodes := startThree(t, h)
	nodes[2].m.Close()
	// A static member's Close sends no LeaveGroup: the broker keeps it
	// until the session timeout.
	if got := h.describeMembers(); !slices.Equal(got, []string{"node-0", "node-1", "node-2"}) {
		t.Fatalf("after node-2's Close the group lists %v, want it still there", got)
	}
	if err := nodes[1].m.Leave(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Leave removes it at once (the broker answered after removing it).
	if got := h.describeMembers(); slices.Contains(got, "node-1") {
		t.Fatalf("after node-1's Leave the group lists %v", got)
	}
	// Once node-2's session expires, node-0 alone holds everything.
	m := agreed(t, "node-0 alone", nil, nodes[0])
	checkCover(t, m, 0)
}

func TestMembershipProbingRebalance(t *testing.T) {
	h := newHarness(t, 8)
	h.probe = 100 * time.Millisecond
	nodes := startThree(t, h)
	for _, n := range nodes {
		n.holdAll()
	}
	n3 := &node{id: "node-3"}
	h.join(n3, nil)
	all := append(slices.Clone(nodes), n3)
	m := agreed(t, "4 members agree, the new one warming up", func(m *OwnerMap) bool { return len(m.Roles(n3.id)) > 0 }, all...)
	var warm []int32
	for p, r := range m.Roles(n3.id) {
		if r != RoleWarmup {
			t.Fatalf("partition %d: new member is %s before it caught up", p, r)
		}
		warm = append(warm, p)
	}
	// The warm-ups catch up and nobody calls Rebalance: the probe notices.
	slices.Sort(warm)
	n3.setCaught(warm)
	agreed(t, "the probe moves actives to the caught-up member", func(m2 *OwnerMap) bool {
		for _, p := range warm {
			if m2.Roles(n3.id)[p] != RoleActive {
				return false
			}
		}
		return true
	}, all...)
}

func TestMembershipDrainThenLeave(t *testing.T) {
	h := newHarness(t, 8)
	h.probe = 100 * time.Millisecond
	nodes := startThree(t, h)
	for _, n := range nodes {
		n.holdAll()
	}
	drained := nodes[2]
	drained.m.Drain()
	// Every node catches up on what it is given at once; the probes rejoin
	// with the new caught-up sets until the drained node holds nothing.
	var m *OwnerMap
	waitFor(t, "the drained node holds nothing", func() bool {
		for _, n := range nodes {
			n.holdAll()
		}
		m, _ = drained.m.Current()
		return len(m.Roles(drained.id)) == 0
	})
	checkCover(t, m, 1)
	if err := drained.m.Leave(context.Background()); err != nil {
		t.Fatal(err)
	}
	after := agreed(t, "the others agree without the drained node", nil, nodes[0], nodes[1])
	checkCover(t, after, 1)
}

func TestMembershipOtherPartitionCountIsLeftOut(t *testing.T) {
	h := newHarness(t, 6)
	nodes := startThree(t, h)
	m, _ := nodes[0].m.Current()

	odd := &node{id: "node-odd"}
	cfg := h.config(odd, nil)
	cfg.Partitions = 7
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	om, err := Join(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(om.Close)
	odd.m = om
	waitFor(t, "the member of P=7 counts the map it refused", func() bool { return om.Stats().GroupErrors > 0 })
	if cur, _ := om.Current(); cur != nil {
		t.Fatalf("the member of P=7 adopted a map of P=%d", cur.Partitions)
	}
	// The others agree on a map that leaves it out.
	got := agreed(t, "the three agree after the odd join", func(x *OwnerMap) bool { return x.Generation > m.Generation }, nodes...)
	checkCover(t, got, 1)
}
