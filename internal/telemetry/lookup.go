package telemetry

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/featured-dev/featured/serving"
)

// lookupInstruments are the lookup metrics serving.LookupObserver feeds.
// The counters are atomics per attribute set, reported by a callback at
// scrape time as the store's and ingest's counters are: a synchronous OTel
// counter re-resolves its attribute set on every Add, which cost about 10%
// of a 1 x 50 lookup's CPU (docs/benchmarks.md). The two size histograms
// stay synchronous (OTel has no observable histogram) but are sampled: the
// first lookup of each API and feature service, and one in sizeSampleEvery
// after it, records its entities and features. They show
// the distribution of request sizes, which a sample keeps; featured.lookups
// counts every lookup.
type lookupInstruments struct {
	entities metric.Int64Histogram
	features metric.Int64Histogram

	// services and views are copied on write (under mu) and read without
	// a lock: a lookup only reads them, and an RWMutex's read lock alone
	// was about 1% of a 1 x 50 lookup's CPU on 2 cores.
	mu       sync.Mutex
	services atomic.Pointer[map[lookupKey]*serviceCounter]
	views    atomic.Pointer[map[viewKey]*viewCounter]
}

type lookupKey struct{ api, service string }

// serviceCounter counts one (api, feature service)'s lookups. record is a
// one-element option slice passed on with record...: a variadic argument
// built at the call escapes (the instruments are interfaces), which would
// cost an allocation per call.
type serviceCounter struct {
	set     attribute.Set
	record  []metric.RecordOption
	lookups atomic.Int64
}

// sampled reports whether the n-th lookup of an (api, service) records the
// size histograms: the first, and one in sizeSampleEvery after it.
func sampled(n int64) bool { return n%sizeSampleEvery == 1 }

type viewKey struct {
	view    string
	version int
}

// viewCounter counts one view version's served values by status.
type viewCounter struct {
	sets [3]attribute.Set // present, null, not found
	n    [3]atomic.Int64
}

// sizeSampleEvery is how many lookups share one record of the size
// histograms: two synchronous Records per lookup were about 3% of a 1 x 50
// lookup's CPU, more than all of featured's metrics may cost.
const sizeSampleEvery = 16

// sizeBuckets bound the entities and features of one request.
var sizeBuckets = []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000}

func (l *lookupInstruments) init(m metric.Meter) error {
	var errs [2]error
	l.entities, errs[0] = m.Int64Histogram("featured.lookup.entities", metric.WithUnit("{entity}"),
		metric.WithDescription("Entity rows per lookup, sampled: one lookup in 16 is recorded."), metric.WithExplicitBucketBoundaries(sizeBuckets...))
	l.features, errs[1] = m.Int64Histogram("featured.lookup.features", metric.WithUnit("{feature}"),
		metric.WithDescription("Features per lookup, a feature service expanded; sampled: one lookup in 16 is recorded."), metric.WithExplicitBucketBoundaries(sizeBuckets...))
	l.services.Store(&map[lookupKey]*serviceCounter{})
	l.views.Store(&map[viewKey]*viewCounter{})
	c := newCollector(m)
	lookups := c.counter("featured.lookups", "{lookup}", "Lookups that read the store, by API and feature service (\"\" for a list of features).")
	values := c.counter("featured.lookup.values", "{value}", "Values served, by view, view version and status (PRESENT, NULL_VALUE, NOT_FOUND).")
	if err := errors.Join(joinErrs(errs[:]), c.err()); err != nil {
		return err
	}
	_, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for _, sc := range *l.services.Load() {
			o.ObserveInt64(lookups, sc.lookups.Load(), metric.WithAttributeSet(sc.set))
		}
		for _, vc := range *l.views.Load() {
			for s := range vc.sets {
				if n := vc.n[s].Load(); n > 0 {
					o.ObserveInt64(values, n, metric.WithAttributeSet(vc.sets[s]))
				}
			}
		}
		return nil
	}, c.instruments...)
	return err
}

var statusNames = [3]string{"PRESENT", "NULL_VALUE", "NOT_FOUND"}

func (l *lookupInstruments) service(k lookupKey) *serviceCounter {
	if sc, ok := (*l.services.Load())[k]; ok {
		return sc
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	cur := *l.services.Load()
	if sc, ok := cur[k]; ok {
		return sc
	}
	set := attribute.NewSet(attribute.String("api", k.api), attribute.String("feature_service", k.service))
	sc := &serviceCounter{set: set, record: []metric.RecordOption{metric.WithAttributeSet(set)}}
	next := make(map[lookupKey]*serviceCounter, len(cur)+1)
	for k, v := range cur {
		next[k] = v
	}
	next[k] = sc
	l.services.Store(&next)
	return sc
}

func (l *lookupInstruments) view(k viewKey) *viewCounter {
	if vc, ok := (*l.views.Load())[k]; ok {
		return vc
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	cur := *l.views.Load()
	if vc, ok := cur[k]; ok {
		return vc
	}
	vc := new(viewCounter)
	for i, s := range statusNames {
		vc.sets[i] = attribute.NewSet(attribute.String("view", k.view), attribute.Int("view_version", k.version), attribute.String("status", s))
	}
	next := make(map[viewKey]*viewCounter, len(cur)+1)
	for k, v := range cur {
		next[k] = v
	}
	next[k] = vc
	l.views.Store(&next)
	return vc
}

// LookupObserver is serving.Options.Observer.
func (t *Telemetry) LookupObserver() serving.LookupObserver { return (*lookupObserver)(t) }

type lookupObserver Telemetry

var _ serving.LookupObserver = (*lookupObserver)(nil)

func (o *lookupObserver) ObserveLookup(ctx context.Context, info *serving.LookupInfo) {
	l := &o.lookup
	sc := l.service(lookupKey{info.API, info.FeatureService})
	if sampled(sc.lookups.Add(1)) {
		l.entities.Record(ctx, int64(info.Entities), sc.record...)
		l.features.Record(ctx, int64(info.Features), sc.record...)
	}
	for i := range info.Views {
		v := &info.Views[i]
		vc := l.view(viewKey{v.View, v.Version})
		for s, n := range [3]int{v.Present, v.Null, v.NotFound} {
			if n > 0 {
				vc.n[s].Add(int64(n))
			}
		}
	}
}
