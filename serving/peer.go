package serving

import (
	"context"
	"fmt"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/featured-dev/featured/aggregate"
	peerv1 "github.com/featured-dev/featured/api/featured/peer/v1"
	featuredv1 "github.com/featured-dev/featured/api/featured/v1"
	"github.com/featured-dev/featured/featurestore"
	"github.com/featured-dev/featured/internal/auth"
	"github.com/featured-dev/featured/registry"
)

// This file is the owner's side of routing: PeerService.Read answers the
// rows a front node forwards (route.go is the front node's side). It reads
// only partitions this node answers itself (Placement.Route's local) and
// never forwards: a forwarded call goes one hop at most, so a placement
// that two nodes disagree on costs an UNAVAILABLE row, never a loop.

type peerService struct {
	peerv1.UnimplementedPeerServiceServer
	s *Server
}

var _ peerv1.PeerServiceServer = peerService{}

// peerView is one ViewRead resolved against this node's snapshot.
type peerView struct {
	key      int
	vk       featurestore.ViewKey
	layout   *aggregate.Layout
	features []int
}

// Read reads the request's rows of the partitions this node answers, as of
// the request's instant.
func (g peerService) Read(ctx context.Context, in *peerv1.ReadRequest) (*peerv1.ReadResponse, error) {
	s := g.s
	if err := s.checkReady(); err != nil {
		return nil, toGRPC(err)
	}
	snap := s.reg.Snapshot()
	if gen := snap.Generation(); in.GetGeneration() != gen {
		return nil, status.Errorf(codes.FailedPrecondition,
			"serving: peer read: registry generation %d here, %d at the front node; retry once the registries agree", gen, in.GetGeneration())
	}
	nparts := int(in.GetPartitions())
	if pl := s.opts.Placement; pl != nil && pl.Partitions() != nparts {
		return nil, status.Errorf(codes.FailedPrecondition,
			"serving: peer read: %d partitions here, %d at the front node", pl.Partitions(), nparts)
	}
	if nparts <= 0 {
		return nil, toGRPC(fmt.Errorf("%w: peer read: %d partitions", ErrBadRequest, nparts))
	}
	views, names, err := resolvePeerViews(snap, in.GetViews())
	if err != nil {
		return nil, toGRPC(err)
	}
	if id := auth.FromContext(ctx); id != nil && !id.ReadsAll() {
		if err := authorizePeerRead(snap, id, in.GetFeatureService(), names); err != nil {
			return nil, toGRPC(err)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, toGRPC(err)
	}

	// A partition held here but staler than the caller's bound is
	// unavailable here, as one not held: the front node tries the next
	// replica.
	bound, err := stalenessFromMillis("peer read: max_staleness_ms", in.GetMaxStalenessMs())
	if err != nil {
		return nil, toGRPC(err)
	}
	// state[p]: 0 not seen, 1 answered here, 2 unavailable here.
	state := make([]uint8, nparts)
	resp := &peerv1.ReadResponse{}
	maxFeatures := 0
	for i := range views {
		maxFeatures = max(maxFeatures, len(views[i].features))
	}
	tmp := make([]aggregate.Result, maxFeatures)
	var out []byte
	units := in.GetUnits()
	for off := 0; off < len(units); {
		key, part, ent, next, err := nextPeerUnit(units, off)
		if err != nil || part >= nparts {
			return nil, toGRPC(fmt.Errorf("%w: peer read: units at byte %d: %w", ErrBadRequest, off, errPeerEncoding))
		}
		off = next
		if state[part] == 0 {
			state[part] = 2
			var ps peerv1.PartitionState
			ps.Partition = uint32(part)
			if s.answers(part, bound) {
				state[part] = 1
				ps.Positions = s.appendPositionsProto(ps.Positions, part)
			} else {
				ps.Unavailable = true
			}
			resp.Partitions = append(resp.Partitions, &ps)
		}
		if state[part] != 1 {
			continue
		}
		for i := range views {
			v := &views[i]
			if v.key != key {
				continue
			}
			rs := tmp[:len(v.features)]
			if err := s.store.Read(v.vk, v.layout, part, ent, v.features, in.GetAtMillis(), rs); err != nil {
				return nil, toGRPC(fmt.Errorf("serving: peer read %s: %w", names[i], err))
			}
			for j := range rs {
				out = appendPeerResult(out, &rs[j])
			}
		}
	}
	resp.Results = out
	return resp, nil
}

// answers reports whether this node reads partition p itself, within
// bound when it is above zero.
func (s *Server) answers(p int, bound time.Duration) bool {
	if s.opts.Placement == nil {
		return true // one node holds everything, never stale against itself
	}
	local, _ := s.route(p, bound)
	return local
}

// resolvePeerViews resolves a ReadRequest's views against snap; names[i]
// is views[i]'s "view@vN" for errors and the view check.
func resolvePeerViews(snap *registry.Snapshot, in []*peerv1.ViewRead) ([]peerView, []string, error) {
	views := make([]peerView, len(in))
	names := make([]string, len(in))
	for i, vr := range in {
		if vr.GetVersion() == 0 {
			return nil, nil, fmt.Errorf("%w: peer read: views[%d]: no version", ErrBadRequest, i)
		}
		v, err := snap.View(vr.GetView(), int(vr.GetVersion()))
		if err != nil {
			return nil, nil, fmt.Errorf("%w: peer read: views[%d]: %w", ErrBadRequest, i, err)
		}
		nf := len(v.Layout.Specs())
		fs := make([]int, len(vr.GetFeatures()))
		for j, f := range vr.GetFeatures() {
			if int(f) >= nf {
				return nil, nil, fmt.Errorf("%w: peer read: views[%d]: feature %d of %d", ErrBadRequest, i, f, nf)
			}
			fs[j] = int(f)
		}
		views[i] = peerView{key: int(vr.GetKey()), vk: featurestore.ViewKey{ID: v.ID, Version: uint32(v.Version)}, layout: v.Layout, features: fs}
		names[i] = v.Name
	}
	return views, names, nil
}

// authorizePeerRead is authorizeLookup on the owner: a token limited to
// views reads only those; one allowed the lookup's feature service reads
// the views that service has here.
func authorizePeerRead(snap *registry.Snapshot, id *auth.Identity, service string, views []string) error {
	var allowed []string
	if service != "" && id.MayReadService(service) {
		if rs, err := snap.ResolveService(service); err == nil {
			for i := range rs {
				allowed = append(allowed, rs[i].View.Name)
			}
		}
	}
	for _, v := range views {
		if !slices.Contains(allowed, v) && !id.MayReadView(v) {
			return id.ViewError(v)
		}
	}
	return nil
}

// appendPositionsProto appends this node's positions of partition p.
func (s *Server) appendPositionsProto(dst []*featuredv1.Position, p int) []*featuredv1.Position {
	var buf [4]Position
	for _, pos := range s.appendPositions(buf[:0], p) {
		dst = append(dst, &featuredv1.Position{Source: pos.Source, Partition: uint32(pos.Partition), Offset: pos.Offset})
	}
	return dst
}
