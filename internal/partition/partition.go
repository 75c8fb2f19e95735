// Package partition owns the one function that places an entity in the
// cluster: Kafka's default producer partitioner, murmur2 of the record key's
// bytes, made positive, modulo the partition count. Ingest, the store's
// layout and the lookup router all call it, so a key produced by any Kafka
// client with the default partitioner lands where lookups look for it.
package partition

import "strconv"

// Murmur2 is the 32-bit MurmurHash2 of b with Kafka's seed, exactly as
// org.apache.kafka.common.utils.Utils.murmur2.
func Murmur2(b []byte) int32 {
	const (
		seed = 0x9747b28c
		m    = 0x5bd1e995
		r    = 24
	)
	n := len(b)
	h := uint32(seed) ^ uint32(n)
	for len(b) >= 4 {
		k := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
		b = b[4:]
	}
	switch len(b) {
	case 3:
		h ^= uint32(b[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(b[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(b[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return int32(h)
}

// Of returns the partition of a record key among n partitions, as Kafka's
// default partitioner (toPositive(murmur2(key)) % n). n must be positive.
func Of(key []byte, n int) int {
	return int(uint32(Murmur2(key))&0x7fffffff) % n
}

// KeyEncoding is how an entity's key value becomes the bytes a producer
// sends as the Kafka record key, and so the bytes it is partitioned by.
type KeyEncoding uint8

const (
	// UTF8 is a string key's bytes; the only encoding of string keys.
	UTF8 KeyEncoding = iota
	// Decimal is an int64 key as base-10 ASCII ("1001"), what a producer
	// sending the key as a string sends; the default for int64 keys.
	Decimal
	// Int64BE is an int64 key as 8 big-endian bytes, what Java's
	// LongSerializer sends.
	Int64BE
)

// AppendString appends the record-key bytes of a string key.
func AppendString(dst []byte, s string) []byte { return append(dst, s...) }

// AppendInt64 appends the record-key bytes of an int64 key in enc (Decimal
// or Int64BE; UTF8 is taken as Decimal).
func AppendInt64(dst []byte, v int64, enc KeyEncoding) []byte {
	if enc == Int64BE {
		u := uint64(v)
		return append(dst, byte(u>>56), byte(u>>48), byte(u>>40), byte(u>>32), byte(u>>24), byte(u>>16), byte(u>>8), byte(u))
	}
	return strconv.AppendInt(dst, v, 10)
}
