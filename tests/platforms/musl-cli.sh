#!/usr/bin/env bash
# tests/platforms/musl-cli.sh: the musl CLIs (scripts/build-platforms.sh musl), run here. Rust's
# musl targets link a program statically (musl's libc inside, no loader), so
#   - x86_64-unknown-linux-musl/release/pgentra runs on this glibc machine as it is, and
#   - aarch64-unknown-linux-musl/release/pgentra runs under qemu-user (binfmt_misc,
#     scripts/arm64-root.sh registers it), with no arm64 root needed.
# Each: no program interpreter (static; tests/platforms/check.sh checks more), then tests/e2e's
# CLI tests run it (tests/platforms/cli-e2e.sh: the conformance vectors byte for byte, a token,
# a passwordless login as pgentra-app through `exec -- psql`). Run under the harness:
#   tests/harness/with-harness.sh tests/platforms/musl-cli.sh   (make test-musl)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
fail() { echo "musl: $*" >&2; exit 1; }
for triple in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
  cli="$target/$triple/release/pgentra"
  [ -x "$cli" ] || fail "no $cli: run scripts/build-platforms.sh musl-cli (make build does)"
  # Static, so nothing of this machine's C library is used (test-platforms checks more).
  ! readelf -l "$cli" | grep -q 'Requesting program interpreter' || fail "$cli asks for a program interpreter (not static)"
  if [ "$triple" = aarch64-unknown-linux-musl ]; then
    grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null ||
      fail "qemu-aarch64 is not registered with binfmt_misc: run scripts/arm64-root.sh (make build does)"
  fi
  echo "== musl: $triple CLI, static ($(du -h "$cli" | cut -f1))"
  "$here/cli-e2e.sh" "musl: the $triple CLI" "$cli"
done
echo "musl: both CLIs passed in $SECONDS s"
