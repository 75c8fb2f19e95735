package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/featured-dev/featured/internal/auth"
	"github.com/featured-dev/featured/internal/certs"
	"github.com/featured-dev/featured/internal/certs/certstest"
)

// TestServeRefusesOpenDoor: without --auth-file, serve refuses to listen
// beyond loopback (and pprof beyond loopback even with it) unless
// --insecure; nothing is opened before it refuses.
func TestServeRefusesOpenDoor(t *testing.T) {
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens.yaml")
	if err := os.WriteFile(tokens, []byte("tokens: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--http-addr", "0.0.0.0:0"}, "--http-addr 0.0.0.0:0 is not a loopback address and --auth-file is not set"},
		{[]string{"--grpc-addr", ":0"}, "--grpc-addr :0 is not a loopback address"},
		{[]string{"--auth-file", tokens, "--pprof-addr", "0.0.0.0:0"}, "--pprof-addr 0.0.0.0:0 is not a loopback address"},
		{[]string{"--tls-cert", "x.pem"}, "--tls-cert and --tls-key go together"},
	} {
		var stderr bytes.Buffer
		err := run(context.Background(), append([]string{"serve", "--data-dir", filepath.Join(dir, "data")}, c.args...), io.Discard, &stderr)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("serve %v: %v; want %q", c.args, err, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); !os.IsNotExist(err) {
		t.Errorf("a refused serve created its data dir (%v)", err)
	}
	if !isLoopback("127.0.0.1:1") || !isLoopback("[::1]:1") || !isLoopback("localhost:1") || isLoopback(":1") || isLoopback("10.0.0.1:1") {
		t.Error("isLoopback misjudges an address")
	}
}

func TestTokenCommand(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"token", "--name", "m", "--scopes", "read", "--views", "a,b"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	first, entry, _ := strings.Cut(out.String(), "\n")
	token := strings.TrimPrefix(first, "token: ")
	f, err := auth.ParseFile([]byte("tokens:\n" + entry))
	if err != nil || len(f.Tokens) != 1 || f.Tokens[0].SHA256 != auth.Digest(token) || strings.Contains(entry, token) ||
		strings.Join(f.Tokens[0].Views, ",") != "a,b" {
		t.Fatalf("token output %q: %+v, %v; want an entry with the token's digest, not the token", out.String(), f, err)
	}
	if err := run(context.Background(), []string{"token", "--name", "m", "--scopes", "root"}, io.Discard, io.Discard); err == nil {
		t.Error("an unknown scope was accepted")
	}
}

