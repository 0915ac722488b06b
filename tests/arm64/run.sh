#!/usr/bin/env bash
# tests/arm64/run.sh: the arm64 suite (make test-arm64). In the arm64 Debian root
# (scripts/arm64-root.sh), every program running as aarch64 under qemu, against the harness's
# PostgreSQL and identity emulator:
#   - Python: the manylinux2014_aarch64 wheel, installed by the root's pip, with Debian arm64's
#     psycopg2: the binding's offline suite (python/tests/test_core.py: every conformance vector
#     byte for byte) and its token suite (python/tests/test_tokens.py: tokens, a passwordless
#     login as the app's role with psycopg2, pools, threads, fork, rotation).
#   - CLI: the aarch64 `pgentra` runs in the root for the end-to-end CLI tests (PGENTRA_CLI_BIN):
#     tests/e2e/tests/vectors_cli.rs (render and parse vectors byte for byte) and the token /
#     dsn / exec psql / check test of tests/e2e/tests/e2e.rs (a token, a login as pgentra-app).
#   - Node.js: the linux-arm64-gnu addon with Debian arm64's Node.js and node-postgres
#     (pure JavaScript, from node/node_modules): node/test/unit.test.js and node/test/pg.test.js.
# Run it under the harness: tests/harness/with-harness.sh tests/arm64/run.sh (make test does).
# Its mounts live in the harness's private mount namespace and vanish with it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
triple=aarch64-unknown-linux-gnu
arm_root=${PGENTRA_ARM64_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/pgentra/arm64-root}

fail() { echo "arm64: $*" >&2; exit 1; }
[ "${PGENTRA_IN_NETNS:-}" = 1 ] && [ -n "${PGENTRA_TEST_DIR:-}" ] ||
  fail "run under the harness: tests/harness/with-harness.sh tests/arm64/run.sh"
[ -f "$arm_root/.pgentra-root" ] ||
  fail "no arm64 root in $arm_root: run scripts/arm64-root.sh outside the harness (make build does)"
grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null ||
  fail "qemu-aarch64 is not registered with binfmt_misc: run scripts/arm64-root.sh (make build does)"
wheel=$(ls -1t "$repo"/dist/python/pgentra-*-*manylinux2014_aarch64*.whl 2>/dev/null | head -n1 || true)
[ -n "$wheel" ] || fail "no manylinux2014_aarch64 wheel in dist/python: run scripts/build-platforms.sh (make build does)"
cli="$target/$triple/release/pgentra"
[ -x "$cli" ] || fail "no aarch64 CLI at $cli: run scripts/build-platforms.sh (make build does)"

# The root sees: /proc, /dev, the repository at the same path (tests write fixtures there), the harness's folder
# at the same path (certificates, token cache), this namespace's /etc/hosts, a fresh /tmp.
mounts=()
bind() { # bind SRC DST [ro]
  if [ -d "$1" ]; then mkdir -p "$2"; else [ -e "$2" ] || touch "$2"; fi
  mount --rbind "$1" "$2"
  mounts=("$2" "${mounts[@]}")
  [ "${3:-}" != ro ] || mount -o remount,bind,ro "$2"
}
cleanup() { for m in "${mounts[@]}"; do umount -l "$m" 2>/dev/null || true; done; }
trap cleanup EXIT
mount -t proc proc "$arm_root/proc"; mounts=("$arm_root/proc" "${mounts[@]}")
bind /dev "$arm_root/dev"
mount -t tmpfs -o mode=1777 tmpfs "$arm_root/tmp"; mounts=("$arm_root/tmp" "${mounts[@]}")
bind "$repo" "$arm_root$repo"
bind "$PGENTRA_TEST_DIR" "$arm_root$PGENTRA_TEST_DIR"
bind /etc/hosts "$arm_root/etc/hosts" ro

