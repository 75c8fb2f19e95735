// Package jsonedge is the one table of JSON edge cases that every decoder
// of outside JSON is tested against (serving's lookup decoder, ingest's
// event decoder over push and Kafka, encoding/json's envelopes and the
// registry's definitions), so that they accept and refuse alike and read
// what they accept alike. The rules behind the refusals are
// internal/jsoncheck's. Tests only import it.
package jsonedge

import "github.com/featured-dev/featured/internal/jsoncheck"

// String is a JSON string literal a decoder reads where it reads a string
// (an entity key, a string field, a feature reference, a name).
type String struct {
	Name string
	// JSON is the literal, quotes included.
	JSON string
	// Value is what it decodes to; Refused is empty.
	Value string
	// Refused is a substring of the error every decoder gives; empty when
	// the literal is accepted. A decoder reading an entity key refuses
	// Value, in addition, by internal/keyenc's rule.
	Refused string
}

// Strings are the string cases.
var Strings = []String{
	{Name: "plain", JSON: `"u1"`, Value: "u1"},
	{Name: "escaped ascii", JSON: `"\u0075\u0031"`, Value: "u1"},
	{Name: "nul escape", JSON: `"a\u0000b"`, Value: "a\x00b"},
	{Name: "multibyte", JSON: `"é€😀"`, Value: "é€😀"},
	{Name: "surrogate pair", JSON: `"\ud83d\ude00"`, Value: "😀"},
	{Name: "escapes", JSON: `"\"\\\/\b\f\n\r\t"`, Value: "\"\\/\b\f\n\r\t"},
	{Name: "lone high surrogate", JSON: `"a\ud800b"`, Refused: jsoncheck.MsgLoneSurrogate},
	{Name: "lone low surrogate", JSON: `"\udc00"`, Refused: jsoncheck.MsgLoneSurrogate},
	{Name: "high then high", JSON: `"\ud800\ud800"`, Refused: jsoncheck.MsgLoneSurrogate},
	{Name: "high at end", JSON: `"x\ud83d"`, Refused: jsoncheck.MsgLoneSurrogate},
	{Name: "invalid byte", JSON: "\"a\xffb\"", Refused: jsoncheck.MsgInvalidUTF8},
	{Name: "truncated rune", JSON: "\"\xe2\x82\"", Refused: jsoncheck.MsgInvalidUTF8},
	{Name: "overlong encoding", JSON: "\"\xc0\xaf\"", Refused: jsoncheck.MsgInvalidUTF8},
	{Name: "encoded surrogate", JSON: "\"\xed\xa0\x80\"", Refused: jsoncheck.MsgInvalidUTF8},
}

// Number is a JSON number a decoder reads as an int64 (an entity key, an
// int64 field) or a float64 (a float64 field).
type Number struct {
	Name string
	JSON string
	// IntOK and Int: whether it is accepted as an int64, and as what.
	IntOK bool
	Int   int64
	// FloatOK and Float: whether it is accepted as a float64, and as what.
	FloatOK bool
	Float   float64
}

// Numbers are the number cases.
var Numbers = []Number{
	{Name: "zero", JSON: `0`, IntOK: true, FloatOK: true},
	{Name: "negative zero", JSON: `-0`, IntOK: true, FloatOK: true},
	{Name: "max int64", JSON: `9223372036854775807`, IntOK: true, Int: 9223372036854775807, FloatOK: true, Float: 9223372036854775807},
	{Name: "min int64", JSON: `-9223372036854775808`, IntOK: true, Int: -9223372036854775808, FloatOK: true, Float: -9223372036854775808},
	{Name: "past max int64", JSON: `9223372036854775808`, FloatOK: true, Float: 9223372036854775808},
	{Name: "huge integer", JSON: `123456789012345678901234567890`, FloatOK: true, Float: 123456789012345678901234567890},
	{Name: "fraction", JSON: `1.5`, FloatOK: true, Float: 1.5},
	{Name: "integral fraction", JSON: `2.0`, FloatOK: true, Float: 2},
	{Name: "exponent", JSON: `1e3`, FloatOK: true, Float: 1000},
	{Name: "overflowing float", JSON: `1e400`},
	{Name: "negative overflowing float", JSON: `-1e400`},
	{Name: "underflowing float", JSON: `1e-400`, FloatOK: true, Float: 0},
}

// Duplicates are the duplicate-key cases: each decoder writes an object it
// reads (a request, an event, a definition) with a key in both spellings,
// besides its own required fields, and must refuse it with
// jsoncheck.MsgDuplicateKey, whether it reads that key or ignores it.
var Duplicates = []struct {
	Name string
	// First and Second are the two spellings of the key, as JSON literals.
	First, Second string
}{
	{Name: "same spelling", First: `"x"`, Second: `"x"`},
	{Name: "escaped spelling", First: `"x"`, Second: `"\u0078"`},
}
