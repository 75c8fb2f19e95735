#!/usr/bin/env bash
# The whole test suite, from a fresh clone: fetches Go modules, starts the
# project's own Kafka broker (scripts/kafka.sh), checks formatting and vet,
# runs every Go test with the race detector, then lints and renders the Helm
# chart and checks the manifests (scripts/helm.sh, helm/test). Idempotent; caches under .cache/.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== go modules"
go mod download

if [ -f .ci/kafka-env.sh ]; then
  echo "== kafka broker"
  # shellcheck source=/dev/null
  source .ci/kafka-env.sh
  trap 'kafka_stop || true' EXIT
fi

echo "== object store (S3 for the backup tests; scripts/objectstore.sh)"
# The trap first: a start that fails half-way still leaves a process to stop.
if [ -f .ci/kafka-env.sh ]; then
  trap 'kafka_stop || true; bash scripts/objectstore.sh stop || true' EXIT
else
  trap 'bash scripts/objectstore.sh stop || true' EXIT
fi
bash scripts/objectstore.sh start
eval "$(bash scripts/objectstore.sh env)"

echo "== redis-server (the loadtest's Redis target is tested against it)"
if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  else
    echo "redis-server is missing and cannot be installed here (not root or no apt-get)" >&2
  fi
fi

echo "== python readers (pyarrow, duckdb)"
bash scripts/python-env.sh

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go') 2>/dev/null || true)
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

echo "== generated code matches api/*.proto"
bash scripts/genproto.sh --verify

echo "== go vet"
go vet ./...

echo "== go test -race"
go test -race -count=1 -timeout 20m ./...

echo "== helm (lint --strict, template for every variant; builds helm once into .cache/bin)"
helm_rendered="$(mktemp -d)"
bash scripts/helm.sh "$helm_rendered"

echo "== helm manifests decode strictly into k8s.io/api (nested module helm/test)"
# Its own module, so Kubernetes stays out of go.mod; ./... above does not enter it.
(cd helm/test && go vet ./... && FEATURED_HELM_RENDERED="$helm_rendered" go test -count=1 ./...)
rm -rf "$helm_rendered"
