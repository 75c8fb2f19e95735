package feastimport

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	feastcore "github.com/featured-dev/featured/api/feast/core"
	feasttypes "github.com/featured-dev/featured/api/feast/types"
	"github.com/featured-dev/featured/registry"
)

// ErrProject is a project that is not in the registry, or no project named
// when the registry holds several.
var ErrProject = errors.New("feastimport: project")

// Options choose what Convert reads.
type Options struct {
	// Project is the Feast project to import. The default is the
	// registry's only project; it is required when there are several.
	Project string
}

// Unmapped is a Feast object, or a part of one, that has no featured
// definition.
type Unmapped struct {
	// Kind is the Feast kind: entity, data_source, feature_view,
	// stream_feature_view, on_demand_feature_view, feature, aggregation,
	// feature_service, feature_table, saved_dataset,
	// validation_reference, permission or label_view.
	Kind string
	// Name is the object's name; "view:feature" for features and
	// aggregations.
	Name   string
	Reason string
}

func (u Unmapped) String() string { return u.Kind + " " + u.Name + ": " + u.Reason }

// Result is a converted registry.
type Result struct {
	// Project is the Feast project read.
	Project string
	// YAML is the featured definitions document; the Unmapped items are
	// comments at its top.
	YAML []byte
	// Unmapped lists what has no featured definition, in the order of the
	// document's comments.
	Unmapped []Unmapped
	// Entities, Sources, Views and Services count what the document
	// defines.
	Entities, Sources, Views, Services int
}

// noTTL is the TTL of a view Feast keeps forever (ttl 0): featured's
// longest.
const noTTL = 36500 * 24 * time.Hour

// maxTiles is featured's bound on window/hop (registry: 10080 tiles).
const maxTiles = 7 * 24 * 60

// Convert reads a serialized Feast Registry and returns the featured
// definitions of opts.Project (see the package doc for what maps).
func Convert(reg []byte, opts Options) (*Result, error) {
	var r feastcore.Registry
	if err := proto.Unmarshal(reg, &r); err != nil {
		return nil, fmt.Errorf("feastimport: parse registry: %w", err)
	}
	project, err := pickProject(&r, opts.Project)
	if err != nil {
		return nil, err
	}
	c := &converter{project: project, entities: map[string]*entity{}, sources: map[string]*source{}, views: map[string]*view{}}
	c.convert(&r)
	res := &Result{Project: project, Unmapped: c.unmapped}
	res.YAML = c.document()
	for _, e := range c.entityOrder {
		if c.entities[e].ok {
			res.Entities++
		}
	}
	res.Sources = len(c.sourceOrder)
	res.Views = len(c.viewOrder)
	res.Services = len(c.services)
	return res, nil
}

func pickProject(r *feastcore.Registry, want string) (string, error) {
	seen := map[string]bool{}
	add := func(p string) {
		if p != "" {
			seen[p] = true
		}
	}
	for _, p := range r.GetProjects() {
		add(p.GetSpec().GetName())
	}
	for _, e := range r.GetEntities() {
		add(e.GetSpec().GetProject())
	}
	for _, v := range r.GetFeatureViews() {
		add(v.GetSpec().GetProject())
	}
	for _, v := range r.GetStreamFeatureViews() {
		add(v.GetSpec().GetProject())
	}
	for _, s := range r.GetFeatureServices() {
		add(s.GetSpec().GetProject())
	}
	var names []string
	for p := range seen {
		names = append(names, p)
	}
	sort.Strings(names)
	switch {
	case want != "" && seen[want]:
		return want, nil
	case want != "":
		return "", fmt.Errorf("%w %q is not in the registry (it has %s)", ErrProject, want, listOrNone(names))
	case len(names) == 1:
		return names[0], nil
	case len(names) == 0:
		return "", fmt.Errorf("%w: the registry holds no project", ErrProject)
	}
	return "", fmt.Errorf("%w: the registry holds %s; choose one with --project", ErrProject, strings.Join(names, ", "))
}

func listOrNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

