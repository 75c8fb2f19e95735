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

	"github.com/segmentio/kafka-go"
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

// admin is a kafka.Client with a transport of its own, so that closing it
// leaves no idle connections behind in kafka.DefaultTransport.
type admin struct {
	*kafka.Client
	transport *kafka.Transport
}

func newAdmin(brokers []string) admin {
	tr := &kafka.Transport{}
	return admin{
		Client:    &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: adminTimeout, Transport: tr},
		transport: tr,
	}
}

func (a admin) close() { a.transport.CloseIdleConnections() }

func createTopic(ctx context.Context, brokers []string, topic string, partitions int) error {
	a := newAdmin(brokers)
	defer a.close()
	res, err := a.CreateTopics(ctx, &kafka.CreateTopicsRequest{
		Topics: []kafka.TopicConfig{{Topic: topic, NumPartitions: partitions, ReplicationFactor: -1}},
	})
	if err == nil {
		err = res.Errors[topic]
	}
	if err != nil {
		return fmt.Errorf("create topic %s with %d partitions: %w", topic, partitions, err)
	}
	// The broker answers before its metadata cache has the new partitions; wait
	// until each has a leader so that the first produce or fetch does not fail.
	return poll(ctx, func() (bool, error) {
		md, err := a.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
		if err != nil {
			return false, nil // retried until the deadline
		}
		for _, tp := range md.Topics {
			if tp.Name != topic || tp.Error != nil || len(tp.Partitions) != partitions {
				return false, nil
			}
			for _, p := range tp.Partitions {
				if p.Error != nil || p.Leader.ID < 0 || p.Leader.Host == "" {
					return false, nil
				}
			}
			return true, nil
		}
		return false, nil
	}, fmt.Sprintf("topic %s to have a leader for all %d partitions", topic, partitions))
}

func deleteTopic(ctx context.Context, brokers []string, topic string) error {
	a := newAdmin(brokers)
	defer a.close()
	res, err := a.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{topic}})
	if err == nil {
		err = res.Errors[topic]
	}
	if err != nil && !errors.Is(err, kafka.UnknownTopicOrPartition) {
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
	a := newAdmin(brokers)
	defer a.close()
	md, err := a.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		t.Fatalf("kafkatest: metadata of %s: %v", topic, err)
	}
	for _, tp := range md.Topics {
		if tp.Name != topic {
			continue
		}
		if errors.Is(tp.Error, kafka.UnknownTopicOrPartition) {
			return false
		}
		if tp.Error != nil {
			t.Fatalf("kafkatest: metadata of %s: %v", topic, tp.Error)
		}
		return true
	}
	return false
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
