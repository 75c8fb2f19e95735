package feastimport

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	feastcore "github.com/featured-dev/featured/api/feast/core"
	feasttypes "github.com/featured-dev/featured/api/feast/types"
	"github.com/featured-dev/featured/registry"
)

// The Feast objects of the tests, built from the generated types as
// `feast apply` fills them (checked against a real registry in
// cmd/featured's TestImportFeast).

const project = "rides"

const (
	INT64  = feasttypes.ValueType_INT64
	INT32  = feasttypes.ValueType_INT32
	STRING = feasttypes.ValueType_STRING
	DOUBLE = feasttypes.ValueType_DOUBLE
	FLOAT  = feasttypes.ValueType_FLOAT
	BOOL   = feasttypes.ValueType_BOOL
	BYTES  = feasttypes.ValueType_BYTES
)

func ent(name, key string, t feasttypes.ValueType_Enum) *feastcore.Entity {
	return &feastcore.Entity{Spec: &feastcore.EntitySpecV2{Name: name, JoinKey: key, ValueType: t, Project: project}}
}

func file(name string) *feastcore.DataSource {
	return &feastcore.DataSource{Name: name, Project: project, Type: feastcore.DataSource_BATCH_FILE, TimestampField: "event_timestamp",
		Options: &feastcore.DataSource_FileOptions_{FileOptions: &feastcore.DataSource_FileOptions{Uri: "data/" + name + ".parquet"}}}
}

func push(name string) *feastcore.DataSource {
	return &feastcore.DataSource{Name: name, Project: project, Type: feastcore.DataSource_PUSH_SOURCE, TimestampField: "event_timestamp",
		BatchSource: file(name + "_file")}
}

func kafka(name, topic string) *feastcore.DataSource {
	return &feastcore.DataSource{Name: name, Project: project, Type: feastcore.DataSource_STREAM_KAFKA, TimestampField: "event_timestamp",
		BatchSource: file(name + "_file"),
		Options: &feastcore.DataSource_KafkaOptions_{KafkaOptions: &feastcore.DataSource_KafkaOptions{
			KafkaBootstrapServers: "localhost:9092", Topic: topic,
			MessageFormat: &feastcore.StreamFormat{Format: &feastcore.StreamFormat_JsonFormat_{JsonFormat: &feastcore.StreamFormat_JsonFormat{SchemaJson: "x double"}}},
		}}}
}

func feat(name string, t feasttypes.ValueType_Enum) *feastcore.FeatureSpecV2 {
	return &feastcore.FeatureSpecV2{Name: name, ValueType: t}
}

func dur(d time.Duration) *durationpb.Duration { return durationpb.New(d) }

// fv is a FeatureView; src nil makes it batch-only.
func fv(name string, ents []string, src *feastcore.DataSource, ttl time.Duration, feats ...*feastcore.FeatureSpecV2) *feastcore.FeatureView {
	s := &feastcore.FeatureViewSpec{Name: name, Project: project, Entities: ents, Features: feats, Ttl: dur(ttl), Online: true,
		BatchSource: file(name + "_batch"), StreamSource: src}
	return &feastcore.FeatureView{Spec: s}
}

func sfv(name string, ents []string, src *feastcore.DataSource, ttl time.Duration, feats []*feastcore.FeatureSpecV2, aggs ...*feastcore.Aggregation) *feastcore.StreamFeatureView {
	return &feastcore.StreamFeatureView{Spec: &feastcore.StreamFeatureViewSpec{Name: name, Project: project, Entities: ents, Features: feats,
		Ttl: dur(ttl), Online: true, StreamSource: src, BatchSource: src.GetBatchSource(), Aggregations: aggs, Mode: "python", TimestampField: "event_timestamp"}}
}

// agg is an Aggregation as Feast's SDK writes it: slide defaults to the window.
func agg(col, fn string, window, slide time.Duration, name string) *feastcore.Aggregation {
	a := &feastcore.Aggregation{Column: col, Function: fn, Name: name}
	if window > 0 {
		a.TimeWindow = dur(window)
		if slide == 0 {
			slide = window
		}
	}
	if slide > 0 {
		a.SlideInterval = dur(slide)
	}
	return a
}

