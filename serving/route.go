package serving

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/featured-dev/featured/aggregate"
	peerv1 "github.com/featured-dev/featured/api/featured/peer/v1"
	featuredv1 "github.com/featured-dev/featured/api/featured/v1"
	"github.com/featured-dev/featured/internal/keyenc"
	"github.com/featured-dev/featured/internal/partition"
	"github.com/featured-dev/featured/registry"
)

// This file is the front node's side of routing (docs/scaling.md,
// Routing): with Options.Placement set, a lookup's rows are grouped by
// partition, the partitions this node answers are read as today, and the
// rest go in one PeerService.Read per peer, in parallel, with failover to
// the next replica. peer.go is the owner's side.

// Placement says where partitions are answered (the cluster's owner map).
// Nil Options.Placement: one node, every row read locally, no cost.
// Both methods are called from request goroutines, concurrently, on every
// routed lookup: they must be cheap and must not block. The slice Route
// returns is only read.
type Placement interface {
	// Partitions is the partition count P (the same on every node).
	Partitions() int
	// Route says who answers partition p: local when this node answers it
	// itself (it holds p, fresh enough); peers are the gRPC addresses of
	// the other replicas, preferred first.
	Route(p int) (local bool, peers []string)
}

// PositionReporter is implemented by a Placement that knows how far this
// node applied each source of a partition (the partition's own store's
// offsets, once the store is laid out by partition). Without it a node
// reports the store's committed offsets of each Kafka source's partition p
// (featurestore.Store.Offsets).
type PositionReporter interface {
	// AppendPositions appends the positions of partition p to dst.
	AppendPositions(dst []Position, p int) []Position
}

// Position is how far a replica had applied one source's partition: the
// next offset it will read.
type Position struct {
	Source    string `json:"source"`
	Partition int    `json:"partition"`
	Offset    int64  `json:"offset"`
}

// ErrUnavailable is a lookup some of whose rows no replica could read
// (*PartitionError names the partition): 503 / UNAVAILABLE, never NOT_FOUND
// for rows that were not read.
var ErrUnavailable = errors.New("serving: partition unavailable")

// PartitionError is ErrUnavailable for one partition: every replica was
// tried, or down, within the caller's deadline, or none is within the
// lookup's staleness bound.
type PartitionError struct {
	Partition int
	// Tried says what each replica answered, in the order tried.
	Tried []string
	// Bound is the lookup's own staleness bound; 0 for none.
	Bound time.Duration
}

func (e *PartitionError) Error() string {
	msg := "serving: partition " + strconv.Itoa(e.Partition) + " unavailable: no replica answered"
	if e.Bound > 0 {
		msg += " within max staleness " + e.Bound.String()
	}
	if len(e.Tried) > 0 {
		msg += " (" + strings.Join(e.Tried, "; ") + ")"
	}
	return msg + "; retry"
}

func (e *PartitionError) Unwrap() error { return ErrUnavailable }

// peerDownFor is how long a peer that failed a forward is skipped before it
// is tried again; peerConnectTimeout how long one attempt to connect to a
// peer may take (calls fail at their own deadline meanwhile).
const (
	peerDownFor        = time.Second
	peerConnectTimeout = 2 * time.Second
)

// entityPartition is the partition of an entity key among n: Kafka's
// default partitioner over the key's record-key bytes in the entity's
// kafka_key encoding (keyenc.Partition), as ingest places it.
func entityPartition(v *entityValue, req *lookupRequest, enc partition.KeyEncoding, n int) int {
	if v.isInt {
		return keyenc.Partition(aggregate.Value{Kind: aggregate.KindInt64, I: v.i}, enc, n)
	}
	return keyenc.Partition(aggregate.Value{Kind: aggregate.KindString, S: unsafeString(req.str(v.s))}, enc, n)
}

