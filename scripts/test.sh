#!/usr/bin/env bash
# The whole test suite, from a fresh clone: fetches Go modules, starts the
# project's own Kafka broker (scripts/kafka.sh), checks formatting and vet,
# and runs every Go test with the race detector. Idempotent; caches under .cache/.
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
