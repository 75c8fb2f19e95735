package registry

import (
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/featured-dev/featured/aggregate"
	yaml "go.yaml.in/yaml/v3"
)

func TestParseShapeErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []wantErr
	}{
		{"unknown top-level key", "entities: []\nfeature_view: []\n",
			[]wantErr{{"feature_view", "unknown key (did you mean feature_views?)"}}},
		{"unknown feature key", `
feature_views:
  - name: v
    features:
      - {name: f, aggregation: count, windw: 1h}
`, []wantErr{{"feature_views[0].features[0].windw", "unknown key (did you mean window?)"}}},
		{"unknown keys everywhere", `
entities: [{name: u, join_key: id, type: string, description: x}]
sources: [{name: s, kind: push, brokers: [a]}]
feature_services: [{name: s, features: [], owner: me}]
`, []wantErr{
			{"entities[0].description", "unknown key"},
			{"sources[0].brokers", "unknown key"},
			{"feature_services[0].owner", "unknown key"},
		}},
		{"list where a mapping belongs", "entities: {name: u}\n",
			[]wantErr{{"entities", "want a list, not a mapping"}}},
		{"scalar where a mapping belongs", "entities: [user]\n",
			[]wantErr{{"entities[0]", `want a mapping, not the string "user"`}}},
		{"fields as a list", "sources: [{name: s, fields: [amount]}]\n",
			[]wantErr{{"sources[0].fields", "want a mapping of field name to type"}}},
		{"name as a list", "entities: [{name: [a]}]\n",
			[]wantErr{{"entities[0].name", "want a string, not a list"}}},
		{"k as a string", "feature_views: [{name: v, features: [{name: f, aggregation: last_k, k: three}]}]\n",
			[]wantErr{{"feature_views[0].features[0].k", `want an integer, not the string "three"`}}},
		{"k too large", "feature_views: [{name: v, features: [{name: f, aggregation: last_k, k: 99999999999}]}]\n",
			[]wantErr{{"feature_views[0].features[0].k", "not a 32-bit integer"}}},
		{"duplicate key", "entities:\n  - name: a\n    name: b\n",
			[]wantErr{{"entities[0].name", "yaml: line 3: duplicate key (first on line 2)"}}},
		{"two documents", "entities: []\n---\nsources: []\n",
			[]wantErr{{"", "more than one document"}}},
		{"syntax error", "entities: [\n",
			[]wantErr{{"", "yaml:"}}},
		{"merge key", "base: &b {name: u}\nentities: [{<<: *b, type: string}]\n",
			[]wantErr{{"base", "unknown key"}, {"entities[0].<<", "merge keys"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := ParseYAML([]byte(tt.yaml))
			if err == nil {
				t.Fatalf("parsed: %+v", d)
			}
			if tt.name == "merge key" {
				// The tree conversion stops at the first structural problem.
				tt.want = tt.want[1:]
			}
			checkErrors(t, err, tt.want)
		})
	}
}

func TestParseJSONShapeErrors(t *testing.T) {
	tests := []struct {
		name string
		json string
		want []wantErr
	}{
		{"unknown key", `{"entities": [{"name": "u", "joinKey": "id"}]}`,
			[]wantErr{{"entities[0].joinKey", "unknown key"}}},
		{"duplicate key", `{"entities": [{"name": "u", "name": "v"}]}`,
			[]wantErr{{"entities[0].name", "duplicate key"}}},
		{"trailing data", `{} {}`, []wantErr{{"", "after the document"}}},
		{"truncated", `{"entities": [`, []wantErr{{"", "unexpected EOF"}}},
		{"empty", ``, []wantErr{{"", "unexpected EOF"}}},
		{"k as a float", `{"feature_views": [{"name": "v", "features": [{"name": "f", "k": 1.5}]}]}`,
			[]wantErr{{"feature_views[0].features[0].k", "want an integer, not the number 1.5"}}},
		{"array at top", `[]`, []wantErr{{"", "want a mapping, not a list"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := ParseJSON([]byte(tt.json))
			if err == nil {
				t.Fatalf("parsed: %+v", d)
			}
			checkErrors(t, err, tt.want)
		})
	}
}

func TestParseTooLarge(t *testing.T) {
	// A "billion laughs" document: each alias doubles the expansion.
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x]\n")
	for i := 1; i < 40; i++ {
		b.WriteString("a" + strconv.Itoa(i) + ": &a" + strconv.Itoa(i) + " [*a" + strconv.Itoa(i-1) + ", *a" + strconv.Itoa(i-1) + "]\n")
	}
	_, err := ParseYAML([]byte(b.String()))
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "more than") {
		t.Fatalf("alias bomb: got %v", err)
	}
	deep := strings.Repeat("[", 200) + strings.Repeat("]", 200)
	if _, err := ParseJSON([]byte(deep)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("deep JSON: got %v", err)
	}
	if _, err := ParseYAML(make([]byte, maxDocumentBytes+1)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("huge document: got %v", err)
	}
}