// RouterStats are the routing counters since the server started, for
// metrics (featured_cluster_forwarded_rows_total{peer},
// _forward_duration_seconds, _failovers_total).
type RouterStats struct {
	// ForwardedRows counts the rows (entity, join key) sent to each peer,
	// by address, whatever it answered.
	ForwardedRows map[string]int64
	// Forwards counts PeerService.Read calls; ForwardSeconds is their
	// total duration; ForwardErrors those that failed.
	Forwards, ForwardErrors int64
	ForwardSeconds          float64
	// Failovers counts partitions retried on another replica.
	Failovers int64
}

// RouterStats returns the routing counters.
func (s *Server) RouterStats() RouterStats {
	st := RouterStats{
		Forwards:       s.peers.forwards.Load(),
		ForwardErrors:  s.peers.errors.Load(),
		ForwardSeconds: time.Duration(s.peers.nanos.Load()).Seconds(),
		Failovers:      s.peers.failovers.Load(),
		ForwardedRows:  map[string]int64{},
	}
	s.peers.mu.RLock()
	for addr, c := range s.peers.mu.conns {
		st.ForwardedRows[addr] = c.rows.Load()
	}
	s.peers.mu.RUnlock()
	return st
}

// peerSet holds a client connection per peer address, made on first use
// and kept until Close, with each peer's down mark and counters.
type peerSet struct {
	dialOpts []grpc.DialOption
	mu       struct {
		sync.RWMutex
		conns  map[string]*peerConn
		closed bool
	}
	forwards, errors, nanos, failovers atomic.Int64
}

type peerConn struct {
	conn   *grpc.ClientConn
	client peerv1.PeerServiceClient
	// downUntil is when the peer may be tried again (Unix nanoseconds);
	// zero or past: up.
	downUntil atomic.Int64
	rows      atomic.Int64
}

func (ps *peerSet) get(addr string) (*peerConn, error) {
	ps.mu.RLock()
	c, closed := ps.mu.conns[addr], ps.mu.closed
	ps.mu.RUnlock()
	if c != nil || closed {
		if closed {
			return nil, ErrNotReady
		}
		return c, nil
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.mu.closed {
		return nil, ErrNotReady
	}
	if c := ps.mu.conns[addr]; c != nil {
		return c, nil
	}
	// grpc.NewClient connects lazily, in the background: a peer that is
	// down fails the first Read, not this call. grpc-go's reconnect
	// backoff grows to 2 minutes by default; a peer back from a restart
	// must be found within about the time it is marked down.
	opts := append([]grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
		Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: peerDownFor},
		MinConnectTimeout: peerConnectTimeout,
	})}, ps.dialOpts...)
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("serving: dial peer %s: %w", addr, err)
	}
	if ps.mu.conns == nil {
		ps.mu.conns = map[string]*peerConn{}
	}
	c = &peerConn{conn: conn, client: peerv1.NewPeerServiceClient(conn)}
	ps.mu.conns[addr] = c
	return c, nil
}

func (ps *peerSet) isDown(addr string, now int64) bool {
	ps.mu.RLock()
	c := ps.mu.conns[addr]
	ps.mu.RUnlock()
	return c != nil && c.downUntil.Load() > now
}

// upFirst returns addrs with the peers marked down moved after the others
// (a copy when it moves any; addrs is the Placement's and only read). A
// down mark is a hint from a recent failure, not a verdict: a peer marked
// down is tried after the others rather than skipped, so a lookup whose
// replicas are all marked (one restarted a moment ago, another stopping)
// still tries them before it fails.
func (ps *peerSet) upFirst(addrs []string, now int64) []string {
	down := -1
	for i, a := range addrs {
		if ps.isDown(a, now) {
			down = i
			break
		}
	}
	if down < 0 {
		return addrs
	}
	out := make([]string, 0, len(addrs))
	var later []string
	for _, a := range addrs {
		if ps.isDown(a, now) {
			later = append(later, a)
		} else {
			out = append(out, a)
		}
	}
	return append(out, later...)
}

func (ps *peerSet) close() error {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.mu.closed = true
	var errs []error
	for _, c := range ps.mu.conns {
		errs = append(errs, c.conn.Close())
	}
	ps.mu.conns = nil
	return errors.Join(errs...)
}

