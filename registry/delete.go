package registry

import (
	"fmt"
	"strings"
)

// planDelete builds the Snapshot without the named object. version
// selects one version of a view; 0 deletes every version (and is the only
// value for other kinds).
func (s *Snapshot) planDelete(kind, name string, version int) (*Snapshot, *Plan, error) {
	if version < 0 {
		return nil, nil, &ValidationError{Path: "version", Msg: fmt.Sprintf("%d: want 0 (every version) or a version number", version)}
	}
	if kind != KindView && version != 0 {
		return nil, nil, &ValidationError{Path: "version", Msg: fmt.Sprintf("only views have versions, not a %s", kind)}
	}
	next := &Snapshot{
		gen:        s.gen + 1,
		nextViewID: s.nextViewID,
		entities:   s.entities,
		sources:    s.sources,
		views:      s.views,
		services:   s.services,
		changed:    make(chan struct{}),
	}
	plan := &Plan{}
	switch kind {
	case KindView:
		h := s.views[name]
		if h == nil || len(h.live) == 0 {
			return nil, nil, fmt.Errorf("%w %q", ErrUnknownView, name)
		}
		nh := &viewHistory{id: h.id, lastVersion: h.lastVersion}
		for _, v := range h.live {
			if version == 0 || v.Version == version {
				plan.Changes = append(plan.Changes, Change{Kind: KindView, Name: name, Action: ActionDelete, FromVersion: v.Version, ViewID: v.ID})
			} else {
				nh.live = append(nh.live, v)
			}
		}
		if len(plan.Changes) == 0 {
			return nil, nil, fmt.Errorf("%w: view %q has no live version %d (live: %s)", ErrUnknownVersion, name, version, versionList(h.live))
		}
		if l := nh.latest(); l != nil && l != h.latest() && l.Detached {
			ch := &plan.Changes[len(plan.Changes)-1]
			ch.Detail = fmt.Sprintf("v%d becomes the latest, but it is detached: not ingested; apply the view to make a version that is", l.Version)
		}
		next.views = cloneMap(s.views)
		next.views[name] = nh // kept when empty: the ID and versions stay reserved
		next.index()
		// A service must still resolve: a pinned ref to a deleted version, or
		// an unpinned one to a view left without versions or whose new latest
		// lacks the feature, refuses the delete.
		var users []string
		for _, svc := range s.Services() {
			var bad []string
			for _, ref := range svc.Features {
				if _, err := next.resolve(ref); err != nil {
					bad = append(bad, ref)
				}
			}
			if len(bad) > 0 {
				users = append(users, fmt.Sprintf("feature service %s (%s)", svc.Name, strings.Join(bad, ", ")))
			}
		}
		if len(users) > 0 {
			what := "view " + name
			if version != 0 {
				what = fmt.Sprintf("view %s v%d", name, version)
			}
			return nil, nil, fmt.Errorf("%w: cannot delete %s: used by %s; change or delete those first", ErrInUse, what, strings.Join(users, "; "))
		}
		return next, plan, nil
	case KindSource:
		if _, ok := s.sources[name]; !ok {
			return nil, nil, fmt.Errorf("%w %q", ErrUnknownSource, name)
		}
		if users := s.viewsUsing(func(v *View) bool { return v.Source.Name == name }); users != "" {
			return nil, nil, fmt.Errorf("%w: cannot delete source %s: live views read it: %s; delete them first", ErrInUse, name, users)
		}
		next.sources = cloneMap(s.sources)
		delete(next.sources, name)
	case KindEntity:
		if _, ok := s.entities[name]; !ok {
			return nil, nil, fmt.Errorf("%w %q", ErrUnknownEntity, name)
		}
		if users := s.viewsUsing(func(v *View) bool { return v.UsesEntity(name) }); users != "" {
			return nil, nil, fmt.Errorf("%w: cannot delete entity %s: live views use it: %s; delete them first", ErrInUse, name, users)
		}
		next.entities = cloneMap(s.entities)
		delete(next.entities, name)
	case KindService:
		if _, ok := s.services[name]; !ok {
			return nil, nil, fmt.Errorf("%w %q", ErrUnknownService, name)
		}
		next.services = cloneMap(s.services)
		delete(next.services, name)
	default:
		kinds := []string{KindView, KindSource, KindEntity, KindService}
		return nil, nil, &ValidationError{Path: "kind", Msg: fmt.Sprintf("%q: want one of %s", kind, strings.Join(kinds, ", "))}
	}
	plan.Changes = append(plan.Changes, Change{Kind: kind, Name: name, Action: ActionDelete})
	next.index()
	return next, plan, nil
}
