#!/usr/bin/env bash
# with-harness.sh CMD...: in a loopback-only namespace, start PostgreSQL and the emulator,
# export their variables, run CMD, then stop both.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ "${PGENTRA_IN_NETNS:-}" != 1 ]; then exec "$here/netns.sh" "$0" "$@"; fi
dir=$(mktemp -d /tmp/pgentra-harness.XXXXXX)
chmod 755 "$dir"
trap '"$here/down.sh" "$dir"; rm -rf "$dir"' EXIT
"$here/up.sh" "$dir"
set -a; . "$dir/harness.env"; set +a
"$@"
