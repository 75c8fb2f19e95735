package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The trivial server answers every POST with a fixed Feast-shaped response
// of the given workload's size (all values 1) after reading the body, and
// does nothing else. Driving it shows what the generator itself can reach
// and what it costs per request, the baseline that proves the generator is
// not what limits a run against a real server.

// trivialResponse is a Feast response body for entities x features.
func trivialResponse(entities, features int) []byte {
	var b strings.Builder
	b.WriteString(`{"metadata":{"feature_names":["entity"`)
	for f := range features {
		b.WriteString(`,"` + FeatureName(f) + `"`)
	}
	b.WriteString(`]},"results":[`)
	for c := 0; c <= features; c++ {
		if c > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"values":[`)
		for e := range entities {
			if e > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Itoa(1 + e))
		}
		b.WriteString(`],"statuses":[`)
		for e := range entities {
			if e > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`"PRESENT"`)
		}
		b.WriteString(`],"event_timestamps":[`)
		for e := range entities {
			if e > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`"2026-11-24T10:00:00Z"`)
		}
		b.WriteString(`]}`)
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}

// trivialHandler reads the request body and writes body.
func trivialHandler(body []byte) http.Handler {
	ct := []string{"application/json"}
	cl := []string{strconv.Itoa(len(body))}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header()["Content-Type"] = ct
		w.Header()["Content-Length"] = cl
		_, _ = w.Write(body)
	})
}

// serveTrivial serves trivialHandler on ln until ctx ends.
func serveTrivial(ctx context.Context, ln net.Listener, body []byte) error {
	srv := &http.Server{Handler: trivialHandler(body), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-errc
		return nil
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	}
}
