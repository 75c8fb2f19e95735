package registry

import (
	"strings"
	"testing"

	"github.com/featured-dev/featured/internal/partition"
)

// TestKafkaKey checks an entity's kafka_key: the type's default, the
// choices per type, persisted across Open, and refused once applied when
// it changes, naming the entity.
func TestKafkaKey(t *testing.T) {
	const defs = `
entities:
  - {name: user, join_key: user_id, type: string}
  - {name: account, join_key: account_id, type: int64, kafka_key: KK}
  - {name: card, join_key: card_id, type: int64}
`
	r, path := newTestRegistry(t)
	mustApply(t, r, strings.Replace(defs, "KK", "int64_be", 1))
	check := func(r *Registry) {
		t.Helper()
		for name, want := range map[string]partition.KeyEncoding{"user": partition.UTF8, "account": partition.Int64BE, "card": partition.Decimal} {
			e, ok := r.Snapshot().Entity(name)
			if !ok || e.KafkaKey != want {
				t.Fatalf("entity %s: kafka_key %v, want %v", name, e, want)
			}
		}
	}
	check(r)
	// Written out and read back: Definitions round-trips it.
	if d := r.Snapshot().Definitions(); d.Entities[0].Name != "account" || d.Entities[0].KafkaKey != "int64_be" {
		t.Fatalf("Definitions: %+v", d.Entities)
	}
	r.Close()
	r = openTest(t, path, newTestClock())
	check(r)

	_, err := r.Apply(mustParse(t, strings.Replace(defs, "KK", "decimal", 1)))
	if err == nil || !strings.Contains(err.Error(), "entities[1].kafka_key") || !strings.Contains(err.Error(), "entity account") {
		t.Fatalf("changing kafka_key: %v, want a refusal naming entities[1].kafka_key and entity account", err)
	}
	for _, bad := range []string{
		"entities:\n  - {name: u, join_key: u_id, type: string, kafka_key: decimal}\n",
		"entities:\n  - {name: u, join_key: u_id, type: int64, kafka_key: utf8}\n",
		"entities:\n  - {name: u, join_key: u_id, type: int64, kafka_key: int32}\n",
	} {
		if _, err := r.Apply(mustParse(t, bad)); err == nil || !strings.Contains(err.Error(), "kafka_key") {
			t.Errorf("Apply %q: %v, want a kafka_key error", bad, err)
		}
	}
}
