package serving_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	featuredv1 "github.com/featured-dev/featured/api/featured/v1"
	"github.com/featured-dev/featured/internal/auth"
	"github.com/featured-dev/featured/serving"
)

// syncBuffer is a log sink the server's goroutines may write to while the
// test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// tokenFile is the token file of the auth tests: the token of each entry
// is its name.
const tokenFile = `tokens:
- {name: reader, sha256: %reader%, scopes: [read]}
- {name: viewer, sha256: %viewer%, scopes: [read], views: [user_spend]}
- {name: merch, sha256: %merch%, scopes: [read], views: [merchant_stats]}
- {name: svcreader, sha256: %svcreader%, scopes: [read], services: [fraud_model_v1]}
- {name: writer, sha256: %writer%, scopes: [write]}
- {name: admin, sha256: %admin%, scopes: [admin]}
- {name: limited, sha256: %limited%, scopes: [read], rate: 0.001, burst: 1}
`

func writeTokens(t *testing.T, path, doc string) {
	t.Helper()
	for _, n := range []string{"reader", "viewer", "merch", "svcreader", "writer", "admin", "limited", "rotated"} {
		doc = strings.ReplaceAll(doc, "%"+n+"%", auth.Digest(n))
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

type authHarness struct {
	*harness
	tokens string // the token file's path
	log    *syncBuffer
}

func newAuthHarness(t *testing.T) *authHarness {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tokens.yaml")
	writeTokens(t, path, tokenFile)
	k, err := auth.Open(path, auth.Options{ReloadEvery: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	log := &syncBuffer{}
	h := newHarness(t, serving.Options{
		Logger:       slog.New(slog.NewTextHandler(log, nil)),
		Middleware:   serving.Middleware{Auth: serving.AuthMiddleware(k, serving.AuthOptions{})},
		Interceptors: serving.Interceptors{Auth: serving.AuthInterceptor(k)},
		// A stand-in for featured serve's backup handler: the route's
		// scope and audit are what is tested here.
		Backup: func(w http.ResponseWriter, r *http.Request) error {
			_, err := io.WriteString(w, `{"id":"b1"}`)
			return err
		},
	})
	h.apply(definitions)
	return &authHarness{harness: h, tokens: path, log: log}
}

// as sends an HTTP request with token ("" for none) and returns the
// status, the body and the response's headers.
func (h *authHarness) as(token, method, path, contentType, body string) (int, string, http.Header) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.url+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out), resp.Header
}

const (
	lookupSpend    = `{"features": ["user_spend:spend_7d"], "entities": {"user_id": ["u1"]}}`
	lookupMerchant = `{"features": ["merchant_stats:volume_1d"], "entities": {"merchant_id": [1]}}`
	lookupService  = `{"feature_service": "fraud_model_v1", "entities": {"user_id": ["u1"]}}`
	pushOne        = `{"source": "transactions", "events": [{"user_id": "u1", "ts": "2026-11-24T09:00:00Z", "amount": 1}]}`
)

func TestAuthHTTP(t *testing.T) {
	h := newAuthHarness(t)
	const js = "application/json"
	cases := []struct {
		name, token, method, path, ct, body string
		want                                int
		msg                                 string // in the body
	}{
		{"no token", "", "POST", "/v1/features", js, lookupSpend, 401, "no token"},
		{"wrong token", "nope", "POST", "/v1/features", js, lookupSpend, 401, "unknown token"},
		{"a digest is not a token", auth.Digest("reader"), "POST", "/v1/features", js, lookupSpend, 401, "unknown token"},
		{"no token, 404", "", "GET", "/nowhere", "", "", 401, "no token"},
		{"probe open", "", "GET", "/readyz", "", "", 200, ""},
		{"livez open", "", "GET", "/livez", "", "", 200, ""},
		{"healthz open", "", "GET", "/healthz", "", "", 200, ""},

		{"read: lookup", "reader", "POST", "/v1/features", js, lookupSpend, 200, "spend_7d"},
		{"read: feast lookup", "reader", "POST", "/get-online-features", js, lookupSpend, 200, "spend_7d"},
		{"read: registry", "reader", "GET", "/v1/registry", "", "", 200, "user_spend"},
		{"read: no push", "reader", "POST", "/v1/push", js, pushOne, 403, "lacks scope write"},
		{"read: no apply", "reader", "POST", "/v1/apply", "application/yaml", definitions, 403, "lacks scope admin"},
		{"read: no plan", "reader", "POST", "/v1/plan", "application/yaml", definitions, 403, "lacks scope admin"},
		{"read: no delete", "reader", "DELETE", "/v1/services/fraud_model_v1", "", "", 403, "lacks scope admin"},
		{"read: no status", "reader", "GET", "/v1/status", "", "", 403, "lacks scope admin"},
		{"read: no history", "reader", "GET", "/v1/registry/history", "", "", 403, "lacks scope admin"},
		{"read: no backup", "reader", "POST", "/v1/backup", "", "", 403, "lacks scope admin"},
		{"write: no backup", "writer", "POST", "/v1/backup", "", "", 403, "lacks scope admin"},
		{"admin: backup", "admin", "POST", "/v1/backup", "", "", 200, `"id":"b1"`},

		{"write: push", "writer", "POST", "/v1/push", js, pushOne, 200, `"accepted":1`},
		{"write: no lookup", "writer", "POST", "/v1/features", js, lookupSpend, 403, "lacks scope read"},
		{"write: no apply", "writer", "POST", "/v1/apply", "application/yaml", definitions, 403, "lacks scope admin"},

		{"admin: plan", "admin", "POST", "/v1/plan", "application/yaml", definitions, 200, "changes"},
		{"admin: status", "admin", "GET", "/v1/status", "", "", 200, "shards"},
		{"admin: no lookup", "admin", "POST", "/v1/features", js, lookupSpend, 403, "lacks scope read"},

		{"views: allowed view", "viewer", "POST", "/v1/features", js, lookupSpend, 200, "spend_7d"},
		{"views: other view", "viewer", "POST", "/v1/features", js, lookupMerchant, 403, `view \"merchant_stats\"`},
		{"views: service of allowed views", "viewer", "POST", "/v1/features", js, lookupService, 200, "txn_count_1h"},
		{"views: service of a view not allowed", "merch", "POST", "/v1/features", js, lookupService, 403, `view \"user_spend\"`},
		{"services: listed service", "svcreader", "POST", "/get-online-features", js, lookupService, 200, "spend_7d"},
		{"services: its views by name", "svcreader", "POST", "/v1/features", js, lookupSpend, 403, `view \"user_spend\"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, body, hdr := h.as(c.token, c.method, c.path, c.ct, c.body)
			if st != c.want || !strings.Contains(body, c.msg) {
				t.Errorf("%s %s as %q: %d %s; want %d containing %q", c.method, c.path, c.token, st, body, c.want, c.msg)
			}
			if st == 401 && hdr.Get("WWW-Authenticate") == "" {
				t.Errorf("401 without WWW-Authenticate")
			}
		})
	}

	// An admin's apply is audited and in the history under its name.
	changed := strings.Replace(definitions, "ttl: 1d", "ttl: 2d", 1)
	if st, body, _ := h.as("admin", "POST", "/v1/apply", "application/yaml", changed); st != 200 {
		t.Fatalf("admin apply: %d %s", st, body)
	}
	if st, body, _ := h.as("admin", "DELETE", "/v1/services/fraud_model_v1", "", ""); st != 200 {
		t.Fatalf("admin delete: %d %s", st, body)
	}
	st, body, _ := h.as("admin", "GET", "/v1/registry/history", "", "")
	var hist struct {
		History []struct {
			By, Action, Remote string
			Generation         uint64
		}
	}
	if err := json.Unmarshal([]byte(body), &hist); st != 200 || err != nil || len(hist.History) != 3 || hist.History[0].By != "" ||
		hist.History[1].By != "admin" || hist.History[1].Action != "apply" || hist.History[1].Remote == "" ||
		hist.History[2].By != "admin" || hist.History[2].Action != "delete" || strings.Contains(body, "unchanged") {
		t.Errorf("history: %d %s (%v); want the harness's apply (no caller), admin's apply, admin's delete, and no unchanged objects", st, body, err)
	}
	log := h.log.String()
	for _, want := range []string{`msg=audit token=admin remote=127.0.0.1:`, `action=apply`, `merchant_stats v1 -> v2`, `action=delete kind=service name=fraud_model_v1`, `action=backup`} {
		if !strings.Contains(log, want) {
			t.Errorf("audit log lacks %q:\n%s", want, log)
		}
	}
}

func TestAuthRateLimit(t *testing.T) {
	h := newAuthHarness(t)
	if st, body, _ := h.as("limited", "POST", "/v1/features", "application/json", lookupSpend); st != 200 {
		t.Fatalf("first request: %d %s", st, body)
	}
	st, body, hdr := h.as("limited", "POST", "/v1/features", "application/json", lookupSpend)
	if st != 429 || !strings.Contains(body, `token \"limited\" is over its rate`) || hdr.Get("Retry-After") == "" {
		t.Errorf("second request: %d %s (Retry-After %q); want 429 naming the token's rate", st, body, hdr.Get("Retry-After"))
	}
	// Other tokens are not affected.
	if st, body, _ := h.as("reader", "POST", "/v1/features", "application/json", lookupSpend); st != 200 {
		t.Errorf("another token: %d %s", st, body)
	}
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer limited")
	_, err := h.serving.GetOnlineFeatures(ctx, grpcLookup("user_spend:spend_7d"))
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("gRPC over the rate: %v; want ResourceExhausted", err)
	}
}

func TestAuthFileReload(t *testing.T) {
	h := newAuthHarness(t)
	if st, _, _ := h.as("rotated", "POST", "/v1/features", "application/json", lookupSpend); st != 401 {
		t.Fatalf("a token not yet in the file: %d; want 401", st)
	}
	// Rotate: reader's token is replaced by a new one.
	writeTokens(t, h.tokens, strings.Replace(tokenFile, "{name: reader, sha256: %reader%", "{name: reader, sha256: %rotated%", 1))
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, _, _ := h.as("rotated", "POST", "/v1/features", "application/json", lookupSpend)
		if st == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the new token is still refused (%d) 10s after the file changed", st)
		}
		time.Sleep(10 * time.Millisecond) // polling the reload, not synchronising
	}
	if st, _, _ := h.as("reader", "POST", "/v1/features", "application/json", lookupSpend); st != 401 {
		t.Errorf("the rotated-out token: %d; want 401", st)
	}
}

