package serving

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/ingest"
	"github.com/featured-dev/featured/registry"
)

// This file serves Feast's push API: POST /push (Feast's
// PushFeaturesRequest) and POST /write-to-online-store (its
// WriteToFeatureStoreRequest, which is also what the Feast SDK's remote
// online store sends for FeatureStore.push, write_to_online_store and
// materialize). Both turn the columnar df into events of a featured push
// source and push them through ingest.Pusher as POST /v1/push does: the
// same admission, the same checks, the same offline log. A Feast client
// sees no per-row result, so both push atomically: one bad row and nothing
// is written, the error naming every bad cell.

// feastPushRequest is Feast's PushFeaturesRequest. allow_registry_cache and
// transform_on_write are accepted and ignored: featured reads its live
// registry and has no on-demand transforms.
type feastPushRequest struct {
	PushSourceName string                     `json:"push_source_name"`
	DF             map[string]json.RawMessage `json:"df"`
	To             *string                    `json:"to"`
}

// feastWriteRequest is Feast's WriteToFeatureStoreRequest.
type feastWriteRequest struct {
	FeatureViewName string                     `json:"feature_view_name"`
	DF              map[string]json.RawMessage `json:"df"`
}

// feastPushResponse is the answer to a push on Feast's routes. Feast's
// server answers an empty body (/push) or null (/write-to-online-store);
// no Feast client reads it, so featured says what it wrote.
type feastPushResponse struct {
	Accepted int    `json:"accepted"`
	BatchID  string `json:"batch_id,omitempty"`
}

// feastEventTimeColumn is the column the Feast SDK's remote online store
// puts every row's event time in (online_write_batch), whatever the view's
// source calls its timestamp field.
const feastEventTimeColumn = "event_timestamp"

// handleFeastPush serves POST /push: df's rows are events of the featured
// push source push_source_name.
func (s *Server) handleFeastPush(w http.ResponseWriter, r *http.Request) {
	var req feastPushRequest
	if err := s.readFeast(r, &req); err != nil {
		s.writeFeastError(w, r, err)
		return
	}
	if err := checkPushTo(req.To); err != nil {
		s.writeFeastError(w, r, err)
		return
	}
	if req.PushSourceName == "" {
		s.writeFeastError(w, r, &RequestError{Problems: []Problem{{Field: "push_source_name", Reason: "missing: name the push source"}}})
		return
	}
	src, ok := s.reg.Snapshot().Source(req.PushSourceName)
	switch {
	case !ok:
		s.writeFeastError(w, r, fmt.Errorf("%w %q", ingest.ErrUnknownSource, req.PushSourceName))
		return
	case src.Kind != "push":
		s.writeFeastError(w, r, fmt.Errorf("%w: %q reads Kafka topic %q; produce to the topic instead", ingest.ErrNotPushSource, src.Name, src.Topic))
		return
	}
	cols := sourceColumns(src, req.DF, nil)
	s.pushFrame(w, r, src, req.DF, cols)
}

// handleFeastWrite serves POST /write-to-online-store: df's rows are the
// values of a view's features, which featured can write only when the view
// passes its source's fields through (every feature is the lifetime last
// of the field of its own name); the rows are then events of that source.
func (s *Server) handleFeastWrite(w http.ResponseWriter, r *http.Request) {
	var req feastWriteRequest
	if err := s.readFeast(r, &req); err != nil {
		s.writeFeastError(w, r, err)
		return
	}
	if req.FeatureViewName == "" {
		s.writeFeastError(w, r, &RequestError{Problems: []Problem{{Field: "feature_view_name", Reason: "missing: name the feature view"}}})
		return
	}
	v, err := s.reg.Snapshot().View(req.FeatureViewName, 0)
	if err != nil {
		s.writeFeastError(w, r, err)
		return
	}
	if err := checkPassThrough(v); err != nil {
		s.writeFeastError(w, r, err)
		return
	}
	src := &v.Source
	if src.Kind != "push" {
		s.writeFeastError(w, r, &RequestError{Problems: []Problem{{Field: "feature_view_name", Value: v.Name,
			Reason: fmt.Sprintf("view reads Kafka topic %q (source %s); produce the rows to the topic", src.Topic, src.Name)}}})
		return
	}
	fields := make([]string, len(v.Features))
	for i, f := range v.Features {
		fields[i] = f.Field
	}
	joinKeys := make([]string, len(v.Entities))
	for i, e := range v.Entities {
		joinKeys[i] = e.JoinKey
	}
	cols := sourceColumns(src, req.DF, &writeColumns{joinKeys: joinKeys, fields: fields})
	s.pushFrame(w, r, src, req.DF, cols)
}

