#!/usr/bin/env bash
# make bench-compare: featured vs Feast vs Redis, side by side, on this
# machine. Installs the peers (scripts/bench-peers.sh), then runs one system
# at a time with the same load generator settings (loadtest suite: per
# workload, $BENCH_REPS x {closed-loop max, open-loop latency}, plus a
# latency-vs-load sweep at 1x50), profiles featured under load, measures
# push ingest, and writes docs/benchmarks-compare.md and its chart with
# `loadtest report`. Results: loadtest/results/compare-<UTC time>/.
#
# Settings (environment): BENCH_REPS (3), BENCH_DURATION (4s),
# BENCH_WARMUP (1s), BENCH_CONNS (16), BENCH_WORKLOADS
# (1x50,10x50,100x50,1x250), BENCH_QUIET_LOAD (1.0) and BENCH_QUIET_WAIT
# (180 s): before starting, wait at most that long for the 1-minute load
# average to drop under BENCH_QUIET_LOAD (the machine is shared). About 15
# minutes in all with the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/bench-peers.sh
source scripts/bench-peers.sh

REPS="${BENCH_REPS:-3}"
DURATION="${BENCH_DURATION:-4s}"
WARMUP="${BENCH_WARMUP:-1s}"
CONNS="${BENCH_CONNS:-16}"
WORKLOADS="${BENCH_WORKLOADS:-1x50,10x50,100x50,1x250}"
QUIET_LOAD="${BENCH_QUIET_LOAD:-1.0}"
QUIET_WAIT="${BENCH_QUIET_WAIT:-180}"
OUT="loadtest/results/compare-$(date -u +%Y%m%dT%H%M%SZ)"
REPORT="${BENCH_REPORT:-docs/benchmarks-compare.md}"
CHART="${BENCH_CHART:-docs/benchmarks-compare.svg}"
mkdir -p "$OUT" "$BENCH_DIR"

TRIVIAL_PID=""
cleanup() {
  featured_stop || true
  feast_stop || true
  redis_stop || true
  if [ -n "$TRIVIAL_PID" ]; then kill "$TRIVIAL_PID" 2>/dev/null || true; fi
}
trap cleanup EXIT

say() { echo "== $(date -u +%H:%M:%S) $*"; }
load1() { cut -d' ' -f1 /proc/loadavg; }

# suite LABEL TARGET ADDR PIDS [extra flags...]: one system's matrix.
suite() {
  local label="$1" target="$2" addr="$3" pids="$4"
  shift 4
  say "$label ($target at $addr), load $(load1)"
  "$LOADTEST_BIN" suite -label "$label" -target "$target" -addr "$addr" ${pids:+-pids "$pids"} \
    -conns "$CONNS" -duration "$DURATION" -warmup "$WARMUP" -reps "$REPS" -workloads "$WORKLOADS" \
    -out "$OUT" "$@" | tee -a "$OUT/runs.log"
}

# profile NAME TARGET ADDR ENTITIES: a CPU profile of featured (5 s) under
# a closed-loop run of the same settings; the top functions go to the report.
profile() {
  local name="$1" target="$2" addr="$3" entities="$4"
  "$LOADTEST_BIN" run -target "$target" -addr "$addr" -entities "$entities" -conns "$CONNS" \
    -duration 7s -warmup 1s -quiet >"$OUT/profile-$name.run.txt" &
  local run=$!
  sleep 1.5 # inside the run's measured part
  curl -sf -o "$OUT/profile-$name.pprof" "http://127.0.0.1:$BENCH_PPROF_PORT/debug/pprof/profile?seconds=5"
  wait "$run"
  go tool pprof -top -nodecount=25 "$FEATURED_BIN" "$OUT/profile-$name.pprof" >"$OUT/profile-$name.top.txt" 2>/dev/null
  go tool pprof -top -cum -nodecount=40 "$FEATURED_BIN" "$OUT/profile-$name.pprof" >"$OUT/profile-$name.cum.txt" 2>/dev/null
}

say "installing the peers (idempotent) and building"
install_peers
build_bins

waited=0
while awk -v l="$(load1)" -v q="$QUIET_LOAD" 'BEGIN { exit !(l >= q) }' && [ "$waited" -lt "$QUIET_WAIT" ]; do
  [ $((waited % 30)) -eq 0 ] && say "load average $(load1) >= $QUIET_LOAD: waiting (at most ${QUIET_WAIT}s)"
  sleep 5
  waited=$((waited + 5))
