package offline

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/featured-dev/featured/offline/eventlog"
	"github.com/featured-dev/featured/offline/export"
	"github.com/featured-dev/featured/registry"
)

// TestExportTwoVersions: with full names, an export names a pinned
// reference's column as lookups do (view@v2__feature), so two versions of
// one feature are exported side by side; without full names their columns
// collide and the error says to use full names.
func TestExportTwoVersions(t *testing.T) {
	dir := t.TempDir()
	r := newRig(t, dir, 1_800_000_000_000, eventlog.Options{})
	defer r.close()
	ctx := context.Background()
	samples := r.streamTo(t, 51, 4, 20)
	v2 := strings.Replace(testDefs, "{name: cnt_1h, aggregation: count, window: 1h}", "{name: cnt_1h, aggregation: count, window: 2h}", 1)
	defs, err := registry.ParseYAML([]byte(v2))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.reg.Apply(defs); err != nil {
		t.Fatal(err)
	}
	spine := filepath.Join(dir, "spine.parquet")
	writeSpine(t, spine, samples)

	refs := []string{"spend@v1:cnt_1h", "spend@v2:cnt_1h", "spend:sum_items_1d"}
	var m memSink
	if _, err := r.x.Export(ctx, spine, "", export.Request{Features: refs, FullNames: true}, &m); err != nil {
		t.Fatalf("export of two versions with full names: %v", err)
	}
	var names []string
	for _, f := range m.schema.Fields() {
		names = append(names, f.Name)
	}
	got := strings.Join(names, ",")
	for _, want := range []string{"spend@v1__cnt_1h", "spend@v2__cnt_1h", "spend__sum_items_1d"} {
		if !strings.Contains(","+got+",", ","+want+",") {
			t.Errorf("columns %s: no %s", got, want)
		}
	}
	// The same names as a lookup gives them.
	snap := r.reg.Snapshot()
	res, err := snap.Resolve(refs)
	if err != nil {
		t.Fatal(err)
	}
	for _, rr := range res {
		if !strings.Contains(got, rr.FullName()) {
			t.Errorf("lookup name %s not among the export's columns %s", rr.FullName(), got)
		}
	}

	_, err = r.x.Export(ctx, spine, "", export.Request{Features: refs[:2]}, &memSink{})
	if err == nil || !strings.Contains(err.Error(), "use full names") {
		t.Fatalf("two versions without full names: %v, want a collision naming full names", err)
	}
}
