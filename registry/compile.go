package registry

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/featured-dev/featured/aggregate"
)

// This file validates a Definitions document against a Snapshot and builds
// the Snapshot that applying it gives, with the Plan that says how the two
// differ. Nothing here has side effects: Plan discards the result, Apply
// persists and publishes it.

// featureSpec is a validated feature definition.
type featureSpec struct {
	name, agg, field string
	op               opInfo
	window, hop      time.Duration
	k                int
}

// viewSpec is a validated view version definition.
type viewSpec struct {
	name     string
	path     string // in the document; "" for versions made by a source change
	entity   *Entity
	source   *Source
	ttl      time.Duration
	features []featureSpec
}

type compiler struct {
	cur  *Snapshot
	now  time.Time
	errs errList

	// The registry after the apply.
	entities map[string]*Entity
	sources  map[string]*Source
	services map[string]*Service

	// Document paths by name, for errors.
	entityPaths, sourcePaths, viewPaths map[string]string
	// Sources this apply creates or updates, by name.
	changedSources map[string]bool
	// View versions to create, in plan order.
	newVersions []*viewSpec
	// created maps the versions build made to their document path.
	created map[*View]string

	entityChanges, sourceChanges, viewChanges, serviceChanges []Change
}

// compile validates d against cur. It returns the next Snapshot (cur itself
// when nothing changes) and the plan, or every validation error joined.
func compile(cur *Snapshot, d *Definitions, now time.Time) (*Snapshot, *Plan, error) {
	if d == nil {
		d = &Definitions{}
	}
	c := &compiler{
		cur:            cur,
		now:            now,
		entities:       cloneMap(cur.entities),
		sources:        cloneMap(cur.sources),
		services:       cloneMap(cur.services),
		entityPaths:    map[string]string{},
		sourcePaths:    map[string]string{},
		viewPaths:      map[string]string{},
		changedSources: map[string]bool{},
		created:        map[*View]string{},
	}
	for i := range d.Entities {
		c.entity(index("entities", i), &d.Entities[i])
	}
	for i := range d.Sources {
		c.source(index("sources", i), &d.Sources[i])
	}
	c.checkTopics()
	// Names first, so that a view may refer to another one defined later.
	for i, vd := range d.FeatureViews {
		p := index("feature_views", i)
		if msg := checkName(vd.Name); msg != "" {
			c.errs.add(p+".name", "%s", msg)
		} else if first, dup := c.viewPaths[vd.Name]; dup {
			c.errs.add(p+".name", "duplicate feature view %s (first at %s)", vd.Name, first)
		} else {
			c.viewPaths[vd.Name] = p
		}
	}
	for i := range d.FeatureViews {
		c.view(index("feature_views", i), &d.FeatureViews[i])
	}
	c.sourceTriggeredVersions()
	serviceNames := map[string]string{}
	if c.errs.len() > 0 {
		// Still report what is wrong with the services on their own.
		for i := range d.FeatureServices {
			c.service(nil, index("feature_services", i), &d.FeatureServices[i], serviceNames)
		}
		return nil, nil, c.errs.err()
	}
	next := c.build()
	c.checkKeyKinds(next)
	for i := range d.FeatureServices {
		c.service(next, index("feature_services", i), &d.FeatureServices[i], serviceNames)
	}
	c.checkOtherServices(next, serviceNames)
	if c.errs.len() > 0 {
		return nil, nil, c.errs.err()
	}
	next.services = c.services
	plan := &Plan{}
	plan.Changes = append(plan.Changes, c.entityChanges...)
	plan.Changes = append(plan.Changes, c.sourceChanges...)
	plan.Changes = append(plan.Changes, c.viewChanges...)
	plan.Changes = append(plan.Changes, c.serviceChanges...)
	if !plan.Changed() {
		return cur, plan, nil
	}
	next.gen = cur.gen + 1
	return next, plan, nil
}

