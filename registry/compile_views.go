package registry

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/featured-dev/featured/aggregate"
)

// Views: validation of view and feature definitions, diffs against the
// latest version, and compilation of view versions into the next Snapshot.

func (c *compiler) view(p string, vd *ViewDef) {
	errsBefore := c.errs.len()
	spec := &viewSpec{name: vd.Name, path: p}
	// A bad or duplicate name is reported already; validate the rest anyway.
	registered := c.viewPaths[vd.Name] == p
	spec.entities = c.viewEntities(p, vd)
	switch s := c.sources[vd.Source]; {
	case vd.Source == "":
		c.errs.add(p+".source", "required")
	case s == nil:
		c.errs.add(p+".source", "unknown source %q%s", vd.Source, didYouMean(vd.Source, sortedKeys(c.sources)))
	default:
		spec.source = s
	}
	if spec.entities != nil && spec.source != nil && len(spec.entities) != len(spec.source.EntityKey) {
		ep := p + ".entity"
		if len(vd.Entities) > 0 {
			ep = p + ".entities"
		}
		c.errs.add(ep, "view %s has %s but source %s's entity_key %s has %s: field i of the entity_key holds entity i's key",
			vd.Name, plural(len(spec.entities), "entity"), spec.source.Name, spec.source.EntityKey, plural(len(spec.source.EntityKey), "field"))
	}
	if vd.TTL == "" {
		c.errs.add(p+".ttl", "required, e.g. 8d: state not updated for ttl is gone, and no window is longer")
	} else if ttl, err := ParseDuration(vd.TTL); err != nil {
		c.errs.add(p+".ttl", "%v", err)
	} else {
		spec.ttl = ttl
	}
	if len(vd.Features) == 0 {
		c.errs.add(p+".features", "required: at least one feature")
	}
	seen := map[string]int{}
	for j := range vd.Features {
		fp := index(p+".features", j)
		f, ok := c.feature(fp, &vd.Features[j], spec)
		if ok {
			if first, dup := seen[f.name]; dup {
				c.errs.add(fp+".name", "duplicate feature %s (first at features[%d])", f.name, first)
				continue
			}
			seen[f.name] = j
			spec.features = append(spec.features, f)
		}
	}
	if c.errs.len() > errsBefore || !registered {
		return
	}
	old := c.cur.views[vd.Name]
	ch := Change{Kind: KindView, Name: vd.Name}
	if h := old; h != nil {
		ch.ViewID = h.id
	}
	latest := old.latest()
	switch {
	case latest == nil:
		ch.Action = ActionCreate
		ch.Detail = plural(len(spec.features), "feature")
		c.newVersions = append(c.newVersions, spec)
	default:
		ch.FromVersion = latest.Version
		diffs := viewDiff(latest, spec)
		if len(diffs) == 0 {
			ch.Action = ActionUnchanged
			break
		}
		ch.Action = ActionNewVersion
		ch.Detail = strings.Join(diffs, "; ")
		c.newVersions = append(c.newVersions, spec)
	}
	c.viewChanges = append(c.viewChanges, ch)
}

