package ingest

import (
	"maps"
	"slices"
	"sync"
)

// PartitionSet is a set of Kafka partition numbers that can change while
// consumers read by it (KafkaOptions.Partitions): the cluster's share of
// the partitions of every topic, which uses one partition count for all.
// The zero value is an empty set. A PartitionSet is safe for concurrent use.
type PartitionSet struct {
	mu struct {
		sync.Mutex
		set     map[int32]bool
		changed chan struct{} // closed and replaced by Set
	}
}

// NewPartitionSet returns a set holding partitions.
func NewPartitionSet(partitions ...int32) *PartitionSet {
	s := &PartitionSet{}
	s.mu.set = setOf(partitions)
	s.mu.changed = make(chan struct{})
	return s
}

func setOf(partitions []int32) map[int32]bool {
	m := make(map[int32]bool, len(partitions))
	for _, p := range partitions {
		m[p] = true
	}
	return m
}

// Set replaces the set's partitions and wakes the consumers watching it.
func (s *PartitionSet) Set(partitions ...int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.set = setOf(partitions)
	if s.mu.changed != nil {
		close(s.mu.changed)
	}
	s.mu.changed = make(chan struct{})
}

// Contains reports whether partition is in the set. A nil set holds every
// partition.
func (s *PartitionSet) Contains(partition int32) bool {
	if s == nil {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.set[partition]
}

// Partitions returns the set's partitions in ascending order; nil for a
// nil set, which holds every partition.
func (s *PartitionSet) Partitions() []int32 {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.mu.set))
}

// Changed returns a channel closed at the next Set. A nil set never
// changes: its channel is nil.
func (s *PartitionSet) Changed() <-chan struct{} {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.changed == nil {
		s.mu.changed = make(chan struct{})
	}
	return s.mu.changed
}
