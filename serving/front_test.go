package serving_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	featuredv1 "github.com/featured-dev/featured/api/featured/v1"
	"github.com/featured-dev/featured/serving"
)

// route is one request of the front-door tests.
type route struct {
	method, path, contentType, body string
}

func (r route) String() string { return r.method + " " + r.path }

// send sends r to h's HTTP server.
func (h *harness) send(r route) *http.Response {
	h.t.Helper()
	req, err := http.NewRequest(r.method, h.url+r.path, strings.NewReader(r.body))
	if err != nil {
		h.t.Fatal(err)
	}
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("%s: %v", r, err)
	}
	return resp
}

// wantErrorShape fails unless resp is an error response in the one shape,
// {"error":{"status","message","problems"}}, with status want.
func wantErrorShape(t *testing.T, name string, resp *http.Response, want int) {
	t.Helper()
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("%s: read body: %v", name, err)
	}
	if resp.StatusCode != want {
		t.Errorf("%s: status %d, want %d: %s", name, resp.StatusCode, want, body)
		return
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q, want application/json: %s", name, ct, body)
	}
	// Feast's endpoint sends Feast's error detail as a JSON string, with
	// featured's error inside it.
	var inner string
	if strings.HasSuffix(name, " /get-online-features") && json.Unmarshal(body, &inner) == nil {
		var fe struct {
			Module, Class, Message string
			Error                  json.RawMessage
		}
		if err := json.Unmarshal([]byte(inner), &fe); err != nil || fe.Module != "feast.errors" || fe.Class == "" || fe.Message == "" {
			t.Errorf("%s: body %s is not Feast's error detail: %v", name, body, err)
			return
		}
		body = []byte(`{"error":` + string(fe.Error) + `}`)
	}
	var e struct {
		Error struct {
			Status   int               `json:"status"`
			Message  string            `json:"message"`
			Problems []serving.Problem `json:"problems"`
		} `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		t.Errorf("%s: body %s is not the error shape: %v", name, body, err)
		return
	}
	if e.Error.Status != want || e.Error.Message == "" {
		t.Errorf("%s: error %+v, want status %d and a message", name, e.Error, want)
	}
}

// TestErrorShapeEveryRoute: every route, offline ones, status, unknown
// routes and wrong methods included, answers errors in the one shape with
// the status of errors.go's table; Feast's endpoint wraps it in Feast's
// error detail (feast_errors.go).
func TestErrorShapeEveryRoute(t *testing.T) {
	h := newHarnessLog(t, serving.Options{}, true)
	h.apply(definitions)
	for _, tc := range []struct {
		route
		status int
	}{
		{route{"POST", "/get-online-features", "", "{"}, http.StatusBadRequest},
		{route{"POST", "/v1/features", "text/csv", "a,b"}, http.StatusUnsupportedMediaType},
		{route{"POST", "/v1/features", "application/json", `{"features":["user_spend:nope"],"entities":{"user_id":["u1"]}}`}, http.StatusBadRequest},
		{route{"POST", "/v1/push", "application/json", `{"source":"nope","events":[{}]}`}, http.StatusNotFound},
		{route{"POST", "/v1/apply", "application/yaml", "views: [{name: x}]"}, http.StatusBadRequest},
		{route{"POST", "/v1/plan", "application/xml", "<x/>"}, http.StatusUnsupportedMediaType},
		{route{"DELETE", "/v1/views/nope", "", ""}, http.StatusNotFound},
		{route{"POST", "/v1/registry", "", ""}, http.StatusMethodNotAllowed},
		{route{"POST", "/v1/status", "", ""}, http.StatusMethodNotAllowed},
		{route{"POST", "/v1/export?features=user_spend:spend_7d", "", "x"}, http.StatusBadRequest},
		{route{"POST", "/v1/export?features=user_spend:nope", "text/csv", "user_id,event_timestamp\nu1,1\n"}, http.StatusBadRequest},
		{route{"GET", "/v1/export", "", ""}, http.StatusMethodNotAllowed},
		{route{"POST", "/v1/backfill?view=nope", "", ""}, http.StatusBadRequest},
		{route{"POST", "/v1/backfill?view=user_spend", "", "{}"}, http.StatusBadRequest},
		{route{"POST", "/v1/verify-skew", "", ""}, http.StatusBadRequest},
		{route{"GET", "/nope", "", ""}, http.StatusNotFound},
		{route{"GET", "/debug/pprof/", "", ""}, http.StatusNotFound}, // Options.Pprof is off
		{route{"PUT", "/v1/push", "", ""}, http.StatusMethodNotAllowed},
		{route{"DELETE", "/readyz", "", ""}, http.StatusMethodNotAllowed},
	} {
		wantErrorShape(t, tc.route.String(), h.send(tc.route), tc.status)
	}
	resp := h.send(route{"GET", "/v1/export", "", ""})
	if got := resp.Header.Get("Allow"); got != "POST" {
		t.Errorf("GET /v1/export: Allow %q, want POST", got)
	}
	resp.Body.Close()
	resp = h.send(route{"PUT", "/v1/views/x", "", ""})
	if got := resp.Header.Get("Allow"); got != "DELETE" {
		t.Errorf("PUT /v1/views/x: Allow %q, want DELETE", got)
	}
	resp.Body.Close()
	h.srv.SetReady(false)
	wantErrorShape(t, "lookup while not ready", h.send(route{"POST", "/v1/features", "", `{"features":["user_spend:spend_7d"],"entities":{"user_id":["u1"]}}`}),
		http.StatusServiceUnavailable)
}

// TestOfflineRoutePanic: a panic in an offline route is a logged 500 in the
// error shape, and the server goes on serving. Once a response has begun, a
// panic, an error or http.ErrAbortHandler (how an export cuts a stream) cut
// the connection: no JSON after the bytes sent.
func TestOfflineRoutePanic(t *testing.T) {
	begin := func(w http.ResponseWriter) {
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("half a stream"))
		w.(http.Flusher).Flush()
	}
	var mode atomic.Value // what the begun backfill does next
	h := newHarness(t, serving.Options{Offline: serving.OfflineRoutes{
		Export: func(http.ResponseWriter, *http.Request) error { panic("export bug") },
		Backfill: func(w http.ResponseWriter, _ *http.Request) error {
			begin(w)
			switch mode.Load() {
			case "abort":
				panic(http.ErrAbortHandler)
			case "panic":
				panic("backfill bug")
			}
			return errors.New("offline: broke mid-stream")
		},
		VerifySkew: func(http.ResponseWriter, *http.Request) error {
			return errors.New("offline: something broke")
		},
	}})
	for range 2 {
		resp := h.send(route{"POST", "/v1/export", "text/csv", "x"})
		wantErrorShape(t, "panicking export", resp, http.StatusInternalServerError)
	}
	wantErrorShape(t, "verify-skew returning an error", h.send(route{"POST", "/v1/verify-skew", "", ""}), http.StatusInternalServerError)
	for _, m := range []string{"abort", "panic", "error"} {
		mode.Store(m)
		resp := h.send(route{"POST", "/v1/backfill", "", ""})
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil || string(body) != "half a stream" {
			t.Errorf("%s after the response began: read %q (%v), want the bytes sent and a cut connection", m, body, err)
		}
	}
	if st, _ := h.do("GET", "/livez", "", nil); st != http.StatusOK {
		t.Fatalf("livez after the panics: %d", st)
	}
}

// recorder is a middleware slot that notes every request it sees.
type recorder struct {
	mu   sync.Mutex
	seen []string
}

func (rec *recorder) note(s string) {
	rec.mu.Lock()
	rec.seen = append(rec.seen, s)
	rec.mu.Unlock()
}

func (rec *recorder) take() []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	s := rec.seen
	rec.seen = nil
	return s
}

func (rec *recorder) middleware(name string, refuse func(*http.Request) bool) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rec.note(name + " " + r.Method + " " + r.URL.Path)
			if r.Header.Get("X-Panic") == name {
				panic(name + " slot bug")
			}
			if refuse != nil && refuse(r) {
				http.Error(w, "refused", http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// TestMiddlewareSlots: the Metrics and Auth slots run, in that order, on
// every route: lookups, push, registry, offline routes, status, probes,
// pprof, 404 and 405. A request Auth refuses never reaches its handler, and
// a panic in a slot is recovered.
func TestMiddlewareSlots(t *testing.T) {
	var rec recorder
	refuse := func(r *http.Request) bool { return r.Header.Get("Authorization") == "no" }
	h := newHarnessLog(t, serving.Options{Pprof: true, Middleware: serving.Middleware{
		Metrics: rec.middleware("metrics", nil),
		Auth:    rec.middleware("auth", refuse),
	}}, true)
	h.apply(definitions)
	for _, r := range []route{
		{"POST", "/get-online-features", "", `{"features":["user_spend:spend_7d"],"entities":{"user_id":["u1"]}}`},
		{"POST", "/v1/features", "", `{"features":["user_spend:spend_7d"],"entities":{"user_id":["u1"]}}`},
		{"POST", "/v1/push", "", `{"source":"transactions","events":[]}`},
		{"POST", "/v1/apply", "application/yaml", definitions},
		{"POST", "/v1/plan", "application/yaml", definitions},
		{"GET", "/v1/registry", "", ""},
		{"DELETE", "/v1/services/nope", "", ""},
		{"POST", "/v1/export", "", ""},
		{"POST", "/v1/backfill?view=user_spend", "", ""},
		{"POST", "/v1/verify-skew", "", ""},
		{"GET", "/v1/status", "", ""},
		{"GET", "/healthz", "", ""},
		{"GET", "/livez", "", ""},
		{"GET", "/readyz?verbose", "", ""},
		{"GET", "/debug/pprof/cmdline", "", ""},
		{"GET", "/nope", "", ""},
		{"PATCH", "/v1/apply", "", ""},
	} {
		resp := h.send(r)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		path, _, _ := strings.Cut(r.path, "?")
		want := []string{"metrics " + r.method + " " + path, "auth " + r.method + " " + path}
		if got := rec.take(); !slices.Equal(got, want) {
			t.Errorf("%s (%d): the slots saw %q, want %q", r, resp.StatusCode, got, want)
		}
	}

	// Refused by Auth: the delete does not run.
	req, _ := http.NewRequest("DELETE", h.url+"/v1/services/nope", nil)
	req.Header.Set("Authorization", "no")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a request Auth refuses: %d, want 401 (and not the handler's 404)", resp.StatusCode)
	}
	rec.take()

	// A panicking slot is inside the recovery.
	for _, slot := range []string{"metrics", "auth"} {
		req, _ := http.NewRequest("POST", h.url+"/v1/backfill?view=user_spend", nil)
		req.Header.Set("X-Panic", slot)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		wantErrorShape(t, "a panic in the "+slot+" slot", resp, http.StatusInternalServerError)
	}
}

// TestGRPCChain: the gRPC chain recovers a panic (here in the Auth slot,
// which runs inside the recovery, as a method does) as INTERNAL, and runs
// the Metrics slot on unary and streaming methods.
func TestGRPCChain(t *testing.T) {
	var rec recorder
	const panicky = "/featured.v1.RegistryService/ListViews"
	h := newHarness(t, serving.Options{Interceptors: serving.Interceptors{
		Metrics: serving.Interceptor{
			Unary: func(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
				rec.note("metrics " + info.FullMethod)
				return next(ctx, req)
			},
			Stream: func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, next grpc.StreamHandler) error {
				rec.note("metrics " + info.FullMethod)
				return next(srv, ss)
			},
		},
		Auth: serving.Interceptor{
			Unary: func(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
				if info.FullMethod == panicky {
					panic("auth slot bug")
				}
				return next(ctx, req)
			},
			Stream: func(any, grpc.ServerStream, *grpc.StreamServerInfo, grpc.StreamHandler) error {
				panic("auth stream slot bug")
			},
		},
	}})
	ctx := context.Background()
	for range 2 {
		_, err := h.registry.ListViews(ctx, &featuredv1.ListViewsRequest{})
		if st := status.Convert(err); st.Code() != codes.Internal || !strings.Contains(st.Message(), "auth slot bug") {
			t.Fatalf("a panicking unary chain: %v, want INTERNAL naming the panic", err)
		}
	}
	if _, err := h.registry.GetRegistry(ctx, &featuredv1.GetRegistryRequest{}); err != nil {
		t.Fatalf("GetRegistry after the panics: %v", err)
	}
	if got, want := rec.take(), []string{"metrics " + panicky, "metrics " + panicky, "metrics /featured.v1.RegistryService/GetRegistry"}; !slices.Equal(got, want) {
		t.Errorf("the unary Metrics slot saw %q, want %q", got, want)
	}

	w, err := healthgrpc.NewHealthClient(h.conn).Watch(ctx, &healthgrpc.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = w.Recv()
	if st := status.Convert(err); st.Code() != codes.Internal || !strings.Contains(st.Message(), "auth stream slot bug") {
		t.Fatalf("a panicking stream chain: %v, want INTERNAL naming the panic", err)
	}
	if got, want := rec.take(), []string{"metrics /grpc.health.v1.Health/Watch"}; !slices.Equal(got, want) {
		t.Errorf("the stream Metrics slot saw %q, want %q", got, want)
	}
}

// TestReadyChecksValidated: a ready check needs a name of its own and a
// function.
func TestReadyChecksValidated(t *testing.T) {
	ok := func() error { return nil }
	for _, checks := range [][]serving.Check{
		{{Name: "", Check: ok}},
		{{Name: "two words", Check: ok}},
		{{Name: "ready", Check: ok}},
		{{Name: "kafka", Check: ok}, {Name: "kafka", Check: ok}},
		{{Name: "kafka"}},
	} {
		o := serving.Options{ReadyChecks: checks}
		o.EnsureDefaults()
		if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "ready checks[") {
			t.Errorf("ready checks %+v: %v, want an error naming the check", checks, err)
		}
	}
}
