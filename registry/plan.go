package registry

import (
	"fmt"
	"strings"
)

// Actions of a Change.
const (
	ActionCreate     = "create"
	ActionNewVersion = "new_version" // views only
	ActionUpdate     = "update"      // entities, sources, services (not versioned)
	ActionUnchanged  = "unchanged"
	ActionDelete     = "delete"
)

// Kinds of object a Change is about (also the kinds Delete takes).
const (
	KindEntity  = "entity"
	KindSource  = "source"
	KindView    = "view"
	KindService = "service"
)

// Plan is what Plan, Apply or Delete did or would do, in order: entities,
// sources, views, services, each in document order.
type Plan struct {
	Changes []Change `json:"changes"`
}

// Change is one object's change.
type Change struct {
	Kind   string `json:"kind"`
	Name   string `json:"name"`
	Action string `json:"action"`
	// FromVersion is the view's latest live version before (0: none);
	// ToVersion the version created (0: none). A delete names the version
	// deleted in FromVersion, one Change per version.
	FromVersion int `json:"from_version,omitempty"`
	ToVersion   int `json:"to_version,omitempty"`
	// ViewID is the view's ID (views only).
	ViewID uint32 `json:"view_id,omitempty"`
	// Detail says what changed, for people.
	Detail string `json:"detail,omitempty"`
}

// Changed reports whether the plan changes anything.
func (p *Plan) Changed() bool {
	for _, c := range p.Changes {
		if c.Action != ActionUnchanged {
			return true
		}
	}
	return false
}

// String renders the plan for people, one line per change, like
// `terraform plan`:
//
//   - view user_spend v1 (4 features)
//     ~ view user_spend v1 -> v2: spend_7d window 7d -> 6d
//     ~ source transactions: field currency (string) added
//     = entity user (unchanged)
//   - view user_spend v1
//     Plan: 1 to create, 1 new version, 1 to update.
func (p *Plan) String() string {
	var b strings.Builder
	var create, newVersion, update, del, same int
	for _, c := range p.Changes {
		ver := func(v int) string {
			if c.Kind == KindView && v > 0 {
				return fmt.Sprintf(" v%d", v)
			}
			return ""
		}
		switch c.Action {
		case ActionCreate:
			create++
			fmt.Fprintf(&b, "+ %s %s%s", c.Kind, c.Name, ver(c.ToVersion))
			if c.Detail != "" {
				fmt.Fprintf(&b, " (%s)", c.Detail)
			}
		case ActionNewVersion:
			newVersion++
			fmt.Fprintf(&b, "~ %s %s v%d -> v%d: %s", c.Kind, c.Name, c.FromVersion, c.ToVersion, c.Detail)
		case ActionUpdate:
			update++
			fmt.Fprintf(&b, "~ %s %s: %s", c.Kind, c.Name, c.Detail)
		case ActionUnchanged:
			same++
			fmt.Fprintf(&b, "= %s %s%s (unchanged)", c.Kind, c.Name, ver(c.FromVersion))
		case ActionDelete:
			del++
			fmt.Fprintf(&b, "- %s %s%s", c.Kind, c.Name, ver(c.FromVersion))
			if c.Detail != "" {
				fmt.Fprintf(&b, " (%s)", c.Detail)
			}
		default:
			fmt.Fprintf(&b, "? %s %s %s", c.Kind, c.Name, c.Action)
		}
		b.WriteByte('\n')
	}
	var parts []string
	add := func(n int, one, many string) {
		if n == 1 {
			parts = append(parts, "1 "+one)
		} else if n > 1 {
			parts = append(parts, fmt.Sprintf("%d %s", n, many))
		}
	}
	add(create, "to create", "to create")
	add(newVersion, "new version", "new versions")
	add(update, "to update", "to update")
	add(del, "to delete", "to delete")
	if len(parts) == 0 {
		b.WriteString("No changes.\n")
	} else {
		fmt.Fprintf(&b, "Plan: %s.\n", strings.Join(parts, ", "))
	}
	return b.String()
}
