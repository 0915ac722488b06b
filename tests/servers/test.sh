#!/usr/bin/env bash
# The shared token cache (issue #16) with real servers and processes, sharing on and a private
# cache folder per test: gunicorn (4 workers, --max-requests 10, with and without --preload)
# with psycopg2; PHP-FPM (pm.max_children=8, pm.max_requests=5) with pg_connect and PDO, over
# FastCGI; 64 and 1,000 Python processes at once; the CLI killed mid-write (gdb) and at its
# rename (strace). Needs the wheel (dist/python), the PHP extension (dist/php) and the CLI.
# Run it under the harness: tests/harness/with-harness.sh tests/servers/test.sh (make test does),
# after make build (which installs gunicorn, php8.2-fpm, gdb and strace through the deps scripts).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
[ -n "${PGENTRA_PG_HOST:-}" ] || { echo "servers: run under the harness: tests/harness/with-harness.sh $0" >&2; exit 1; }
wheel=$(ls -1t "$root"/dist/python/pgentra-*.whl 2>/dev/null | head -n1 || true)
[ -n "$wheel" ] || { echo "servers: no wheel in dist/python; run python/build.sh (make build) first" >&2; exit 1; }
export PGENTRA_PHP_EXTENSION="${PGENTRA_PHP_EXTENSION:-$root/dist/php/pgentra.so}"
[ -f "$PGENTRA_PHP_EXTENSION" ] || { echo "servers: no $PGENTRA_PHP_EXTENSION; run php/build.sh (make build) first" >&2; exit 1; }
export PGENTRA_CLI_BIN="${PGENTRA_CLI_BIN:-$root/target/release/pgentra}"
[ -x "$PGENTRA_CLI_BIN" ] || { echo "servers: no CLI at $PGENTRA_CLI_BIN; run make build-core first" >&2; exit 1; }
python3 -c 'import pytest, psycopg2, gunicorn' 2>/dev/null || {
  echo "servers: gunicorn or psycopg2 is missing; run python/deps.sh (outside the harness) first" >&2; exit 1; }
for t in php-fpm8.2 gdb strace; do
  command -v "$t" >/dev/null || { echo "servers: $t is missing; run php/deps.sh and scripts/deps.sh (outside the harness) first" >&2; exit 1; }
done
PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q --disable-pip-version-check --no-index --no-deps --force-reinstall "$wheel"
cd "$here"
exec python3 -m pytest -q -p no:cacheprovider -p no:asyncio -s "$@" .
