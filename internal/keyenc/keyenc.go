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
//
// A compound key, the key of a view over several entities, is the tuple of
// its parts in the view's entity order, encoded as the parts' encodings
// concatenated, each string part followed by a 0x00 byte (AppendKey). A
// string part can never hold NUL (Check), so the encoding is unambiguous and
// decodes back given the parts' kinds (DecodeKey): ("a","b") and ("ab","c")
// never collide. A one-part key is encoded exactly as a single entity's key
// (no terminator), so a view of one entity keeps the bytes it always had.
// FirstPart returns the first part's bytes as a single key of that entity
// would be encoded: placement by the first entity's join key puts every view
// of a row on that entity together.
package keyenc

import (
	"bytes"
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

// ErrBadKeyBytes is DecodeKey's and FirstPart's error for stored key bytes
// that do not decode as a key of the given kinds: corrupt data, or bytes read
// with the wrong kinds.
var ErrBadKeyBytes = errors.New("keyenc: key bytes do not decode")

// AppendKey appends the key bytes of the tuple parts to dst: one part is
// AppendEntity's encoding; several are their encodings concatenated, each
// string part followed by 0x00. On error dst is returned as it was.
func AppendKey(dst []byte, parts ...aggregate.Value) ([]byte, error) {
	if len(parts) == 1 {
		return AppendEntity(dst, parts[0])
	}
	if len(parts) == 0 {
		return dst, errors.New("keyenc: key of no parts")
	}
	n := len(dst)
	for i, p := range parts {
		var err error
		if dst, err = AppendEntity(dst, p); err != nil {
			return dst[:n], fmt.Errorf("key part %d: %w", i, err)
		}
		if p.Kind == aggregate.KindString {
			dst = append(dst, 0)
		}
	}
	return dst, nil
}

// AppendPart appends part, the AppendEntity encoding of a value of kind k,
// to dst as one part of a compound key: AppendKey(nil, a, b) equals
// AppendPart(AppendPart(nil, AppendEntity(a), a.Kind), AppendEntity(b), b.Kind).
// It lets a caller that encodes each entity's key once build every compound
// key of a row from them.
func AppendPart(dst, part []byte, k aggregate.Kind) []byte {
	dst = append(dst, part...)
	if k == aggregate.KindString {
		dst = append(dst, 0)
	}
	return dst
}

// DecodeKey decodes key bytes made by AppendKey from parts of the given
// kinds, appending the parts to dst. Strings are copied out of b.
func DecodeKey(dst []aggregate.Value, b []byte, kinds []aggregate.Kind) ([]aggregate.Value, error) {
	if len(kinds) == 1 {
		v, err := decodePart(b, kinds[0])
		if err != nil {
			return dst, err
		}
		return append(dst, v), nil
	}
	rest := b
	for i, k := range kinds {
		part, tail, err := cutPart(rest, k)
		if err != nil {
			return dst, fmt.Errorf("%w: part %d: %v", ErrBadKeyBytes, i, err)
		}
		v, err := decodePart(part, k)
		if err != nil {
			return dst, fmt.Errorf("part %d: %w", i, err)
		}
		dst = append(dst, v)
		rest = tail
	}
	if len(rest) != 0 {
		return dst, fmt.Errorf("%w: %d bytes after the last part", ErrBadKeyBytes, len(rest))
	}
	return dst, nil
}

// FirstPart returns the bytes of the first part of key b (of the given
// kinds) as a single key of that part is encoded, without copying: the
// placement key of a compound key.
func FirstPart(b []byte, kinds []aggregate.Kind) ([]byte, error) {
	if len(kinds) <= 1 {
		return b, nil
	}
	part, _, err := cutPart(b, kinds[0])
	if err != nil {
		return nil, fmt.Errorf("%w: part 0: %v", ErrBadKeyBytes, err)
	}
	return part, nil
}

// cutPart splits the first part of a compound key off b: its single-key
// bytes (without the terminator) and the rest.
func cutPart(b []byte, k aggregate.Kind) (part, rest []byte, err error) {
	switch k {
	case aggregate.KindInt64:
		if len(b) < 8 {
			return nil, nil, fmt.Errorf("int64 of %d bytes", len(b))
		}
		return b[:8], b[8:], nil
	case aggregate.KindString:
		i := bytes.IndexByte(b, 0)
		if i < 0 {
			return nil, nil, errors.New("string without its terminator")
		}
		return b[:i], b[i+1:], nil
	}
	return nil, nil, fmt.Errorf("kind %s is no key kind", k)
}

func decodePart(b []byte, k aggregate.Kind) (aggregate.Value, error) {
	switch k {
	case aggregate.KindInt64:
		if len(b) != 8 {
			return aggregate.Value{}, fmt.Errorf("%w: int64 of %d bytes", ErrBadKeyBytes, len(b))
		}
		return aggregate.Value{Kind: aggregate.KindInt64, I: int64(binary.BigEndian.Uint64(b) ^ (1 << 63))}, nil
	case aggregate.KindString:
		if err := Check(string(b)); err != nil {
			return aggregate.Value{}, fmt.Errorf("%w: %v", ErrBadKeyBytes, err)
		}
		return aggregate.Value{Kind: aggregate.KindString, S: string(b)}, nil
	}
	return aggregate.Value{}, fmt.Errorf("%w: kind %s is no key kind", ErrBadKeyBytes, k)
}

// AppendKinds appends the kinds of a key's parts as the stored formats
// (the push journal, the offline log's schemas) write them: one part as its
// kind's byte, as before compound keys; n > 1 parts as the byte 0x80|n and
// then one byte per kind. Kinds are small, so the first byte tells the two
// apart.
func AppendKinds(dst []byte, kinds []aggregate.Kind) []byte {
	if len(kinds) == 1 {
		return append(dst, byte(kinds[0]))
	}
	if len(kinds) == 0 {
		return append(dst, byte(aggregate.KindNull))
	}
	dst = append(dst, 0x80|byte(len(kinds)))
	for _, k := range kinds {
		dst = append(dst, byte(k))
	}
	return dst
}

// ReadKinds reads what AppendKinds wrote, taking bytes from next. A lone
// KindNull (a source no view reads) reads as nil.
func ReadKinds(next func() byte) []aggregate.Kind {
	b := next()
	if b&0x80 == 0 {
		if aggregate.Kind(b) == aggregate.KindNull {
			return nil
		}
		return []aggregate.Kind{aggregate.Kind(b)}
	}
	n := int(b & 0x7f)
	out := make([]aggregate.Kind, n)
	for i := range out {
		out[i] = aggregate.Kind(next())
	}
	return out
}
