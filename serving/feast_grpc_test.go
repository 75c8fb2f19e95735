package serving_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	feastserving "github.com/featured-dev/featured/api/feast/serving"
	feasttypes "github.com/featured-dev/featured/api/feast/types"
	"github.com/featured-dev/featured/serving"
)

// feastLookup is one request of the gRPC tests, as the JSON body of POST
// /get-online-features and as Feast's message. The entity keys are sent in
// the order of their names: over gRPC (a protobuf map) that is the order of
// the key columns.
type feastLookup struct {
	name string
	json string
	msg  *feastserving.GetOnlineFeaturesRequest
}

func feastEntities(cols map[string][]*feasttypes.Value) map[string]*feasttypes.RepeatedValue {
	m := make(map[string]*feasttypes.RepeatedValue, len(cols))
	for k, v := range cols {
		m[k] = &feasttypes.RepeatedValue{Val: v}
	}
	return m
}

func fv(refs ...string) *feastserving.GetOnlineFeaturesRequest_Features {
	return &feastserving.GetOnlineFeaturesRequest_Features{Features: &feastserving.FeatureList{Val: refs}}
}

func vs(s string) *feasttypes.Value {
	return &feasttypes.Value{Val: &feasttypes.Value_StringVal{StringVal: s}}
}

func vi(i int64) *feasttypes.Value {
	return &feasttypes.Value{Val: &feasttypes.Value_Int64Val{Int64Val: i}}
}

var feastLookups = []feastLookup{
	{"two entities",
		`{"features":["user_spend:spend_7d","user_spend:last_3_merchants","merchant_stats:volume_1d"],"entities":{"merchant_id":[42,42],"user_id":["u1","u9"]}}`,
		&feastserving.GetOnlineFeaturesRequest{
			Kind:     fv("user_spend:spend_7d", "user_spend:last_3_merchants", "merchant_stats:volume_1d"),
			Entities: feastEntities(map[string][]*feasttypes.Value{"user_id": {vs("u1"), vs("u9")}, "merchant_id": {vi(42), vi(42)}}),
		}},
	{"extra join key, int64 key as a string",
		`{"features":["user_spend:txn_count_1h","user_spend:last_merchant"],"entities":{"merchant_id":["42"],"not_a_key":["x"],"user_id":["u2"]}}`,
		&feastserving.GetOnlineFeaturesRequest{
			Kind: fv("user_spend:txn_count_1h", "user_spend:last_merchant"),
			Entities: feastEntities(map[string][]*feasttypes.Value{
				"user_id": {vs("u2")}, "merchant_id": {vs("42")}, "not_a_key": {vs("x")}}),
		}},
	{"@latest, full names, version metadata",
		`{"features":["merchant_stats@latest:volume_1d","user_spend:avg_amount_24h"],"entities":{"merchant_id":[42,7],"user_id":["u1","u2"]},"full_feature_names":true,"include_feature_view_version_metadata":true}`,
		&feastserving.GetOnlineFeaturesRequest{
			Kind:                              fv("merchant_stats@latest:volume_1d", "user_spend:avg_amount_24h"),
			Entities:                          feastEntities(map[string][]*feasttypes.Value{"user_id": {vs("u1"), vs("u2")}, "merchant_id": {vi(42), vi(7)}}),
			FullFeatureNames:                  true,
			IncludeFeatureViewVersionMetadata: true,
		}},
	{"feature service",
		`{"feature_service":"fraud_model_v1","entities":{"user_id":["u1","u2","nobody"]}}`,
		&feastserving.GetOnlineFeaturesRequest{
			Kind:     &feastserving.GetOnlineFeaturesRequest_FeatureService{FeatureService: "fraud_model_v1"},
			Entities: feastEntities(map[string][]*feasttypes.Value{"user_id": {vs("u1"), vs("u2"), vs("nobody")}}),
		}},
}

