#!/usr/bin/env bash
# Run a command in a fresh network namespace that has loopback only, so no code path can reach
# a real metadata address (169.254.169.254) or anything else off this machine.
set -euo pipefail
if [ "${PGENTRA_IN_NETNS:-}" = 1 ]; then exec "$@"; fi
exec unshare --net -- env PGENTRA_IN_NETNS=1 bash -c 'ip link set lo up && exec "$@"' netns "$@"