func grpcLookup(refs ...string) *featuredv1.GetOnlineFeaturesRequest {
	return &featuredv1.GetOnlineFeaturesRequest{
		Kind:     &featuredv1.GetOnlineFeaturesRequest_Features{Features: &featuredv1.FeatureList{Val: refs}},
		Entities: map[string]*featuredv1.RepeatedValue{"user_id": {Val: []*featuredv1.Value{{Kind: &featuredv1.Value_StringVal{StringVal: "u1"}}}}},
	}
}

func TestAuthGRPC(t *testing.T) {
	h := newAuthHarness(t)
	as := func(token string) context.Context {
		if token == "" {
			return context.Background()
		}
		return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
	}
	service := &featuredv1.GetOnlineFeaturesRequest{
		Kind:     &featuredv1.GetOnlineFeaturesRequest_FeatureService{FeatureService: "fraud_model_v1"},
		Entities: grpcLookup().Entities,
	}
	push := &featuredv1.PushRequest{Source: "transactions", Events: []*featuredv1.Event{{Fields: map[string]*featuredv1.Value{
		"user_id": {Kind: &featuredv1.Value_StringVal{StringVal: "u1"}},
		"ts":      {Kind: &featuredv1.Value_StringVal{StringVal: "2026-11-24T09:00:00Z"}},
	}}}}
	apply := &featuredv1.ApplyRequest{Definitions: definitions}
	check := func(name string, err error, want codes.Code, msg string) {
		t.Helper()
		if status.Code(err) != want || (msg != "" && !strings.Contains(status.Convert(err).Message(), msg)) {
			t.Errorf("%s: %v; want %s containing %q", name, err, want, msg)
		}
	}
	_, err := h.serving.GetOnlineFeatures(as(""), grpcLookup("user_spend:spend_7d"))
	check("no token", err, codes.Unauthenticated, "no token")
	_, err = h.serving.GetOnlineFeatures(as("nope"), grpcLookup("user_spend:spend_7d"))
	check("wrong token", err, codes.Unauthenticated, "unknown token")
	_, err = healthgrpc.NewHealthClient(h.conn).Check(as(""), &healthgrpc.HealthCheckRequest{})
	check("health without a token", err, codes.OK, "")

	_, err = h.serving.GetOnlineFeatures(as("reader"), grpcLookup("user_spend:spend_7d"))
	check("read: lookup", err, codes.OK, "")
	_, err = h.registry.GetRegistry(as("reader"), &featuredv1.GetRegistryRequest{})
	check("read: registry", err, codes.OK, "")
	_, err = h.ingest.Push(as("reader"), push)
	check("read: push", err, codes.PermissionDenied, "lacks scope write")
	_, err = h.registry.Apply(as("reader"), apply)
	check("read: apply", err, codes.PermissionDenied, "lacks scope admin")
	_, err = h.registry.Delete(as("writer"), &featuredv1.DeleteRequest{Kind: "service", Name: "fraud_model_v1"})
	check("write: delete", err, codes.PermissionDenied, "lacks scope admin")
	_, err = h.ingest.Push(as("writer"), push)
	check("write: push", err, codes.OK, "")
	_, err = h.serving.GetOnlineFeatures(as("writer"), grpcLookup("user_spend:spend_7d"))
	check("write: lookup", err, codes.PermissionDenied, "lacks scope read")
	_, err = h.registry.Apply(as("admin"), apply)
	check("admin: apply", err, codes.OK, "")

	_, err = h.serving.GetOnlineFeatures(as("viewer"), service)
	check("views: service of allowed views", err, codes.OK, "")
	_, err = h.serving.GetOnlineFeatures(as("merch"), service)
	check("views: service of a view not allowed", err, codes.PermissionDenied, `view "user_spend"`)
	_, err = h.serving.GetOnlineFeatures(as("svcreader"), service)
	check("services: listed service", err, codes.OK, "")
	_, err = h.serving.GetOnlineFeatures(as("svcreader"), grpcLookup("user_spend:spend_7d"))
	check("services: its views by name", err, codes.PermissionDenied, `view "user_spend"`)
}