// Close closes the connections to peers. Call it after the gRPC and HTTP
// servers stopped; a lookup routed after it fails with ErrNotReady. It is
// safe to call more than once.
func (s *Server) Close() error { return s.peers.close() }

func defaultPeerDialOptions() []grpc.DialOption {
	return []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
}

// routeState is a routed lookup's scratch, kept in the pooled lookup.
type routeState struct {
	// Per unit u = e*nk + j (row e, route key j: a join key, or the join
	// keys of a compound key): its partition (the first part's), and its
	// entity key's bytes keys[keyOff[u]:keyOff[u+1]].
	part   []int32
	keyOff []int32
	keys   []byte
	// Per partition: 0 not touched, 1 local, 2 remote.
	state []uint8
	pbuf  []byte
	// positions of the partitions the answer read, by partition.
	positions []Position
}

// remotePart is one partition a routed lookup forwards.
type remotePart struct {
	p     int
	peers []string
	next  int // index in peers of the replica to try next
	tried []string
}

// executeRouted is execute for a server with a Placement: rows of the
// partitions this node answers are read here, the others forwarded.
func (s *Server) executeRouted(ctx context.Context, l *lookup, p *plan, snap *registry.Snapshot, atMillis int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	pl := s.opts.Placement
	nparts := pl.Partitions()
	nf := len(p.names)
	nk := len(p.routeKeys)
	rows := len(l.req.values)
	n := rows * nf
	if cap(l.out) < n {
		l.out = make([]aggregate.Result, n)
	}
	l.out = l.out[:n]
	if l.route == nil {
		l.route = new(routeState)
	}
	r := l.route
	r.part = slices.Grow(r.part[:0], rows*nk)[:rows*nk]
	r.keyOff = append(r.keyOff[:0], 0)
	r.keys = r.keys[:0]
	r.state = slices.Grow(r.state[:0], nparts)[:nparts]
	clear(r.state)
	r.positions = r.positions[:0]
	var remote []remotePart

	for e := range rows {
		row := l.out[e*nf : (e+1)*nf]
		for j, keys := range p.routeKeys {
			start := len(r.keys)
			var err error
			if len(keys) == 1 {
				r.keys, err = appendRowKey(r.keys, p, &l.req, keys[0], e)
			} else {
				// A compound key: its parts' encodings, each made on its own
				// and then joined as the store keys it (keyenc.AppendPart).
				kinds := p.routeKinds[j]
				for i, k := range keys {
					r.pbuf, err = appendRowKey(r.pbuf[:0], p, &l.req, k, e)
					if err != nil {
						break
					}
					r.keys = keyenc.AppendPart(r.keys, r.pbuf, kinds[i])
				}
			}
			if err != nil {
				return err
			}
			v := &l.req.col(l.req.keyOf[keys[0]])[e]
			r.keyOff = append(r.keyOff, int32(len(r.keys)))
			part := entityPartition(v, &l.req, p.joinKeys[keys[0]].kafkaKey, nparts)
			r.part[e*nk+j] = int32(part)
			if r.state[part] == 0 {
				local, peers := s.route(part, l.req.maxStaleness)
				if local {
					r.state[part] = 1
					r.positions = s.appendPositions(r.positions, part)
				} else {
					r.state[part] = 2
					remote = append(remote, remotePart{p: part, peers: peers})
				}
			}
			if r.state[part] != 1 {
				continue
			}
			if err := s.readLocal(l, p, row, j, part, r.keys[start:], atMillis); err != nil {
				return err
			}
		}
	}
	if len(remote) > 0 {
		if err := s.forward(ctx, l, p, snap, remote, atMillis); err != nil {
			return err
		}
	}
	slices.SortStableFunc(r.positions, func(a, b Position) int { return a.Partition - b.Partition })
	return nil
}

