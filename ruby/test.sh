#!/usr/bin/env bash
# Run the Ruby (minitest) suite against the built extension (ruby/lib/pgentra/pgentra_ext.so,
# put there by ruby/build.sh). Run it under the harness:
#   tests/harness/with-harness.sh ruby/test.sh
# Without the harness the tests that need PostgreSQL and the identity emulator are skipped.
# Extra arguments go to minitest (e.g. -v, -n /rotation/).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
[ -f "$here/lib/pgentra/pgentra_ext.so" ] || {
  echo "ruby: no extension at ruby/lib/pgentra/pgentra_ext.so; run ruby/build.sh (make build) first" >&2; exit 1; }
if [ "${PGENTRA_IN_NETNS:-}" != 1 ]; then
  "$here/deps.sh"   # the package mirror is reachable only outside the test namespace
fi
ruby -e 'require "minitest"; require "pg"; require "active_record"' 2>/dev/null || {
  echo "ruby: test dependencies are missing; run ruby/deps.sh (outside the harness) first" >&2; exit 1; }
[ -n "${PGENTRA_PG_HOST:-}" ] || echo "ruby: PGENTRA_PG_HOST is not set: the tests that need the harness will be skipped" >&2
cd "$root"
# The gem's lib first, so that an installed pgentra gem cannot shadow the code under test.
exec ruby -I"$here/lib" -I"$here/test" -e '
  Dir[File.join(ARGV.shift, "*_test.rb")].sort.each { |f| require File.expand_path(f) }
' "$here/test" "$@"
