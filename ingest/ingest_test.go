package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/aggregate/aggregatetest"
	"github.com/featured-dev/featured/featurestore"
	"github.com/featured-dev/featured/internal/keyenc"
	"github.com/featured-dev/featured/internal/partition"
	"github.com/featured-dev/featured/internal/testdefs"
	"github.com/featured-dev/featured/registry"
)

// defsFor is the shared view with every operator (internal/testdefs)
// named view, on source: the push source tx or the Kafka source tx_kafka
// (same schema, on topic), both defined.
func defsFor(source, view, topic string) string {
	return testdefs.Doc(
		[]string{testdefs.Source("tx", "push", ""), testdefs.Source("tx_kafka", "kafka", topic)},
		[]string{testdefs.View(view, source, "2d")})
}

// fieldNames is the source's field order: registry sorts fields by name.
var fieldNames = testdefs.FieldNames

type env struct {
	reg   *registry.Registry
	store *featurestore.Store
	dir   string // the store's directory
	now   time.Time
	// partitions is the store's P.
	partitions int
}

func newEnv(t testing.TB, defs string) *env {
	t.Helper()
	return newEnvP(t, defs, 2)
}

// newEnvP is newEnv with a store of p partitions: a Kafka test's topic
// must have as many.
func newEnvP(t testing.TB, defs string, p int) *env {
	t.Helper()
	dir := t.TempDir()
	reg, err := registry.Open(dir + "/registry.json")
	if err != nil {
		t.Fatal(err)
	}
	d, err := registry.ParseYAML([]byte(defs))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Apply(d); err != nil {
		t.Fatal(err)
	}
	e := &env{reg: reg, dir: dir + "/store", now: time.UnixMilli(1_790_000_000_000), partitions: p}
	e.openStore(t)
	t.Cleanup(func() { e.store.Close() })
	return e
}

// openStore opens the store in e.dir (again, after a test closed it).
func (e *env) openStore(t testing.TB) {
	t.Helper()
	var err error
	// The store's clock is the test's, so pruning happens at the times the
	// test reads.
	e.store, err = featurestore.Open(e.dir, featurestore.Options{Partitions: e.partitions, GCInterval: -1, Now: func() time.Time { return e.now }})
	if err != nil {
		t.Fatal(err)
	}
}

// part is the partition of a string entity's encoded key (its record key).
func (e *env) part(key []byte) int { return partition.Of(key, e.partitions) }

func (e *env) pusher(t *testing.T) *Pusher {
	t.Helper()
	p, err := NewPusher(e.reg, e.store, Options{Now: func() time.Time { return e.now }})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// entityStreams makes random streams for n entities that the ingest clock
// e.now admits (all within the 2d TTL, none in the future).
func (e *env) entityStreams(n int, seed uint64) map[string][]aggregatetest.Event {
	out := map[string][]aggregatetest.Event{}
	for i := 0; i < n; i++ {
		events := aggregatetest.Stream(seed+uint64(i), aggregatetest.StreamOptions{
			Events:        150,
			Fields:        []aggregate.Kind{aggregate.KindFloat64, aggregate.KindBool, aggregate.KindInt64, aggregate.KindString},
			StartMillis:   e.now.UnixMilli() - 40*3600_000,
			MeanGapMillis: 10 * 60_000,
			GapFraction:   -1,
			Cardinality:   8,
		})
		out[fmt.Sprintf("user-%d", i)] = events
	}
	return out
}

// eventJSON renders an event as a producer would; even indexes use an RFC
// 3339 time, odd ones epoch milliseconds.
func eventJSON(user string, ev aggregatetest.Event, i int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `{"user_id":%q,`, user)
	if i%2 == 0 {
		fmt.Fprintf(&b, `"ts":%q`, time.UnixMilli(ev.Millis).UTC().Format(time.RFC3339Nano))
	} else {
		fmt.Fprintf(&b, `"ts":%d`, ev.Millis)
	}
	for f, v := range ev.Fields {
		switch v.Kind {
		case aggregate.KindNull:
			if i%3 == 0 {
				fmt.Fprintf(&b, `,%q:null`, fieldNames[f])
			}
		case aggregate.KindFloat64:
			fmt.Fprintf(&b, `,%q:%s`, fieldNames[f], strconv.FormatFloat(v.F, 'g', -1, 64))
		case aggregate.KindInt64:
			fmt.Fprintf(&b, `,%q:%d`, fieldNames[f], v.I)
		case aggregate.KindBool:
			fmt.Fprintf(&b, `,%q:%t`, fieldNames[f], v.I == 1)
		case aggregate.KindString:
			fmt.Fprintf(&b, `,%q:%q`, fieldNames[f], v.S)
		}
	}
	b.WriteString(`,"unrelated":{"nested":[1,2]}}`)
	return []byte(b.String())
}

