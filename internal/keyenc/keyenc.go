// Package keyenc owns entity keys: which keys are valid, and their byte
// encoding. It is shared by the paths that write state (push over HTTP and
// gRPC, Kafka ingest) and the paths that read it (lookups over HTTP and gRPC,
// export spines), so that they can never disagree on which key an entity
// has, nor on which keys exist at all.
//
// A string key is valid when it is 1 to MaxKeyBytes bytes of valid UTF-8
// without a NUL byte (Check). Every path refuses an invalid key with the
// error of Check instead of storing, reading or echoing it in some repaired
// form: a lone UTF-16 surrogate escape ("\ud800") must be refused by the
// JSON decoder, as its text never reaches this package.
//
// A string key is encoded as its UTF-8 bytes. An int64 key is 8 bytes,
// big-endian, with the sign bit flipped so that byte order matches numeric
// order. The entity's declared type decides the encoding, so "42" (string)
// and 42 (int64) are different keys for different entities but never
// collide within one entity.
package keyenc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/featured-dev/featured/aggregate"
)

// MaxKeyBytes is the longest string entity key, in bytes of UTF-8.
const MaxKeyBytes = 1024

// Errors of Check. Each is wrapped with the key's length or the position of
// the bad byte; the key itself is never echoed, as it may be huge or binary.
var (
	ErrEmptyKey   = errors.New("keyenc: empty entity key")
	ErrLongKey    = errors.New("keyenc: entity key too long")
	ErrNULKey     = errors.New("keyenc: entity key contains a NUL byte")
	ErrInvalidKey = errors.New("keyenc: entity key is not valid UTF-8")
)

// Check reports whether s is a valid string entity key. The error names the
// rule broken and where, never the key.
func Check(s string) error {
	switch {
	case len(s) == 0:
		return ErrEmptyKey
	case len(s) > MaxKeyBytes:
		return fmt.Errorf("%w: %d bytes, the limit is %d", ErrLongKey, len(s), MaxKeyBytes)
	}
	if i := strings.IndexByte(s, 0); i >= 0 {
		return fmt.Errorf("%w at byte %d", ErrNULKey, i)
	}
	if !utf8.ValidString(s) {
		i := 0
		for i < len(s) {
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n == 1 {
				break
			}
			i += n
		}
		return fmt.Errorf("%w: bad byte 0x%02x at byte %d", ErrInvalidKey, s[i], i)
	}
	return nil
}

// IsInvalid reports whether err is one of Check's errors.
func IsInvalid(err error) bool {
	return errors.Is(err, ErrEmptyKey) || errors.Is(err, ErrLongKey) || errors.Is(err, ErrNULKey) ||
		errors.Is(err, ErrInvalidKey)
}

// AppendEntity appends the key bytes of v to dst. v must be of kind
// KindString or KindInt64; a string must pass Check.
func AppendEntity(dst []byte, v aggregate.Value) ([]byte, error) {
	switch v.Kind {
	case aggregate.KindString:
		if err := Check(v.S); err != nil {
			return dst, err
		}
		return append(dst, v.S...), nil
	case aggregate.KindInt64:
		return binary.BigEndian.AppendUint64(dst, uint64(v.I)^(1<<63)), nil
	default:
		return dst, fmt.Errorf("keyenc: entity key must be a string or an int64, not kind %d", v.Kind)
	}
}
