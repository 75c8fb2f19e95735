package telemetry_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-chi/chi/v5"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/featured-dev/featured/internal/telemetry"
)

// TestHTTPSpans checks that the middleware names a span by the chi route
// after routing and continues the caller's W3C trace context.
func TestHTTPSpans(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tel, err := telemetry.New(context.Background(), telemetry.Options{TraceSampleRatio: 1, SpanExporter: exp})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	r := chi.NewRouter()
	r.Use(tel.HTTPMiddleware)
	var inner trace.SpanContext
	r.Post("/v1/views/{name}", func(w http.ResponseWriter, r *http.Request) {
		_, span := tel.Tracer().Start(r.Context(), "child")
		inner = span.SpanContext()
		span.End()
		w.WriteHeader(http.StatusTeapot)
	})
	srv := httptest.NewServer(r)
	defer srv.Close()
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/views/spend", nil)
	req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	spans := exp.GetSpans()
	if len(spans) != 2 {
		t.Fatalf("got %d spans, want child and server: %v", len(spans), spans)
	}
	child, server := spans[0], spans[1]
	if server.Name != "POST /v1/views/{name}" || server.SpanKind != trace.SpanKindServer {
		t.Errorf("server span %q kind %v, want %q server", server.Name, server.SpanKind, "POST /v1/views/{name}")
	}
	if got := server.SpanContext.TraceID().String(); got != traceID {
		t.Errorf("server span trace %s, want the caller's %s", got, traceID)
	}
	if got := server.Parent.SpanID().String(); got != "00f067aa0ba902b7" || !server.Parent.IsRemote() {
		t.Errorf("server span parent %s (remote %v), want the caller's span", got, server.Parent.IsRemote())
	}
	if child.Parent.SpanID() != server.SpanContext.SpanID() || child.SpanContext.SpanID() != inner.SpanID() {
		t.Errorf("child span's parent %s, want the server span %s", child.Parent.SpanID(), server.SpanContext.SpanID())
	}
}

// TestNoTracingByDefault: without a sample ratio nothing is recorded.
func TestNoTracingByDefault(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tel, err := telemetry.New(context.Background(), telemetry.Options{SpanExporter: exp})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	h := tel.HTTPMiddleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/livez", nil))
	if tel.Tracing() || len(exp.GetSpans()) != 0 {
		t.Errorf("tracing %v, %d spans; want none", tel.Tracing(), len(exp.GetSpans()))
	}
}
