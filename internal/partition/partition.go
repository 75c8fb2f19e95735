// Package partition owns the one function that places an entity in the
// cluster: Kafka's default producer partitioner, murmur2 of the record key's
// bytes, made positive, modulo the partition count. Ingest, the store's
// layout and the lookup router all call it, so a key produced by any Kafka
// client with the default partitioner lands where lookups look for it.
package partition

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
