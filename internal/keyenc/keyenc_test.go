package keyenc

import (
	"errors"
	"strings"
	"testing"

	"github.com/featured-dev/featured/aggregate"
)

func TestCheck(t *testing.T) {
	f := func(key string, want error) {
		t.Helper()
		err := Check(key)
		if !errors.Is(err, want) && !(want == nil && err == nil) {
			t.Errorf("Check(%.40q) = %v, want %v", key, err, want)
		}
		if err != nil && len(err.Error()) > 120 {
			t.Errorf("Check(%.40q): error of %d bytes echoes the key: %.80s", key, len(err.Error()), err)
		}
		_, aerr := AppendEntity(nil, aggregate.Value{Kind: aggregate.KindString, S: key})
		if (aerr == nil) != (err == nil) {
			t.Errorf("AppendEntity(%.40q) = %v, Check = %v: they must agree", key, aerr, err)
		}
	}
	f("u1", nil)
	f("ü-日本", nil)
	f("\uFFFD", nil) // the replacement character itself is a valid key
	f(strings.Repeat("a", MaxKeyBytes), nil)
	f("", ErrEmptyKey)
	f(strings.Repeat("a", MaxKeyBytes+1), ErrLongKey)
	f(strings.Repeat("a", 1<<20), ErrLongKey)
	f("a\x00b", ErrNULKey)
	f("\xff", ErrInvalidKey)
	f("ab\xed\xa0\x80", ErrInvalidKey) // a surrogate encoded as UTF-8 (CESU)
	f("\xc3", ErrInvalidKey)           // truncated
}

func TestInt64Order(t *testing.T) {
	ins := []int64{-1 << 63, -2, -1, 0, 1, 2, 1<<63 - 1}
	var prev []byte
	for _, i := range ins {
		b, err := AppendEntity(nil, aggregate.Value{Kind: aggregate.KindInt64, I: i})
		if err != nil {
			t.Fatal(err)
		}
		if prev != nil && string(prev) >= string(b) {
			t.Errorf("key of %d sorts before its predecessor's", i)
		}
		prev = b
	}
}
