#!/usr/bin/env bash
# Go: cached Connector.Token() of the pgentra Go wrapper against azidentity's
# ManagedIdentityCredential.GetToken, on the loopback emulator's App Service endpoint.
#   cd /work/main && bench/go/run.sh [-rounds N] [-parallel=false]
# Modules are downloaded first, outside the harness (it has no network), unless already in the
# module cache; the program is built outside too, then run inside the harness with GOPROXY=off.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
libdir=${CARGO_TARGET_DIR:-$root/target}/release
if [ ! -f "$libdir/libpgentra.so" ]; then
  echo "bench/go/run.sh: $libdir/libpgentra.so is missing; build it with: cargo build --release -p pgentra-capi" >&2
  exit 2
fi
if [ -n "${CARGO_TARGET_DIR:-}" ]; then # the wrapper's own #cgo flags point at ../target/release
  export CGO_LDFLAGS="${CGO_LDFLAGS:+$CGO_LDFLAGS }-L$libdir -Wl,-rpath,$libdir"
  export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
cd "$here"
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=mod"
if ! GOPROXY=off go list -deps . >/dev/null 2>&1; then
  echo "== go mod download (outside the harness)" >&2
  go mod download || { echo "bench/go/run.sh: modules missing and cannot be downloaded (offline?)" >&2; exit 2; }
fi
out=$(mktemp -d /tmp/pgentra-gobench.XXXXXX)
trap 'rm -rf "$out"' EXIT
GOPROXY=off go build -o "$out/gobench" .
cd "$root"
# Inside the harness: no IMDS (a dead loopback port), the App Service endpoint of the emulator.
tests/harness/with-harness.sh env GOPROXY=off PGENTRA_IMDS_ENDPOINT=http://127.0.0.1:9 \
  AZURE_POD_IDENTITY_AUTHORITY_HOST=http://127.0.0.1:9 "$out/gobench" "$@"