func TestParseEmpty(t *testing.T) {
	for _, in := range []string{"", "# nothing yet\n", "null\n", "{}\n"} {
		d, err := ParseYAML([]byte(in))
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if diff := cmp.Diff(&Definitions{}, d); diff != "" {
			t.Errorf("%q: (-want +got)\n%s", in, diff)
		}
	}
}

// TestParseRoundTrip: the example parses from YAML, marshals to JSON and
// YAML with the struct tags, and parses back to the same Definitions (what
// `featured apply` does before sending a document to the server).
func TestParseRoundTrip(t *testing.T) {
	data, err := os.ReadFile("../examples/defs.yaml")
	if err != nil {
		t.Fatal(err)
	}
	d, err := ParseYAML(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Entities) != 1 || len(d.Sources) != 1 || len(d.FeatureViews) != 1 || len(d.FeatureServices) != 1 {
		t.Fatalf("example: %+v", d)
	}
	if got := d.Sources[0].Fields; !cmp.Equal(got, map[string]string{"amount": "float64", "merchant": "string", "items": "int64"}) {
		t.Errorf("fields = %v", got)
	}
	j, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	dj, err := ParseJSON(j)
	if err != nil {
		t.Fatalf("ParseJSON(json.Marshal(defs)): %v\n%s", err, j)
	}
	if diff := cmp.Diff(d, dj); diff != "" {
		t.Errorf("JSON round trip (-yaml +json):\n%s", diff)
	}
	y, err := yaml.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	dy, err := ParseYAML(y)
	if err != nil {
		t.Fatalf("ParseYAML(yaml.Marshal(defs)): %v\n%s", err, y)
	}
	if diff := cmp.Diff(d, dy); diff != "" {
		t.Errorf("YAML round trip (-before +after):\n%s", diff)
	}
}

// TestExampleApplies applies examples/defs.yaml, checks what it defines,
// and that Snapshot.Definitions gives back a document Apply finds unchanged.
func TestExampleApplies(t *testing.T) {
	data, err := os.ReadFile("../examples/defs.yaml")
	if err != nil {
		t.Fatal(err)
	}
	d, err := ParseYAML(data)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := newTestRegistry(t)
	p, err := r.Apply(d)
	if err != nil {
		t.Fatal(err)
	}
	want := `+ entity user (join key user_id, string)
+ source transactions (push, 3 fields)
+ view user_spend v1 (10 features)
+ service fraud_model_v1 (4 features)
Plan: 4 to create.
`
	if p.String() != want {
		t.Errorf("plan:\n%s\nwant:\n%s", p, want)
	}
	s := r.Snapshot()
	res, err := s.ResolveService("fraud_model_v1")
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 4 || res[0].View.Name != "user_spend" || res[0].View.Version != 1 || res[0].Name != "spend_7d" {
		t.Errorf("service resolves to %+v", res)
	}
	v, err := s.View("user_spend", 0)
	if err != nil {
		t.Fatal(err)
	}
	if v.Layout == nil || len(v.Layout.Specs()) != 10 || v.Layout.TTLMillis() != 8*24*3600*1000 {
		t.Errorf("layout not built from the view: %+v", v.Layout)
	}
	i := v.FeatureIndex("last_merchant")
	if i < 0 || v.Features[i].Spec.Field != v.Source.FieldIndex("merchant") || v.Source.Fields[v.Features[i].Spec.Field].Name != "merchant" {
		t.Errorf("last_merchant spec %+v does not index merchant in %+v", v.Features[i].Spec, v.Source.Fields)
	}
	if got := s.SourceKeyKinds("transactions"); !slices.Equal(got, []aggregate.Kind{v.Entities[0].Type}) {
		t.Errorf("SourceKeyKinds = %v, want [%v]", got, v.Entities[0].Type)
	}
	p, err = r.Apply(s.Definitions())
	if err != nil || p.Changed() {
		t.Errorf("re-applying Snapshot.Definitions(): %v\n%s", err, p)
	}
	p, err = r.Apply(d)
	if err != nil || p.Changed() {
		t.Errorf("re-applying the example: %v\n%s", err, p)
	}
}

