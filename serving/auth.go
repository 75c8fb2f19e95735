package serving

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/featured-dev/featured/internal/auth"
)

// This file holds authentication (the Auth slot's middleware and
// interceptors, built from an *auth.Keyring), the scope each route and
// method needs, the view check of lookups, and the audit log.
//
// Authentication and authorization are split: the Auth slot says who is
// calling (or refuses with 401 / Unauthenticated) and applies the caller's
// rate and concurrency limits (429 / ResourceExhausted); the router and the
// interceptor chain know what each route needs and refuse a caller without
// it (403 / PermissionDenied naming the scope). With the Auth slot empty no
// request carries an identity and nothing is checked: auth is off.

// AuthOptions configure AuthMiddleware and AuthInterceptor.
type AuthOptions struct {
	// MetricsTokenRequired makes GET /metrics need a valid token (of any
	// scope). The default leaves it open, like the probes.
	MetricsTokenRequired bool
}

// openPath reports whether path is served without a token: the probes, and
// /metrics unless o.MetricsTokenRequired.
func (o AuthOptions) openPath(path string) bool {
	switch path {
	case "/healthz", "/livez", "/readyz":
		return true
	case "/metrics":
		return !o.MetricsTokenRequired
	}
	return false
}

// AuthMiddleware returns the HTTP Auth slot: every request but the open
// paths (probes, /metrics) must carry "Authorization: Bearer <token>" of
// an entry of k, or a verified client certificate whose subject is an
// entry's; the caller's limits are applied, and its identity put in the
// request's context for the route's scope check.
func AuthMiddleware(k *auth.Keyring, o AuthOptions) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if o.openPath(r.URL.Path) {
				next.ServeHTTP(w, r)
				return
			}
			id, err := k.Identify(bearer(r.Header.Get("Authorization")), httpSubject(r))
			if err != nil {
				w.Header().Set("WWW-Authenticate", `Bearer realm="featured"`)
				writeErrorBody(w, err)
				return
			}
			release, retry, err := id.Acquire()
			if err != nil {
				w.Header().Set("Retry-After", strconv.Itoa(int((retry+time.Second-1)/time.Second)))
				writeErrorBody(w, err)
				return
			}
			defer release()
			next.ServeHTTP(w, r.WithContext(auth.NewContext(r.Context(), id)))
		})
	}
}

// bearer returns the token of an Authorization header value, "" if it is
// not a bearer token.
func bearer(h string) string {
	const prefix = "bearer "
	if len(h) > len(prefix) && strings.EqualFold(h[:len(prefix)], prefix) {
		return strings.TrimSpace(h[len(prefix):])
	}
	return ""
}

// httpSubject is the subject of the request's verified client certificate.
func httpSubject(r *http.Request) string {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return ""
	}
	return r.TLS.VerifiedChains[0][0].Subject.String()
}

// need is the router's scope check of a route: a request that carries an
// identity without scope sc is refused, naming sc.
func (s *Server) need(sc auth.Scope) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if id := auth.FromContext(r.Context()); id != nil {
				if err := id.Require(sc, r.Method+" "+r.URL.Path); err != nil {
					s.writeError(w, r, err)
					return
				}
			}
			next.ServeHTTP(w, r)
		})
	}
}

// grpcOpen are the methods served without a token: the health service.
const grpcHealthPrefix = "/grpc.health.v1.Health/"

// grpcScopes is the scope of each gRPC method; a method not listed needs
// admin, except the health service (open) and reflection (any valid token).
var grpcScopes = map[string]auth.Scope{
	"/featured.v1.ServingService/GetOnlineFeatures":     auth.ScopeRead,
	"/feast.serving.ServingService/GetOnlineFeatures":   auth.ScopeRead,
	"/feast.serving.ServingService/GetFeastServingInfo": auth.ScopeRead,
	"/featured.v1.IngestService/Push":                   auth.ScopeWrite,
	"/featured.internal.v1.PeerService/Read":            auth.ScopeRead,
	"/featured.v1.RegistryService/ListViews":            auth.ScopeRead,
	"/featured.v1.RegistryService/GetRegistry":          auth.ScopeRead,
	"/featured.v1.RegistryService/Apply":                auth.ScopeAdmin,
	"/featured.v1.RegistryService/Plan":                 auth.ScopeAdmin,
	"/featured.v1.RegistryService/Delete":               auth.ScopeAdmin,
}

