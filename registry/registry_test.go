package registry

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/featured-dev/featured/aggregate"
)

func TestPersistenceAcrossOpen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "data", "registry.json") // the directory is created
	clock := newTestClock()
	r := openTest(t, path, clock)
	mustApply(t, r, baseYAML)
	mustApply(t, r, strings.Replace(baseYAML, "window: 7d, hop: 1h", "window: 6d, hop: 1h", 1))
	mustApply(t, r, `
feature_views:
  - name: user_count
    entity: user
    source: transactions
    ttl: 1d
    features: [{name: n, aggregation: count}]
`)
	if _, err := r.Delete(KindView, "user_count", 0); err != nil {
		t.Fatal(err)
	}
	before := r.Snapshot()
	dump := dumpViews(before)
	v1, _ := before.View("user_spend", 1)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	r2 := openTest(t, path, clock)
	after := r2.Snapshot()
	if after.Generation() != before.Generation() || after.Generation() != 4 {
		t.Errorf("generation %d after reopen, %d before (want 4)", after.Generation(), before.Generation())
	}
	if got := dumpViews(after); got != dump {
		t.Errorf("views after reopen:\n%s\nbefore:\n%s", got, dump)
	}
	v1b, err := after.View("user_spend", 1)
	if err != nil {
		t.Fatal(err)
	}
	if !v1b.CreatedAt.Equal(v1.CreatedAt) || v1b.ID != v1.ID || v1b.Layout == nil {
		t.Errorf("v1 after reopen: %+v, before %+v", v1b, v1)
	}
	if diff := fmt.Sprint(after.Definitions()) != fmt.Sprint(before.Definitions()); diff {
		t.Errorf("definitions differ after reopen")
	}
	// The deleted view's ID (2) stays reserved: a new name gets 3, and
	// user_count continues at v2.
	mustApply(t, r2, `
feature_views:
  - {name: other, entity: user, source: transactions, ttl: 1d, features: [{name: n, aggregation: count}]}
  - {name: user_count, entity: user, source: transactions, ttl: 1d, features: [{name: n, aggregation: count}]}
`)
	other, _ := r2.Snapshot().View("other", 0)
	uc, _ := r2.Snapshot().View("user_count", 0)
	if other.ID != 3 || uc.ID != 2 || uc.Version != 2 {
		t.Errorf("after reopen: other id %d (want 3), user_count id %d v%d (want 2, v2)", other.ID, uc.ID, uc.Version)
	}
	// Only the registry file and its lock are left in the directory.
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if fmt.Sprint(names) != "[registry.json registry.json.lock]" {
		t.Errorf("files left: %v", names)
	}
}

func TestOpenNewFile(t *testing.T) {
	r, path := newTestRegistry(t)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("Open did not create the file: %v", err)
	}
	s := r.Snapshot()
	if s.Generation() != 0 || len(s.Views()) != 0 || len(s.Sources()) != 0 {
		t.Errorf("new registry not empty: %s", dumpViews(s))
	}
	if _, err := s.View("x", 0); !errors.Is(err, ErrUnknownView) {
		t.Errorf("View on empty registry: %v", err)
	}
	if k := s.SourceKeyKinds("x"); k != nil {
		t.Errorf("SourceKeyKinds of unknown source = %v", k)
	}
}

func TestOpenLocked(t *testing.T) {
	r, path := newTestRegistry(t)
	if _, err := Open(path); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second Open of %s: %v, want in use", path, err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	r2, err := Open(path)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	r2.Close()
}

func TestOpenCorrupt(t *testing.T) {
	tests := map[string]string{
		"not json":       "{",
		"empty":          "",
		"future format":  `{"format": 2, "next_view_id": 1}`,
		"bad view id":    `{"format": 1, "next_view_id": 1, "views": [{"name": "v", "id": 5}]}`,
		"bad field kind": `{"format": 1, "next_view_id": 1, "sources": [{"name": "s", "kind": "push", "fields": [{"name": "a", "kind": "int32"}]}]}`,
		"unknown aggregation": `{"format": 1, "next_view_id": 2, "views": [{"name": "v", "id": 1, "last_version": 1, "versions": [
			{"version": 1, "entity": {"name": "u", "join_key": "id", "type": "string"}, "source": {"name": "s", "kind": "push"}, "ttl_ms": 1000,
			 "features": [{"name": "f", "aggregation": "median"}]}]}]}`,
	}
	for name, content := range tests {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "registry.json")
			if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			r, err := Open(path)
			if !errors.Is(err, ErrCorrupt) {
				if r != nil {
					r.Close()
				}
				t.Fatalf("Open: %v, want ErrCorrupt", err)
			}
			// The file is left for a person to look at.
			if b, _ := os.ReadFile(path); string(b) != content {
				t.Errorf("Open changed a corrupt file")
			}
			// And the lock was released.
			r, err = Open(path)
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("second Open: %v", err)
			}
		})
	}
}

