// Package keyenc owns the byte encoding of entity keys, shared by the paths
// that write state (ingest) and the paths that read it (serving, offline), so
// the two can never disagree on which key an entity has.
//
// A string key is its UTF-8 bytes. An int64 key is 8 bytes, big-endian, with
// the sign bit flipped so that byte order matches numeric order. The entity's
// declared type decides the encoding, so "42" (string) and 42 (int64) are
// different keys for different entities but never collide within one entity.
package keyenc

import (
	"encoding/binary"
	"fmt"

	"github.com/featured-dev/featured/aggregate"
)

// AppendEntity appends the key bytes of v to dst. v must be of kind
// KindString or KindInt64.
func AppendEntity(dst []byte, v aggregate.Value) ([]byte, error) {
	switch v.Kind {
	case aggregate.KindString:
		return append(dst, v.S...), nil
	case aggregate.KindInt64:
		return binary.BigEndian.AppendUint64(dst, uint64(v.I)^(1<<63)), nil
	default:
		return dst, fmt.Errorf("keyenc: entity key must be a string or an int64, not kind %d", v.Kind)
	}
}
