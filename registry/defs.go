package registry

import (
	"fmt"
	"strconv"
)

// Definitions is a definitions document: what `featured apply -f defs.yaml`
// sends. It is the user-facing format (see docs/design.md "Definitions file");
// Plan and Apply validate it against the registry. It marshals to the same
// shape in JSON and YAML, so a parsed document can be sent to a server as
// JSON and parsed there with ParseJSON.
type Definitions struct {
	Entities        []EntityDef  `yaml:"entities,omitempty" json:"entities,omitempty"`
	Sources         []SourceDef  `yaml:"sources,omitempty" json:"sources,omitempty"`
	FeatureViews    []ViewDef    `yaml:"feature_views,omitempty" json:"feature_views,omitempty"`
	FeatureServices []ServiceDef `yaml:"feature_services,omitempty" json:"feature_services,omitempty"`
}

// EntityDef defines an entity: a named key.
type EntityDef struct {
	Name    string `yaml:"name" json:"name"`
	JoinKey string `yaml:"join_key" json:"join_key"`
	// Type is "string" or "int64".
	Type string `yaml:"type" json:"type"`
	// KafkaKey is how producers encode the key as the Kafka record key,
	// which places the entity in its partition: "utf8" for string keys
	// (the only choice), "decimal" (the default) or "int64_be" (Java's
	// LongSerializer) for int64 keys. Empty is the type's default.
	KafkaKey string `yaml:"kafka_key,omitempty" json:"kafka_key,omitempty"`
}

// SourceDef defines where events come from and how to read them.
type SourceDef struct {
	Name string `yaml:"name" json:"name"`
	// Kind is "push" or "kafka".
	Kind string `yaml:"kind" json:"kind"`
	// Topic is the Kafka topic; required for kafka, not allowed for push.
	Topic string `yaml:"topic,omitempty" json:"topic,omitempty"`
	// Format is the event encoding; "json" (the default) is the only one.
	Format string `yaml:"format,omitempty" json:"format,omitempty"`
	// EntityKey is the event field holding the entity key; its type is the
	// type of the views' entity. For views of several entities it is a list,
	// one field per entity in the views' entity order (field i holds entity
	// i's key, of entity i's type); one field is written as a string.
	EntityKey KeyFields `yaml:"entity_key" json:"entity_key"`
	// EventTime is the event field holding the event time: an RFC 3339
	// string or epoch milliseconds.
	EventTime string `yaml:"event_time" json:"event_time"`
	// Fields maps each value field that features may read to its type:
	// int64, float64, string or bool. It lists neither EntityKey nor
	// EventTime.
	Fields map[string]string `yaml:"fields,omitempty" json:"fields,omitempty"`
	// DeadLetterTopic receives events that fail to decode (kafka only; the
	// default is "<topic>.dlq").
	DeadLetterTopic string `yaml:"dead_letter_topic,omitempty" json:"dead_letter_topic,omitempty"`
	// StartOffset is where a new consumer starts: "earliest" (the default)
	// or "latest" (kafka only).
	StartOffset string `yaml:"start_offset,omitempty" json:"start_offset,omitempty"`
}

// ViewDef defines a feature view: features of one entity, or of a tuple of
// entities (a compound key), over one source.
type ViewDef struct {
	Name string `yaml:"name" json:"name"`
	// Entity is the view's one entity; Entities lists several (the key is
	// the tuple of their join keys, in this order). Exactly one of the two
	// is set; Definition writes Entity for one entity.
	Entity   string   `yaml:"entity,omitempty" json:"entity,omitempty"`
	Entities []string `yaml:"entities,omitempty" json:"entities,omitempty"`
	Source   string   `yaml:"source" json:"source"`
	// TTL: state of an entity not updated for TTL is gone; no window is
	// longer. A duration such as "8d".
	TTL      string       `yaml:"ttl" json:"ttl"`
	Features []FeatureDef `yaml:"features" json:"features"`
}

// FeatureDef defines one feature: an aggregation over a field and a window.
type FeatureDef struct {
	Name string `yaml:"name" json:"name"`
	// Aggregation is count, sum, min, max, avg, last, last_k,
	// count_distinct, stddev or variance.
	Aggregation string `yaml:"aggregation" json:"aggregation"`
	// Field is the source field aggregated; count may omit it (then it
	// counts events).
	Field string `yaml:"field,omitempty" json:"field,omitempty"`
	// Window is the window length ("7d"); empty means a lifetime window.
	Window string `yaml:"window,omitempty" json:"window,omitempty"`
	// Hop is the tile size; empty means aggregate.DefaultHopMillis(window).
	Hop string `yaml:"hop,omitempty" json:"hop,omitempty"`
	// K is last_k's k (required) or count_distinct's exact bound (optional).
	K int `yaml:"k,omitempty" json:"k,omitempty"`
}

