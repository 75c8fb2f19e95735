package ingest

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/featurestore"
	"github.com/featured-dev/featured/internal/kafkatest"
	"github.com/featured-dev/featured/internal/keyenc"
)

// corruptState closes e's store, stores garbage as user's state in view
// (docs/format.md: 's' · view id · version · entity key) and reopens it.
func (e *env) corruptState(t *testing.T, view, user string) {
	t.Helper()
	v, err := e.reg.Snapshot().View(view, 0)
	if err != nil {
		t.Fatal(err)
	}
	ent, err := keyenc.AppendEntity(nil, aggregate.Value{Kind: aggregate.KindString, S: user})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.Close(); err != nil {
		t.Fatal(err)
	}
	key := binary.BigEndian.AppendUint32([]byte{'s'}, v.ID)
	key = binary.BigEndian.AppendUint32(key, uint32(v.Version))
	key = append(key, ent...)
	db, err := pebble.Open(filepath.Join(e.dir, fmt.Sprintf("p-%04d", e.part(ent))), &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Set(key, []byte{0x7f, 0xee}, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	e.openStore(t)
}

func storeRejected(s *featurestore.Store) (rejected uint64, quarantined int) {
	for _, st := range s.Stats() {
		rejected += st.WritesRejected
		quarantined += st.QuarantinedStates
	}
	return rejected, quarantined
}

// TestPushCorruptState: a pushed event whose state does not decode is
// rejected per event (corrupt_state), not counted as accepted, while the
// other events of the push apply. Before, the store skipped it silently
// and the push reported it accepted.
func TestPushCorruptState(t *testing.T) {
	e := newEnv(t, defsFor("tx", "v", "unused"))
	e.corruptState(t, "v", "bad")
	p := e.pusher(t)
	ts := e.now.Add(-time.Minute).UnixMilli()
	res, err := p.PushJSON(context.Background(), "tx", []json.RawMessage{
		json.RawMessage(fmt.Sprintf(`{"user_id":"good","ts":%d,"items":1}`, ts)),
		json.RawMessage(fmt.Sprintf(`{"user_id":"bad","ts":%d,"items":1}`, ts)),
	}, PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != 1 || len(res.Rejected) != 1 || res.Rejected[0].Index != 1 || res.Rejected[0].Code != ReasonCorruptState {
		t.Fatalf("push result %+v: want event 1 rejected as %s", res, ReasonCorruptState)
	}
	st := p.Stats()
	if len(st) != 1 || st[0].Applied != 1 || st[0].Rejected[ReasonCorruptState] != 1 {
		t.Fatalf("push stats %+v", st)
	}
	if r, q := storeRejected(e.store); r != 1 || q != 1 {
		t.Fatalf("store: rejected %d quarantined %d, want 1 and 1", r, q)
	}
}

// TestKafkaCorruptState: a Kafka event whose state does not decode lands on
// the dead-letter topic as corrupt_state, with the original message, and
// counts as rejected, not applied; the partition goes on. Before, the
// store skipped it while its offset advanced, and nothing recorded it.
func TestKafkaCorruptState(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.CreateTopic(t, brokers, "tx", 1)
	t.Cleanup(func() { kafkatest.DeleteTopic(t, brokers, topic+".dlq") })
	e := newEnvP(t, defsFor("tx_kafka", "v", topic), 1)
	e.now = time.Now()
	e.corruptState(t, "v", "bad")
	ts := e.now.Add(-time.Minute).UnixMilli()
	badMsg := fmt.Sprintf(`{"user_id":"bad","ts":%d,"items":1}`, ts)
	msgs := []*kgo.Record{
		{Key: []byte("g"), Value: []byte(fmt.Sprintf(`{"user_id":"g","ts":%d,"items":1}`, ts))},
		{Key: []byte("bad"), Value: []byte(badMsg)},
		{Key: []byte("g"), Value: []byte(fmt.Sprintf(`{"user_id":"g","ts":%d,"items":2}`, ts))},
	}
	run := e.runKafka(t, brokers)
	kafkatest.Produce(t, brokers, topic, msgs)
	waitFor(t, "the refused event counted", 60*time.Second, func() bool {
		applied, rejected := counted(run.k, "tx_kafka")
		return applied == 2 && rejected == 1
	})
	var dead []*kgo.Record
	waitFor(t, "the dead letter", 30*time.Second, func() bool {
		dead = kafkatest.ReadAll(t, brokers, topic+".dlq", 0)
		return len(dead) >= 1
	})
	if len(dead) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dead))
	}
	h := map[string]string{}
	for _, x := range dead[0].Headers {
		h[x.Key] = string(x.Value)
	}
	if string(dead[0].Value) != badMsg || string(dead[0].Key) != "bad" || h[HeaderReason] != ReasonCorruptState ||
		h[HeaderSource] != "tx_kafka" || h[HeaderTopic] != topic || h[HeaderOffset] != "1" || h[HeaderEntity] != fmt.Sprintf("%x", "bad") {
		t.Fatalf("dead letter %q key %q headers %v", dead[0].Value, dead[0].Key, h)
	}
	if r, q := storeRejected(e.store); r != 1 || q != 1 {
		t.Fatalf("store: rejected %d quarantined %d, want 1 and 1", r, q)
	}
	// Published dead letters are deleted from the store.
	waitFor(t, "the store's record deleted", 10*time.Second, func() bool {
		dls, err := e.store.DeadLetters(10)
		return err == nil && len(dls) == 0
	})
}
