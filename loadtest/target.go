package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	featuredv1 "github.com/featured-dev/featured/api/featured/v1"
)

// Targets: how a request reaches a system. The system behind an address is
// the caller's business (the result's label says which it was): feast-http
// drives Feast's feature server and featured's Feast endpoint alike.
const (
	TargetFeastHTTP    = "feast-http"    // POST /get-online-features, Feast's request and response
	TargetNativeHTTP   = "native-http"   // POST /v1/features, featured's row-major response
	TargetGRPC         = "grpc"          // featured.v1.ServingService/GetOnlineFeatures
	TargetRedisHMGET   = "redis-hmget"   // one HMGET e:<entity> <features...> per entity, pipelined
	TargetRedisHGETALL = "redis-hgetall" // one HGETALL v<view>:<entity> per entity and view, pipelined
	TargetPush         = "push"          // POST /v1/push of Workload.PushEvents events
	TargetTrivial      = "trivial-http"  // feast-http without verification, for `loadtest trivial`
)

var targets = []string{TargetFeastHTTP, TargetNativeHTTP, TargetGRPC, TargetRedisHMGET, TargetRedisHGETALL, TargetPush, TargetTrivial}

// A target holds the pre-built requests of one run and opens connections.
// dial is safe for concurrent use (workers redial after an error); close is
// called once, after every worker has stopped. Each conn is used by one
// worker goroutine.
type target interface {
	dial() (conn, error)
	// requests is the number of pre-built requests; do(i) takes i modulo it.
	requests() int
	close()
}

type conn interface {
	// do sends request i and reads the whole answer: the payload bytes, the
	// events accepted (push only), or an error (transport, status, or an
	// answer that shows missing data).
	do(i int) (n, events int, err error)
	// verify sends request i and checks every value of the answer against
	// Value.
	verify(i int) error
	close() error
}

// newTarget builds the requests of name for w. now stamps push events.
func newTarget(name, addr string, w Workload, timeout time.Duration, grpcConns int, now time.Time) (target, error) {
	keys := w.Keys()
	host := addr
	switch name {
	case TargetFeastHTTP, TargetTrivial, TargetNativeHTTP:
		path, check := "/get-online-features", checkFeast
		if name == TargetNativeHTTP {
			path, check = "/v1/features", checkNative
		}
		if name == TargetTrivial {
			check = nil
		}
		t := &httpTarget{addr: addr, timeout: timeout, keys: keys, features: w.Features, check: check}
		for _, k := range keys {
			t.reqs = append(t.reqs, httpRequest(host, path, "application/json", w.FeastBody(k)))
		}
		return t, nil
	case TargetPush:
		t := &httpTarget{addr: addr, timeout: timeout, pushEvents: w.PushEvents}
		for _, body := range PushBodies(w.Unique, w.PushEvents, w.Keyspace, w.Seed, now) {
			t.reqs = append(t.reqs, httpRequest(host, "/v1/push", "application/json", body))
		}
		return t, nil
	case TargetGRPC:
		return newGRPCTarget(addr, w, keys, timeout, grpcConns)
	case TargetRedisHMGET, TargetRedisHGETALL:
		return newRedisTarget(name, addr, w, keys, timeout), nil
	}
	return nil, fmt.Errorf("loadtest: -target: %q is not one of %v", name, targets)
}

// --- HTTP ---

type httpTarget struct {
	addr       string
	timeout    time.Duration
	reqs       [][]byte
	keys       [][]int64
	features   int
	check      func(body []byte, keys []int64, features int) error
	pushEvents int // push: events per request
}

func (t *httpTarget) requests() int { return len(t.reqs) }
func (t *httpTarget) close()        {}

func (t *httpTarget) dial() (conn, error) {
	c, err := dialHTTP(t.addr, t.timeout)
	if err != nil {
		return nil, err
	}
	return &httpTargetConn{t: t, c: c}, nil
}

type httpTargetConn struct {
	t    *httpTarget
	c    *httpConn
	body []byte
}

func (c *httpTargetConn) close() error { return c.c.close() }

func (c *httpTargetConn) do(i int) (int, int, error) {
	var keep *[]byte
	if c.t.pushEvents > 0 {
		c.body = c.body[:0]
		keep = &c.body // the accepted count is in the answer
	}
	status, n, err := c.c.roundTrip(c.t.reqs[i%len(c.t.reqs)], keep)
	if err != nil && !errors.Is(err, errConnClosed) {
		return n, 0, err
	}
	if status != 200 {
		return n, 0, fmt.Errorf("HTTP %d", status)
	}
	events := 0
	if c.t.pushEvents > 0 {
		acc, perr := acceptedCount(c.body)
		if perr != nil {
			return n, 0, perr
		}
		events = acc
		if acc != c.t.pushEvents {
			return n, events, fmt.Errorf("push: %d of %d events accepted: %.200s", acc, c.t.pushEvents, c.body)
		}
	}
	return n, events, err // errConnClosed: counted as a success, then the worker redials
}

