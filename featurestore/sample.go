package featurestore

import (
	"github.com/featured-dev/featured/aggregate"
)

// ReadSampler is told about one successful Read in Options.ReadSampleEvery
// (offline's verify-skew recomputes those answers from the event log).
//
// Its caller's duties, and what it may do:
//
//  1. It is called on the goroutine that called Read, after Read filled
//     out, before Read returns; so it runs concurrently with other Reads'
//     calls and must be safe for concurrent use.
//  2. vk, features, atMillis and out are exactly Read's arguments and
//     answer (out has len(features) results).
//  3. entity, features and out (with the lists of last_k results in it)
//     belong to the caller and may be reused once it returns: a sampler
//     that keeps them copies them.
//  4. It must not block: the lookup it samples waits for it.
type ReadSampler func(vk ViewKey, entity []byte, features []int, atMillis int64, out []aggregate.Result)

// Read fills out[i] with feature features[i] of entity in view vk as of
// atMillis, from partition (the entity's: internal/keyenc.Partition). An entity with no state gets StatusNotFound everywhere. Read
// never waits for a writer. One Read in Options.ReadSampleEvery is handed
// to Options.ReadSampler.
func (s *Store) Read(vk ViewKey, l *aggregate.Layout, partition int, entity []byte, features []int, atMillis int64, out []aggregate.Result) error {
	if err := s.read(vk, l, partition, entity, features, atMillis, out); err != nil {
		return err
	}
	if f := s.opts.ReadSampler; f != nil && s.reads.Add(1)%uint64(s.opts.ReadSampleEvery) == 0 {
		f(vk, entity, features, atMillis, out[:len(features)])
	}
	return nil
}
