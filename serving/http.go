package serving

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/featured-dev/featured/internal/auth"
	"github.com/featured-dev/featured/internal/jsoncheck"
)

// Middleware are the router's hook slots: each wraps every route, offline
// routes, probes, pprof, 404s and 405s included. The order is fixed:
//
//	recovery -> Metrics -> Auth -> the route's class limit -> handler
//
// so that a panic anywhere, a slot's included, is a logged 500 in the error
// shape; Metrics sees every request, those Auth refuses too; and a request
// Auth refuses never takes a slot of its class. A nil field is an empty
// slot. An Auth that must let probes through (/livez, /readyz) exempts them
// itself. A slot that wraps the ResponseWriter must unwrap to it (an Unwrap
// method, for http.ResponseController) and keep http.Flusher: the class
// limits set deadlines through it and exports stream through it.
type Middleware struct {
	Metrics func(http.Handler) http.Handler
	Auth    func(http.Handler) http.Handler
}

// OfflineRoutes are the handlers of the offline routes, which package
// offline provides (offline.ExportHandler, BackfillHandler and
// VerifySkewHandler). A handler returns its error instead of writing it:
// the router writes it in the one error shape, with the status from
// errors.go. A handler that has begun its response handles its own errors
// (an export cuts the connection). A nil handler leaves its route
// unmounted.
type OfflineRoutes struct {
	Export     func(http.ResponseWriter, *http.Request) error // POST /v1/export, class ClassExport
	Backfill   func(http.ResponseWriter, *http.Request) error // POST /v1/backfill, class ClassBackfill
	VerifySkew func(http.ResponseWriter, *http.Request) error // POST /v1/verify-skew, class ClassBackfill
}

// HTTPHandler returns the HTTP API, every route of featured serve's HTTP
// address on one router:
//
//	POST   /get-online-features        Feast's lookup (request and response as Feast's)
//	POST   /v1/features                the native lookup (row-major response)
//	POST   /v1/push                    push events into a push source
//	POST   /push                       Feast's push (a columnar df into a push source)
//	POST   /write-to-online-store      Feast's online write (a pass-through view's values)
//	POST   /v1/apply[?backfill=true]   apply definitions (YAML or JSON by Content-Type);
//	                                   backfill: then build each view version it created
//	                                   from the offline log (Options.Backfill)
//	POST   /v1/plan                    what apply would change
//	GET    /v1/registry                every live definition and view version
//	GET    /v1/registry/history        who applied and deleted what (admin)
//	DELETE /v1/views/{name}[?version=N]
//	DELETE /v1/sources/{name}, /v1/entities/{name}, /v1/services/{name}
//	POST   /v1/export, /v1/backfill, /v1/verify-skew   Options.Offline
//	POST   /v1/backup                  a consistent backup to a destination (Options.Backup)
//	GET    /v1/status                  ingest, Kafka lag, freshness, store counters
//	POST   /v1/cluster/drain           drain this node, then leave the cluster (Options.Cluster)
//	GET    /livez, /healthz            the process is up
//	GET    /readyz[?verbose]           ready to serve (SetReady, Store.Ready, Options.ReadyChecks)
//	GET    /debug/pprof/...            net/http/pprof, when Options.Pprof
//
// Every route runs behind the one middleware stack (Middleware) and names
// the scope it needs (auth.go): lookups and GET /v1/registry read, push
// write, everything else admin; the probes none. Errors,
// 404 and 405 included, are JSON: {"error":{"status":400,"message":"...",
// "problems":[{"field":"features[1]","value":"user_spend:nope","reason":"unknown feature"}]}}.
func (s *Server) HTTPHandler() http.Handler {
	r := chi.NewRouter()
	r.Use(s.recoverer)
	if m := s.opts.Middleware.Metrics; m != nil {
		r.Use(m)
	}
	if m := s.opts.Middleware.Auth; m != nil {
		r.Use(m)
	}
	// Concurrency limits and deadlines per class (limits.go); routes of no
	// class clear the deadlines an earlier request on the connection set.
	// Each route names the scope it needs (need) before its class limit,
	// so a refused request takes no slot.
	read, write, admin := s.need(auth.ScopeRead), s.need(auth.ScopeWrite), s.need(auth.ScopeAdmin)
	r.With(read, s.Limit(ClassLookup)).Post("/get-online-features", s.handleFeastLookup)
	r.With(read, s.Limit(ClassLookup)).Post("/v1/features", s.handleNativeLookup)
	r.With(write, s.Limit(ClassPush)).Post("/v1/push", s.handlePush)
	r.With(write, s.Limit(ClassPush)).Post("/push", s.handleFeastPush)
	r.With(write, s.Limit(ClassPush)).Post("/write-to-online-store", s.handleFeastWrite)
	r.With(admin).Post("/v1/apply", s.limitBy(applyClass, http.HandlerFunc(s.handleApply)).ServeHTTP)
	r.Group(func(r chi.Router) {
		r.Use(admin, s.Limit(ClassRegistry))
		r.Post("/v1/plan", s.handlePlan)
		r.Delete("/v1/views/{name}", s.handleDelete(kindView))
		r.Delete("/v1/sources/{name}", s.handleDelete(kindSource))
		r.Delete("/v1/entities/{name}", s.handleDelete(kindEntity))
		r.Delete("/v1/services/{name}", s.handleDelete(kindService))
	})
	offline := func(path string, c Class, h func(http.ResponseWriter, *http.Request) error) {
		if h != nil {
			r.With(admin, s.Limit(c)).Post(path, s.handleErr(spineDeadline(s.audited(h))))
		}
	}
	offline("/v1/export", ClassExport, s.opts.Offline.Export)
	offline("/v1/backfill", ClassBackfill, s.opts.Offline.Backfill)
	offline("/v1/verify-skew", ClassBackfill, s.opts.Offline.VerifySkew)
	if h := s.opts.Backup; h != nil {
		// A backup uploads for as long as the store is large: no deadline.
		// Admin only, and audited: it reads every entity and writes
		// wherever the request's dest says.
		r.With(admin, clearDeadlines).Post("/v1/backup", s.handleErr(s.audited(h)))
	}
	r.Group(func(r chi.Router) {
		r.Use(clearDeadlines)
		r.With(read).Get("/v1/registry", s.handleRegistry)
		r.With(admin).Get("/v1/registry/history", s.handleHistory)
		r.With(admin).Get("/v1/status", s.handleStatus)
		if s.opts.Cluster != nil {
			r.With(admin).Post("/v1/cluster/drain", s.handleErr(s.audited(s.handleDrain)))
		}
		r.Get("/healthz", s.handleLivez)
		r.Get("/livez", s.handleLivez)
		r.Get("/readyz", s.handleReadyz)
		if s.opts.Pprof {
			r.With(admin).Mount("/debug/pprof", pprofHandler())
		}
	})
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, fmt.Errorf("%w: no route %s %s", errNoRoute, r.Method, r.URL.Path))
	})
	mux := r
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		allow := allowedMethods(mux, r.URL.Path)
		w.Header().Set("Allow", strings.Join(allow, ", "))
		s.writeError(w, r, fmt.Errorf("%w: %s %s; this route takes %s", errMethod, r.Method, r.URL.Path, strings.Join(allow, ", ")))
	})
	return r
}