func (c *httpTargetConn) verify(i int) error {
	var body []byte
	status, _, err := c.c.roundTrip(c.t.reqs[i%len(c.t.reqs)], &body)
	if err != nil && !errors.Is(err, errConnClosed) {
		return err
	}
	if status != 200 {
		return fmt.Errorf("HTTP %d: %.300s", status, body)
	}
	if c.t.pushEvents > 0 {
		acc, err := acceptedCount(body)
		if err != nil {
			return err
		}
		if acc != c.t.pushEvents {
			return fmt.Errorf("push: %d of %d events accepted: %.300s", acc, c.t.pushEvents, body)
		}
		return nil
	}
	if c.t.check == nil {
		return nil
	}
	return c.t.check(body, c.t.keys[i%len(c.t.keys)], c.t.features)
}

// acceptedCount reads N from a push answer {"accepted":N,...} without
// decoding the rest.
func acceptedCount(body []byte) (int, error) {
	const key = `"accepted":`
	i := bytes.Index(body, []byte(key))
	if i < 0 {
		return 0, fmt.Errorf("push: no accepted count in %.200q", body)
	}
	j := i + len(key)
	k := j
	for k < len(body) && body[k] >= '0' && body[k] <= '9' {
		k++
	}
	return strconv.Atoi(string(body[j:k]))
}

// --- gRPC ---

const grpcMethod = "/featured.v1.ServingService/GetOnlineFeatures"

// rawFrame carries pre-marshalled request bytes to the wire and counts the
// answer's bytes without decoding them (keep: copy them, for verify).
type rawFrame struct {
	b    []byte
	n    int
	keep bool
}

// rawCodec passes rawFrames through, so a call costs the generator no
// protobuf marshalling or decoding. It names itself "proto" so that the
// content type is application/grpc+proto, as the server expects.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	f, ok := v.(*rawFrame)
	if !ok {
		return nil, fmt.Errorf("loadtest: raw codec cannot marshal %T", v)
	}
	return mem.BufferSlice{mem.SliceBuffer(f.b)}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	f, ok := v.(*rawFrame)
	if !ok {
		return fmt.Errorf("loadtest: raw codec cannot unmarshal into %T", v)
	}
	f.n = data.Len()
	if f.keep {
		f.b = data.Materialize()
	}
	return nil
}

func (rawCodec) Name() string { return "proto" }

type grpcTarget struct {
	conns    []*grpc.ClientConn
	next     atomic.Int64 // dial may be called from workers (redial)
	reqs     [][]byte
	keys     [][]int64
	features int
	timeout  time.Duration
}

func newGRPCTarget(addr string, w Workload, keys [][]int64, timeout time.Duration, nconns int) (*grpcTarget, error) {
	t := &grpcTarget{keys: keys, features: w.Features, timeout: timeout}
	for _, k := range keys {
		vals := make([]*featuredv1.Value, len(k))
		for i, e := range k {
			vals[i] = &featuredv1.Value{Kind: &featuredv1.Value_Int64Val{Int64Val: e}}
		}
		b, err := proto.Marshal(&featuredv1.GetOnlineFeaturesRequest{
			Kind:     &featuredv1.GetOnlineFeaturesRequest_FeatureService{FeatureService: ServiceName(w.Features)},
			Entities: map[string]*featuredv1.RepeatedValue{EntityKey: {Val: vals}},
		})
		if err != nil {
			return nil, err
		}
		t.reqs = append(t.reqs, b)
	}
	for range max(nconns, 1) {
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{})))
		if err != nil {
			t.close()
			return nil, err
		}
		t.conns = append(t.conns, cc)
	}
	return t, nil
}

func (t *grpcTarget) requests() int { return len(t.reqs) }

func (t *grpcTarget) close() {
	for _, c := range t.conns {
		_ = c.Close()
	}
}

// dial hands out the shared client connections in turn: gRPC multiplexes
// the workers' calls as streams over them.
func (t *grpcTarget) dial() (conn, error) {
	cc := t.conns[int(t.next.Add(1)-1)%len(t.conns)]
	return &grpcConn{t: t, cc: cc}, nil
}

