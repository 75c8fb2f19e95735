package lint

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/featured-dev/featured"

// allowed lists, per package of ours, the packages of ours it may import.
// A package not listed may import none of ours. Test-only imports are not
// checked.
var allowed = map[string][]string{
	"aggregate":                     {},
	"aggregate/aggregatetest":       {"aggregate"},
	"internal/keyenc":               {"aggregate", "internal/partition"},
	"internal/partition":            {},
	"internal/bytesize":             {},
	"internal/auth":                 {},
	"internal/certs":                {},
	"internal/certs/certstest":      {},
	"internal/diskguard":            {},
	"internal/jsoncheck":            {},
	"internal/jsonedge":             {"internal/jsoncheck"},
	"registry":                      {"aggregate", "internal/jsoncheck", "internal/partition"},
	"featurestore":                  {"aggregate", "internal/keyenc"},
	"featurestore/featurestoretest": {"featurestore"},
	"api/featured/v1":               {},
	"api/featured/peer/v1":          {"api/featured/v1"},
	"api/feast/types":               {},
	"api/feast/serving":             {"api/feast/types"},
	"api/feast/core":                {"api/feast/types"},
	"ingest":                        {"aggregate", "featurestore", "registry", "internal/keyenc", "internal/jsoncheck", "internal/partition"},
	// offline/: the log knows nothing of exports; the export reads the log;
	// the skew check runs exports; the root wires them to HTTP and backfill.
	"offline/internal/codec": {"aggregate"},
	"offline/eventlog":       {"aggregate", "featurestore", "internal/keyenc", "offline/internal/codec"},
	"offline/export":         {"aggregate", "featurestore", "registry", "internal/keyenc", "offline/eventlog", "offline/internal/codec"},
	"offline/skew":           {"aggregate", "featurestore", "registry", "internal/keyenc", "offline/eventlog", "offline/export", "offline/internal/codec"},
	"offline":                {"aggregate", "featurestore", "registry", "internal/bytesize", "offline/eventlog", "offline/export", "offline/skew"},
	"serving":                {"aggregate", "featurestore", "registry", "ingest", "offline", "offline/eventlog", "offline/export", "internal/keyenc", "internal/jsoncheck", "internal/diskguard", "internal/auth", "internal/partition", "api/featured/v1", "api/featured/peer/v1", "api/feast/serving", "api/feast/types"},
	// backup moves a checkpointed data dir to and from a destination; the
	// server (cmd/featured) takes the checkpoint.
	"backup": {"featurestore"},
	// cluster decides who holds which partition from Kafka's group
	// protocol; it moves no data, so it needs none of ours.
	"cluster": {},
	// cluster/replicas keeps a node's replicas in step with the owner map:
	// the ingest partition set, freshness from the consumers' positions.
	"cluster/replicas": {"cluster", "ingest"},
	// telemetry reads the Stats of the packages that do the work and feeds
	// their hooks; none of them imports it (or OpenTelemetry).
	"internal/telemetry": {"cluster", "featurestore", "ingest", "offline", "offline/export", "registry", "serving"},
	// feastimport turns a Feast registry into definitions (it writes
	// durations the registry's way); cmd/featured reads the file.
	"feastimport":        {"registry", "api/feast/core", "api/feast/types"},
	"cmd/featured":       {"*"},
	"loadtest":           {"*"},
	"internal/kafkatest": {},
	"internal/lint":      {},
	"internal/testdefs":  {},
}

// TestImportDirection fails when a package imports one of ours that the
// layout does not allow, or when a package of ours is missing from the
// table (decide where it sits before adding it).
func TestImportDirection(t *testing.T) {
	out, err := exec.Command("go", "list", "-json", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		if strings.HasPrefix(rel, "loadtest") {
			rel = "loadtest"
		}
		ok, listed := allowed[rel]
		if !listed {
			t.Errorf("package %s is not in the import table of internal/lint", p.ImportPath)
			continue
		}
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp, module+"/") {
				continue
			}
			dep := strings.TrimPrefix(imp, module+"/")
			if !contains(ok, dep) && !contains(ok, "*") {
				t.Errorf("%s imports %s, which the layout forbids (allowed: %v)", rel, dep, ok)
			}
			if dep == "cmd/featured" || strings.HasPrefix(dep, "loadtest") {
				t.Errorf("%s imports %s: nothing may import the binary or the load generator", rel, dep)
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