func cloneMap[V any](m map[string]V) map[string]V {
	out := make(map[string]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (c *compiler) entity(p string, ed *EntityDef) {
	ok := true
	if msg := checkName(ed.Name); msg != "" {
		c.errs.add(p+".name", "%s", msg)
		ok = false
	} else if first, dup := c.entityPaths[ed.Name]; dup {
		c.errs.add(p+".name", "duplicate entity %s (first at %s)", ed.Name, first)
		return
	}
	if msg := checkFieldName(ed.JoinKey); msg != "" {
		c.errs.add(p+".join_key", "%s", msg)
		ok = false
	}
	var typ aggregate.Kind
	switch ed.Type {
	case "string":
		typ = aggregate.KindString
	case "int64":
		typ = aggregate.KindInt64
	case "":
		c.errs.add(p+".type", "required: string or int64")
		ok = false
	default:
		c.errs.add(p+".type", "%q is not an entity key type: want string or int64", ed.Type)
		ok = false
	}
	if !ok {
		return
	}
	c.entityPaths[ed.Name] = p
	e := &Entity{Name: ed.Name, JoinKey: ed.JoinKey, Type: typ}
	old := c.cur.entities[ed.Name]
	ch := Change{Kind: KindEntity, Name: e.Name}
	switch {
	case old == nil:
		ch.Action = ActionCreate
		ch.Detail = fmt.Sprintf("join key %s, %s", e.JoinKey, kindName(e.Type))
	case *old == *e:
		ch.Action = ActionUnchanged
		e = old
	default:
		ch.Action = ActionUpdate
		var diffs []string
		if old.JoinKey != e.JoinKey {
			diffs = append(diffs, fmt.Sprintf("join_key %s -> %s", old.JoinKey, e.JoinKey))
		}
		if old.Type != e.Type {
			diffs = append(diffs, fmt.Sprintf("type %s -> %s", kindName(old.Type), kindName(e.Type)))
		}
		ch.Detail = strings.Join(diffs, "; ")
		if users := c.cur.viewsUsing(func(v *View) bool { return v.Entity.Name == e.Name }); users != "" {
			field := p + ".join_key"
			if old.JoinKey == e.JoinKey {
				field = p + ".type"
			}
			c.errs.add(field, "cannot change entity %s (%s) while views use it: %s", e.Name, ch.Detail, users)
			return
		}
	}
	c.entities[e.Name] = e
	c.entityChanges = append(c.entityChanges, ch)
}

// viewsUsing lists the live versions matching f, e.g. "user_spend v1, v2".
func (s *Snapshot) viewsUsing(f func(*View) bool) string {
	var parts []string
	for _, name := range sortedKeys(s.views) {
		var vers []string
		for _, v := range s.views[name].live {
			if f(v) {
				vers = append(vers, fmt.Sprintf("v%d", v.Version))
			}
		}
		if len(vers) > 0 {
			parts = append(parts, name+" "+strings.Join(vers, ", "))
		}
	}
	return strings.Join(parts, "; ")
}

func (c *compiler) source(p string, sd *SourceDef) {
	errsBefore := c.errs.len()
	if msg := checkName(sd.Name); msg != "" {
		c.errs.add(p+".name", "%s", msg)
	} else if first, dup := c.sourcePaths[sd.Name]; dup {
		c.errs.add(p+".name", "duplicate source %s (first at %s)", sd.Name, first)
		return
	}
	s := &Source{
		Name: sd.Name, Kind: sd.Kind, Topic: sd.Topic, Format: sd.Format,
		EntityKey: sd.EntityKey, EventTime: sd.EventTime,
		DeadLetterTopic: sd.DeadLetterTopic, StartOffset: sd.StartOffset,
	}
	switch s.Kind {
	case "kafka":
		if msg := checkTopic(s.Topic); msg != "" {
			c.errs.add(p+".topic", "%s for a kafka source", msg)
		}
		if s.DeadLetterTopic == "" {
			if s.Topic != "" {
				s.DeadLetterTopic = s.Topic + ".dlq"
			}
		} else if msg := checkTopic(s.DeadLetterTopic); msg != "" {
			c.errs.add(p+".dead_letter_topic", "%s", msg)
		} else if s.DeadLetterTopic == s.Topic {
			c.errs.add(p+".dead_letter_topic", "is the source's own topic")
		}
		switch s.StartOffset {
		case "":
			s.StartOffset = "earliest"
		case "earliest", "latest":
		default:
			c.errs.add(p+".start_offset", "%q: want earliest or latest", s.StartOffset)
		}
	case "push":
		if s.Topic != "" {
			c.errs.add(p+".topic", "only kafka sources have a topic")
		}
		if s.DeadLetterTopic != "" {
			c.errs.add(p+".dead_letter_topic", "only kafka sources have a dead-letter topic")
		}
		if s.StartOffset != "" {
			c.errs.add(p+".start_offset", "only kafka sources have a start offset")
		}
	case "":
		c.errs.add(p+".kind", "required: push or kafka")
	default:
		c.errs.add(p+".kind", "%q: want push or kafka", s.Kind)
	}
	switch s.Format {
	case "":
		s.Format = "json"
	case "json":
	default:
		c.errs.add(p+".format", "%q: the only format is json", s.Format)
	}
	if msg := checkFieldName(s.EntityKey); msg != "" {
		c.errs.add(p+".entity_key", "%s", msg)
	}
	if msg := checkFieldName(s.EventTime); msg != "" {
		c.errs.add(p+".event_time", "%s", msg)
	} else if s.EventTime == s.EntityKey {
		c.errs.add(p+".event_time", "is also the entity_key")
	}
	for _, name := range sortedKeys(sd.Fields) {
		fp := p + ".fields." + name
		kind, ok := fieldKinds[sd.Fields[name]]
		switch {
		case checkFieldName(name) != "":
			c.errs.add(fp, "%s", checkFieldName(name))
		case name == s.EntityKey:
			c.errs.add(fp, "is the entity_key; fields lists only value fields (the key's type is the entity's)")
		case name == s.EventTime:
			c.errs.add(fp, "is the event_time; fields lists only value fields")
		case !ok:
			c.errs.add(fp, "%q is not a field type: want int64, float64, string or bool", sd.Fields[name])
		default:
			s.Fields = append(s.Fields, Field{Name: name, Kind: kind})
		}
	}
	if c.errs.len() > errsBefore {
		return
	}
	c.sourcePaths[s.Name] = p
	old := c.cur.sources[s.Name]
	ch := Change{Kind: KindSource, Name: s.Name}
	switch diffs := sourceDiff(old, s); {
	case old == nil:
		ch.Action = ActionCreate
		if s.Kind == "kafka" {
			ch.Detail = fmt.Sprintf("kafka topic %s, %s", s.Topic, plural(len(s.Fields), "field"))
		} else {
			ch.Detail = "push, " + plural(len(s.Fields), "field")
		}
		c.changedSources[s.Name] = true
	case len(diffs) == 0:
		ch.Action = ActionUnchanged
		s = old
	default:
		ch.Action = ActionUpdate
		ch.Detail = strings.Join(diffs, "; ")
		c.changedSources[s.Name] = true
	}
	c.sources[s.Name] = s
	c.sourceChanges = append(c.sourceChanges, ch)
}

func sourceDiff(a, b *Source) []string {
	if a == nil {
		return nil
	}
	var d []string
	str := func(what, x, y string) {
		if x != y {
			d = append(d, fmt.Sprintf("%s %s -> %s", what, orNone(x), orNone(y)))
		}
	}
	str("kind", a.Kind, b.Kind)
	str("topic", a.Topic, b.Topic)
	str("format", a.Format, b.Format)
	str("entity_key", a.EntityKey, b.EntityKey)
	str("event_time", a.EventTime, b.EventTime)
	for _, f := range b.Fields {
		if k := a.fieldKind(f.Name); k == aggregate.KindNull {
			d = append(d, fmt.Sprintf("field %s (%s) added", f.Name, kindName(f.Kind)))
		} else if k != f.Kind {
			d = append(d, fmt.Sprintf("field %s %s -> %s", f.Name, kindName(k), kindName(f.Kind)))
		}
	}
	for _, f := range a.Fields {
		if b.FieldIndex(f.Name) < 0 {
			d = append(d, fmt.Sprintf("field %s removed", f.Name))
		}
	}
	str("dead_letter_topic", a.DeadLetterTopic, b.DeadLetterTopic)
	str("start_offset", a.StartOffset, b.StartOffset)
	return d
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// checkTopics refuses two kafka sources on one topic (ingest commits offsets
// per topic, so both would share them) and dead-letter loops.
func (c *compiler) checkTopics() {
	// Each doc source is checked against the registry's other sources and
	// the doc sources before it, so a conflict is reported once, at the
	// later source.
	var docOrder []string
	for name := range c.sourcePaths {
		docOrder = append(docOrder, name)
	}
	sort.Slice(docOrder, func(i, j int) bool {
		return pathLess(c.sourcePaths[docOrder[i]], c.sourcePaths[docOrder[j]])
	})
	for i, name := range docOrder {
		s, p := c.sources[name], c.sourcePaths[name]
		if s.Kind != "kafka" {
			continue
		}
		for _, other := range sortedKeys(c.sources) {
			o := c.sources[other]
			if other == name || o.Kind != "kafka" {
				continue
			}
			if _, inDoc := c.sourcePaths[other]; inDoc && !slices.Contains(docOrder[:i], other) {
				continue
			}
			if o.Topic == s.Topic {
				c.errs.add(p+".topic", "topic %s is already read by source %s", s.Topic, other)
			}
			if o.Topic == s.DeadLetterTopic {
				c.errs.add(p+".dead_letter_topic", "%s is the topic of source %s", s.DeadLetterTopic, other)
			}
			if o.DeadLetterTopic == s.Topic {
				c.errs.add(p+".topic", "%s is the dead-letter topic of source %s", s.Topic, other)
			}
		}
	}
}

// pathLess orders "sources[2]" before "sources[10]".
func pathLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

func (c *compiler) view(p string, vd *ViewDef) {
	errsBefore := c.errs.len()
	spec := &viewSpec{name: vd.Name, path: p}
	// A bad or duplicate name is reported already; validate the rest anyway.
	registered := c.viewPaths[vd.Name] == p
	switch e := c.entities[vd.Entity]; {
	case vd.Entity == "":
		c.errs.add(p+".entity", "required")
	case e == nil:
		c.errs.add(p+".entity", "unknown entity %q%s", vd.Entity, didYouMean(vd.Entity, sortedKeys(c.entities)))
	default:
		spec.entity = e
	}
	switch s := c.sources[vd.Source]; {
	case vd.Source == "":
		c.errs.add(p+".source", "required")
	case s == nil:
		c.errs.add(p+".source", "unknown source %q%s", vd.Source, didYouMean(vd.Source, sortedKeys(c.sources)))
	default:
		spec.source = s
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
		case fd.Field == src.EntityKey:
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
			if fd.K < 0 {
				c.errs.add(fp+".k", "must not be negative (0 is the default exact bound)")
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
	if a.EntityKey != b.EntityKey {
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
	if v.Entity.Name != spec.entity.Name {
		d = append(d, fmt.Sprintf("entity %s -> %s", v.Entity.Name, spec.entity.Name))
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
			spec := &viewSpec{name: name, entity: c.entities[latest.Entity.Name], source: src, ttl: latest.TTL, features: feats}
			if spec.entity == nil {
				spec.entity = &latest.Entity
			}
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
			nv, err := buildView(v.ID, v.Name, v.Version, v.CreatedAt, v.Entity, v.origin, c.sources[v.origin.Name], v.TTL, specsOf(v))
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
		v, err := buildView(nh.id, spec.name, nh.lastVersion, c.now, *spec.entity, spec.source, spec.source, spec.ttl, spec.features)
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

// checkKeyKinds refuses views on one source whose entities have different
// key types: ingest decodes the key once per event.
func (c *compiler) checkKeyKinds(next *Snapshot) {
	bySource := map[string]map[aggregate.Kind][]*View{}
	for _, v := range next.all {
		m := bySource[v.Source.Name]
		if m == nil {
			m = map[aggregate.Kind][]*View{}
			bySource[v.Source.Name] = m
		}
		m[v.Entity.Type] = append(m[v.Entity.Type], v)
	}
	for _, src := range sortedKeys(bySource) {
		m := bySource[src]
		if len(m) < 2 {
			continue
		}
		var parts []string
		path := ""
		for _, k := range []aggregate.Kind{aggregate.KindString, aggregate.KindInt64} {
			var names []string
			vers := map[string][]string{}
			for _, v := range m[k] {
				label := v.Name + " " + v.Entity.Name
				if _, ok := vers[label]; !ok {
					names = append(names, label)
				}
				vers[label] = append(vers[label], fmt.Sprintf("v%d", v.Version))
				if p := c.created[v]; p != "" && path == "" {
					path = p + ".entity"
				}
			}
			for _, label := range names {
				name, entity, _ := strings.Cut(label, " ")
				parts = append(parts, fmt.Sprintf("%s %s (entity %s, %s)", name, strings.Join(vers[label], ", "), entity, kindName(k)))
			}
		}
		if path == "" {
			path = c.sourcePaths[src]
		}
		c.errs.add(path, "views on source %s would use entity keys of different types: %s (the key is decoded once per event: use another source, or delete the versions of the other type first)", src, strings.Join(parts, "; "))
	}
}

// service validates a feature service against next, the registry after
// the apply; with next nil (the views are invalid) only what the service
// says on its own.
func (c *compiler) service(next *Snapshot, p string, sd *ServiceDef, names map[string]string) {
	errsBefore := c.errs.len()
	if msg := checkName(sd.Name); msg != "" {
		c.errs.add(p+".name", "%s", msg)
	} else if first, dup := names[sd.Name]; dup {
		c.errs.add(p+".name", "duplicate feature service %s (first at %s)", sd.Name, first)
		return
	}
	if len(sd.Features) == 0 {
		c.errs.add(p+".features", "required: at least one feature reference")
	}
	seen := map[string]int{}
	for j, ref := range sd.Features {
		rp := index(p+".features", j)
		if first, dup := seen[ref]; dup {
			c.errs.add(rp, "duplicate reference %q (first at features[%d])", ref, first)
			continue
		}
		seen[ref] = j
		if next == nil {
			// Views are invalid: check the reference's syntax only.
			if _, err := ParseRef(ref); err != nil {
				c.errs.add(rp, "%v", err.(*RefError).Err)
			}
			continue
		}
		if _, err := next.resolve(ref); err != nil {
			var re *RefError
			if errors.As(err, &re) {
				err = re.Err
			}
			c.errs.add(rp, "%v", err)
		}
	}
	if c.errs.len() > errsBefore {
		return
	}
	names[sd.Name] = p
	s := &Service{Name: sd.Name, Features: slices.Clone(sd.Features)}
	old := c.cur.services[s.Name]
	ch := Change{Kind: KindService, Name: s.Name}
	switch {
	case old == nil:
		ch.Action = ActionCreate
		ch.Detail = plural(len(s.Features), "feature")
	case slices.Equal(old.Features, s.Features):
		ch.Action = ActionUnchanged
		s = old
	default:
		ch.Action = ActionUpdate
		ch.Detail = refsDiff(old.Features, s.Features)
	}
	c.services[s.Name] = s
	c.serviceChanges = append(c.serviceChanges, ch)
}

func refsDiff(old, cur []string) string {
	var d []string
	for _, r := range cur {
		if !slices.Contains(old, r) {
			d = append(d, "+"+r)
		}
	}
	for _, r := range old {
		if !slices.Contains(cur, r) {
			d = append(d, "-"+r)
		}
	}
	if len(d) == 0 {
		return "features reordered"
	}
	return "features " + strings.Join(d, " ")
}

// checkOtherServices re-resolves the services the document does not name
// against the registry after the apply: a new version that drops a feature
// must not break a service that follows the latest version.
func (c *compiler) checkOtherServices(next *Snapshot, inDoc map[string]string) {
	for _, name := range sortedKeys(c.cur.services) {
		if _, ok := inDoc[name]; ok {
			continue
		}
		for _, ref := range c.cur.services[name].Features {
			if _, err := next.resolve(ref); err != nil {
				path := ""
				if r, perr := ParseRef(ref); perr == nil {
					path = c.viewPaths[r.View]
				}
				c.errs.add(path, "feature service %s uses %q: %v; change the service in the same apply or pin the version it uses", name, ref, err)
			}
		}
	}
}

// buildView compiles one view version. origin is the source as of the
// version's creation; cur the source now (nil if gone). The version is
// bound to cur when cur maps what it reads the same way, else Detached and
// bound to origin.
func buildView(id uint32, name string, version int, created time.Time, ent Entity, origin, cur *Source, ttl time.Duration, feats []featureSpec) (*View, error) {
	v := &View{
		ID: id, Name: name, Version: version, Entity: ent, TTL: ttl, CreatedAt: created,
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
