package registry

import (
	"fmt"
	"os"
	"testing"
)

// Lookups resolve refs on every request; these say what that costs.
// Run: go test -run '^$' -bench . -benchtime 0.2s ./registry

func benchRegistry(b *testing.B) *Registry {
	b.Helper()
	data, err := os.ReadFile("../examples/defs.yaml")
	if err != nil {
		b.Fatal(err)
	}
	r, _ := newTestRegistry(b)
	if _, err := r.Apply(mustParse(b, string(data))); err != nil {
		b.Fatal(err)
	}
	return r
}

func BenchmarkResolve(b *testing.B) {
	r := benchRegistry(b)
	v, _ := r.Snapshot().View("user_spend", 0)
	for _, n := range []int{1, 10} {
		refs := make([]string, n)
		for i := range refs {
			refs[i] = "user_spend:" + v.Features[i%len(v.Features)].Name
		}
		b.Run(fmt.Sprintf("refs=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := r.Snapshot().Resolve(refs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkResolveService(b *testing.B) {
	r := benchRegistry(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Snapshot().ResolveService("fraud_model_v1"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLiveViews(b *testing.B) {
	r := benchRegistry(b)
	b.ReportAllocs()
	for b.Loop() {
		if len(r.Snapshot().LiveViews("transactions")) != 1 {
			b.Fatal("no live view")
		}
	}
}

func BenchmarkPlanExample(b *testing.B) {
	r := benchRegistry(b)
	data, _ := os.ReadFile("../examples/defs.yaml")
	d := mustParse(b, string(data))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Plan(d); err != nil {
			b.Fatal(err)
		}
	}
}
