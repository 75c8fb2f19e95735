package ingest

import (
	"slices"
	"testing"
)

func TestPartitionSet(t *testing.T) {
	var all *PartitionSet
	if !all.Contains(7) || all.Changed() != nil || all.Partitions() != nil {
		t.Fatal("a nil set must hold every partition and never change")
	}
	var zero PartitionSet
	if zero.Contains(0) || len(zero.Partitions()) != 0 {
		t.Fatal("the zero set must be empty")
	}
	s := NewPartitionSet(2, 0)
	if got := s.Partitions(); !slices.Equal(got, []int32{0, 2}) || !s.Contains(2) || s.Contains(1) {
		t.Fatalf("NewPartitionSet(2, 0): partitions %v", got)
	}
	changed := s.Changed()
	select {
	case <-changed:
		t.Fatal("Changed closed before any Set")
	default:
	}
	s.Set(1)
	select {
	case <-changed:
	default:
		t.Fatal("Set did not close the Changed channel")
	}
	if got := s.Partitions(); !slices.Equal(got, []int32{1}) || s.Contains(0) {
		t.Fatalf("after Set(1): partitions %v", got)
	}
	if s.Changed() == changed {
		t.Fatal("Changed after Set returned the closed channel again")
	}
}
