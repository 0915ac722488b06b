#!/usr/bin/env bash
# Download the Go modules of the pgentra wrapper (lib/pq, pgx v5) into the module cache.
# Run it outside the harness, which has no network.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v go >/dev/null; then
  echo "go/deps.sh: go is not installed (Go 1.25 or newer is needed)" >&2
  exit 2
fi
go mod download
go mod verify