// checkView compares every feature of every entity, read from the store at
// e.now, with the brute-force reference over the entity's events.
func (e *env) checkView(t *testing.T, view string, streams map[string][]aggregatetest.Event) {
	t.Helper()
	v, err := e.reg.Snapshot().View(view, 0)
	if err != nil {
		t.Fatal(err)
	}
	specs := v.Layout.Specs()
	features := make([]int, len(specs))
	for i := range features {
		features[i] = i
	}
	out := make([]aggregate.Result, len(specs))
	vk := featurestore.ViewKey{ID: v.ID, Version: uint32(v.Version)}
	for user, events := range streams {
		key, _ := keyenc.AppendEntity(nil, aggregate.Value{Kind: aggregate.KindString, S: user})
		if err := e.store.Read(vk, v.Layout, e.part(key), key, features, e.now.UnixMilli(), out); err != nil {
			t.Fatal(err)
		}
		for f := range specs {
			want := aggregatetest.Reference(specs, v.Layout.TTLMillis(), events, f, e.now.UnixMilli())
			if !aggregatetest.Equal(out[f], want, 1e-9) {
				t.Errorf("%s %s.%s: got %+v, want %+v", user, view, v.Features[f].Name, out[f], want)
			}
		}
	}
}

func TestPushMatchesReference(t *testing.T) {
	e := newEnv(t, defsFor("tx", "v", "unused"))
	e.now = time.Now()
	p := e.pusher(t)
	streams := e.entityStreams(6, 1)
	// Interleave entities, in pushes of up to 97 events.
	var batch []json.RawMessage
	for i := 0; i < 150; i++ {
		for user, events := range streams {
			batch = append(batch, eventJSON(user, events[i], i))
			if len(batch) == 97 {
				res, err := p.PushJSON(context.Background(), "tx", batch, PushOptions{})
				if err != nil || len(res.Rejected) > 0 || res.Accepted != 97 {
					t.Fatalf("push: %+v, %v", res, err)
				}
				batch = nil
			}
		}
	}
	if _, err := p.PushJSON(context.Background(), "tx", batch, PushOptions{Atomic: true}); err != nil {
		t.Fatal(err)
	}
	e.checkView(t, "v", streams)
	st := p.Stats()
	if len(st) != 1 || st[0].Applied != 900 {
		t.Fatalf("stats: %+v, want 900 applied", st)
	}
}

func TestPushValuesMatchesReference(t *testing.T) {
	e := newEnv(t, defsFor("tx", "v", "unused"))
	p := e.pusher(t)
	streams := e.entityStreams(3, 7)
	for user, events := range streams {
		var batch []map[string]aggregate.Value
		for i, ev := range events {
			m := map[string]aggregate.Value{"user_id": {Kind: aggregate.KindString, S: user}}
			if i%2 == 0 {
				m["ts"] = aggregate.Value{Kind: aggregate.KindInt64, I: ev.Millis}
			} else {
				m["ts"] = aggregate.Value{Kind: aggregate.KindString, S: time.UnixMilli(ev.Millis).UTC().Format(time.RFC3339Nano)}
			}
			for f, v := range ev.Fields {
				m[fieldNames[f]] = v
			}
			batch = append(batch, m)
		}
		res, err := p.PushValues(context.Background(), "tx", batch, PushOptions{Atomic: true})
		if err != nil || res.Accepted != len(events) {
			t.Fatalf("push values: %+v, %v", res, err)
		}
	}
	e.checkView(t, "v", streams)
}