// ServiceDef defines a feature service: the feature references one model
// reads, "view:feature" (latest version) or "view@v2:feature" (pinned).
type ServiceDef struct {
	Name     string   `yaml:"name" json:"name"`
	Features []string `yaml:"features" json:"features"`
}

// maxDocumentBytes bounds a definitions document.
const maxDocumentBytes = 16 << 20

// ParseYAML parses a definitions document in YAML. It is strict: unknown or
// duplicate keys and values of the wrong shape are errors naming their path
// ("feature_views[0].features[1].windw: unknown key (did you mean window?)").
// It checks only the document's shape; Plan and Apply validate the
// definitions. Every error is a *ValidationError (errors.Is ErrInvalid).
func ParseYAML(data []byte) (*Definitions, error) {
	if len(data) > maxDocumentBytes {
		return nil, &ValidationError{Msg: fmt.Sprintf("definitions document of %d bytes exceeds %d", len(data), maxDocumentBytes)}
	}
	root, err := treeFromYAML(data)
	if err != nil {
		return nil, err
	}
	return decodeDefinitions(root)
}

// ParseJSON parses a definitions document in JSON, the same shape as YAML
// (and as json.Marshal of a Definitions), as strictly as ParseYAML.
func ParseJSON(data []byte) (*Definitions, error) {
	if len(data) > maxDocumentBytes {
		return nil, &ValidationError{Msg: fmt.Sprintf("definitions document of %d bytes exceeds %d", len(data), maxDocumentBytes)}
	}
	root, err := treeFromJSON(data)
	if err != nil {
		return nil, err
	}
	return decodeDefinitions(root)
}

// defDecoder turns a parsed tree into Definitions, collecting every shape
// error with its path.
type defDecoder struct {
	errs errList
}

func decodeDefinitions(root *node) (*Definitions, error) {
	var d defDecoder
	defs := &Definitions{}
	m := d.mapping(root, "", "entities", "sources", "feature_views", "feature_services")
	for i, n := range d.list(m["entities"], "entities") {
		p := index("entities", i)
		f := d.mapping(n, p, "name", "join_key", "type", "kafka_key")
		defs.Entities = append(defs.Entities, EntityDef{
			Name:     d.str(f["name"], p+".name"),
			JoinKey:  d.str(f["join_key"], p+".join_key"),
			Type:     d.str(f["type"], p+".type"),
			KafkaKey: d.str(f["kafka_key"], p+".kafka_key"),
		})
	}
	for i, n := range d.list(m["sources"], "sources") {
		p := index("sources", i)
		f := d.mapping(n, p, "name", "kind", "topic", "format", "entity_key", "event_time", "fields", "dead_letter_topic", "start_offset")
		s := SourceDef{
			Name:            d.str(f["name"], p+".name"),
			Kind:            d.str(f["kind"], p+".kind"),
			Topic:           d.str(f["topic"], p+".topic"),
			Format:          d.str(f["format"], p+".format"),
			EntityKey:       d.strs(f["entity_key"], p+".entity_key"),
			EventTime:       d.str(f["event_time"], p+".event_time"),
			DeadLetterTopic: d.str(f["dead_letter_topic"], p+".dead_letter_topic"),
			StartOffset:     d.str(f["start_offset"], p+".start_offset"),
		}
		if fn := f["fields"]; fn != nil && fn.kind != nodeNull {
			if fn.kind != nodeMap {
				d.errs.add(p+".fields", "want a mapping of field name to type, e.g. {amount: float64}, not %s", fn.describe())
			} else {
				s.Fields = make(map[string]string, len(fn.keys))
				for j, k := range fn.keys {
					s.Fields[k] = d.str(fn.vals[j], p+".fields."+k)
				}
			}
		}
		defs.Sources = append(defs.Sources, s)
	}
	for i, n := range d.list(m["feature_views"], "feature_views") {
		p := index("feature_views", i)
		f := d.mapping(n, p, "name", "entity", "entities", "source", "ttl", "features")
		v := ViewDef{
			Name:   d.str(f["name"], p+".name"),
			Entity: d.str(f["entity"], p+".entity"),
			Source: d.str(f["source"], p+".source"),
			TTL:    d.str(f["ttl"], p+".ttl"),
		}
		if en := f["entities"]; en != nil && en.kind != nodeNull {
			for j, e := range d.list(en, p+".entities") {
				v.Entities = append(v.Entities, d.str(e, index(p+".entities", j)))
			}
		}
		for j, fnode := range d.list(f["features"], p+".features") {
			fp := index(p+".features", j)
			ff := d.mapping(fnode, fp, "name", "aggregation", "field", "window", "hop", "k")
			v.Features = append(v.Features, FeatureDef{
				Name:        d.str(ff["name"], fp+".name"),
				Aggregation: d.str(ff["aggregation"], fp+".aggregation"),
				Field:       d.str(ff["field"], fp+".field"),
				Window:      d.str(ff["window"], fp+".window"),
				Hop:         d.str(ff["hop"], fp+".hop"),
				K:           d.int(ff["k"], fp+".k"),
			})
		}
		defs.FeatureViews = append(defs.FeatureViews, v)
	}
	for i, n := range d.list(m["feature_services"], "feature_services") {
		p := index("feature_services", i)
		f := d.mapping(n, p, "name", "features")
		s := ServiceDef{Name: d.str(f["name"], p+".name")}
		for j, r := range d.list(f["features"], p+".features") {
			s.Features = append(s.Features, d.str(r, index(p+".features", j)))
		}
		defs.FeatureServices = append(defs.FeatureServices, s)
	}
	if err := d.errs.err(); err != nil {
		return nil, err
	}
	return defs, nil
}

