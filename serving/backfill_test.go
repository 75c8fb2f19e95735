package serving_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/featured-dev/featured/registry"
	"github.com/featured-dev/featured/serving"
)

// backfillDefs is definitions with user_spend at a new version (spend_7d's
// window 7d -> 6d) and a new view, merchant_copy, over merchant_events: an
// apply of it creates user_spend v2 and merchant_copy v1.
var backfillDefs = strings.NewReplacer(
	"{name: spend_7d, aggregation: sum, field: amount, window: 7d, hop: 1h}",
	"{name: spend_7d, aggregation: sum, field: amount, window: 6d, hop: 1h}",
	"feature_services:",
	`  - name: merchant_copy
    entity: merchant
    source: merchant_events
    ttl: 1d
    features:
      - {name: volume_1d, aggregation: sum, field: amount, window: 1d}
feature_services:`,
).Replace(definitions)

// applyAnswer is POST /v1/apply's JSON.
type applyAnswer struct {
	Error *struct {
		Status  int    `json:"status"`
		Message string `json:"message"`
	} `json:"error"`
	Changes   []registry.Change `json:"changes"`
	Text      string            `json:"text"`
	Backfills *[]struct {
		View     string `json:"view"`
		Version  int    `json:"version"`
		Entities int    `json:"entities"`
		Error    string `json:"error"`
	} `json:"backfills"`
}

func decodeApply(t *testing.T, body []byte) applyAnswer {
	t.Helper()
	var a applyAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		t.Fatalf("apply answer %s: %v", body, err)
	}
	return a
}