// feastResponseJSON is a Feast response message in the shape of the JSON
// response of POST /get-online-features, as encoding/json decodes it.
func feastResponseJSON(resp *feastserving.GetOnlineFeaturesResponse) map[string]any {
	md := map[string]any{"feature_names": anys(resp.GetMetadata().GetFeatureNames().GetVal())}
	if fvm := resp.GetMetadata().GetFeatureViewMetadata(); len(fvm) > 0 {
		var l []any
		for _, m := range fvm {
			l = append(l, map[string]any{"name": m.GetName(), "version": float64(m.GetVersion())})
		}
		md["feature_view_metadata"] = l
	}
	var results []any
	for _, r := range resp.GetResults() {
		var values, statuses, stamps []any
		for _, v := range r.GetValues() {
			values = append(values, feastValueJSON(v))
		}
		for _, s := range r.GetStatuses() {
			statuses = append(statuses, s.String())
		}
		for _, ts := range r.GetEventTimestamps() {
			stamps = append(stamps, rfc3339(ts))
		}
		results = append(results, map[string]any{"values": values, "statuses": statuses, "event_timestamps": stamps})
	}
	return map[string]any{"metadata": md, "results": results}
}

func anys[T any](l []T) []any {
	out := make([]any, len(l))
	for i := range l {
		out[i] = l[i]
	}
	return out
}

func feastValueJSON(v *feasttypes.Value) any {
	switch x := v.GetVal().(type) {
	case nil:
		return nil
	case *feasttypes.Value_Int64Val:
		return float64(x.Int64Val)
	case *feasttypes.Value_DoubleVal:
		return x.DoubleVal
	case *feasttypes.Value_StringVal:
		return x.StringVal
	case *feasttypes.Value_BoolVal:
		return x.BoolVal
	case *feasttypes.Value_StringListVal:
		return anys(x.StringListVal.GetVal())
	case *feasttypes.Value_Int64ListVal:
		l := make([]any, len(x.Int64ListVal.GetVal()))
		for i, e := range x.Int64ListVal.GetVal() {
			l[i] = float64(e)
		}
		return l
	case *feasttypes.Value_DoubleListVal:
		return anys(x.DoubleListVal.GetVal())
	}
	return "unexpected " + v.String()
}

// rfc3339 writes a timestamp as the JSON response does.
func rfc3339(ts *timestamppb.Timestamp) string {
	t := ts.AsTime().UTC()
	if t.Nanosecond() == 0 {
		return t.Format("2006-01-02T15:04:05Z")
	}
	return t.Format("2006-01-02T15:04:05.000Z")
}