# Run a command in the root: its own PATH, the harness's variables.
in_root() { chroot "$arm_root" /usr/bin/env PATH=/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 \
  PYTHONDONTWRITEBYTECODE=1 "$@"; }
[ "$(in_root uname -m)" = aarch64 ] || fail "programs in $arm_root do not run as aarch64"
[ "$(in_root python3 -c 'import platform; print(platform.machine())')" = aarch64 ] || fail "the root's Python is not aarch64"
file_arch() { readelf -h "$1" | sed -n 's/^ *Machine: *//p'; }
[ "$(file_arch "$cli")" = AArch64 ] || fail "$cli is not an AArch64 program"

echo "== arm64: Python wheel $(basename "$wheel") with Debian arm64's psycopg2"
site=/tmp/pgentra-python
in_root python3 -m pip install -q --disable-pip-version-check --no-index --no-deps --target "$site" "$wheel"
so=$(ls "$arm_root$site"/pgentra/_pgentra*.so)
[ "$(file_arch "$so")" = AArch64 ] || fail "$so is not AArch64"
in_root sh -c "cd '$repo' && PYTHONPATH='$site' exec python3 -m pytest -q -p no:cacheprovider python/tests/test_core.py python/tests/test_tokens.py"

echo "== arm64: the aarch64 CLI in the root (tests/e2e: vectors_cli, e2e's CLI test)"
# tests/e2e runs the CLI through PGENTRA_CLI_BIN: a wrapper that runs it inside the root.
install -m 0755 "$cli" "$arm_root/tmp/pgentra"
# It counts its calls, so that the suite knows the tests ran this CLI.
calls="$arm_root/tmp/pgentra-calls"
: > "$calls"
cat > "$arm_root/tmp/pgentra-in-root" <<EOF
#!/bin/sh
echo x >> '$calls'
exec chroot '$arm_root' /usr/bin/env PATH=/usr/local/bin:/usr/bin:/bin HOME=/root /tmp/pgentra "\$@"
EOF
chmod 0755 "$arm_root/tmp/pgentra-in-root"
[ "$("$arm_root/tmp/pgentra-in-root" --version | head -n1)" = "$("$target/release/pgentra" --version | head -n1)" ] ||
  fail "the aarch64 CLI and the x86_64 CLI report different versions"
cd "$repo"
sel=(--workspace $(for b in bindings/*/Cargo.toml; do d=${b%/Cargo.toml}; echo "--exclude pgentra-${d##*/}"; done))
PGENTRA_CLI_BIN="$arm_root/tmp/pgentra-in-root" ${CARGO:-cargo} test --release --offline -q "${sel[@]}" \
  --test vectors_cli --test e2e -- --test-threads=1 vectors cli_token_dsn_env_exec_check
# One call per render vector and format, one per parse vector, and the CLI test's own.
want=$(python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); p = json.load(open(sys.argv[2])); print(sum(len(v["rendered"]) for v in r) + len(p))' \
  tests/vectors/render.json tests/vectors/parse.json)
got=$(wc -l < "$calls")
[ "$got" -gt "$want" ] || fail "the e2e tests ran the aarch64 CLI $got times, expected more than $want"
echo "arm64: the e2e tests ran the aarch64 CLI $got times"

addon="$repo/node/pgentra.linux-arm64-gnu.node"
if [ -f "$addon" ]; then
  echo "== arm64: Node.js addon linux-arm64-gnu with Debian arm64's Node.js $(in_root node --version)"
  [ "$(file_arch "$addon")" = AArch64 ] || fail "$addon is not AArch64"
  # Emulated, a cached getToken() takes about 0.13 ms instead of under 0.1 (pg.test.js's bound).
  in_root sh -c "cd '$repo/node' && PGENTRA_TEST_TIME_SCALE=10 exec node --test test/unit.test.js test/pg.test.js"
else
  fail "no $addon: run scripts/build-platforms.sh (make build does)"
fi
echo "arm64: all passed in $SECONDS s"
