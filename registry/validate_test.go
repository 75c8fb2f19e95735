package registry

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

const baseYAML = `
entities:
  - {name: user, join_key: user_id, type: string}
sources:
  - name: transactions
    kind: push
    entity_key: user_id
    event_time: ts
    fields: {amount: float64, merchant: string, items: int64, flagged: bool}
feature_views:
  - name: user_spend
    entity: user
    source: transactions
    ttl: 8d
    features:
      - {name: spend_7d, aggregation: sum, field: amount, window: 7d, hop: 1h}
      - {name: txn_count_1h, aggregation: count, window: 1h, hop: 1m}
      - {name: avg_amount_24h, aggregation: avg, field: amount, window: 24h, hop: 5m}
      - {name: last_merchant, aggregation: last, field: merchant}
feature_services:
  - name: fraud_model_v1
    features: [user_spend:spend_7d, user_spend:txn_count_1h]
`

type wantErr struct {
	path string
	msg  string // substring of the message
}

// TestValidation applies the base document with one thing wrong to a
// registry that holds the base, and checks the exact path of every error,
// that errors.Is(err, ErrInvalid), and that the registry is unchanged.
func TestValidation(t *testing.T) {
	kafka := func(d *Definitions) *SourceDef {
		d.Sources = append(d.Sources, SourceDef{Name: "clicks", Kind: "kafka", Topic: "clicks", EntityKey: KeyFields{"user_id"}, EventTime: "ts"})
		return &d.Sources[len(d.Sources)-1]
	}
	feat := func(d *Definitions, i int) *FeatureDef { return &d.FeatureViews[0].Features[i] }
	src := func(d *Definitions) *SourceDef { return &d.Sources[0] }
	view := func(d *Definitions) *ViewDef { return &d.FeatureViews[0] }
	const f0, f1, f3 = "feature_views[0].features[0]", "feature_views[0].features[1]", "feature_views[0].features[3]"

	tests := []struct {
		name   string
		mutate func(d *Definitions)
		want   []wantErr
	}{
		// Names.
		{"duplicate entity", func(d *Definitions) { d.Entities = append(d.Entities, d.Entities[0]) },
			[]wantErr{{"entities[1].name", "duplicate entity user (first at entities[0])"}}},
		{"duplicate source", func(d *Definitions) { d.Sources = append(d.Sources, d.Sources[0]) },
			[]wantErr{{"sources[1].name", "duplicate source transactions"}}},
		{"duplicate view", func(d *Definitions) { d.FeatureViews = append(d.FeatureViews, d.FeatureViews[0]) },
			[]wantErr{{"feature_views[1].name", "duplicate feature view user_spend"}}},
		{"duplicate service", func(d *Definitions) { d.FeatureServices = append(d.FeatureServices, d.FeatureServices[0]) },
			[]wantErr{{"feature_services[1].name", "duplicate feature service fraud_model_v1"}}},
		{"duplicate feature", func(d *Definitions) { feat(d, 1).Name = "spend_7d" },
			[]wantErr{{f1 + ".name", "duplicate feature spend_7d (first at features[0])"}}},
		{"view name with a dash", func(d *Definitions) { view(d).Name = "user-spend" },
			[]wantErr{{"feature_views[0].name", `"user-spend" is not a valid name`}}},
		{"upper-case view name", func(d *Definitions) { view(d).Name = "UserSpend" },
			[]wantErr{{"feature_views[0].name", "want [a-z_][a-z0-9_]*"}}},
		{"feature name with a colon", func(d *Definitions) { feat(d, 0).Name = "spend:7d" },
			[]wantErr{{f0 + ".name", "not a valid name"}}},
		{"feature name with __", func(d *Definitions) { feat(d, 0).Name = "spend__7d" },
			[]wantErr{{f0 + ".name", `contains "__"`}}},
		{"entity name starting with a digit", func(d *Definitions) { d.Entities[0].Name = "1user" },
			// The view still finds the registry's user.
			[]wantErr{{"entities[0].name", "not a valid name"}}},
		{"service name", func(d *Definitions) { d.FeatureServices[0].Name = "fraud model" },
			[]wantErr{{"feature_services[0].name", "not a valid name"}}},
		{"name too long", func(d *Definitions) { view(d).Name = strings.Repeat("v", 129) },
			[]wantErr{{"feature_views[0].name", "longer than 128"}}},
		{"join key with a space", func(d *Definitions) { d.Entities[0].JoinKey = "user id" },
			[]wantErr{{"entities[0].join_key", "not a valid field name"}}},
		{"field name with a dash", func(d *Definitions) { src(d).Fields["amount-usd"] = "float64" },
			[]wantErr{{"sources[0].fields.amount-usd", "not a valid field name"}}},

		// Entities.
		{"entity type float64", func(d *Definitions) { d.Entities[0].Type = "float64" },
			[]wantErr{{"entities[0].type", `"float64" is not an entity key type: want string or int64`}}},
		{"entity type missing", func(d *Definitions) { d.Entities[0].Type = "" },
			[]wantErr{{"entities[0].type", "required: string or int64"}}},
		{"join key missing", func(d *Definitions) { d.Entities[0].JoinKey = "" },
			[]wantErr{{"entities[0].join_key", "required"}}},

		// Sources.
		{"source kind", func(d *Definitions) { src(d).Kind = "s3" },
			[]wantErr{{"sources[0].kind", `"s3": want push or kafka`}}},
		{"source kind missing", func(d *Definitions) { src(d).Kind = "" },
			[]wantErr{{"sources[0].kind", "required"}}},
		{"kafka source without topic", func(d *Definitions) { kafka(d).Topic = "" },
			[]wantErr{{"sources[1].topic", "required for a kafka source"}}},
		{"kafka topic name", func(d *Definitions) { kafka(d).Topic = "bad topic" },
			[]wantErr{{"sources[1].topic", "not a valid topic name"}}},
		{"kafka start offset", func(d *Definitions) { kafka(d).StartOffset = "newest" },
			[]wantErr{{"sources[1].start_offset", `"newest": want earliest or latest`}}},
		{"kafka dead-letter topic is its topic", func(d *Definitions) { kafka(d).DeadLetterTopic = "clicks" },
			[]wantErr{{"sources[1].dead_letter_topic", "is the source's own topic"}}},
		{"push source with topic", func(d *Definitions) { src(d).Topic = "transactions" },
			[]wantErr{{"sources[0].topic", "only kafka sources have a topic"}}},
		{"push source with dead-letter topic", func(d *Definitions) { src(d).DeadLetterTopic = "dlq" },
			[]wantErr{{"sources[0].dead_letter_topic", "only kafka sources"}}},
		{"push source with start offset", func(d *Definitions) { src(d).StartOffset = "latest" },
			[]wantErr{{"sources[0].start_offset", "only kafka sources"}}},
		{"format", func(d *Definitions) { src(d).Format = "avro" },
			[]wantErr{{"sources[0].format", `"avro": the only format is json`}}},
		{"field type", func(d *Definitions) { src(d).Fields["items"] = "int32" },
			[]wantErr{{"sources[0].fields.items", `"int32" is not a field type: want int64, float64, string or bool`}}},
		{"entity_key missing", func(d *Definitions) { src(d).EntityKey = nil },
			[]wantErr{{"sources[0].entity_key", "required"}}},
		{"event_time missing", func(d *Definitions) { src(d).EventTime = "" },
			[]wantErr{{"sources[0].event_time", "required"}}},
		{"event_time is entity_key", func(d *Definitions) { src(d).EventTime = "user_id" },
			[]wantErr{{"sources[0].event_time", "is also the entity_key"}}},
		{"entity_key listed in fields", func(d *Definitions) { src(d).Fields["user_id"] = "string" },
			[]wantErr{{"sources[0].fields.user_id", "is the entity_key; fields lists only value fields"}}},
		{"event_time listed in fields", func(d *Definitions) { src(d).Fields["ts"] = "int64" },
			[]wantErr{{"sources[0].fields.ts", "is the event_time"}}},

		// Views.
		{"unknown entity", func(d *Definitions) { view(d).Entity = "usr" },
			[]wantErr{{"feature_views[0].entity", `unknown entity "usr" (did you mean user?)`}}},
		{"unknown source", func(d *Definitions) { view(d).Source = "payments" },
			[]wantErr{{"feature_views[0].source", `unknown source "payments"`}}},
		{"ttl missing", func(d *Definitions) { view(d).TTL = "" },
			[]wantErr{{"feature_views[0].ttl", "required"}}},
		{"ttl malformed", func(d *Definitions) { view(d).TTL = "8days" },
			[]wantErr{{"feature_views[0].ttl", `"8days" is not a duration`}}},
		{"ttl zero", func(d *Definitions) { view(d).TTL = "0d" },
			[]wantErr{{"feature_views[0].ttl", `"0d" is not positive`}}},
		{"no features", func(d *Definitions) { view(d).Features = nil },
			// Services are resolved only once the views are valid.
			[]wantErr{{"feature_views[0].features", "at least one feature"}}},

		// Features.
		{"unknown aggregation", func(d *Definitions) { feat(d, 0).Aggregation = "summ" },
			[]wantErr{{f0 + ".aggregation", `unknown aggregation "summ": want one of count, sum, min, max, avg, last, last_k, count_distinct, stddev, variance`}}},
		{"aggregation missing", func(d *Definitions) { feat(d, 0).Aggregation = "" },
			[]wantErr{{f0 + ".aggregation", "required"}}},
		{"field missing from source", func(d *Definitions) { feat(d, 0).Field = "amout" },
			[]wantErr{{f0 + ".field", `source transactions has no field "amout" (did you mean amount?)`}}},
		{"field is the entity key", func(d *Definitions) { feat(d, 3).Field = "user_id" },
			[]wantErr{{f3 + ".field", "user_id is source transactions's entity_key"}}},
		{"field is the event time", func(d *Definitions) { feat(d, 3).Field = "ts" },
			[]wantErr{{f3 + ".field", "ts is source transactions's event_time"}}},
		{"sum of a string", func(d *Definitions) { feat(d, 0).Field = "merchant" },
			[]wantErr{{f0 + ".field", "sum does not aggregate string field merchant (want int64 or float64)"}}},
		{"avg of a bool", func(d *Definitions) { feat(d, 0).Aggregation, feat(d, 0).Field = "avg", "flagged" },
			[]wantErr{{f0 + ".field", "avg does not aggregate bool field flagged"}}},
		{"stddev of a string", func(d *Definitions) { feat(d, 3).Aggregation = "stddev" },
			[]wantErr{{f3 + ".field", "stddev does not aggregate string field merchant"}}},
		{"sum without field", func(d *Definitions) { feat(d, 0).Field = "" },
			[]wantErr{{f0 + ".field", "required for sum"}}},
		{"last without field", func(d *Definitions) { feat(d, 3).Field = "" },
			[]wantErr{{f3 + ".field", "required for last"}}},
		{"window not a multiple of hop", func(d *Definitions) { feat(d, 0).Window = "90m" },
			[]wantErr{{f0 + ".hop", "window 1h30m is not a multiple of hop 1h"}}},
		{"window longer than ttl", func(d *Definitions) { feat(d, 0).Window = "30d" },
			[]wantErr{{f0 + ".window", "30d exceeds ttl 8d"}}},
		{"hop without window", func(d *Definitions) { feat(d, 3).Hop = "1h" },
			[]wantErr{{f3 + ".hop", "hop without window"}}},
		{"window malformed", func(d *Definitions) { feat(d, 0).Window = "7x" },
			[]wantErr{{f0 + ".window", `"7x" is not a duration`}}},
		{"hop malformed", func(d *Definitions) { feat(d, 0).Hop = "1.5h" },
			[]wantErr{{f0 + ".hop", `"1.5h" is not a duration`}}},
		{"units out of order", func(d *Definitions) { feat(d, 0).Window = "30m1h" },
			[]wantErr{{f0 + ".window", `"30m1h" is not a duration`}}},
		{"too many tiles", func(d *Definitions) { feat(d, 0).Hop = "1s" },
			[]wantErr{{f0 + ".hop", "window 7d / hop 1s = 604800 tiles, more than 10080"}}},
		{"last_k without k", func(d *Definitions) { feat(d, 3).Aggregation = "last_k" },
			[]wantErr{{f3 + ".k", "last_k needs k from 1 to 1000"}}},
		{"last_k with a huge k", func(d *Definitions) { feat(d, 3).Aggregation, feat(d, 3).K = "last_k", 5000 },
			[]wantErr{{f3 + ".k", "last_k needs k from 1 to 1000"}}},
		{"k on sum", func(d *Definitions) { feat(d, 0).K = 3 },
			[]wantErr{{f0 + ".k", "only last_k and count_distinct take k"}}},
		{"reserved source name", func(d *Definitions) {
			d.Sources[0].Name = "wal"
			d.FeatureViews[0].Source = "wal"
		}, []wantErr{{"sources[0].name", "wal is reserved"}, {"feature_views[0].source", `unknown source "wal"`}}},
		{"negative count_distinct bound", func(d *Definitions) { feat(d, 3).Aggregation, feat(d, 3).K = "count_distinct", -1 },
			[]wantErr{{f3 + ".k", "count_distinct takes k from 0 (the default exact bound) to 10000"}}},
		{"huge count_distinct bound", func(d *Definitions) { feat(d, 3).Aggregation, feat(d, 3).K = "count_distinct", 10001 },
			[]wantErr{{f3 + ".k", "count_distinct takes k from 0 (the default exact bound) to 10000"}}},

		// Across objects.
		{"entities of different key types on one source", func(d *Definitions) {
			d.Entities = append(d.Entities, EntityDef{Name: "account", JoinKey: "account_id", Type: "int64"})
			v := d.FeatureViews[0]
			v.Name, v.Entity = "account_spend", "account"
			d.FeatureViews = append(d.FeatureViews, v)
		}, []wantErr{{"feature_views[1].entity", "user_spend v1 (entity user, string); account_spend v1 (entity account, int64)"}}},
		{"service naming an unknown view, version and feature", func(d *Definitions) {
			d.FeatureServices[0].Features = []string{"nope:spend_7d", "user_spend@v2:spend_7d", "user_spend:nope", "user_spend__spend_7d"}
		}, []wantErr{
			{"feature_services[0].features[0]", `unknown view "nope"`},
			{"feature_services[0].features[1]", "has no live version 2"},
			{"feature_services[0].features[2]", `has no feature "nope"`},
			{"feature_services[0].features[3]", "bad feature reference"},
		}},
		{"service without features", func(d *Definitions) { d.FeatureServices[0].Features = nil },
			[]wantErr{{"feature_services[0].features", "at least one feature reference"}}},

		// Every error at once, in document order.
		{"many errors", func(d *Definitions) {
			d.Entities[0].Type = "uuid"
			src(d).Kind = "file"
			feat(d, 0).Window = "30d"
			feat(d, 1).Aggregation = "cnt"
			feat(d, 3).Hop = "1m"
			d.FeatureServices[0].Features = append(d.FeatureServices[0].Features, "user_spend__spend_7d")
		}, []wantErr{
			{"entities[0].type", "uuid"},
			{"sources[0].kind", "file"},
			{f0 + ".window", "30d exceeds ttl 8d"},
			{f1 + ".aggregation", `unknown aggregation "cnt"`},
			{f3 + ".hop", "hop without window"},
			{"feature_services[0].features[2]", "bad feature reference"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, path := newTestRegistry(t)
			mustApply(t, r, baseYAML)
			d := mustParse(t, baseYAML)
			tt.mutate(d)
			err := refusedApply(t, r, path, d)
			checkErrors(t, err, tt.want)
			// Plan refuses the same way.
			_, perr := r.Plan(d)
			if perr == nil || perr.Error() != err.Error() {
				t.Errorf("Plan error differs from Apply error:\nplan:  %v\napply: %v", perr, err)
			}
		})
	}
}

func checkErrors(t *testing.T, err error, want []wantErr) {
	t.Helper()
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("errors.Is(err, ErrInvalid) = false for %v", err)
	}
	got := ValidationErrors(err)
	var gotS, wantS []string
	for _, g := range got {
		gotS = append(gotS, g.Path)
	}
	for _, w := range want {
		wantS = append(wantS, w.path)
	}
	if fmt.Sprint(gotS) != fmt.Sprint(wantS) {
		t.Fatalf("error paths:\ngot  %q\nwant %q\nerror:\n%v", gotS, wantS, err)
	}
	for i, w := range want {
		if !strings.Contains(got[i].Msg, w.msg) {
			t.Errorf("%s: message %q does not contain %q", w.path, got[i].Msg, w.msg)
		}
	}
}