// viewEntities resolves a view's entity or entities, nil if any is bad.
func (c *compiler) viewEntities(p string, vd *ViewDef) []Entity {
	names, ep := []string{vd.Entity}, p+".entity"
	switch {
	case vd.Entity != "" && len(vd.Entities) > 0:
		c.errs.add(p+".entities", "give entity (one) or entities (a list), not both")
		return nil
	case len(vd.Entities) > 0:
		names, ep = vd.Entities, p+".entities"
	case vd.Entity == "":
		c.errs.add(p+".entity", "required (or entities: a list, for a key of several entities)")
		return nil
	}
	var out []Entity
	ok := true
	for i, name := range names {
		np := ep
		if len(vd.Entities) > 0 {
			np = index(ep, i)
		}
		e := c.entities[name]
		switch {
		case name == "":
			c.errs.add(np, "required")
		case e == nil:
			c.errs.add(np, "unknown entity %q%s", name, didYouMean(name, sortedKeys(c.entities)))
		default:
			for j, prev := range out {
				if prev.Name == e.Name {
					c.errs.add(np, "duplicate entity %s (first at entities[%d])", name, j)
					e = nil
				} else if prev.JoinKey == e.JoinKey {
					c.errs.add(np, "entities %s and %s of view %s have the same join key %s: a key's columns must be distinct", prev.Name, e.Name, vd.Name, e.JoinKey)
					e = nil
				}
				if e == nil {
					break
				}
			}
		}
		if e == nil {
			ok = false
			continue
		}
		out = append(out, *e)
	}
	if !ok {
		return nil
	}
	return out
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func didYouMean(s string, candidates []string) string {
	if m := suggest(s, candidates); m != "" {
		return fmt.Sprintf(" (did you mean %s?)", m)
	}
	return ""
}

// feature validates one feature definition. spec.source and spec.ttl may
// be unset when the view's own fields are bad; the checks that need them are
// skipped then.
func (c *compiler) feature(fp string, fd *FeatureDef, spec *viewSpec) (featureSpec, bool) {
	errsBefore := c.errs.len()
	f := featureSpec{name: fd.Name, agg: fd.Aggregation, field: fd.Field, k: fd.K}
	if msg := checkName(fd.Name); msg != "" {
		c.errs.add(fp+".name", "%s", msg)
	}
	op, known := lookupOp(fd.Aggregation)
	switch {
	case fd.Aggregation == "":
		c.errs.add(fp+".aggregation", "required: one of %s", opNames())
	case !known:
		c.errs.add(fp+".aggregation", "unknown aggregation %q: want one of %s", fd.Aggregation, opNames())
	}
	f.op = op
	src := spec.source
	switch {
	case !known:
	case fd.Field == "":
		if !op.accepts(aggregate.KindNull) {
			c.errs.add(fp+".field", "required for %s", op.name)
		}
	case src == nil:
	default:
		kind := src.fieldKind(fd.Field)
		switch {
		case kind != aggregate.KindNull:
			if !op.accepts(kind) {
				want := "int64 or float64"
				if !op.numeric {
					want = "another kind"
				}
				c.errs.add(fp+".field", "%s does not aggregate %s field %s (want %s)", op.name, kindName(kind), fd.Field, want)
			}
		case src.EntityKey.Has(fd.Field):
			c.errs.add(fp+".field", "%s is source %s's entity_key, not a value field", fd.Field, src.Name)
		case fd.Field == src.EventTime:
			c.errs.add(fp+".field", "%s is source %s's event_time, not a value field", fd.Field, src.Name)
		default:
			names := make([]string, len(src.Fields))
			for i, sf := range src.Fields {
				names[i] = sf.Name
			}
			c.errs.add(fp+".field", "source %s has no field %q%s", src.Name, fd.Field, didYouMean(fd.Field, names))
		}
	}
	if fd.Window != "" {
		w, err := ParseDuration(fd.Window)
		switch {
		case err != nil:
			c.errs.add(fp+".window", "%v", err)
		case spec.ttl > 0 && w > spec.ttl:
			c.errs.add(fp+".window", "%s exceeds ttl %s", FormatDuration(w), FormatDuration(spec.ttl))
		default:
			f.window = w
		}
	}
	switch {
	case fd.Hop != "" && fd.Window == "":
		c.errs.add(fp+".hop", "hop without window (a lifetime feature has no tiles)")
	case fd.Hop != "":
		h, err := ParseDuration(fd.Hop)
		switch {
		case err != nil:
			c.errs.add(fp+".hop", "%v", err)
		case f.window > 0 && f.window%h != 0:
			c.errs.add(fp+".hop", "window %s is not a multiple of hop %s", FormatDuration(f.window), FormatDuration(h))
		default:
			f.hop = h
		}
	case f.window > 0:
		h := time.Duration(aggregate.DefaultHopMillis(f.window.Milliseconds())) * time.Millisecond
		if h <= 0 || f.window%h != 0 {
			c.errs.add(fp+".window", "%s is not a multiple of the default hop %s; set hop", FormatDuration(f.window), FormatDuration(h))
		} else {
			f.hop = h
		}
	}
	if f.window > 0 && f.hop > 0 && f.window/f.hop > maxTilesPerWindow {
		c.errs.add(fp+".hop", "window %s / hop %s = %d tiles, more than %d; use a larger hop", FormatDuration(f.window), FormatDuration(f.hop), f.window/f.hop, maxTilesPerWindow)
	}
	if known {
		switch op.k {
		case "required":
			if fd.K < 1 || fd.K > maxLastK {
				c.errs.add(fp+".k", "%s needs k from 1 to %d", op.name, maxLastK)
			}
		case "optional":
			if fd.K < 0 || fd.K > maxDistinctK {
				c.errs.add(fp+".k", "%s takes k from 0 (the default exact bound) to %d", op.name, maxDistinctK)
			}
		default:
			if fd.K != 0 {
				c.errs.add(fp+".k", "only last_k and count_distinct take k")
			}
		}
	}
	return f, c.errs.len() == errsBefore
}

// readFields returns the distinct fields the features read, sorted.
func readFields(feats []featureSpec) []string {
	var out []string
	for _, f := range feats {
		if f.field != "" {
			out = append(out, f.field)
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// mappingDiff says how source b maps the fields a view reads differently
// from source a: entity key, event time, kinds of the given fields.
func mappingDiff(a, b *Source, fields []string) []string {
	var d []string
	if !slices.Equal(a.EntityKey, b.EntityKey) {
		d = append(d, fmt.Sprintf("entity_key %s -> %s", a.EntityKey, b.EntityKey))
	}
	if a.EventTime != b.EventTime {
		d = append(d, fmt.Sprintf("event_time %s -> %s", a.EventTime, b.EventTime))
	}
	for _, f := range fields {
		ka, kb := a.fieldKind(f), b.fieldKind(f)
		if ka != kb {
			d = append(d, fmt.Sprintf("field %s %s -> %s", f, kindOrMissing(ka), kindOrMissing(kb)))
		}
	}
	return d
}

func kindOrMissing(k aggregate.Kind) string {
	if k == aggregate.KindNull {
		return "(missing)"
	}
	return kindName(k)
}

func specsOf(v *View) []featureSpec {
	out := make([]featureSpec, len(v.Features))
	for i, f := range v.Features {
		op, _ := lookupOp(f.Aggregation)
		out[i] = featureSpec{name: f.Name, agg: f.Aggregation, field: f.Field, op: op, window: f.Window, hop: f.Hop, k: f.K}
	}
	return out
}

// viewDiff says how spec differs from the view version v; empty when
// applying spec would leave v the latest version.
func viewDiff(v *View, spec *viewSpec) []string {
	var d []string
	if !sameKey(v.Entities, spec.entities) {
		what := "entity"
		if len(v.Entities) > 1 || len(spec.entities) > 1 {
			what = "entities"
		}
		d = append(d, fmt.Sprintf("%s %s -> %s", what, v.EntityNames(), entityNames(spec.entities)))
	}
	if v.Source.Name != spec.source.Name {
		d = append(d, fmt.Sprintf("source %s -> %s", v.Source.Name, spec.source.Name))
	} else {
		var both []string
		for _, f := range readFields(spec.features) {
			if _, found := slices.BinarySearch(v.readSet, f); found {
				both = append(both, f)
			}
		}
		for _, m := range mappingDiff(&v.Source, spec.source, both) {
			d = append(d, "source "+v.Source.Name+" "+m)
		}
	}
	if v.TTL != spec.ttl {
		d = append(d, fmt.Sprintf("ttl %s -> %s", FormatDuration(v.TTL), FormatDuration(spec.ttl)))
	}
	return append(d, featuresDiff(specsOf(v), spec.features)...)
}

func featuresDiff(old, cur []featureSpec) []string {
	var d []string
	oldBy := map[string]featureSpec{}
	var oldNames, curNames []string
	for _, f := range old {
		oldBy[f.name] = f
		oldNames = append(oldNames, f.name)
	}
	curBy := map[string]bool{}
	for _, f := range cur {
		curBy[f.name] = true
		o, ok := oldBy[f.name]
		if !ok {
			d = append(d, fmt.Sprintf("feature %s added", f.name))
			continue
		}
		curNames = append(curNames, f.name)
		str := func(what, x, y string) {
			if x != y {
				d = append(d, fmt.Sprintf("%s %s %s -> %s", f.name, what, orNone(x), orNone(y)))
			}
		}
		str("aggregation", o.agg, f.agg)
		str("field", o.field, f.field)
		str("window", windowString(o.window), windowString(f.window))
		str("hop", hopString(o.hop), hopString(f.hop))
		if o.k != f.k {
			d = append(d, fmt.Sprintf("%s k %d -> %d", f.name, o.k, f.k))
		}
	}
	var kept []string
	for _, n := range oldNames {
		if curBy[n] {
			kept = append(kept, n)
		} else {
			d = append(d, fmt.Sprintf("feature %s removed", n))
		}
	}
	if !slices.Equal(kept, curNames) {
		d = append(d, "features reordered")
	}
	return d
}

func windowString(w time.Duration) string {
	if w == 0 {
		return "lifetime"
	}
	return FormatDuration(w)
}

func hopString(h time.Duration) string {
	if h == 0 {
		return ""
	}
	return FormatDuration(h)
}

// sourceTriggeredVersions gives a new version to every view not in the
// document whose latest version reads an updated source differently.
func (c *compiler) sourceTriggeredVersions() {
	for _, srcName := range sortedKeys(c.changedSources) {
		src, p := c.sources[srcName], c.sourcePaths[srcName]
		for _, name := range sortedKeys(c.cur.views) {
			latest := c.cur.views[name].latest()
			if latest == nil || latest.Source.Name != srcName {
				continue
			}
			if _, inDoc := c.viewPaths[name]; inDoc {
				continue
			}
			feats := specsOf(latest)
			ok := true
			for _, f := range feats {
				if f.field == "" {
					continue
				}
				switch k := src.fieldKind(f.field); {
				case k == aggregate.KindNull:
					c.errs.add(p+".fields", "field %s is gone, but view %s v%d reads it (feature %s); change or delete the view in the same apply", f.field, name, latest.Version, f.name)
					ok = false
				case !f.op.accepts(k):
					c.errs.add(p+".fields."+f.field, "%s %s does not suit view %s v%d (feature %s is %s); change the view in the same apply", kindName(k), f.field, name, latest.Version, f.name, f.agg)
					ok = false
				}
			}
			if !ok {
				continue
			}
			diffs := mappingDiff(&latest.Source, src, latest.readSet)
			if len(diffs) == 0 {
				continue
			}
			// Entities in use cannot change: latest's are the current ones.
			spec := &viewSpec{name: name, entities: latest.Entities, source: src, ttl: latest.TTL, features: feats}
			for i := range diffs {
				diffs[i] = "source " + srcName + " " + diffs[i]
			}
			c.newVersions = append(c.newVersions, spec)
			c.viewChanges = append(c.viewChanges, Change{
				Kind: KindView, Name: name, Action: ActionNewVersion, ViewID: c.cur.views[name].id,
				FromVersion: latest.Version, Detail: strings.Join(diffs, "; "),
			})
		}
	}
}

// build makes the next Snapshot's views: it rebinds the versions on changed
// sources and adds the new versions. It fills in the plan's ToVersions.
func (c *compiler) build() *Snapshot {
	next := &Snapshot{
		gen:        c.cur.gen,
		nextViewID: c.cur.nextViewID,
		entities:   c.entities,
		sources:    c.sources,
		views:      cloneMap(c.cur.views),
		changed:    make(chan struct{}),
	}
	// Existing versions on changed sources: rebind them to the new source
	// (field indexes move when fields are added), or detach them.
	detached := map[string][]string{}   // source -> "view vN" newly detached
	reattached := map[string][]string{} // source -> "view vN" ingesting again
	for name, h := range next.views {
		touched := false
		for _, v := range h.live {
			if c.changedSources[v.origin.Name] {
				touched = true
			}
		}
		if !touched {
			continue
		}
		nh := &viewHistory{id: h.id, lastVersion: h.lastVersion, live: make([]*View, len(h.live))}
		for i, v := range h.live {
			if !c.changedSources[v.origin.Name] {
				nh.live[i] = v
				continue
			}
			nv, err := buildView(v.ID, v.Name, v.Version, v.CreatedAt, v.Entities, v.origin, c.sources[v.origin.Name], v.TTL, specsOf(v))
			if err != nil {
				c.errs.add(c.sourcePaths[v.origin.Name], "view %s v%d: %v", v.Name, v.Version, err)
				nh.live[i] = v
				continue
			}
			label := fmt.Sprintf("%s v%d", v.Name, v.Version)
			if nv.Detached && !v.Detached {
				detached[v.origin.Name] = append(detached[v.origin.Name], label)
			} else if !nv.Detached && v.Detached {
				reattached[v.origin.Name] = append(reattached[v.origin.Name], label)
			}
			nh.live[i] = nv
		}
		next.views[name] = nh
	}
	for _, spec := range c.newVersions {
		h := next.views[spec.name]
		nh := &viewHistory{}
		if h != nil {
			*nh = *h
			nh.live = slices.Clone(h.live)
		} else {
			nh.id = next.nextViewID
			next.nextViewID++
		}
		nh.lastVersion++
		v, err := buildView(nh.id, spec.name, nh.lastVersion, c.now, spec.entities, spec.source, spec.source, spec.ttl, spec.features)
		if err != nil {
			c.errs.add(spec.path, "%v", err)
			continue
		}
		nh.live = append(nh.live, v)
		next.views[spec.name] = nh
		c.created[v] = spec.path
		for i := range c.viewChanges {
			if ch := &c.viewChanges[i]; ch.Name == spec.name && ch.Action != ActionUnchanged {
				ch.ToVersion = v.Version
				ch.ViewID = v.ID
			}
		}
	}
	// Say on the source's line which older versions stop (or resume)
	// ingesting because of it.
	for i := range c.sourceChanges {
		ch := &c.sourceChanges[i]
		if d := detached[ch.Name]; len(d) > 0 {
			sort.Strings(d)
			ch.Detail += fmt.Sprintf("; detaches %s (servable, no longer ingested)", strings.Join(d, ", "))
		}
		if a := reattached[ch.Name]; len(a) > 0 {
			sort.Strings(a)
			ch.Detail += fmt.Sprintf("; reattaches %s (ingested again)", strings.Join(a, ", "))
		}
	}
	next.index()
	return next
}

// checkKafkaKeys refuses views on one source whose first entities (what a
// key is placed by) are int64 with different kafka_keys: a record's
// partition follows the one encoding its producer used, so the views'
// entities could not all be found where their events land.
func (c *compiler) checkKafkaKeys(next *Snapshot) {
	encs := map[string]map[string]string{} // source -> kafka_key -> a view using it
	for _, v := range next.all {
		if v.Entities[0].Type != aggregate.KindInt64 {
			continue
		}
		if encs[v.Source.Name] == nil {
			encs[v.Source.Name] = map[string]string{}
		}
		encs[v.Source.Name][v.Entities[0].KafkaKeyName()] = fmt.Sprintf("%s v%d (entity %s)", v.Name, v.Version, v.Entities[0].Name)
	}
	for _, src := range sortedKeys(encs) {
		if len(encs[src]) < 2 {
			continue
		}
		var parts []string
		for _, k := range sortedKeys(encs[src]) {
			parts = append(parts, fmt.Sprintf("%s: %s", k, encs[src][k]))
		}
		c.errs.add(c.sourcePaths[src], "views on source %s would use entities with different kafka_keys: %s (a record is partitioned by one encoding of its key)", src, strings.Join(parts, "; "))
	}
}

// checkKeyKinds refuses views on one source whose keys have different
// types (part by part, for compound keys): ingest decodes the key once per
// event.
func (c *compiler) checkKeyKinds(next *Snapshot) {
	bySource := map[string]map[string][]*View{} // source -> key kinds -> views
	for _, v := range next.all {
		m := bySource[v.Source.Name]
		if m == nil {
			m = map[string][]*View{}
			bySource[v.Source.Name] = m
		}
		k := kindsName(v.KeyKinds())
		m[k] = append(m[k], v)
	}
	for _, src := range sortedKeys(bySource) {
		m := bySource[src]
		if len(m) < 2 {
			continue
		}
		kinds := sortedKeys(m)
		// One-entity keys first, string before int64, as always printed.
		rank := map[string]int{"string": -2, "int64": -1}
		sort.SliceStable(kinds, func(i, j int) bool { return rank[kinds[i]] < rank[kinds[j]] })
		var parts []string
		path := ""
		for _, k := range kinds {
			var names []string
			vers := map[string][]string{}
			for _, v := range m[k] {
				label := v.Name + " " + v.EntityNames()
				if _, ok := vers[label]; !ok {
					names = append(names, label)
				}
				vers[label] = append(vers[label], fmt.Sprintf("v%d", v.Version))
				if p := c.created[v]; p != "" && path == "" {
					path = p + ".entity"
					if len(v.Entities) > 1 {
						path = p + ".entities"
					}
				}
			}
			for _, label := range names {
				name, entity, _ := strings.Cut(label, " ")
				what := "entity"
				if strings.HasPrefix(entity, "[") {
					what = "entities"
				}
				parts = append(parts, fmt.Sprintf("%s %s (%s %s, %s)", name, strings.Join(vers[label], ", "), what, entity, k))
			}
		}
		if path == "" {
			path = c.sourcePaths[src]
		}
		c.errs.add(path, "views on source %s would use entity keys of different types: %s (the key is decoded once per event: use another source, or delete the versions of the other type first)", src, strings.Join(parts, "; "))
	}
}

// kindsName is "int64" for a one-part key, "[int64, string]" for several.
func kindsName(kinds []aggregate.Kind) string {
	names := make(KeyFields, len(kinds))
	for i, k := range kinds {
		names[i] = kindName(k)
	}
	return names.String()
}

// buildView compiles one view version. origin is the source as of the
// version's creation; cur the source now (nil if gone). The version is
// bound to cur when cur maps what it reads the same way, else Detached and
// bound to origin.
func buildView(id uint32, name string, version int, created time.Time, ents []Entity, origin, cur *Source, ttl time.Duration, feats []featureSpec) (*View, error) {
	v := &View{
		ID: id, Name: name, Version: version, Entities: ents, TTL: ttl, CreatedAt: created,
		origin:  origin,
		byName:  make(map[string]int, len(feats)),
		readSet: readFields(feats),
	}
	src := origin
	if cur != nil && len(mappingDiff(origin, cur, v.readSet)) == 0 {
		src = cur
	} else {
		v.Detached = true
	}
	v.Source = *src
	specs := make([]aggregate.Spec, len(feats))
	v.Features = make([]Feature, len(feats))
	for i, f := range feats {
		spec := aggregate.Spec{
			Op:           f.op.op,
			Field:        -1,
			WindowMillis: f.window.Milliseconds(),
			HopMillis:    f.hop.Milliseconds(),
			K:            f.k,
		}
		if f.field != "" {
			idx := src.FieldIndex(f.field)
			if idx < 0 {
				return nil, fmt.Errorf("feature %s: source %s has no field %s", f.name, src.Name, f.field)
			}
			spec.Field = idx
			spec.FieldKind = src.Fields[idx].Kind
		}
		specs[i] = spec
		v.Features[i] = Feature{Name: f.name, Aggregation: f.agg, Field: f.field, Window: f.window, Hop: f.hop, K: f.k, Spec: spec}
		v.byName[f.name] = i
	}
	layout, err := aggregate.NewLayout(specs, ttl.Milliseconds())
	if err != nil {
		return nil, fmt.Errorf("compile layout: %w", err)
	}
	v.Layout = layout
	return v, nil
}
