package ingest

import (
	"strings"
	"testing"

	"github.com/valyala/fastjson"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/registry"
)

// TestDecodeRefusesBadKeys: the JSON decoder shared by push and Kafka (whose
// rejects are dead-lettered with the code) applies keyenc's key rule.
func TestDecodeRefusesBadKeys(t *testing.T) {
	d := newDecoder(&registry.Source{EntityKey: "id", EventTime: "ts"}, aggregate.KindString)
	var p fastjson.Parser
	for _, in := range []string{`{"id":"","ts":1}`, `{"id":"a\u0000b","ts":1}`, `{"id":"` + strings.Repeat("k", 1025) + `","ts":1}`} {
		var rec Record
		rowErr := d.decodeJSON(&p, []byte(in), &rec)
		if rowErr == nil || rowErr.Code != ReasonBadKey || len(rowErr.Reason) > 120 {
			t.Errorf("%.40s: %v, want code %s", in, rowErr, ReasonBadKey)
		}
	}
	var rec Record
	if rowErr := d.decodeJSON(&p, []byte(`{"id":"u1","ts":1}`), &rec); rowErr != nil {
		t.Errorf("good key: %v", rowErr)
	}
}
