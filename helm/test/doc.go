// Package helmtest checks the Helm chart at helm/featured and the Dockerfile
// without a cluster or docker. scripts/helm.sh lints the chart and renders it
// for the default values and every variant under helm/featured/ci; the tests
// here decode each rendered document strictly into its k8s.io/api type (a
// misspelled or misplaced field fails) and assert what the chart promises:
// probes, security context, volumes, Services, disruption budget, the grace
// period against the shutdown timeout, and each variant's own additions.
//
// It is its own module so that Kubernetes' dependencies stay out of the
// server's go.mod; the root module's `go test ./...` does not enter it, so
// scripts/test.sh runs it explicitly:
//
//	bash scripts/helm.sh /tmp/rendered
//	cd helm/test && FEATURED_HELM_RENDERED=/tmp/rendered go test ./...
package helmtest