func httpFeast(t *testing.T, h *harness, body string) map[string]any {
	t.Helper()
	st, out := h.do("POST", "/get-online-features", "", []byte(body))
	if st != 200 {
		t.Fatalf("POST /get-online-features %s: %d %s", body, st, out)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return m
}

// TestFeastGRPC drives Feast's service with the Go client of api/feast: for
// each request, the same columns, values, statuses and times as POST
// /get-online-features.
func TestFeastGRPC(t *testing.T) {
	h := newHarness(t, serving.Options{Version: "featured-test"})
	seed(h)
	c := feastserving.NewServingServiceClient(h.conn)
	ctx := context.Background()
	info, err := c.GetFeastServingInfo(ctx, &feastserving.GetFeastServingInfoRequest{})
	if err != nil || info.GetVersion() != "featured-test" {
		t.Fatalf("GetFeastServingInfo: %v, %v", info, err)
	}
	for _, l := range feastLookups {
		resp, err := c.GetOnlineFeatures(ctx, l.msg)
		if err != nil {
			t.Fatalf("%s: %v", l.name, err)
		}
		if diff := cmp.Diff(httpFeast(t, h, l.json), feastResponseJSON(resp)); diff != "" {
			t.Errorf("%s: gRPC differs from HTTP (-http +grpc):\n%s", l.name, diff)
		}
	}
	// The typed list of a last_k feature, as Feast's Array(String).
	resp, err := c.GetOnlineFeatures(ctx, feastLookups[0].msg)
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.GetResults()[3].GetValues()[0].GetStringListVal().GetVal(); !cmp.Equal(got, []string{"m4", "m3", `m"ü`}) && !cmp.Equal(got, []string{`m"ü`, "m3", "m4"}) {
		t.Errorf("last_3_merchants of u1: %v", resp.GetResults()[3].GetValues()[0])
	}

	// Errors: featured's codes, naming the bad item.
	bad := []struct {
		name string
		req  *feastserving.GetOnlineFeaturesRequest
		code codes.Code
		msg  string
	}{
		{"unknown view", &feastserving.GetOnlineFeaturesRequest{Kind: fv("nope:x"),
			Entities: feastEntities(map[string][]*feasttypes.Value{"user_id": {vs("u1")}})}, codes.InvalidArgument, "features[0]"},
		{"not an int64", &feastserving.GetOnlineFeaturesRequest{Kind: fv("merchant_stats:volume_1d"),
			Entities: feastEntities(map[string][]*feasttypes.Value{"merchant_id": {vs("4x")}})}, codes.InvalidArgument, "entities.merchant_id[0]"},
		{"a double key", &feastserving.GetOnlineFeaturesRequest{Kind: fv("merchant_stats:volume_1d"),
			Entities: feastEntities(map[string][]*feasttypes.Value{"merchant_id": {{Val: &feasttypes.Value_DoubleVal{DoubleVal: 1}}}})},
			codes.InvalidArgument, "entities.merchant_id[0]"},
		{"a join key missing", &feastserving.GetOnlineFeaturesRequest{Kind: fv("user_spend:spend_7d", "merchant_stats:volume_1d"),
			Entities: feastEntities(map[string][]*feasttypes.Value{"user_id": {vs("u1")}})}, codes.InvalidArgument, "entities.merchant_id"},
	}
	for _, b := range bad {
		_, err := c.GetOnlineFeatures(ctx, b.req)
		if st, _ := status.FromError(err); st.Code() != b.code || !strings.Contains(st.Message(), b.msg) {
			t.Errorf("%s: %v, want %s naming %s", b.name, err, b.code, b.msg)
		}
	}
}

// TestFeastGRPCLimits: Feast's lookup is in the lookup class and under
// MaxEntities, as featured.v1's.
func TestFeastGRPCLimits(t *testing.T) {
	h := newHarness(t, serving.Options{MaxEntities: 2, MaxResponseBytes: 1 << 20})
	seed(h)
	c := feastserving.NewServingServiceClient(h.conn)
	_, err := c.GetOnlineFeatures(context.Background(), &feastserving.GetOnlineFeaturesRequest{Kind: fv("user_spend:spend_7d"),
		Entities: feastEntities(map[string][]*feasttypes.Value{"user_id": {vs("u1"), vs("u2"), vs("u3")}})})
	if st, _ := status.FromError(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "entities.user_id") {
		t.Errorf("3 entities over a limit of 2: %v", err)
	}
}

// TestFeastGRPCAuth: Feast's lookup needs the read scope, as featured.v1's.
func TestFeastGRPCAuth(t *testing.T) {
	h := newAuthHarness(t)
	c := feastserving.NewServingServiceClient(h.conn)
	as := func(tok string) context.Context {
		return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tok)
	}
	req := &feastserving.GetOnlineFeaturesRequest{Kind: fv("user_spend:spend_7d"),
		Entities: feastEntities(map[string][]*feasttypes.Value{"user_id": {vs("u1")}})}
	f := func(tok string, want codes.Code) {
		t.Helper()
		_, err := c.GetOnlineFeatures(as(tok), req)
		if status.Code(err) != want {
			t.Errorf("token %q: %v, want %s", tok, err, want)
		}
	}
	f("nope", codes.Unauthenticated)
	f("reader", codes.OK)
	f("writer", codes.PermissionDenied)
	f("merch", codes.PermissionDenied) // a view-limited token: not user_spend
	if _, err := c.GetFeastServingInfo(as("reader"), &feastserving.GetFeastServingInfoRequest{}); err != nil {
		t.Errorf("GetFeastServingInfo as reader: %v", err)
	}
}

