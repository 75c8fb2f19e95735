package main

import (
	"net/http"

	"github.com/featured-dev/featured/serving"
)

// pprofMux serves the runtime profiles under /debug/pprof/ for `featured
// serve --pprof-addr`, on a listener of its own so that profiles need not be
// exposed on the API address (--pprof-on-http mounts them there too).
func pprofMux() http.Handler { return serving.PprofHandler() }