// readLocal reads the groups of route key j of one row from this node's
// store.
func (s *Server) readLocal(l *lookup, p *plan, row []aggregate.Result, j, part int, ent []byte, atMillis int64) error {
	for gi := range p.groups {
		g := &p.groups[gi]
		if g.rk != j {
			continue
		}
		if g.contiguous {
			dst := row[g.cols[0] : g.cols[0]+len(g.cols)]
			if err := s.store.Read(g.vk, g.layout, part, ent, g.features, atMillis, dst); err != nil {
				return fmt.Errorf("serving: read %s: %w", p.refs[g.cols[0]], err)
			}
			continue
		}
		if cap(l.tmp) < len(g.features) {
			l.tmp = make([]aggregate.Result, len(g.features))
		}
		tmp := l.tmp[:len(g.features)]
		if err := s.store.Read(g.vk, g.layout, part, ent, g.features, atMillis, tmp); err != nil {
			return fmt.Errorf("serving: read %s: %w", p.refs[g.cols[0]], err)
		}
		for k, c := range g.cols {
			row[c] = tmp[k]
		}
	}
	return nil
}

// forwardCall is one PeerService.Read of a routing round.
type forwardCall struct {
	addr  string
	parts []int // indexes into the round's remote partitions
	units []int // the units sent, in order
	resp  *peerv1.ReadResponse
	err   error
}

// forward reads the rows of the remote partitions from their replicas: one
// call per peer per round, in parallel; partitions whose replica failed
// (or does not answer them) go to their next replica in the next round,
// until every partition is read, a partition has no replica left, or ctx
// ends.
func (s *Server) forward(ctx context.Context, l *lookup, p *plan, snap *registry.Snapshot, remote []remotePart, atMillis int64) error {
	r := l.route
	nk := len(p.routeKeys)
	tok := l.authz
	if tok == "" {
		if md, ok := metadata.FromIncomingContext(ctx); ok {
			if v := md.Get("authorization"); len(v) > 0 {
				tok = v[0]
			}
		}
	}
	views := p.peerViews()
	pending := make([]int, len(remote))
	for i := range pending {
		pending[i] = i
	}
	// partIdx maps a partition to its index in remote.
	partIdx := make(map[int]int, len(remote))
	for i := range remote {
		partIdx[remote[i].p] = i
	}
	for round := 0; len(pending) > 0; round++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		// A call bounded by the caller's deadline can fail a moment
		// before ctx says it ended: the caller's deadline, not the
		// replicas, is why the lookup fails.
		if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
			return context.DeadlineExceeded
		}
		now := time.Now().UnixNano()
		var calls []*forwardCall
		for _, i := range pending {
			rp := &remote[i]
			if round == 0 {
				rp.peers = s.peers.upFirst(rp.peers, now)
			}
			if rp.next >= len(rp.peers) {
				return &PartitionError{Partition: rp.p, Tried: rp.tried, Bound: l.req.maxStaleness}
			}
			addr := rp.peers[rp.next]
			k := slices.IndexFunc(calls, func(c *forwardCall) bool { return c.addr == addr })
			if k < 0 {
				k = len(calls)
				calls = append(calls, &forwardCall{addr: addr})
			}
			calls[k].parts = append(calls[k].parts, i)
		}
		var wg sync.WaitGroup
		for _, c := range calls {
			req := &peerv1.ReadRequest{
				Generation:     snap.Generation(),
				Partitions:     uint32(s.opts.Placement.Partitions()),
				FeatureService: p.service,
				Views:          views,
				AtMillis:       atMillis,
				MaxStalenessMs: l.req.maxStaleness.Milliseconds(),
			}
			var units []byte
			for u, part := range r.part {
				if i, ok := partIdx[int(part)]; ok && slices.Contains(c.parts, i) {
					units = appendPeerUnit(units, u%nk, int(part), r.keys[r.keyOff[u]:r.keyOff[u+1]])
					c.units = append(c.units, u)
				}
			}
			req.Units = units
			wg.Go(func() { c.resp, c.err = s.callPeer(ctx, c.addr, tok, req, len(c.units)) })
		}
		wg.Wait()
		pending = pending[:0]
		for _, c := range calls {
			retry, err := s.mergeForward(l, p, c, remote, partIdx, l.req.maxStaleness)
			if err != nil {
				return err
			}
			for _, i := range retry {
				remote[i].next++
				s.peers.failovers.Add(1)
				pending = append(pending, i)
			}
		}
	}
	return nil
}

