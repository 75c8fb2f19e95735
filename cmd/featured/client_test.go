package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// slowServer answers every request after delay (or gives up when the client
// does) with the canned body of its path, and records the request URIs.
type slowServer struct {
	*httptest.Server
	mu   sync.Mutex
	uris []string
}

func newSlowServer(t *testing.T, delay time.Duration, status int, bodies map[string]string) *slowServer {
	t.Helper()
	s := &slowServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.uris = append(s.uris, r.URL.RequestURI())
		s.mu.Unlock()
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write([]byte(bodies[r.URL.Path]))
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *slowServer) saw(uri string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range s.uris {
		if u == uri {
			return true
		}
	}
	return false
}

// runCLI runs a client command in-process.
func runCLI(ctx context.Context, args ...string) (string, error) {
	var out, errb bytes.Buffer
	err := run(ctx, args, &out, &errb)
	return out.String(), err
}

// TestClientTimeouts: with the quick timeout shortened, against a server
// that answers after four times as long, the quick commands give up with
// an error that says so, while the long ones (backfill, apply --backfill,
// verify-skew, export) wait for the answer. --timeout bounds a long one;
// canceling its ctx (Ctrl-C) stops it.
func TestClientTimeouts(t *testing.T) {
	old := quickTimeout
	quickTimeout = 100 * time.Millisecond
	t.Cleanup(func() { quickTimeout = old })
	delay := 4 * quickTimeout
	srv := newSlowServer(t, delay, http.StatusOK, map[string]string{
		"/v1/backfill":    `{"view":"spend","version":2,"entities":3}`,
		"/v1/verify-skew": `{"samples":0,"values":0,"matches":0,"match_rate_percent":100,"mismatches":[]}`,
		"/v1/apply":       `{"changes":[],"text":"No changes.\n","backfills":[]}`,
		"/v1/registry":    `{}`,
	})
	dir := t.TempDir()
	defs := filepath.Join(dir, "defs.yaml")
	if err := os.WriteFile(defs, []byte(defsWith("push", "")), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	for _, args := range [][]string{
		{"registry"},
		{"apply", "-f", defs},
		{"get", "--features", "spend:cnt_1h", "--entity", "user_id=u1"},
	} {
		start := time.Now()
		_, err := runCLI(ctx, append(args, "--server", srv.URL)...)
		if err == nil || !strings.Contains(err.Error(), "no answer within 100ms") {
			t.Errorf("%s against a server slower than the quick timeout: %v, want \"no answer within 100ms\"", args[0], err)
		}
		if took := time.Since(start); took >= delay {
			t.Errorf("%s gave up after %s, not at the quick timeout (%s)", args[0], took, quickTimeout)
		}
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"backfill", "spend@v2"}, `"entities": 3`},
		{[]string{"apply", "-f", defs, "--backfill"}, "No changes."},
		{[]string{"verify-skew"}, "match rate 100.000%"},
	} {
		start := time.Now()
		out, err := runCLI(ctx, append(tc.args, "--server", srv.URL)...)
		if err != nil || !strings.Contains(out, tc.want) {
			t.Errorf("%s: %v\n%s\nwant %q after %s", strings.Join(tc.args, " "), err, out, tc.want, delay)
		}
		if took := time.Since(start); took < delay {
			t.Errorf("%s answered after %s, before the server's delay %s", tc.args[0], took, delay)
		}
	}
	if !srv.saw("/v1/apply?backfill=true") {
		t.Errorf("apply --backfill did not send ?backfill=true; the server saw %q", srv.uris)
	}

	// export reaches the server's answer too (a 400 here: the server is a
	// stand-in), rather than a client-side timeout.
	spine := filepath.Join(dir, "spine.csv")
	os.WriteFile(spine, []byte("user_id,event_timestamp\nu1,2026-01-01T00:00:00Z\n"), 0o644)
	bad := newSlowServer(t, delay, http.StatusBadRequest, map[string]string{"/v1/export": `{"error":{"status":400,"message":"no such feature"}}`})
	_, err := runCLI(ctx, "export", "--spine", spine, "--features", "spend:nope", "--out", filepath.Join(dir, "out.parquet"), "--server", bad.URL)
	if err == nil || !strings.Contains(err.Error(), "no such feature") {
		t.Errorf("export against a slow server: %v, want the server's 400", err)
	}

	// --timeout bounds a long command; so does its ctx.
	_, err = runCLI(ctx, "backfill", "spend@v2", "--timeout", "100ms", "--server", srv.URL)
	if err == nil || !strings.Contains(err.Error(), "no answer within 100ms") {
		t.Errorf("backfill --timeout 100ms: %v, want \"no answer within 100ms\"", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_, err = runCLI(cctx, "verify-skew", "--server", srv.URL)
	if err == nil || !strings.Contains(err.Error(), "context deadline exceeded") {
		t.Errorf("verify-skew with a canceled ctx: %v, want the context's error", err)
	}
}

// TestApplyBackfillFailurePrinted: when the server applied the definitions
// but a backfill failed (a 500 carrying the plan), `featured apply
// --backfill` prints the plan and each backfill's outcome, and fails with
// the server's message, which names the version to rerun. It fails too when
// the server answered without backfilling.
func TestApplyBackfillFailurePrinted(t *testing.T) {
	srv := newSlowServer(t, 0, http.StatusInternalServerError, map[string]string{"/v1/apply": `{
		"error":{"status":500,"message":"serving: the definitions are applied, but backfilling failed for view spend v2 (disk on fire); rerun ` + "`featured backfill spend@v2`" + `"},
		"changes":[{"kind":"view","name":"spend","action":"new_version","from_version":1,"to_version":2}],
		"text":"~ view spend v1 -> v2: cnt_1h window 1h -> 2h\nPlan: 1 new version.\n",
		"backfills":[{"view":"spend","version":2,"entities":0,"error":"disk on fire"},{"view":"other","version":1,"entities":4}]}`})
	defs := filepath.Join(t.TempDir(), "defs.yaml")
	os.WriteFile(defs, []byte(defsWith("push", "")), 0o644)
	out, err := runCLI(context.Background(), "apply", "-f", defs, "--backfill", "--server", srv.URL)
	if err == nil || !strings.Contains(err.Error(), "definitions are applied") || !strings.Contains(err.Error(), "featured backfill spend@v2") {
		t.Errorf("error %v: want the server's message naming the rerun", err)
	}
	for _, want := range []string{"~ view spend v1 -> v2", "backfill of view spend v2 FAILED: disk on fire", "backfilled view other v1: 4 entities"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	// A server that ignores ?backfill= (one from before it) applies and
	// answers no backfills: the command must not pass that off as done.
	old := newSlowServer(t, 0, http.StatusOK, map[string]string{"/v1/apply": `{"changes":[],"text":"+ view spend v1\nPlan: 1 to create.\n"}`})
	out, err = runCLI(context.Background(), "apply", "-f", defs, "--backfill", "--server", old.URL)
	if err == nil || !strings.Contains(err.Error(), "did not backfill") || !strings.Contains(out, "+ view spend v1") {
		t.Errorf("apply --backfill against a server that ignores it: %v\n%s\nwant the plan and an error saying nothing was backfilled", err, out)
	}
}
