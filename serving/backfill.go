package serving

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/featured-dev/featured/registry"
)

// applyResponse is the JSON answer of POST /v1/apply: the plan, and with
// ?backfill=true one entry per view version backfilled (an empty list when
// the apply created none). When a backfill failed the definitions are still
// applied: the answer is then a 5xx whose error says which versions failed
// and how to rerun them, beside the plan and every backfill's outcome.
type applyResponse struct {
	Error *errorDetail `json:"error,omitempty"`
	planResponse
	Backfills []backfillResult `json:"backfills,omitzero"`
}

// backfillResult is one view version backfilled after an apply: how many
// entities it built, or why it failed.
type backfillResult struct {
	View     string `json:"view"`
	Version  int    `json:"version"`
	Entities int    `json:"entities"`
	Error    string `json:"error,omitempty"`
}

// errBackfill marks an apply whose definitions were applied but whose
// backfill failed (*backfillError).
var errBackfill = errors.New("serving: backfill after apply failed")

// backfillParam reads an apply's ?backfill=: absent is false; otherwise a
// value strconv.ParseBool takes (true, false, 1, 0, ...). Asking for a
// backfill from a server without an offline log (no Options.Backfill) is a
// bad request, refused before anything is applied.
func (s *Server) backfillParam(r *http.Request) (bool, error) {
	vals, ok := r.URL.Query()["backfill"]
	if !ok {
		return false, nil
	}
	if len(vals) > 1 {
		return false, &RequestError{Problems: []Problem{{Field: "backfill", Value: strings.Join(vals, ","), Reason: "given more than once"}}}
	}
	on, err := strconv.ParseBool(vals[0])
	if err != nil {
		return false, &RequestError{Problems: []Problem{{Field: "backfill", Value: vals[0], Reason: "want true or false"}}}
	}
	if on && s.opts.Backfill == nil {
		return false, &RequestError{Problems: []Problem{{Field: "backfill", Value: vals[0],
			Reason: "this server cannot backfill (it has no offline log, or it is a cluster node, whose log holds only its own partitions); apply without backfill"}}}
	}
	return on, nil
}

// backfillCreated runs Options.Backfill for every view version p created
// (a new view or a new version) that ingests, in plan order. Versions are
// independent, so it goes on after a failure; it returns one result per
// version and, when any failed, a *backfillError.
func (s *Server) backfillCreated(ctx context.Context, p *registry.Plan) ([]backfillResult, error) {
	snap := s.reg.Snapshot()
	out := []backfillResult{}
	var be backfillError
	for _, c := range p.Changes {
		if c.Kind != registry.KindView || (c.Action != registry.ActionCreate && c.Action != registry.ActionNewVersion) || c.ToVersion == 0 {
			continue
		}
		res := backfillResult{View: c.Name, Version: c.ToVersion}
		// The version as now published; a concurrent delete may have
		// removed it, which fails its backfill.
		v, err := snap.View(c.Name, c.ToVersion)
		if err == nil && v.Detached {
			continue // not ingested: nothing folds into it, nothing to build
		}
		if err == nil {
			start := time.Now()
			res.Entities, err = s.opts.Backfill(ctx, v)
			if err == nil {
				s.opts.Logger.Info("serving: backfilled after apply", "view", c.Name, "version", c.ToVersion,
					"entities", res.Entities, "took", time.Since(start))
			}
		}
		if err != nil {
			res.Error = err.Error()
			be.add(c.Name, c.ToVersion, err)
		}
		out = append(out, res)
	}
	if len(be.causes) == 0 {
		return out, nil
	}
	return out, &be
}

// backfillError is an apply whose definitions were applied but whose
// backfill of one or more view versions failed. It matches errBackfill and
// each failure's cause.
type backfillError struct {
	failed []string // "view user_spend v2 (<cause>)"
	reruns []string // "user_spend@v2"
	causes []error
}

func (e *backfillError) add(view string, version int, err error) {
	e.failed = append(e.failed, fmt.Sprintf("view %s v%d (%v)", view, version, err))
	e.reruns = append(e.reruns, fmt.Sprintf("%s@v%d", view, version))
	e.causes = append(e.causes, err)
}

func (e *backfillError) Error() string {
	return "serving: the definitions are applied, but backfilling failed for " + strings.Join(e.failed, "; ") +
		"; rerun `featured backfill " + strings.Join(e.reruns, "` and `featured backfill ") + "`"
}

// Unwrap returns errBackfill and the causes.
func (e *backfillError) Unwrap() []error { return append([]error{errBackfill}, e.causes...) }

// backfillStatus is the HTTP status of an apply whose backfill failed:
// 500, or the context's status when the request was canceled or its
// deadline passed. Never a 4xx: the request was good, and it is applied.
func backfillStatus(err error) int {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return httpStatus(err)
	}
	return http.StatusInternalServerError
}
