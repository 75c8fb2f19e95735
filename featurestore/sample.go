package featurestore

import (
	"github.com/featured-dev/featured/aggregate"
)

// Read fills out[i] with feature features[i] of entity in view vk as of
// atMillis. An entity with no state gets StatusNotFound everywhere. Read
// never waits for a writer. One Read in Options.ReadSampleEvery is handed
// to Options.ReadSampler.
func (s *Store) Read(vk ViewKey, l *aggregate.Layout, entity []byte, features []int, atMillis int64, out []aggregate.Result) error {
	if err := s.read(vk, l, entity, features, atMillis, out); err != nil {
		return err
	}
	if f := s.opts.ReadSampler; f != nil && s.reads.Add(1)%uint64(s.opts.ReadSampleEvery) == 0 {
		f(vk, entity, features, atMillis, out[:len(features)])
	}
	return nil
}