// AuthInterceptor is AuthMiddleware for gRPC: the token is the
// "authorization" metadata ("Bearer <token>"), or the verified client
// certificate's subject. The health service is open.
func AuthInterceptor(k *auth.Keyring) Interceptor {
	identify := func(ctx context.Context, method string) (context.Context, func(), error) {
		if strings.HasPrefix(method, grpcHealthPrefix) {
			return ctx, func() {}, nil
		}
		var tok string
		if md, ok := metadata.FromIncomingContext(ctx); ok {
			if v := md.Get("authorization"); len(v) > 0 {
				tok = bearer(v[0])
			}
		}
		id, err := k.Identify(tok, grpcSubject(ctx))
		if err != nil {
			return nil, nil, toGRPC(err)
		}
		release, _, err := id.Acquire()
		if err != nil {
			return nil, nil, toGRPC(err)
		}
		return auth.NewContext(ctx, id), release, nil
	}
	return Interceptor{
		Unary: func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			ctx, release, err := identify(ctx, info.FullMethod)
			if err != nil {
				return nil, err
			}
			defer release()
			return handler(ctx, req)
		},
		Stream: func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
			ctx, release, err := identify(ss.Context(), info.FullMethod)
			if err != nil {
				return err
			}
			defer release()
			return handler(srv, &ctxStream{ServerStream: ss, ctx: ctx})
		},
	}
}

type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (c *ctxStream) Context() context.Context { return c.ctx }

func grpcSubject(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return ""
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.VerifiedChains) == 0 || len(ti.State.VerifiedChains[0]) == 0 {
		return ""
	}
	return ti.State.VerifiedChains[0][0].Subject.String()
}

// unaryScope is the gRPC scope check, after the Auth slot: a call whose
// context carries an identity without the method's scope is refused.
func (s *Server) unaryScope(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if id := auth.FromContext(ctx); id != nil && !strings.HasPrefix(info.FullMethod, grpcHealthPrefix) {
		sc, ok := grpcScopes[info.FullMethod]
		if !ok {
			sc = auth.ScopeAdmin
		}
		if err := id.Require(sc, info.FullMethod); err != nil {
			return nil, toGRPC(err)
		}
	}
	return handler(ctx, req)
}

// authorizeLookup checks a resolved lookup against a view-limited
// identity: a lookup of a feature service the identity lists is allowed
// whole; any other must read only views it lists, and is refused naming the
// first that is not.
func authorizeLookup(id *auth.Identity, p *plan, req *lookupRequest) error {
	if req.hasService && id.MayReadService(string(req.str(req.service))) {
		return nil
	}
	for _, v := range p.views {
		if !id.MayReadView(v) {
			return id.ViewError(v)
		}
	}
	return nil
}

// caller names the caller of ctx for audit lines and the registry history:
// the token's name, or "" without auth.
func caller(ctx context.Context) string {
	if id := auth.FromContext(ctx); id != nil {
		return id.Name()
	}
	return ""
}

// grpcRemote is the gRPC caller's address.
func grpcRemote(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return ""
}

// audit logs one change at info level with the fixed message "audit", the
// caller (token name, "" without auth), its address and what it did.
func (s *Server) audit(ctx context.Context, remote, action string, args ...any) {
	s.opts.Logger.InfoContext(ctx, "audit", append([]any{"token", caller(ctx), "remote", remote, "action", action}, args...)...)
}