func TestClosed(t *testing.T) {
	r, _ := newTestRegistry(t)
	mustApply(t, r, baseYAML)
	r.Close()
	if _, err := r.Apply(mustParse(t, baseYAML)); !errors.Is(err, ErrClosed) {
		t.Errorf("Apply after Close: %v", err)
	}
	if _, err := r.Delete(KindService, "fraud_model_v1", 0); !errors.Is(err, ErrClosed) {
		t.Errorf("Delete after Close: %v", err)
	}
	if _, err := r.Snapshot().View("user_spend", 0); err != nil {
		t.Errorf("Snapshot after Close: %v", err)
	}
}

// TestPersistFailure: when the file cannot be written, Apply fails and
// publishes nothing.
func TestPersistFailure(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "registry.json")
	r := openTest(t, path, newTestClock())
	before := r.Snapshot()
	ch := r.Changed()
	if err := os.RemoveAll(filepath.Dir(path)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Apply(mustParse(t, baseYAML)); err == nil {
		t.Fatal("Apply succeeded without a directory to write to")
	}
	if r.Snapshot() != before {
		t.Error("failed Apply published a snapshot")
	}
	select {
	case <-ch:
		t.Error("failed Apply closed Changed")
	default:
	}
}

func TestChanged(t *testing.T) {
	r, _ := newTestRegistry(t)
	ch := r.Changed()
	mustApply(t, r, baseYAML)
	select {
	case <-ch:
	default:
		t.Fatal("Apply did not close the Changed channel")
	}
	ch2 := r.Changed()
	if ch2 == ch {
		t.Fatal("Changed returned the closed channel again")
	}
	mustApply(t, r, baseYAML) // unchanged
	select {
	case <-ch2:
		t.Fatal("an unchanged apply closed Changed")
	default:
	}
	if _, err := r.Delete(KindService, "fraud_model_v1", 0); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch2:
	default:
		t.Fatal("Delete did not close the Changed channel")
	}
}

// TestSnapshotIsolation: a Snapshot held across changes keeps answering as
// of its generation, and View pointers are kept across applies that do not
// touch the view's source.
func TestSnapshotIsolation(t *testing.T) {
	r, _ := newTestRegistry(t)
	mustApply(t, r, baseYAML)
	old := r.Snapshot()
	v1, _ := old.View("user_spend", 0)
	mustApply(t, r, strings.Replace(baseYAML, "ttl: 8d", "ttl: 9d", 1))
	mustApply(t, r, "entities: [{name: account, join_key: account_id, type: int64}]")
	if v, _ := old.View("user_spend", 0); v.Version != 1 || old.Generation() != 1 {
		t.Errorf("old snapshot changed: latest v%d, generation %d", v.Version, old.Generation())
	}
	if _, ok := old.Entity("account"); ok {
		t.Error("old snapshot sees a later entity")
	}
	cur := r.Snapshot()
	if v, _ := cur.View("user_spend", 1); v != v1 {
		t.Error("an apply that did not touch the source replaced the View of v1")
	}
	if v, _ := cur.View("user_spend", 0); v.Version != 2 || v.TTL != 9*24*time.Hour {
		t.Errorf("latest is v%d ttl %v", v.Version, v.TTL)
	}
}

