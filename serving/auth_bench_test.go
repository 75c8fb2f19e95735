package serving_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/featured-dev/featured/internal/auth"
	"github.com/featured-dev/featured/serving"
)

// BenchmarkAuth is the cost of auth and TLS on the 1 x 50 lookup
// (/v1/features), side by side: the handler in process without auth, with
// a token of every view, with a view-limited token (the per-lookup view
// check), and over loopback HTTP/1.1 plain, TLS, and TLS with a token
// (keep-alive: the handshake is paid once, the record encryption on every
// request). docs/benchmarks.md has the numbers.
func BenchmarkAuth(b *testing.B) {
	path := filepath.Join(b.TempDir(), "tokens.yaml")
	doc := "tokens:\n- {name: all, sha256: " + auth.Digest("all") + ", scopes: [read]}\n" +
		"- {name: views, sha256: " + auth.Digest("views") + ", scopes: [read], views: [feature_view_0, feature_view_1, feature_view_2, feature_view_3, feature_view_4]}\n"
	for i := range 20 { // a realistic file: the constant-time compare visits every entry
		doc += "- {name: other" + string(rune('a'+i)) + ", sha256: " + auth.Digest(string(rune('a'+i))) + ", scopes: [read]}\n"
	}
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		b.Fatal(err)
	}
	k, err := auth.Open(path, auth.Options{})
	if err != nil {
		b.Fatal(err)
	}
	plain := newBenchHarness(b)
	authed := newBenchHarnessOpts(b, serving.Options{Middleware: serving.Middleware{Auth: serving.AuthMiddleware(k, serving.AuthOptions{})}})
	body := benchBody(b, benchSize{"1x50", 1, 50})

	inProcess := func(h *harness, token string) func(b *testing.B) {
		return func(b *testing.B) {
			handler := h.srv.HTTPHandler()
			req := httptest.NewRequest("POST", "/v1/features", nil)
			req.Header.Set("Content-Type", "application/json")
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			rb := &nopBody{}
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				rb.Reset(body)
				req.Body, req.ContentLength = rb, int64(len(body))
				w.status = 0
				handler.ServeHTTP(w, req)
				if w.status != http.StatusOK {
					b.Fatalf("status %d", w.status)
				}
			}
		}
	}
	loopback := func(h *harness, useTLS bool, token string) func(b *testing.B) {
		return func(b *testing.B) {
			srv := httptest.NewUnstartedServer(h.srv.HTTPHandler())
			if useTLS {
				srv.StartTLS()
			} else {
				srv.Start()
			}
			defer srv.Close()
			client := srv.Client()
			defer client.CloseIdleConnections()
			b.ReportAllocs()
			for b.Loop() {
				req, _ := http.NewRequest("POST", srv.URL+"/v1/features", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				if token != "" {
					req.Header.Set("Authorization", "Bearer "+token)
				}
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
		}
	}
	b.Run("handler/none", inProcess(plain, ""))
	b.Run("handler/token", inProcess(authed, "all"))
	b.Run("handler/token-views", inProcess(authed, "views"))
	b.Run("loopback/plain", loopback(plain, false, ""))
	b.Run("loopback/tls", loopback(plain, true, ""))
	b.Run("loopback/tls-token", loopback(authed, true, "all"))
}
