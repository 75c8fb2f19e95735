package kafkatest

import (
	"context"
	"testing"
)

// CreateNamedTopic creates a topic with exactly the given name, for tests
// where the name must be known before the topic exists (a consumer waiting
// for a missing topic). It is deleted in t.Cleanup.
func CreateNamedTopic(t testing.TB, brokers []string, topic string, partitions int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	if err := createTopic(ctx, brokers, topic, partitions); err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	t.Cleanup(func() { DeleteTopic(t, brokers, topic) })
}

// DeleteTopic deletes a topic the code under test created (a dead-letter
// topic); a topic that does not exist is not an error.
func DeleteTopic(t testing.TB, brokers []string, topic string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	if err := deleteTopic(ctx, brokers, topic); err != nil {
		t.Errorf("kafkatest: %v", err)
	}
}