type entity struct {
	name, joinKey, typ string
	ok                 bool
}

type source struct {
	name, kind, topic, servers, eventTime string
	// batch is the name of Feast's batch source behind it.
	batch string
	// joinKeys is the entity key all views on the source share; set by the
	// first view mapped onto it.
	joinKeys []string
	fields   map[string]string
	notes    []string
}

type feature struct {
	name, agg, field string
	window, hop      time.Duration
	k                int
	note             string
}

type view struct {
	name     string
	entities []string
	source   string
	ttl      time.Duration
	features []feature
	notes    []string
	// byColumn lists, per aggregated column of a stream feature view, the
	// features computed from it: a service reference to the column stands
	// for them.
	byColumn map[string][]string
}

type service struct {
	name string
	refs []string
}

type converter struct {
	project     string
	entities    map[string]*entity
	entityOrder []string
	sources     map[string]*source
	sourceOrder []string
	views       map[string]*view
	viewOrder   []string
	services    []service
	unmapped    []Unmapped
}

func (c *converter) skip(kind, name, format string, args ...any) {
	c.unmapped = append(c.unmapped, Unmapped{Kind: kind, Name: name, Reason: fmt.Sprintf(format, args...)})
}

func (c *converter) mine(project string) bool { return project == "" || project == c.project }

func (c *converter) convert(r *feastcore.Registry) {
	var fvs []*feastcore.FeatureViewSpec
	for _, v := range r.GetFeatureViews() {
		if c.mine(v.GetSpec().GetProject()) {
			fvs = append(fvs, v.GetSpec())
		}
	}
	var sfvs []*feastcore.StreamFeatureViewSpec
	for _, v := range r.GetStreamFeatureViews() {
		if c.mine(v.GetSpec().GetProject()) {
			sfvs = append(sfvs, v.GetSpec())
		}
	}
	c.convertEntities(r, fvs, sfvs)

	// Views in name order, whatever their kind, so that the first view on
	// a shared source (which fixes its entity key) does not depend on the
	// registry's order.
	type anyView struct {
		name string
		fv   *feastcore.FeatureViewSpec
		sfv  *feastcore.StreamFeatureViewSpec
	}
	var all []anyView
	for _, v := range fvs {
		all = append(all, anyView{name: v.GetName(), fv: v})
	}
	for _, v := range sfvs {
		all = append(all, anyView{name: v.GetName(), sfv: v})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].name < all[j].name })
	for _, v := range all {
		if v.fv != nil {
			c.convertView(v.fv)
		} else {
			c.convertStreamView(v.sfv)
		}
	}
	c.convertSources(r)

	var odfvs []*feastcore.OnDemandFeatureViewSpec
	for _, v := range r.GetOnDemandFeatureViews() {
		if c.mine(v.GetSpec().GetProject()) {
			odfvs = append(odfvs, v.GetSpec())
		}
	}
	sort.Slice(odfvs, func(i, j int) bool { return odfvs[i].GetName() < odfvs[j].GetName() })
	odfv := map[string]bool{}
	for _, v := range odfvs {
		odfv[v.GetName()] = true
		c.skip("on_demand_feature_view", v.GetName(), "on-demand transforms run Python at request time; featured has no transforms")
	}
	c.convertServices(r, odfv)
	c.skipOthers(r)
}

// valueKind maps a Feast value type to a featured field kind; "" if none.
func valueKind(t feasttypes.ValueType_Enum) string {
	switch t {
	case feasttypes.ValueType_INT64, feasttypes.ValueType_INT32:
		return "int64"
	case feasttypes.ValueType_DOUBLE, feasttypes.ValueType_FLOAT:
		return "float64"
	case feasttypes.ValueType_STRING:
		return "string"
	case feasttypes.ValueType_BOOL:
		return "bool"
	}
	return ""
}

