package keyenc_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/internal/keyenc"
)

func str(s string) aggregate.Value { return aggregate.Value{Kind: aggregate.KindString, S: s} }
func i64(i int64) aggregate.Value  { return aggregate.Value{Kind: aggregate.KindInt64, I: i} }

func sameParts(a, b []aggregate.Value) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Kind != b[i].Kind || a[i].S != b[i].S || a[i].I != b[i].I {
			return false
		}
	}
	return true
}

func kindsOf(parts []aggregate.Value) []aggregate.Kind {
	out := make([]aggregate.Kind, len(parts))
	for i, p := range parts {
		out[i] = p.Kind
	}
	return out
}

func TestCompoundKey(t *testing.T) {
	f := func(want string, parts ...aggregate.Value) {
		t.Helper()
		got, err := keyenc.AppendKey([]byte("p"), parts...)
		if err != nil {
			t.Fatalf("AppendKey(%v): %v", parts, err)
		}
		if string(got) != "p"+want {
			t.Fatalf("AppendKey(%v) = %q, want %q", parts, got[1:], want)
		}
		dec, err := keyenc.DecodeKey(nil, got[1:], kindsOf(parts))
		if err != nil || !sameParts(dec, parts) {
			t.Fatalf("DecodeKey(%q) = %v, %v; want %v", got[1:], dec, err, parts)
		}
		if len(parts) > 1 {
			var byParts []byte
			for _, p := range parts {
				enc, _ := keyenc.AppendEntity(nil, p)
				byParts = keyenc.AppendPart(byParts, enc, p.Kind)
			}
			if string(byParts) != want {
				t.Fatalf("AppendPart of %v = %q, want AppendKey's %q", parts, byParts, want)
			}
		}
		first, err := keyenc.FirstPart(got[1:], kindsOf(parts))
		single, _ := keyenc.AppendEntity(nil, parts[0])
		if err != nil || !bytes.Equal(first, single) {
			t.Fatalf("FirstPart(%q) = %q, %v; want %q", got[1:], first, err, single)
		}
	}
	// One part is the single-entity encoding, unchanged.
	f("u1", str("u1"))
	f("\x80\x00\x00\x00\x00\x00\x00\x2a", i64(42))
	f("a\x00b\x00", str("a"), str("b"))
	f("ab\x00c\x00", str("ab"), str("c"))
	f("\x80\x00\x00\x00\x00\x00\x00\x01x\x00", i64(1), str("x"))
	f("x\x00\x7f\xff\xff\xff\xff\xff\xff\xff", str("x"), i64(-1))
	f("\x80\x00\x00\x00\x00\x00\x00\x00\x80\x00\x00\x00\x00\x00\x00\x00", i64(0), i64(0))
}

func TestCompoundKeyRefusals(t *testing.T) {
	if _, err := keyenc.AppendKey(nil); err == nil {
		t.Error("a key of no parts was accepted")
	}
	dst := []byte("keep")
	out, err := keyenc.AppendKey(dst, str("a"), str(""))
	if !errors.Is(err, keyenc.ErrEmptyKey) || string(out) != "keep" {
		t.Errorf("AppendKey with an empty part = %q, %v; want dst unchanged and ErrEmptyKey", out, err)
	}
	two := []aggregate.Kind{aggregate.KindString, aggregate.KindInt64}
	for _, b := range []string{"", "a", "a\x00", "a\x00\x01\x02", "a\x00" + "12345678" + "x", "\x00" + "12345678"} {
		if vals, err := keyenc.DecodeKey(nil, []byte(b), two); !errors.Is(err, keyenc.ErrBadKeyBytes) {
			t.Errorf("DecodeKey(%q) = %v, %v; want ErrBadKeyBytes", b, vals, err)
		}
	}
}

