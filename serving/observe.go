package serving

import (
	"context"

	"github.com/featured-dev/featured/aggregate"
)

// API names the lookup endpoint a LookupInfo is about.
const (
	APIFeast  = "feast"  // POST /get-online-features
	APINative = "native" // POST /v1/features
	APIGRPC   = "grpc"   // featured.v1.ServingService/GetOnlineFeatures
	// APIFeastGRPC is feast.serving.ServingService/GetOnlineFeatures.
	APIFeastGRPC = "feast_grpc"
)

// A LookupObserver is told of every lookup that read the store
// (Options.Observer), on the request's goroutine, before its response is
// written. It must not block, and must not keep info or its slices: they are
// reused by the next lookup.
type LookupObserver interface {
	ObserveLookup(ctx context.Context, info *LookupInfo)
}

// LookupInfo describes one served lookup. Every string in it is a name from
// the registry or a constant, never an entity key, so it can label metrics.
type LookupInfo struct {
	API string // APIFeast, APINative, APIGRPC or APIFeastGRPC
	// FeatureService is the feature service the request named; "" for a
	// list of features.
	FeatureService string
	// Entities and Features are the request's entity rows and features
	// (after expanding a feature service).
	Entities, Features int
	// Views counts the values served per view version read, by status.
	Views []ViewStatuses
}

// ViewStatuses counts one view version's values in a lookup by status.
type ViewStatuses struct {
	View    string
	Version int
	// Present, Null and NotFound count values by aggregate.Status (a
	// last_k list counts once).
	Present, Null, NotFound int
}

// observe tells Options.Observer about the lookup l answered with p. It
// walks the results once; without an observer it costs nothing.
func (s *Server) observe(ctx context.Context, api string, l *lookup, p *plan) {
	o := s.opts.Observer
	if o == nil {
		return
	}
	nf := len(p.names)
	views := l.views[:0]
	for gi := range p.groups {
		g := &p.groups[gi]
		vs := ViewStatuses{View: g.view, Version: g.version}
		for e := range l.req.values {
			row := l.out[e*nf : (e+1)*nf]
			for _, c := range g.cols {
				switch row[c].Status {
				case aggregate.StatusPresent:
					vs.Present++
				case aggregate.StatusNull:
					vs.Null++
				default:
					vs.NotFound++
				}
			}
		}
		views = append(views, vs)
	}
	l.views = views
	l.info = LookupInfo{API: api, FeatureService: p.service, Entities: len(l.req.values), Features: nf, Views: views}
	o.ObserveLookup(ctx, &l.info)
}