func (c *converter) convertEntities(r *feastcore.Registry, fvs []*feastcore.FeatureViewSpec, sfvs []*feastcore.StreamFeatureViewSpec) {
	// The type of each join key column in the views, for entities Feast
	// left untyped (value_type unset: Feast infers it from the data).
	columns := map[string]feasttypes.ValueType_Enum{}
	for _, v := range fvs {
		for _, col := range v.GetEntityColumns() {
			columns[col.GetName()] = col.GetValueType()
		}
	}
	for _, v := range sfvs {
		for _, col := range v.GetEntityColumns() {
			columns[col.GetName()] = col.GetValueType()
		}
	}
	var specs []*feastcore.EntitySpecV2
	for _, e := range r.GetEntities() {
		if c.mine(e.GetSpec().GetProject()) {
			specs = append(specs, e.GetSpec())
		}
	}
	sort.Slice(specs, func(i, j int) bool { return specs[i].GetName() < specs[j].GetName() })
	for _, s := range specs {
		e := &entity{name: s.GetName(), joinKey: s.GetJoinKey()}
		c.entities[e.name] = e
		c.entityOrder = append(c.entityOrder, e.name)
		if e.name == "__dummy" {
			c.skip("entity", e.name, "Feast's placeholder for views without entities; featured views are keyed by an entity")
			continue
		}
		if why := checkName(e.name); why != "" {
			c.skip("entity", e.name, "%s", why)
			continue
		}
		if why := checkFieldName(e.joinKey); why != "" {
			c.skip("entity", e.name, "join key: %s", why)
			continue
		}
		t := s.GetValueType()
		if t == feasttypes.ValueType_INVALID {
			t = columns[e.joinKey]
		}
		switch t {
		case feasttypes.ValueType_INT64, feasttypes.ValueType_INT32:
			e.typ = "int64"
		case feasttypes.ValueType_STRING:
			e.typ = "string"
		case feasttypes.ValueType_INVALID:
			c.skip("entity", e.name, "no value type, and no view names its join key %s with one", e.joinKey)
			continue
		default:
			c.skip("entity", e.name, "value type %s: featured keys are int64 or string", t)
			continue
		}
		e.ok = true
	}
}

// streamSource checks the source a view ingests from and returns its
// featured source: the one an earlier view registered, or a new one that
// addView registers; nil (after saying why) if the view cannot map.
func (c *converter) streamSource(kind, viewName string, ds *feastcore.DataSource, batch *feastcore.DataSource, joinKeys []string) *source {
	if ds == nil {
		c.skip(kind, viewName, "its only source %s is a batch source (%s): featured ingests push and Kafka sources, not offline tables", batch.GetName(), sourceType(batch))
		return nil
	}
	name := ds.GetName()
	if s, ok := c.sources[name]; ok {
		if !slices.Equal(s.joinKeys, joinKeys) {
			c.skip(kind, viewName, "source %s already carries entity key %s for another view, this view is keyed by %s: a featured source has one entity key",
				name, strings.Join(s.joinKeys, ", "), strings.Join(joinKeys, ", "))
			return nil
		}
		return s
	}
	if why := checkName(name); why != "" {
		c.skip(kind, viewName, "source %s: %s", name, why)
		return nil
	}
	s := &source{name: name, joinKeys: joinKeys, fields: map[string]string{}, batch: ds.GetBatchSource().GetName()}
	switch ds.GetType() {
	case feastcore.DataSource_PUSH_SOURCE:
		s.kind = "push"
	case feastcore.DataSource_STREAM_KAFKA:
		s.kind = "kafka"
		ko := ds.GetKafkaOptions()
		if ko.GetMessageFormat().GetJsonFormat() == nil {
			c.skip(kind, viewName, "Kafka source %s: message format %s; featured decodes JSON", name, streamFormat(ko.GetMessageFormat()))
			return nil
		}
		if why := checkTopic(ko.GetTopic()); why != "" {
			c.skip(kind, viewName, "Kafka source %s: topic %s", name, why)
			return nil
		}
		for _, o := range c.sources {
			if o.kind == "kafka" && o.topic == ko.GetTopic() {
				c.skip(kind, viewName, "Kafka source %s reads topic %s, as source %s does: featured reads a topic through one source", name, ko.GetTopic(), o.name)
				return nil
			}
		}
		s.topic = ko.GetTopic()
		s.servers = ko.GetKafkaBootstrapServers()
		if w := ko.GetWatermarkDelayThreshold().AsDuration(); w > 0 {
			s.notes = append(s.notes, fmt.Sprintf("Feast's watermark_delay_threshold %s is not used: featured accepts an event up to the view's TTL late", registry.FormatDuration(w)))
		}
	default:
		c.skip(kind, viewName, "source %s is a %s source; featured ingests push and Kafka sources", name, sourceType(ds))
		return nil
	}
	if len(ds.GetFieldMapping()) > 0 {
		c.skip(kind, viewName, "source %s renames columns (field_mapping); featured reads event fields by their names", name)
		return nil
	}
	s.eventTime = ds.GetTimestampField()
	if s.eventTime == "" {
		s.eventTime = ds.GetBatchSource().GetTimestampField()
	}
	if why := checkFieldName(s.eventTime); why != "" {
		c.skip(kind, viewName, "source %s: timestamp field %s", name, why)
		return nil
	}
	if slices.Contains(joinKeys, s.eventTime) {
		c.skip(kind, viewName, "source %s: timestamp field %s is also a join key", name, s.eventTime)
		return nil
	}
	// Registered by addView once a feature of the view maps.
	return s
}