// allowedMethods lists the methods path has a route for, for a 405's Allow
// header (RFC 9110 15.5.6). Only 405s pay for it.
func allowedMethods(mux chi.Routes, path string) []string {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		if mux.Match(chi.NewRouteContext(), m, path) {
			allow = append(allow, m)
		}
	}
	return allow
}

// handleErr adapts a handler that returns its error to the router's error
// writer. Once the handler has begun its response (an export streaming
// Arrow), an error or a panic can no longer become an error response: JSON
// after the stream's bytes would corrupt it into something a reader might
// take for data. It is logged and the connection cut instead, so the client
// sees a truncated response.
func (s *Server) handleErr(h func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		bw := &beganWriter{ResponseWriter: w}
		defer func() {
			if v := recover(); v != nil {
				if v != http.ErrAbortHandler && bw.began {
					s.opts.Logger.Error("serving: panic after the response began; connection cut", "method", r.Method, "path", r.URL.Path,
						"panic", v, "stack", string(debug.Stack()))
					panic(http.ErrAbortHandler)
				}
				panic(v) // the recoverer answers it
			}
		}()
		err := h(bw, r)
		switch {
		case err == nil:
		case bw.began:
			s.opts.Logger.Error("serving: error after the response began; connection cut", "method", r.Method, "path", r.URL.Path, "err", err)
			panic(http.ErrAbortHandler)
		default:
			s.writeError(w, r, err)
		}
	}
}

// beganWriter notes whether a response has begun. It unwraps for
// http.ResponseController and flushes, as exports need.
type beganWriter struct {
	http.ResponseWriter
	began bool
}

func (b *beganWriter) WriteHeader(code int) {
	if code >= 200 {
		b.began = true
	}
	b.ResponseWriter.WriteHeader(code)
}

func (b *beganWriter) Write(p []byte) (int, error) {
	b.began = true
	return b.ResponseWriter.Write(p)
}

func (b *beganWriter) Flush() {
	b.began = true
	_ = http.NewResponseController(b.ResponseWriter).Flush()
}

