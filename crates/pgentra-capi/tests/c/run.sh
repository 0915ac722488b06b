#!/usr/bin/env bash
# C tests of libpgentra: compile tests/c/test_capi.c against include/pgentra.h, link it with
# target/release/libpgentra.so and (separately) libpgentra.a, run both, then run the shared
# build under valgrind (definite leaks and memory errors fail).
#
# Needs `cargo build --release -p pgentra-capi` first. The token part needs the harness:
#   PGENTRA_EMULATOR_BIN=$PWD/target/release/pgentra-emulator \
#     tests/harness/with-harness.sh crates/pgentra-capi/tests/c/run.sh
# Without it the token part is skipped (the test says so).
#
# Variables: CC (gcc), CXX (g++), PGENTRA_VALGRIND=0 skips valgrind, CARGO_TARGET_DIR.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
crate=$(cd "$here/../.." && pwd)
root=$(cd "$crate/../.." && pwd)
libdir=${CARGO_TARGET_DIR:-$root/target}/release
CC=${CC:-gcc}
CXX=${CXX:-g++}

for f in "$libdir/libpgentra.so" "$libdir/libpgentra.a"; do
  if [ ! -f "$f" ]; then
    echo "run.sh: $f is missing; build it with: cargo build --release -p pgentra-capi" >&2
    exit 2
  fi
done

work=$(mktemp -d /tmp/pgentra-capi-test.XXXXXX)
trap 'rm -rf "$work"' EXIT

cflags=(-std=c11 -Wall -Wextra -Werror -pedantic -O1 -g -I"$crate/include")
pq=()
if [ -f /usr/include/postgresql/libpq-fe.h ] && { [ -e /usr/lib/x86_64-linux-gnu/libpq.so ] || ldconfig -p 2>/dev/null | grep 'libpq\.so ' >/dev/null; }; then
  cflags+=(-DPGENTRA_TEST_LIBPQ -I/usr/include/postgresql)
  pq=(-lpq)
fi

echo "== header compiles as C11 and C++"
echo '#include "pgentra.h"' > "$work/hdr.c"
"$CC" -std=c11 -Wall -Wextra -Werror -pedantic -fsyntax-only -I"$crate/include" "$work/hdr.c"
if command -v "$CXX" >/dev/null; then
  cp "$work/hdr.c" "$work/hdr.cpp"
  "$CXX" -std=c++11 -Wall -Wextra -Werror -pedantic -fsyntax-only -I"$crate/include" "$work/hdr.cpp"
fi

echo "== build (shared and static)"
"$CC" "${cflags[@]}" "$here/test_capi.c" -o "$work/test_capi_shared" \
  -L"$libdir" -Wl,-rpath,"$libdir" -lpgentra "${pq[@]}" -lpthread
"$CC" "${cflags[@]}" "$here/test_capi.c" -o "$work/test_capi_static" \
  "$libdir/libpgentra.a" "${pq[@]}" -lpthread -ldl -lm
# The shared build really uses libpgentra.so, the static one does not. ldd's output goes to a
# file first: under pipefail, `ldd | grep -q` fails at random when grep exits before ldd has
# written everything (SIGPIPE), which is how CI once stopped here with no message.
ldd "$work/test_capi_shared" > "$work/ldd-shared.txt"
ldd "$work/test_capi_static" > "$work/ldd-static.txt" || true
grep -q "libpgentra.so => $libdir/libpgentra.so" "$work/ldd-shared.txt" || {
  echo "run.sh: test_capi_shared does not load $libdir/libpgentra.so:" >&2; cat "$work/ldd-shared.txt" >&2; exit 1; }
if grep -q libpgentra "$work/ldd-static.txt"; then
  echo "run.sh: test_capi_static loads libpgentra dynamically:" >&2; cat "$work/ldd-static.txt" >&2; exit 1
fi

echo "== run (shared library)"
"$work/test_capi_shared"
echo "== run (static library)"
"$work/test_capi_static"

if [ "${PGENTRA_VALGRIND:-1}" != 0 ]; then
  if ! command -v valgrind >/dev/null; then
    echo "run.sh: valgrind is not installed (apt-get install valgrind), or set PGENTRA_VALGRIND=0" >&2
    exit 2
  fi
  # Memory the process keeps on purpose (the process-wide runtime and HTTP client are leaked
  # by design, with their worker threads, connection pool and TLS session cache) shows as
  # "still reachable" or "possibly lost"; only definite leaks and memory errors fail.
  vg=(valgrind --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite
      --error-exitcode=1 --suppressions="$here/valgrind.supp")
  for kind in shared static; do
    echo "== valgrind ($kind library)"
    "${vg[@]}" --log-file="$work/valgrind-$kind.log" "$work/test_capi_$kind" || {
      cat "$work/valgrind-$kind.log" >&2
      echo "run.sh: valgrind found errors or definite leaks ($kind build)" >&2
      exit 1
    }
    sed -n '/LEAK SUMMARY/,/suppressed:/p;/ERROR SUMMARY/p' "$work/valgrind-$kind.log" | sed 's/^==[0-9]*== /  /'
  done
fi
echo "== C tests passed"