// callPeer makes one PeerService.Read with the caller's token, within
// Options.ForwardTimeout and ctx's deadline. A failure that says the peer
// is unreachable or slow marks it down for peerDownFor.
func (s *Server) callPeer(ctx context.Context, addr, tok string, req *peerv1.ReadRequest, rows int) (*peerv1.ReadResponse, error) {
	c, err := s.peers.get(addr)
	if err != nil {
		return nil, err
	}
	c.rows.Add(int64(rows))
	ctx, cancel := context.WithTimeout(ctx, s.opts.ForwardTimeout)
	defer cancel()
	if tok != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", tok)
	}
	start := time.Now()
	resp, err := c.client.Read(ctx, req)
	d := time.Since(start)
	s.peers.forwards.Add(1)
	s.peers.nanos.Add(int64(d))
	if err != nil {
		s.peers.errors.Add(1)
		switch status.Code(err) {
		case codes.Unavailable, codes.DeadlineExceeded:
			// Refused, unreachable or slow: skip it for a while. A caller
			// that went away says nothing of the peer.
			if !errors.Is(ctx.Err(), context.Canceled) {
				c.downUntil.Store(time.Now().Add(peerDownFor).UnixNano())
			}
			// The failure may be the channel's memory of the peer being
			// down (a call on a channel waiting out its reconnect backoff
			// fails at once): redial now, so that a peer back from a
			// restart answers the next call rather than up to a second
			// later. A no-op on a connected channel.
			c.conn.ResetConnectBackoff()
		}
	}
	if o := s.opts.ForwardObserver; o != nil {
		o.ObserveForward(addr, rows, d, err)
	}
	return resp, err
}

// mergeForward puts a call's results into l.out and returns the remote
// partitions to retry on their next replica; an error that no other
// replica would answer differently (a refused token, a bad request) fails
// the lookup.
func (s *Server) mergeForward(l *lookup, p *plan, c *forwardCall, remote []remotePart, partIdx map[int]int, bound time.Duration) (retry []int, _ error) {
	if c.err != nil {
		code := status.Code(c.err)
		switch code {
		// Worth another replica: this one is down, slow, busy, at another
		// registry generation, or its copy is damaged (DataLoss): the
		// other replicas hold their own.
		case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.FailedPrecondition, codes.ResourceExhausted, codes.DataLoss:
			for _, i := range c.parts {
				remote[i].tried = append(remote[i].tried, c.addr+": "+code.String()+": "+status.Convert(c.err).Message())
			}
			return c.parts, nil
		}
		return nil, peerError(c.addr, c.err)
	}
	unavailable := map[int]bool{}
	for _, ps := range c.resp.GetPartitions() {
		i, ok := partIdx[int(ps.GetPartition())]
		if !ok || !slices.Contains(c.parts, i) {
			return nil, fmt.Errorf("serving: peer %s answered partition %d, not asked for", c.addr, ps.GetPartition())
		}
		if ps.GetUnavailable() {
			unavailable[i] = true
			why := ": does not hold it"
			if bound > 0 {
				why = ": does not hold it within " + bound.String()
			}
			remote[i].tried = append(remote[i].tried, c.addr+why)
			retry = append(retry, i)
			continue
		}
		for _, pos := range ps.GetPositions() {
			l.route.positions = append(l.route.positions, Position{Source: pos.GetSource(), Partition: int(pos.GetPartition()), Offset: pos.GetOffset()})
		}
	}
	nf := len(p.names)
	nk := len(p.routeKeys)
	b := c.resp.GetResults()
	off := 0
	for _, u := range c.units {
		if unavailable[partIdx[int(l.route.part[u])]] {
			continue
		}
		e, j := u/nk, u%nk
		row := l.out[e*nf : (e+1)*nf]
		for gi := range p.groups {
			g := &p.groups[gi]
			if g.rk != j {
				continue
			}
			for _, col := range g.cols {
				var err error
				if off, err = decodePeerResult(b, off, &row[col]); err != nil {
					return nil, fmt.Errorf("serving: peer %s: results at byte %d: %w", c.addr, off, err)
				}
			}
		}
	}
	if off != len(b) {
		return nil, fmt.Errorf("serving: peer %s: %d bytes of results past the last row: %w", c.addr, len(b)-off, errPeerEncoding)
	}
	return retry, nil
}

