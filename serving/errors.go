package serving

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"syscall"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/featured-dev/featured/featurestore"
	"github.com/featured-dev/featured/ingest"
	"github.com/featured-dev/featured/internal/auth"
	"github.com/featured-dev/featured/internal/diskguard"
	"github.com/featured-dev/featured/offline"
	"github.com/featured-dev/featured/offline/eventlog"
	"github.com/featured-dev/featured/offline/export"
	"github.com/featured-dev/featured/registry"
)

// Sentinel errors of the serving layer. Every error a handler returns is
// matched against errorTable with errors.Is.
var (
	// ErrBadRequest is a request that cannot be served as sent: malformed
	// JSON (*SyntaxError), unknown features, views, versions or services, an
	// entity key that is not the views' join key (*RequestError).
	ErrBadRequest = errors.New("serving: bad request")
	// ErrLimit is a request over one of Options' limits (*LimitError).
	ErrLimit = errors.New("serving: request over a limit")
	// ErrBodyTooLarge is a request body over Options.MaxBodyBytes.
	ErrBodyTooLarge = errors.New("serving: request body too large")
	// ErrUnsupportedMediaType is a body whose Content-Type the endpoint does
	// not read.
	ErrUnsupportedMediaType = errors.New("serving: unsupported content type")
	// ErrResponseTooLarge is a lookup whose response passed
	// Options.MaxResponseBytes; it matches ErrLimit.
	ErrResponseTooLarge = fmt.Errorf("%w: response too large", ErrLimit)
	// ErrNotReady is returned while the server is not ready (SetReady(false)).
	ErrNotReady = errors.New("serving: not ready")
	// ErrClusterUnsupported: what a single node does but a cluster node
	// cannot do yet, such as an export, which would see only the partitions
	// this node holds (501 / Unimplemented).
	ErrClusterUnsupported = errors.New("serving: not available in cluster mode")

	// ErrUnauthenticated is a request without a valid token (or client
	// certificate) when auth is on; ErrPermissionDenied one whose token
	// lacks the scope or view it needs (the error names it);
	// ErrRateLimited one over its token's rate or concurrency.
	ErrUnauthenticated  = auth.ErrUnauthenticated
	ErrPermissionDenied = auth.ErrPermissionDenied
	ErrRateLimited      = auth.ErrRateLimited

	errNoRoute = errors.New("serving: not found")
	errMethod  = errors.New("serving: method not allowed")
)

