package serving

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/featured-dev/featured/ingest"
)

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

// pushRequest is the body of POST /v1/push.
type pushRequest struct {
	Source string            `json:"source"`
	Events []json.RawMessage `json:"events"`
	Atomic bool              `json:"atomic"`
}

// pushResponse is the body of a push's answer: ingest.PushResult, plus the
// error when the push failed as a whole (atomic with rejected events).
type pushResponse struct {
	Accepted int               `json:"accepted"`
	Rejected []ingest.RowError `json:"rejected"`
	Error    *errorDetail      `json:"error,omitempty"`
}

// handlePush applies pushed events: 200 with the accepted count and the
// rejected rows; 422 when atomic and any row was rejected (nothing applied);
// 404 for an unknown source.
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
	res, err := s.pusher.PushJSON(r.Context(), req.Source, req.Events, req.Atomic)
	resp := pushResponse{Accepted: res.Accepted, Rejected: res.Rejected}
	if resp.Rejected == nil {
		resp.Rejected = []ingest.RowError{}
	}
	st := http.StatusOK
	if err != nil {
		if !errors.Is(err, ingest.ErrAtomicRejected) {
			s.writeError(w, r, err)
			return
		}
		st = httpStatus(err)
		resp.Error = &errorDetail{Status: st, Message: err.Error()}
	}
	out, merr := json.Marshal(resp)
	if merr != nil {
		s.writeError(w, r, merr)
		return
	}
	writeJSON(w, st, out)
}