// peerError is a peer's refusal as this node's own error, so that it maps
// to the same status as a local refusal would.
func peerError(addr string, err error) error {
	st := status.Convert(err)
	msg := st.Message()
	switch st.Code() {
	case codes.PermissionDenied:
		return fmt.Errorf("%w (at peer %s): %s", ErrPermissionDenied, addr, msg)
	case codes.Unauthenticated:
		return fmt.Errorf("%w (at peer %s): %s", ErrUnauthenticated, addr, msg)
	case codes.InvalidArgument:
		return fmt.Errorf("%w (at peer %s): %s", ErrBadRequest, addr, msg)
	}
	return fmt.Errorf("serving: peer %s: %s: %s", addr, st.Code(), msg)
}

// peerViews is the plan's reads in PeerService's terms, built once per
// plan.
func (p *plan) peerViews() []*peerv1.ViewRead {
	p.peerOnce.Do(func() {
		p.peer = make([]*peerv1.ViewRead, len(p.groups))
		for i := range p.groups {
			g := &p.groups[i]
			fs := make([]uint32, len(g.features))
			for k, f := range g.features {
				fs[k] = uint32(f)
			}
			p.peer[i] = &peerv1.ViewRead{View: g.view, Version: uint32(g.version), Key: uint32(g.rk), Features: fs}
		}
	})
	return p.peer
}

// appendPositions appends this node's positions of partition p: the
// Placement's when it reports them, else the store's committed offset of
// each Kafka source's partition p.
func (s *Server) appendPositions(dst []Position, p int) []Position {
	if pr, ok := s.opts.Placement.(PositionReporter); ok {
		return pr.AppendPositions(dst, p)
	}
	for _, src := range s.reg.Snapshot().Sources() {
		if src.Topic == "" {
			continue
		}
		if off, ok := s.store.Offsets(src.Topic)[int32(p)]; ok {
			dst = append(dst, Position{Source: src.Name, Partition: p, Offset: off})
		}
	}
	return dst
}

// appendPositionsJSON appends positions as a JSON array.
func appendPositionsJSON(b []byte, ps []Position) []byte {
	b = append(b, '[')
	for i := range ps {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"source":`...)
		b = appendString(b, ps[i].Source)
		b = append(b, `,"partition":`...)
		b = strconv.AppendInt(b, int64(ps[i].Partition), 10)
		b = append(b, `,"offset":`...)
		b = strconv.AppendInt(b, ps[i].Offset, 10)
		b = append(b, '}')
	}
	return append(b, ']')
}

// positionsProto is positions in featured.v1's message.
func positionsProto(ps []Position) []*featuredv1.Position {
	out := make([]*featuredv1.Position, len(ps))
	for i := range ps {
		out[i] = &featuredv1.Position{Source: ps[i].Source, Partition: uint32(ps[i].Partition), Offset: ps[i].Offset}
	}
	return out
}

// appendRowKey appends the store encoding (keyenc) of row e's value of join
// key k.
func appendRowKey(dst []byte, p *plan, req *lookupRequest, k, e int) ([]byte, error) {
	v := &req.col(req.keyOf[k])[e]
	var err error
	if v.isInt {
		dst, err = keyenc.AppendEntity(dst, aggregate.Value{Kind: aggregate.KindInt64, I: v.i})
	} else {
		dst, err = keyenc.AppendEntity(dst, aggregate.Value{Kind: aggregate.KindString, S: unsafeString(req.str(v.s))})
	}
	if err != nil {
		return dst, fmt.Errorf("%w: entities.%s[%d]: %v", ErrBadRequest, p.joinKeys[k].joinKey, e, err)
	}
	return dst, nil
}