func (b *beganWriter) Unwrap() http.ResponseWriter { return b.ResponseWriter }

// recoverer turns a panic in a handler or a middleware slot into a logged
// 500, so that one bad request cannot take the connection (or, under a
// test, the process) down. http.ErrAbortHandler passes through: it is how a
// handler cuts a response it has begun (an export). No input is known to
// panic; the decoders are fuzzed.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.opts.Logger.Error("serving: panic in handler", "method", r.Method, "path", r.URL.Path, "panic", v,
					"stack", string(debug.Stack()))
				s.writeError(w, r, fmt.Errorf("serving: internal error: %v", v))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// Shared header values: assigning these slices, instead of Header().Set,
// saves an allocation per response; net/http only reads them.
var (
	hdrJSON = []string{"application/json"}
	hdrText = []string{"text/plain; charset=utf-8"}
)

func (s *Server) handleFeastLookup(w http.ResponseWriter, r *http.Request) {
	// Feast's server reads the body whatever its Content-Type (curl -d sends
	// application/x-www-form-urlencoded), and so does this endpoint.
	s.serveLookup(w, r, true)
}

func (s *Server) handleNativeLookup(w http.ResponseWriter, r *http.Request) {
	if err := requireJSON(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.serveLookup(w, r, false)
}

func (s *Server) serveLookup(w http.ResponseWriter, r *http.Request, feast bool) {
	l := s.getLookup()
	defer s.putLookup(l)
	// Feast's endpoint answers errors in Feast's shape (feast_errors.go).
	writeError := s.writeError
	if feast {
		writeError = s.writeFeastError
	}
	var err error
	l.body, err = readBody(r, l.body[:0], s.opts.MaxBodyBytes)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if err := decodeLookup(l.body, &l.req, s.opts.MaxFeatures, s.opts.MaxEntities); err != nil {
		writeError(w, r, err)
		return
	}
	routed := s.opts.Placement != nil
	if routed {
		l.authz = r.Header.Get("Authorization")
	}
	if v := r.Header.Get(StalenessHeader); v != "" {
		d, err := parseStaleness("header "+StalenessHeader, v)
		if err != nil {
			writeError(w, r, err)
			return
		}
		l.req.maxStaleness = tighter(l.req.maxStaleness, d)
	}
	p, at, err := s.lookupDecoded(r.Context(), l, feast)
	if err != nil {
		writeError(w, r, err)
		return
	}
	api := APINative
	if feast {
		api = APIFeast
	}
	s.observe(r.Context(), api, l, p)
	var ok bool
	if feast {
		l.buf, ok = appendFeastResponseLimit(l.buf[:0], p, &l.req, l.out, s.opts.MaxResponseBytes)
	} else {
		l.buf, ok = appendNativeResponseLimit(l.buf[:0], p, &l.req, l.out, at, s.opts.MaxResponseBytes)
	}
	if !ok {
		writeError(w, r, s.responseTooLarge())
		return
	}
	if routed {
		// Positions only from a node in a cluster: a single node's
		// responses stay byte for byte what they were.
		if feast {
			w.Header()["Featured-Positions"] = []string{string(appendPositionsJSON(nil, l.route.positions))}
		} else {
			l.buf = append(l.buf[:len(l.buf)-1], `,"positions":`...)
			l.buf = append(appendPositionsJSON(l.buf, l.route.positions), '}')
		}
	}
	writeJSON(w, http.StatusOK, l.buf)
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header()["Content-Type"] = hdrJSON
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// readBody appends the request body to dst, failing with ErrBodyTooLarge past
// limit bytes.
func readBody(r *http.Request, dst []byte, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return dst, fmt.Errorf("%w: %d bytes, the limit is %d", ErrBodyTooLarge, r.ContentLength, limit)
	}
	if r.ContentLength > 0 && int64(cap(dst)-len(dst)) < r.ContentLength+1 {
		dst = append(make([]byte, 0, int64(len(dst))+r.ContentLength+1), dst...)
	}
	if cap(dst) == 0 {
		dst = make([]byte, 0, 4096)
	}
	for {
		if len(dst) == cap(dst) {
			dst = append(dst, 0)[:len(dst)]
		}
		n, err := r.Body.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if int64(len(dst)) > limit {
			return dst, fmt.Errorf("%w: over %d bytes", ErrBodyTooLarge, limit)
		}
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return dst, fmt.Errorf("%w: over %d bytes", ErrBodyTooLarge, mbe.Limit)
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return dst, fmt.Errorf("%w: %d bytes arrived before the body deadline (--body-timeout)", ErrBodyTimeout, len(dst))
			}
			return dst, fmt.Errorf("%w: read body: %v", ErrBadRequest, err)
		}
	}
}

