package testdefs_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/featured-dev/featured/internal/testdefs"
	"github.com/featured-dev/featured/registry"
)

// TestEveryOperator: the shared definitions apply, and the view has every
// operator the registry knows, so a test built on it covers them all.
func TestEveryOperator(t *testing.T) {
	doc := testdefs.Doc(
		[]string{testdefs.Source("tx", "push", ""), testdefs.Source("tx_kafka", "kafka", "events")},
		[]string{testdefs.View("spend", "tx", "2d"), testdefs.View("spend_kafka", "tx_kafka", "3d")})
	d, err := registry.ParseYAML([]byte(doc))
	if err != nil {
		t.Fatalf("parse:\n%s\n%v", doc, err)
	}
	reg, err := registry.Open(filepath.Join(t.TempDir(), "registry.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	if _, err := reg.Apply(d); err != nil {
		t.Fatalf("apply:\n%s\n%v", doc, err)
	}
	for _, op := range []string{"count", "sum", "min", "max", "avg", "last", "last_k", "count_distinct", "stddev", "variance"} {
		if !strings.Contains(doc, "aggregation: "+op+",") {
			t.Errorf("no feature uses %s", op)
		}
	}
	if i := testdefs.Feature("variance_items_2d"); i != 17 {
		t.Errorf("Feature(variance_items_2d) = %d", i)
	}
	if i := testdefs.Feature("nope"); i != -1 {
		t.Errorf("Feature(nope) = %d", i)
	}
}