done
START_LOAD="$(load1)"

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ); load average at start: $START_LOAD (waited ${waited}s for < $QUIET_LOAD)"
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -sr)"
  echo "featured: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . 2>/dev/null || echo ' (+ uncommitted changes)'), $(go version | cut -d' ' -f3-)"
  echo "feast: $("$FEAST_VENV/bin/pip" show feast 2>/dev/null | awk '/^Version/ {print $2}') (redis-py $("$FEAST_VENV/bin/pip" show redis 2>/dev/null | awk '/^Version/ {print $2}'), gunicorn $("$FEAST_VENV/bin/pip" show gunicorn 2>/dev/null | awk '/^Version/ {print $2}'), $("$FEAST_VENV/bin/python" --version))"
  echo "redis: $(redis-server --version | cut -d' ' -f1-3) (Debian), 127.0.0.1:$BENCH_REDIS_PORT, --save '' --appendonly no"
  echo
  echo "make bench-compare  (scripts/bench-compare.sh; BENCH_REPS=$REPS BENCH_DURATION=$DURATION BENCH_WARMUP=$WARMUP BENCH_CONNS=$CONNS)"
  echo "each system, one at a time:"
  echo "  loadtest suite -label L -target T -addr A -pids P -conns $CONNS -duration $DURATION -warmup $WARMUP -reps $REPS -workloads $WORKLOADS"
  echo "    per workload and rep: closed loop (max), then open loop at -rates ($(grep -o 'defaultRates = "[^"]*"' loadtest/suite.go | cut -d'"' -f2)) or half the max"
  echo "    sweep (1x50, one 2 s run per rate, 0.5 s warm-up): 100 250 500 1000 2000 5000 10000 20000 40000 req/s until saturated"
  echo "  generator-baseline: loadtest trivial (fixed 1x50 answer), target trivial-http"
  echo "  redis-hmget / redis-hgetall: raw Redis, targets redis-hmget / redis-hgetall, loaded by 'loadtest load -target redis'"
  echo "  feast: feast serve --workers $BENCH_FEAST_WORKERS --max-requests 0 --registry_ttl_sec 300 --no-access-log (log level WARNING),"
  echo "         Redis online store, loaded by feast apply + feast materialize-incremental from scripts/bench/feast_data.py's Parquet"
  echo "  featured-*: featured serve (defaults: $(nproc) shards, 256 MiB cache), 'loadtest defs -variant last' applied and"
  echo "         'loadtest load -target featured' pushed; featured-window-*: the same with -variant window (sum over 1d)"
  echo "  featured-push: loadtest suite -target push -push-events-list 1,100 (closed loop, $CONNS conns) on a fresh featured"
} >"$OUT/meta.txt"

say "generator baseline (trivial server)"
"$LOADTEST_BIN" trivial -addr 127.0.0.1:17070 >"$OUT/trivial.log" 2>&1 &
TRIVIAL_PID=$!
wait_for curl -s -o /dev/null -X POST http://127.0.0.1:17070/
suite generator-baseline trivial-http 127.0.0.1:17070 "$TRIVIAL_PID" -workloads 1x50 -reps 1 -sweep ""
kill "$TRIVIAL_PID"
TRIVIAL_PID=""

say "redis"
redis_start
redis_load
suite redis-hmget redis-hmget "$(redis_addr)" "$(redis_pid)"
suite redis-hgetall redis-hgetall "$(redis_addr)" "$(redis_pid)" -workloads 1x50,100x50 -sweep ""

say "feast: materialize and serve"
feast_load
feast_start
suite feast feast-http "127.0.0.1:$BENCH_FEAST_PORT" "$(feast_pids)"
feast_stop

say "featured (last values)"
featured_start last
suite featured-http feast-http "$(featured_http)" "$(featured_pid)"
suite featured-grpc grpc "$(featured_grpc)" "$(featured_pid)"
suite featured-native native-http "$(featured_http)" "$(featured_pid)" -workloads 1x50,100x50 -sweep ""
say "profiles"
profile http-1x50 feast-http "$(featured_http)" 1
profile grpc-1x50 grpc "$(featured_grpc)" 1
profile http-100x50 feast-http "$(featured_http)" 100
featured_stop

say "featured (windowed sums)"
featured_start window
suite featured-window-http feast-http "$(featured_http)" "$(featured_pid)" -workloads 1x50,100x50 -sweep ""
suite featured-window-grpc grpc "$(featured_grpc)" "$(featured_pid)" -workloads 1x50,100x50 -sweep ""
featured_stop

say "push ingest"
featured_start last
suite featured-push push "$(featured_http)" "$(featured_pid)" -push-events-list 1,100
featured_stop
redis_stop

say "report"
"$LOADTEST_BIN" report -dir "$OUT" -out "$REPORT" -chart "$CHART" -meta "$OUT/meta.txt" -notes scripts/bench/notes.md
# docs/benchmarks.md carries the report between its bench-compare markers
# (the issue asks for the table there); the standalone file is kept beside it.
python3 - "$REPORT" docs/benchmarks.md <<'PY'
import sys
report, doc = sys.argv[1], sys.argv[2]
body = open(report).read().split("\n", 1)[1].strip()
body = body.replace("\n## ", "\n### ").replace("\n### The issue", "\n### The issue")
s = open(doc).read()
begin, end = "<!-- bench-compare:begin -->", "<!-- bench-compare:end -->"
if begin not in s or end not in s:
    sys.exit("docs/benchmarks.md lacks the bench-compare markers")
head, rest = s.split(begin, 1)
_, tail = rest.split(end, 1)
open(doc, "w").write(head + begin + "\n" + body + "\n" + end + tail)
PY
say "done: $REPORT (and docs/benchmarks.md), $CHART; raw results and profiles in $OUT"
