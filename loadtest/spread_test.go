package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// Several addresses are one system's nodes: every node gets connections,
// and every node's first answer is checked, so a node without the data
// fails the run instead of hiding behind the others.
func TestSpreadOverNodes(t *testing.T) {
	var nodes []*arrivals
	var addrs []string
	for range 3 {
		a, addr := newArrivals(t, 0)
		nodes = append(nodes, a)
		addrs = append(addrs, addr)
	}
	res, err := Run(context.Background(), Options{
		Target: TargetTrivial, Addr: strings.Join(addrs, ","), Connections: 6,
		Warmup: -1, Duration: 300 * time.Millisecond, Workload: Workload{Unique: 10},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests == 0 || res.Errors != 0 {
		t.Fatalf("requests %d, errors %d; want some, 0 (%v)", res.Requests, res.Errors, res.ErrorSamples)
	}
	for i, a := range nodes {
		a.mu.Lock()
		n := len(a.times)
		a.mu.Unlock()
		if n == 0 {
			t.Errorf("node %d (%s) saw no requests", i, addrs[i])
		}
	}

	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no data", http.StatusServiceUnavailable)
	}))
	t.Cleanup(broken.Close)
	bad := strings.TrimPrefix(broken.URL, "http://")
	_, err = Run(context.Background(), Options{
		Target: TargetTrivial, Addr: addrs[0] + "," + bad, Connections: 2,
		Warmup: -1, Duration: 100 * time.Millisecond,
	})
	if err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("a node answering 503: err %v, want the run refused naming %s", err, bad)
	}

	if _, err := Run(context.Background(), Options{Target: TargetTrivial, Addr: strings.Join(addrs, ","), Connections: 2}); err == nil {
		t.Error("3 addresses, 2 connections: want a -addr error")
	}
}
