package kafkatest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// adminTimeout caps one admin operation: create or delete a topic, list offsets,
// and the wait until a new topic has a leader for every partition.
const adminTimeout = 30 * time.Second

// maxTopicLen is Kafka's limit on a topic name.
const maxTopicLen = 249

var validTopic = regexp.MustCompile(`^[a-zA-Z0-9._-]+$`)

// CreateTopic creates a topic named name plus a random suffix ("orders" becomes
// e.g. "orders-3f9a0c1d") with the given number of partitions and the broker's
// default replication factor, waits until every partition has a leader, and
// returns the full name. The topic is deleted in t.Cleanup.
func CreateTopic(t testing.TB, brokers []string, name string, partitions int) string {
	t.Helper()
	if !validTopic.MatchString(name) || len(name)+9 > maxTopicLen {
		t.Fatalf("kafkatest: CreateTopic: name %q: want 1 to %d of [a-zA-Z0-9._-]", name, maxTopicLen-9)
	}
	if partitions < 1 {
		t.Fatalf("kafkatest: CreateTopic %q: partitions %d: want at least 1", name, partitions)
	}
	topic := uniqueName(name)

	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	if err := createTopic(ctx, brokers, topic, partitions); err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
		defer cancel()
		if err := deleteTopic(ctx, brokers, topic); err != nil {
			t.Errorf("kafkatest: cleanup: %v", err)
		}
	})
	return topic
}

// uniqueName returns prefix plus "-" and 8 random hex digits.
func uniqueName(prefix string) string {
	var suffix [4]byte
	rand.Read(suffix[:]) // never returns an error
	return prefix + "-" + hex.EncodeToString(suffix[:])
}

// admin is a kadm.Client over a kgo.Client of its own, closed with it.
type admin struct {
	*kadm.Client
	cl *kgo.Client
}

func newAdmin(brokers []string) (admin, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RequestTimeoutOverhead(adminTimeout))
	if err != nil {
		return admin{}, fmt.Errorf("admin client: %w", err)
	}
	return admin{Client: kadm.NewClient(cl), cl: cl}, nil
}

func (a admin) close() { a.cl.Close() }

func createTopic(ctx context.Context, brokers []string, topic string, partitions int) error {
	a, err := newAdmin(brokers)
	if err != nil {
		return err
	}
	defer a.close()
	if _, err := a.CreateTopic(ctx, int32(partitions), -1, nil, topic); err != nil {
		return fmt.Errorf("create topic %s with %d partitions: %w", topic, partitions, err)
	}
	// The broker answers before its metadata cache has the new partitions; wait
	// until each has a leader so that the first produce or fetch does not fail.
	return poll(ctx, func() (bool, error) {
		md, err := a.Metadata(ctx, topic)
		if err != nil {
			return false, nil // retried until the deadline
		}
		tp, ok := md.Topics[topic]
		if !ok || tp.Err != nil || len(tp.Partitions) != partitions {
			return false, nil
		}
		for _, p := range tp.Partitions {
			if p.Err != nil || p.Leader < 0 {
				return false, nil
			}
		}
		return true, nil
	}, fmt.Sprintf("topic %s to have a leader for all %d partitions", topic, partitions))
}

func deleteTopic(ctx context.Context, brokers []string, topic string) error {
	a, err := newAdmin(brokers)
	if err != nil {
		return err
	}
	defer a.close()
	_, err = a.DeleteTopic(ctx, topic)
	if err != nil && !errors.Is(err, kerr.UnknownTopicOrPartition) {
		return fmt.Errorf("delete topic %s: %w", topic, err)
	}
	return nil
}

// TopicExists reports whether the broker's metadata lists topic. A topic that
// is being deleted may still be listed for a moment after DeleteTopics returns.
func TopicExists(t testing.TB, brokers []string, topic string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	a, err := newAdmin(brokers)
	if err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	defer a.close()
	md, err := a.Metadata(ctx, topic)
	if err != nil {
		t.Fatalf("kafkatest: metadata of %s: %v", topic, err)
	}
	tp, ok := md.Topics[topic]
	if !ok || errors.Is(tp.Err, kerr.UnknownTopicOrPartition) {
		return false
	}
	if tp.Err != nil {
		t.Fatalf("kafkatest: metadata of %s: %v", topic, tp.Err)
	}
	return true
}

// poll calls cond every 50 ms until it returns true or an error, or ctx ends;
// what names the awaited state in the timeout error.
func poll(ctx context.Context, cond func() (bool, error), what string) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-tick.C:
		}
	}
}
