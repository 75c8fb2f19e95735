package telemetry

import (
	"context"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/featured-dev/featured/serving"
)

// lookupInstruments are the lookup metrics serving.LookupObserver feeds.
type lookupInstruments struct {
	lookups  metric.Int64Counter
	entities metric.Int64Histogram
	features metric.Int64Histogram
	values   metric.Int64Counter

	mu       sync.RWMutex
	services map[lookupKey]lookupOptions
	views    map[viewKey]*[3]metric.AddOption // by status: present, null, not found
}

type lookupKey struct{ api, service string }

type lookupOptions struct {
	add    metric.AddOption
	record metric.RecordOption
}

type viewKey struct {
	view    string
	version int
}

// sizeBuckets bound the entities and features of one request.
var sizeBuckets = []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000}

func (l *lookupInstruments) init(m metric.Meter) error {
	var errs [4]error
	l.lookups, errs[0] = m.Int64Counter("featured.lookups", metric.WithUnit("{lookup}"),
		metric.WithDescription("Lookups that read the store, by API and feature service (\"\" for a list of features)."))
	l.entities, errs[1] = m.Int64Histogram("featured.lookup.entities", metric.WithUnit("{entity}"),
		metric.WithDescription("Entity rows per lookup."), metric.WithExplicitBucketBoundaries(sizeBuckets...))
	l.features, errs[2] = m.Int64Histogram("featured.lookup.features", metric.WithUnit("{feature}"),
		metric.WithDescription("Features per lookup, a feature service expanded."), metric.WithExplicitBucketBoundaries(sizeBuckets...))
	l.values, errs[3] = m.Int64Counter("featured.lookup.values", metric.WithUnit("{value}"),
		metric.WithDescription("Values served, by view, view version and status (PRESENT, NULL_VALUE, NOT_FOUND)."))
	l.services = make(map[lookupKey]lookupOptions)
	l.views = make(map[viewKey]*[3]metric.AddOption)
	return joinErrs(errs[:])
}

var statusNames = [3]string{"PRESENT", "NULL_VALUE", "NOT_FOUND"}

func (l *lookupInstruments) serviceOptions(k lookupKey) lookupOptions {
	l.mu.RLock()
	o, ok := l.services[k]
	l.mu.RUnlock()
	if ok {
		return o
	}
	set := attribute.NewSet(attribute.String("api", k.api), attribute.String("feature_service", k.service))
	o = lookupOptions{add: metric.WithAttributeSet(set), record: metric.WithAttributeSet(set)}
	l.mu.Lock()
	l.services[k] = o
	l.mu.Unlock()
	return o
}

func (l *lookupInstruments) viewOptions(k viewKey) *[3]metric.AddOption {
	l.mu.RLock()
	o, ok := l.views[k]
	l.mu.RUnlock()
	if ok {
		return o
	}
	o = new([3]metric.AddOption)
	for i, s := range statusNames {
		o[i] = metric.WithAttributeSet(attribute.NewSet(attribute.String("view", k.view),
			attribute.Int("view_version", k.version), attribute.String("status", s)))
	}
	l.mu.Lock()
	l.views[k] = o
	l.mu.Unlock()
	return o
}

// LookupObserver is serving.Options.Observer.
func (t *Telemetry) LookupObserver() serving.LookupObserver { return (*lookupObserver)(t) }

type lookupObserver Telemetry

var _ serving.LookupObserver = (*lookupObserver)(nil)

func (o *lookupObserver) ObserveLookup(ctx context.Context, info *serving.LookupInfo) {
	l := &o.lookup
	so := l.serviceOptions(lookupKey{info.API, info.FeatureService})
	l.lookups.Add(ctx, 1, so.add)
	l.entities.Record(ctx, int64(info.Entities), so.record)
	l.features.Record(ctx, int64(info.Features), so.record)
	for i := range info.Views {
		v := &info.Views[i]
		vo := l.viewOptions(viewKey{v.View, v.Version})
		for s, n := range [3]int{v.Present, v.Null, v.NotFound} {
			if n > 0 {
				l.values.Add(ctx, int64(n), vo[s])
			}
		}
	}
}