// errorTable maps errors to HTTP statuses and gRPC codes, for every route
// and method of both transports (offline's included): the first row whose
// error errors.Is matches wins, so more specific rows come first. Anything
// else is 500 / Internal. Context errors map to 499 / Canceled and 504 /
// DeadlineExceeded; errors that already carry a gRPC status keep it.
var errorTable = []struct {
	err      error
	httpCode int
	grpcCode codes.Code
}{
	{ErrUnauthenticated, http.StatusUnauthorized, codes.Unauthenticated},
	{ErrPermissionDenied, http.StatusForbidden, codes.PermissionDenied},
	{ErrRateLimited, http.StatusTooManyRequests, codes.ResourceExhausted},
	{ErrBadRequest, http.StatusBadRequest, codes.InvalidArgument},
	{ErrLimit, http.StatusBadRequest, codes.InvalidArgument},
	{ErrBodyTooLarge, http.StatusRequestEntityTooLarge, codes.ResourceExhausted},
	{ErrUnsupportedMediaType, http.StatusUnsupportedMediaType, codes.InvalidArgument},
	{ErrNotReady, http.StatusServiceUnavailable, codes.Unavailable},
	{ErrClusterUnsupported, http.StatusNotImplemented, codes.Unimplemented},
	{ErrUnavailable, http.StatusServiceUnavailable, codes.Unavailable},
	{ErrOverloaded, http.StatusServiceUnavailable, codes.ResourceExhausted},
	{ErrBodyTimeout, http.StatusRequestTimeout, codes.DeadlineExceeded},
	// The disk is (nearly) full: writes wait for space, lookups go on.
	// 507 Insufficient Storage (RFC 4918) says exactly that.
	{diskguard.ErrDiskFull, http.StatusInsufficientStorage, codes.ResourceExhausted},
	{syscall.ENOSPC, http.StatusInsufficientStorage, codes.ResourceExhausted},
	{errNoRoute, http.StatusNotFound, codes.Unimplemented},
	{errMethod, http.StatusMethodNotAllowed, codes.Unimplemented},

	// Before the registry rows: an export naming an unknown feature is bad
	// input (400), as a lookup naming one is; a spine over the size limit
	// is a body too large (413), as a lookup's is.
	{offline.ErrSpineTooLarge, http.StatusRequestEntityTooLarge, codes.ResourceExhausted},
	{export.ErrBadInput, http.StatusBadRequest, codes.InvalidArgument},

	// A lookup whose entity's data is damaged on disk (the error names the
	// shard): DataLoss says what happened; the shard fails readiness too
	// (the "store" check), so the load balancer moves traffic elsewhere.
	{featurestore.ErrCorrupt, http.StatusInternalServerError, codes.DataLoss},
	// An export or backfill that needs offline log data that is damaged
	// (the error names the file and the way out; /v1/status
	// offline_log[i].damaged lists quarantined WAL files).
	{eventlog.ErrDamaged, http.StatusInternalServerError, codes.DataLoss},
	{eventlog.ErrCorrupt, http.StatusInternalServerError, codes.DataLoss},

	{ingest.ErrAtomicRejected, http.StatusUnprocessableEntity, codes.InvalidArgument},
	{ingest.ErrBadBatchID, http.StatusBadRequest, codes.InvalidArgument},
	{ingest.ErrAtomicUnsupported, http.StatusBadRequest, codes.FailedPrecondition},
	// Before the context rows: a push journaled when its context ended is
	// applied all the same, and the client must hear so.
	{featurestore.ErrJournaled, http.StatusServiceUnavailable, codes.Unavailable},
	{ingest.ErrUnknownSource, http.StatusNotFound, codes.NotFound},
	{ingest.ErrNotPushSource, http.StatusBadRequest, codes.FailedPrecondition},
	{ingest.ErrBatchTooLarge, http.StatusRequestEntityTooLarge, codes.InvalidArgument},
	{ingest.ErrEmptyBatch, http.StatusBadRequest, codes.InvalidArgument},

	{registry.ErrInvalid, http.StatusBadRequest, codes.InvalidArgument},
	{registry.ErrBadRef, http.StatusBadRequest, codes.InvalidArgument},
	{registry.ErrInUse, http.StatusConflict, codes.FailedPrecondition},
	{registry.ErrUnknownService, http.StatusNotFound, codes.NotFound},
	{registry.ErrUnknownView, http.StatusNotFound, codes.NotFound},
	{registry.ErrUnknownVersion, http.StatusNotFound, codes.NotFound},
	{registry.ErrUnknownFeature, http.StatusNotFound, codes.NotFound},
	{registry.ErrUnknownSource, http.StatusNotFound, codes.NotFound},
	{registry.ErrUnknownEntity, http.StatusNotFound, codes.NotFound},
	{registry.ErrClosed, http.StatusServiceUnavailable, codes.Unavailable},

	// The client went away or its deadline passed: pass the context error
	// through. 499 is nginx's "client closed request".
	{context.Canceled, 499, codes.Canceled},
	{context.DeadlineExceeded, http.StatusGatewayTimeout, codes.DeadlineExceeded},
}

// httpStatus returns the HTTP status for err.
func httpStatus(err error) int {
	for _, row := range errorTable {
		if errors.Is(err, row.err) {
			return row.httpCode
		}
	}
	return http.StatusInternalServerError
}

// grpcCode returns the gRPC code for err.
func grpcCode(err error) codes.Code {
	for _, row := range errorTable {
		if errors.Is(err, row.err) {
			return row.grpcCode
		}
	}
	return codes.Internal
}

// toGRPC turns err into a gRPC status error. An error that already is a
// status keeps it.
func toGRPC(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(grpcCode(err), clipMessage(err.Error()))
}

// Problem is one bad item of a request: the field that holds it (a path such
// as features[2] or entities.user_id), the offending value as sent, and why.
type Problem struct {
	Field  string `json:"field"`
	Value  string `json:"value,omitempty"`
	Reason string `json:"reason"`
}

