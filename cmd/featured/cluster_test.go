package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/featured-dev/featured/aggregate/aggregatetest"
	featuredv1 "github.com/featured-dev/featured/api/featured/v1"
	"github.com/featured-dev/featured/cluster/replicas"
	"github.com/featured-dev/featured/internal/kafkatest"
	"github.com/featured-dev/featured/internal/testdefs"
	"github.com/featured-dev/featured/registry"
)

// clusterPartitions is the test topic's partition count P.
const clusterP = 8

// clusterRig is the cluster test's world: the topic, its stream, the
// nodes, and the lookups running through them.
type clusterRig struct {
	t       *testing.T
	brokers []string
	topic   string
	group   string
	dir     string
	defs    string
	view    *registry.View
	refs    []string
	streams map[string][]aggregatetest.Event
	users   []string

	// produced is how many rounds (one event of every user) the topic
	// holds; the reference is the streams cut there.
	produced atomic.Int64

	// The push feed: pstreams pushed through the nodes into pview's
	// source, pushed rounds of them acknowledged.
	pview    *registry.View
	prefs    []string
	pstreams map[string][]aggregatetest.Event
	pushed   atomic.Int64

	// nodeArgs are more flags for every node (TestClusterHandover's).
	nodeArgs []string

	mu    sync.Mutex
	nodes map[string]*clusterNodeProc // by instance name
	live  []string                    // the nodes lookups go to
}

type clusterNodeProc struct {
	name, data, http, grpc string
	s                      *server
}

func newClusterRig(t *testing.T, users, events int) *clusterRig {
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.CreateTopic(t, brokers, "cluster", clusterP)
	t.Cleanup(func() {
		kafkatest.DeleteTopic(t, brokers, topic+".dlq")
		kafkatest.DeleteTopic(t, brokers, "featured-"+topic+".members")
		kafkatest.DeleteTopic(t, brokers, "featured-"+topic+".push.pushed")
		kafkatest.DeleteTopic(t, brokers, "featured-"+topic+".push.pushed.dlq")
	})
	dir := t.TempDir()
	r := &clusterRig{t: t, brokers: brokers, topic: topic, group: "featured-" + topic, dir: dir,
		nodes: map[string]*clusterNodeProc{},
		// A push source too, with its own view: pushes through any node
		// reach every replica through the push topic.
		defs: testdefs.Doc([]string{testdefs.Source("tx", "kafka", topic), testdefs.Source("pushed", "push", "")},
			[]string{testdefs.View("spend", "tx", "2d"), testdefs.View("pspend", "pushed", "2d")})}
	if err := os.WriteFile(filepath.Join(dir, "defs.yaml"), []byte(r.defs), 0o644); err != nil {
		t.Fatal(err)
	}
	r.view = compiledView(t, r.defs, "spend")
	r.refs = viewRefs(r.view)
	r.pview = compiledView(t, r.defs, "pspend")
	r.prefs = viewRefs(r.pview)
	r.streams = streamsFor(users, 1414, events, time.Now())
	r.pstreams = streamsFor(users, 2828, events, time.Now())
	for u := range r.streams {
		r.users = append(r.users, u)
	}
	slices.Sort(r.users)
	return r
}

// produce writes rounds [from, to) of the stream, a round at a time with a
// pause between, so that it runs while the test does other things.
func (r *clusterRig) produce(from, to int, pause time.Duration) {
	w := kafkatest.NewWriter(r.t, r.brokers, r.topic)
	for i := from; i < to; i++ {
		var recs []*kgo.Record
		for _, u := range r.users {
			b, _ := json.Marshal(eventObject(u, r.streams[u][i]))
			recs = append(recs, &kgo.Record{Key: []byte(u), Value: b})
		}
		if err := w.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
			r.t.Errorf("produce round %d: %v", i, err)
			return
		}
		r.produced.Store(int64(i + 1))
		time.Sleep(pause)
	}
}

