package registry

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/internal/partition"
)

// Snapshot is the registry as of one generation. It is immutable once
// published and safe for concurrent use; its Views, Sources and Entities are
// shared, never copied per call, and must not be modified by callers.
type Snapshot struct {
	gen        uint64
	nextViewID uint32
	entities   map[string]*Entity
	sources    map[string]*Source
	// views holds every view name ever applied, including those whose
	// versions are all deleted (their ID and last version stay reserved).
	views    map[string]*viewHistory
	services map[string]*Service

	// Derived by index().
	all      []*View            // every live version, by name then version
	bySource map[string][]*View // live, not detached versions per source
	keyKinds map[string][]aggregate.Kind
	// keyEncs is, per source, the kafka_key of its views' first entities
	// (Apply keeps it one per source): a key is placed by its first part.
	keyEncs map[string]partition.KeyEncoding
	// refs holds every valid reference ("view:feat" for the latest version,
	// "view@vN:feat" for every live one), so Resolve is one map lookup per
	// ref on the lookup path.
	refs map[string]Resolved

	// history is who changed the registry, oldest first (history.go).
	history []HistoryEntry

	// changed is closed when a newer Snapshot is published.
	changed chan struct{}
}

// viewHistory is one view name's versions. Immutable like the Snapshot.
type viewHistory struct {
	id          uint32
	lastVersion int     // highest version ever assigned
	live        []*View // live versions, ascending
}

func (h *viewHistory) latest() *View {
	if h == nil || len(h.live) == 0 {
		return nil
	}
	return h.live[len(h.live)-1]
}

func emptySnapshot() *Snapshot {
	s := &Snapshot{
		nextViewID: 1,
		entities:   map[string]*Entity{},
		sources:    map[string]*Source{},
		views:      map[string]*viewHistory{},
		services:   map[string]*Service{},
		changed:    make(chan struct{}),
	}
	s.index()
	return s
}

// index builds the derived lookups.
func (s *Snapshot) index() {
	s.all = s.all[:0]
	s.bySource = map[string][]*View{}
	s.keyKinds = map[string][]aggregate.Kind{}
	s.keyEncs = map[string]partition.KeyEncoding{}
	s.refs = map[string]Resolved{}
	for _, name := range sortedKeys(s.views) {
		h := s.views[name]
		if latest := h.latest(); latest != nil {
			for i, f := range latest.Features {
				ref := name + ":" + f.Name
				s.refs[ref] = Resolved{Ref: ref, Name: f.Name, View: latest, Feature: i}
			}
		}
		for _, v := range h.live {
			for i, f := range v.Features {
				ref := name + "@v" + strconv.Itoa(v.Version) + ":" + f.Name
				s.refs[ref] = Resolved{Ref: ref, Name: f.Name, View: v, Feature: i}
			}
			s.all = append(s.all, v)
			if !v.Detached {
				s.bySource[v.Source.Name] = append(s.bySource[v.Source.Name], v)
			}
			if _, ok := s.keyKinds[v.Source.Name]; !ok {
				s.keyKinds[v.Source.Name] = v.KeyKinds()
				s.keyEncs[v.Source.Name] = v.Entities[0].KafkaKey
			}
		}
	}
}

// Generation counts the changes applied to the registry: every Apply that
// changed something and every Delete adds one. It survives restarts.
func (s *Snapshot) Generation() uint64 { return s.gen }

// Entity returns the named entity.
func (s *Snapshot) Entity(name string) (*Entity, bool) {
	e, ok := s.entities[name]
	return e, ok
}

// Entities returns every entity, by name.
func (s *Snapshot) Entities() []*Entity {
	out := make([]*Entity, 0, len(s.entities))
	for _, k := range sortedKeys(s.entities) {
		out = append(out, s.entities[k])
	}
	return out
}

// Source returns the named source.
func (s *Snapshot) Source(name string) (*Source, bool) {
	src, ok := s.sources[name]
	return src, ok
}

// Sources returns every source, by name.
func (s *Snapshot) Sources() []*Source {
	out := make([]*Source, 0, len(s.sources))
	for _, k := range sortedKeys(s.sources) {
		out = append(out, s.sources[k])
	}
	return out
}

// SourceKeyKinds returns the kinds of the key parts that the views on
// source read, one per field of the source's entity_key (every live version
// of every view on one source has the same key kinds; Apply enforces it), or
// nil when no view reads it. The slice is shared: do not modify it.
func (s *Snapshot) SourceKeyKinds(source string) []aggregate.Kind {
	return s.keyKinds[source]
}

// SourceKafkaKey returns the kafka_key of the first entities of the views
// on source (one per source; Apply enforces it): with the first of
// SourceKeyKinds, what places the source's events in partitions
// (keyenc.Partition of a key's first part).
func (s *Snapshot) SourceKafkaKey(source string) partition.KeyEncoding {
	return s.keyEncs[source]
}

