#!/usr/bin/env bash
# objectstore.sh: an S3-compatible object store on 127.0.0.1 for featured's
# backup tests (issue 11.4). SeaweedFS (weed server -s3), built once from its
# Go module through the Go module proxy into .cache/bin; if that build fails
# here, moto's server from the Python package index in .cache/venv-moto (a
# test double of S3, not a store; enough for the backup's PUT/GET/LIST/DELETE).
#
#   scripts/objectstore.sh start   build if needed, start, create the test bucket, wait until ready
#   scripts/objectstore.sh stop    SIGTERM, wait, SIGKILL after a cap
#   scripts/objectstore.sh env     print the export lines the tests read:
#                                  FEATURED_S3_ENDPOINT and the fixed test key (AWS_*)
#
# Environment (optional): OBJECTSTORE_PORT (S3 port, default 18333),
# OBJECTSTORE_DIR (state, default .cache/objectstore).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly ROOT
readonly WEED_MODULE=github.com/seaweedfs/seaweedfs
readonly WEED_VERSION=v0.0.0-20261109003541-7506e5f91cd6
PORT=${OBJECTSTORE_PORT:-18333}
DIR=${OBJECTSTORE_DIR:-$ROOT/.cache/objectstore}
BIN=$ROOT/.cache/bin/weed-$WEED_VERSION
readonly BUCKET=featured-test ACCESS_KEY=featured SECRET_KEY=featured-test-secret

build_weed() {
	[ -x "$BIN" ] && return 0
	mkdir -p "$ROOT/.cache/bin"
	# The module's go.mod has replace directives, which `go install
	# pkg@version` refuses: build inside the downloaded module instead.
	local src
	src=$(go mod download -json "$WEED_MODULE@$WEED_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	[ -n "$src" ] || return 1
	(cd "$src" && GOFLAGS=-buildvcs=false go build -o "$BIN.tmp" ./weed) && mv "$BIN.tmp" "$BIN"
}

start() {
	mkdir -p "$DIR"
	if [ -f "$DIR/pid" ] && kill -0 "$(cat "$DIR/pid")" 2>/dev/null; then return 0; fi
	if build_weed; then
		cat >"$DIR/s3.json" <<JSON
{"identities":[{"name":"featured","credentials":[{"accessKey":"$ACCESS_KEY","secretKey":"$SECRET_KEY"}],"actions":["Admin","Read","Write","List","Tagging"]}]}
JSON
		mkdir -p "$DIR/data"
		"$BIN" server -ip=127.0.0.1 -ip.bind=127.0.0.1 -dir="$DIR/data" \
			-master.port=19333 -volume.port=18080 -filer.port=18888 \
			-s3 -s3.port="$PORT" -s3.config="$DIR/s3.json" >"$DIR/log" 2>&1 &
		echo $! >"$DIR/pid"
		echo weed >"$DIR/kind"
	else
		echo "objectstore: building SeaweedFS failed; falling back to moto's server" >&2
		if [ ! -x "$ROOT/.cache/venv-moto/bin/moto_server" ]; then
			python3 -m venv "$ROOT/.cache/venv-moto"
			"$ROOT/.cache/venv-moto/bin/pip" install -q 'moto[server]'
		fi
		"$ROOT/.cache/venv-moto/bin/moto_server" -H 127.0.0.1 -p "$PORT" >"$DIR/log" 2>&1 &
		echo $! >"$DIR/pid"
		echo moto >"$DIR/kind"
	fi
	local i
	for i in $(seq 1 120); do
		if curl -s -o /dev/null "http://127.0.0.1:$PORT/"; then break; fi
		kill -0 "$(cat "$DIR/pid")" 2>/dev/null || { cat "$DIR/log" >&2; return 1; }
		sleep 0.5
	done
	if [ "$(cat "$DIR/kind")" = weed ]; then
		# The filer behind S3 takes 20-30 s to join on a loaded 2-core
		# machine: allow two minutes.
		for i in $(seq 1 240); do
			if echo "s3.bucket.create -name $BUCKET" | "$BIN" shell -master=127.0.0.1:19333 >>"$DIR/log" 2>&1 &&
				echo "s3.bucket.list" | "$BIN" shell -master=127.0.0.1:19333 2>/dev/null | grep -q "$BUCKET"; then
				return 0
			fi
			sleep 0.5
		done
		echo "objectstore: could not create bucket $BUCKET within 2 minutes (log: $DIR/log)" >&2
		stop
		return 1
	fi
	curl -s -X PUT "http://127.0.0.1:$PORT/$BUCKET" >/dev/null
}

stop() {
	[ -f "$DIR/pid" ] || return 0
	local pid i
	pid=$(cat "$DIR/pid")
	kill "$pid" 2>/dev/null || true
	for i in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
	kill -9 "$pid" 2>/dev/null || true
	rm -f "$DIR/pid"
}

env_lines() {
	echo "export FEATURED_S3_ENDPOINT=http://127.0.0.1:$PORT"
	echo "export AWS_ACCESS_KEY_ID=$ACCESS_KEY AWS_SECRET_ACCESS_KEY=$SECRET_KEY AWS_REGION=us-east-1"
}

case ${1:-} in
start) start ;;
stop) stop ;;
env) env_lines ;;
*) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
