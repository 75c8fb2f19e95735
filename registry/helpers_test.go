package registry

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/featured-dev/featured/aggregate"
)

// testClock is a deterministic Options.Now: every call is one second later.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock {
	return &testClock{t: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Second)
	return c.t
}

func openTest(t testing.TB, path string, clock *testClock) *Registry {
	t.Helper()
	r, err := OpenWithOptions(path, Options{Now: clock.Now})
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// newTestRegistry opens an empty registry in a temp dir.
func newTestRegistry(t testing.TB) (*Registry, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "registry.json")
	return openTest(t, path, newTestClock()), path
}

func mustParse(t testing.TB, yaml string) *Definitions {
	t.Helper()
	d, err := ParseYAML([]byte(yaml))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, yaml)
	}
	return d
}

func mustApply(t testing.TB, r *Registry, yaml string) *Plan {
	t.Helper()
	p, err := r.Apply(mustParse(t, yaml))
	if err != nil {
		t.Fatalf("apply: %v\n%s", err, yaml)
	}
	return p
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// refusedApply applies d, expects it refused, and checks that neither the
// published Snapshot nor the registry file changed.
func refusedApply(t testing.TB, r *Registry, path string, d *Definitions) error {
	t.Helper()
	before, file := r.Snapshot(), readFile(t, path)
	changed := r.Changed()
	p, err := r.Apply(d)
	if err == nil {
		t.Fatalf("apply succeeded, want an error; plan:\n%s", p)
	}
	if p != nil {
		t.Errorf("refused apply returned a plan: %v", p)
	}
	if r.Snapshot() != before {
		t.Errorf("refused apply published a new snapshot")
	}
	if !bytes.Equal(readFile(t, path), file) {
		t.Errorf("refused apply changed the registry file")
	}
	select {
	case <-changed:
		t.Errorf("refused apply closed the Changed channel")
	default:
	}
	return err
}

// errLines renders an error one problem per line, as the datadriven files
// show them.
func errLines(err error) string {
	var b strings.Builder
	var re *ResolveError
	switch {
	case len(ValidationErrors(err)) > 0:
		for _, ve := range ValidationErrors(err) {
			fmt.Fprintf(&b, "%s\n", ve)
		}
	case errors.As(err, &re):
		for _, r := range re.Refs {
			fmt.Fprintf(&b, "%s\n", r)
		}
	default:
		fmt.Fprintf(&b, "%v\n", err)
	}
	return b.String()
}

// dumpViews describes every live view version: binding, field indexes,
// specs, so that rebinding and detaching are visible in testdata.
func dumpViews(s *Snapshot) string {
	var b strings.Builder
	fmt.Fprintf(&b, "generation %d\n", s.Generation())
	for _, v := range s.Views() {
		fmt.Fprintf(&b, "%s v%d id=%d entity=%s(%s) ttl=%s", v.Name, v.Version, v.ID, v.EntityNames(), kindsName(v.KeyKinds()), FormatDuration(v.TTL))
		if v.Detached {
			b.WriteString(" detached")
		}
		fmt.Fprintf(&b, "\n  source %s key=%s time=%s fields=[", v.Source.Name, v.Source.EntityKey, v.Source.EventTime)
		for i, f := range v.Source.Fields {
			if i > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, "%s:%s", f.Name, kindName(f.Kind))
		}
		b.WriteString("]\n")
		for _, f := range v.Features {
			fmt.Fprintf(&b, "  %s = %s(", f.Name, f.Aggregation)
			if f.Field != "" {
				fmt.Fprintf(&b, "%s#%d", f.Field, f.Spec.Field)
			}
			b.WriteString(")")
			if f.Window > 0 {
				fmt.Fprintf(&b, " %s/%s", FormatDuration(f.Window), FormatDuration(f.Hop))
			}
			if f.K > 0 {
				fmt.Fprintf(&b, " k=%d", f.K)
			}
			b.WriteByte('\n')
		}
	}
	for _, src := range s.Sources() {
		fmt.Fprintf(&b, "source %s key=%s ingests:", src.Name, keyKindsName(s.SourceKeyKinds(src.Name)))
		for _, v := range s.LiveViews(src.Name) {
			fmt.Fprintf(&b, " %s@v%d", v.Name, v.Version)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func keyKindsName(k []aggregate.Kind) string {
	if len(k) == 0 {
		return "null"
	}
	return kindsName(k)
}
