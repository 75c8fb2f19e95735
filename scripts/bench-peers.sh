#!/usr/bin/env bash
# The systems of the side-by-side benchmark (make bench-compare), installed
# idempotently and loaded with the same data (the feast-benchmarks workload,
# loadtest/workload.go):
#
#   scripts/bench-peers.sh install            Debian's redis-server; Feast 0.67.0 with its Redis
#                                             extra in a venv under .cache/ (nothing if present)
#   scripts/bench-peers.sh redis start|stop   redis-server on 127.0.0.1:$BENCH_REDIS_PORT, no persistence
#   scripts/bench-peers.sh redis load         the raw layout: hash e:<entity> (250 fields), v<view>:<entity> (10)
#   scripts/bench-peers.sh feast load         Parquet file, feast apply, feast materialize-incremental (into Redis)
#   scripts/bench-peers.sh feast start|stop   feast serve on 127.0.0.1:$BENCH_FEAST_PORT (settings below)
#   scripts/bench-peers.sh featured start last|window   a fresh featured with the workload applied and pushed
#   scripts/bench-peers.sh featured stop
#
# Feast gets its best case: the Redis online store (redis-py client), warmed
# up by the verification request and each run's warm-up, $BENCH_FEAST_WORKERS
# gunicorn workers (default 3: Feast is CPU-bound here at about 6.7 ms of CPU
# per 1x50 lookup; 2 workers left a core partly idle, 3 and 4 reached the same
# throughput), --max-requests 0 (workers are never recycled; the default
# recycles every 1000 requests), --registry_ttl_sec 300, no access log, log
# level WARNING.
#
# bench-compare.sh sources this file for its functions. State lives in
# .cache/bench/ (git-ignored); every process started here is stopped by pid.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_DIR="${BENCH_DIR:-$ROOT/.cache/bench}"
FEAST_VERSION="${FEAST_VERSION:-0.67.0}"
FEAST_VENV="$ROOT/.cache/venv-feast-$FEAST_VERSION"
BENCH_REDIS_PORT="${BENCH_REDIS_PORT:-6390}"
BENCH_FEAST_PORT="${BENCH_FEAST_PORT:-6566}"
BENCH_FEAST_WORKERS="${BENCH_FEAST_WORKERS:-3}"
BENCH_HTTP_PORT="${BENCH_HTTP_PORT:-18080}"
BENCH_GRPC_PORT="${BENCH_GRPC_PORT:-19090}"
BENCH_PPROF_PORT="${BENCH_PPROF_PORT:-16060}"
FEATURED_BIN="$BENCH_DIR/bin/featured"
LOADTEST_BIN="$BENCH_DIR/bin/loadtest"

log() { echo "bench-peers: $*" >&2; }

# wait_for CMD... polls CMD every 0.2 s for at most 60 s.
wait_for() {
  local _
  for _ in $(seq 300); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  log "timed out waiting for: $*"
  return 1
}

# stop_pid FILE kills the process (group) whose pid FILE holds, and waits.
stop_pid() {
  local file="$1" pid _
  [ -f "$file" ] || return 0
  pid="$(cat "$file")"
  rm -f "$file"
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 150); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.2
  done
  kill -KILL "$pid" 2>/dev/null || true
}

install_peers() {
  if ! command -v redis-server >/dev/null; then
    log "installing redis-server (Debian)"
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
  fi
  if [ ! -x "$FEAST_VENV/bin/feast" ]; then
    log "installing feast[redis]==$FEAST_VERSION into $FEAST_VENV"
    python3 -m venv "$FEAST_VENV"
    "$FEAST_VENV/bin/pip" install -q "feast[redis]==$FEAST_VERSION"
  fi
  "$FEAST_VENV/bin/feast" version >/dev/null
}

build_bins() {
  mkdir -p "$BENCH_DIR/bin"
  (cd "$ROOT" && go build -o "$FEATURED_BIN" ./cmd/featured && go build -o "$LOADTEST_BIN" ./loadtest)
}

redis_addr() { echo "127.0.0.1:$BENCH_REDIS_PORT"; }

redis_start() {
  mkdir -p "$BENCH_DIR/redis"
  if redis-cli -p "$BENCH_REDIS_PORT" ping >/dev/null 2>&1; then
    log "a redis-server already answers on $(redis_addr); stop it first (scripts/bench-peers.sh redis stop)"
    return 1
  fi
  # No persistence (no RDB snapshots, no AOF): a pure in-memory floor.
  redis-server --port "$BENCH_REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize yes --pidfile "$BENCH_DIR/redis.pid" --logfile "$BENCH_DIR/redis/redis.log" \
    --dir "$BENCH_DIR/redis"
  wait_for redis-cli -p "$BENCH_REDIS_PORT" ping
  wait_for test -s "$BENCH_DIR/redis.pid"
}

redis_stop() { stop_pid "$BENCH_DIR/redis.pid"; }