func (p Problem) String() string {
	if p.Value == "" {
		return p.Field + ": " + p.Reason
	}
	return p.Field + " " + strconv.Quote(p.Value) + ": " + p.Reason
}

// RequestError is a request that names things that do not exist or do not fit
// together. It lists every problem found, not just the first, and matches
// ErrBadRequest and the registry errors of its causes.
type RequestError struct {
	Problems []Problem
	// causes are the underlying errors (registry.RefError and the like);
	// first is the first problem's, nil when it has none (Feast's
	// endpoint names its exception after it).
	causes []error
	first  error
}

func (e *RequestError) Error() string {
	var b strings.Builder
	b.WriteString("serving: bad request: ")
	for i, p := range e.Problems {
		if i == maxProblems {
			b.WriteString("; and " + strconv.Itoa(len(e.Problems)-i) + " more")
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		p.Value = clipValue(p.Value)
		b.WriteString(p.String())
	}
	return b.String()
}

// Unwrap returns ErrBadRequest and the causes.
func (e *RequestError) Unwrap() []error {
	return append([]error{ErrBadRequest}, e.causes...)
}

func (e *RequestError) add(field, value, reason string, cause error) {
	e.Problems = append(e.Problems, Problem{Field: field, Value: value, Reason: reason})
	if len(e.Problems) == 1 {
		e.first = cause
	}
	if cause != nil {
		e.causes = append(e.causes, cause)
	}
}

func (e *RequestError) err() error {
	if len(e.Problems) == 0 {
		return nil
	}
	return e
}

// LimitError is a request over one of Options' limits.
type LimitError struct {
	Field string // the field that holds too many items, e.g. "features"
	What  string // what is counted, e.g. "entity rows"
	Limit int
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("serving: %s: more than %d %s (the server's limit)", e.Field, e.Limit, e.What)
}

// Unwrap makes a LimitError match ErrLimit.
func (e *LimitError) Unwrap() error { return ErrLimit }

// CellsError is a lookup over Options.MaxCells.
type CellsError struct {
	Rows      int // entity rows, duplicates included
	RowValues int // values per row: features, a last_k counting k
	Limit     int
}

func (e *CellsError) Error() string {
	return fmt.Sprintf("serving: lookup of %d entity rows x %d values per row = %d values is over the limit of %d (--max-cells); "+
		"a last_k feature counts k values and a repeated key counts once per row", e.Rows, e.RowValues, int64(e.Rows)*int64(e.RowValues), e.Limit)
}

// Unwrap makes a CellsError match ErrLimit.
func (e *CellsError) Unwrap() error { return ErrLimit }

// problemsOf lists the items of err for an error response body.
func problemsOf(err error) []Problem {
	var re *RequestError
	if errors.As(err, &re) {
		return re.Problems
	}
	var pl interface{ problemList() []Problem }
	if errors.As(err, &pl) {
		return pl.problemList()
	}
	var se *SyntaxError
	if errors.As(err, &se) {
		return []Problem{{Field: se.Field, Reason: fmt.Sprintf("offset %d: %s", se.Offset, se.Msg)}}
	}
	var ce *CellsError
	if errors.As(err, &ce) {
		return []Problem{{Field: "entities", Reason: fmt.Sprintf("%d rows x %d values per row is more than %d values", ce.Rows, ce.RowValues, ce.Limit)}}
	}
	var le *LimitError
	if errors.As(err, &le) {
		return []Problem{{Field: le.Field, Reason: fmt.Sprintf("more than %d %s", le.Limit, le.What)}}
	}
	if ves := registry.ValidationErrors(err); len(ves) > 0 {
		ps := make([]Problem, len(ves))
		for i, ve := range ves {
			ps[i] = Problem{Field: ve.Path, Reason: ve.Msg}
		}
		return ps
	}
	var rs *registry.ResolveError
	if errors.As(err, &rs) {
		ps := make([]Problem, len(rs.Refs))
		for i, r := range rs.Refs {
			ps[i] = Problem{Field: "features", Value: r.Ref, Reason: r.Err.Error()}
		}
		return ps
	}
	return nil
}
