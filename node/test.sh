#!/usr/bin/env bash
# node/test.sh: install the test dependencies (pg, sequelize, pg-hstore, knex, postgres, typescript, ...),
# then run `node --test node/test/` against the private PostgreSQL and the identity emulator.
# Outside the harness it installs what is missing and re-runs itself under
# tests/harness/with-harness.sh (loopback-only network namespace); inside the harness (no
# network) it only uses what is installed or in npm's cache. Needs node/build.sh first.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cd "$here"

deps_ok() {
  node -e "for (const m of ['pg', 'sequelize', 'pg-hstore', 'knex', 'typescript', '@napi-rs/cli', '@types/pg', '@types/node/package.json', 'postgres']) require.resolve(m)" >/dev/null 2>&1
}
if ! deps_ok; then
  if [ "${PGENTRA_IN_NETNS:-}" = 1 ]; then
    npm ci --offline --no-audit --no-fund || {
      echo "node/test.sh: test dependencies are missing and the namespace has no network; run node/test.sh (or 'npm ci' in node/) outside the harness first" >&2
      exit 1
    }
  else
    npm ci --no-audit --no-fund
  fi
fi

if [ ! -f "$here/pgentra.linux-x64-gnu.node" ]; then
  echo "node/test.sh: node/pgentra.linux-x64-gnu.node is missing; run node/build.sh first" >&2
  exit 1
fi

if [ -z "${PGENTRA_PG_HOST:-}" ]; then
  exec "$root/tests/harness/with-harness.sh" "$here/test.sh" "$@"
fi

# One file at a time: the files share one emulator (its request counters, reset(), the faults
# queued for the next request). node --test would run them in parallel on a machine with more
# than two cores.
exec node --test --test-concurrency=1 "$here/test/"
