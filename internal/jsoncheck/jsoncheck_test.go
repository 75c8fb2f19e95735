package jsoncheck_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/featured-dev/featured/internal/jsoncheck"
	"github.com/featured-dev/featured/internal/jsonedge"
)

func TestStrings(t *testing.T) {
	for _, c := range jsonedge.Strings {
		for _, doc := range []string{c.JSON, `{"k":` + c.JSON + `}`, `{` + c.JSON + `:1}`, `[1,` + c.JSON + `]`} {
			err := jsoncheck.Check([]byte(doc))
			if c.Refused == "" {
				if err != nil {
					t.Errorf("%s: %s refused: %v", c.Name, doc, err)
				}
				// encoding/json reads an accepted literal as the table says.
				var s string
				if json.Unmarshal([]byte(c.JSON), &s) != nil || s != c.Value {
					t.Errorf("%s: encoding/json reads %q, the table %q", c.Name, s, c.Value)
				}
				continue
			}
			var je *jsoncheck.Error
			if !errors.As(err, &je) || !strings.Contains(err.Error(), c.Refused) {
				t.Errorf("%s: %s: got %v, want an error containing %q", c.Name, doc, err, c.Refused)
			}
		}
	}
}

func TestDuplicateKeys(t *testing.T) {
	for _, c := range jsonedge.Duplicates {
		for _, doc := range []string{
			`{` + c.First + `:1,` + c.Second + `:2}`,
			`{"a":{"b":[{` + c.First + `:1,"y":0,` + c.Second + `:{}}]}}`,
		} {
			err := jsoncheck.Check([]byte(doc))
			if err == nil || !strings.Contains(err.Error(), jsoncheck.MsgDuplicateKey+` "x"`) {
				t.Errorf("%s: %s: %v", c.Name, doc, err)
			}
		}
	}
	// The same key in sibling or nested objects is no duplicate.
	if err := jsoncheck.Check([]byte(`{"x":{"x":1},"y":[{"x":1},{"x":2}]}`)); err != nil {
		t.Fatal(err)
	}
	// Past smallObject keys the map takes over.
	var b strings.Builder
	b.WriteString("{")
	for i := 0; i < 100; i++ {
		b.WriteString(`"k` + string(rune('a'+i%26)) + string(rune('a'+i/26)) + `":1,`)
	}
	if err := jsoncheck.Check([]byte(b.String() + `"last":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := jsoncheck.Check([]byte(b.String() + `"k\u0062d":1}`)); err == nil || !strings.Contains(err.Error(), `"kbd"`) {
		t.Fatalf("duplicate past 16 keys: %v", err)
	}
}

func TestDepthAndSyntax(t *testing.T) {
	deep := strings.Repeat("[", jsoncheck.MaxDepth) + strings.Repeat("]", jsoncheck.MaxDepth)
	if err := jsoncheck.Check([]byte(deep)); err != nil {
		t.Fatalf("%d levels: %v", jsoncheck.MaxDepth, err)
	}
	if err := jsoncheck.Check([]byte("[" + deep + "]")); err == nil || !strings.Contains(err.Error(), jsoncheck.MsgTooDeep) {
		t.Fatalf("%d levels: %v", jsoncheck.MaxDepth+1, err)
	}
	for _, bad := range []string{``, `{`, `{"a"}`, `[1,]`, `01`, `1.`, `-`, `tru`, `"\x"`, `{"a":1}x`, "\"\x01\"", `"\u12"`} {
		if jsoncheck.Check([]byte(bad)) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	for _, good := range []string{` {"a" : [ 1 , -2.5e+3 , true , false , null , "" ] } `, `-0.0E-0`, `""`} {
		if err := jsoncheck.Check([]byte(good)); err != nil {
			t.Errorf("%q: %v", good, err)
		}
	}
}

// FuzzCheck: text Check accepts is JSON encoding/json accepts, valid UTF-8;
// JSON it refuses breaks one of its rules.
func FuzzCheck(f *testing.F) {
	for _, c := range jsonedge.Strings {
		f.Add([]byte(`{"k":` + c.JSON + `}`))
	}
	f.Add([]byte(`{"a":1,"a":2}`))
	f.Add([]byte(`[[[{"x":[1,2,{"y":null}]}]]]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		err := jsoncheck.Check(data)
		valid := json.Valid(data)
		if err == nil {
			if !valid || !utf8.Valid(data) {
				t.Fatalf("accepted %q: encoding/json valid %v, UTF-8 valid %v", data, valid, utf8.Valid(data))
			}
			return
		}
		if valid {
			msg := err.Error()
			for _, rule := range []string{jsoncheck.MsgInvalidUTF8, jsoncheck.MsgLoneSurrogate, jsoncheck.MsgDuplicateKey, jsoncheck.MsgTooDeep} {
				if strings.Contains(msg, rule) {
					return
				}
			}
			t.Fatalf("refused valid JSON %q with %v, which is none of the rules", data, err)
		}
	})
}

// BenchmarkCheck is the pass on an event like ingest's BenchmarkDecodeEvent's.
func BenchmarkCheck(b *testing.B) {
	event := []byte(`{"user_id":"user-000123","ts":"2026-11-24T10:00:00.123Z","amount":12.5,"flag":true,"items":3,"merchant":"merchant-42","channel":"web"}`)
	b.SetBytes(int64(len(event)))
	b.ReportAllocs()
	for b.Loop() {
		if err := jsoncheck.Check(event); err != nil {
			b.Fatal(err)
		}
	}
}
