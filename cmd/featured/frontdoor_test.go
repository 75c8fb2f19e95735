package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/featured-dev/featured/internal/kafkatest"
)

// TestFrontDoor: on the real binary, every route of the HTTP address is on
// one router: offline routes, status and unknown routes answer errors in the
// API's one shape; /readyz?verbose lists the named checks (kafka's among
// them); --pprof-on-http mounts pprof there.
func TestFrontDoor(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	dir := t.TempDir()
	defsFile := filepath.Join(dir, "defs.yaml")
	if err := os.WriteFile(defsFile, []byte(defsWith("push", "")), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, filepath.Join(dir, "data"), "--apply", defsFile, "--pprof-on-http",
		"--kafka-brokers", strings.Join(brokers, ","))

	send := func(method, path, contentType, body string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, s.url+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		return resp, b
	}
	for _, tc := range []struct {
		method, path, contentType, body string
		status                          int
		says                            string
	}{
		{"POST", "/v1/export?features=spend:cnt_items_life", "", "x", 400, "spine format"},
		{"POST", "/v1/export?features=spend:nope", "text/csv", "user_id,event_timestamp\nu,1\n", 400, "nope"},
		{"POST", "/v1/backfill?view=nope", "", "", 400, "nope"},
		{"POST", "/v1/verify-skew", "", "{}", 400, "takes no request body"},
		{"POST", "/v1/status", "", "", 405, "method not allowed"},
		{"GET", "/v2/features", "", "", 404, "no route GET /v2/features"},
		{"POST", "/v1/push", "application/json", `{"events":[]}`, 400, "source"},
	} {
		resp, body := send(tc.method, tc.path, tc.contentType, tc.body)
		var e struct {
			Error struct {
				Status   int               `json:"status"`
				Message  string            `json:"message"`
				Problems []json.RawMessage `json:"problems"`
			} `json:"error"`
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		err := dec.Decode(&e)
		if resp.StatusCode != tc.status || err != nil || e.Error.Status != tc.status || !strings.Contains(e.Error.Message, tc.says) ||
			resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: %d %s (%v), want %d in the error shape saying %q", tc.method, tc.path, resp.StatusCode, body, err, tc.status, tc.says)
		}
	}

	resp, body := send("GET", "/v1/status", "", "")
	var st struct {
		Shards []json.RawMessage `json:"shards"`
		Ready  bool              `json:"kafka_ready"`
	}
	if err := json.Unmarshal(body, &st); resp.StatusCode != 200 || err != nil || len(st.Shards) != 2 || !st.Ready {
		t.Errorf("GET /v1/status: %d %s (%v), want 2 shards and kafka ready", resp.StatusCode, body, err)
	}
	if _, body := send("GET", "/readyz?verbose", "", ""); string(body) != "[+]ready ok\n[+]store ok\n[+]disk ok\n[+]kafka ok\nreadyz check passed\n" {
		t.Errorf("GET /readyz?verbose: %q", body)
	}
	if resp, body := send("GET", "/livez", "", ""); resp.StatusCode != 200 || string(body) != "ok\n" {
		t.Errorf("GET /livez: %d %q", resp.StatusCode, body)
	}
	if resp, body := send("GET", "/debug/pprof/cmdline", "", ""); resp.StatusCode != 200 || !strings.Contains(string(body), "--pprof-on-http") {
		t.Errorf("GET /debug/pprof/cmdline with --pprof-on-http: %d %q", resp.StatusCode, body)
	}
	s.stop(t)
}
