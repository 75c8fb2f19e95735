# featured's tasks. `make test` is the whole suite; CI runs it through .ci/run.

.PHONY: run test test-short vet fmt bench build

## run: the server on its embedded defaults (./featured-data, push ingest)
run:
	go run ./cmd/featured serve

## test: everything CI checks: installs, vet, gofmt, the race-enabled suite
test:
	bash scripts/test.sh

## test-short: the Go tests only, no installs (a broker must be reachable for Kafka tests)
test-short:
	go test -race ./...

vet:
	go vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

build:
	go build -o bin/featured ./cmd/featured

## bench: the in-process benchmarks quoted in docs/benchmarks.md
bench:
	go test -run '^$$' -bench . -benchmem -benchtime 1s ./aggregate/ ./featurestore/ ./serving/

include Makefile.proto.mk

include Makefile.bench.mk