// viewEntities resolves a view's entities to their join keys; nil if the
// view cannot map.
func (c *converter) viewEntities(kind, viewName string, names []string) ([]string, bool) {
	var keys []string
	var real []string
	for _, n := range names {
		if n != "__dummy" {
			real = append(real, n)
		}
	}
	if len(real) == 0 {
		c.skip(kind, viewName, "no entities; featured views are keyed by an entity")
		return nil, false
	}
	for _, n := range real {
		e, ok := c.entities[n]
		if !ok {
			c.skip(kind, viewName, "entity %s is not in the registry", n)
			return nil, false
		}
		if !e.ok {
			c.skip(kind, viewName, "its entity %s is not imported", n)
			return nil, false
		}
		keys = append(keys, e.joinKey)
	}
	return keys, true
}

// addField records that a view reads field with kind; false (after saying
// why) if the source cannot carry it.
func (c *converter) addField(s *source, kind, ref, field, k string) bool {
	if why := checkFieldName(field); why != "" {
		c.skip(kind, ref, "field %s", why)
		return false
	}
	if field == s.eventTime || slices.Contains(s.joinKeys, field) {
		c.skip(kind, ref, "field %s is the source's timestamp field or a join key", field)
		return false
	}
	if have, ok := s.fields[field]; ok && have != k {
		c.skip(kind, ref, "field %s of source %s is %s for another view, %s here", field, s.name, have, k)
		return false
	}
	s.fields[field] = k
	return true
}

// newView checks what every view needs and returns the view to fill.
func (c *converter) newView(kind, name string, online bool, entities []string, ttl time.Duration) (*view, []string, bool) {
	if why := checkName(name); why != "" {
		c.skip(kind, name, "%s", why)
		return nil, nil, false
	}
	if !online {
		c.skip(kind, name, "online is false: Feast does not serve it online, and featured serves only online")
		return nil, nil, false
	}
	keys, ok := c.viewEntities(kind, name, entities)
	if !ok {
		return nil, nil, false
	}
	v := &view{name: name, entities: slices.Clone(entities), ttl: ttl}
	v.entities = slices.DeleteFunc(v.entities, func(n string) bool { return n == "__dummy" })
	if ttl <= 0 {
		v.ttl = noTTL
		v.notes = append(v.notes, "Feast's ttl 0 (never expires) is featured's longest, 36500d")
	} else if ttl%time.Millisecond != 0 || ttl > noTTL {
		c.skip(kind, name, "ttl %s is not a whole number of milliseconds up to 36500d", ttl)
		return nil, nil, false
	}
	return v, keys, true
}

