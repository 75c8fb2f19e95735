package registry

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/internal/partition"
)

// Entity is a named key.
type Entity struct {
	Name    string
	JoinKey string
	// Type is aggregate.KindString or aggregate.KindInt64.
	Type aggregate.Kind
	// KafkaKey is how producers encode the key as the Kafka record key,
	// and so the bytes the entity is partitioned by (keyenc.Partition):
	// partition.UTF8 for string keys, partition.Decimal (the default) or
	// partition.Int64BE for int64 keys. It cannot change once applied:
	// every entity would move to another partition.
	KafkaKey partition.KeyEncoding
}

// kafkaKeyNames are the kafka_key values of definitions, by encoding.
var kafkaKeyNames = map[partition.KeyEncoding]string{
	partition.UTF8: "utf8", partition.Decimal: "decimal", partition.Int64BE: "int64_be",
}

// KafkaKeyName returns the definitions' name of e's kafka_key.
func (e *Entity) KafkaKeyName() string { return kafkaKeyNames[e.KafkaKey] }

// parseKafkaKey returns the encoding named name for a key of type typ;
// "" is the type's default.
func parseKafkaKey(name string, typ aggregate.Kind) (partition.KeyEncoding, string) {
	switch {
	case typ == aggregate.KindString && (name == "" || name == "utf8"):
		return partition.UTF8, ""
	case typ == aggregate.KindString:
		return 0, fmt.Sprintf("%q is not a kafka_key of a string entity: utf8 is the only one", name)
	case name == "" || name == "decimal":
		return partition.Decimal, ""
	case name == "int64_be":
		return partition.Int64BE, ""
	default:
		return 0, fmt.Sprintf("%q is not a kafka_key of an int64 entity: want decimal (the default) or int64_be", name)
	}
}

// Field is one typed value field of a source.
type Field struct {
	Name string
	Kind aggregate.Kind
}

// Source is where events come from and how to read them. Sources are not
// versioned: Apply updates them in place (in a new Snapshot), and gives the
// views whose mapping changes a new version.
type Source struct {
	Name string
	// Kind is "push" or "kafka".
	Kind string
	// Topic is the Kafka topic (kafka only). No two sources read one topic.
	Topic string
	// Format is the event encoding, "json".
	Format string
	// EntityKey is the event fields holding the key of the views on the
	// source (one per entity of those views, in their entity order; at
	// least one), EventTime the one holding the event time (RFC 3339 string
	// or epoch milliseconds).
	EntityKey KeyFields
	EventTime string
	// Fields are the value fields, sorted by name. aggregate.Spec.Field of
	// every feature of a view indexes into its View.Source.Fields.
	Fields []Field
	// DeadLetterTopic receives undecodable events (kafka only; default
	// "<topic>.dlq").
	DeadLetterTopic string
	// StartOffset is "earliest" (default) or "latest" (kafka only).
	StartOffset string
}

// FieldIndex returns the index of the field name in s.Fields, or -1.
func (s *Source) FieldIndex(name string) int {
	i := sort.Search(len(s.Fields), func(i int) bool { return s.Fields[i].Name >= name })
	if i < len(s.Fields) && s.Fields[i].Name == name {
		return i
	}
	return -1
}

// fieldKind returns the kind of field name, KindNull when absent.
func (s *Source) fieldKind(name string) aggregate.Kind {
	if i := s.FieldIndex(name); i >= 0 {
		return s.Fields[i].Kind
	}
	return aggregate.KindNull
}

// Feature is one feature of a view version.
type Feature struct {
	Name        string
	Aggregation string
	// Field is the source field aggregated; "" for count over events.
	Field string
	// Window is the window length, 0 for a lifetime window. Hop is the tile
	// size (the default resolved at apply time, so it never changes for a
	// version), 0 for lifetime windows.
	Window, Hop time.Duration
	// K is last_k's k or count_distinct's exact bound (0 = default).
	K int
	// Spec is the compiled feature; Spec.Field indexes View.Source.Fields.
	Spec aggregate.Spec
}

// View is one immutable version of a feature view. Views are shared by
// every goroutine; never modify one.
type View struct {
	// ID is stable per view name: assigned on the name's first apply, kept by
	// every version, never given to another name (even after delete).
	// (ID, Version) is never reused, so state stored under it cannot be
	// mistaken for another definition's.
	ID      uint32
	Name    string
	Version int // from 1; never reused after a delete
	// Entities are the view's entities, at least one; its key is the tuple
	// of their join-key values in this order (internal/keyenc.AppendKey).
	// Entities in use cannot change, and a version's entities never do.
	Entities []Entity
	// Source is the source as this version reads it: the entity key, event
	// time and the kinds of the fields the features read are those of the
	// version's definition and never change. While the version ingests
	// (!Detached), Source equals the current Snapshot's Source, including
	// fields added since, so ingest can decode an event once per source and
	// fold the same field slice into every view LiveViews returns. When
	// Detached, Source is the source as it was when the version was created.
	Source   Source
	TTL      time.Duration
	Features []Feature
	// Layout is aggregate.NewLayout(specs, ttl), built on load and apply.
	Layout    *aggregate.Layout
	CreatedAt time.Time
	// Detached is true for an older version whose mapping (entity key,
	// event time or a kind of a field it reads) the current source no
	// longer has: a source change gave the view a new version, and this one
	// stays servable (its state expires by TTL) but is no longer ingested,
	// so LiveViews leaves it out. It reattaches if the source's mapping
	// comes back.
	Detached bool

	origin  *Source        // the source as of this version's creation; persisted
	byName  map[string]int // feature name -> index
	readSet []string       // sorted distinct fields read
}

