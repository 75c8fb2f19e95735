package registry

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/internal/partition"
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
	path     string   // in the document; "" for versions made by a source change
	entities []Entity // nil when one is bad
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
	c.checkKafkaKeys(next)
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
	var enc partition.KeyEncoding
	if ok {
		var msg string
		if enc, msg = parseKafkaKey(ed.KafkaKey, typ); msg != "" {
			c.errs.add(p+".kafka_key", "%s", msg)
			ok = false
		}
	}
	if !ok {
		return
	}
	c.entityPaths[ed.Name] = p
	e := &Entity{Name: ed.Name, JoinKey: ed.JoinKey, Type: typ, KafkaKey: enc}
	old := c.cur.entities[ed.Name]
	if old != nil && old.Type == e.Type && old.KafkaKey != e.KafkaKey {
		c.errs.add(p+".kafka_key", "cannot change kafka_key of entity %s (%s -> %s): it places every %s in its partition, and changing it would move them all",
			e.Name, old.KafkaKeyName(), e.KafkaKeyName(), e.Name)
		return
	}
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
		if users := c.cur.viewsUsing(func(v *View) bool { return v.UsesEntity(e.Name) }); users != "" {
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
	} else if reservedSourceNames[sd.Name] {
		c.errs.add(p+".name", "%s is reserved (the offline log keeps its write-ahead log in a directory of that name beside the sources' own)", sd.Name)
	} else if first, dup := c.sourcePaths[sd.Name]; dup {
		c.errs.add(p+".name", "duplicate source %s (first at %s)", sd.Name, first)
		return
	}
	s := &Source{
		Name: sd.Name, Kind: sd.Kind, Topic: sd.Topic, Format: sd.Format,
		EntityKey: slices.Clone(sd.EntityKey), EventTime: sd.EventTime,
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
	if len(s.EntityKey) == 0 {
		c.errs.add(p+".entity_key", "%s", checkFieldName(""))
	}
	for i, k := range s.EntityKey {
		kp := p + ".entity_key"
		if len(s.EntityKey) > 1 {
			kp = index(kp, i)
		}
		if msg := checkFieldName(k); msg != "" {
			c.errs.add(kp, "%s", msg)
		} else if j := slices.Index(s.EntityKey, k); j < i {
			c.errs.add(kp, "duplicate key field %s (first at entity_key[%d])", k, j)
		}
	}
	if msg := checkFieldName(s.EventTime); msg != "" {
		c.errs.add(p+".event_time", "%s", msg)
	} else if s.EntityKey.Has(s.EventTime) {
		c.errs.add(p+".event_time", "is also the entity_key")
	}
	for _, name := range sortedKeys(sd.Fields) {
		fp := p + ".fields." + name
		kind, ok := fieldKinds[sd.Fields[name]]
		switch {
		case checkFieldName(name) != "":
			c.errs.add(fp, "%s", checkFieldName(name))
		case s.EntityKey.Has(name):
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
	str("entity_key", a.EntityKey.String(), b.EntityKey.String())
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
