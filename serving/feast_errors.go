package serving

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/featured-dev/featured/ingest"
	"github.com/featured-dev/featured/registry"
)

// errDuplicateName is the cause of a lookup whose features produce one
// column name twice; Feast's FeatureNameCollisionError.
var errDuplicateName = errors.New("serving: duplicate column name")

// feastErrorTable maps an error of Feast's endpoints (a lookup's, a
// push's) to the exception Feast's feature server raises for it, so that the Feast SDK, which rebuilds the exception
// from the response body (FeastError.from_error_detail), raises the same
// class against featured as against Feast. The first row that errors.Is
// matches wins; a zero status keeps featured's own (errorTable). Anything
// else is the base class FeastError with featured's status: the SDK then
// raises FeastError with featured's message, not a bare RuntimeError.
var feastErrorTable = []struct {
	err    error
	class  string
	status int
}{
	{registry.ErrUnknownService, "FeatureServiceNotFoundException", http.StatusNotFound},
	{registry.ErrUnknownVersion, "FeatureViewVersionNotFound", http.StatusNotFound},
	{registry.ErrUnknownView, "FeatureViewNotFoundException", http.StatusNotFound},
	// Feast has no class of its own for a view without the feature.
	{registry.ErrUnknownFeature, "FeastObjectNotFoundException", http.StatusNotFound},
	{registry.ErrUnknownEntity, "EntityNotFoundException", http.StatusNotFound},
	{errDuplicateName, "FeatureNameCollisionError", 0},
	// POST /push: Feast raises this, with 422, for a name no feature view
	// reads as its push source; a featured source that reads Kafka is not
	// a push source either.
	{ingest.ErrUnknownSource, "PushSourceNotFoundException", http.StatusUnprocessableEntity},
	{ingest.ErrNotPushSource, "PushSourceNotFoundException", http.StatusUnprocessableEntity},
}

// feastError is the error detail Feast's feature server sends
// (FeastError.to_error_detail), in its field order, plus featured's own
// error (its status as sent and the problems naming each bad field), which
// the SDK ignores.
type feastError struct {
	Module  string      `json:"module"`
	Class   string      `json:"class"`
	Message string      `json:"message"`
	Error   errorDetail `json:"error"`
}

// feastErrorOf returns the status and body of err on Feast's endpoints: a
// JSON string whose content is the JSON of a feastError, exactly as Feast's
// server (FastAPI's JSONResponse of a str) writes it. The exception is
// chosen by the first problem of a *RequestError, so that a request whose
// first feature is malformed is not called an unknown view for its third.
func feastErrorOf(err error) (status int, body []byte) {
	status, class := httpStatus(err), "FeastError"
	match := err
	var re *RequestError
	if errors.As(err, &re) {
		match = re.first
	}
	for _, row := range feastErrorTable {
		if match != nil && errors.Is(match, row.err) {
			class = row.class
			if row.status != 0 {
				status = row.status
			}
			break
		}
	}
	msg := clipMessage(err.Error())
	detail, _ := json.Marshal(feastError{Module: "feast.errors", Class: class, Message: msg,
		Error: errorDetail{Status: status, Message: msg, Problems: boundProblems(problemsOf(err))}})
	body, _ = json.Marshal(string(detail))
	return status, body
}

// writeFeastError is writeError on Feast's endpoints: the same logging,
// Feast's shape.
func (s *Server) writeFeastError(w http.ResponseWriter, r *http.Request, err error) {
	if st := httpStatus(err); st >= 500 && st != http.StatusServiceUnavailable && st != http.StatusGatewayTimeout && st != http.StatusInsufficientStorage {
		s.opts.Logger.Error("serving: internal error", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	setRetryAfter(w, err, s.opts.RetryAfter)
	status, body := feastErrorOf(err)
	writeJSON(w, status, body)
}
