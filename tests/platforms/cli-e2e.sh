#!/usr/bin/env bash
# tests/platforms/cli-e2e.sh NAME CMD...: tests/e2e's CLI tests with the CLI run as CMD... (a
# cross-built CLI: under qemu in the arm64 root, or a static musl one), through PGENTRA_CLI_BIN:
#   - tests/e2e/tests/vectors_cli.rs: every render and parse conformance vector, byte for byte;
#   - tests/e2e/tests/e2e.rs's cli_token_dsn_env_exec_check test: a token from the emulator,
#     dsn, env, a passwordless login as pgentra-app through `exec -- psql`, check.
# The wrapper counts its calls, so that this knows the tests ran CMD and not another CLI.
# Run under the harness (tests/arm64/run.sh and tests/platforms/musl-cli.sh call it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
name=$1; shift
[ $# -gt 0 ] || { echo "usage: $0 NAME CMD..." >&2; exit 2; }
[ "${PGENTRA_IN_NETNS:-}" = 1 ] && [ -n "${PGENTRA_TEST_DIR:-}" ] ||
  { echo "$name: run under the harness (tests/harness/with-harness.sh)" >&2; exit 1; }
dir=$(mktemp -d "$PGENTRA_TEST_DIR/cli-e2e.XXXXXX")
trap 'rm -rf "$dir"' EXIT
calls="$dir/calls"
: > "$calls"
{ echo '#!/bin/sh'
  printf 'echo x >> %q\n' "$calls"
  printf 'exec'; printf ' %q' "$@"; printf ' "$@"\n'
} > "$dir/pgentra"
chmod 0755 "$dir/pgentra"
host_cli=${CARGO_TARGET_DIR:-$repo/target}/release/pgentra
[ "$("$dir/pgentra" --version | head -n1)" = "$("$host_cli" --version | head -n1)" ] ||
  { echo "$name: reports another version than $host_cli" >&2; exit 1; }
cd "$repo"
sel=(--workspace $(for b in bindings/*/Cargo.toml; do d=${b%/Cargo.toml}; echo "--exclude pgentra-${d##*/}"; done))
PGENTRA_CLI_BIN="$dir/pgentra" ${CARGO:-cargo} test --release --offline -q "${sel[@]}" \
  --test vectors_cli --test e2e -- --test-threads=1 vectors cli_token_dsn_env_exec_check
# One call per render vector and format, one per parse vector, and the CLI test's own.
want=$(python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); p = json.load(open(sys.argv[2])); print(sum(len(v["rendered"]) for v in r) + len(p))' \
  tests/vectors/render.json tests/vectors/parse.json)
got=$(wc -l < "$calls")
[ "$got" -gt "$want" ] || { echo "$name: the e2e tests ran it $got times, expected more than $want" >&2; exit 1; }
echo "$name: the e2e tests ran it $got times (vectors byte for byte, a token, a login as pgentra-app)"
