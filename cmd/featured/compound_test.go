package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/featured-dev/featured/aggregate"
	feastserving "github.com/featured-dev/featured/api/feast/serving"
	feasttypes "github.com/featured-dev/featured/api/feast/types"
	featuredv1 "github.com/featured-dev/featured/api/featured/v1"
	"github.com/featured-dev/featured/internal/kafkatest"
)

// compoundDefs has a view keyed by (driver, customer) on a push source and
// the same on a Kafka source, and a view of the driver alone on another push
// source: the family a Feast user with multi-entity views brings.
func compoundDefs(topic string) string {
	view := func(name, source string) string {
		return fmt.Sprintf(`  - name: %s
    entities: [driver, customer]
    source: %s
    ttl: 8d
    features:
      - {name: fare_1d, aggregation: sum, field: fare, window: 1d, hop: 1h}
      - {name: trips, aggregation: count}
      - {name: last_fare, aggregation: last, field: fare}
`, name, source)
	}
	return `entities:
  - {name: driver, join_key: driver_id, type: int64}
  - {name: customer, join_key: customer_id, type: string}
sources:
  - name: trips
    kind: push
    entity_key: [driver, cust]
    event_time: ts
    fields: {fare: float64}
  - name: trips_k
    kind: kafka
    topic: ` + topic + `
    entity_key: [driver, cust]
    event_time: ts
    fields: {fare: float64}
  - name: rides
    kind: push
    entity_key: driver_id
    event_time: ts
    fields: {fare: float64}
feature_views:
` + view("dc", "trips") + view("dck", "trips_k") + `  - name: d
    entity: driver
    source: rides
    ttl: 8d
    features:
      - {name: d_fare, aggregation: sum, field: fare}
      - {name: d_rides, aggregation: count}
`
}

// compoundRow is one entity row of the lookups: a driver and a customer.
type compoundRow struct {
	driver   int64
	customer string
}

// cell is one looked-up value in a form every API's answer reduces to:
// the status and, when present, the number formatted by strconv 'g'.
type cell string

func presentNumber(f float64) cell { return cell("PRESENT " + strconv.FormatFloat(f, 'g', -1, 64)) }

