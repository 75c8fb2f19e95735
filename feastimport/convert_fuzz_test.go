package feastimport

import (
	"testing"
	"time"

	feastcore "github.com/featured-dev/featured/api/feast/core"
	"github.com/featured-dev/featured/registry"
)

// FuzzImport feeds Convert arbitrary bytes: it never panics, and a document
// it returns always parses as definitions (a name or field that would need
// quoting beyond what it writes would fail here).
func FuzzImport(f *testing.F) {
	f.Add(reg(f, driver, fv("v", []string{"driver"}, push("s"), time.Hour, feat("x", DOUBLE), feat("n", STRING))))
	f.Add(reg(f, driver, sfv("w", []string{"driver"}, kafka("k", "t"), 24*time.Hour,
		[]*feastcore.FeatureSpecV2{feat("km", DOUBLE)}, agg("km", "sum", time.Hour, 0, ""), agg("km", "mean", 0, 0, "lifetime"))))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 64<<10 {
			return
		}
		res, err := Convert(b, Options{})
		if err != nil {
			return
		}
		if _, err := registry.ParseYAML(res.YAML); err != nil {
			t.Fatalf("the document does not parse: %v\n%s", err, res.YAML)
		}
	})
}