// TestConcurrentReadsDuringApply reads snapshots from several goroutines
// while another applies new versions and source changes; run with -race.
// Every snapshot a reader sees must be consistent on its own.
func TestConcurrentReadsDuringApply(t *testing.T) {
	r, _ := newTestRegistry(t)
	mustApply(t, r, baseYAML)
	const versions = 15
	var done atomic.Bool
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	for range 4 {
		wg.Go(func() {
			var lastGen uint64
			for reads := 0; !done.Load() || reads < 100; reads++ {
				s := r.Snapshot()
				if s.Generation() < lastGen {
					errc <- fmt.Errorf("generation went back from %d to %d", lastGen, s.Generation())
					return
				}
				lastGen = s.Generation()
				res, err := s.Resolve([]string{"user_spend:spend_7d", "user_spend@v1:last_merchant", "user_spend:last_merchant"})
				if err != nil {
					errc <- err
					return
				}
				latest, _ := s.View("user_spend", 0)
				if res[0].View != latest || res[1].View.Version != 1 {
					errc <- fmt.Errorf("gen %d: resolved %s v%d, latest v%d", s.Generation(), res[0].View.Name, res[0].View.Version, latest.Version)
					return
				}
				src, _ := s.Source("transactions")
				for _, v := range s.LiveViews("transactions") {
					f := v.Features[v.FeatureIndex("last_merchant")]
					if v.Detached || src.Fields[f.Spec.Field].Name != "merchant" {
						errc <- fmt.Errorf("gen %d: %s v%d reads field %d of %v for merchant", s.Generation(), v.Name, v.Version, f.Spec.Field, src.Fields)
						return
					}
				}
			}
		})
	}
	for i := range versions {
		doc := strings.Replace(baseYAML, "ttl: 8d", fmt.Sprintf("ttl: %dd", 9+i), 1)
		// Every apply also adds a field that sorts before merchant, moving
		// its index.
		doc = strings.Replace(doc, "flagged: bool", fmt.Sprintf("flagged: bool, f%02d: int64", i), 1)
		if _, err := r.Apply(mustParse(t, doc)); err != nil {
			t.Fatal(err)
		}
	}
	done.Store(true)
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	if v, _ := r.Snapshot().View("user_spend", 0); v.Version != versions+1 {
		t.Errorf("latest v%d, want v%d", v.Version, versions+1)
	}
}

func TestPlanString(t *testing.T) {
	p := &Plan{Changes: []Change{
		{Kind: KindEntity, Name: "user", Action: ActionCreate, Detail: "join key user_id, string"},
		{Kind: KindSource, Name: "transactions", Action: ActionUpdate, Detail: "field currency (string) added"},
		{Kind: KindView, Name: "user_spend", Action: ActionNewVersion, FromVersion: 1, ToVersion: 2, Detail: "spend_7d window 7d -> 6d"},
		{Kind: KindView, Name: "user_count", Action: ActionUnchanged, FromVersion: 3},
		{Kind: KindView, Name: "old", Action: ActionDelete, FromVersion: 1},
		{Kind: KindView, Name: "old", Action: ActionDelete, FromVersion: 2},
		{Kind: KindService, Name: "m", Action: ActionDelete},
	}}
	want := `+ entity user (join key user_id, string)
~ source transactions: field currency (string) added
~ view user_spend v1 -> v2: spend_7d window 7d -> 6d
= view user_count v3 (unchanged)
- view old v1
- view old v2
- service m
Plan: 1 to create, 1 new version, 1 to update, 3 to delete.
`
	if got := p.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if got := (&Plan{}).String(); got != "No changes.\n" {
		t.Errorf("empty plan: %q", got)
	}
	if !p.Changed() || (&Plan{Changes: []Change{{Action: ActionUnchanged}}}).Changed() {
		t.Error("Changed() wrong")
	}
}

