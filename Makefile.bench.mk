# The side-by-side benchmark (issue 4). The lead includes this file from the
# Makefile (`include Makefile.bench.mk`); until then: make -f Makefile.bench.mk bench-compare.
# Runs are never part of `make test`; only loadtest's unit tests are.

.PHONY: bench-compare bench-peers

## bench-compare: featured vs Feast vs Redis, one system at a time (~15 min); writes docs/benchmarks-compare.md
bench-compare:
	bash scripts/bench-compare.sh

## bench-peers: install the peers only (Debian's redis-server, Feast 0.67.0 in .cache/); idempotent
bench-peers:
	bash scripts/bench-peers.sh install