// push pushes rounds [from, to) of the push feed, each round one push of
// every user's event with a batch ID, through a random live node, retried
// (on any node) until acknowledged: a retry of a push that was produced is
// applied once.
func (r *clusterRig) push(from, to int, pause time.Duration) {
	for i := from; i < to; i++ {
		var evs []map[string]any
		for _, u := range r.users {
			evs = append(evs, eventObject(u, r.pstreams[u][i]))
		}
		b, _ := json.Marshal(map[string]any{"source": "pushed", "events": evs, "batch_id": fmt.Sprintf("round-%d", i)})
		deadline := time.Now().Add(30 * time.Second)
		for {
			nodes := r.liveNodes()
			n := nodes[rand.IntN(len(nodes))]
			resp, err := http.Post("http://"+n.http+"/v1/push", "application/json", bytes.NewReader(b))
			if err == nil {
				var body bytes.Buffer
				body.ReadFrom(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					if !strings.Contains(body.String(), `"positions"`) {
						r.t.Errorf("push through %s: %s; want positions in cluster mode", n.name, body.String())
					}
					break
				}
				err = fmt.Errorf("%d %s", resp.StatusCode, body.String())
			}
			if time.Now().After(deadline) {
				r.t.Errorf("push round %d: not acknowledged within 30s: %v", i, err)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		r.pushed.Store(int64(i + 1))
		time.Sleep(pause)
	}
}

// startNode starts (or restarts, on the same data dir and addresses) the
// node called name.
func (r *clusterRig) startNode(name string) *clusterNodeProc {
	r.t.Helper()
	r.mu.Lock()
	n := r.nodes[name]
	if n == nil {
		n = &clusterNodeProc{name: name, data: filepath.Join(r.dir, name), http: freePort(r.t), grpc: freePort(r.t)}
		r.nodes[name] = n
	}
	r.mu.Unlock()
	args := []string{"--kafka-brokers", strings.Join(r.brokers, ","), "--apply", filepath.Join(r.dir, "defs.yaml"),
		"--partitions", strconv.Itoa(clusterP), "--commit-interval", "2ms",
		"--cluster-group", r.group, "--cluster-instance", name, "--cluster-advertise", n.grpc,
		"--cluster-session-timeout", "6s", "--standbys", "1", "--log-level", "debug"}
	n.s = startServerAt(r.t, n.data, n.http, n.grpc, append(args, r.nodeArgs...)...)
	r.setLive(name, true)
	return n
}

func (r *clusterRig) setLive(name string, live bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.live = slices.DeleteFunc(r.live, func(s string) bool { return s == name })
	if live {
		r.live = append(r.live, name)
	}
}

func (r *clusterRig) liveNodes() []*clusterNodeProc {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*clusterNodeProc, 0, len(r.live))
	for _, name := range r.live {
		out = append(out, r.nodes[name])
	}
	return out
}

// status reads a node's cluster status.
func (n *clusterNodeProc) status(t *testing.T) (*replicas.Status, error) {
	resp, err := http.Get("http://" + n.http + "/v1/status")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Cluster *replicas.Status `json:"cluster"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	if body.Cluster == nil {
		return nil, fmt.Errorf("no cluster in /v1/status")
	}
	return body.Cluster, nil
}

// waitFor polls cond every 100ms until it holds or limit passes.
func (r *clusterRig) waitFor(what string, limit time.Duration, cond func() (bool, string)) time.Duration {
	r.t.Helper()
	start := time.Now()
	last := ""
	for {
		ok, why := cond()
		if ok {
			return time.Since(start)
		}
		last = why
		if time.Since(start) > limit {
			r.dumpLogs()
			r.t.Fatalf("%s: not after %s: %s", what, limit, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (r *clusterRig) dumpLogs() {
	for _, n := range r.liveNodes() {
		logs := n.s.logs.String()
		if len(logs) > 6000 {
			logs = logs[len(logs)-6000:]
		}
		r.t.Logf("--- %s (tail):\n%s", n.name, logs)
	}
}

// settled says whether every live node follows one map of the given
// members, in which every partition has an active and standbys and no
// warm-ups, every member is the active of some partition (a node added
// took partitions over), and every live node answers the partitions it
// holds itself.
func (r *clusterRig) settled(members ...string) (bool, string) {
	var gen int32 = -1
	for _, n := range r.liveNodes() {
		st, err := n.status(r.t)
		if err != nil {
			return false, err.Error()
		}
		if gen >= 0 && st.Generation != gen {
			return false, fmt.Sprintf("%s at generation %d, another at %d", n.name, st.Generation, gen)
		}
		gen = st.Generation
		var names []string
		for _, m := range st.Members {
			names = append(names, m.Instance)
		}
		if !slices.Equal(names, members) {
			return false, fmt.Sprintf("%s: members %v, want %v", n.name, names, members)
		}
		actives := map[string]int{}
		for _, p := range st.Partitions {
			actives[p.Active]++
		}
		for _, m := range members {
			if actives[m] == 0 {
				return false, fmt.Sprintf("%s: %s is the active of no partition: %v", n.name, m, actives)
			}
		}
		for _, p := range st.Partitions {
			if p.Active == "" || len(p.Warmups) > 0 || len(p.Standbys) != min(1, len(members)-1) {
				return false, fmt.Sprintf("%s: partition %d: active %q standbys %v warmups %v", n.name, p.Partition, p.Active, p.Standbys, p.Warmups)
			}
			if p.Role != "none" && !p.Local {
				return false, fmt.Sprintf("%s: partition %d (%s) not answered locally (lag %d)", n.name, p.Partition, p.Role, p.LagRecords)
			}
		}
	}
	return true, ""
}

// cut is streams cut at k rounds: the reference of what was produced or
// pushed so far.
func cut(streams map[string][]aggregatetest.Event, k int) map[string][]aggregatetest.Event {
	out := make(map[string][]aggregatetest.Event, len(streams))
	for u, evs := range streams {
		out[u] = evs[:k]
	}
	return out
}

// equalEverywhere reports whether lookups of every user through every live
// node (native HTTP, 1 and all users; Feast HTTP and gRPC, all users)
// equal the brute-force reference of what was produced.
func (r *clusterRig) equalEverywhere() (bool, string) {
	ref, pref := cut(r.streams, int(r.produced.Load())), cut(r.pstreams, int(r.pushed.Load()))
	for _, n := range r.liveNodes() {
		if ok, why := r.nodeEqual(n, r.view, r.refs, ref); !ok {
			return false, n.name + ": " + why
		}
		if ok, why := r.nodeEqual(n, r.pview, r.prefs, pref); !ok {
			return false, n.name + " (pushed): " + why
		}
	}
	return true, ""
}

func (r *clusterRig) nodeEqual(n *clusterNodeProc, view *registry.View, refs []string, ref map[string][]aggregatetest.Event) (bool, string) {
	specs := view.Layout.Specs()
	one := r.users[rand.IntN(len(r.users))]
	for _, users := range [][]string{{one}, r.users} {
		native, err := nativeLookup(n.http, refs, users)
		if err != nil {
			return false, err.Error()
		}
		for i, row := range native.Rows {
			for f, spec := range specs {
				kind := spec.Op.ResultKind(spec.FieldKind)
				got := resultOf(r.t, kind, spec.FieldKind, row.Values[f], row.Statuses[f], row.EventMs[f])
				want := aggregatetest.Reference(specs, view.Layout.TTLMillis(), ref[users[i]], f, native.ReadAtMs)
				if !aggregatetest.Equal(got, want, 1e-9) {
					return false, fmt.Sprintf("native %s %s: got %+v, want %+v", users[i], refs[f], got, want)
				}
			}
		}
		// Feast's endpoint and gRPC against the native answer just read:
		// the same rows, values and statuses. A window may move between
		// the two reads; the caller polls again.
		want := nativeCells(native)
		feast, err := feastLookup(n.http, refs, users)
		if err != nil {
			return false, err.Error()
		}
		if !slices.Equal(feast, want) {
			return false, fmt.Sprintf("feast answer differs from native:\n%v\n%v", feast, want)
		}
		g, err := grpcLookup(n.grpc, refs, users)
		if err != nil {
			return false, err.Error()
		}
		if !slices.Equal(g, want) {
			return false, fmt.Sprintf("grpc answer differs from native:\n%v\n%v", g, want)
		}
	}
	return true, ""
}

func nativeLookup(addr string, refs, users []string) (nativeResponse, error) {
	var r nativeResponse
	b, _ := json.Marshal(map[string]any{"features": refs, "entities": map[string]any{"user_id": users}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+addr+"/v1/features", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	if resp.StatusCode != 200 {
		return r, fmt.Errorf("native lookup: %d %s", resp.StatusCode, buf.Bytes())
	}
	if err := json.Unmarshal(buf.Bytes(), &r); err != nil {
		return r, err
	}
	if len(r.Rows) != len(users) {
		return r, fmt.Errorf("native lookup: %d rows for %d users", len(r.Rows), len(users))
	}
	return r, nil
}

// clusterCell renders one value for comparison across APIs: numbers as float64,
// lists element by element.
func clusterCell(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case json.Number:
		f, _ := v.Float64()
		return strconv.FormatFloat(f, 'g', -1, 64)
	case int64:
		return strconv.FormatFloat(float64(v), 'g', -1, 64)
	case string:
		return strconv.Quote(v)
	case bool:
		return strconv.FormatBool(v)
	case []any:
		parts := make([]string, len(v))
		for i, x := range v {
			parts[i] = clusterCell(x)
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	return fmt.Sprintf("?%T", v)
}

// nativeCells is row-major "status value" per cell.
func nativeCells(r nativeResponse) []string {
	var out []string
	for _, row := range r.Rows {
		for f := range row.Values {
			var v any
			json.Unmarshal(row.Values[f], &v)
			out = append(out, row.Statuses[f]+" "+clusterCell(v))
		}
	}
	return out
}

func feastLookup(addr string, refs, users []string) ([]string, error) {
	b, _ := json.Marshal(map[string]any{"features": refs, "entities": map[string]any{"user_id": users}})
	resp, err := http.Post("http://"+addr+"/get-online-features", "application/json", bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("feast lookup: %d %s", resp.StatusCode, buf.Bytes())
	}
	var body struct {
		Results []struct {
			Values   []any    `json:"values"`
			Statuses []string `json:"statuses"`
		} `json:"results"`
	}
	if err := json.Unmarshal(buf.Bytes(), &body); err != nil {
		return nil, err
	}
	if len(body.Results) != 1+len(refs) {
		return nil, fmt.Errorf("feast lookup: %d columns for %d features and the key", len(body.Results), len(refs))
	}
	var out []string
	for e := range users {
		for f := range refs {
			col := body.Results[1+f]
			out = append(out, col.Statuses[e]+" "+clusterCell(col.Values[e]))
		}
	}
	return out, nil
}

func grpcValue(v *featuredv1.Value) any {
	switch k := v.GetKind().(type) {
	case *featuredv1.Value_Int64Val:
		return k.Int64Val
	case *featuredv1.Value_DoubleVal:
		return k.DoubleVal
	case *featuredv1.Value_StringVal:
		return k.StringVal
	case *featuredv1.Value_BoolVal:
		return k.BoolVal
	case *featuredv1.Value_ListVal:
		out := []any{}
		for _, x := range k.ListVal.GetVal() {
			out = append(out, grpcValue(x))
		}
		return out
	}
	return nil
}

func grpcLookup(addr string, refs, users []string) ([]string, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	rv := &featuredv1.RepeatedValue{}
	for _, u := range users {
		rv.Val = append(rv.Val, &featuredv1.Value{Kind: &featuredv1.Value_StringVal{StringVal: u}})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := featuredv1.NewServingServiceClient(conn).GetOnlineFeatures(ctx, &featuredv1.GetOnlineFeaturesRequest{
		Kind:     &featuredv1.GetOnlineFeaturesRequest_Features{Features: &featuredv1.FeatureList{Val: refs}},
		Entities: map[string]*featuredv1.RepeatedValue{"user_id": rv},
	})
	if err != nil {
		return nil, fmt.Errorf("grpc lookup: %w", err)
	}
	if len(resp.Results) != 1+len(refs) {
		return nil, fmt.Errorf("grpc lookup: %d columns for %d features and the key", len(resp.Results), len(refs))
	}
	var out []string
	for e := range users {
		for f := range refs {
			col := resp.Results[1+f]
			out = append(out, col.Statuses[e].String()+" "+clusterCell(grpcValue(col.Values[e])))
		}
	}
	return out, nil
}

// loader runs lookups through the live nodes until stopped: each lookup of
// 1 or 10 users goes to a random live node and is retried on another one
// within a deadline, as a client behind a load balancer would.
type loader struct {
	r       *clusterRig
	stop    chan struct{}
	done    chan struct{}
	lookups atomic.Int64
	phase   atomic.Value // string: what the test is doing
	mu      sync.Mutex
	// attempts that failed (the lookup may have succeeded on a retry),
	// and lookups that failed every retry within the deadline.
	failedAttempts []time.Time
	reasons        map[string]int
	failed         []string
}

const lookupDeadline = 3 * time.Second

func (r *clusterRig) startLoad() *loader {
	l := &loader{r: r, stop: make(chan struct{}), done: make(chan struct{})}
	l.phase.Store("start")
	go func() {
		defer close(l.done)
		for {
			select {
			case <-l.stop:
				return
			default:
			}
			users := []string{r.users[rand.IntN(len(r.users))]}
			if rand.IntN(2) == 0 {
				users = r.users[:10]
			}
			l.lookup(users)
			l.lookups.Add(1)
			time.Sleep(5 * time.Millisecond)
		}
	}()
	return l
}

func (l *loader) lookup(users []string) {
	start := time.Now()
	var last error
	for time.Since(start) < lookupDeadline {
		nodes := l.r.liveNodes()
		if len(nodes) == 0 {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		n := nodes[rand.IntN(len(nodes))]
		_, err := nativeLookup(n.http, l.r.refs, users)
		if err == nil {
			return
		}
		last = fmt.Errorf("%s: %w", n.name, err)
		l.mu.Lock()
		l.failedAttempts = append(l.failedAttempts, time.Now())
		if l.reasons == nil {
			l.reasons = map[string]int{}
		}
		l.reasons[l.phase.Load().(string)+": "+reason(err)]++
		l.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	l.mu.Lock()
	l.failed = append(l.failed, fmt.Sprintf("%s: %v", start.Format("15:04:05.000"), last))
	l.mu.Unlock()
}

var partitionNumber = regexp.MustCompile(`partition \d+`)

// reason shortens a lookup error to its kind: the status and the first
// words of the message.
func reason(err error) string {
	msg := partitionNumber.ReplaceAllString(err.Error(), "partition N")
	if len(msg) > 400 {
		msg = msg[:400]
	}
	return msg
}

// attemptsFailedSince counts failed attempts at or after t.
func (l *loader) attemptsFailedSince(t time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, at := range l.failedAttempts {
		if !at.Before(t) {
			n++
		}
	}
	return n
}

func (l *loader) finish(t *testing.T) {
	close(l.stop)
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	t.Logf("lookups: %d, failed attempts (retried): %d, failed within %s: %d", l.lookups.Load(), len(l.failedAttempts), lookupDeadline, len(l.failed))
	for why, n := range l.reasons {
		t.Logf("  %d failed attempts: %s", n, why)
	}
	for i, f := range l.failed {
		if i < 10 {
			t.Errorf("lookup failed: %s", f)
		}
	}
}

// TestCluster runs featured in cluster mode against the real broker: 3
// nodes with one standby per partition, a keyed stream from an independent
// producer, lookups through every node all along; then a node killed with
// SIGKILL and restarted, a 4th node added, a node drained and removed, and
// a rolling restart of all, while events are also pushed through random
// nodes (cluster mode produces them to the push topic). After each step,
// lookups through every node (native, Feast and gRPC) equal the reference
// of everything produced and pushed: nothing lost, nothing doubled.
func TestCluster(t *testing.T) {
	const users, events = 40, 40
	r := newClusterRig(t, users, events)
	r.produce(0, 10, 0)
	names := []string{"node-a", "node-b", "node-c"}
	start := time.Now()
	for _, name := range names {
		r.startNode(name)
	}
	took := r.waitFor("3 nodes settle", 90*time.Second, func() (bool, string) { return r.settled(names...) })
	t.Logf("3 nodes settled %s after the first started (%s after the last was ready)", time.Since(start).Round(time.Millisecond), took.Round(time.Millisecond))
	r.push(0, 5, 0)
	r.waitFor("3 nodes equal the reference", 30*time.Second, r.equalEverywhere)
	r.checkSurface(names)

	load := r.startLoad()
	defer func() {
		if load != nil {
			load.finish(t)
		}
	}()

	load.phase.Store("kill")
	// (b) SIGKILL one node while the stream and the lookups go on.
	var wg sync.WaitGroup
	wg.Go(func() { r.produce(10, 20, 50*time.Millisecond) })
	wg.Go(func() { r.push(5, 15, 50*time.Millisecond) })
	victim := r.nodes["node-b"]
	r.setLive(victim.name, false)
	killed := time.Now()
	victim.s.kill()
	survivors := []string{"node-a", "node-c"}
	failover := r.waitFor("the map drops the killed node", 60*time.Second, func() (bool, string) { return r.settled(survivors...) })
	wg.Wait()
	r.waitFor("2 nodes equal the reference", 30*time.Second, r.equalEverywhere)
	t.Logf("SIGKILL: the killed node's partitions promoted %s after the kill (session timeout 6s)", failover.Round(time.Millisecond))
	// Reads never waited for that: the survivors forwarded to each other
	// from the first failed forward on. What is asserted is the outcome, in
	// load.finish: no lookup failed within the client's deadline (retries
	// allowed). A single attempt may still fail later on a loaded machine
	// (a live peer past the 250ms forward timeout), so attempts are counted
	// for docs/benchmarks.md, not asserted: that would be a timed assertion.
	t.Logf("%d lookup attempts failed more than 1s after the kill (each retried)", load.attemptsFailedSince(killed.Add(time.Second)))

	load.phase.Store("restart after kill")
	restarted := time.Now()
	wg.Go(func() { r.produce(20, 30, 50*time.Millisecond) })
	wg.Go(func() { r.push(15, 25, 50*time.Millisecond) })
	r.startNode(victim.name)
	back := r.waitFor("the killed node back in the map", 90*time.Second, func() (bool, string) { return r.settled(names...) })
	wg.Wait()
	r.waitFor("3 nodes equal the reference after the restart", 30*time.Second, r.equalEverywhere)
	t.Logf("the killed node, restarted, holds its partitions again %s after its restart", (time.Since(restarted) - 0).Round(time.Millisecond))
	_ = back

	load.phase.Store("add")
	// (c) a 4th node: warms up, then takes partitions.
	wg.Go(func() { r.produce(30, 33, 50*time.Millisecond) })
	wg.Go(func() { r.push(25, 30, 50*time.Millisecond) })
	added := time.Now()
	r.startNode("node-d")
	four := []string{"node-a", "node-b", "node-c", "node-d"}
	handover := r.waitFor("the 4th node holds partitions", 90*time.Second, func() (bool, string) { return r.settled(four...) })
	wg.Wait()
	r.waitFor("4 nodes equal the reference", 30*time.Second, r.equalEverywhere)
	// It was given warm-ups first: nothing it would have answered before it
	// caught up.
	if !regexp.MustCompile(`holding partitions" generation=\d+ active=0 standby=0 warmup=[1-9]`).MatchString(r.nodes["node-d"].s.logs.String()) {
		t.Errorf("the 4th node never held only warm-ups:\n%s", r.nodes["node-d"].s.logs)
	}
	t.Logf("a 4th node: balanced %s after it was ready (%s after its start)", handover.Round(time.Millisecond), time.Since(added).Round(time.Millisecond))

	load.phase.Store("drain")
	// (d) drain node-a, then remove it.
	wg.Go(func() { r.produce(33, 36, 50*time.Millisecond) })
	wg.Go(func() { r.push(30, 35, 50*time.Millisecond) })
	drained := r.nodes["node-a"]
	if out, err := drained.s.cli(t, "cluster", "drain"); err != nil {
		t.Fatalf("featured cluster drain: %v\n%s", err, out)
	}
	left := r.waitFor("the drained node leaves", 90*time.Second, func() (bool, string) {
		st, err := drained.status(t)
		if err != nil {
			return false, err.Error()
		}
		return st.Left, fmt.Sprintf("draining %v, left %v", st.Draining, st.Left)
	})
	r.setLive(drained.name, false)
	drained.s.stop(t)
	three := []string{"node-b", "node-c", "node-d"}
	r.waitFor("the map without the drained node", 60*time.Second, func() (bool, string) { return r.settled(three...) })
	wg.Wait()
	r.waitFor("3 nodes equal the reference after the drain", 30*time.Second, r.equalEverywhere)
	t.Logf("drain: the node held nothing and left %s after the drain began", left.Round(time.Millisecond))

	load.phase.Store("rolling restart")
	// (e) a rolling restart: SIGTERM, start again, one node at a time.
	wg.Go(func() { r.produce(36, events, 50*time.Millisecond) })
	wg.Go(func() { r.push(35, events, 50*time.Millisecond) })
	for _, name := range three {
		n := r.nodes[name]
		r.setLive(name, false)
		n.s.stop(t)
		r.startNode(name)
		r.waitFor("settled after restarting "+name, 60*time.Second, func() (bool, string) { return r.settled(three...) })
	}
	wg.Wait()
	r.waitFor("equal after the rolling restart", 30*time.Second, r.equalEverywhere)
	load.finish(t)
	load = nil
}

