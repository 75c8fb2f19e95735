package serving

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc/health"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/featurestore"
	"github.com/featured-dev/featured/ingest"
	"github.com/featured-dev/featured/internal/auth"
	"github.com/featured-dev/featured/internal/keyenc"
	"github.com/featured-dev/featured/registry"
)

// Server serves lookups, pushes and registry changes over HTTP and gRPC. It
// is safe for concurrent use; it owns no goroutine and no listener.
type Server struct {
	reg    *registry.Registry
	store  *featurestore.Store
	pusher *ingest.Pusher
	opts   Options

	ready  atomic.Bool
	health *health.Server

	plans   plans
	lookups sync.Pool // *lookup
	limits  *limiter
	// peers are the connections of routed lookups (route.go).
	peers peerSet
}

// New returns a Server over the registry, the store and the pusher. opts may
// be the zero value. The server starts not ready: the caller calls
// SetReady(true) once the store is open and the registry loaded, and Close
// once its listeners are stopped (a server with a Placement holds
// connections to its peers).
func New(reg *registry.Registry, store *featurestore.Store, pusher *ingest.Pusher, opts Options) (*Server, error) {
	if reg == nil {
		return nil, errors.New("serving: new: nil registry")
	}
	if store == nil {
		return nil, errors.New("serving: new: nil store")
	}
	if pusher == nil {
		return nil, errors.New("serving: new: nil pusher")
	}
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if pl := opts.Placement; pl != nil && pl.Partitions() != store.Partitions() {
		// A row's partition is both where the router sends it and which
		// store partition the owner reads: the counts must be one.
		return nil, fmt.Errorf("serving: new: the placement has %d partitions, the store %d", pl.Partitions(), store.Partitions())
	}
	s := &Server{reg: reg, store: store, pusher: pusher, opts: opts, health: health.NewServer(), limits: newLimiter(&opts)}
	s.lookups.New = func() any { return new(lookup) }
	s.peers.dialOpts = opts.PeerDialOptions
	s.SetReady(false)
	return s, nil
}

// SetReady marks the server ready (or not): /readyz answers 200 (or 503),
// the gRPC health service reports SERVING (or NOT_SERVING), and lookups,
// pushes and registry calls fail with ErrNotReady while not ready. The
// process toggles it during startup and shutdown.
func (s *Server) SetReady(ready bool) {
	s.ready.Store(ready)
	st := healthNotServing
	if ready {
		st = healthServing
	}
	for _, name := range healthServices {
		s.health.SetServingStatus(name, st)
	}
}

// Ready reports whether the server is ready.
func (s *Server) Ready() bool { return s.ready.Load() }

func (s *Server) checkReady() error {
	if !s.ready.Load() {
		return ErrNotReady
	}
	return nil
}

// lookup is the reusable state of one lookup request: pooled, so that a warm
// lookup allocates nothing of its own.
type lookup struct {
	req   lookupRequest
	body  []byte
	key   []byte   // plan cache key
	ents  [][]byte // the entity key being read of each of the plan's join keys
	parts []int    // and its partition
	ckey  []byte   // the compound key being read (built from ents)
	out   []aggregate.Result
	tmp   []aggregate.Result
	buf   []byte // the response
	// views and info are observe's scratch.
	views []ViewStatuses
	info  LookupInfo
	// route is a routed lookup's scratch (Options.Placement); authz the
	// caller's Authorization header over HTTP, forwarded to peers.
	route *routeState
	authz string
}

// maxPooledBytes keeps buffers of unusually large requests out of the pool.
const maxPooledBytes = 1 << 20

func (s *Server) getLookup() *lookup { return s.lookups.Get().(*lookup) }

func (s *Server) putLookup(l *lookup) {
	if cap(l.body) > maxPooledBytes || cap(l.buf) > 4*maxPooledBytes || cap(l.req.arena) > maxPooledBytes ||
		cap(l.out) > 64*1024 {
		return
	}
	// Drop references to result strings and lists so the pool does not keep
	// them alive. Only what this request used can hold any: earlier
	// requests cleared theirs, so a lookup grown by one large request does
	// not zero its whole capacity on every small one after it.
	clear(l.out)
	clear(l.tmp)
	l.authz = ""
	if l.route != nil {
		clear(l.route.positions)
		l.route.positions = l.route.positions[:0]
	}
	l.out, l.tmp = l.out[:0], l.tmp[:0]
	s.lookups.Put(l)
}