type grpcConn struct {
	t  *grpcTarget
	cc *grpc.ClientConn
}

func (c *grpcConn) close() error { return nil }

func (c *grpcConn) call(i int, out *rawFrame) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.t.timeout)
	defer cancel()
	in := rawFrame{b: c.t.reqs[i%len(c.t.reqs)]}
	return c.cc.Invoke(ctx, grpcMethod, &in, out)
}

func (c *grpcConn) do(i int) (int, int, error) {
	var out rawFrame
	err := c.call(i, &out)
	return out.n, 0, err
}

func (c *grpcConn) verify(i int) error {
	out := rawFrame{keep: true}
	if err := c.call(i, &out); err != nil {
		return err
	}
	var resp featuredv1.GetOnlineFeaturesResponse
	if err := proto.Unmarshal(out.b, &resp); err != nil {
		return fmt.Errorf("decode response: %w", err)
	}
	return checkProto(&resp, c.t.keys[i%len(c.t.keys)], c.t.features)
}

// --- Redis ---

type redisTarget struct {
	addr     string
	timeout  time.Duration
	reqs     [][]byte
	replies  int // replies per request
	hgetall  bool
	keys     [][]int64
	features int
}

func newRedisTarget(name, addr string, w Workload, keys [][]int64, timeout time.Duration) *redisTarget {
	t := &redisTarget{addr: addr, timeout: timeout, keys: keys, features: w.Features, hgetall: name == TargetRedisHGETALL}
	fields := make([]string, 0, w.Features+2)
	for _, k := range keys {
		var b []byte
		for _, e := range k {
			if t.hgetall {
				for v := 0; v < w.Features/FeaturesPerView; v++ {
					b = appendCommand(b, "HGETALL", redisViewKey(v, e))
				}
				continue
			}
			fields = append(fields[:0], "HMGET", redisEntityKey(e))
			for f := range w.Features {
				fields = append(fields, FeatureName(f))
			}
			b = appendCommand(b, fields...)
		}
		t.reqs = append(t.reqs, b)
	}
	t.replies = w.Entities
	if t.hgetall {
		t.replies = w.Entities * w.Features / FeaturesPerView
	}
	return t
}

// The Redis layout of the workload (loaded by `loadtest load -target
// redis`): a hash per entity with all 250 features, for HMGET, and a hash
// per (view, entity) with the view's 10 features, for HGETALL. Values are
// decimal strings, as a JSON encoder would write them.
func redisEntityKey(e int64) string { return "e:" + strconv.FormatInt(e, 10) }
func redisViewKey(v int, e int64) string {
	return "v" + strconv.Itoa(v) + ":" + strconv.FormatInt(e, 10)
}

func (t *redisTarget) requests() int { return len(t.reqs) }
func (t *redisTarget) close()        {}

func (t *redisTarget) dial() (conn, error) {
	c, err := net.DialTimeout("tcp", t.addr, t.timeout)
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	return &redisConn{t: t, c: c, r: respReader{br: bufio.NewReaderSize(c, 64<<10)}}, nil
}

type redisConn struct {
	t *redisTarget
	c net.Conn
	r respReader
}

func (c *redisConn) close() error { return c.c.Close() }

func (c *redisConn) roundTrip(i int) (int, error) {
	if err := c.c.SetDeadline(time.Now().Add(c.t.timeout)); err != nil {
		return 0, err
	}
	if _, err := c.c.Write(c.t.reqs[i%len(c.t.reqs)]); err != nil {
		return 0, err
	}
	c.r.n, c.r.nils = 0, 0
	for range c.t.replies {
		if err := c.r.skipReply(0); err != nil {
			return c.r.n, err
		}
	}
	if c.r.nils > 0 {
		return c.r.n, fmt.Errorf("redis: %d nil values (is the data loaded?)", c.r.nils)
	}
	return c.r.n, nil
}

func (c *redisConn) do(i int) (int, int, error) {
	n, err := c.roundTrip(i)
	return n, 0, err
}

func (c *redisConn) verify(i int) error {
	var got [][]byte
	c.r.visit = func(b []byte) { got = append(got, append([]byte(nil), b...)) }
	defer func() { c.r.visit = nil }()
	if _, err := c.roundTrip(i); err != nil {
		return err
	}
	keys := c.t.keys[i%len(c.t.keys)]
	if c.t.hgetall {
		return checkRedisPairs(got, keys, c.t.features)
	}
	return checkRedisValues(got, keys, c.t.features)
}
