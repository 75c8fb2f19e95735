#!/usr/bin/env bash
# genproto.sh regenerates the Go code of api/featured/v1, api/featured/peer/v1
# (the nodes' internal PeerService) and api/feast/... (Feast's serving protos,
# and the feast.core protos of its registry file, written from the feast
# wheel's descriptors) from their .proto files.
#
# Everything it needs is installed under the git-ignored .cache/ of the repo, so
# a second run downloads nothing and the output does not depend on what the
# machine has installed:
#   - protoc: python -m grpc_tools.protoc (grpcio-tools, which also ships the
#     well-known types such as google/protobuf/timestamp.proto), in a venv;
#   - protoc-gen-go and protoc-gen-go-grpc, pinned, built into .cache/bin.
# The generated files are committed; running this script again on an unchanged
# tree gives no diff (scripts/genproto.sh --verify checks exactly that).
set -euo pipefail

GRPCIO_TOOLS_VERSION=1.85.1
PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2

root="$(cd "$(dirname "$0")/.." && pwd)"
cache="$root/.cache"
venv="$cache/venv-grpcio-tools-$GRPCIO_TOOLS_VERSION"
bin="$cache/bin"
mkdir -p "$bin"

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import grpc_tools.protoc' 2>/dev/null; then
	python3 -m venv "$venv"
	"$venv/bin/pip" install --quiet --disable-pip-version-check "grpcio-tools==$GRPCIO_TOOLS_VERSION"
fi

# go install one module per call; the version is part of the binary's name so a
# version bump rebuilds it.
install_plugin() { # name package version
	local name=$1 pkg=$2 version=$3
	if [ ! -x "$bin/$name-$version" ]; then
		local tmp
		tmp="$(mktemp -d)"
		GOBIN="$tmp" go install "$pkg@$version"
		mv "$tmp/$name" "$bin/$name-$version"
		rmdir "$tmp"
	fi
	ln -sf "$name-$version" "$bin/$name"
}
install_plugin protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go "$PROTOC_GEN_GO_VERSION"
install_plugin protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc "$PROTOC_GEN_GO_GRPC_VERSION"

# The directories under api/ whose .proto files are generated; protoc runs once
# per directory (one Go package each).
dirs=(featured/v1 featured/peer/v1 feast/types feast/serving feast/core)

generate() { # outdir
	local out=$1
	local wkt
	wkt="$("$venv/bin/python" -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')"
	local d
	mkdir -p "$out"
	for d in "${dirs[@]}"; do
		(
			cd "$root/api"
			PATH="$bin:$PATH" "$venv/bin/python" -m grpc_tools.protoc \
				-I . -I "$wkt" \
				--go_out="$out" --go_opt=paths=source_relative \
				--go-grpc_out="$out" --go-grpc_opt=paths=source_relative \
				"$d"/*.proto
		)
	done
}

if [ "${1:-}" = "--verify" ]; then
	tmp="$(mktemp -d)"
	trap 'rm -rf "$tmp"' EXIT
	generate "$tmp/gen"
	stale=0
	for d in "${dirs[@]}"; do
		mkdir -p "$tmp/committed/$d"
		cp "$root/api/$d"/*.pb.go "$tmp/committed/$d/" 2>/dev/null || true
		if ! diff -r "$tmp/gen/$d" "$tmp/committed/$d"; then
			echo "genproto: api/$d is out of date; run scripts/genproto.sh" >&2
			stale=1
		fi
	done
	[ "$stale" = 0 ] || exit 1
	echo "genproto: ${dirs[*]/#/api/} up to date"
	exit 0
fi

for d in "${dirs[@]}"; do
	rm -f "$root/api/$d"/*.pb.go
done
generate "$root/api"
