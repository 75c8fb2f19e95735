// Package testdefs holds the feature definitions that tests across featured
// share: one entity, sources of one schema, and a view with every operator
// over several windows, hops and field kinds (every_operator.yaml). Ingest,
// offline and cmd/featured tests each used to carry their own copy of it;
// a new operator or window edge case is added here once and every path is
// tested with it. Only tests import it.
package testdefs

import (
	_ "embed"
	"fmt"
	"strings"
)

//go:embed every_operator.yaml
var everyOperator string

// FieldNames is the sources' field order: registry sorts fields by name.
var FieldNames = []string{"amount", "flag", "items", "merchant"}

// Entity is the entities list of the shared definitions.
const Entity = "entities:\n  - {name: user, join_key: user_id, type: string}\n"

// Source returns one entry of a sources list: name, of kind push or kafka
// (topic is used for kafka only), keyed by user_id with event time ts and
// the fields amount (float64), merchant (string), items (int64) and flag
// (bool).
func Source(name, kind, topic string) string {
	t := ""
	if kind == "kafka" {
		t = " topic: " + topic + ","
	}
	return fmt.Sprintf("  - {name: %s, kind: %s,%s entity_key: user_id, event_time: ts,\n     fields: {amount: float64, merchant: string, items: int64, flag: bool}}\n", name, kind, t)
}

// View returns one entry of a feature_views list: name over source with
// the given ttl and every operator (every_operator.yaml). Its windows go up
// to 2d, so ttl must be at least that.
func View(name, source, ttl string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  - name: %s\n    entity: user\n    source: %s\n    ttl: %s\n    features:\n", name, source, ttl)
	for _, line := range strings.Split(everyOperator, "\n") {
		if strings.HasPrefix(line, "- ") {
			b.WriteString("      " + line + "\n")
		}
	}
	return b.String()
}

// Doc assembles a definitions document from Source and View entries.
func Doc(sources []string, views []string) string {
	return Entity + "sources:\n" + strings.Join(sources, "") + "feature_views:\n" + strings.Join(views, "")
}

// Feature returns the index in View's features of the named feature, for
// tests that name a definition's path (feature_views[0].features[i]); -1
// when there is none.
func Feature(name string) int {
	i := 0
	for _, line := range strings.Split(everyOperator, "\n") {
		if !strings.HasPrefix(line, "- ") {
			continue
		}
		if strings.HasPrefix(line, "- {name: "+name+",") {
			return i
		}
		i++
	}
	return -1
}