// lastFeatures adds each feature of a plain view as the lifetime last value
// of the same-named field.
func (c *converter) lastFeatures(kind string, v *view, s *source, feats []*feastcore.FeatureSpecV2, keys []string) {
	for _, f := range feats {
		ref := v.name + ":" + f.GetName()
		if slices.Contains(keys, f.GetName()) {
			continue // Feast lists a stream view's join keys among its features
		}
		if why := checkName(f.GetName()); why != "" {
			c.skip("feature", ref, "%s", why)
			continue
		}
		k := valueKind(f.GetValueType())
		if k == "" {
			c.skip("feature", ref, "value type %s: featured fields are int64, float64, string or bool", f.GetValueType())
			continue
		}
		if !c.addField(s, "feature", ref, f.GetName(), k) {
			continue
		}
		v.features = append(v.features, feature{name: f.GetName(), agg: "last", field: f.GetName()})
	}
}

func (c *converter) addView(kind string, v *view, s *source) {
	if len(v.features) == 0 {
		c.skip(kind, v.name, "none of its features maps (each is listed)")
		return
	}
	if _, ok := c.sources[s.name]; !ok {
		c.sources[s.name] = s
		c.sourceOrder = append(c.sourceOrder, s.name)
	}
	c.views[v.name] = v
	c.viewOrder = append(c.viewOrder, v.name)
}

func (c *converter) convertView(spec *feastcore.FeatureViewSpec) {
	const kind = "feature_view"
	if spec.GetFeatureTransformation() != nil || len(spec.GetSourceViews()) > 0 {
		c.skip(kind, spec.GetName(), "a transformation or source views: featured has no transforms")
		return
	}
	v, keys, ok := c.newView(kind, spec.GetName(), spec.GetOnline(), spec.GetEntities(), spec.GetTtl().AsDuration())
	if !ok {
		return
	}
	s := c.streamSource(kind, v.name, spec.GetStreamSource(), spec.GetBatchSource(), keys)
	if s == nil {
		return
	}
	v.source = s.name
	c.lastFeatures(kind, v, s, spec.GetFeatures(), keys)
	c.addView(kind, v, s)
}

// aggregations maps Feast's aggregation functions to featured's. Feast's
// std and var, like featured's stddev and variance, are sample statistics.
var aggregations = map[string]string{
	"sum": "sum", "count": "count", "min": "min", "max": "max",
	"mean": "avg", "avg": "avg",
	"std": "stddev", "stddev": "stddev", "var": "variance", "variance": "variance",
	"count_distinct": "count_distinct",
}

