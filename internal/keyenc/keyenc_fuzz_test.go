package keyenc_test

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"testing"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/internal/keyenc"
)

// decodeInt is how the readers of stored keys (offline's log and skew
// reports) turn an int64 key back into its value.
func decodeInt(b []byte) int64 { return int64(binary.BigEndian.Uint64(b) ^ (1 << 63)) }

// FuzzEntityKey checks the key encoding's promises: an int64 key is 8 bytes
// that decode back to the value and sort as the values do; a string key that
// passes Check is its bytes, and one that fails gets Check's error; appending
// never touches what dst held; and other kinds are refused.
func FuzzEntityKey(f *testing.F) {
	f.Add(int64(0), int64(-1), "", []byte(nil))
	f.Add(int64(-9223372036854775808), int64(9223372036854775807), "u1", []byte("prefix"))
	f.Add(int64(42), int64(42), "42", []byte{0})
	f.Add(int64(-42), int64(41), "\x00\xff\xfe", []byte{0xff})
	f.Add(int64(1<<32), int64(-1<<32), "\U0001F600", []byte("k"))
	f.Fuzz(func(t *testing.T, a, b int64, s string, dst []byte) {
		if len(s) > 4<<10 || len(dst) > 4<<10 {
			return // input cap: keys are small
		}
		prefix := bytes.Clone(dst)
		ea, err := keyenc.AppendEntity(dst, aggregate.Value{Kind: aggregate.KindInt64, I: a})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ea[:len(prefix)], prefix) || len(ea) != len(prefix)+8 {
			t.Fatalf("AppendEntity(%x, %d) = %x: want the prefix and 8 bytes", prefix, a, ea)
		}
		ka := ea[len(prefix):]
		if got := decodeInt(ka); got != a {
			t.Fatalf("int key %d encodes as %x, which decodes to %d", a, ka, got)
		}
		kb, err := keyenc.AppendEntity(nil, aggregate.Value{Kind: aggregate.KindInt64, I: b})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := bytes.Compare(ka, kb), cmp.Compare(a, b); got != want {
			t.Fatalf("keys of %d and %d compare %d, the values %d", a, b, got, want)
		}

		es, err := keyenc.AppendEntity(dst, aggregate.Value{Kind: aggregate.KindString, S: s})
		switch checkErr := keyenc.Check(s); {
		case checkErr != nil:
			if err == nil || err.Error() != checkErr.Error() || !keyenc.IsInvalid(err) {
				t.Fatalf("AppendEntity(%q) = %v, want Check's error %v", s, err, checkErr)
			}
			if !bytes.Equal(es, prefix) {
				t.Fatalf("a refused key %q changed dst: %x, was %x", s, es, prefix)
			}
		case err != nil:
			t.Fatalf("AppendEntity(%q) refused a key Check accepts: %v", s, err)
		case !bytes.Equal(es[:len(prefix)], prefix) || string(es[len(prefix):]) != s:
			t.Fatalf("AppendEntity(%x, %q) = %x: want the prefix and the string's bytes", prefix, s, es)
		}

		for _, k := range []aggregate.Kind{aggregate.KindNull, aggregate.KindFloat64, aggregate.KindBool, aggregate.KindList} {
			out, err := keyenc.AppendEntity(dst, aggregate.Value{Kind: k, I: a, S: s})
			if err == nil {
				t.Fatalf("kind %s accepted as an entity key: %x", k, out)
			}
			if !bytes.Equal(out, prefix) {
				t.Fatalf("a refused kind %s changed dst: %x, was %x", k, out, prefix)
			}
		}
	})
}