// resolve returns the plan of l's request from the cache or builds it.
func (s *Server) resolve(l *lookup) (*plan, *registry.Snapshot, error) {
	snap := s.reg.Snapshot()
	l.key = planKey(l.key[:0], &l.req)
	if p := s.plans.get(snap, l.key); p != nil {
		return p, snap, nil
	}
	p, err := buildPlan(snap, &l.req, s.opts.MaxFeatures)
	if err != nil {
		return nil, nil, err
	}
	s.plans.put(snap, l.key, p)
	return p, snap, nil
}

// execute reads every feature of every entity of l's request as of atMillis
// into l.out, row-major: one Store.Read per (entity, view version).
func (s *Server) execute(ctx context.Context, l *lookup, p *plan, atMillis int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	nf := len(p.names)
	n := len(l.req.values) * nf
	if cap(l.out) < n {
		l.out = make([]aggregate.Result, n)
	}
	l.out = l.out[:n]
	for len(l.ents) < len(p.joinKeys) {
		l.ents = append(l.ents, nil)
		l.parts = append(l.parts, 0)
	}
	for e := range l.req.values {
		// The row's key of each entity, encoded once for every view of it.
		for j := range p.joinKeys {
			k := l.req.keyOf[j]
			v := &l.req.col(k)[e]
			var err error
			var val aggregate.Value
			if v.isInt {
				val = aggregate.Value{Kind: aggregate.KindInt64, I: v.i}
			} else {
				val = aggregate.Value{Kind: aggregate.KindString, S: unsafeString(l.req.str(v.s))}
			}
			l.ents[j], err = keyenc.AppendEntity(l.ents[j][:0], val)
			if err != nil {
				return fmt.Errorf("%w: entities.%s[%d]: %v", ErrBadRequest, p.joinKeys[j].joinKey, e, err)
			}
			l.parts[j] = keyenc.Partition(val, p.joinKeys[j].kafkaKey, s.store.Partitions())
		}
		row := l.out[e*nf : (e+1)*nf]
		for gi := range p.groups {
			g := &p.groups[gi]
			// A compound key lives in its first part's partition.
			ent, part := l.ents[g.keys[0]], l.parts[g.keys[0]]
			if g.compound {
				// The compound key from the parts' encodings, made once
				// per row for every view of each entity.
				l.ckey = l.ckey[:0]
				for i, k := range g.keys {
					l.ckey = keyenc.AppendPart(l.ckey, l.ents[k], g.kinds[i])
				}
				ent = l.ckey
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
			l.tmp = l.tmp[:max(len(l.tmp), len(g.features))]
			tmp := l.tmp[:len(g.features)]
			if err := s.store.Read(g.vk, g.layout, part, ent, g.features, atMillis, tmp); err != nil {
				return fmt.Errorf("serving: read %s: %w", p.refs[g.cols[0]], err)
			}
			for j, c := range g.cols {
				row[c] = tmp[j]
			}
		}
	}
	return nil
}

// lookupDecoded resolves and executes an already decoded request in l;
// feast says whether the request came by one of Feast's endpoints, which
// join several entities per row (checkEntities).
func (s *Server) lookupDecoded(ctx context.Context, l *lookup, feast bool) (*plan, int64, error) {
	if err := s.checkReady(); err != nil {
		return nil, 0, err
	}
	p, snap, err := s.resolve(l)
	if err != nil {
		return nil, 0, err
	}
	// Plans are cached for every caller alike; what this caller may read
	// is checked on each lookup, after the refs are resolved.
	if id := auth.FromContext(ctx); id != nil && !id.ReadsAll() {
		if err := authorizeLookup(id, p, &l.req); err != nil {
			return nil, 0, err
		}
	}
	if err := checkEntities(snap, p, &l.req, feast); err != nil {
		return nil, 0, err
	}
	// The cost of a lookup is known before anything is read: refuse it
	// here rather than after building a response that does not fit.
	if cells := int64(len(l.req.values)) * int64(p.rowValues); s.opts.MaxCells > 0 && cells > int64(s.opts.MaxCells) {
		return nil, 0, &CellsError{Rows: len(l.req.values), RowValues: p.rowValues, Limit: s.opts.MaxCells}
	}
	at := s.opts.Now().UnixMilli()
	if s.opts.Placement != nil {
		err = s.executeRouted(ctx, l, p, snap, at)
	} else {
		err = s.execute(ctx, l, p, at)
	}
	if err != nil {
		return nil, 0, err
	}
	return p, at, nil
}