func (c *converter) convertStreamView(spec *feastcore.StreamFeatureViewSpec) {
	const kind = "stream_feature_view"
	if udf := spec.GetUserDefinedFunction(); udf != nil && (len(udf.GetBody()) > 0 || udf.GetBodyText() != "") {
		c.skip(kind, spec.GetName(), "a UDF (%s) transforms each event in Python; featured has no transforms", udf.GetName())
		return
	}
	if spec.GetFeatureTransformation() != nil {
		c.skip(kind, spec.GetName(), "a feature transformation (mode %s); featured has no transforms", spec.GetMode())
		return
	}
	v, keys, ok := c.newView(kind, spec.GetName(), spec.GetOnline(), spec.GetEntities(), spec.GetTtl().AsDuration())
	if !ok {
		return
	}
	s := c.streamSource(kind, v.name, spec.GetStreamSource(), spec.GetBatchSource(), keys)
	if s == nil {
		return
	}
	if ts := spec.GetTimestampField(); ts != "" && ts != s.eventTime {
		c.skip(kind, v.name, "it aggregates on timestamp field %s, its source's is %s: a featured source has one event time", ts, s.eventTime)
		return
	}
	v.source = s.name
	if len(spec.GetAggregations()) == 0 {
		c.lastFeatures(kind, v, s, spec.GetFeatures(), keys)
		c.addView(kind, v, s)
		return
	}
	columns := map[string]feasttypes.ValueType_Enum{}
	for _, f := range spec.GetFeatures() {
		columns[f.GetName()] = f.GetValueType()
	}
	v.byColumn = map[string][]string{}
	var longest time.Duration
	for _, a := range spec.GetAggregations() {
		window := a.GetTimeWindow().AsDuration()
		hop := a.GetSlideInterval().AsDuration()
		name := a.GetName()
		if name == "" {
			// Feast's Aggregation.resolved_name.
			name = a.GetFunction() + "_" + a.GetColumn()
			if window > 0 {
				name += fmt.Sprintf("_%ds", int64(window/time.Second))
			}
		}
		ref := v.name + ":" + name
		fn, ok := aggregations[a.GetFunction()]
		if !ok {
			c.skip("aggregation", ref, "function %q: featured aggregates with sum, count, min, max, mean, std, var and count_distinct", a.GetFunction())
			continue
		}
		if why := checkName(name); why != "" {
			c.skip("aggregation", ref, "%s", why)
			continue
		}
		t, ok := columns[a.GetColumn()]
		if !ok {
			c.skip("aggregation", ref, "column %s is not in the view's schema", a.GetColumn())
			continue
		}
		k := valueKind(t)
		if k == "" || (k == "string" || k == "bool") && fn != "count" && fn != "count_distinct" {
			c.skip("aggregation", ref, "%s of a %s column", a.GetFunction(), t)
			continue
		}
		f := feature{name: name, agg: fn, field: a.GetColumn()}
		if window > 0 {
			if hop <= 0 {
				hop = window // Feast's default slide interval
			}
			switch {
			case window%time.Millisecond != 0 || hop%time.Millisecond != 0:
				c.skip("aggregation", ref, "time_window %s or slide_interval %s is not a whole number of milliseconds", window, hop)
				continue
			case window%hop != 0:
				c.skip("aggregation", ref, "time_window %s is not a multiple of slide_interval %s: featured windows are whole hops", window, hop)
				continue
			case window/hop > maxTiles:
				c.skip("aggregation", ref, "time_window %s / slide_interval %s is %d hops; featured keeps at most %d", window, hop, window/hop, maxTiles)
				continue
			}
			f.window, f.hop = window, hop
			longest = max(longest, window)
		} else if hop > 0 {
			f.note = "Feast's slide_interval " + hop.String() + " without time_window: a lifetime value has no hop"
		}
		if fn == "count_distinct" {
			f.k = 10000
			f.note = "exact up to 10000 distinct values per tile, a HyperLogLog estimate beyond (Feast's is exact)"
		}
		if !c.addField(s, "aggregation", ref, a.GetColumn(), k) {
			continue
		}
		v.features = append(v.features, f)
		v.byColumn[a.GetColumn()] = append(v.byColumn[a.GetColumn()], name)
	}
	if longest > v.ttl {
		v.notes = append(v.notes, fmt.Sprintf("ttl raised from Feast's %s to the longest window: featured keeps no window longer than the ttl", registry.FormatDuration(v.ttl)))
		v.ttl = longest
	}
	c.addView(kind, v, s)
}

// convertSources lists the registry's sources that no imported view reads.
func (c *converter) convertSources(r *feastcore.Registry) {
	var ds []*feastcore.DataSource
	for _, s := range r.GetDataSources() {
		if c.mine(s.GetProject()) {
			ds = append(ds, s)
		}
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i].GetName() < ds[j].GetName() })
	for _, s := range ds {
		if _, ok := c.sources[s.GetName()]; ok {
			continue
		}
		switch s.GetType() {
		case feastcore.DataSource_PUSH_SOURCE, feastcore.DataSource_STREAM_KAFKA:
			c.skip("data_source", s.GetName(), "no imported feature view reads it, so its entity key and fields are unknown")
		case feastcore.DataSource_REQUEST_SOURCE:
			c.skip("data_source", s.GetName(), "request data feeds on-demand transforms; featured has none")
		default:
			of := ""
			for _, n := range c.sourceOrder {
				if c.sources[n].batch == s.GetName() {
					of = ", the batch source of " + n
				}
			}
			c.skip("data_source", s.GetName(), "a batch source (%s%s): featured ingests push and Kafka sources, not offline tables", sourceType(s), of)
		}
	}
}

