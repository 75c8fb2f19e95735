// Package kafkatest gives tests a real Apache Kafka broker and small helpers to
// create topics, produce keyed messages and read partitions back.
//
// The broker is the one started by scripts/kafka.sh (a single-node KRaft broker
// on 127.0.0.1, see docs/kafka.md). [Brokers] returns the addresses named by the
// environment variable FEATURED_KAFKA_BROKERS (comma-separated host:port) when it
// is set, as CI does. When it is unset, the first call in a test binary runs
// `scripts/kafka.sh start` from the repository root, which is a no-op if the
// broker is already up, and uses the address the script prints. If the broker
// can neither be reached nor started, the test fails with the script's output:
// tests that need Kafka never skip, so a green run proves the real thing.
//
// The package owns no long-lived state beyond that one-time lookup, which is
// guarded by a sync.Once: every function may be called from any number of tests
// running in parallel. The helpers call t.Fatal on error and so must be called
// from the goroutine running the test, like any testing.TB method that stops it.
// Each helper bounds its broker calls with a deadline and never waits forever.
//
// Topics made by [CreateTopic] get a random suffix, so parallel tests and test
// binaries never share one, and are deleted in t.Cleanup; CreateNamedTopic is for
// the rare test that must know the exact name first. The broker has
// auto.create.topics.enable=false: writing to or reading from a topic that was not
// created fails, as it will for featured in production.
package kafkatest
