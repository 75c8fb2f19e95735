package helmtest

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestValuesDocumented fails when a value of values.yaml is missing from the
// chart README's table: every value is documented there, as `a.b.c`, or its
// parent is documented as a whole (`resources`).
func TestValuesDocumented(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "featured", "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var values map[string]any
	if err := yaml.UnmarshalStrict(data, &values); err != nil {
		t.Fatalf("values.yaml: %v", err)
	}
	readme, err := os.ReadFile(filepath.Join("..", "featured", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	documented := func(key string) bool { return strings.Contains(string(readme), "| `"+key+"` |") }
	var missing []string
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		if documented(prefix) {
			return
		}
		m, ok := v.(map[string]any)
		if !ok || len(m) == 0 {
			missing = append(missing, prefix)
			return
		}
		for k, sub := range m {
			walk(prefix+"."+k, sub)
		}
	}
	for k, v := range values {
		walk(k, v)
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("values missing from helm/featured/README.md's table: %v", missing)
	}
}
