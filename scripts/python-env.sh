#!/usr/bin/env bash
# python-env.sh makes the Python venv that the tests use as independent
# readers of featured's Parquet and Arrow output (pyarrow, DuckDB) and that
# the offline benchmark uses for DuckDB's ASOF JOIN, plus the Feast SDK that the
# Feast drop-in tests drive against featured (its remote online store, its CLI
# and its generated gRPC stubs, which need grpcio: the feast wheel does not
# require it). Pinned versions, under the git-ignored
# .cache/venv; idempotent: a second run installs nothing.
# Tests find it at .cache/venv/bin/python or $FEATURED_PYTHON.
set -euo pipefail

PYARROW_VERSION=26.0.1
DUCKDB_VERSION=2.0.0
FEAST_VERSION=0.67.0
GRPCIO_VERSION=1.85.4

root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.cache/venv"
stamp="$venv/.featured-$PYARROW_VERSION-$DUCKDB_VERSION-feast$FEAST_VERSION-grpcio$GRPCIO_VERSION"

if [ -f "$stamp" ] && "$venv/bin/python" -c 'import pyarrow, duckdb, feast, grpc' 2>/dev/null; then
	exit 0
fi
python3 -m venv "$venv"
# python -m pip, not bin/pip: a venv copied from another checkout keeps
# that checkout's path in bin/pip's #! line and would install there.
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
	"pyarrow==$PYARROW_VERSION" "duckdb==$DUCKDB_VERSION" "feast==$FEAST_VERSION" "grpcio==$GRPCIO_VERSION"
touch "$stamp"
echo "python env ready: $venv"