// TestValidationAgainstRegistry covers the rules that depend on what the
// registry already holds.
func TestValidationAgainstRegistry(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(d *Definitions)
		want   []wantErr
	}{
		{"entity type change while used", func(d *Definitions) { d.Entities[0].Type = "int64" },
			[]wantErr{{"entities[0].type", "cannot change entity user (type string -> int64) while views use it: user_spend v1"}}},
		{"entity join key change while used", func(d *Definitions) { d.Entities[0].JoinKey = "uid" },
			[]wantErr{{"entities[0].join_key", "cannot change entity user (join_key user_id -> uid) while views use it"}}},
		{"new version dropping a feature a service follows", func(d *Definitions) {
			d.FeatureViews[0].Features = d.FeatureViews[0].Features[1:]
			d.FeatureServices = nil
		}, []wantErr{{"feature_views[0]", `feature service fraud_model_v1 uses "user_spend:spend_7d"`}}},
		{"source change a view cannot take", func(d *Definitions) {
			d.Sources[0].Fields["amount"] = "string"
			d.FeatureViews = nil
			d.FeatureServices = nil
		}, []wantErr{
			{"sources[0].fields.amount", "string amount does not suit view user_spend v1 (feature spend_7d is sum)"},
			{"sources[0].fields.amount", "(feature avg_amount_24h is avg)"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, path := newTestRegistry(t)
			mustApply(t, r, baseYAML)
			d := mustParse(t, baseYAML)
			tt.mutate(d)
			checkErrors(t, refusedApply(t, r, path, d), tt.want)
		})
	}

	// An entity that no view uses may change.
	r, _ := newTestRegistry(t)
	p := mustApply(t, r, "entities: [{name: account, join_key: account_id, type: string}]")
	p = mustApply(t, r, "entities: [{name: account, join_key: id, type: int64}]")
	if want := "~ entity account: join_key account_id -> id; type string -> int64\nPlan: 1 to update.\n"; p.String() != want {
		t.Errorf("plan:\n%s\nwant:\n%s", p, want)
	}
}