// feastStubScript calls featured's gRPC port with Feast's own generated
// stubs (feast.protos...ServingService_pb2_grpc): GetFeastServingInfo, then
// each request, given as its serialized bytes (base64) so that it is the
// message the Go test built. It prints what Python parsed (names, version)
// and the response re-serialized by Python, which the test parses back.
const feastStubScript = `
import base64, json, sys, grpc
from feast.protos.feast.serving import ServingService_pb2 as pb, ServingService_pb2_grpc as rpc
stub = rpc.ServingServiceStub(grpc.insecure_channel(sys.argv[1]))
out = {"version": stub.GetFeastServingInfo(pb.GetFeastServingInfoRequest(), timeout=30).version, "responses": []}
for b in sys.argv[2:]:
    req = pb.GetOnlineFeaturesRequest.FromString(base64.b64decode(b))
    resp = stub.GetOnlineFeatures(req, timeout=30)
    out["responses"].append({"names": list(resp.metadata.feature_names.val),
        "first_value": str(resp.results[-1].values[0]),
        "raw": base64.b64encode(resp.SerializeToString()).decode()})
print(json.dumps(out))
`

// TestFeastGRPCPythonStubs drives the service through Feast's generated
// Python stubs against the server on 127.0.0.1: Feast's client encodes the
// request and decodes the response, and the response (re-encoded by
// Python) equals POST /get-online-features's.
func TestFeastGRPCPythonStubs(t *testing.T) {
	py := feastPython(t)
	if err := exec.Command(py, "-c", "import grpc").Run(); err != nil {
		t.Fatalf("no grpcio in %s (%v): run scripts/python-env.sh", py, err)
	}
	h := newHarness(t, serving.Options{Version: "featured-test"})
	seed(h)
	args := []string{"-c", feastStubScript, h.conn.Target()}
	for _, l := range feastLookups {
		b, err := proto.Marshal(l.msg)
		if err != nil {
			t.Fatal(err)
		}
		args = append(args, base64.StdEncoding.EncodeToString(b))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, args...)
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("feast stub script: %v\n%s\n%s", err, out, stderr)
	}
	var got struct {
		Version   string
		Responses []struct {
			Names      []string
			FirstValue string `json:"first_value"`
			Raw        string
		}
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got.Version != "featured-test" {
		t.Errorf("version: %q", got.Version)
	}
	if len(got.Responses) != len(feastLookups) {
		t.Fatalf("%d responses for %d requests: %s", len(got.Responses), len(feastLookups), out)
	}
	for i, l := range feastLookups {
		r := got.Responses[i]
		raw, err := base64.StdEncoding.DecodeString(r.Raw)
		if err != nil {
			t.Fatal(err)
		}
		var resp feastserving.GetOnlineFeaturesResponse
		if err := proto.Unmarshal(raw, &resp); err != nil {
			t.Fatalf("%s: %v", l.name, err)
		}
		want := httpFeast(t, h, l.json)
		if diff := cmp.Diff(want, feastResponseJSON(&resp)); diff != "" {
			t.Errorf("%s: Feast's stubs' response differs from HTTP (-http +grpc):\n%s", l.name, diff)
		}
		if !cmp.Equal(anys(r.Names), want["metadata"].(map[string]any)["feature_names"]) {
			t.Errorf("%s: Python read names %v", l.name, r.Names)
		}
	}
	// What Python itself parsed: volume_1d of merchant 42 is a double.
	if v := got.Responses[0].FirstValue; strings.TrimSpace(v) != "double_val: 42.5" {
		t.Errorf("Python read volume_1d as %q", v)
	}
}