// View returns version version of the named view, or its latest live
// version for version 0. Errors wrap ErrUnknownView or ErrUnknownVersion.
func (s *Snapshot) View(name string, version int) (*View, error) {
	h := s.views[name]
	if h == nil || len(h.live) == 0 {
		return nil, fmt.Errorf("%w %q", ErrUnknownView, name)
	}
	if version == 0 {
		return h.latest(), nil
	}
	i := sort.Search(len(h.live), func(i int) bool { return h.live[i].Version >= version })
	if i < len(h.live) && h.live[i].Version == version {
		return h.live[i], nil
	}
	return nil, fmt.Errorf("%w: view %q has no live version %d (live: %s)", ErrUnknownVersion, name, version, versionList(h.live))
}

func versionList(vs []*View) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = "v" + strconv.Itoa(v.Version)
	}
	return strings.Join(parts, ", ")
}

// Views returns every live version of every view, by name then version.
func (s *Snapshot) Views() []*View { return s.all }

// LiveViews returns every live version of every view on source that
// ingests from it, by name then version: all of them except Detached ones.
// Spec.Field of each indexes the source's current Fields.
func (s *Snapshot) LiveViews(source string) []*View { return s.bySource[source] }

// Service returns the named feature service. The error wraps
// ErrUnknownService.
func (s *Snapshot) Service(name string) (*Service, error) {
	svc, ok := s.services[name]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownService, name)
	}
	return svc, nil
}

// Services returns every feature service, by name.
func (s *Snapshot) Services() []*Service {
	out := make([]*Service, 0, len(s.services))
	for _, k := range sortedKeys(s.services) {
		out = append(out, s.services[k])
	}
	return out
}

// Resolve resolves feature references in order. If any fails, the error is
// a *ResolveError naming every bad reference (errors.Is matches
// ErrBadRef, ErrUnknownView, ErrUnknownVersion and ErrUnknownFeature as
// they occur).
func (s *Snapshot) Resolve(refs []string) ([]Resolved, error) {
	out, err := s.AppendResolved(make([]Resolved, 0, len(refs)), refs)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// AppendResolved is Resolve appending to dst, for callers that reuse a
// buffer. On error it returns dst unchanged.
func (s *Snapshot) AppendResolved(dst []Resolved, refs []string) ([]Resolved, error) {
	out := dst
	var bad []*RefError
	for _, ref := range refs {
		if r, ok := s.refs[ref]; ok {
			out = append(out, r)
			continue
		}
		r, err := s.resolve(ref)
		if err != nil {
			re, ok := err.(*RefError)
			if !ok {
				re = &RefError{Ref: ref, Err: err}
			}
			bad = append(bad, re)
			continue
		}
		out = append(out, r)
	}
	if bad != nil {
		return dst, &ResolveError{Refs: bad}
	}
	return out, nil
}

func (s *Snapshot) resolve(ref string) (Resolved, error) {
	r, err := ParseRef(ref)
	if err != nil {
		return Resolved{}, err
	}
	v, err := s.View(r.View, r.Version)
	if err != nil {
		return Resolved{}, err
	}
	i := v.FeatureIndex(r.Feature)
	if i < 0 {
		return Resolved{}, fmt.Errorf("%w: view %s v%d has no feature %q", ErrUnknownFeature, v.Name, v.Version, r.Feature)
	}
	return Resolved{Ref: ref, Name: r.Feature, View: v, Feature: i}, nil
}

// ResolveService resolves the references of the named feature service. The
// error wraps ErrUnknownService; the references of a service always resolve
// (Apply and Delete keep them valid).
func (s *Snapshot) ResolveService(name string) ([]Resolved, error) {
	svc, err := s.Service(name)
	if err != nil {
		return nil, err
	}
	return s.Resolve(svc.Features)
}

// Definitions returns the latest version of every definition as a
// document that Apply would find unchanged (hops written out).
func (s *Snapshot) Definitions() *Definitions {
	d := &Definitions{}
	for _, e := range s.Entities() {
		d.Entities = append(d.Entities, EntityDef{Name: e.Name, JoinKey: e.JoinKey, Type: kindName(e.Type), KafkaKey: e.KafkaKeyName()})
	}
	for _, src := range s.Sources() {
		d.Sources = append(d.Sources, sourceDef(src))
	}
	for _, name := range sortedKeys(s.views) {
		if v := s.views[name].latest(); v != nil {
			d.FeatureViews = append(d.FeatureViews, v.Definition())
		}
	}
	for _, svc := range s.Services() {
		d.FeatureServices = append(d.FeatureServices, ServiceDef{Name: svc.Name, Features: append([]string(nil), svc.Features...)})
	}
	return d
}

func sourceDef(src *Source) SourceDef {
	sd := SourceDef{
		Name: src.Name, Kind: src.Kind, Topic: src.Topic, Format: src.Format,
		EntityKey: slices.Clone(src.EntityKey), EventTime: src.EventTime,
		DeadLetterTopic: src.DeadLetterTopic, StartOffset: src.StartOffset,
	}
	if len(src.Fields) > 0 {
		sd.Fields = make(map[string]string, len(src.Fields))
		for _, f := range src.Fields {
			sd.Fields[f.Name] = kindName(f.Kind)
		}
	}
	return sd
}
