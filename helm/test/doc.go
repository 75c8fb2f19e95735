// Package helmtest checks the Helm chart at helm/featured and the Dockerfile
// without a cluster or docker. scripts/helm.sh lints the chart and renders it
// for the default values and every variant under helm/featured/ci; the tests
// here decode each rendered document strictly into its k8s.io/api type (a
// misspelled or misplaced field fails) and assert what the chart promises:
// probes, security context, volumes, Services, disruption budget, the grace
// period against the shutdown timeout, and each variant's own additions. It
// also runs the real featured binary with each rendering's command line (paths
// under a temp dir, loopback addresses, the test broker from
// FEATURED_KAFKA_BROKERS, a token file and a self-signed certificate where the
// Secrets would be mounted) until /readyz answers 200, checks that the token
// file is enforced and that SIGTERM exits 0, checks the Dockerfile, and that
// every value is in the chart README's table.
//
// It is its own module so that Kubernetes' dependencies stay out of the
// server's go.mod; the root module's `go test ./...` does not enter it, so
// scripts/test.sh runs it explicitly:
//
//	bash scripts/helm.sh /tmp/rendered
//	cd helm/test && FEATURED_HELM_RENDERED=/tmp/rendered FEATURED_KAFKA_BROKERS=127.0.0.1:29092 go test ./...
package helmtest