// TestParseRoundTripCompound checks that the compound form (entity_key and
// entities as lists) survives JSON and YAML, and that one key field is still
// written as a plain string, as every document before compound keys has it.
func TestParseRoundTripCompound(t *testing.T) {
	d, err := ParseYAML([]byte(`
sources:
  - {name: trips, kind: push, entity_key: [driver_id, customer_id], event_time: ts}
  - {name: rides, kind: push, entity_key: driver_id, event_time: ts}
feature_views:
  - {name: dc, entities: [driver, customer], source: trips, ttl: 1d}
  - {name: d, entity: driver, source: rides, ttl: 1d}
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Sources[0].EntityKey; !slices.Equal(got, KeyFields{"driver_id", "customer_id"}) {
		t.Errorf("entity_key = %v", got)
	}
	if got := d.FeatureViews[0].Entities; !slices.Equal(got, []string{"driver", "customer"}) || d.FeatureViews[0].Entity != "" {
		t.Errorf("entities = %v, entity = %q", got, d.FeatureViews[0].Entity)
	}
	j, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"entity_key":["driver_id","customer_id"]`, `"entity_key":"driver_id"`, `"entities":["driver","customer"]`, `"entity":"driver"`} {
		if !strings.Contains(string(j), want) {
			t.Errorf("JSON lacks %s:\n%s", want, j)
		}
	}
	dj, err := ParseJSON(j)
	if err != nil {
		t.Fatalf("ParseJSON(json.Marshal(defs)): %v\n%s", err, j)
	}
	if diff := cmp.Diff(d, dj); diff != "" {
		t.Errorf("JSON round trip (-yaml +json):\n%s", diff)
	}
	y, err := yaml.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(y), "entity_key: driver_id\n") {
		t.Errorf("YAML writes one key field as a list:\n%s", y)
	}
	dy, err := ParseYAML(y)
	if err != nil {
		t.Fatalf("ParseYAML(yaml.Marshal(defs)): %v\n%s", err, y)
	}
	if diff := cmp.Diff(d, dy); diff != "" {
		t.Errorf("YAML round trip (-before +after):\n%s", diff)
	}
}

// TestRegistryFileKeyForms checks registry.json's records: a one-entity view
// and its source are written as before compound keys (entity: {...},
// entity_key: "user_id"), so older binaries' files and these stay alike; a
// compound view writes entities and a list.
func TestRegistryFileKeyForms(t *testing.T) {
	r, path := newTestRegistry(t)
	d, err := ParseYAML([]byte(baseYAML + `
  - name: pair
    features: [pair_spend:n]
`))
	if err != nil {
		t.Fatal(err)
	}
	d.Entities = append(d.Entities, EntityDef{Name: "shop", JoinKey: "shop_id", Type: "int64"})
	d.Sources = append(d.Sources, SourceDef{Name: "visits", Kind: "push", EntityKey: KeyFields{"user_id", "shop_id"}, EventTime: "ts"})
	d.FeatureViews = append(d.FeatureViews, ViewDef{Name: "pair_spend", Entities: []string{"user", "shop"}, Source: "visits", TTL: "1d",
		Features: []FeatureDef{{Name: "n", Aggregation: "count"}}})
	if _, err := r.Apply(d); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	compact := strings.Join(strings.Fields(string(raw)), "")
	for _, want := range []string{
		`"entity_key":"user_id"`,
		`"entity":{"name":"user","join_key":"user_id","type":"string","kafka_key":"utf8"}`,
		`"entity_key":["user_id","shop_id"]`,
		`"entities":[{"name":"user","join_key":"user_id","type":"string","kafka_key":"utf8"},{"name":"shop","join_key":"shop_id","type":"int64","kafka_key":"decimal"}]`,
	} {
		if !strings.Contains(compact, want) {
			t.Errorf("registry.json lacks %s:\n%s", want, raw)
		}
	}
}