// TestServeTLSAndAuth: serve on TLS with client certificates and a token
// file; the client commands reach it with --ca-file and --token-file, a
// client certificate stands for a token, and a plain-text client is
// refused.
func TestServeTLSAndAuth(t *testing.T) {
	dir := t.TempDir()
	ca := certstest.NewCA(t)
	crt, key := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	ca.Issue(t, "featured", crt, key)
	ccrt, ckey := filepath.Join(dir, "svc.crt"), filepath.Join(dir, "svc.key")
	ca.Issue(t, "svc", ccrt, ckey)
	tokens := filepath.Join(dir, "tokens.yaml")
	doc := "tokens:\n- {name: admin, sha256: " + auth.Digest("admin-token") + ", scopes: [admin, read, write]}\n- {name: svc, subject: CN=svc, scopes: [read]}\n"
	if err := os.WriteFile(tokens, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("admin-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	defsFile := filepath.Join(dir, "defs.yaml")
	if err := os.WriteFile(defsFile, []byte(defsWith("push", "")), 0o644); err != nil {
		t.Fatal(err)
	}
	httpAddr, grpcAddr := freePort(t), freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var serveErr error
	logs := &syncBuffer{}
	wg.Go(func() {
		serveErr = run(ctx, []string{"serve", "--data-dir", filepath.Join(dir, "data"), "--partitions", "1",
			"--http-addr", httpAddr, "--grpc-addr", grpcAddr, "--auth-file", tokens,
			"--tls-cert", crt, "--tls-key", key, "--tls-client-ca", ca.File}, io.Discard, logs)
	})
	defer func() {
		cancel()
		wg.Wait()
		if serveErr != nil {
			t.Errorf("serve: %v\n%s", serveErr, logs)
		}
	}()
	cfg, err := certs.ClientConfig(ca.File)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
	url := "https://" + httpAddr
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := hc.Get(url + "/readyz") // open without a token
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready over TLS after 60s: %v\n%s", err, logs)
		}
		time.Sleep(20 * time.Millisecond)
	}

	cli := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(context.Background(), append(args[:1:1], append([]string{"--server", url, "--ca-file", ca.File, "--token-file", tokenFile}, args[1:]...)...), &out, io.Discard)
		return out.String(), err
	}
	if out, err := cli("apply", "-f", defsFile); err != nil || !strings.Contains(out, "view spend v1") {
		t.Fatalf("apply over TLS with a token: %v\n%s", err, out)
	}
	if out, err := cli("get", "--features", "spend:cnt_items_life", "--entity", "user_id=u1"); err != nil || !strings.Contains(out, "cnt_items_life") {
		t.Fatalf("get over TLS: %v\n%s", err, out)
	}
	if out, err := cli("get", "--grpc", grpcAddr, "--features", "spend:cnt_items_life", "--entity", "user_id=u1"); err != nil || !strings.Contains(out, "NOT_FOUND") {
		t.Fatalf("get --grpc over TLS: %v\n%s", err, out)
	}
	// Without the token: 401.
	var out bytes.Buffer
	err = run(context.Background(), []string{"registry", "--server", url, "--ca-file", ca.File}, &out, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("registry without a token: %v; want 401", err)
	}
	// Without the CA: the certificate is not trusted.
	if err := run(context.Background(), []string{"registry", "--server", url, "--token-file", tokenFile}, io.Discard, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "certificate") {
		t.Errorf("registry without --ca-file: %v; want a certificate error", err)
	}

	// The client certificate of CN=svc is the svc entry: read, not admin.
	cc, err := tls.LoadX509KeyPair(ccrt, ckey)
	if err != nil {
		t.Fatal(err)
	}
	mcfg := cfg.Clone()
	mcfg.Certificates = []tls.Certificate{cc}
	mc := &http.Client{Transport: &http.Transport{TLSClientConfig: mcfg}, Timeout: 10 * time.Second}
	for _, c := range []struct {
		method, path, body string
		want               int
	}{
		{"GET", "/v1/registry", "", 200},
		{"POST", "/v1/features", `{"features": ["spend:cnt_items_life"], "entities": {"user_id": ["u1"]}}`, 200},
		{"GET", "/v1/status", "", 403},
	} {
		req, _ := http.NewRequest(c.method, url+c.path, strings.NewReader(c.body))
		resp, err := mc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s %s with the svc certificate: %d %s; want %d", c.method, c.path, resp.StatusCode, b, c.want)
		}
	}
	// /metrics is open without a token (no --metrics-token-required).
	if resp, err := hc.Get(url + "/metrics"); err != nil || resp.StatusCode != 200 {
		t.Errorf("GET /metrics without a token: %v %v; want 200", err, resp)
	} else {
		resp.Body.Close()
	}
	// Plain HTTP to the TLS port is refused.
	if resp, err := http.Get("http://" + httpAddr + "/v1/registry"); err == nil {
		if resp.StatusCode == 200 {
			t.Error("plain HTTP was served on the TLS address")
		}
		resp.Body.Close()
	}
	if !strings.Contains(logs.String(), "msg=audit token=admin") {
		t.Errorf("no audit line for the admin's apply:\n%s", logs)
	}
}

// TestMetricsTokenRequired: with --metrics-token-required, GET /metrics
// needs a valid token (any scope), although it sits beside the API router.
func TestMetricsTokenRequired(t *testing.T) {
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens.yaml")
	doc := "tokens:\n- {name: scraper, sha256: " + auth.Digest("scrape-token") + ", scopes: [read]}\n"
	if err := os.WriteFile(tokens, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	httpAddr, grpcAddr := freePort(t), freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	logs := &syncBuffer{}
	wg.Go(func() {
		_ = run(ctx, []string{"serve", "--data-dir", filepath.Join(dir, "data"), "--partitions", "1",
			"--http-addr", httpAddr, "--grpc-addr", grpcAddr, "--auth-file", tokens, "--metrics-token-required"}, io.Discard, logs)
	})
	defer func() { cancel(); wg.Wait() }()
	url := "http://" + httpAddr
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get(url + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready after 60s:\n%s", logs)
		}
	}
	get := func(token string) int {
		req, _ := http.NewRequest("GET", url+"/metrics", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get(""); code != http.StatusUnauthorized {
		t.Errorf("GET /metrics without a token: %d, want 401", code)
	}
	if code := get("scrape-token"); code != 200 {
		t.Errorf("GET /metrics with a token: %d, want 200", code)
	}
}