// readFeast reads and decodes the body of a Feast push route, after the
// readiness check. Like Feast's server it ignores fields it does not know
// and reads the body whatever its Content-Type (Feast's documented curl
// calls send none or a form type).
func (s *Server) readFeast(r *http.Request, v any) error {
	if err := s.checkReady(); err != nil {
		return err
	}
	body, err := readBody(r, nil, s.opts.MaxBodyBytes)
	if err != nil {
		return err
	}
	return decodeJSON(body, v, false)
}

// checkPushTo checks Feast's to: online and online_and_offline push alike,
// offline alone is refused.
func checkPushTo(to *string) error {
	if to == nil {
		return nil // Feast's default, "online"
	}
	switch *to {
	case "online", "online_and_offline":
		return nil
	case "offline":
		return &RequestError{Problems: []Problem{{Field: "to", Value: *to, Reason: "featured has no offline-only write: " +
			"its training data (exports) is computed from the same event log every push writes, so a push is online and offline at once; " +
			`send "online" or "online_and_offline"`}}}
	}
	return &RequestError{Problems: []Problem{{Field: "to", Value: *to, Reason: "not a supported push mode; want online, offline or online_and_offline"}}}
}

// checkPassThrough refuses a view that is not its source's fields passed
// through, naming each feature that is an aggregate.
func checkPassThrough(v *registry.View) error {
	var bad []string
	for _, f := range v.Features {
		if f.Aggregation != "last" || f.Window != 0 || f.Field != f.Name {
			bad = append(bad, f.Name)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return &RequestError{Problems: []Problem{{Field: "feature_view_name", Value: v.Name, Reason: fmt.Sprintf(
		"features %s are not pass-through values (the lifetime last of the source field of their own name): "+
			"featured computes them from events; push the events to source %s (POST /push or /v1/push)",
		strings.Join(bad, ", "), v.Source.Name)}}}
}

// column is one df column a push reads: its name in df and the event field
// it becomes.
type column struct {
	name, field string
	time        bool
}

// writeColumns narrow sourceColumns to what /write-to-online-store takes:
// the view's join keys (each standing for the source's key field in its
// position) and the fields its features read.
type writeColumns struct {
	joinKeys []string
	fields   []string
}

// sourceColumns returns the columns of df that make src's events: the key
// fields, the event time and the value fields. Other columns are ignored,
// as Feast ignores them (its SDK sends "created"). With wc, a key may also
// come under the entity's join key, the event time under
// event_timestamp, and only wc.fields are read.
func sourceColumns(src *registry.Source, df map[string]json.RawMessage, wc *writeColumns) []column {
	var cols []column
	for i, key := range keyFields(src) {
		name := key
		if _, ok := df[key]; !ok && wc != nil && i < len(wc.joinKeys) {
			name = wc.joinKeys[i]
		}
		cols = append(cols, column{name: name, field: key})
	}
	ts := src.EventTime
	if _, ok := df[ts]; !ok && wc != nil {
		if _, ok := df[feastEventTimeColumn]; ok {
			ts = feastEventTimeColumn
		}
	}
	cols = append(cols, column{name: ts, field: src.EventTime, time: true})
	for _, f := range src.Fields {
		if wc != nil && !slices.Contains(wc.fields, f.Name) {
			continue
		}
		cols = append(cols, column{name: f.Name, field: f.Name})
	}
	return cols
}

// keyFields are the event fields that make a source's entity key.
func keyFields(src *registry.Source) []string { return src.EntityKey }

// pushFrame pushes df's rows as events of src, atomically, and answers.
func (s *Server) pushFrame(w http.ResponseWriter, r *http.Request, src *registry.Source, df map[string]json.RawMessage, cols []column) {
	events, err := frameEvents(df, cols)
	if err != nil {
		s.writeFeastError(w, r, err)
		return
	}
	if len(events) == 0 {
		// Feast writes nothing for an empty frame and answers 200.
		writeJSON(w, http.StatusOK, []byte(`{"accepted":0}`))
		return
	}
	res, err := s.pusher.PushValues(r.Context(), src.Name, events, ingest.PushOptions{Atomic: true})
	if errors.Is(err, ingest.ErrAtomicRejected) {
		err = &rowsError{err: err, rows: len(events), problems: rowProblems(res.Rejected, cols)}
	}
	if err != nil {
		if res.BatchID != "" {
			err = fmt.Errorf("%w (batch_id %s)", err, res.BatchID)
		}
		s.writeFeastError(w, r, err)
		return
	}
	out, err := json.Marshal(feastPushResponse{Accepted: res.Accepted, BatchID: res.BatchID})
	if err != nil {
		s.writeFeastError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// frameEvents turns a columnar df into one event per row, reading only
// cols. A column must be a list of JSON scalars, every list as long.
func frameEvents(df map[string]json.RawMessage, cols []column) ([]map[string]aggregate.Value, error) {
	var rerr RequestError
	if len(df) == 0 {
		rerr.add("df", "", "no columns; want {column: [value per row], ...}", nil)
		return nil, &rerr
	}
	names := make([]string, 0, len(df))
	for name := range df {
		names = append(names, name)
	}
	slices.Sort(names)
	lists := make(map[string][]json.RawMessage, len(df))
	rows := -1
	for _, name := range names {
		var list []json.RawMessage
		if err := json.Unmarshal(df[name], &list); err != nil || list == nil {
			rerr.add("df."+name, clipValue(string(df[name])), "not a list; want one value per row", nil)
			continue
		}
		if rows < 0 {
			rows = len(list)
		} else if len(list) != rows {
			rerr.add("df."+name, "", fmt.Sprintf("%d values, column %s has %d; every column has one value per row", len(list), names[0], rows), nil)
			continue
		}
		lists[name] = list
	}
	if err := rerr.err(); err != nil {
		return nil, err
	}
	events := make([]map[string]aggregate.Value, rows)
	for i := range events {
		events[i] = make(map[string]aggregate.Value, len(cols))
	}
	for _, c := range cols {
		list, ok := lists[c.name]
		if !ok {
			continue // absent: null in every row (ingest names a missing key or time)
		}
		for i, raw := range list {
			v, ok := jsonScalar(raw)
			if !ok {
				rerr.add("df."+c.name+"["+strconv.Itoa(i)+"]", clipValue(string(raw)), "not a scalar; want a string, number, boolean or null", nil)
				continue
			}
			if c.time && v.Kind == aggregate.KindString {
				if ms, ok := parseFeastTime(v.S); ok {
					v = aggregate.Value{Kind: aggregate.KindInt64, I: ms}
				}
			}
			events[i][c.field] = v
		}
	}
	if err := rerr.err(); err != nil {
		return nil, err
	}
	return events, nil
}

// jsonScalar reads a JSON scalar as the value its JSON type says: a string,
// an int64 (an integer literal that fits), a float64 (any other number) or
// a boolean; ingest then checks it against the field's kind, as it checks
// gRPC's typed values. ok is false for a list or an object.
func jsonScalar(raw json.RawMessage) (v aggregate.Value, ok bool) {
	switch s := string(raw); {
	case s == "null":
		return aggregate.Value{}, true
	case s == "true" || s == "false":
		v = aggregate.Value{Kind: aggregate.KindBool}
		if s == "true" {
			v.I = 1
		}
		return v, true
	case s != "" && s[0] == '"':
		var str string
		if json.Unmarshal(raw, &str) != nil {
			return v, false
		}
		return aggregate.Value{Kind: aggregate.KindString, S: str}, true
	case s != "" && (s[0] == '-' || s[0] >= '0' && s[0] <= '9'):
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return aggregate.Value{Kind: aggregate.KindInt64, I: i}, true
		}
		// Out of range is ±Inf, which ingest refuses as not finite.
		f, _ := strconv.ParseFloat(s, 64)
		return aggregate.Value{Kind: aggregate.KindFloat64, F: f}, true
	}
	return v, false
}

// feastTimeLayouts are the event time strings a Feast client sends: RFC
// 3339 with a zone, and what Python and pandas print for a naive UTC time
// (datetime.isoformat(), str(pd.Timestamp), Feast's own curl examples:
// "2022-05-13 10:59:42"), which Feast reads as UTC. A space may stand for
// the T.
var feastTimeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02T15:04", "2006-01-02"}

// parseFeastTime parses s as one of feastTimeLayouts, in milliseconds.
func parseFeastTime(s string) (int64, bool) {
	if len(s) > 10 && s[10] == ' ' {
		s = s[:10] + "T" + s[11:]
	}
	for _, layout := range feastTimeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UnixMilli(), true
		}
	}
	return 0, false
}

// rowsError is an atomic push refused for its rejected rows; its problems
// name each rejected cell by its df column.
type rowsError struct {
	err      error // wraps ingest.ErrAtomicRejected
	rows     int
	problems []Problem
}

func (e *rowsError) Error() string {
	msg := fmt.Sprintf("serving: %d of %d rows rejected, nothing was written", len(e.problems), e.rows)
	if len(e.problems) > 0 {
		msg += ": " + e.problems[0].String()
		if len(e.problems) > 1 {
			msg += "; and " + strconv.Itoa(len(e.problems)-1) + " more"
		}
	}
	return msg
}

func (e *rowsError) Unwrap() error { return e.err }

func (e *rowsError) problemList() []Problem { return e.problems }

// rowProblems names each rejected row's cell by the df column it came
// from.
func rowProblems(rejected []ingest.RowError, cols []column) []Problem {
	ps := make([]Problem, len(rejected))
	for i, re := range rejected {
		field := "df[" + strconv.Itoa(re.Index) + "]"
		for _, c := range cols {
			if re.Field != "" && c.field == re.Field {
				field = "df." + c.name + "[" + strconv.Itoa(re.Index) + "]"
				break
			}
		}
		ps[i] = Problem{Field: field, Reason: re.Reason + " (" + re.Code + ")"}
	}
	return ps
}