func proj(view string, cols ...string) *feastcore.FeatureViewProjection {
	p := &feastcore.FeatureViewProjection{FeatureViewName: view}
	for _, c := range cols {
		p.FeatureColumns = append(p.FeatureColumns, feat(c, DOUBLE))
	}
	return p
}

func svc(name string, ps ...*feastcore.FeatureViewProjection) *feastcore.FeatureService {
	return &feastcore.FeatureService{Spec: &feastcore.FeatureServiceSpec{Name: name, Project: project, Features: ps}}
}

// reg serializes a Registry holding objs; a data source of a view is also
// listed among data_sources, as feast apply does.
func reg(t testing.TB, objs ...proto.Message) []byte {
	t.Helper()
	r := &feastcore.Registry{Projects: []*feastcore.Project{{Spec: &feastcore.ProjectSpec{Name: project}}}}
	seen := map[string]bool{}
	addSource := func(d *feastcore.DataSource) {
		for ; d != nil; d = d.GetBatchSource() {
			if !seen[d.GetName()] {
				seen[d.GetName()] = true
				r.DataSources = append(r.DataSources, d)
			}
		}
	}
	for _, o := range objs {
		switch o := o.(type) {
		case *feastcore.Entity:
			r.Entities = append(r.Entities, o)
		case *feastcore.DataSource:
			addSource(o)
		case *feastcore.FeatureView:
			r.FeatureViews = append(r.FeatureViews, o)
			addSource(o.GetSpec().GetStreamSource())
			addSource(o.GetSpec().GetBatchSource())
		case *feastcore.StreamFeatureView:
			r.StreamFeatureViews = append(r.StreamFeatureViews, o)
			addSource(o.GetSpec().GetStreamSource())
		case *feastcore.OnDemandFeatureView:
			r.OnDemandFeatureViews = append(r.OnDemandFeatureViews, o)
		case *feastcore.FeatureService:
			r.FeatureServices = append(r.FeatureServices, o)
		case *feastcore.Permission:
			r.Permissions = append(r.Permissions, o)
		case *feastcore.SavedDataset:
			r.SavedDatasets = append(r.SavedDatasets, o)
		default:
			t.Fatalf("reg: %T", o)
		}
	}
	b, err := proto.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var driver = ent("driver", "driver_id", INT64)

func convert(t *testing.T, b []byte) *Result {
	t.Helper()
	res, err := Convert(b, Options{})
	if err != nil {
		t.Fatalf("Convert: %v", err)
	}
	return res
}

// plan runs featured's Plan on the document: what `featured plan` does with
// the command's output.
func plan(t *testing.T, doc []byte) {
	t.Helper()
	defs, err := registry.ParseYAML(doc)
	if err != nil {
		t.Fatalf("parse the document: %v\n%s", err, doc)
	}
	r, err := registry.Open(filepath.Join(t.TempDir(), "registry.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Plan(defs); err != nil {
		t.Fatalf("plan the document: %v\n%s", err, doc)
	}
}

// TestImportRides converts the registry of cmd/featured's testdata Feast
// repo (an entity, a push and a Kafka source, a plain and a stream feature
// view, two services, and what does not map) and compares the whole
// document.
func TestImportRides(t *testing.T) {
	stats := push("driver_stats_push")
	trips := kafka("driver_trips_kafka", "driver_trips")
	trips.GetKafkaOptions().WatermarkDelayThreshold = dur(5 * time.Minute)
	b := reg(t,
		driver,
		ent("__dummy", "__dummy_id", feasttypes.ValueType_INVALID),
		fv("driver_hourly_stats", []string{"driver"}, stats, 24*time.Hour,
			feat("conv_rate", DOUBLE), feat("acc_rate", FLOAT), feat("avg_daily_trips", INT64), feat("city", STRING)),
		fv("driver_profile", []string{"driver"}, nil, 30*24*time.Hour, feat("rating", DOUBLE)),
		sfv("driver_trips", []string{"driver"}, trips, 7*24*time.Hour,
			[]*feastcore.FeatureSpecV2{feat("trip_km", DOUBLE), feat("driver_id", INT64)},
			agg("trip_km", "sum", time.Hour, 0, ""),
			agg("trip_km", "count", 24*time.Hour, time.Hour, ""),
			agg("trip_km", "mean", time.Hour, 0, "avg_trip_km_1h"),
			agg("trip_km", "median", time.Hour, 0, "")),
		&feastcore.OnDemandFeatureView{Spec: &feastcore.OnDemandFeatureViewSpec{Name: "transformed_conv_rate", Project: project}},
		svc("driver_activity", proj("driver_hourly_stats", "conv_rate", "avg_daily_trips")),
		svc("driver_model", proj("driver_hourly_stats", "conv_rate"), proj("driver_trips", "trip_km")),
		svc("with_odfv", proj("driver_hourly_stats", "conv_rate"), proj("transformed_conv_rate", "conv_rate_plus_val")),
	)
	res := convert(t, b)
	want := `# featured definitions imported from Feast project rides by ` + "`featured import feast`" + `.
# Not imported (9):
#   entity __dummy: Feast's placeholder for views without entities; featured views are keyed by an entity
#   feature_view driver_profile: its only source driver_profile_batch is a batch source (BATCH_FILE): featured ingests push and Kafka sources, not offline tables
#   aggregation driver_trips:median_trip_km_3600s: function "median": featured aggregates with sum, count, min, max, mean, std, var and count_distinct
#   data_source driver_hourly_stats_batch: a batch source (BATCH_FILE): featured ingests push and Kafka sources, not offline tables
#   data_source driver_profile_batch: a batch source (BATCH_FILE): featured ingests push and Kafka sources, not offline tables
#   data_source driver_stats_push_file: a batch source (BATCH_FILE, the batch source of driver_stats_push): featured ingests push and Kafka sources, not offline tables
#   data_source driver_trips_kafka_file: a batch source (BATCH_FILE, the batch source of driver_trips_kafka): featured ingests push and Kafka sources, not offline tables
#   on_demand_feature_view transformed_conv_rate: on-demand transforms run Python at request time; featured has no transforms
#   feature_service with_odfv: it reads the on-demand feature view transformed_conv_rate

entities:
  - {name: driver, join_key: driver_id, type: int64}

sources:
  - name: driver_stats_push
    kind: push
    format: json
    entity_key: driver_id
    event_time: event_timestamp   # RFC 3339 string or epoch milliseconds
    fields: {acc_rate: float64, avg_daily_trips: int64, city: string, conv_rate: float64}
  - name: driver_trips_kafka
    kind: kafka
    topic: "driver_trips"
    # Feast's kafka_bootstrap_servers: localhost:9092 (featured serve takes its brokers from --kafka-brokers)
    # Feast's watermark_delay_threshold 5m is not used: featured accepts an event up to the view's TTL late
    format: json
    entity_key: driver_id
    event_time: event_timestamp   # RFC 3339 string or epoch milliseconds
    fields: {trip_km: float64}

feature_views:
  - name: driver_hourly_stats
    entity: driver
    source: driver_stats_push
    ttl: 1d
    features:
      - {name: conv_rate, aggregation: last, field: conv_rate}
      - {name: acc_rate, aggregation: last, field: acc_rate}
      - {name: avg_daily_trips, aggregation: last, field: avg_daily_trips}
      - {name: city, aggregation: last, field: city}
  - name: driver_trips
    entity: driver
    source: driver_trips_kafka
    ttl: 7d
    features:
      - {name: sum_trip_km_3600s, aggregation: sum, field: trip_km, window: 1h, hop: 1h}
      - {name: count_trip_km_86400s, aggregation: count, field: trip_km, window: 1d, hop: 1h}
      - {name: avg_trip_km_1h, aggregation: avg, field: trip_km, window: 1h, hop: 1h}

feature_services:
  - name: driver_activity
    features:
      - driver_hourly_stats:conv_rate
      - driver_hourly_stats:avg_daily_trips
  - name: driver_model
    features:
      - driver_hourly_stats:conv_rate
      - driver_trips:sum_trip_km_3600s
      - driver_trips:count_trip_km_86400s
      - driver_trips:avg_trip_km_1h
`
	if got := string(res.YAML); got != want {
		t.Errorf("document:\n%s\nwant:\n%s", got, want)
	}
	if res.Entities != 1 || res.Sources != 2 || res.Views != 2 || res.Services != 2 || len(res.Unmapped) != 9 {
		t.Errorf("counts %d entities, %d sources, %d views, %d services, %d unmapped; want 1, 2, 2, 2, 9",
			res.Entities, res.Sources, res.Views, res.Services, len(res.Unmapped))
	}
	plan(t, res.YAML)
}

// TestImportUnmapped gives, per reason, a registry with one thing featured
// cannot define: Convert lists it (kind, name, reason), writes it as a
// comment, and the rest of the document still plans.
func TestImportUnmapped(t *testing.T) {
	stats := push("stats")
	ok := fv("ok", []string{"driver"}, stats, time.Hour, feat("x", DOUBLE))
	f := func(name string, want Unmapped, objs ...proto.Message) {
		t.Helper()
		t.Run(name, func(t *testing.T) {
			res := convert(t, reg(t, append([]proto.Message{driver, ok}, objs...)...))
			found := false
			for _, u := range res.Unmapped {
				if u.Kind == want.Kind && u.Name == want.Name && strings.Contains(u.Reason, want.Reason) {
					found = true
				}
			}
			if !found {
				t.Errorf("unmapped %v; want %s %s: ...%s...", res.Unmapped, want.Kind, want.Name, want.Reason)
			}
			if !strings.Contains(string(res.YAML), "#   "+want.Kind+" "+want.Name+": ") {
				t.Errorf("the document does not list %s %s:\n%s", want.Kind, want.Name, res.YAML)
			}
			if !strings.Contains(string(res.YAML), "  - name: ok\n") {
				t.Errorf("view ok is missing:\n%s", res.YAML)
			}
			plan(t, res.YAML)
		})
	}
	days := func(n int) time.Duration { return time.Duration(n) * 24 * time.Hour }
	f("entity type", Unmapped{"entity", "e", "value type BYTES"}, ent("e", "e_id", BYTES))
	f("entity untyped", Unmapped{"entity", "e", "no value type"}, ent("e", "e_id", feasttypes.ValueType_INVALID))
	f("entity name", Unmapped{"entity", "Driver2", "not a featured name"}, ent("Driver2", "d2", INT64))
	f("entity join key", Unmapped{"entity", "e", "not a featured field name"}, ent("e", "e-id", INT64))
	f("view of an unmapped entity", Unmapped{"feature_view", "v", "its entity e is not imported"},
		ent("e", "e_id", BYTES), fv("v", []string{"e"}, push("s2"), time.Hour, feat("y", DOUBLE)))
	f("entityless view", Unmapped{"feature_view", "v", "no entities"}, fv("v", []string{"__dummy"}, push("s2"), time.Hour, feat("y", DOUBLE)))
	f("batch-only view", Unmapped{"feature_view", "v", "batch source (BATCH_FILE)"}, fv("v", []string{"driver"}, nil, time.Hour, feat("y", DOUBLE)))
	f("batch source", Unmapped{"data_source", "files", "a batch source"}, file("files"))
	f("unread push source", Unmapped{"data_source", "lonely", "no imported feature view reads it"}, push("lonely"))
	offline := fv("v", []string{"driver"}, push("s2"), time.Hour, feat("y", DOUBLE))
	offline.Spec.Online = false
	f("offline view", Unmapped{"feature_view", "v", "online is false"}, offline)
	f("view name", Unmapped{"feature_view", "my__view", `contains "__"`}, fv("my__view", []string{"driver"}, push("s2"), time.Hour, feat("y", DOUBLE)))
	f("feature type", Unmapped{"feature", "v:tags", "value type STRING_LIST"},
		fv("v", []string{"driver"}, push("s2"), time.Hour, feat("y", DOUBLE), feat("tags", feasttypes.ValueType_STRING_LIST)))
	f("feature name", Unmapped{"feature", "v:Y", "not a featured name"}, fv("v", []string{"driver"}, push("s2"), time.Hour, feat("y", DOUBLE), feat("Y", DOUBLE)))
	f("field kind clash", Unmapped{"feature", "v:x", "is float64 for another view, string here"},
		fv("v", []string{"driver"}, stats, time.Hour, feat("x", STRING), feat("y", DOUBLE)))
	f("entity key clash", Unmapped{"feature_view", "v", "already carries entity key driver_id"},
		ent("rider", "rider_id", STRING), fv("v", []string{"rider"}, stats, time.Hour, feat("y", DOUBLE)))
	avro := kafka("k", "t")
	avro.GetKafkaOptions().MessageFormat = &feastcore.StreamFormat{Format: &feastcore.StreamFormat_AvroFormat_{AvroFormat: &feastcore.StreamFormat_AvroFormat{}}}
	f("avro", Unmapped{"stream_feature_view", "v", "message format avro; featured decodes JSON"},
		sfv("v", []string{"driver"}, avro, time.Hour, []*feastcore.FeatureSpecV2{feat("y", DOUBLE)}, agg("y", "sum", time.Hour, 0, "")))
	f("two sources on a topic", Unmapped{"stream_feature_view", "w", "reads topic t, as source k does"},
		sfv("v", []string{"driver"}, kafka("k", "t"), time.Hour, []*feastcore.FeatureSpecV2{feat("y", DOUBLE)}, agg("y", "sum", time.Hour, 0, "")),
		sfv("w", []string{"driver"}, kafka("k2", "t"), time.Hour, []*feastcore.FeatureSpecV2{feat("y", DOUBLE)}, agg("y", "sum", time.Hour, 0, "")))
	kin := kafka("kin", "t")
	kin.Type = feastcore.DataSource_STREAM_KINESIS
	kin.Options = &feastcore.DataSource_KinesisOptions_{KinesisOptions: &feastcore.DataSource_KinesisOptions{StreamName: "t"}}
	f("kinesis", Unmapped{"stream_feature_view", "v", "STREAM_KINESIS source; featured ingests push and Kafka"},
		sfv("v", []string{"driver"}, kin, time.Hour, []*feastcore.FeatureSpecV2{feat("y", DOUBLE)}, agg("y", "sum", time.Hour, 0, "")))
	mapped := push("mapped")
	mapped.FieldMapping = map[string]string{"col": "y"}
	f("field mapping", Unmapped{"feature_view", "v", "field_mapping"}, fv("v", []string{"driver"}, mapped, time.Hour, feat("y", DOUBLE)))
	udf := sfv("v", []string{"driver"}, kafka("k", "t"), time.Hour, []*feastcore.FeatureSpecV2{feat("y", DOUBLE)}, agg("y", "sum", time.Hour, 0, ""))
	udf.Spec.UserDefinedFunction = &feastcore.UserDefinedFunction{Name: "clean", Body: []byte("pickled")} //nolint:staticcheck // Feast's deprecated field, still written
	f("udf", Unmapped{"stream_feature_view", "v", "a UDF (clean)"}, udf)
	tf := sfv("v", []string{"driver"}, kafka("k", "t"), time.Hour, []*feastcore.FeatureSpecV2{feat("y", DOUBLE)}, agg("y", "sum", time.Hour, 0, ""))
	tf.Spec.FeatureTransformation = &feastcore.FeatureTransformationV2{}
	tf.Spec.Mode = "spark"
	f("transformation", Unmapped{"stream_feature_view", "v", "a feature transformation (mode spark)"}, tf)
	otherTime := sfv("v", []string{"driver"}, kafka("k", "t"), time.Hour, []*feastcore.FeatureSpecV2{feat("y", DOUBLE)}, agg("y", "sum", time.Hour, 0, ""))
	otherTime.Spec.TimestampField = "ts"
	f("timestamp field", Unmapped{"stream_feature_view", "v", "it aggregates on timestamp field ts, its source's is event_timestamp"}, otherTime)
	sv := func(aggs ...*feastcore.Aggregation) *feastcore.StreamFeatureView {
		return sfv("v", []string{"driver"}, kafka("k", "t"), days(30),
			[]*feastcore.FeatureSpecV2{feat("y", DOUBLE), feat("s", STRING)}, append(aggs, agg("y", "sum", time.Hour, 0, "keep"))...)
	}
	f("function", Unmapped{"aggregation", "v:median_y_3600s", `function "median"`}, sv(agg("y", "median", time.Hour, 0, "")))
	f("sum of a string", Unmapped{"aggregation", "v:sum_s", "sum of a STRING column"}, sv(agg("s", "sum", 0, 0, "")))
	f("column", Unmapped{"aggregation", "v:sum_z_3600s", "column z is not in the view's schema"}, sv(agg("z", "sum", time.Hour, 0, "")))
	f("slide", Unmapped{"aggregation", "v:sum_y_3600s", "not a multiple of slide_interval 7m0s"}, sv(agg("y", "sum", time.Hour, 7*time.Minute, "")))
	f("tiles", Unmapped{"aggregation", "v:sum_y_2592000s", "is 43200 hops"}, sv(agg("y", "sum", days(30), time.Minute, "")))
	f("aggregation name", Unmapped{"aggregation", "v:Total", "not a featured name"}, sv(agg("y", "sum", time.Hour, 0, "Total")))
	f("service of an unmapped view", Unmapped{"feature_service", "svc", "it reads v, which is not imported"},
		fv("v", []string{"driver"}, nil, time.Hour, feat("y", DOUBLE)), svc("svc", proj("ok", "x"), proj("v", "y")))
	f("service of an unmapped feature", Unmapped{"feature_service", "svc", "it reads v:tags, which is not imported"},
		fv("v", []string{"driver"}, push("s2"), time.Hour, feat("y", DOUBLE), feat("tags", BYTES)), svc("svc", proj("v", "y", "tags")))
	alias := proj("ok", "x")
	alias.FeatureViewNameAlias = "other"
	f("service alias", Unmapped{"feature_service", "svc", "renames the view or its join keys"}, svc("svc", alias))
	f("permission", Unmapped{"permission", "readers", "tokens and scopes"},
		&feastcore.Permission{Spec: &feastcore.PermissionSpec{Name: "readers", Project: project}})
	f("saved dataset", Unmapped{"saved_dataset", "training", "offline data"},
		&feastcore.SavedDataset{Spec: &feastcore.SavedDatasetSpec{Name: "training", Project: project}})
}

// TestImportMappings checks each mapping rule on its own document.
func TestImportMappings(t *testing.T) {
	f := func(name string, want []string, objs ...proto.Message) {
		t.Helper()
		t.Run(name, func(t *testing.T) {
			res := convert(t, reg(t, objs...))
			for _, w := range want {
				if !strings.Contains(string(res.YAML), w) {
					t.Errorf("the document lacks %q:\n%s", w, res.YAML)
				}
			}
			plan(t, res.YAML)
		})
	}
	days := func(n int) time.Duration { return time.Duration(n) * 24 * time.Hour }
	ys := []*feastcore.FeatureSpecV2{feat("km", INT32), feat("driver_id", INT64)}
	f("int32 entity, string entity", []string{"{name: driver, join_key: driver_id, type: int64}", "{name: rider, join_key: rider_id, type: string}"},
		ent("driver", "driver_id", INT32), ent("rider", "rider_id", STRING))
	untyped := fv("v", []string{"e"}, push("s"), time.Hour, feat("km", BOOL))
	untyped.Spec.EntityColumns = []*feastcore.FeatureSpecV2{feat("e_id", STRING)}
	f("entity typed by its views", []string{"{name: e, join_key: e_id, type: string}", "fields: {km: bool}"},
		ent("e", "e_id", feasttypes.ValueType_INVALID), untyped)
	f("ttl 0", []string{"# Feast's ttl 0 (never expires) is featured's longest, 36500d\n    ttl: 36500d\n"},
		driver, fv("v", []string{"driver"}, push("s"), 0, feat("km", DOUBLE)))
	f("ttl raised", []string{"# ttl raised from Feast's 1h to the longest window", "ttl: 7d\n", "window: 7d, hop: 1d"},
		driver, sfv("v", []string{"driver"}, kafka("k", "t"), time.Hour, ys, agg("km", "max", days(7), days(1), "")))
	f("functions", []string{
		"{name: sum_km_3600s, aggregation: sum, field: km, window: 1h, hop: 1h}",
		"{name: count_km_60s, aggregation: count, field: km, window: 1m, hop: 1m}",
		"{name: min_km_86400s, aggregation: min, field: km, window: 1d, hop: 1h}",
		"{name: mean_km_3600s, aggregation: avg, field: km, window: 1h, hop: 5m}",
		"{name: std_km_3600s, aggregation: stddev, field: km, window: 1h, hop: 1h}",
		"{name: var_km_3600s, aggregation: variance, field: km, window: 1h, hop: 1h}",
		"{name: count_distinct_km_3600s, aggregation: count_distinct, field: km, window: 1h, hop: 1h, k: 10000}",
		"{name: lifetime_max, aggregation: max, field: km}",
		"fields: {km: int64}",
	}, driver, sfv("v", []string{"driver"}, kafka("k", "t"), days(1), ys,
		agg("km", "sum", time.Hour, 0, ""), agg("km", "count", time.Minute, 0, ""), agg("km", "min", days(1), time.Hour, ""),
		agg("km", "mean", time.Hour, 5*time.Minute, ""), agg("km", "std", time.Hour, 0, ""), agg("km", "var", time.Hour, 0, ""),
		agg("km", "count_distinct", time.Hour, 0, ""), agg("km", "max", 0, 0, "lifetime_max")))
	f("stream view without aggregations", []string{"{name: km, aggregation: last, field: km}"},
		driver, sfv("v", []string{"driver"}, kafka("k", "t"), days(1), ys))
	f("two views on one source", []string{"fields: {a: float64, b: string}", "  - name: v\n", "  - name: w\n"},
		driver, fv("v", []string{"driver"}, push("s"), time.Hour, feat("a", DOUBLE)), fv("w", []string{"driver"}, push("s"), time.Hour, feat("b", STRING), feat("a", DOUBLE)))
	f("yaml words quoted", []string{`{name: "on", join_key: "Yes", type: string}`, `entity: "on"`, `entity_key: "Yes"`,
		`fields: {"n": float64}`, `{name: "n", aggregation: last, field: "n"}`},
		ent("on", "Yes", STRING), fv("v", []string{"on"}, push("s"), time.Hour, feat("n", DOUBLE)))
	// Compound keys: a view of several entities keys its source by all of
	// their join keys.
	f("several entities", []string{"entity_key: [driver_id, rider_id]", "entities: [driver, rider]"},
		driver, ent("rider", "rider_id", STRING),
		fv("v", []string{"driver", "rider"}, push("s"), time.Hour, feat("km", DOUBLE)))
}

func TestImportProject(t *testing.T) {
	b := reg(t, driver)
	var r feastcore.Registry
	if err := proto.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	r.Projects = append(r.Projects, &feastcore.Project{Spec: &feastcore.ProjectSpec{Name: "other"}})
	r.Entities = append(r.Entities, &feastcore.Entity{Spec: &feastcore.EntitySpecV2{Name: "user", JoinKey: "user_id", ValueType: STRING, Project: "other"}})
	two, _ := proto.Marshal(&r)
	if _, err := Convert(two, Options{}); !errors.Is(err, ErrProject) || !strings.Contains(err.Error(), "other, rides") {
		t.Errorf("two projects, none chosen: %v; want ErrProject naming both", err)
	}
	if _, err := Convert(two, Options{Project: "nope"}); !errors.Is(err, ErrProject) {
		t.Errorf("unknown project: %v; want ErrProject", err)
	}
	res, err := Convert(two, Options{Project: "other"})
	if err != nil {
		t.Fatal(err)
	}
	if s := string(res.YAML); !strings.Contains(s, "name: user") || strings.Contains(s, "driver") {
		t.Errorf("project other:\n%s", s)
	}
	if _, err := Convert([]byte("not a registry \xff"), Options{}); err == nil {
		t.Error("garbage: no error")
	}
}
