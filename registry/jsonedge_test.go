package registry

import (
	"strings"
	"testing"

	"github.com/featured-dev/featured/internal/jsoncheck"
	"github.com/featured-dev/featured/internal/jsonedge"
)

// TestJSONEdgeCases runs the shared table (internal/jsonedge) through
// ParseJSON, encoding/json's path for definitions: strings where a
// document has them, and repeated keys at any depth.
func TestJSONEdgeCases(t *testing.T) {
	for _, c := range jsonedge.Strings {
		d, err := ParseJSON([]byte(`{"feature_services":[{"name":"s","features":[` + c.JSON + `]}]}`))
		switch {
		case c.Refused != "":
			if err == nil || !strings.Contains(err.Error(), c.Refused) {
				t.Errorf("%s: %v, want %q", c.Name, err, c.Refused)
			}
		case err != nil:
			t.Errorf("%s: %v", c.Name, err)
		case d.FeatureServices[0].Features[0] != c.Value:
			t.Errorf("%s: read %q, want %q", c.Name, d.FeatureServices[0].Features[0], c.Value)
		}
	}
	// asKey spells the table's key "x" as a known key, keeping its escape.
	asKey := func(lit string) string {
		return strings.ReplaceAll(strings.ReplaceAll(lit, `\u0078`, `\u0065ntities`), "x", "entities")
	}
	for _, c := range jsonedge.Duplicates {
		for _, doc := range []string{
			`{"feature_services":[],` + asKey(c.First) + `:[],` + asKey(c.Second) + `:[]}`,
			`{"feature_services":[{"name":"s",` + c.First + `:1,` + c.Second + `:2}]}`,
		} {
			if _, err := ParseJSON([]byte(doc)); err == nil || !strings.Contains(err.Error(), jsoncheck.MsgDuplicateKey) {
				t.Errorf("%s: %s: %v", c.Name, doc, err)
			}
		}
	}
}
