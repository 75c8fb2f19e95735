package serving

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/featured-dev/featured/featurestore"
	"github.com/featured-dev/featured/ingest"
)

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

// pushRequest is the body of POST /v1/push.
type pushRequest struct {
	Source  string            `json:"source"`
	Events  []json.RawMessage `json:"events"`
	Atomic  bool              `json:"atomic"`
	BatchID string            `json:"batch_id"`
}

// pushResponse is the body of a push's answer: ingest.PushResult, plus the
// error when the push failed as a whole (atomic with rejected events, or
// a store failure once the push had its batch ID).
type pushResponse struct {
	Accepted  int               `json:"accepted"`
	Rejected  []ingest.RowError `json:"rejected"`
	BatchID   string            `json:"batch_id,omitempty"`
	Duplicate bool              `json:"duplicate,omitempty"`
	// Positions: cluster mode only (ingest.PushResult.Positions).
	Positions []ingest.Position `json:"positions,omitempty"`
	Error     *errorDetail      `json:"error,omitempty"`
}

// handlePush applies pushed events: 200 with the accepted count and the
// rejected rows (and duplicate: true for a batch_id already applied); 422
// when atomic and any row was rejected (nothing applied); 404 for an
// unknown source; 503 with the batch_id for an atomic push that is
// journaled but not yet committed by every shard (featured completes it; a
// retry with the batch_id is safe).
func (s *Server) handlePush(w http.ResponseWriter, r *http.Request) {
	if err := s.checkReady(); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := requireJSON(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	body, err := readBody(r, nil, s.opts.MaxBodyBytes)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req pushRequest
	if err := decodeStrict(body, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.Source == "" {
		s.writeError(w, r, &RequestError{Problems: []Problem{{Field: "source", Reason: "missing: name the push source"}}})
		return
	}
	res, err := s.pusher.PushJSON(r.Context(), req.Source, req.Events, ingest.PushOptions{Atomic: req.Atomic, BatchID: req.BatchID})
	resp := pushResponse{Accepted: res.Accepted, Rejected: res.Rejected, BatchID: res.BatchID, Duplicate: res.Duplicate, Positions: res.Positions}
	if resp.Rejected == nil {
		resp.Rejected = []ingest.RowError{}
	}
	st := http.StatusOK
	if err != nil {
		// A failure with a batch ID answers the ID, so that a client whose
		// atomic push got a generated one can retry with it.
		if !errors.Is(err, ingest.ErrAtomicRejected) && res.BatchID == "" {
			s.writeError(w, r, err)
			return
		}
		st = httpStatus(err)
		if st >= 500 && st != http.StatusServiceUnavailable {
			s.opts.Logger.Error("serving: push failed", "batch_id", res.BatchID, "err", err)
		}
		if errors.Is(err, featurestore.ErrJournaled) {
			w.Header().Set("Retry-After", "1")
		}
		resp.Error = &errorDetail{Status: st, Message: clipMessage(err.Error())}
	}
	out, merr := json.Marshal(resp)
	if merr != nil {
		s.writeError(w, r, merr)
		return
	}
	writeJSON(w, st, out)
}
