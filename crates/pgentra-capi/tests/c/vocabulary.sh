#!/usr/bin/env bash
# The root README's "One vocabulary" table (issue #19), C column: every name it gives exists in
# include/pgentra.h as the kind of member its row says (a function exported by libpgentra.so,
# the error-status type, a field of pgentra_options), checked by compiling and linking a C
# program written from the table, then running it. A name added to the column without a check
# here fails the test.
#
# Needs `cargo build --release -p pgentra-capi` first (make test-c runs it after run.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/../../../.." && pwd)
crate=$root/crates/pgentra-capi
libdir=${CARGO_TARGET_DIR:-$root/target}/release
[ -f "$libdir/libpgentra.so" ] || {
  echo "vocabulary.sh: $libdir/libpgentra.so is missing; build it with: cargo build --release -p pgentra-capi" >&2; exit 2; }

# concept<TAB>cell of the C column, from the table under "### One vocabulary".
column=$(awk -F'|' -v want=C '
  /^### One vocabulary/ { on = 1; next }
  on && /^\|/ {
    n++
    for (i = 2; i < NF; i++) { c = $i; gsub(/^ +| +$/, "", c); cell[i] = c }
    if (n == 1) { for (i = 2; i < NF; i++) if (cell[i] == want) col = i; next }
    if (n > 2 && col) print cell[2] "\t" cell[col]
    next
  }
  on && n { exit }' "$root/README.md")
[ -n "$column" ] || { echo "vocabulary.sh: no C column under \"### One vocabulary\" in README.md" >&2; exit 1; }

# 1 skips the "identity request count" row (for a C ABI without the function).
skip_request_count=0

fail=0
checks=""
seen=""
while IFS=$'\t' read -r concept cell; do
  seen+="$concept;"
  spans=$(grep -o '`[^`]*`' <<<"$cell" | tr -d '`' || true)
  case "$concept" in
    "token"|"connection string"|"invalidate if still cached"|"service code (\`AADSTS…\`)") kind=function ;;
    "identity request count") kind=function; [ "$skip_request_count" = 1 ] && { echo "skip - $concept (see skip_request_count)"; continue; } ;;
    "error kind") kind=type ;;
    "timeout (one token acquisition)") kind=field ;;
    "database name") kind=none ;;
    *) echo "FAIL - row \"$concept\": this test does not know it"; fail=1; continue ;;
  esac
  if [ "$kind" = none ]; then
    [ -z "$spans" ] && grep -q "inside the connection string" <<<"$cell" \
      || { echo "FAIL - $concept: \"$cell\" (expected: inside the connection string)"; fail=1; }
    continue
  fi
  [ -n "$spans" ] || { echo "FAIL - $concept: the C cell \"$cell\" names nothing"; fail=1; continue; }
  while read -r span; do
    name=${span%"()"}
    [[ $name =~ ^pgentra_[a-z_]+$|^[a-z_]+$ ]] || { echo "FAIL - $concept: \`$span\` is not a C name"; fail=1; continue; }
    case $kind in
      function) checks+="    CHECK_FUNCTION($name); /* $concept */"$'\n' ;;
      type) checks+="    CHECK_TYPE($name); /* $concept */"$'\n' ;;
      field) checks+="    CHECK_FIELD($name); /* $concept */"$'\n' ;;
    esac
  done <<<"$spans"
done <<<"$column"
for row in "token" "connection string" "invalidate if still cached" "error kind" "timeout (one token acquisition)"; do
  [[ $seen == *"$row;"* ]] || { echo "FAIL - no row \"$row\" in the table"; fail=1; }
done
[ "$fail" = 0 ] || exit 1

work=$(mktemp -d /tmp/pgentra-capi-vocabulary.XXXXXX)
trap 'rm -rf "$work"' EXIT
cat >"$work/vocabulary.c" <<C
#include <stdio.h>
#include "pgentra.h"
/* A function libpgentra exports (the link fails otherwise), a type, an integer field. */
#define CHECK_FUNCTION(f) do { void (*p)(void) = (void (*)(void))(f); n += p != NULL; printf("ok   - %s is a function\n", #f); } while (0)
#define CHECK_TYPE(t) do { t v; (void)v; n += sizeof(t) > 0; printf("ok   - %s is a type\n", #t); } while (0)
#define CHECK_FIELD(f) do { pgentra_options o; pgentra_options_init(&o); o.f = 1500; n += o.f == 1500; printf("ok   - pgentra_options.%s is a field\n", #f); } while (0)
int main(void) {
    int n = 0;
$checks    return n > 0 ? 0 : 1;
}
C
"${CC:-gcc}" -std=c11 -Wall -Wextra -Werror -pedantic -Wno-cast-function-type -I"$crate/include" "$work/vocabulary.c" \
  -o "$work/vocabulary" -L"$libdir" -Wl,-rpath,"$libdir" -lpgentra -lpthread
"$work/vocabulary"
echo "vocabulary.sh: the README's C column matches include/pgentra.h and libpgentra.so"
