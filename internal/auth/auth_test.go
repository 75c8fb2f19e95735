package auth_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/featured-dev/featured/internal/auth"
)

// clock is a settable clock for reloads and rate limits.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func writeFile(t *testing.T, path, data string, mtime time.Time) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

func TestParseFileRefuses(t *testing.T) {
	d := auth.Digest("x")
	f := func(doc, want string) {
		t.Helper()
		_, err := auth.ParseFile([]byte(doc))
		if !errors.Is(err, auth.ErrInvalidFile) || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseFile(%q) = %v, want ErrInvalidFile containing %q", doc, err, want)
		}
	}
	f(`tokens: [{sha256: `+d+`, scopes: [read]}]`, "tokens[0].name: missing")
	f(`tokens: [{name: a, sha256: abc, scopes: [read]}]`, "tokens[0].sha256: want 64 hex digits")
	f(`tokens: [{name: a, scopes: [read]}]`, "exactly one")
	f(`tokens: [{name: a, sha256: `+d+`, subject: CN=a, scopes: [read]}]`, "exactly one")
	f(`tokens: [{name: a, sha256: `+d+`, scopes: [root]}]`, `unknown scope "root"`)
	f(`tokens: [{name: a, sha256: `+d+`}]`, "tokens[0].scopes: missing")
	f(`tokens: [{name: a, sha256: `+d+`, scopes: [read]}, {name: a, subject: CN=a, scopes: [read]}]`, `tokens[1].name: "a" is taken`)
	f(`tokens: [{name: a, sha256: `+d+`, scopes: [read], token: x}]`, "field token not found")
	f(`tokens: [{name: a, sha256: `+d+`, scopes: [read], rate: -1}]`, "tokens[0].rate")
}

func TestIdentifyAndReload(t *testing.T) {
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	path := filepath.Join(t.TempDir(), "tokens.yaml")
	tok, digest, err := auth.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, "tokens:\n- {name: model, sha256: "+digest+", scopes: [read], views: [user_spend]}\n- {name: svc, subject: CN=svc, scopes: [admin]}\n", clk.Now())
	k, err := auth.Open(path, auth.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	id, err := k.Identify(tok, "")
	if err != nil || id.Name() != "model" || !id.Has(auth.ScopeRead) || id.Has(auth.ScopeWrite) {
		t.Fatalf("Identify(token) = %v, %v; want model with read only", id, err)
	}
	if !id.MayReadView("user_spend") || id.MayReadView("other") {
		t.Errorf("view limits: user_spend %v other %v; want true false", id.MayReadView("user_spend"), id.MayReadView("other"))
	}
	if err := id.Require(auth.ScopeAdmin, "apply"); !errors.Is(err, auth.ErrPermissionDenied) || !strings.Contains(err.Error(), "scope admin") {
		t.Errorf("Require(admin) = %v; want permission denied naming admin", err)
	}
	if id, err := k.Identify("", "CN=svc"); err != nil || id.Name() != "svc" {
		t.Errorf("Identify(subject) = %v, %v; want svc", id, err)
	}
	for _, c := range []struct{ tok, subj string }{{"wrong", ""}, {"", ""}, {"", "CN=other"}, {digest, ""}} {
		if _, err := k.Identify(c.tok, c.subj); !errors.Is(err, auth.ErrUnauthenticated) {
			t.Errorf("Identify(%q, %q) = %v; want ErrUnauthenticated", c.tok, c.subj, err)
		}
	}

	// Rotate: a new token replaces the old one. The file is read again only
	// once ReloadEvery has passed.
	tok2, digest2, _ := auth.NewToken()
	writeFile(t, path, "tokens:\n- {name: model, sha256: "+digest2+", scopes: [read, write]}\n", clk.Now().Add(time.Second))
	if _, err := k.Identify(tok, ""); err != nil {
		t.Fatalf("before ReloadEvery passed: %v; want the old token still in force", err)
	}
	clk.Add(2 * time.Second)
	if _, err := k.Identify(tok, ""); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Errorf("old token after reload: %v; want ErrUnauthenticated", err)
	}
	if id, err := k.Identify(tok2, ""); err != nil || !id.Has(auth.ScopeWrite) || !id.ReadsAll() {
		t.Errorf("new token after reload: %v, %v; want read,write over every view", id, err)
	}

	// A broken file leaves the tokens in force.
	writeFile(t, path, "tokens: [{name: ", clk.Now().Add(time.Second))
	clk.Add(2 * time.Second)
	if _, err := k.Identify(tok2, ""); err != nil {
		t.Errorf("after a broken reload: %v; want the previous tokens in force", err)
	}
}

func TestLimits(t *testing.T) {
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	path := filepath.Join(t.TempDir(), "tokens.yaml")
	writeFile(t, path, "tokens:\n- {name: r, sha256: "+auth.Digest("r")+", scopes: [read], rate: 2, burst: 2}\n- {name: c, sha256: "+auth.Digest("c")+", scopes: [read], concurrency: 1}\n", clk.Now())
	k, err := auth.Open(path, auth.Options{Now: clk.Now, ReloadEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	r, _ := k.Identify("r", "")
	for i := range 2 {
		if _, _, err := r.Acquire(); err != nil {
			t.Fatalf("request %d within the burst: %v", i, err)
		}
	}
	_, wait, err := r.Acquire()
	if !errors.Is(err, auth.ErrRateLimited) || wait <= 0 || wait > time.Second {
		t.Fatalf("third request: %v, retry after %s; want ErrRateLimited within 1s", err, wait)
	}
	clk.Add(500 * time.Millisecond)
	if _, _, err := r.Acquire(); err != nil {
		t.Errorf("after the bucket refilled one: %v", err)
	}

	c, _ := k.Identify("c", "")
	release, _, err := c.Acquire()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Acquire(); !errors.Is(err, auth.ErrRateLimited) || !strings.Contains(err.Error(), "concurrency") {
		t.Errorf("second in flight: %v; want ErrRateLimited naming concurrency", err)
	}
	release()
	if _, _, err := c.Acquire(); err != nil {
		t.Errorf("after release: %v", err)
	}
}