// backfillsOf renders the answer's backfills as view@vN:entities[:error],
// for comparison.
func backfillsOf(a applyAnswer) string {
	if a.Backfills == nil {
		return "<absent>"
	}
	var parts []string
	for _, b := range *a.Backfills {
		p := b.View + "@v" + strconv.Itoa(b.Version) + ":" + strconv.Itoa(b.Entities)
		if b.Error != "" {
			p += ":" + b.Error
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, ",")
}

// TestApplyBackfill: an apply with ?backfill=true that creates a new
// version of user_spend and a new view builds both from the offline log:
// afterwards each answers the fold of every event pushed, before the apply
// and after it (no gap, none counted twice), like the versions that saw them
// live. An apply that creates nothing backfills nothing; without the query
// the answer has no backfills.
func TestApplyBackfill(t *testing.T) {
	h := newHarnessLog(t, serving.Options{}, true)
	seed(h) // user_spend v1 and merchant_stats v1, with events

	st, body := h.do("POST", "/v1/apply?backfill=true", "application/yaml", []byte(backfillDefs))
	if st != http.StatusOK {
		t.Fatalf("apply ?backfill=true: %d %s", st, body)
	}
	a := decodeApply(t, body)
	if got, want := backfillsOf(a), "user_spend@v2:2,merchant_copy@v1:1"; got != want || a.Error != nil {
		t.Fatalf("backfills %s, want %s: %s", got, want, body)
	}
	if !strings.Contains(a.Text, "user_spend v1 -> v2") || !strings.Contains(a.Text, "+ view merchant_copy v1") {
		t.Errorf("plan text %q: want the new version and the new view", a.Text)
	}

	check := func(when string) {
		t.Helper()
		// user_spend:... now resolves to v2; since 0: every event pushed.
		st, body := h.post("/v1/features", map[string]any{"features": userRefs, "entities": map[string]any{"user_id": userKeys}})
		if st != http.StatusOK {
			t.Fatalf("%s: lookup: %d %s", when, st, body)
		}
		checkNative(t, h, body, "user_id", userKeys, columnsOf(userNames, userRefs))
		pinned := []string{"user_spend@v1:spend_7d", "user_spend@v1:last_3_merchants"}
		st, body = h.post("/v1/features", map[string]any{"features": pinned, "entities": map[string]any{"user_id": userKeys}})
		if st != http.StatusOK {
			t.Fatalf("%s: lookup v1: %d %s", when, st, body)
		}
		checkNative(t, h, body, "user_id", userKeys, columnsOf([]string{"spend_7d", "last_3_merchants"}, pinned))
		keys := []any{int64(42), int64(7)}
		st, body = h.post("/v1/features", map[string]any{"features": []string{"merchant_copy:volume_1d"}, "entities": map[string]any{"merchant_id": keys}})
		if st != http.StatusOK {
			t.Fatalf("%s: lookup merchant_copy: %d %s", when, st, body)
		}
		checkNative(t, h, body, "merchant_id", keys, columnsOf([]string{"volume_1d"}, []string{"merchant_copy:volume_1d"}))
	}
	check("after the backfill")

	// Events after the backfill fold once into the rebuilt state.
	h.push("transactions",
		event{key: "u1", ms: nowMillis - 10*minute, amount: f64(4), items: i64(7), merchant: str("m5")},
		event{key: "u3", ms: nowMillis - 2*minute, amount: f64(1.5), items: i64(1), merchant: str("m1")},
	)
	h.push("merchant_events", event{key: int64(42), ms: nowMillis - minute, amount: f64(2)})
	check("after more pushes")

	// Nothing created, nothing backfilled: an empty list, not an error.
	st, body = h.do("POST", "/v1/apply?backfill=true", "application/yaml", []byte(backfillDefs))
	if a := decodeApply(t, body); st != http.StatusOK || backfillsOf(a) != "" || a.Backfills == nil {
		t.Errorf("re-apply ?backfill=true: %d %s, want 200 and \"backfills\":[]", st, body)
	}
	// No query, or backfill=false: no backfills in the answer.
	for _, path := range []string{"/v1/apply", "/v1/apply?backfill=false"} {
		st, body = h.do("POST", path, "application/yaml", []byte(backfillDefs))
		if a := decodeApply(t, body); st != http.StatusOK || a.Backfills != nil {
			t.Errorf("%s: %d %s, want 200 without backfills", path, st, body)
		}
	}
}

// TestApplyBackfillRefused: a bad ?backfill= value, and ?backfill=true on a
// server without an offline log, are 400s naming the parameter, and
// nothing is applied.
func TestApplyBackfillRefused(t *testing.T) {
	refused := func(h *harness, query, value, reason string) {
		t.Helper()
		gen := h.reg.Snapshot().Generation()
		st, body := h.do("POST", "/v1/apply?"+query, "application/yaml", []byte(backfillDefs))
		wantProblem(t, st, body, http.StatusBadRequest, "backfill", value, reason)
		if g := h.reg.Snapshot().Generation(); g != gen {
			t.Errorf("?%s: registry generation %d -> %d: a refused apply changed it", query, gen, g)
		}
		if v, err := h.reg.Snapshot().View("user_spend", 0); err != nil || v.Version != 1 {
			t.Errorf("?%s: user_spend latest %v (%v), want v1", query, v, err)
		}
	}

	noLog := newHarness(t, serving.Options{})
	seed(noLog)
	refused(noLog, "backfill=true", "true", "no offline log")

	h := newHarnessLog(t, serving.Options{}, true)
	seed(h)
	refused(h, "backfill=maybe", "maybe", "want true or false")
	refused(h, "backfill=", "", "want true or false")
	refused(h, "backfill=true&backfill=false", "true,false", "more than once")
	// Refused before the body is read: a bad document does not mask it.
	st, body := h.do("POST", "/v1/apply?backfill=maybe", "application/yaml", []byte("feature_views: [{name: x"))
	wantProblem(t, st, body, http.StatusBadRequest, "backfill", "maybe", "want true or false")
}

// TestApplyBackfillFails: when one version's backfill fails the apply
// stands, the other versions are still backfilled, and the answer is a 500
// carrying the plan, each backfill's outcome, and an error that names the
// failed version and the command that reruns it.
func TestApplyBackfillFails(t *testing.T) {
	h := newHarnessLog(t, serving.Options{}, true)
	seed(h)
	h.breakBackfill = func(v *registry.View) error {
		if v.Name == "user_spend" {
			return errors.New("offline: read shard 0: input/output error")
		}
		return nil
	}
	st, body := h.do("POST", "/v1/apply?backfill=true", "application/yaml", []byte(backfillDefs))
	if st != http.StatusInternalServerError {
		t.Fatalf("apply with a failing backfill: %d %s, want 500", st, body)
	}
	a := decodeApply(t, body)
	if a.Error == nil || a.Error.Status != 500 {
		t.Fatalf("no error object: %s", body)
	}
	for _, want := range []string{"definitions are applied", "view user_spend v2 (offline: read shard 0: input/output error)", "`featured backfill user_spend@v2`"} {
		if !strings.Contains(a.Error.Message, want) {
			t.Errorf("error %q does not say %q", a.Error.Message, want)
		}
	}
	if strings.Contains(a.Error.Message, "merchant_copy") {
		t.Errorf("error %q names merchant_copy, whose backfill succeeded", a.Error.Message)
	}
	if got, want := backfillsOf(a), "user_spend@v2:0:offline: read shard 0: input/output error,merchant_copy@v1:1"; got != want {
		t.Errorf("backfills %s, want %s", got, want)
	}
	if !strings.Contains(a.Text, "user_spend v1 -> v2") || len(a.Changes) == 0 {
		t.Errorf("the answer lacks the plan: %s", body)
	}
	if v, err := h.reg.Snapshot().View("user_spend", 0); err != nil || v.Version != 2 {
		t.Errorf("user_spend latest %v (%v): want v2 applied despite the failed backfill", v, err)
	}
	keys := []any{int64(42)}
	st, body = h.post("/v1/features", map[string]any{"features": []string{"merchant_copy:volume_1d"}, "entities": map[string]any{"merchant_id": keys}})
	if st != http.StatusOK {
		t.Fatalf("lookup merchant_copy: %d %s", st, body)
	}
	checkNative(t, h, body, "merchant_id", keys, columnsOf([]string{"volume_1d"}, []string{"merchant_copy:volume_1d"}))
}
