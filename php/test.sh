#!/usr/bin/env bash
# Run the PHPUnit suite (Debian's phpunit) against dist/php/pgentra.so, with pgsql and
# pdo_pgsql (loaded from Debian's conf.d). Run it under the harness:
#   tests/harness/with-harness.sh php/test.sh   (make test does)
# Without the harness, the tests that need PostgreSQL and the identity emulator are skipped.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
so="$root/dist/php/pgentra.so"
[ -f "$so" ] || { echo "php: no $so; run php/build.sh (make build) first" >&2; exit 1; }
if [ "${PGENTRA_IN_NETNS:-}" != 1 ]; then
  "$here/deps.sh"   # registries are reachable only outside the test namespace
fi
command -v phpunit >/dev/null || { echo "php: phpunit is missing; run php/deps.sh (outside the harness) first" >&2; exit 1; }
php -d extension="$so" -r 'foreach (["pgentra", "pgsql", "pdo_pgsql"] as $e) if (!extension_loaded($e)) { fwrite(STDERR, "php: extension $e is not loaded\n"); exit(1); }' \
  || { echo "php: run php/deps.sh (php8.2-pgsql) and php/build.sh first" >&2; exit 1; }
[ -n "${PGENTRA_PG_HOST:-}" ] || echo "php: PGENTRA_PG_HOST is not set: the tests that need the harness will be skipped" >&2
export PGENTRA_PHP_EXTENSION="$so"   # child processes of the tests load the same file
cd "$root"
exec php -d extension="$so" "$(command -v phpunit)" --configuration "$here/phpunit.xml" "$@"
