package registry_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/featured-dev/featured/registry"
)

// A registry is a file; Apply upserts definitions, and a change to a view
// makes a new version while the old one stays resolvable.
func Example() {
	dir, err := os.MkdirTemp("", "registry-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	r, err := registry.Open(filepath.Join(dir, "registry.json"))
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()

	defs := func(window string) *registry.Definitions {
		d, err := registry.ParseYAML([]byte(`
entities:
  - {name: user, join_key: user_id, type: string}
sources:
  - {name: transactions, kind: push, entity_key: user_id, event_time: ts, fields: {amount: float64}}
feature_views:
  - name: user_spend
    entity: user
    source: transactions
    ttl: 8d
    features:
      - {name: spend, aggregation: sum, field: amount, window: ` + window + `, hop: 1h}
`))
		if err != nil {
			log.Fatal(err)
		}
		return d
	}
	plan, err := r.Apply(defs("7d"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(plan)
	plan, err = r.Apply(defs("6d"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(plan)

	res, err := r.Snapshot().Resolve([]string{"user_spend:spend", "user_spend@v1:spend"})
	if err != nil {
		log.Fatal(err)
	}
	for _, x := range res {
		f := x.View.Features[x.Feature]
		fmt.Printf("%s: v%d window %v\n", x.Ref, x.View.Version, f.Window)
	}
	// Output:
	// + entity user (join key user_id, string)
	// + source transactions (push, 1 field)
	// + view user_spend v1 (1 feature)
	// Plan: 3 to create.
	// = entity user (unchanged)
	// = source transactions (unchanged)
	// ~ view user_spend v1 -> v2: spend window 7d -> 6d
	// Plan: 1 new version.
	// user_spend:spend: v2 window 144h0m0s
	// user_spend@v1:spend: v1 window 168h0m0s
}