// mediaType returns the request's media type, lower case, without
// parameters; "" when there is no Content-Type.
func mediaType(r *http.Request) (string, error) {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return "", nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return "", fmt.Errorf("%w: Content-Type %q: %v", ErrUnsupportedMediaType, ct, err)
	}
	return mt, nil
}

// requireJSON accepts a JSON body: Content-Type application/json (or
// anything ending in +json), or none at all.
func requireJSON(r *http.Request) error {
	mt, err := mediaType(r)
	if err != nil {
		return err
	}
	if mt == "" || mt == "application/json" || (len(mt) > 5 && mt[len(mt)-5:] == "+json") {
		return nil
	}
	return fmt.Errorf("%w: Content-Type %q; send application/json", ErrUnsupportedMediaType, mt)
}

// setRetryAfter tells a client refused for a partition no replica answered
// when to retry (docs/scaling.md, Routing: 503 with Retry-After).
func setRetryAfter(w http.ResponseWriter, err error, d time.Duration) {
	if errors.Is(err, ErrUnavailable) {
		w.Header().Set("Retry-After", strconv.Itoa(int((d+time.Second-1)/time.Second)))
	}
}

// errorBody is the JSON of an error response.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Status   int       `json:"status"`
	Message  string    `json:"message"`
	Problems []Problem `json:"problems,omitempty"`
}

// writeError writes err as a JSON error response with its status from the
// error table. Internal errors are logged; their text is still returned, as
// it names no secret and helps the operator.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	st := httpStatus(err)
	setRetryAfter(w, err, s.opts.RetryAfter)
	// 503, 504 and 507 are states the server reports elsewhere (readiness,
	// the client's deadline, the disk guard's own log line), not faults.
	if st >= 500 && st != http.StatusServiceUnavailable && st != http.StatusGatewayTimeout && st != http.StatusInsufficientStorage {
		s.opts.Logger.Error("serving: internal error", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeErrorBody(w, err)
}

// writeErrorBody writes err in the one error shape, without logging.
func writeErrorBody(w http.ResponseWriter, err error) {
	st := httpStatus(err)
	body, _ := json.Marshal(errorBody{Error: errorDetail{Status: st, Message: clipMessage(err.Error()), Problems: boundProblems(problemsOf(err))}})
	writeJSON(w, st, body)
}

// decodeStrict decodes a JSON body into v with encoding/json, rejecting
// unknown fields; errors become *SyntaxError naming the offset and field.
func decodeStrict(body []byte, v any) error { return decodeJSON(body, v, true) }

// decodeJSON is decodeStrict, with unknown fields refused only when
// strict (Feast's routes ignore fields they do not know, as Feast does).
func decodeJSON(body []byte, v any, strict bool) error {
	dec := json.NewDecoder(bytesReader(body))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return jsonError(dec, err)
	}
	if dec.More() {
		return &SyntaxError{Offset: int(dec.InputOffset()), Msg: "unexpected data after the JSON value"}
	}
	// What encoding/json lets through (lone surrogates, bad UTF-8, repeated
	// keys): refused alike on every path.
	var je *jsoncheck.Error
	if err := jsoncheck.Check(body); errors.As(err, &je) {
		return &SyntaxError{Offset: je.Offset, Msg: je.Msg}
	}
	return nil
}

func jsonError(dec *json.Decoder, err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return &SyntaxError{Offset: int(se.Offset), Msg: se.Error()}
	case errors.As(err, &te):
		return &SyntaxError{Offset: int(te.Offset), Field: te.Field, Msg: "expected " + te.Type.String() + ", found JSON " + te.Value}
	case errors.Is(err, io.EOF):
		return &SyntaxError{Msg: "empty body"}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &SyntaxError{Offset: int(dec.InputOffset()), Msg: "unexpected end of body"}
	default:
		// DisallowUnknownFields: `json: unknown field "x"`.
		return &SyntaxError{Offset: int(dec.InputOffset()), Msg: err.Error()}
	}
}

func parseVersion(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 {
		return 0, &RequestError{Problems: []Problem{{Field: "version", Value: s, Reason: "not a version number (1, 2, ...)"}}}
	}
	return v, nil
}

// spineDeadline names the error of an offline handler whose request body
// (a spine) did not arrive before --spine-body-timeout: the handler sees
// only the read's os.ErrDeadlineExceeded.
func spineDeadline(h func(http.ResponseWriter, *http.Request) error) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		err := h(w, r)
		if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("%w: the spine did not arrive before the body deadline (--spine-body-timeout): %w", ErrBodyTimeout, err)
		}
		return err
	}
}