// checkSurface checks what an operator sees of a settled cluster through
// every node: /v1/status's cluster section, featured cluster status,
// /metrics' cluster families after forwarded lookups.
func (r *clusterRig) checkSurface(members []string) {
	t := r.t
	t.Helper()
	for _, n := range r.liveNodes() {
		st, err := n.status(t)
		if err != nil {
			t.Fatal(err)
		}
		if st.Instance != n.name || len(st.Members) != len(members) || len(st.Partitions) != clusterP {
			t.Fatalf("%s: status %+v", n.name, st)
		}
		held := 0
		for _, p := range st.Partitions {
			if p.Role != "none" {
				held++
				if len(p.Offsets) != 2 || !p.Offsets[0].Reading || !p.Offsets[1].Reading || p.LagRecords != 0 || !p.CaughtUp {
					t.Errorf("%s: partition %d: %+v", n.name, p.Partition, p)
				}
			}
		}
		if held == 0 || held == clusterP {
			t.Errorf("%s holds %d of %d partitions; with 3 nodes and 1 standby, want some, not all", n.name, held, clusterP)
		}
		out, err := n.s.cli(t, "cluster", "status")
		if err != nil {
			t.Fatalf("featured cluster status: %v\n%s", err, out)
		}
		for _, m := range members {
			if !strings.Contains(out, m) {
				t.Errorf("featured cluster status through %s does not name %s:\n%s", n.name, m, out)
			}
		}
		// Every user through this node: some rows are forwarded.
		if _, err := nativeLookup(n.http, r.refs, r.users); err != nil {
			t.Fatal(err)
		}
		samples := scrape(t, n.s.url)
		for _, fam := range []string{"featured_cluster_partition_role", "featured_cluster_partition_lag_records", "featured_cluster_generation",
			"featured_cluster_rebalances_total", "featured_cluster_forwarded_rows_total", "featured_cluster_failovers_total",
			"featured_cluster_forward_duration_seconds_count"} {
			if _, ok := family(samples, fam); !ok {
				t.Errorf("%s: /metrics has no %s", n.name, fam)
			}
		}
		if v, _ := family(samples, "featured_cluster_partition_role", `role="active"`); v < 1 {
			t.Errorf("%s: featured_cluster_partition_role{role=active} sums to %v", n.name, v)
		}
		if v, _ := family(samples, "featured_cluster_forwarded_rows_total"); v < 1 {
			t.Errorf("%s: featured_cluster_forwarded_rows_total is %v after a lookup of every user", n.name, v)
		}
		// An export would see only this node's partitions: refused, not partial.
		for _, path := range []string{"/v1/export", "/v1/verify-skew", "/v1/backfill"} {
			st, body := n.s.post(t, path, map[string]any{"features": r.refs})
			if st != http.StatusNotImplemented || !strings.Contains(string(body), "cluster mode") {
				t.Errorf("%s: POST %s: %d %s; want 501 naming cluster mode", n.name, path, st, body)
			}
		}
	}
}

