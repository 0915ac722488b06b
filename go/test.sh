#!/usr/bin/env bash
# Go tests of the pgentra wrapper: go vet, then go test. Meant to run inside the harness:
#   cd /work/main && tests/harness/with-harness.sh go/test.sh
# Modules come from the module cache (go/deps.sh downloads them first, outside the harness:
# the harness's network namespace has loopback only). Set PGENTRA_REQUIRE_HARNESS=0 to let
# the harness tests skip instead of fail when run outside it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
lib=${CARGO_TARGET_DIR:-$root/target}/release/libpgentra.so
if [ ! -f "$lib" ]; then
  echo "go/test.sh: $lib is missing; build it with: cargo build --release -p pgentra-capi" >&2
  exit 2
fi
cd "$here"
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=mod" GOPROXY=off
export PGENTRA_REQUIRE_HARNESS=${PGENTRA_REQUIRE_HARNESS:-1}
echo "== go vet ./..."
go vet ./...
echo "== go test -count=1 ./..."
go test -count=1 ./...