// TestPushBadRows covers each kind of bad event: it is reported with its
// index, field and reason code, the good events around it are applied, and
// with atomic nothing is.
func TestPushBadRows(t *testing.T) {
	e := newEnv(t, defsFor("tx", "v", "unused"))
	p := e.pusher(t)
	ts := e.now.Add(-time.Hour).UTC().Format(time.RFC3339)
	good := func(user string) json.RawMessage {
		return json.RawMessage(fmt.Sprintf(`{"user_id":%q,"ts":%q,"amount":2.5,"items":1}`, user, ts))
	}
	cases := []struct {
		event json.RawMessage
		field string
		code  string
	}{
		{json.RawMessage(`{"user_id": "a", "ts": `), "", ReasonMalformed},
		{json.RawMessage(`[1,2]`), "", ReasonMalformed},
		{json.RawMessage(fmt.Sprintf(`{"ts":%q,"amount":1}`, ts)), "user_id", ReasonMissingKey},
		{json.RawMessage(fmt.Sprintf(`{"user_id":null,"ts":%q}`, ts)), "user_id", ReasonMissingKey},
		{json.RawMessage(`{"user_id":"a","amount":1}`), "ts", ReasonMissingTime},
		{json.RawMessage(fmt.Sprintf(`{"user_id":42,"ts":%q}`, ts)), "user_id", ReasonWrongType},
		{json.RawMessage(fmt.Sprintf(`{"user_id":"a","ts":%q,"amount":"12"}`, ts)), "amount", ReasonWrongType},
		{json.RawMessage(fmt.Sprintf(`{"user_id":"a","ts":%q,"items":1.5}`, ts)), "items", ReasonWrongType},
		{json.RawMessage(fmt.Sprintf(`{"user_id":"a","ts":%q,"flag":"yes"}`, ts)), "flag", ReasonWrongType},
		{json.RawMessage(fmt.Sprintf(`{"user_id":"a","ts":%q,"amount":1e999}`, ts)), "amount", ReasonWrongType},
		{json.RawMessage(`{"user_id":"a","ts":"yesterday"}`), "ts", ReasonWrongType},
		{json.RawMessage(`{"user_id":"a","ts":true}`), "ts", ReasonWrongType},
		{json.RawMessage(fmt.Sprintf(`{"user_id":"a","ts":%d}`, e.now.Add(16*time.Minute).UnixMilli())), "ts", ReasonFuture},
	}
	batch := []json.RawMessage{good("g0")}
	for _, c := range cases {
		batch = append(batch, c.event, good(fmt.Sprintf("g%d", len(batch))))
	}

	// Atomic: every bad row reported, nothing applied.
	res, err := p.PushJSON(context.Background(), "tx", batch, PushOptions{Atomic: true})
	if !errors.Is(err, ErrAtomicRejected) || res.Accepted != 0 || len(res.Rejected) != len(cases) {
		t.Fatalf("atomic push: %+v, %v; want ErrAtomicRejected with %d rejections", res, err, len(cases))
	}
	v, _ := e.reg.Snapshot().View("v", 0)
	out := make([]aggregate.Result, 1)
	key, _ := keyenc.AppendEntity(nil, aggregate.Value{Kind: aggregate.KindString, S: "g0"})
	vk := featurestore.ViewKey{ID: v.ID, Version: uint32(v.Version)}
	if err := e.store.Read(vk, v.Layout, e.part(key), key, []int{0}, e.now.UnixMilli(), out); err != nil || out[0].Status != aggregate.StatusNotFound {
		t.Fatalf("atomic push applied g0: %+v %v", out[0], err)
	}

	// Not atomic: the good rows are applied, each bad row is reported.
	res, err = p.PushJSON(context.Background(), "tx", batch, PushOptions{})
	if err != nil || res.Accepted != len(cases)+1 {
		t.Fatalf("push: %+v, %v; want %d accepted", res, err, len(cases)+1)
	}
	for i, c := range cases {
		got := res.Rejected[i]
		if got.Index != 2*i+1 || got.Field != c.field || got.Code != c.code || got.Reason == "" {
			t.Errorf("case %d (%s): rejected %+v, want index %d field %q code %q", i, c.event, got, 2*i+1, c.field, c.code)
		}
	}
	if err := e.store.Read(vk, v.Layout, e.part(key), key, []int{0}, e.now.UnixMilli(), out); err != nil || out[0].Value.I != 1 {
		t.Fatalf("g0 after push: %+v %v, want count 1", out[0], err)
	}
	rejected := p.Stats()[0].Rejected
	var total uint64
	for _, n := range rejected {
		total += n
	}
	if total != uint64(2*len(cases)) || rejected[ReasonWrongType] != 14 {
		t.Fatalf("rejection counters %v: want %d in all, 14 wrong_type", rejected, 2*len(cases))
	}
}

