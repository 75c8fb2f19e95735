package serving

import (
	"net/http"
	"net/http/pprof"
)

// PprofHandler serves the runtime profiles (CPU, heap, goroutines, mutex,
// block, trace) under /debug/pprof/: featured serve's --pprof-addr listener
// serves it alone, and HTTPHandler mounts it when Options.Pprof is set.
// go tool pprof http://127.0.0.1:6060/debug/pprof/profile?seconds=10
func PprofHandler() http.Handler { return pprofHandler() }

func pprofHandler() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("/debug/pprof/", pprof.Index)
	m.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	m.HandleFunc("/debug/pprof/profile", pprof.Profile)
	m.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	m.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return m
}
