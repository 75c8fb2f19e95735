package registry

import (
	"encoding/json"
	"slices"
	"strings"

	"github.com/featured-dev/featured/aggregate"
)

// KeyFields is a source's entity_key: the event fields holding a view's key,
// one per entity of the views on the source, in the views' entity order. In
// a definitions document (and the registry file) one field is written as a
// plain string, as before compound keys; several as a list.
type KeyFields []string

// String is "driver_id" for one field, "[driver_id, customer_id]" for
// several: how plans and errors name the key.
func (k KeyFields) String() string {
	if len(k) == 1 {
		return k[0]
	}
	return "[" + strings.Join(k, ", ") + "]"
}

// Has reports whether name is one of the key fields.
func (k KeyFields) Has(name string) bool { return slices.Contains(k, name) }

// MarshalJSON writes one field as a string, several as a list.
func (k KeyFields) MarshalJSON() ([]byte, error) {
	if len(k) == 1 {
		return json.Marshal(k[0])
	}
	return json.Marshal([]string(k))
}

// UnmarshalJSON reads a string or a list of strings.
func (k *KeyFields) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*k = KeyFields{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*k = many
	return nil
}

// MarshalYAML writes one field as a string, several as a list.
func (k KeyFields) MarshalYAML() (any, error) {
	if len(k) == 1 {
		return k[0], nil
	}
	return []string(k), nil
}

// JoinKeys returns the join keys of v's entities, in the view's order: the
// columns a lookup row or an export spine gives v's key in.
func (v *View) JoinKeys() []string {
	out := make([]string, len(v.Entities))
	for i, e := range v.Entities {
		out[i] = e.JoinKey
	}
	return out
}

// KeyKinds returns the kinds of v's key parts, in the view's order
// (keyenc.DecodeKey's kinds).
func (v *View) KeyKinds() []aggregate.Kind {
	out := make([]aggregate.Kind, len(v.Entities))
	for i, e := range v.Entities {
		out[i] = e.Type
	}
	return out
}

// EntityNames is how plans and errors name v's entities: "driver" or
// "[driver, customer]".
func (v *View) EntityNames() string { return entityNames(v.Entities) }

// UsesEntity reports whether name is one of v's entities.
func (v *View) UsesEntity(name string) bool {
	for _, e := range v.Entities {
		if e.Name == name {
			return true
		}
	}
	return false
}

func entityNames(es []Entity) string {
	names := make(KeyFields, len(es))
	for i, e := range es {
		names[i] = e.Name
	}
	return names.String()
}

func sameKey(a, b []Entity) bool { return slices.Equal(a, b) }
