package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/featured-dev/featured/featurestore"
	"github.com/featured-dev/featured/ingest"
	"github.com/featured-dev/featured/registry"
	"github.com/featured-dev/featured/serving"
)

// testKeyspace keeps the loaded data small; the requests draw their keys
// from it, so every lookup still finds every value.
const testKeyspace = 300

// featuredStack is a real featured: registry and Pebble on t.TempDir(),
// the pusher, HTTP and gRPC on 127.0.0.1:0.
type featuredStack struct {
	http, grpc string
}

func startFeatured(t *testing.T, variant string) featuredStack {
	t.Helper()
	dir := t.TempDir()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg, err := registry.Open(filepath.Join(dir, "registry.json"))
	if err != nil {
		t.Fatal(err)
	}
	defs, err := Definitions(variant)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := registry.ParseYAML([]byte(defs))
	if err != nil {
		t.Fatalf("definitions of %s: %v", variant, err)
	}
	if _, err := reg.Apply(parsed); err != nil {
		t.Fatalf("apply %s: %v", variant, err)
	}
	store, err := featurestore.Open(filepath.Join(dir, "store"), featurestore.Options{
		Partitions: 2, CacheBytes: 8 << 20, GCInterval: -1, Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	pusher, err := ingest.NewPusher(reg, store, ingest.Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := serving.New(reg, store, pusher, serving.Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.HTTPHandler())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(srv.GRPCServerOptions()...)
	srv.RegisterGRPC(gs)
	var wg sync.WaitGroup
	wg.Go(func() { _ = gs.Serve(lis) })
	srv.SetReady(true)
	t.Cleanup(func() {
		gs.Stop()
		wg.Wait()
		hs.Close()
		if err := store.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
		if err := reg.Close(); err != nil {
			t.Errorf("close registry: %v", err)
		}
	})
	return featuredStack{http: strings.TrimPrefix(hs.URL, "http://"), grpc: lis.Addr().String()}
}

// Every featured target, verified value by value against the formula, on
// both variants of the definitions, and push ingest into the windowed view.
func TestFeaturedTargets(t *testing.T) {
	for _, variant := range []string{"last", "window"} {
		t.Run(variant, func(t *testing.T) {
			st := startFeatured(t, variant)
			n, err := loadFeatured(context.Background(), st.http, 100, testKeyspace, true, time.Now())
			if err != nil || n != testKeyspace {
				t.Fatalf("load: %d, %v", n, err)
			}
			for _, tc := range []struct {
				target, addr       string
				entities, features int
			}{
				{TargetFeastHTTP, st.http, 1, 50},
				{TargetFeastHTTP, st.http, 10, 250},
				{TargetNativeHTTP, st.http, 10, 100},
				{TargetGRPC, st.grpc, 1, 50},
				{TargetGRPC, st.grpc, 100, 150},
			} {
				t.Run(fmt.Sprintf("%s/%dx%d", tc.target, tc.entities, tc.features), func(t *testing.T) {
					res, err := Run(context.Background(), Options{Target: tc.target, Addr: tc.addr, Connections: 2,
						Warmup: -1, Duration: 500 * time.Millisecond,
						Workload: Workload{Entities: tc.entities, Features: tc.features, Keyspace: testKeyspace, Unique: 20}})
					if err != nil {
						t.Fatal(err)
					}
					if res.Requests == 0 || res.Errors != 0 || res.ResponseBytes == 0 {
						t.Errorf("requests %d, errors %d %q, bytes %d", res.Requests, res.Errors, res.ErrorSamples, res.ResponseBytes)
					}
				})
			}
			// Every request of a workload verifies, not just the first.
			tgt, err := newTarget(TargetFeastHTTP, st.http, Workload{Entities: 3, Features: 50, Keyspace: testKeyspace, Unique: 30, Seed: 9}, 5*time.Second, 1, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			c, err := tgt.dial()
			if err != nil {
				t.Fatal(err)
			}
			for i := range tgt.requests() {
				if err := c.verify(i); err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
			}
			_ = c.close()
		})
	}
	t.Run("push", func(t *testing.T) {
		st := startFeatured(t, "last")
		res, err := Run(context.Background(), Options{Target: TargetPush, Addr: st.http, Connections: 2, Warmup: -1,
			Duration: 300 * time.Millisecond, Workload: Workload{PushEvents: 50, Keyspace: testKeyspace, Unique: 10}})
		if err != nil {
			t.Fatal(err)
		}
		if res.Requests == 0 || res.Errors != 0 || res.Events != 50*res.Requests || res.EventsPerS == 0 {
			t.Errorf("pushes %d, events %d (%v/s), errors %d %q", res.Requests, res.Events, res.EventsPerS, res.Errors, res.ErrorSamples)
		}
	})
}

// The Redis targets against a real redis-server (scripts/test.sh installs
// Debian's). Outside CI a machine without one skips; in CI (CI=true) that
// is a failure, never a silent skip.
func TestRedisTargets(t *testing.T) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-server not installed: scripts/test.sh installs it (apt-get install redis-server)")
		}
		t.Skip("redis-server not installed (scripts/test.sh or scripts/bench-peers.sh installs it)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir := t.TempDir()
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server did not listen on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond) // polling the port, bounded by the deadline
	}
	if n, err := loadRedis(addr, 50, testKeyspace); err != nil || n != testKeyspace {
		t.Fatalf("load redis: %d, %v", n, err)
	}
	for _, target := range []string{TargetRedisHMGET, TargetRedisHGETALL} {
		for _, w := range []Workload{{Entities: 1, Features: 50}, {Entities: 10, Features: 250}} {
			t.Run(target+"/"+w.Name(), func(t *testing.T) {
				w.Keyspace, w.Unique = testKeyspace, 20
				res, err := Run(context.Background(), Options{Target: target, Addr: addr, Connections: 2, Warmup: -1,
					Duration: 200 * time.Millisecond, ServerPIDs: []int{cmd.Process.Pid}, Workload: w})
				if err != nil {
					t.Fatal(err)
				}
				if res.Requests == 0 || res.Errors != 0 || res.ServerCPU == nil {
					t.Errorf("requests %d, errors %d %q, server CPU %v", res.Requests, res.Errors, res.ErrorSamples, res.ServerCPU)
				}
			})
		}
	}
	// Keys outside what was loaded are nil: an error, never a fast success.
	res, err := Run(context.Background(), Options{Target: TargetRedisHMGET, Addr: addr, Connections: 1, Warmup: -1,
		NoVerify: true, Duration: 100 * time.Millisecond, Workload: Workload{Keyspace: 100_000, Unique: 50, Entities: 10}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors == 0 || !strings.Contains(strings.Join(res.ErrorSamples, " "), "nil values") {
		t.Errorf("errors %d %q, want nil-value errors", res.Errors, res.ErrorSamples)
	}
	_ = os.Remove(filepath.Join(dir, "dump.rdb"))
}