func (c *converter) convertServices(r *feastcore.Registry, odfv map[string]bool) {
	var specs []*feastcore.FeatureServiceSpec
	for _, s := range r.GetFeatureServices() {
		if c.mine(s.GetSpec().GetProject()) {
			specs = append(specs, s.GetSpec())
		}
	}
	sort.Slice(specs, func(i, j int) bool { return specs[i].GetName() < specs[j].GetName() })
	for _, spec := range specs {
		if why := checkName(spec.GetName()); why != "" {
			c.skip("feature_service", spec.GetName(), "%s", why)
			continue
		}
		svc := service{name: spec.GetName()}
		why := ""
		for _, p := range spec.GetFeatures() {
			vn := p.GetFeatureViewName()
			v, ok := c.views[vn]
			switch {
			case p.GetFeatureViewNameAlias() != "" || len(p.GetJoinKeyMap()) > 0:
				why = fmt.Sprintf("its projection of %s renames the view or its join keys; featured services reference views as they are", vn)
			case odfv[vn]:
				why = fmt.Sprintf("it reads the on-demand feature view %s", vn)
			case !ok:
				why = fmt.Sprintf("it reads %s, which is not imported", vn)
			}
			if why != "" {
				break
			}
			for _, col := range p.GetFeatureColumns() {
				if fs, ok := v.byColumn[col.GetName()]; ok {
					for _, f := range fs {
						svc.refs = append(svc.refs, vn+":"+f)
					}
					continue
				}
				if !slices.ContainsFunc(v.features, func(f feature) bool { return f.name == col.GetName() }) {
					why = fmt.Sprintf("it reads %s:%s, which is not imported", vn, col.GetName())
					break
				}
				svc.refs = append(svc.refs, vn+":"+col.GetName())
			}
			if why != "" {
				break
			}
		}
		if why == "" && len(svc.refs) == 0 {
			why = "it references no features"
		}
		if why != "" {
			c.skip("feature_service", spec.GetName(), "%s", why)
			continue
		}
		c.services = append(c.services, svc)
	}
}

// skipOthers lists the registry's objects featured has no counterpart for.
func (c *converter) skipOthers(r *feastcore.Registry) {
	for _, t := range r.GetFeatureTables() {
		if c.mine(t.GetSpec().GetProject()) {
			c.skip("feature_table", t.GetSpec().GetName(), "Feast's deprecated feature tables are not imported")
		}
	}
	for _, s := range r.GetSavedDatasets() {
		if c.mine(s.GetSpec().GetProject()) {
			c.skip("saved_dataset", s.GetSpec().GetName(), "saved datasets are offline data; featured exports point-in-time datasets itself (featured export)")
		}
	}
	for _, v := range r.GetValidationReferences() {
		if c.mine(v.GetProject()) {
			c.skip("validation_reference", v.GetName(), "data validation is not a featured feature")
		}
	}
	for _, p := range r.GetPermissions() {
		if c.mine(p.GetSpec().GetProject()) {
			c.skip("permission", p.GetSpec().GetName(), "featured authorizes with tokens and scopes (featured token), not Feast permissions")
		}
	}
	for _, l := range r.GetLabelViews() {
		if c.mine(l.GetSpec().GetProject()) {
			c.skip("label_view", l.GetSpec().GetName(), "label views are not imported")
		}
	}
}

func sourceType(ds *feastcore.DataSource) string {
	if ds == nil {
		return "none"
	}
	return ds.GetType().String()
}

func streamFormat(f *feastcore.StreamFormat) string {
	switch {
	case f == nil:
		return "unset"
	case f.GetAvroFormat() != nil:
		return "avro"
	case f.GetProtoFormat() != nil:
		return "protobuf"
	}
	return "unknown"
}