// TestCompoundKeysEndToEnd, on the real binary: a view keyed by (driver,
// customer) fed by push and the same fed by Kafka, and a driver-only view.
// Lookups through the native HTTP API, native gRPC, Feast's HTTP endpoint
// and Feast's gRPC service answer the same cells, which are the folds of the
// events sent; Feast's endpoints join the driver-only view per row. An
// export of a spine with both key columns equals the lookups at their read
// time; a backfilled copy of the compound view answers as the live one; the
// skew check recomputes every sampled compound read.
func TestCompoundKeysEndToEnd(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.CreateTopic(t, brokers, "trips", 2)
	dir := t.TempDir()
	defs := compoundDefs(topic)
	defsFile := filepath.Join(dir, "defs.yaml")
	if err := os.WriteFile(defsFile, []byte(defs), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, filepath.Join(dir, "data"), "--apply", defsFile, "--skew-sample-every", "1",
		"--kafka-brokers", strings.Join(brokers, ","))

	// Events: driver d and customer c ride k times, fares exact in binary.
	now := time.Now().UnixMilli()
	type trip struct {
		row  compoundRow
		fare float64
		ts   int64
	}
	var trips []trip
	rows := []compoundRow{{1, "a"}, {1, "b"}, {2, "a"}, {3, "b"}, {3, "ü-日本"}}
	for i, r := range rows {
		for k := 0; k <= i; k++ {
			trips = append(trips, trip{r, float64(r.driver*10) + float64(k) + 0.5, now - int64(90-i*10-k)*60_000})
		}
	}
	var push []map[string]any
	var msgs []*kgo.Record
	for _, tr := range trips {
		ev := map[string]any{"driver": tr.row.driver, "cust": tr.row.customer, "ts": tr.ts, "fare": tr.fare}
		push = append(push, ev)
		b, _ := json.Marshal(ev)
		msgs = append(msgs, &kgo.Record{Key: []byte(strconv.FormatInt(tr.row.driver, 10)), Value: b})
	}
	if code, body := s.post(t, "/v1/push", map[string]any{"source": "trips", "events": push}); code != 200 || !strings.Contains(string(body), fmt.Sprintf(`"accepted":%d`, len(push))) {
		t.Fatalf("push: %d %s", code, body)
	}
	kafkatest.Produce(t, brokers, topic, msgs)
	rides := []map[string]any{
		{"driver_id": 1, "ts": now - 60_000, "fare": 4.5},
		{"driver_id": 1, "ts": now - 50_000, "fare": 1.25},
		{"driver_id": 3, "ts": now - 40_000, "fare": 8},
	}
	if code, body := s.post(t, "/v1/push", map[string]any{"source": "rides", "events": rides}); code != 200 || !strings.Contains(string(body), `"accepted":3`) {
		t.Fatalf("push rides: %d %s", code, body)
	}

	// A part missing or of the wrong type is refused naming its field.
	code, body := s.post(t, "/v1/push", map[string]any{"source": "trips", "events": []map[string]any{
		{"driver": 1, "ts": now, "fare": 1}, {"driver": "1", "cust": "a", "ts": now, "fare": 1}}})
	if code != 200 || !strings.Contains(string(body), `"field":"cust","reason":"entity key is missing","code":"missing_key"`) ||
		!strings.Contains(string(body), `"field":"driver"`) || !strings.Contains(string(body), `"code":"wrong_type"`) {
		t.Fatalf("push of events with a bad key part: %d %s", code, body)
	}

	// What the events make, per row (one row no event has).
	lookupRows := append(slices.Clone(rows), compoundRow{4, "a"})
	want := make([]map[string]cell, len(lookupRows))
	for i, r := range lookupRows {
		want[i] = map[string]cell{"fare_1d": "NOT_FOUND", "trips": "NOT_FOUND", "last_fare": "NOT_FOUND", "d_fare": "NOT_FOUND", "d_rides": "NOT_FOUND"}
		var sum float64
		n := 0
		for _, tr := range trips {
			if tr.row == r {
				sum += tr.fare
				n++
				want[i]["last_fare"] = presentNumber(tr.fare)
			}
		}
		if n > 0 {
			want[i]["fare_1d"], want[i]["trips"] = presentNumber(sum), presentNumber(float64(n))
		}
		sum, n = 0, 0
		for _, rd := range rides {
			if int64(rd["driver_id"].(int)) == r.driver {
				sum += toFloat(rd["fare"])
				n++
			}
		}
		if n > 0 {
			want[i]["d_fare"], want[i]["d_rides"] = presentNumber(sum), presentNumber(float64(n))
		}
	}
	drivers, customers := make([]any, len(lookupRows)), make([]any, len(lookupRows))
	for i, r := range lookupRows {
		drivers[i], customers[i] = r.driver, r.customer
	}
	entities := map[string]any{"driver_id": drivers, "customer_id": customers}
	compound := []string{"fare_1d", "trips", "last_fare"}
	check := func(api string, got []map[string]cell, names ...string) {
		t.Helper()
		for i := range lookupRows {
			for _, n := range names {
				if got[i][n] != want[i][n] {
					t.Errorf("%s row %v %s: %q, want %q", api, lookupRows[i], n, got[i][n], want[i][n])
				}
			}
		}
	}

	// Native HTTP: one (compound) key per request, "keys" per row.
	native := func(view string) ([]map[string]cell, int64) {
		t.Helper()
		refs := make([]string, len(compound))
		for i, f := range compound {
			refs[i] = view + ":" + f
		}
		code, body := s.post(t, "/v1/features", map[string]any{"features": refs, "entities": entities})
		var r struct {
			JoinKeys []string `json:"join_keys"`
			ReadAtMs int64    `json:"read_at_ms"`
			Rows     []struct {
				Keys     []json.RawMessage `json:"keys"`
				Values   []json.RawMessage `json:"values"`
				Statuses []string          `json:"statuses"`
			} `json:"rows"`
		}
		if err := json.Unmarshal(body, &r); code != 200 || err != nil || len(r.Rows) != len(lookupRows) ||
			!slices.Equal(r.JoinKeys, []string{"driver_id", "customer_id"}) {
			t.Fatalf("native lookup of %s: %d %s", view, code, body)
		}
		out := make([]map[string]cell, len(r.Rows))
		for i, row := range r.Rows {
			if k := fmt.Sprintf("%s,%s", row.Keys[0], row.Keys[1]); k != fmt.Sprintf("%d,%q", lookupRows[i].driver, lookupRows[i].customer) {
				t.Errorf("native row %d keys %s", i, k)
			}
			out[i] = map[string]cell{}
			for f, n := range compound {
				out[i][n] = jsonCell(t, row.Statuses[f], row.Values[f])
			}
		}
		return out, r.ReadAtMs
	}
	dcNative, readAt := native("dc")
	check("native HTTP dc", dcNative, compound...)

	// The Kafka-fed view reaches the same cells once the consumer has read
	// the topic.
	deadline := time.Now().Add(60 * time.Second)
	for {
		got, _ := native("dck")
		if slices.EqualFunc(got, dcNative, func(a, b map[string]cell) bool { return fmt.Sprint(a) == fmt.Sprint(b) }) {
			break
		}
		if time.Now().After(deadline) {
			check("native HTTP dck (Kafka)", got, compound...)
			t.Fatalf("the Kafka-fed view did not catch up in 60s")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Native: a row without the customer column is refused naming it; two
	// keys in one native request are refused.
	code, body = s.post(t, "/v1/features", map[string]any{"features": []string{"dc:trips"}, "entities": map[string]any{"driver_id": []any{1}}})
	if code != 400 || !strings.Contains(string(body), "entities.customer_id") {
		t.Errorf("native lookup without customer_id: %d %s", code, body)
	}
	code, body = s.post(t, "/v1/features", map[string]any{"features": []string{"dc:trips", "d:d_rides"}, "entities": entities})
	if code != 400 || !strings.Contains(string(body), "one request serves one entity key") {
		t.Errorf("native lookup of two keys: %d %s", code, body)
	}

	// Feast HTTP: the compound view and the driver-only view joined per
	// row; a request without customer_id names it.
	feastRefs := []string{"dc:fare_1d", "dc:trips", "dc:last_fare", "d:d_fare", "d:d_rides"}
	code, body = s.post(t, "/get-online-features", map[string]any{"features": feastRefs, "entities": entities})
	var fr struct {
		Metadata struct {
			FeatureNames []string `json:"feature_names"`
		} `json:"metadata"`
		Results []struct {
			Values   []json.RawMessage `json:"values"`
			Statuses []string          `json:"statuses"`
		} `json:"results"`
	}
	if err := json.Unmarshal(body, &fr); code != 200 || err != nil || len(fr.Results) != 7 {
		t.Fatalf("Feast lookup: %d %s", code, body)
	}
	if got := fr.Metadata.FeatureNames; !slices.Equal(got, []string{"customer_id", "driver_id", "fare_1d", "trips", "last_fare", "d_fare", "d_rides"}) {
		// The key columns come in the order sent (json.Marshal sorts a map's keys).
		t.Errorf("Feast feature_names %v", got)
	}
	feastHTTP := make([]map[string]cell, len(lookupRows))
	for i := range lookupRows {
		feastHTTP[i] = map[string]cell{}
		for c, n := range fr.Metadata.FeatureNames[2:] {
			feastHTTP[i][n] = jsonCell(t, fr.Results[c+2].Statuses[i], fr.Results[c+2].Values[i])
		}
	}
	check("Feast HTTP", feastHTTP, "fare_1d", "trips", "last_fare", "d_fare", "d_rides")
	code, body = s.post(t, "/get-online-features", map[string]any{"features": feastRefs, "entities": map[string]any{"driver_id": drivers}})
	if code != 400 || !strings.Contains(string(body), "customer_id") {
		t.Errorf("Feast lookup without customer_id: %d %s", code, body)
	}

	// gRPC: featured's ServingService (one key column per join key) and
	// Feast's.
	conn, err := grpc.NewClient(s.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dv, cv := &featuredv1.RepeatedValue{}, &featuredv1.RepeatedValue{}
	fdv, fcv := &feasttypes.RepeatedValue{}, &feasttypes.RepeatedValue{}
	for _, r := range lookupRows {
		dv.Val = append(dv.Val, &featuredv1.Value{Kind: &featuredv1.Value_Int64Val{Int64Val: r.driver}})
		cv.Val = append(cv.Val, &featuredv1.Value{Kind: &featuredv1.Value_StringVal{StringVal: r.customer}})
		fdv.Val = append(fdv.Val, &feasttypes.Value{Val: &feasttypes.Value_Int64Val{Int64Val: r.driver}})
		fcv.Val = append(fcv.Val, &feasttypes.Value{Val: &feasttypes.Value_StringVal{StringVal: r.customer}})
	}
	gr, err := featuredv1.NewServingServiceClient(conn).GetOnlineFeatures(ctx, &featuredv1.GetOnlineFeaturesRequest{
		Kind:     &featuredv1.GetOnlineFeaturesRequest_Features{Features: &featuredv1.FeatureList{Val: feastRefs[:3]}},
		Entities: map[string]*featuredv1.RepeatedValue{"driver_id": dv, "customer_id": cv},
	})
	if err != nil {
		t.Fatalf("native gRPC lookup: %v", err)
	}
	if got := gr.GetMetadata().GetFeatureNames().GetVal(); !slices.Equal(got, []string{"driver_id", "customer_id", "fare_1d", "trips", "last_fare"}) {
		t.Fatalf("native gRPC names %v", got)
	}
	nativeGRPC := make([]map[string]cell, len(lookupRows))
	for i, r := range lookupRows {
		if k := gr.Results[0].Values[i].GetInt64Val(); k != r.driver || gr.Results[1].Values[i].GetStringVal() != r.customer {
			t.Errorf("native gRPC row %d keys %d %q", i, k, gr.Results[1].Values[i].GetStringVal())
		}
		nativeGRPC[i] = map[string]cell{}
		for c, n := range compound {
			col := gr.Results[c+2]
			nativeGRPC[i][n] = protoCell(col.Statuses[i].String(), col.Values[i].GetInt64Val(), col.Values[i].GetDoubleVal(), col.Values[i].GetKind())
		}
	}
	check("native gRPC", nativeGRPC, compound...)

	fg, err := feastserving.NewServingServiceClient(conn).GetOnlineFeatures(ctx, &feastserving.GetOnlineFeaturesRequest{
		Kind:     &feastserving.GetOnlineFeaturesRequest_Features{Features: &feastserving.FeatureList{Val: feastRefs}},
		Entities: map[string]*feasttypes.RepeatedValue{"driver_id": fdv, "customer_id": fcv},
	})
	if err != nil {
		t.Fatalf("Feast gRPC lookup: %v", err)
	}
	names := fg.GetMetadata().GetFeatureNames().GetVal()
	feastGRPC := make([]map[string]cell, len(lookupRows))
	for i := range lookupRows {
		feastGRPC[i] = map[string]cell{}
		for c, n := range names {
			if n == "driver_id" || n == "customer_id" {
				continue
			}
			v := fg.Results[c].Values[i]
			feastGRPC[i][n] = protoCell(fg.Results[c].Statuses[i].String(), v.GetInt64Val(), v.GetDoubleVal(), v.GetVal())
		}
	}
	check("Feast gRPC", feastGRPC, "fare_1d", "trips", "last_fare", "d_fare", "d_rides")

	// Over gRPC too, a request without the customer column is refused
	// naming it.
	_, err = featuredv1.NewServingServiceClient(conn).GetOnlineFeatures(ctx, &featuredv1.GetOnlineFeaturesRequest{
		Kind:     &featuredv1.GetOnlineFeaturesRequest_Features{Features: &featuredv1.FeatureList{Val: feastRefs[:1]}},
		Entities: map[string]*featuredv1.RepeatedValue{"driver_id": dv},
	})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "customer_id") {
		t.Errorf("native gRPC without customer_id: %v", err)
	}
	_, err = feastserving.NewServingServiceClient(conn).GetOnlineFeatures(ctx, &feastserving.GetOnlineFeaturesRequest{
		Kind:     &feastserving.GetOnlineFeaturesRequest_Features{Features: &feastserving.FeatureList{Val: feastRefs}},
		Entities: map[string]*feasttypes.RepeatedValue{"driver_id": fdv},
	})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "customer_id") {
		t.Errorf("Feast gRPC without customer_id: %v", err)
	}

	// The CLI takes one --entity per join key.
	out, err := s.cli(t, "get", "--features", "dc:trips", "--entity", "driver_id=1,3", "--entity", "customer_id=b,a")
	if err != nil || !strings.Contains(out, `"join_keys"`) || !strings.Contains(out, `"PRESENT"`) || !strings.Contains(out, `"NOT_FOUND"`) {
		t.Errorf("featured get with two --entity: %v\n%s", err, out)
	}

	// Export: a spine with both key columns at the lookup's read time.
	spine := filepath.Join(dir, "spine.csv")
	f, err := os.Create(spine)
	if err != nil {
		t.Fatal(err)
	}
	w := csv.NewWriter(f)
	w.Write([]string{"customer_id", "driver_id", "event_timestamp"})
	for _, r := range lookupRows {
		w.Write([]string{r.customer, strconv.FormatInt(r.driver, 10), time.UnixMilli(readAt).UTC().Format(time.RFC3339Nano)})
	}
	w.Flush()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	exported := filepath.Join(dir, "out.parquet")
	if out, err := s.cli(t, "export", "--spine", spine, "--features", strings.Join(feastRefs, ","), "--out", exported, "--statuses"); err != nil {
		t.Fatalf("export: %v\n%s", err, out)
	}
	check("export", readExport(t, exported, len(lookupRows), "fare_1d", "trips", "last_fare", "d_fare", "d_rides"),
		"fare_1d", "trips", "last_fare", "d_fare", "d_rides")

	// A spine without one of the key columns is refused naming it.
	partial := filepath.Join(dir, "partial.csv")
	if err := os.WriteFile(partial, []byte("driver_id,event_timestamp\n1,2026-01-01T00:00:00Z\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := s.cli(t, "export", "--spine", partial, "--features", "dc:trips", "--out", filepath.Join(dir, "partial.parquet")); err == nil ||
		!strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), "customer_id") {
		t.Errorf("export of a spine without customer_id: %v\n%s", err, out)
	}

	// A copy of dc applied now and backfilled answers as dc.
	mirror := defs + strings.Replace(defs[strings.Index(defs, "  - name: dc\n"):strings.Index(defs, "  - name: dck\n")], "name: dc\n", "name: dc2\n", 1)
	mirrorFile := filepath.Join(dir, "mirror.yaml")
	if err := os.WriteFile(mirrorFile, []byte(mirror), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := s.cli(t, "apply", "-f", mirrorFile); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	if out, err := s.cli(t, "backfill", "dc2@v1"); err != nil || !strings.Contains(out, fmt.Sprintf(`"entities": %d`, len(rows))) {
		t.Fatalf("backfill: %v\n%s", err, out)
	}
	dc2, _ := native("dc2")
	check("backfilled dc2", dc2, compound...)

	// Every read was sampled: recomputed offline from the log's compound
	// keys, all match.
	out, err = s.cli(t, "verify-skew")
	if err != nil || !strings.Contains(out, "match rate 100.000%") {
		t.Fatalf("verify-skew: %v\n%s", err, out)
	}
	s.stop(t)
}

func toFloat(v any) float64 {
	switch v := v.(type) {
	case int:
		return float64(v)
	case float64:
		return v
	}
	panic(fmt.Sprintf("%T", v))
}

func jsonCell(t *testing.T, status string, raw json.RawMessage) cell {
	t.Helper()
	if status != "PRESENT" {
		return cell(status)
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatalf("value %s: %v", raw, err)
	}
	return presentNumber(f)
}

// protoCell reduces a gRPC value (int64 or double; kind is the oneof) to a
// cell.
func protoCell(status string, i int64, f float64, kind any) cell {
	if status != "PRESENT" {
		return cell(status)
	}
	if strings.Contains(fmt.Sprintf("%T", kind), "Int64") {
		return presentNumber(float64(i))
	}
	return presentNumber(f)
}

// readExport reads the named feature columns (and their statuses) of an
// exported Parquet file.
func readExport(t *testing.T, path string, rows int, names ...string) []map[string]cell {
	t.Helper()
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 1 << 20}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	if int(tbl.NumRows()) != rows {
		t.Fatalf("%s: %d rows, want %d", path, tbl.NumRows(), rows)
	}
	col := func(name string) arrow.Array {
		idx := tbl.Schema().FieldIndices(name)
		if len(idx) != 1 {
			t.Fatalf("%s: no column %q in %s", path, name, tbl.Schema())
		}
		return tbl.Column(idx[0]).Data().Chunk(0)
	}
	out := make([]map[string]cell, rows)
	for i := range out {
		out[i] = map[string]cell{}
	}
	for _, n := range names {
		vals, stats := col(n), col(n+"__status").(*array.String)
		for i := range out {
			if stats.Value(i) != "PRESENT" {
				out[i][n] = cell(stats.Value(i))
				continue
			}
			switch v := cellValue(vals, i); v.Kind {
			case aggregate.KindInt64:
				out[i][n] = presentNumber(float64(v.I))
			default:
				out[i][n] = presentNumber(v.F)
			}
		}
	}
	return out
}
