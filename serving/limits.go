package serving

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"google.golang.org/grpc"
)

// This file holds the per-class concurrency limits with load shedding and
// the per-request body and write deadlines. Both are self-contained:
// Server.Limit is a middleware for a chi route group (or any handler) and
// Server.unaryLimit a gRPC interceptor; the router (HTTPHandler) and the
// interceptor chain (GRPCServerOptions) decide where they apply.
//
// A request takes a slot of its class for as long as its handler runs. When
// every slot is taken it waits at most Options.ShedWait for one, then is
// refused: 503 with Retry-After over HTTP, RESOURCE_EXHAUSTED over gRPC.
// Refusing early keeps the server's memory within the budget that
// docs/reliability.md states (slots x a request's worst case), where
// queueing without bound would not.

// Class is a kind of request that shares one concurrency limit.
type Class int

// The classes of requests.
const (
	ClassLookup   Class = iota // lookups (HTTP and gRPC)
	ClassPush                  // pushes (HTTP and gRPC)
	ClassRegistry              // apply, plan, delete
	ClassExport                // POST /v1/export
	ClassBackfill              // POST /v1/backfill, POST /v1/verify-skew, apply?backfill=true
	ClassPeerRead              // PeerService.Read: rows forwarded by other nodes
	numClasses
)

var classNames = [numClasses]string{"lookups", "pushes", "registry changes", "exports", "backfills", "peer reads"}

// classFlags name the serve flag of each class's limit, for error messages.
var classFlags = [numClasses]string{"--max-lookups", "--max-pushes", "--max-registry-changes", "--max-exports", "--max-backfills", "--max-peer-reads"}

func (c Class) String() string {
	if c < 0 || c >= numClasses {
		return "class(" + strconv.Itoa(int(c)) + ")"
	}
	return classNames[c]
}

// ErrOverloaded is a request refused because every slot of its class was
// taken for longer than Options.ShedWait (*OverloadError).
var ErrOverloaded = errors.New("serving: overloaded")

// ErrBodyTimeout is a request body that did not arrive within its deadline
// (Options.BodyTimeout, or SpineBodyTimeout for spines).
var ErrBodyTimeout = errors.New("serving: request body too slow")

// OverloadError says which class was full.
type OverloadError struct {
	Class      Class
	Limit      int
	RetryAfter time.Duration
}

func (e *OverloadError) Error() string {
	return fmt.Sprintf("serving: overloaded: %d %s in flight, the limit (%s); retry after %s",
		e.Limit, e.Class, classFlags[e.Class], e.RetryAfter)
}

// Unwrap makes an OverloadError match ErrOverloaded.
func (e *OverloadError) Unwrap() error { return ErrOverloaded }

// limiter holds a semaphore per class. It is safe for concurrent use.
type limiter struct {
	sems       [numClasses]chan struct{}
	wait       time.Duration
	retryAfter time.Duration
}

func newLimiter(o *Options) *limiter {
	l := &limiter{wait: o.ShedWait, retryAfter: o.RetryAfter}
	for c, n := range [numClasses]int{o.MaxLookups, o.MaxPushes, o.MaxRegistryChanges, o.MaxExports, o.MaxBackfills, o.MaxPeerReads} {
		l.sems[c] = make(chan struct{}, n)
	}
	return l
}

// acquire takes a slot of class c, waiting at most l.wait; the caller calls
// release(c) when done. It fails with *OverloadError, or ctx's error.
func (l *limiter) acquire(ctx context.Context, c Class) error {
	sem := l.sems[c]
	select {
	case sem <- struct{}{}:
		return nil
	default:
	}
	t := time.NewTimer(l.wait)
	defer t.Stop()
	select {
	case sem <- struct{}{}:
		return nil
	case <-t.C:
		return &OverloadError{Class: c, Limit: cap(sem), RetryAfter: l.retryAfter}
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *limiter) release(c Class) { <-l.sems[c] }

// InFlight returns how many requests of class c hold a slot now.
func (s *Server) InFlight(c Class) int { return len(s.limits.sems[c]) }

// Limit returns a middleware that runs requests of class c within c's
// concurrency limit and sets their deadlines: the request body must arrive
// within Options.BodyTimeout (SpineBodyTimeout for exports and verify-skew,
// whose bodies are spines) and, for lookups, pushes and registry calls, the
// response must be written within Options.WriteTimeout. Exports and
// backfills stream or run for as long as they take: no write deadline.
//
// The deadlines are set with http.ResponseController on the connection, so
// the http.Server must set ReadHeaderTimeout (which resets the read
// deadline of every new request on a kept-alive connection).
func (s *Server) Limit(c Class) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return s.limitBy(func(*http.Request) Class { return c }, next)
	}
}

// limitBy is Limit with the class chosen per request.
func (s *Server) limitBy(classOf func(*http.Request) Class, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := classOf(r)
		if err := s.limits.acquire(r.Context(), c); err != nil {
			var oe *OverloadError
			if errors.As(err, &oe) {
				w.Header().Set("Retry-After", strconv.Itoa(int((oe.RetryAfter+time.Second-1)/time.Second)))
			}
			s.writeError(w, r, err)
			return
		}
		defer s.limits.release(c)
		s.setDeadlines(w, r, c)
		next.ServeHTTP(w, r)
	})
}

