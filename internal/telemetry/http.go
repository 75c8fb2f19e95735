package telemetry

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// durationBuckets are http.server.request.duration's boundaries, in
// seconds: the semantic conventions' (5ms to 10s) below which lookups
// measured in tens of microseconds get buckets of their own.
var durationBuckets = []float64{
	0.0001, 0.00025, 0.0005, 0.001, 0.0025,
	0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10,
}

type httpInstruments struct {
	duration metric.Float64Histogram

	mu   sync.RWMutex
	sets map[httpKey][]metric.RecordOption // one element, passed with ... (see lookupOptions)
}

// httpKey is one attribute set of http.server.request.duration. Routes are
// chi patterns and methods a fixed list, so the map stays small.
type httpKey struct {
	method, route string
	status        int
}

func (h *httpInstruments) init(m metric.Meter) error {
	var err error
	h.duration, err = m.Float64Histogram("http.server.request.duration",
		metric.WithUnit("s"),
		metric.WithDescription("Duration of HTTP server requests."),
		metric.WithExplicitBucketBoundaries(durationBuckets...))
	h.sets = make(map[httpKey][]metric.RecordOption)
	return err
}

// option returns the pre-built attribute set of k: built once, with
// attribute.NewSet, the first time k is seen.
func (h *httpInstruments) option(k httpKey) []metric.RecordOption {
	h.mu.RLock()
	o, ok := h.sets[k]
	h.mu.RUnlock()
	if ok {
		return o
	}
	kvs := []attribute.KeyValue{
		attribute.String("http.request.method", k.method),
		attribute.Int("http.response.status_code", k.status),
		attribute.String("url.scheme", "http"),
	}
	if k.route != "" {
		kvs = append(kvs, attribute.String("http.route", k.route))
	}
	if k.status >= 500 {
		kvs = append(kvs, attribute.String("error.type", strconv.Itoa(k.status)))
	}
	o = []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(kvs...))}
	h.mu.Lock()
	h.sets[k] = o
	h.mu.Unlock()
	return o
}

// knownMethod bounds http.request.method as the conventions say: anything
// else is "_OTHER".
func knownMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodHead,
		http.MethodPatch, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "_OTHER"
}

// statusWriter records the status a handler wrote. Pooled: a lookup's
// measurement allocates nothing.
type statusWriter struct {
	http.ResponseWriter
	status int
}

var statusWriters = sync.Pool{New: func() any { return new(statusWriter) }}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush keeps http.Flusher for exports that stream.
func (w *statusWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection (deadlines).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Hijack keeps http.Hijacker for whoever needs the connection.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if h, ok := w.ResponseWriter.(http.Hijacker); ok {
		return h.Hijack()
	}
	return nil, nil, errors.New("telemetry: response writer is not a http.Hijacker")
}

// HTTPMiddleware is serving.Middleware.Metrics: it records
// http.server.request.duration for every request, labelled with the chi
// route pattern (read after routing, so a request that matched no route
// has no http.route), and, when tracing is on, starts a server span that
// continues the caller's W3C trace context and is named "METHOD route".
// The metric path allocates nothing per request once a route's attribute
// set is built; only a traced request pays for its span.
func (t *Telemetry) HTTPMiddleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		method := knownMethod(r.Method)
		var span trace.Span
		if t.tracers != nil {
			ctx := t.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
			ctx, span = t.tracer.Start(ctx, method, trace.WithSpanKind(trace.SpanKindServer),
				trace.WithAttributes(attribute.String("http.request.method", method), attribute.String("url.path", r.URL.Path)))
			r = r.WithContext(ctx)
		}
		sw := statusWriters.Get().(*statusWriter)
		sw.ResponseWriter, sw.status = w, 0
		defer func() {
			status := sw.status
			p := recover()
			switch {
			case p != nil:
				// The recovery outside this slot answers 500.
				status = http.StatusInternalServerError
			case status == 0:
				status = http.StatusOK
			}
			sw.ResponseWriter = nil
			statusWriters.Put(sw)
			var route string
			if rc := chi.RouteContext(r.Context()); rc != nil {
				route = rc.RoutePattern()
			}
			if span != nil {
				if route != "" {
					span.SetName(method + " " + route)
					span.SetAttributes(attribute.String("http.route", route))
				}
				span.SetAttributes(attribute.Int("http.response.status_code", status))
				if status >= 500 {
					span.SetStatus(codesError, strconv.Itoa(status))
				}
				span.End()
			}
			t.http.duration.Record(r.Context(), time.Since(start).Seconds(), t.http.option(httpKey{method: method, route: route, status: status})...)
			if p != nil {
				panic(p)
			}
		}()
		next.ServeHTTP(sw, r)
	})
}