// TestPushHistory: an event valid in every way but older than the view's
// TTL (2d) is history: accepted, not rejected, counted as history and not
// as applied, and folded into no view (the entity still has no state),
// with atomic too, since it is not an error.
func TestPushHistory(t *testing.T) {
	e := newEnv(t, defsFor("tx", "v", "unused"))
	p := e.pusher(t)
	old := json.RawMessage(fmt.Sprintf(`{"user_id":"h","ts":%d,"amount":1}`, e.now.Add(-49*time.Hour).UnixMilli()))
	fresh := json.RawMessage(fmt.Sprintf(`{"user_id":"f","ts":%d,"amount":1}`, e.now.Add(-time.Hour).UnixMilli()))
	for _, atomic := range []bool{true, false} {
		res, err := p.PushJSON(context.Background(), "tx", []json.RawMessage{old, fresh}, PushOptions{Atomic: atomic})
		if err != nil || res.Accepted != 2 || len(res.Rejected) != 0 {
			t.Fatalf("push (atomic %v): %+v, %v; want both accepted", atomic, res, err)
		}
	}
	st := p.Stats()[0]
	if st.History != 2 || st.Applied != 2 || len(st.Rejected) != 0 {
		t.Fatalf("stats %+v: want 2 history, 2 applied, none rejected", st)
	}
	v, _ := e.reg.Snapshot().View("v", 0)
	vk := featurestore.ViewKey{ID: v.ID, Version: uint32(v.Version)}
	out := make([]aggregate.Result, 1)
	for user, want := range map[string]aggregate.Status{"h": aggregate.StatusNotFound, "f": aggregate.StatusPresent} {
		key, _ := keyenc.AppendEntity(nil, aggregate.Value{Kind: aggregate.KindString, S: user})
		if err := e.store.Read(vk, v.Layout, e.part(key), key, []int{0}, e.now.UnixMilli(), out); err != nil || out[0].Status != want {
			t.Errorf("%s: %+v %v, want status %v", user, out[0], err, want)
		}
	}
}

func TestPushRequestErrors(t *testing.T) {
	e := newEnv(t, defsFor("tx", "v", "topic"))
	p, err := NewPusher(e.reg, e.store, Options{MaxBatch: 2, Now: func() time.Time { return e.now }})
	if err != nil {
		t.Fatal(err)
	}
	ev := []json.RawMessage{[]byte(`{}`)}
	for _, c := range []struct {
		source string
		events []json.RawMessage
		want   error
	}{
		{"nope", ev, ErrUnknownSource},
		{"tx_kafka", ev, ErrNotPushSource},
		{"tx", nil, ErrEmptyBatch},
		{"tx", append(ev, ev[0], ev[0]), ErrBatchTooLarge},
	} {
		if _, err := p.PushJSON(context.Background(), c.source, c.events, PushOptions{}); !errors.Is(err, c.want) {
			t.Errorf("push to %q with %d events: %v, want %v", c.source, len(c.events), err, c.want)
		}
	}
}

func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{`{"user_id":"a","ts":1,"amount":1.5,"merchant":"m","items":3,"flag":true}`,
		`{"user_id":"a","ts":"2026-11-24T10:00:00Z"}`, `{`, `[]`, `{"user_id":1}`, `{"ts":"x"}`, `null`} {
		f.Add([]byte(s))
	}
	src := &registry.Source{Name: "tx", EntityKey: registry.KeyFields{"user_id"}, EventTime: "ts", Fields: []registry.Field{
		{Name: "amount", Kind: aggregate.KindFloat64}, {Name: "flag", Kind: aggregate.KindBool},
		{Name: "items", Kind: aggregate.KindInt64}, {Name: "merchant", Kind: aggregate.KindString}}}
	d := newDecoder(src, []aggregate.Kind{aggregate.KindString})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 4096 {
			return
		}
		var p fastjsonParser
		rec := Record{Fields: make([]aggregate.Value, 4)}
		if err := d.decodeJSON(&p, data, &rec); err != nil {
			if err.Code == "" || err.Reason == "" {
				t.Fatalf("rejection without code or reason: %+v", err)
			}
			return
		}
		if rec.Key[0].Kind != aggregate.KindString {
			t.Fatalf("accepted event without a string key: %+v", rec)
		}
	})
}
