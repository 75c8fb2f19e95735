package main

import (
	"net/http"
	"net/http/pprof"
)

// pprofMux serves the runtime profiles (CPU, heap, goroutines, mutex,
// block, trace) under /debug/pprof/ for `featured serve --pprof-addr`, on a
// listener of its own so that profiles are never exposed on the API
// address: go tool pprof http://127.0.0.1:6060/debug/pprof/profile?seconds=10
func pprofMux() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("/debug/pprof/", pprof.Index)
	m.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	m.HandleFunc("/debug/pprof/profile", pprof.Profile)
	m.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	m.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return m
}