func index(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

func child(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// mapping returns n's entries by key, reporting keys not in known. A null
// or missing n is an empty mapping.
func (d *defDecoder) mapping(n *node, path string, known ...string) map[string]*node {
	out := make(map[string]*node, len(known))
	if n == nil || n.kind == nodeNull {
		return out
	}
	if n.kind != nodeMap {
		d.errs.add(path, "want a mapping, not %s", n.describe())
		return out
	}
	for i, k := range n.keys {
		ok := false
		for _, kk := range known {
			if k == kk {
				ok = true
				break
			}
		}
		if !ok {
			msg := "unknown key"
			if s := suggest(k, known); s != "" {
				msg += fmt.Sprintf(" (did you mean %s?)", s)
			}
			d.errs.add(child(path, k), "%s", msg)
			continue
		}
		out[k] = n.vals[i]
	}
	return out
}

// list returns n's items; null or missing is an empty list.
func (d *defDecoder) list(n *node, path string) []*node {
	if n == nil || n.kind == nodeNull {
		return nil
	}
	if n.kind != nodeList {
		d.errs.add(path, "want a list, not %s", n.describe())
		return nil
	}
	return n.items
}

// str returns a scalar's text ("" for null or missing). Numbers and
// booleans are taken as written, so `topic: 2024` is the topic "2024".
func (d *defDecoder) str(n *node, path string) string {
	if n == nil || n.kind == nodeNull {
		return ""
	}
	if n.kind != nodeScalar {
		d.errs.add(path, "want a string, not %s", n.describe())
		return ""
	}
	return n.value
}

// strs returns a string or a list of strings (nil for null or missing).
func (d *defDecoder) strs(n *node, path string) KeyFields {
	if n == nil || n.kind == nodeNull {
		return nil
	}
	if n.kind == nodeScalar {
		return KeyFields{n.value}
	}
	if n.kind != nodeList {
		d.errs.add(path, "want a string or a list of strings, not %s", n.describe())
		return nil
	}
	out := make(KeyFields, 0, len(n.items))
	for i, item := range n.items {
		out = append(out, d.str(item, index(path, i)))
	}
	return out
}

// int returns an integer scalar (0 for null or missing).
func (d *defDecoder) int(n *node, path string) int {
	if n == nil || n.kind == nodeNull {
		return 0
	}
	if n.kind != nodeScalar || n.typ != scalarInt {
		d.errs.add(path, "want an integer, not %s", n.describe())
		return 0
	}
	v, err := strconv.ParseInt(n.value, 0, 32)
	if err != nil {
		d.errs.add(path, "%s is not a 32-bit integer", n.value)
		return 0
	}
	return int(v)
}
