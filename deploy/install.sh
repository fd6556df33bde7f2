#!/bin/sh
# Install the hub the way its image does (deploy/Containerfile runs this script in its build stage):
#   1. a virtual environment at PREFIX with exactly the versions of deploy/requirements.lock, wheels
#      only (--only-binary: nothing is compiled, so no compiler is needed or shipped), no resolver
#      (--no-deps: the lock is the whole set, and `pip check` proves it is complete);
#   2. the hub's own wheel, built by the pinned backend of deploy/build.lock in a throw-away venv;
#   3. the files the hub reads at run time (mappings, golden samples, event contracts) under APP,
#      the working directory of the image.
# usage, from the repository root: sh deploy/install.sh PREFIX APP
set -eu
PREFIX=$1
APP=$2
PYTHON=${PYTHON:-python3}
BUILD=$(mktemp -d)
trap 'rm -rf "$BUILD"' EXIT

"$PYTHON" -m venv "$PREFIX"
"$PREFIX/bin/python" -m pip install --quiet --no-cache-dir --no-deps --only-binary=:all: \
  -r deploy/requirements.lock

"$PYTHON" -m venv "$BUILD/venv"
"$BUILD/venv/bin/python" -m pip install --quiet --no-cache-dir --no-deps --only-binary=:all: -r deploy/build.lock
"$BUILD/venv/bin/python" -m pip wheel --quiet --no-cache-dir --no-deps --no-build-isolation \
  --wheel-dir "$BUILD/dist" .
"$PREFIX/bin/python" -m pip install --quiet --no-cache-dir --no-deps "$BUILD"/dist/saleshub-*.whl
"$PREFIX/bin/python" -m pip check

mkdir -p "$APP/contracts"
cp -R mappings "$APP/mappings"
cp -R contracts/samples contracts/avro "$APP/contracts/"
find "$APP" -name __pycache__ -prune -exec rm -rf {} +