// setDeadlines sets the body and write deadlines of class c on r's
// connection.
func (s *Server) setDeadlines(w http.ResponseWriter, r *http.Request, c Class) {
	rc := http.NewResponseController(w)
	body := s.opts.BodyTimeout
	write := s.opts.WriteTimeout
	switch c {
	case ClassExport, ClassBackfill:
		body, write = s.opts.SpineBodyTimeout, 0
	}
	// A previous request on this connection may have left a write
	// deadline; an unset one is cleared.
	var wd time.Time
	if write > 0 {
		wd = time.Now().Add(write)
	}
	_ = rc.SetWriteDeadline(wd) // not every ResponseWriter supports it; then there is none
	if r.Body == nil || r.Body == http.NoBody || body <= 0 {
		return
	}
	if err := rc.SetReadDeadline(time.Now().Add(body)); err != nil {
		return
	}
	r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc}
}

// clearDeadlines is the middleware of routes of no class (registry reads,
// status, probes, pprof): a deadline an earlier request left on a kept-alive
// connection would otherwise cut their response, and a profile may take
// longer than any write timeout.
func clearDeadlines(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
		next.ServeHTTP(w, r)
	})
}

// deadlineBody clears the connection's read deadline once the body is read:
// net/http then reads ahead on the connection to notice a client going
// away, and a deadline passing there would cancel the request's context
// while its handler still runs.
type deadlineBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	done bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.done {
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// grpcClasses maps a gRPC method to its class; methods not listed (health,
// reflection, registry reads) are not limited.
var grpcClasses = map[string]Class{
	"/featured.v1.ServingService/GetOnlineFeatures":   ClassLookup,
	"/feast.serving.ServingService/GetOnlineFeatures": ClassLookup,
	"/featured.v1.IngestService/Push":                 ClassPush,
	"/featured.internal.v1.PeerService/Read":          ClassPeerRead,
	"/featured.v1.RegistryService/Apply":              ClassRegistry,
	"/featured.v1.RegistryService/Plan":               ClassRegistry,
	"/featured.v1.RegistryService/Delete":             ClassRegistry,
}

// unaryLimit returns the gRPC form of Limit: a request over its
// class's limit fails with RESOURCE_EXHAUSTED naming the limit. grpc-go
// decodes a message before any interceptor runs, so the memory a request
// holds before it is refused is bounded by the server's MaxRecvMsgSize and
// MaxConcurrentStreams, which the caller sets (featured serve sets them
// from --max-body-bytes and --max-lookups + --max-pushes).
func (s *Server) unaryLimit() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		c, ok := grpcClasses[info.FullMethod]
		if !ok {
			return handler(ctx, req)
		}
		if err := s.limits.acquire(ctx, c); err != nil {
			return nil, toGRPC(err)
		}
		defer s.limits.release(c)
		return handler(ctx, req)
	}
}

// clipValue returns at most maxEchoBytes of s for an error message, so that
// an error about a huge value is not itself huge.
func clipValue(s string) string {
	if len(s) <= maxEchoBytes {
		return s
	}
	cut := maxEchoBytes
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…(" + strconv.Itoa(len(s)) + " bytes)"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// maxEchoBytes bounds a value echoed in an error.
const maxEchoBytes = 64

// maxProblems bounds the problems one error lists; the rest are counted.
const maxProblems = 20

// boundProblems clips every value and drops problems past maxProblems,
// saying how many were dropped.
func boundProblems(ps []Problem) []Problem {
	if len(ps) > maxProblems {
		n := len(ps) - maxProblems
		ps = append(ps[:maxProblems:maxProblems], Problem{Field: "...", Reason: strconv.Itoa(n) + " more problems not listed"})
	}
	for i := range ps {
		ps[i].Value = clipValue(ps[i].Value)
		if len(ps[i].Field) > 4*maxEchoBytes {
			ps[i].Field = clipValue(ps[i].Field)
		}
	}
	return ps
}

func (s *Server) responseTooLarge() error {
	return fmt.Errorf("%w: over %d bytes (--max-response-bytes); ask for fewer entities or features", ErrResponseTooLarge, s.opts.MaxResponseBytes)
}

// maxMessageBytes bounds an error response's message.
const maxMessageBytes = 4096

// clipMessage bounds an error message, whatever built it.
func clipMessage(s string) string {
	if len(s) <= maxMessageBytes {
		return s
	}
	cut := maxMessageBytes
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…(" + strconv.Itoa(len(s)) + " bytes)"
}

// applyClass is the class of POST /v1/apply: a backfill when it asks for
// one (it runs as long as reading the log takes), else a registry change.
func applyClass(r *http.Request) Class {
	if on, _ := strconv.ParseBool(r.URL.Query().Get("backfill")); on {
		return ClassBackfill
	}
	return ClassRegistry
}