// TestClusterFlags: cluster mode refuses the combinations it cannot run
// with, naming the flag, before it opens anything.
func TestClusterFlags(t *testing.T) {
	t.Setenv("FEATURED_KAFKA_BROKERS", "") // the broker tests' variable is a flag too
	dir := t.TempDir()
	f := func(want string, args ...string) {
		t.Helper()
		var out, errb bytes.Buffer
		err := run(context.Background(), append([]string{"serve", "--data-dir", filepath.Join(dir, "data")}, args...), &out, &errb)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("serve %v: %v, want an error naming %s", args, err, want)
		}
	}
	f("--kafka-brokers", "--cluster-group", "g")
	f("--cluster-advertise", "--cluster-group", "g", "--kafka-brokers", "127.0.0.1:1")
	f("--cluster-advertise", "--cluster-group", "g", "--kafka-brokers", "127.0.0.1:1", "--cluster-advertise", "nohost")
	f("--cluster-session-timeout", "--cluster-group", "g", "--kafka-brokers", "127.0.0.1:1", "--cluster-advertise", "n:1", "--cluster-session-timeout", "1s")
	f("--standbys", "--cluster-group", "g", "--kafka-brokers", "127.0.0.1:1", "--cluster-advertise", "n:1", "--standbys", "-1")
	f("--max-warmups", "--cluster-group", "g", "--kafka-brokers", "127.0.0.1:1", "--cluster-advertise", "n:1", "--max-warmups", "0")
	f("--max-staleness", "--cluster-group", "g", "--kafka-brokers", "127.0.0.1:1", "--cluster-advertise", "n:1", "--max-staleness", "0s")
	f("--cluster-instance", "--cluster-group", "g", "--kafka-brokers", "127.0.0.1:1", "--cluster-advertise", "n:1", "--cluster-instance", "")
	if _, err := os.Stat(filepath.Join(dir, "data")); !os.IsNotExist(err) {
		t.Errorf("a refused start made the data dir: %v", err)
	}
}
