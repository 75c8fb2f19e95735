package registry

import (
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const maxFuzzInput = 64 << 10

func fuzzSeeds(f *testing.F) {
	if b, err := os.ReadFile("../examples/defs.yaml"); err == nil {
		f.Add(b)
	}
	f.Add([]byte(baseYAML))
	f.Add([]byte(`{"entities": [{"name": "u", "join_key": "id", "type": "int64"}]}`))
	f.Add([]byte("a: &a [x]\nb: [*a, *a]\n"))
	f.Add([]byte("feature_views: [{name: v, features: [{name: f, aggregation: last_k, k: 3}]}]"))
}

// checkParsed: whatever parses must survive a JSON round trip unchanged,
// and validating it against an empty and a populated registry must not
// panic.
func checkParsed(t *testing.T, d *Definitions) {
	j, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseJSON(j)
	if err != nil {
		t.Fatalf("ParseJSON(json.Marshal(defs)): %v\n%s", err, j)
	}
	if diff := cmp.Diff(d, back, cmp.Transformer("nilEmpty", func(m map[string]string) map[string]string {
		if len(m) == 0 {
			return nil
		}
		return m
	})); diff != "" {
		t.Fatalf("JSON round trip (-parsed +reparsed):\n%s", diff)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	_, _, _ = compile(emptySnapshot(), d, now)
	if base, _, err := compile(emptySnapshot(), mustParse(t, baseYAML), now); err == nil {
		_, _, _ = compile(base, d, now)
	}
}

func FuzzParseYAML(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxFuzzInput {
			return
		}
		if d, err := ParseYAML(data); err == nil {
			checkParsed(t, d)
		}
	})
}

func FuzzParseJSON(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxFuzzInput {
			return
		}
		if d, err := ParseJSON(data); err == nil {
			checkParsed(t, d)
		}
	})
}