func TestParseRef(t *testing.T) {
	good := map[string]Ref{
		"user_spend:spend_7d":    {View: "user_spend", Feature: "spend_7d"},
		"user_spend@v2:spend_7d": {View: "user_spend", Version: 2, Feature: "spend_7d"},
		"v@v10:f":                {View: "v", Version: 10, Feature: "f"},
	}
	for in, want := range good {
		got, err := ParseRef(in)
		if err != nil || got != want || got.String() != in {
			t.Errorf("ParseRef(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	// Feast's "@latest" is no pin: the reference follows the latest version.
	for _, in := range []string{"user_spend@latest:spend_7d", "user_spend@Latest:spend_7d"} {
		if got, err := ParseRef(in); err != nil || got != (Ref{View: "user_spend", Feature: "spend_7d"}) {
			t.Errorf("ParseRef(%q) = %+v, %v; want the unpinned ref", in, got, err)
		}
	}
	for _, in := range []string{"", "v", "v__f", "v:", ":f", "v:f:g", "v@:f", "v@latest@v1:f", "v@latestx:f", "v@v:f", "v@v0:f", "v@v01:f", "v@2:f", "v@v-1:f", "v@v+1:f", "V:f", "v:F", "v@v1@v2:f"} {
		_, err := ParseRef(in)
		var re *RefError
		if !errors.Is(err, ErrBadRef) || !errors.As(err, &re) || re.Ref != in {
			t.Errorf("ParseRef(%q) = %v, want a RefError wrapping ErrBadRef", in, err)
		}
	}
}

func TestResolveErrorsNameEveryRef(t *testing.T) {
	r, _ := newTestRegistry(t)
	mustApply(t, r, baseYAML)
	refs := []string{"user_spend:spend_7d", "user_spend:nope", "nope:x", "user_spend@v3:spend_7d", "bad"}
	res, err := r.Snapshot().Resolve(refs)
	if res != nil {
		t.Errorf("partial result %v", res)
	}
	var re *ResolveError
	if !errors.As(err, &re) {
		t.Fatalf("not a ResolveError: %v", err)
	}
	var bad []string
	for _, x := range re.Refs {
		bad = append(bad, x.Ref)
	}
	if fmt.Sprint(bad) != "[user_spend:nope nope:x user_spend@v3:spend_7d bad]" {
		t.Errorf("bad refs %v", bad)
	}
	for _, want := range []error{ErrUnknownFeature, ErrUnknownView, ErrUnknownVersion, ErrBadRef} {
		if !errors.Is(err, want) {
			t.Errorf("errors.Is(err, %v) = false", want)
		}
	}
	if errors.Is(err, ErrUnknownService) {
		t.Error("errors.Is(err, ErrUnknownService) = true")
	}
	for _, ref := range bad {
		if !strings.Contains(err.Error(), fmt.Sprintf("%q", ref)) {
			t.Errorf("error does not name %q: %v", ref, err)
		}
	}
	if !strings.HasPrefix(err.Error(), "registry: 4 bad feature references: ") {
		t.Errorf("error: %v", err)
	}
}

func TestDurations(t *testing.T) {
	good := map[string]time.Duration{
		"7d":      7 * 24 * time.Hour,
		"90m":     90 * time.Minute,
		"1h30m":   90 * time.Minute,
		"500ms":   500 * time.Millisecond,
		"1s500ms": 1500 * time.Millisecond,
		"1d12h":   36 * time.Hour,
		"36500d":  maxDuration,
	}
	for in, want := range good {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "7", "d", "7x", "1.5h", "-1h", "0s", "1m1h", "1h1h", "1 h", "7D", "36501d", "99999999999999999999d", "18446744073709551623d", "18446744073709551616ms", "1msx"} {
		if d, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", in, d)
		}
	}
	format := map[time.Duration]string{
		7 * 24 * time.Hour:      "7d",
		90 * time.Minute:        "1h30m",
		1500 * time.Millisecond: "1s500ms",
		0:                       "0s",
		24 * time.Hour:          "1d",
	}
	for in, want := range format {
		if got := FormatDuration(in); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", in, got, want)
		}
		if in > 0 {
			if back, err := ParseDuration(FormatDuration(in)); err != nil || back != in {
				t.Errorf("round trip of %v: %v, %v", in, back, err)
			}
		}
	}
}

// TestOpTableMatchesAggregate keeps the registry's aggregation names and
// field-kind rules in step with aggregate's own (ParseOp, Op.Accepts).
func TestOpTableMatchesAggregate(t *testing.T) {
	kinds := []aggregate.Kind{aggregate.KindNull, aggregate.KindInt64, aggregate.KindFloat64, aggregate.KindString, aggregate.KindBool}
	for _, o := range ops {
		op, err := aggregate.ParseOp(o.name)
		if err != nil || op != o.op {
			t.Errorf("aggregate.ParseOp(%q) = %v, %v; registry has %v", o.name, op, err, o.op)
			continue
		}
		for _, k := range kinds {
			mine := o.accepts(k)
			if theirs := op.Accepts(k); mine != theirs && !(k == aggregate.KindNull && !o.optionalField) {
				t.Errorf("%s over %s: registry accepts=%v, aggregate accepts=%v", o.name, kindName(k), mine, theirs)
			}
		}
	}
	for name, k := range fieldKinds {
		if got, err := aggregate.ParseKind(name); err != nil || got != k {
			t.Errorf("aggregate.ParseKind(%q) = %v, %v; want %v", name, got, err, k)
		}
	}
	names := make([]string, len(ops))
	for i, o := range ops {
		names[i] = o.name
	}
	sort.Strings(names)
	t.Logf("aggregations: %v", names)
}

func TestFullName(t *testing.T) {
	v := &View{Name: "user_spend"}
	f := func(ref, want string) {
		t.Helper()
		if got := (Resolved{Ref: ref, Name: "spend_7d", View: v}).FullName(); got != want {
			t.Errorf("FullName of %q = %q, want %q", ref, got, want)
		}
	}
	f("user_spend:spend_7d", "user_spend__spend_7d")
	f("user_spend@v2:spend_7d", "user_spend@v2__spend_7d")
	f("user_spend@latest:spend_7d", "user_spend__spend_7d")
	f("user_spend@LATEST:spend_7d", "user_spend__spend_7d")
}