redis_pid() { cat "$BENCH_DIR/redis.pid"; }

redis_load() { "$LOADTEST_BIN" load -target redis -addr "$(redis_addr)"; }

feast_repo() { echo "$BENCH_DIR/feast_repo"; }

# feast_load writes the Parquet file and the repo, applies it and
# materializes every view into the running Redis.
feast_load() {
  local repo
  repo="$(feast_repo)"
  rm -rf "$repo"
  mkdir -p "$repo/data"
  cp "$ROOT/scripts/bench/feast_repo/workload.py" "$repo/"
  sed "s/@REDIS_ADDR@/$(redis_addr)/" "$ROOT/scripts/bench/feast_repo/feature_store.yaml.in" >"$repo/feature_store.yaml"
  "$FEAST_VENV/bin/python" "$ROOT/scripts/bench/feast_data.py" "$repo/generated_data.parquet"
  (cd "$repo" && "$FEAST_VENV/bin/feast" --log-level WARNING apply >/dev/null)
  (cd "$repo" && "$FEAST_VENV/bin/feast" --log-level WARNING materialize-incremental "$(date -u +%Y-%m-%dT%H:%M:%S)" >/dev/null)
}

feast_health() { curl -sf "http://127.0.0.1:$BENCH_FEAST_PORT/health"; }

feast_start() {
  if feast_health >/dev/null 2>&1; then
    log "something already answers on 127.0.0.1:$BENCH_FEAST_PORT; stop it first"
    return 1
  fi
  # $! is gunicorn's master (feast serve runs it in-process); stopping it
  # stops its workers.
  (cd "$(feast_repo)" && exec "$FEAST_VENV/bin/feast" --log-level WARNING serve --host 127.0.0.1 --port "$BENCH_FEAST_PORT" \
    --workers "$BENCH_FEAST_WORKERS" --max-requests 0 --registry_ttl_sec 300 --no-access-log \
    >"$BENCH_DIR/feast-serve.log" 2>&1) &
  echo $! >"$BENCH_DIR/feast.pid"
  wait_for feast_health
  # Both workers up, so that feast_pids lists them all.
  wait_for feast_workers_up
}

feast_workers_up() { [ "$(pgrep -c -P "$(cat "$BENCH_DIR/feast.pid")")" -ge "$BENCH_FEAST_WORKERS" ]; }

# feast_pids lists the gunicorn master and its workers.
feast_pids() {
  local master
  master="$(cat "$BENCH_DIR/feast.pid")"
  { echo "$master"; pgrep -P "$master" || true; } | paste -sd, -
}

feast_stop() { stop_pid "$BENCH_DIR/feast.pid"; }

featured_http() { echo "127.0.0.1:$BENCH_HTTP_PORT"; }
featured_grpc() { echo "127.0.0.1:$BENCH_GRPC_PORT"; }

# featured_start VARIANT starts featured on a fresh data dir with the
# workload's definitions (last values or 1-day window sums) and pushes every
# entity's values.
featured_start() {
  local variant="$1" data="$BENCH_DIR/featured-$1"
  rm -rf "$data"
  mkdir -p "$data"
  "$LOADTEST_BIN" defs -variant "$variant" >"$BENCH_DIR/defs-$variant.yaml"
  "$FEATURED_BIN" serve --data-dir "$data" --http-addr "$(featured_http)" --grpc-addr "$(featured_grpc)" \
    --pprof-addr "127.0.0.1:$BENCH_PPROF_PORT" --log-level warn >"$BENCH_DIR/featured-$variant.log" 2>&1 &
  echo $! >"$BENCH_DIR/featured.pid"
  wait_for curl -sf "http://$(featured_http)/readyz"
  "$FEATURED_BIN" apply --server "http://$(featured_http)" -f "$BENCH_DIR/defs-$variant.yaml" >/dev/null
  "$LOADTEST_BIN" load -target featured -addr "$(featured_http)"
}

featured_pid() { cat "$BENCH_DIR/featured.pid"; }

featured_stop() { stop_pid "$BENCH_DIR/featured.pid"; }

main() {
  mkdir -p "$BENCH_DIR"
  case "${1:-}" in
  install) install_peers ;;
  redis)
    case "${2:-}" in
    start) redis_start ;; stop) redis_stop ;; load) build_bins && redis_load ;;
    *) log "usage: redis start|stop|load"; return 2 ;;
    esac ;;
  feast)
    case "${2:-}" in
    load) feast_load ;; start) feast_start ;; stop) feast_stop ;;
    *) log "usage: feast load|start|stop"; return 2 ;;
    esac ;;
  featured)
    case "${2:-}" in
    start) build_bins && featured_start "${3:?variant: last or window}" ;; stop) featured_stop ;;
    *) log "usage: featured start last|window | featured stop"; return 2 ;;
    esac ;;
  *)
    sed -n '2,22p' "$0" >&2
    return 2 ;;
  esac
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  main "$@"
fi
