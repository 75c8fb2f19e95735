package feastimport

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/featured-dev/featured/registry"
)

// document writes the definitions as YAML, by hand rather than through a
// marshaller: the unmapped items and the notes are comments, and a view
// with several entities takes the compound-key form (entities: [a, b] on
// the view, entity_key: [k1, k2] on its source).
func (c *converter) document() []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# featured definitions imported from Feast project %s by `featured import feast`.\n", oneLine(c.project))
	if len(c.unmapped) == 0 {
		b.WriteString("# Everything in the project was imported.\n")
	} else {
		fmt.Fprintf(&b, "# Not imported (%d):\n", len(c.unmapped))
		for _, u := range c.unmapped {
			fmt.Fprintf(&b, "#   %s\n", oneLine(u.String()))
		}
	}
	var ents []*entity
	for _, n := range c.entityOrder {
		if e := c.entities[n]; e.ok {
			ents = append(ents, e)
		}
	}
	if len(ents) > 0 {
		b.WriteString("\nentities:\n")
		for _, e := range ents {
			fmt.Fprintf(&b, "  - {name: %s, join_key: %s, type: %s}\n", name(e.name), name(e.joinKey), e.typ)
		}
	}
	if len(c.sourceOrder) > 0 {
		b.WriteString("\nsources:\n")
		for _, n := range c.sourceOrder {
			s := c.sources[n]
			fmt.Fprintf(&b, "  - name: %s\n    kind: %s\n", name(s.name), s.kind)
			if s.kind == "kafka" {
				fmt.Fprintf(&b, "    topic: %s\n", quote(s.topic))
				if s.servers != "" {
					fmt.Fprintf(&b, "    # Feast's kafka_bootstrap_servers: %s (featured serve takes its brokers from --kafka-brokers)\n", oneLine(s.servers))
				}
			}
			for _, note := range s.notes {
				fmt.Fprintf(&b, "    # %s\n", oneLine(note))
			}
			b.WriteString("    format: json\n")
			if len(s.joinKeys) == 1 {
				fmt.Fprintf(&b, "    entity_key: %s\n", name(s.joinKeys[0]))
			} else {
				fmt.Fprintf(&b, "    entity_key: %s\n", names(s.joinKeys))
			}
			fmt.Fprintf(&b, "    event_time: %s   # RFC 3339 string or epoch milliseconds\n", name(s.eventTime))
			fields := make([]string, 0, len(s.fields))
			for f := range s.fields {
				fields = append(fields, f)
			}
			sort.Strings(fields)
			parts := make([]string, len(fields))
			for i, f := range fields {
				parts[i] = name(f) + ": " + s.fields[f]
			}
			fmt.Fprintf(&b, "    fields: {%s}\n", strings.Join(parts, ", "))
		}
	}
	if len(c.viewOrder) > 0 {
		b.WriteString("\nfeature_views:\n")
		for _, n := range c.viewOrder {
			v := c.views[n]
			fmt.Fprintf(&b, "  - name: %s\n", name(v.name))
			if len(v.entities) == 1 {
				fmt.Fprintf(&b, "    entity: %s\n", name(v.entities[0]))
			} else {
				fmt.Fprintf(&b, "    entities: %s\n", names(v.entities))
			}
			fmt.Fprintf(&b, "    source: %s\n", name(v.source))
			for _, note := range v.notes {
				fmt.Fprintf(&b, "    # %s\n", oneLine(note))
			}
			fmt.Fprintf(&b, "    ttl: %s\n", registry.FormatDuration(v.ttl))
			b.WriteString("    features:\n")
			for _, f := range v.features {
				if f.note != "" {
					fmt.Fprintf(&b, "      # %s: %s\n", f.name, oneLine(f.note))
				}
				fmt.Fprintf(&b, "      - {name: %s, aggregation: %s, field: %s", name(f.name), f.agg, name(f.field))
				if f.window > 0 {
					fmt.Fprintf(&b, ", window: %s, hop: %s", registry.FormatDuration(f.window), registry.FormatDuration(f.hop))
				}
				if f.k > 0 {
					fmt.Fprintf(&b, ", k: %d", f.k)
				}
				b.WriteString("}\n")
			}
		}
	}
	if len(c.services) > 0 {
		b.WriteString("\nfeature_services:\n")
		for _, s := range c.services {
			fmt.Fprintf(&b, "  - name: %s\n    features:\n", name(s.name))
			for _, r := range s.refs {
				fmt.Fprintf(&b, "      - %s\n", r)
			}
		}
	}
	return []byte(b.String())
}

// yamlWords are plain scalars YAML 1.1 reads as booleans or null; a name
// that spells one is quoted.
var yamlWords = map[string]bool{"null": true, "true": true, "false": true, "yes": true, "no": true,
	"on": true, "off": true, "y": true, "n": true, "~": true}

// name writes a name or field name (already checked against featured's
// rules, so plain but for YAML's words).
func name(s string) string {
	if yamlWords[strings.ToLower(s)] {
		return quote(s)
	}
	return s
}

// names writes a flow sequence of names.
func names(ss []string) string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = name(s)
	}
	return "[" + strings.Join(out, ", ") + "]"
}

// quote writes s as a YAML double-quoted scalar (JSON's escapes are YAML's).
func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// oneLine keeps a comment one line of printable text whatever a Feast
// name holds: YAML refuses control characters even in comments.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == utf8.RuneError || !unicode.IsPrint(r) && r != ' ' {
			return '?'
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
}
