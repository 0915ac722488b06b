#!/usr/bin/env bash
# Install the wheel from dist/python/ (forced, offline) and run the Python tests. Run it under
# the harness: tests/harness/with-harness.sh python/test.sh (make test does).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
# This machine's wheel (dist/python also holds other platforms': scripts/build-platforms.sh).
wheel=$(ls -1t "$root"/dist/python/pgentra-*-manylinux*_"$(uname -m)".whl 2>/dev/null | head -n1 || true)
[ -n "$wheel" ] || { echo "python: no wheel in dist/python; run python/build.sh (make build) first" >&2; exit 1; }
if [ "${PGENTRA_IN_NETNS:-}" != 1 ]; then
  "$here/deps.sh"   # registries are reachable only outside the test namespace
fi
python3 -c 'import pytest, psycopg2, psycopg, psycopg_pool, asyncpg, sqlalchemy, greenlet, django' 2>/dev/null || {
  echo "python: test dependencies are missing; run python/deps.sh (outside the harness) first" >&2; exit 1; }
PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q --disable-pip-version-check --no-index --no-deps --force-reinstall "$wheel"
[ -n "${PGENTRA_PG_HOST:-}" ] || echo "python: PGENTRA_PG_HOST is not set: the tests that need the harness will be skipped" >&2
cd "$root"
exec python3 -m pytest -q -p no:cacheprovider -p no:asyncio python/tests "$@"