// FuzzCompoundKey checks the compound encoding's promises: a tuple of valid
// parts round-trips through DecodeKey; two different tuples of the same kinds
// never encode alike; whatever DecodeKey accepts re-encodes to the same bytes.
func FuzzCompoundKey(f *testing.F) {
	f.Add("a", "b", int64(1), uint8(0), 1, []byte("a\x00b\x00"))
	f.Add("ab", "", int64(-1), uint8(1), 0, []byte{})
	f.Add("ü", "日本", int64(1<<40), uint8(2), 1, []byte("\x80\x00\x00\x00\x00\x00\x00\x01x\x00"))
	f.Add("x", "y", int64(0), uint8(3), 2, []byte("x\x00\xff"))
	f.Fuzz(func(t *testing.T, s1, s2 string, n int64, shape uint8, cut int, raw []byte) {
		if len(s1)+len(s2)+len(raw) > 8<<10 {
			return // input cap: keys are small
		}
		var parts []aggregate.Value
		switch shape % 4 {
		case 0:
			parts = []aggregate.Value{str(s1), str(s2)}
		case 1:
			parts = []aggregate.Value{i64(n), str(s1)}
		case 2:
			parts = []aggregate.Value{str(s1), i64(n), str(s2)}
		case 3:
			parts = []aggregate.Value{i64(n), i64(-n)}
		}
		kinds := kindsOf(parts)
		enc, err := keyenc.AppendKey(nil, parts...)
		valid := true
		for _, p := range parts {
			if p.Kind == aggregate.KindString && keyenc.Check(p.S) != nil {
				valid = false
			}
		}
		if (err == nil) != valid {
			t.Fatalf("AppendKey(%v) err = %v, want valid=%v", parts, err, valid)
		}
		if err == nil {
			dec, err := keyenc.DecodeKey(nil, enc, kinds)
			if err != nil || !sameParts(dec, parts) {
				t.Fatalf("DecodeKey(AppendKey(%v)) = %v, %v", parts, dec, err)
			}
		}
		// Move bytes across a string boundary: another tuple, another key.
		if shape%4 == 0 && len(s1)+len(s2) > 0 {
			whole := s1 + s2
			c := ((cut % (len(whole) + 1)) + len(whole) + 1) % (len(whole) + 1)
			other := []aggregate.Value{str(whole[:c]), str(whole[c:])}
			oenc, oerr := keyenc.AppendKey(nil, other...)
			if err == nil && oerr == nil && !sameParts(other, parts) && bytes.Equal(enc, oenc) {
				t.Fatalf("%v and %v both encode as %q", parts, other, enc)
			}
		}
		// Arbitrary bytes: decode never panics; accepted bytes are canonical.
		if dec, err := keyenc.DecodeKey(nil, raw, kinds); err == nil {
			re, err := keyenc.AppendKey(nil, dec...)
			if err != nil || !bytes.Equal(re, raw) {
				t.Fatalf("DecodeKey(%q) = %v, which re-encodes as %q, %v", raw, dec, re, err)
			}
		}
	})
}

// TestKinds checks that AppendKinds writes one kind as its old single byte
// and that ReadKinds reads back what it wrote, consuming exactly those bytes.
func TestKinds(t *testing.T) {
	f := func(kinds []aggregate.Kind, want string) {
		t.Helper()
		b := keyenc.AppendKinds([]byte("p"), kinds)
		if string(b[1:]) != want {
			t.Fatalf("AppendKinds(%v) = %q, want %q", kinds, b[1:], want)
		}
		rest := append(b[1:], 0xEE)
		got := keyenc.ReadKinds(func() byte { c := rest[0]; rest = rest[1:]; return c })
		if fmt.Sprint(got) != fmt.Sprint(kinds) || len(rest) != 1 {
			t.Fatalf("ReadKinds(%q) = %v with %d bytes left, want %v and 1", b[1:], got, len(rest), kinds)
		}
	}
	f(nil, "\x00")
	f([]aggregate.Kind{aggregate.KindInt64}, string(rune(aggregate.KindInt64)))
	f([]aggregate.Kind{aggregate.KindString}, string(rune(aggregate.KindString)))
	f([]aggregate.Kind{aggregate.KindInt64, aggregate.KindString}, "\x82"+string(rune(aggregate.KindInt64))+string(rune(aggregate.KindString)))
}
