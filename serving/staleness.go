package serving

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"google.golang.org/grpc/metadata"
)

// This file is a lookup's own staleness bound (docs/scaling.md, Routing):
// native HTTP's max_staleness_ms, native gRPC's
// GetOnlineFeaturesRequest.max_staleness_ms, Feast's Featured-Max-Staleness
// header and featured-max-staleness gRPC metadata. A routed lookup reads a
// partition only from a replica within the bound; a node without a
// Placement is never stale against itself and ignores it.

// StalenessHeader is the HTTP header (and, lower-cased, the gRPC metadata
// key) of a lookup's staleness bound: milliseconds, or a Go duration such as
// 500ms.
const (
	StalenessHeader   = "Featured-Max-Staleness"
	stalenessMetadata = "featured-max-staleness"
)

// maxStalenessMillis bounds a requested staleness (a year): anything above
// it is a typo, and it keeps the milliseconds within a Duration.
const maxStalenessMillis = 365 * 24 * 3600 * 1000

// BoundedRouter is implemented by a Placement that knows how stale each
// replica is. RouteWithin is Route for a lookup that accepts at most bound
// of staleness (bound is above zero; a Placement caps it at its own
// limit): local only when this node's copy of p is within it; peers are the
// other replicas, least-lagged first when the Placement knows their lag.
// It is called from request goroutines, concurrently, as Route is; it must
// be cheap and must not block. Without it a bound does not change routing:
// the Placement's own limit alone decides.
type BoundedRouter interface {
	RouteWithin(p int, bound time.Duration) (local bool, peers []string)
}

// route is Placement.Route, or RouteWithin for a lookup with its own bound.
func (s *Server) route(p int, bound time.Duration) (bool, []string) {
	pl := s.opts.Placement
	if bound > 0 {
		if br, ok := pl.(BoundedRouter); ok {
			return br.RouteWithin(p, bound)
		}
	}
	return pl.Route(p)
}

// parseStaleness parses a staleness bound as the header and metadata carry
// it: whole milliseconds ("250") or a Go duration ("500ms", "2s"); 0 is
// the node's bound. field names it in the error.
func parseStaleness(field, v string) (time.Duration, error) {
	if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
		if ms < 0 || ms > maxStalenessMillis {
			return 0, fmt.Errorf("%w: %s: %q is not a number of milliseconds from 0 to %d", ErrBadRequest, field, v, int64(maxStalenessMillis))
		}
		return time.Duration(ms) * time.Millisecond, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 || d > maxStalenessMillis*time.Millisecond {
		return 0, fmt.Errorf("%w: %s: %q is neither milliseconds nor a duration such as 500ms, from 0 to a year", ErrBadRequest, field, v)
	}
	return d, nil
}

// stalenessFromMillis is a protobuf max_staleness_ms as a bound.
func stalenessFromMillis(field string, ms int64) (time.Duration, error) {
	if ms < 0 || ms > maxStalenessMillis {
		return 0, fmt.Errorf("%w: %s: %d is not a number of milliseconds from 0 to %d", ErrBadRequest, field, ms, int64(maxStalenessMillis))
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// tighter is the lower of two bounds, where 0 is none.
func tighter(a, b time.Duration) time.Duration {
	if a == 0 || (b > 0 && b < a) {
		return b
	}
	return a
}

// stalenessFromMetadata tightens req's bound with the call's
// featured-max-staleness metadata, if any. A call without it costs a map
// lookup: ValueFromIncomingContext copies nothing then.
func stalenessFromMetadata(ctx context.Context, req *lookupRequest) error {
	vs := metadata.ValueFromIncomingContext(ctx, stalenessMetadata)
	if len(vs) == 0 {
		return nil
	}
	d, err := parseStaleness("metadata "+stalenessMetadata, vs[0])
	if err != nil {
		return err
	}
	req.maxStaleness = tighter(req.maxStaleness, d)
	return nil
}
