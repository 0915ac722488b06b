#!/usr/bin/env bash
# node/build.sh: build the native addon (release) and pack the npm package into dist/node/.
#   dist/node/pgentra-<version>.tgz holds the prebuilt linux-x64-gnu addon; a user needs only
#   `npm install ./dist/node/pgentra-<version>.tgz`.
# The addon is `cargo build --release --target x86_64-unknown-linux-gnu -p pgentra-node`, linked
# by zig for glibc 2.17 (as the Python wheel, whose compiled crates it shares: scripts/zig-env.sh),
# copied to node/pgentra.linux-x64-gnu.node. Fails when the committed index.d.ts is stale.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cd "$here"

# JavaScript tooling: @napi-rs/cli renders index.d.ts (dev dependencies, never shipped).
if ! node -e "require.resolve('@napi-rs/cli')" >/dev/null 2>&1; then
  npm ci --no-audit --no-fund
fi

target_dir=${CARGO_TARGET_DIR:-$root/target}
# shellcheck source=scripts/zig-env.sh
. "$root/scripts/zig-env.sh"
triple=x86_64-unknown-linux-gnu
if zig_available && use_zig "$triple" x86_64-linux-gnu.2.17; then
  # glibc 2.17 as the floor, as the Python wheel's (the same zig wrappers and target folder, so
  # the two share every compiled crate).
  (cd "$root" && cargo build --release --locked --target "$triple" -p pgentra-node)
  built="$target_dir/$triple/release/libpgentra_node.so"
else
  echo "node/build.sh: zig is not installed (scripts/platforms-deps.sh): a plain build, which needs this machine's glibc or newer" >&2
  (cd "$root" && cargo build --release --locked -p pgentra-node)
  built="$target_dir/release/libpgentra_node.so"
fi
# Replace, never overwrite in place: a running process may have the old file mapped.
install -m 0755 "$built" "$here/.pgentra.node.tmp"
mv -f "$here/.pgentra.node.tmp" "$here/pgentra.linux-x64-gnu.node"

node "$here/scripts/dts.js" --check

# The package's version follows the workspace's.
version=$(node -p "require('./package.json').version")
workspace_version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' "$root/Cargo.toml")
if [ "$version" != "$workspace_version" ]; then
  echo "node/build.sh: node/package.json has version $version but the workspace has $workspace_version" >&2
  exit 1
fi

mkdir -p "$root/dist/node"
rm -f "$root/dist/node"/pgentra-*.tgz
npm pack --silent --pack-destination "$root/dist/node" >/dev/null
tgz="$root/dist/node/pgentra-$version.tgz"
[ -f "$tgz" ] || { echo "node/build.sh: npm pack did not produce $tgz" >&2; exit 1; }
echo "node/build.sh: $tgz ($(du -h "$tgz" | cut -f1))"