// FeatureIndex returns the index of the feature name in v.Features, or -1.
func (v *View) FeatureIndex(name string) int {
	if i, ok := v.byName[name]; ok {
		return i
	}
	return -1
}

// Definition returns the view version as a definition (hops explicit).
func (v *View) Definition() ViewDef {
	d := ViewDef{Name: v.Name, Source: v.Source.Name, TTL: FormatDuration(v.TTL)}
	if len(v.Entities) == 1 {
		d.Entity = v.Entities[0].Name
	} else {
		for _, e := range v.Entities {
			d.Entities = append(d.Entities, e.Name)
		}
	}
	for _, f := range v.Features {
		fd := FeatureDef{Name: f.Name, Aggregation: f.Aggregation, Field: f.Field, K: f.K}
		if f.Window > 0 {
			fd.Window = FormatDuration(f.Window)
			fd.Hop = FormatDuration(f.Hop)
		}
		d.Features = append(d.Features, fd)
	}
	return d
}

// Service is a feature service: the references one model reads, as
// written ("view:feat" follows the latest version; "view@v2:feat" is
// pinned).
type Service struct {
	Name     string
	Features []string
}

// Ref is a parsed feature reference.
type Ref struct {
	View    string
	Version int // 0 = latest
	Feature string
}

func (r Ref) String() string {
	if r.Version == 0 {
		return r.View + ":" + r.Feature
	}
	return r.View + "@v" + strconv.Itoa(r.Version) + ":" + r.Feature
}

// ParseRef parses "view:feature" (latest version) or "view@v2:feature"
// (pinned). "view@latest:feature" (any case), which Feast accepts, is
// "view:feature": it follows the latest version and is no pin. Feast's full feature name "view__feature" is not a reference.
// The error is a *RefError wrapping ErrBadRef.
func ParseRef(s string) (Ref, error) {
	bad := func(format string, args ...any) (Ref, error) {
		return Ref{}, &RefError{Ref: s, Err: fmt.Errorf("%w: "+format, append([]any{ErrBadRef}, args...)...)}
	}
	viewPart, feat, ok := strings.Cut(s, ":")
	if !ok {
		if strings.Contains(s, "__") {
			return bad("no ':' (\"view__feature\" is a Feast output name; write view:feature)")
		}
		return bad("want view:feature or view@vN:feature")
	}
	if strings.Contains(feat, ":") {
		return bad("more than one ':'")
	}
	r := Ref{View: viewPart, Feature: feat}
	if name, ver, pinned := strings.Cut(viewPart, "@"); pinned && strings.EqualFold(ver, "latest") {
		r.View = name
	} else if pinned {
		r.View = name
		n, err := strconv.Atoi(strings.TrimPrefix(ver, "v"))
		if !strings.HasPrefix(ver, "v") || err != nil || n < 1 || strings.HasPrefix(ver, "v0") || strings.HasPrefix(ver, "v+") {
			return bad("version %q: want latest, v1, v2, ...", ver)
		}
		r.Version = n
	}
	if msg := checkName(r.View); msg != "" {
		return bad("view: %s", msg)
	}
	if msg := checkName(r.Feature); msg != "" {
		return bad("feature: %s", msg)
	}
	return r, nil
}

// Resolved is a feature reference resolved against a Snapshot.
type Resolved struct {
	// Ref is the reference as given.
	Ref string
	// Name is the feature name as written in the ref.
	Name string
	// View is the view version the ref resolves to (the latest live one at
	// resolve time for an unpinned ref).
	View *View
	// Feature indexes View.Features (and View.Layout's specs).
	Feature int
}

// FullName is the column name of r under Feast's full feature names:
// view__feature; a pinned reference keeps its pin (view@v2__feature), so
// that two versions of one feature can stand side by side; "@latest" is no
// pin (view__feature). Lookups and
// exports both name columns with it.
func (r Resolved) FullName() string {
	if at := strings.IndexByte(r.Ref, '@'); at >= 0 && !strings.HasPrefix(strings.ToLower(r.Ref[at:]), "@latest:") {
		if colon := strings.IndexByte(r.Ref[at:], ':'); colon >= 0 {
			return r.Ref[:at+colon] + "__" + r.Name
		}
	}
	return r.View.Name + "__" + r.Name
}
