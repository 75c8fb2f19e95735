package registry

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// TestDataDriven runs the apply/plan/delete/resolve sequences in testdata/.
// Each file starts from an empty registry. Commands:
//
//	apply / plan          input: a YAML definitions document; prints the plan or the errors
//	apply-json            input: a JSON definitions document
//	delete kind=K name=N [version=V]
//	resolve               input: one ref per line; prints what each resolves to
//	service name=N        resolves a feature service
//	views                 dumps every live view version and each source's ingest list
//	reopen                closes the registry, reopens it from its file, and
//	                      checks that the views dump is identical
//
// A refused apply or delete is also checked to leave the registry (snapshot
// and file) unchanged. Run with -rewrite to update the files; review the diff.
func TestDataDriven(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		file := filepath.Join(t.TempDir(), "registry.json")
		clock := newTestClock()
		r := openTest(t, file, clock)
		datadriven.RunTest(t, path, func(t *testing.T, td *datadriven.TestData) string {
			switch td.Cmd {
			case "apply", "plan", "apply-json":
				var d *Definitions
				var err error
				if td.Cmd == "apply-json" {
					d, err = ParseJSON([]byte(td.Input))
				} else {
					d, err = ParseYAML([]byte(td.Input))
				}
				if err != nil {
					return "parse error:\n" + errLines(err)
				}
				if td.Cmd == "plan" {
					before := r.Snapshot()
					p, err := r.Plan(d)
					if r.Snapshot() != before {
						t.Errorf("plan published a snapshot")
					}
					if err != nil {
						return "error:\n" + errLines(err)
					}
					return p.String()
				}
				before := r.Snapshot()
				p, err := r.Apply(d)
				if err != nil {
					if r.Snapshot() != before {
						t.Errorf("refused apply published a snapshot")
					}
					return "error:\n" + errLines(err)
				}
				if p.Changed() == (r.Snapshot() == before) {
					t.Errorf("plan.Changed()=%v but snapshot replaced=%v", p.Changed(), r.Snapshot() != before)
				}
				return p.String()
			case "delete":
				var kind, name string
				version := 0
				td.ScanArgs(t, "kind", &kind)
				td.ScanArgs(t, "name", &name)
				td.MaybeScanArgs(t, "version", &version)
				before := r.Snapshot()
				p, err := r.Delete(kind, name, version)
				if err != nil {
					if r.Snapshot() != before {
						t.Errorf("refused delete published a snapshot")
					}
					return "error:\n" + errLines(err)
				}
				return p.String()
			case "resolve":
				refs := strings.Split(strings.TrimSpace(td.Input), "\n")
				res, err := r.Snapshot().Resolve(refs)
				if err != nil {
					return "error:\n" + errLines(err)
				}
				return resolvedLines(res)
			case "service":
				var name string
				td.ScanArgs(t, "name", &name)
				res, err := r.Snapshot().ResolveService(name)
				if err != nil {
					return "error:\n" + errLines(err)
				}
				return resolvedLines(res)
			case "views":
				return dumpViews(r.Snapshot())
			case "reopen":
				before := dumpViews(r.Snapshot())
				if err := r.Close(); err != nil {
					t.Fatal(err)
				}
				r = openTest(t, file, clock)
				if after := dumpViews(r.Snapshot()); after != before {
					t.Fatalf("reopen changed the registry:\nbefore:\n%s\nafter:\n%s", before, after)
				}
				return fmt.Sprintf("reopened at generation %d\n", r.Snapshot().Generation())
			}
			t.Fatalf("unknown command %q", td.Cmd)
			return ""
		})
	})
}

func resolvedLines(res []Resolved) string {
	var b strings.Builder
	for _, x := range res {
		fmt.Fprintf(&b, "%s -> %s v%d (id %d) feature %d %s\n", x.Ref, x.View.Name, x.View.Version, x.View.ID, x.Feature, x.Name)
	}
	return b.String()
}
